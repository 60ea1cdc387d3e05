"""Plate OCR back-ends: Outpost's CTC TFLite models and fast-plate-ocr fixed-slot models.

Each back-end turns one plate crop (BGR) into an ``OcrResult``; decoding is done by pure
functions (``ctc_decode``, ``slots_decode``) that take the model's probability array.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from agent.errors import DriverFault
from agent.plates.preprocess import TWO_ROW_MAX_ASPECT, ocr_input

Probs = npt.NDArray[np.float32]


@dataclass
class OcrResult:
    """What one OCR pass read: text, plate confidence and per-character details."""

    text: str
    confidence: float
    char_confidences: list[float] = field(default_factory=list)
    alternatives: list[dict[str, float]] = field(default_factory=list)
    """Per character: the most probable candidates at that position and their probabilities."""
    path_score: float = 0.0
    """Mean log-probability of the decoded path per frame; compares readings of one crop
    under different character masks (a masked-out character leaves improbable frames)."""
    span: tuple[float, float] | None = None
    """Where the text lies across the model's input, as fractions of its width: the start
    of the first character's frames and the end of the last one's (None: not known)."""


def ctc_decode(probs: Probs, alphabet: str, blank: int = 0, top_k: int = 4) -> OcrResult:
    """Greedy CTC decoding of ``probs`` shaped (T, classes).

    A character's confidence is its highest probability over the frames of its run (the
    first such frame is its peak); its alternatives are the top candidates at the peak
    (the blank excluded).
    """
    # A scene reads each crop several times: the runs are walked over plain lists and the
    # candidates of all peaks sorted in one call (a sort per character, and numpy scalars
    # in the loop, took about a tenth of a toll-booth frame's time).
    best_arr = probs.argmax(axis=-1)
    top_arr = probs[np.arange(len(best_arr)), best_arr]
    best, top = best_arr.tolist(), top_arr.tolist()
    peaks: list[int] = []
    confs: list[float] = []
    prev = blank
    first = last = -1
    for t, k in enumerate(best):
        if k != blank:
            if first < 0:
                first = t
            last = t
            if k != prev:
                peaks.append(t)
                confs.append(top[t])
            elif top[t] > confs[-1]:
                peaks[-1] = t
                confs[-1] = top[t]
        prev = k
    path = float(np.log(top_arr + 1e-9).mean())
    if not peaks:
        return OcrResult("", 0.0, [], [], path, None)
    offset = 1 if blank == 0 else 0
    rows = probs[peaks]
    order = np.argsort(rows, axis=1)[:, : -top_k - 2 : -1].tolist()
    values = rows.tolist()
    alts = [
        {alphabet[k - offset]: row[k] for k in ks if k != blank}
        for row, ks in zip(values, order, strict=True)
    ]
    chars = "".join(alphabet[best[t] - offset] for t in peaks)
    conf = math.prod(confs) ** (1.0 / len(confs))
    steps = len(best)
    return OcrResult(chars, conf, confs, alts, path, (first / steps, (last + 1) / steps))


def slots_decode(probs: Probs, alphabet: str, pad: str = "_", top_k: int = 4) -> OcrResult:
    """Fixed-slot decoding (fast-plate-ocr): argmax per slot, pad slots dropped."""
    chars: list[str] = []
    confs: list[float] = []
    alts: list[dict[str, float]] = []
    for row in probs:
        k = int(row.argmax())
        ch = alphabet[k]
        if ch == pad:
            continue
        chars.append(ch)
        confs.append(float(row[k]))
        order = np.argsort(row)[::-1][:top_k]
        alts.append(
            {alphabet[int(j)]: float(row[int(j)]) for j in order if alphabet[int(j)] != pad}
        )
    conf = float(np.prod(confs) ** (1.0 / len(confs))) if confs else 0.0
    return OcrResult("".join(chars), conf, confs, alts)


class PlateOcr(Protocol):
    """A plate OCR model: one crop in, one reading out."""

    name: str

    def read(self, crop: npt.NDArray[Any]) -> OcrResult: ...

    def read_candidates(self, crop: npt.NDArray[Any]) -> list[OcrResult]: ...

    def restrict(
        self, groups: Sequence[tuple[str, str]], weights: Mapping[str, float] | None = None
    ) -> None: ...


class OcrInputs:
    """One crop's inputs to Outpost's models (``ocr_input``), each made when a model first
    asks for it: the models fused in ``FusedOcr`` read the same crop."""

    def __init__(self, crop: npt.NDArray[Any]) -> None:
        self.crop = crop
        h, w = crop.shape[:2]
        self.narrow = w / max(h, 1) < TWO_ROW_MAX_ASPECT
        """Narrow enough to be a two-row plate (also read unfolded)."""

    @functools.cached_property
    def plain(self) -> npt.NDArray[Any]:
        return ocr_input(self.crop, False)

    @functools.cached_property
    def unfolded(self) -> npt.NDArray[Any]:
        return ocr_input(self.crop, True)


class CtcTfliteOcr:
    """Outpost's own CTC plate OCR (``models/outpost-plate-ocr*.tflite``)."""

    def __init__(self, model_path: Path, entry: dict[str, Any], threads: int = 1) -> None:
        from agent.vision.runtime import load_interpreter

        self.name = str(entry["name"])
        self.alphabet = str(entry["alphabet"])
        self._interp = load_interpreter(model_path, threads=threads)
        inp = self._interp.get_input_details()[0]
        self._in_index = inp["index"]
        self._in_dtype = inp["dtype"]
        self._in_quant = inp.get("quantization", (0.0, 0))
        self._out_index = self._interp.get_output_details()[0]["index"]
        self._groups: list[tuple[Probs | None, npt.NDArray[np.int64]]] = [
            (None, np.zeros(0, np.int64))
        ]
        self._recent: dict[tuple[Any, ...], Probs] = {}
        """The outputs for the last two inputs, shared with shallow copies: ``ScriptOcr``'s
        judge is a copy of the first joint model and reads each crop (plain and unfolded)
        just before that model reads it again as the Chinese expert."""
        self._unfold = True
        """Narrow crops are also read unfolded as two-row plates. Only Chinese plates have
        two rows, and an unfolded reading is kept only when it starts with a Chinese
        character, so a model restricted to Latin groups never unfolds."""

    def read(self, crop: npt.NDArray[Any]) -> OcrResult:
        """The most probable of ``read_candidates``."""
        return max(self.read_candidates(crop), key=lambda r: r.path_score)

    def read_candidates(self, crop: npt.NDArray[Any]) -> list[OcrResult]:
        """One reading per character group (``restrict``); narrow crops also unfolded."""
        return self.read_inputs(OcrInputs(crop))

    def read_inputs(self, inputs: OcrInputs) -> list[OcrResult]:
        """``read_candidates`` from a crop's inputs, which several models may share."""
        out = self._decode_groups(self.probs(inputs.plain))
        if self._unfold and inputs.narrow:
            two = self._decode_groups(self.probs(inputs.unfolded))
            for r in two:
                r.span = None  # the unfolded rows do not map back onto the crop's width
            out += [r for r in two if r.text and not r.text[0].isascii()]
        return out

    def probs(self, x: npt.NDArray[Any]) -> Probs:
        """Raw (T, classes) output for an already preprocessed (H, W) uint8 input."""
        key = (x.shape, x.dtype.str, x.tobytes())
        known = self._recent.get(key)
        if known is not None:
            return known
        if self._in_dtype == np.uint8:
            scale, zero = self._in_quant
            if scale and (abs(scale - 1.0) > 1e-6 or zero != 0):
                arr = np.clip(np.round(x / scale + zero), 0, 255).astype(np.uint8)
            else:
                arr = x.astype(np.uint8)
        else:
            arr = x.astype(np.float32)
        self._interp.set_tensor(self._in_index, arr[None, :, :, None])
        self._interp.invoke()
        out: Probs = np.asarray(self._interp.get_tensor(self._out_index))[0].astype(np.float32)
        if len(self._recent) >= 2:
            del self._recent[next(iter(self._recent))]
        self._recent[key] = out
        return out

    def restrict(
        self, groups: Sequence[tuple[str, str]], weights: Mapping[str, float] | None = None
    ) -> None:
        """Decode once per group of ``(chars, lead)``, e.g. one group per country.

        Only ``chars`` may appear in a group's reading, so a US plate is never read with a
        Chinese character. ``lead``: characters every plate of the group starts with
        (Chinese provinces); when the first one is missed, the most probable ``lead``
        character before the first decoded one is put back. ``weights``: characters whose
        probabilities are scaled before decoding (a prior, e.g. the provinces away from
        the checkpoint's own).
        """
        weights = weights or {}
        self._groups = []
        self._unfold = not groups or any(group_script(chars) == "cn" for chars, _ in groups)
        for chars, lead in groups:
            keep = np.zeros(len(self.alphabet) + 1, np.float32)
            keep[0] = 1.0
            for i, c in enumerate(self.alphabet):
                if c in chars:
                    keep[i + 1] = weights.get(c, 1.0)
            # The missed-lead repair only when one country is configured: with several, a
            # repaired reading would fit the Chinese format on any 6-character plate.
            if len(groups) > 1:
                lead = ""
            idx = np.array([i + 1 for i, c in enumerate(self.alphabet) if c in lead], np.int64)
            self._groups.append((keep, idx))
        if not self._groups:
            self._groups = [(None, np.zeros(0, np.int64))]

    def _decode_groups(self, raw: Probs) -> list[OcrResult]:
        return [self._decode(raw if m is None else raw * m, lead) for m, lead in self._groups]

    def _decode(self, probs: Probs, lead: npt.NDArray[np.int64]) -> OcrResult:
        result = ctc_decode(probs, self.alphabet)
        missed_lead = (
            len(lead) > 0
            and len(result.text) in (6, 7)  # a Chinese plate (7 or 8) without its province
            and self.alphabet.find(result.text[0]) + 1 not in lead
        )
        if missed_lead:
            first = int(np.argmax(probs.argmax(-1) != 0))
            if first > 0:
                window = probs[:first][:, lead]
                t, k = np.unravel_index(int(window.argmax()), window.shape)
                ch = self.alphabet[int(lead[k]) - 1]
                p = float(window[t, k])
                confs = [p, *result.char_confidences]
                result = OcrResult(
                    ch + result.text,
                    float(np.prod(confs) ** (1.0 / len(confs))),
                    confs,
                    [{ch: p}, *result.alternatives],
                    result.path_score,
                    (int(t) / len(probs), result.span[1]) if result.span else None,
                )
        return result


def fuse_readings(results: Sequence[OcrResult], top_k: int = 4) -> OcrResult:
    """One reading from several models' readings of the same crop.

    The readings of the length that most models read (ties: the length of the most
    confident reading) are fused character by character: each position's candidates are
    averaged over those models (a candidate a model did not list counts 0), and the most
    probable one is taken. Where no two readings share a length, or those that do agree,
    the most confident reading is kept as it is: characters cannot be paired when the
    lengths differ.
    """
    if not results:
        raise ValueError("no readings to fuse")
    by_length: dict[int, list[OcrResult]] = {}
    for r in results:
        if r.text and len(r.alternatives) == len(r.text):
            by_length.setdefault(len(r.text), []).append(r)
    group = max(
        by_length.values(), key=lambda rs: (len(rs), max(r.confidence for r in rs)), default=[]
    )
    if len(group) < 2:
        return max(results, key=lambda r: r.confidence)
    if all(r.text == group[0].text for r in group):
        return max(group, key=lambda r: r.confidence)
    return _fuse_equal_length(group, top_k)


def _fuse_equal_length(results: Sequence[OcrResult], top_k: int) -> OcrResult:
    n = len(results[0].text)
    chars: list[str] = []
    confs: list[float] = []
    alts: list[dict[str, float]] = []
    for i in range(n):
        mean: dict[str, float] = {}
        for r in results:
            cands = r.alternatives[i] or {r.text[i]: r.char_confidences[i]}
            for c, p in cands.items():
                mean[c] = mean.get(c, 0.0) + p / len(results)
        ranked = sorted(mean.items(), key=lambda cp: -cp[1])[:top_k]
        chars.append(ranked[0][0])
        confs.append(ranked[0][1])
        alts.append(dict(ranked))
    spans = [r.span for r in results if r.span is not None]
    span = (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None
    return OcrResult(
        "".join(chars),
        float(np.prod(confs) ** (1.0 / n)),
        confs,
        alts,
        float(np.mean([r.path_score for r in results])),
        span,
    )


class FusedOcr:
    """Several CTC models of the same script read every crop; ``fuse_readings`` makes one
    reading of theirs per character group.

    Two Latin models trained apart misread different plates (of the US dev crops only one
    of them was wrong on 108, both on 77), and where their readings have the same length
    the averaged character probabilities are right more often than either model alone.
    """

    def __init__(self, parts: Sequence[CtcTfliteOcr]) -> None:
        if len(parts) < 2:
            raise ValueError("a fused reader needs two models or more")
        self.parts = list(parts)
        self.name = "+".join(p.name for p in self.parts)
        self._groups = 1

    def restrict(
        self, groups: Sequence[tuple[str, str]], weights: Mapping[str, float] | None = None
    ) -> None:
        for p in self.parts:
            p.restrict(groups, weights)
        self._groups = max(len(groups), 1)

    def read_candidates(self, crop: npt.NDArray[Any]) -> list[OcrResult]:
        """Group by group, the models' readings fused. Each model reads the groups in the
        same order; the unfolded two-row readings that follow them (a model gives one only
        where it read Chinese text) are passed on as they are."""
        inputs = OcrInputs(crop)
        per_model = [p.read_inputs(inputs) for p in self.parts]
        n = min(self._groups, *(len(reads) for reads in per_model))
        fused = [fuse_readings([reads[i] for reads in per_model]) for i in range(n)]
        return fused + [r for reads in per_model for r in reads[n:]]

    def read(self, crop: npt.NDArray[Any]) -> OcrResult:
        return max(self.read_candidates(crop), key=lambda r: r.path_score)


def group_script(chars: str) -> str:
    """The script of a character group (``restrict``): ``cn`` when it has Chinese characters."""
    return "latin" if chars.isascii() else "cn"


class ScriptOcr:
    """Several CTC models, each for the scripts its manifest entry names (``countries``).

    A script belongs to the first listed model that reads it. When one of the models reads
    every configured script (a joint model), it is the judge: it reads each crop with all
    the character groups, as it would alone, and the reader takes the script of its best
    reading; if another model owns that script (``expert``), that model reads the crop
    again and its reading is the one kept. A model trained on one script knows nothing of
    the other, so its readings cannot be weighed against another model's: without a judge,
    every model's readings are offered side by side.

    When the joint models are several (``FusedOcr``), the first of them alone is the
    judge, and the fused group is the expert for the scripts it owns (Chinese): fused
    readings change the confidences that the judge's script choice and the scene's
    candidates are weighed by (US scenes end to end 69.4 -> 65.8 % with a fused judge),
    while a crop judged Chinese gains from the fusion as the Chinese crops alone do.
    An expert reads only its own script's groups, so it may put back a missed province.
    """

    def __init__(self, parts: Sequence[tuple[CtcTfliteOcr | FusedOcr, Sequence[str]]]) -> None:
        self.parts = [(ocr, frozenset(scripts)) for ocr, scripts in parts]
        self.name = "+".join(ocr.name for ocr, _ in self.parts)
        self._judge: CtcTfliteOcr | FusedOcr | None = None
        self._experts: dict[str, CtcTfliteOcr | FusedOcr] = {}
        self._active = [ocr for ocr, _ in self.parts]

    def restrict(
        self, groups: Sequence[tuple[str, str]], weights: Mapping[str, float] | None = None
    ) -> None:
        scripts = {group_script(c) for c, _ in groups}
        owner = {s: next((o for o, mine in self.parts if s in mine), None) for s in scripts}
        joint = next((o for o, mine in self.parts if scripts <= mine), None)
        if isinstance(joint, FusedOcr):
            # its first model judges with its own restriction; the interpreter is shared
            self._judge = copy.copy(joint.parts[0])
        else:
            self._judge = joint
        self._experts = {}
        self._active = []
        if self._judge is not None:
            self._judge.restrict(groups, weights)
            self._active = [self._judge]
        # with several groups and no judge, no model may repair a missed lead (see
        # CtcTfliteOcr.restrict); an expert reads only crops judged to be in its script
        keep_lead = len(groups) == 1 or self._judge is not None
        for ocr, _ in self.parts:
            if ocr is self._judge:
                continue
            mine = [
                (c, lead if keep_lead else "")
                for c, lead in groups
                if owner[group_script(c)] is ocr
            ]
            if not mine:
                continue
            ocr.restrict(mine, weights)
            if self._judge is None:
                self._active.append(ocr)
            else:
                self._experts.update((group_script(c), ocr) for c, _ in mine)

    def expert(self, script: str) -> CtcTfliteOcr | FusedOcr | None:
        """The model that re-reads crops the judge found in ``script`` (None: keep the judge's)."""
        return self._experts.get(script)

    def read_candidates(self, crop: npt.NDArray[Any]) -> list[OcrResult]:
        return [r for ocr in self._active for r in ocr.read_candidates(crop)]

    def read(self, crop: npt.NDArray[Any]) -> OcrResult:
        return max(self.read_candidates(crop), key=lambda r: r.path_score)


class FastPlateOcr:
    """Drop-in for fast-plate-ocr models (fixed slots, uint8 image input, NHWC).

    An ``.onnx`` file needs the optional ``onnxruntime`` package; a TFLite export
    (``.tflite``) runs on the TFLite runtime the detector already uses, so a box needs no
    second runtime. The plate config YAML beside the model gives the alphabet, pad
    character and input size; a TFLite model's own input shape is checked against it.
    """

    def __init__(self, model_path: Path, config_path: Path | None = None, threads: int = 1) -> None:
        if not model_path.is_file():
            raise DriverFault(f"model file {model_path} not found")
        cfg_path = config_path or plate_config_beside(model_path)
        cfg = parse_plate_config(cfg_path.read_text(encoding="utf-8")) if cfg_path else {}
        self.name = model_path.stem
        self.alphabet = str(cfg.get("alphabet", "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_"))
        self.pad = str(cfg.get("pad_char", "_"))
        self.height = int(cfg.get("img_height", 64))
        self.width = int(cfg.get("img_width", 128))
        self.rgb = str(cfg.get("image_color_mode", "rgb")).lower() == "rgb"
        if model_path.suffix.lower() == ".tflite":
            self._run = self._tflite(model_path, threads)
        else:
            self._run = self._onnx(model_path, threads)

    def _onnx(self, model_path: Path, threads: int) -> Callable[[npt.NDArray[Any]], Probs]:
        try:
            import onnxruntime as ort
        except ImportError:
            raise DriverFault(
                "fast-plate-ocr ONNX models need onnxruntime: pip install onnxruntime "
                "(or use the model's TFLite export)"
            ) from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(
            str(model_path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        name = sess.get_inputs()[0].name

        def run(img: npt.NDArray[Any]) -> Probs:
            return np.asarray(sess.run(None, {name: img[None]})[0])[0].astype(np.float32)

        return run

    def _tflite(self, model_path: Path, threads: int) -> Callable[[npt.NDArray[Any]], Probs]:
        from agent.vision.runtime import load_interpreter

        interp = load_interpreter(model_path, threads=threads)
        inp = interp.get_input_details()[0]
        out = interp.get_output_details()[0]
        want = [1, self.height, self.width, 3 if self.rgb else 1]
        got, gives = np.asarray(inp["shape"]).tolist(), np.asarray(out["shape"]).tolist()
        if got != want:
            raise DriverFault(
                f"model file {model_path} takes input {got}, but its plate config says "
                f"{want} (img_height, img_width, image_color_mode)"
            )
        if len(gives) != 3 or gives[-1] != len(self.alphabet):
            raise DriverFault(
                f"model file {model_path} gives output {gives}, not "
                f"[1, slots, {len(self.alphabet)}] for its plate config's alphabet"
            )
        in_dtype = inp["dtype"]
        out_scale, out_zero = out.get("quantization", (0.0, 0))

        def run(img: npt.NDArray[Any]) -> Probs:
            interp.set_tensor(inp["index"], img[None].astype(in_dtype))
            interp.invoke()
            raw = np.asarray(interp.get_tensor(out["index"]))[0]
            if out_scale:
                return ((raw.astype(np.float32) - out_zero) * out_scale).astype(np.float32)
            return raw.astype(np.float32)

        return run

    def restrict(
        self, groups: Sequence[tuple[str, str]], weights: Mapping[str, float] | None = None
    ) -> None:
        """Fixed-slot Latin models have nothing to restrict (their alphabet is A-Z0-9)."""

    def read_candidates(self, crop: npt.NDArray[Any]) -> list[OcrResult]:
        return [self.read(crop)]

    def read(self, crop: npt.NDArray[Any]) -> OcrResult:
        img = cv2.resize(crop, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        if self.rgb:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        else:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None]
        out = self._run(img)
        if not np.allclose(out.sum(axis=-1), 1.0, atol=1e-2):
            e = np.exp(out - out.max(axis=-1, keepdims=True))
            out = e / e.sum(axis=-1, keepdims=True)
        return slots_decode(out, self.alphabet, self.pad)


def plate_config_beside(model_path: Path) -> Path | None:
    """The fast-plate-ocr plate config beside a model file (``<stem>.plate_config.yaml``
    or ``<stem>_plate_config.yaml``), or None."""
    for cand in (
        model_path.with_suffix(".plate_config.yaml"),
        model_path.with_name(model_path.stem + "_plate_config.yaml"),
    ):
        if cand.is_file():
            return cand
    return None


def parse_plate_config(text: str) -> dict[str, str]:
    """The flat ``key: value`` pairs of a fast-plate-ocr plate config (no YAML library needed)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z_]+)\s*:\s*(.+?)\s*(#.*)?$", line)
        if m:
            out[m.group(1)] = m.group(2).strip().strip("'\"")
    return out
