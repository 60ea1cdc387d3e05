"""Read plates from crops, still images and frames: localise, OCR, apply formats, colour.

``PlateReader`` holds one OCR back-end and the format rules; it keeps no per-track state
(voting lives in ``agent.plates.voting``, events in ``agent.plates.component``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy.typing as npt

from agent.errors import DriverFault
from agent.plates.colour import cn_plate_type, plate_colour
from agent.plates.config import FastPlateOcrConfig, PlatesConfig
from agent.plates.finder import PlateFinder
from agent.plates.formats import (
    CN_PROVINCES,
    COUNTRY_FORMATS,
    PREFERRED_FORMATS,
    PlateFormat,
    fit_reading,
    is_chinese,
)
from agent.plates.localise import Box, Candidate, crop, expand, iou, locate, with_text_boxes
from agent.plates.models import verify_plate_model
from agent.plates.ocr import (
    CtcTfliteOcr,
    FastPlateOcr,
    FusedOcr,
    OcrResult,
    PlateOcr,
    ScriptOcr,
    fuse_readings,
    group_script,
)
from agent.plates.preprocess import lean, upright
from agent.plates.voting import PlateRead

Image = npt.NDArray[Any]
CROP_MARGINS: tuple[tuple[float, float], ...] = ((0.1, 0.3), (0.04, 0.12))
"""Margins (fractions of width, height) added around a localised box before OCR; each is tried.
The bare box was a third margin until the localiser offered text boxes (below); with them
it gained nothing on the US dev scenes end to end and cost a fifth of the time."""
TEXT_MARGINS: tuple[tuple[float, float], ...] = ((0.1, 0.3), (0.0, 0.0))
"""Margins for a box cut to the text inside a candidate (``localise.text_box``): it is
already padded, and the bare box is the snug crop the models were trained on."""


SURE = 0.98
"""A candidate read at least this surely, in a configured format, is not read at its other
margins (the winner is read again at its refitted box in any case). On the toll-booth frames
this saved a tenth of the OCR reads (99.4 -> 91.1 per frame); US dev scenes end to end
unchanged with our models (78.8 %, and 75.2 % with both countries; 0.95 the same, 0.9
lost three); the fast-plate-ocr drop-in lost one (85.6 -> 85.1 %).

Once the winner so far is a reading this sure, in a format, without a penalty (not at the
frame's border, not letters only), the second search (``localise.locate``) is not run and
its boxes are not read: they are there for a plate the first search missed. A camera's
clock at the border reads as surely as a plate, so it does not count. On the toll-booth
frames (whole frame) that took the crops read per frame (``read_crop`` calls) from 29.9
to 24.2; US dev scenes end to end unchanged (78.8 %, 75.2 % with both countries; the
drop-in 84.7 %, before 4/L were confusable), and their time per scene 61.9 -> 50.8 ms."""


def _sure(read: PlateRead) -> bool:
    """Read at least ``SURE``, in a configured format."""
    return read.confidence >= SURE and read.format is not None


LEAN_MIN = 0.2
"""A crop read as a Chinese plate whose characters lean by at least this much (x per y,
``preprocess.lean``) is stood upright (``preprocess.upright``) and read again, variants and
all, and that reading replaces the first. The models read a leaning plate one way and the
same plate upright another, each as surely (a clear `M` as `Y` at 0.99): the data-set
crops are cut around plates seen from the side. Chinese dev crops (`countries` cn): 87.7 ->
89.3 %, the letters and digits after the province 93.7 -> 95.3 % right (88.7 % at 0.1 and
0.15). Latin plates are left as read: standing the US crops upright changed none of their
readings, and lost one scene's GT crop and two scenes end to end."""
JUDGE_ROOT = 3
"""With both countries, the judge's confidence caps the expert's reading as its cube root
(ninth session; its plain value before). The judge must read the crop at
``min_confidence`` before the expert is asked at all (``need``), so the cap does not
decide whether text on a truck is a plate; it ranks a scene's candidates and decides what
is sure (``SURE``), and there a judge less sure of a US plate than the Latin models turned
real plates away. US dev scenes end to end with both countries 79.7 -> 81.1 % (`91A4ZA`,
`4PCI264`, `N359973` gained, none lost; 80.6 % with the square root), against 81.5 %
with US plates alone; US crops with both countries 88.1 % and Chinese crops 90.0 %, as
before. A crop's variants still choose their script by the plain cap (``script_key``):
with the softened one a variant that lost the province won (Chinese crops 89.7 %). On
the toll-booth frames (whole frame and lane ROI, every third frame, a /tmp script) the
readings at 0.8 or more were as many (113 and 35), with no new junk text among them."""
CANDIDATE_FLOOR = 0.5
"""A candidate whose first margin reads below this is dropped without reading the others.
Most of the localiser's candidates are not plates; on the toll-booth frames this took the
median time per frame from 5.1-5.6 to 3.9-4.2 times the localiser's, for 1 of 222 US dev
scenes (59.9 -> 59.5 % end to end; a floor of 0.3 lost none and saved half as much)."""


def needed_scripts(cfg: PlatesConfig) -> set[str]:
    """``cn`` and/or ``latin``: what the configured countries and formats are written in."""
    out = {"cn" if c == "cn" else "latin" for c in cfg.countries}
    out.update(group_script(f.pattern) for f in cfg.formats)
    return out


def load_ocr(cfg: PlatesConfig) -> PlateOcr:
    """The configured OCR back-end; ``DriverFault`` names what is missing.

    Of Outpost's models, those whose scripts the configured countries need are loaded (a
    manifest entry without ``countries`` reads both). Models listed for the same scripts
    are read together and their readings fused (``FusedOcr``).
    """
    if isinstance(cfg.ocr, FastPlateOcrConfig):
        return FastPlateOcr(cfg.ocr.path, cfg.ocr.config, threads=cfg.threads)
    needed = needed_scripts(cfg)
    groups: list[tuple[list[CtcTfliteOcr], list[str]]] = []
    covered: set[str] = set()
    for name in cfg.ocr.names:
        path, entry = verify_plate_model(Path(cfg.model_dir), name)
        scripts = list(entry.get("countries") or ("cn", "latin"))
        models = next((m for m, s in groups if set(s) == set(scripts)), None)
        if models is None and needed.intersection(scripts) - covered:
            models = []
            groups.append((models, scripts))
            covered.update(scripts)
        if models is not None:
            models.append(CtcTfliteOcr(path, entry, threads=cfg.threads))
    missing = needed - covered
    if missing:
        raise DriverFault(
            f"plates.ocr.model {cfg.ocr.names}: no model reads {'/'.join(sorted(missing))} "
            "plates (manifest 'countries')"
        )
    parts = [(models[0] if len(models) == 1 else FusedOcr(models), s) for models, s in groups]
    return parts[0][0] if len(parts) == 1 else ScriptOcr(parts)


def load_finder(cfg: PlatesConfig) -> PlateFinder | None:
    """The trained plate finder where ``finder`` asks for it (``DriverFault`` when its file
    is missing or corrupt), else None."""
    if cfg.finder == "classical":
        return None
    path, _entry = verify_plate_model(Path(cfg.model_dir), cfg.finder_model)
    return PlateFinder(path, threads=cfg.threads)


FINDER_NEW = 0.7
"""Beside the classical search, a finder's box that one of its boxes overlaps by this much
(IoU) is not read: that part of the picture has been read already. On the toll-booth lane
ROI this took 58.1 / 63.7 to 56.6 / 57.2 ms a frame (median, twice), and the US dev scenes
gained `FD7U4U`, a plate in the frame's corner read `7U4U` when the finder's overlapping
box was read too (81.5 -> 82.0 %; at 0.5: 81.5 %)."""

LENGTH_BONUS = 0.02
"""A scene's candidate readings gain this much score per character. Where the localiser
gave both a part of a plate and the whole (a character group, and the row it belongs to),
both read near 1.0, and the part won on its tighter box (`2881` for `CC2881`; `NR374` for
`XNR374` where a frame hid the edge). US dev scenes end to end: 67.1 -> 68.9 %; 0.04
gained nothing more. Only letters and digits count, so that with both countries
configured a province does not make a Chinese reading of a US plate the longer one (no
dev figure changed with this: 63.5 % either way with both countries)."""
EDGE_PENALTY = 0.8
"""A candidate whose box touches the image's border scores this much less: a camera's
clock or a photographer's watermark sits in a corner (three US dev scenes were won by
one), and a plate cut by the border cannot be read whole anyway (+0.5 points; 0.6 the same)."""

WORD_PENALTY = 0.85
"""A scene's candidate that reads letters only (no digit) scores this much less: signs and
dealer frames (`PRIVATE`, `RESIDENT`) read as confidently as a plate does."""


def _touches_edge(box: Box, shape: tuple[int, ...]) -> bool:
    x, y, w, h = box
    return x <= 1 or y <= 1 or x + w >= shape[1] - 1 or y + h >= shape[0] - 1


def crop_variants(image: Image) -> list[tuple[Image, int]]:
    """The crop, trimmed by 4 %/6 % and padded by the same (edge pixels repeated), each with
    the x of its left edge in the crop's own coordinates."""
    h, w = image.shape[:2]
    dx, dy = int(w * 0.04), int(h * 0.06)
    out = [(image, 0)]
    if dx and dy:
        out.append((image[dy : h - dy, dx : w - dx], dx))
        out.append((cv2.copyMakeBorder(image, dy, dy, dx, dx, cv2.BORDER_REPLICATE), -dx))
    return out


REFIT_PAD = 1.0
"""Margin, in character pitches, left beside the text when a box is cut again to fit it."""
REFIT_EDGE = 1 / 32
"""Text that starts or ends this close (fraction of the width) to a box's side may run on
past it: the refitted box reaches two pitches further on that side."""


def refit_box(box: Box, span: tuple[float, float], chars: int, shape: tuple[int, ...]) -> Box:
    """``box`` cut again around the text that a reading found in it (``span``: fractions of
    the box's width), with ``REFIT_PAD`` pitches beside it, clamped to the image."""
    x, y, w, h = box
    x0, x1 = span[0] * w, span[1] * w
    pitch = (x1 - x0) / max(chars, 1)
    if span[0] <= REFIT_EDGE:
        x0 -= 2 * pitch
    if span[1] >= 1 - REFIT_EDGE:
        x1 += 2 * pitch
    left = max(0, int(x + x0 - REFIT_PAD * pitch))
    right = min(int(shape[1]), int(x + x1 + REFIT_PAD * pitch))
    return (left, y, max(right - left, 1), h)


def surest_latin(reads: Sequence[tuple[PlateRead, OcrResult]]) -> PlateRead:
    """Of a crop's variants' Latin readings (each with the OCR result it came from), one
    that fits a format before one that does not, then the one its own model read most
    surely (``OcrResult.confidence``); of readings as sure, one in a layout that many
    plates follow (``PlateFormat.prefer``), then the longer.

    The int8 models' confidences saturate (0.996), so ties are common: `6LIK27L` against
    `6LIK274`, `MS301` against `LMS301` (the second of each in a preferred layout), `SQUA`
    against `SQUAW` (a trimmed variant lost the last letter). US dev crops 87.7 -> 88.1 %,
    the scenes' GT crops 84.7 -> 85.1 %; none read worse. Preferring the layout over a
    margin of confidence as well (0.005 or more) lost scenes (GT crops 84.7 -> 84.2 %).

    With both countries a reading's confidence is capped by the judge's: that is for
    ``min_confidence`` to weigh, and for choosing the script (a Latin reading of a Chinese
    plate can be surer to the Latin models than the Chinese one to the joint ones). Chosen
    by the capped confidence, the US dev crops read 86.4 % and the scenes' GT crops 80.2 %
    with both countries, against 87.0 and 82.4 % with US plates alone; by the model's own,
    as with US plates alone. Choosing every variant so, Chinese ones too, lost two Chinese
    crops to Latin readings (`AJU21`)."""
    return max(
        reads,
        key=lambda rr: (
            rr[0].format is not None,
            rr[1].confidence,
            rr[0].format in PREFERRED_FORMATS,
            len(rr[0].text),
        ),
    )[0]


class PlateReader:
    """OCR plus plate rules: turns pixels into ``PlateRead`` values."""

    def __init__(
        self,
        ocr: PlateOcr,
        formats: dict[str, list[PlateFormat]] | None = None,
        min_confidence: float = 0.5,
        strict_formats: bool = False,
        roi: Box | None = None,
        min_chars: int = 4,
        weights: dict[str, float] | None = None,
        dim_search: bool = True,
        finder: PlateFinder | None = None,
        classical: bool = True,
    ) -> None:
        self.ocr = ocr
        self.dim_search = dim_search
        self.finder = finder
        """The trained plate finder: its boxes are read after the classical localiser's
        where those gave no sure reading (or alone, without ``classical``)."""
        self.classical = classical or finder is None
        """Search with the classical localiser too (without a finder, always)."""
        self.formats = formats if formats is not None else dict(COUNTRY_FORMATS)
        self.min_confidence = min_confidence
        self.strict_formats = strict_formats
        self.roi = roi
        self.min_chars = min_chars
        groups = []
        for country, fmts in self.formats.items():
            chars = "".join(sorted({c for f in fmts for pos in f.positions for c in pos}))
            groups.append((chars, CN_PROVINCES + "使领" if country == "cn" else ""))
        ocr.restrict(groups, weights)

    @classmethod
    def from_config(cls, cfg: PlatesConfig) -> PlateReader:
        formats: dict[str, list[PlateFormat]] = {c: list(COUNTRY_FORMATS[c]) for c in cfg.countries}
        for f in cfg.formats:
            formats.setdefault("custom", []).append(PlateFormat(f.name, f.pattern, f.kind))
        return cls(
            load_ocr(cfg),
            formats,
            cfg.min_confidence,
            cfg.strict_formats,
            cfg.roi,
            cfg.min_chars,
            cfg.province_weights(),
            cfg.dim_search,
            load_finder(cfg),
            cfg.finder != "model",
        )

    # ------------------------------------------------------------------ crops

    def read_crop(
        self,
        image: Image,
        box: Box | None = None,
        variants: bool = False,
        need: float = 0.0,
        plain: bool = True,
    ) -> PlateRead | None:
        """Read one plate crop (already cut to the plate). None when nothing is legible.

        ``variants``: also read the crop slightly trimmed and slightly padded and keep the
        most confident reading (a hand-cut crop's margins are rarely what the model saw in
        training; +3.7 points on the US dev crops for 3× the OCR time). ``need``: the
        confidence a reading must reach to be of use; a judged reading below it is
        returned without the expert's second read (it could only lower the confidence).
        ``plain=False``: leave out the crop as cut (its reading is already known), read only
        the variants. With ``variants``, a Chinese plate whose characters lean (``lean``,
        at least ``LEAN_MIN``) is read again stood upright, and that reading is kept if it
        is Chinese too.
        """
        if image.size == 0 or image.shape[0] < 6 or image.shape[1] < 12:
            return None
        read = self._read_text(image, variants, need, plain)
        if variants and read is not None and is_chinese(read.text):
            by = lean(image)
            if abs(by) >= LEAN_MIN:
                again = self._read_text(upright(image, by), variants, need, True)
                if again is not None and is_chinese(again.text):
                    read = again
        if read is None:
            return None
        if is_chinese(read.text):  # colour and type for the reading kept, not every one weighed
            read.colour = plate_colour(image) if image.ndim == 3 else ""
            read.plate_type = cn_plate_type(read.text, read.colour)
        if box is not None:
            read.box = box
        else:
            read.box = (0, 0, int(image.shape[1]), int(image.shape[0]))
        return read

    def _read_text(
        self, image: Image, variants: bool, need: float, plain: bool
    ) -> PlateRead | None:
        """``read_crop``'s reading of the crop as it stands (its variants', fused for a
        Chinese plate), without colour and box."""
        crops = crop_variants(image) if variants else [(image, 0)]
        if not plain:
            crops = crops[1:]
            if not crops:
                return None
        width = image.shape[1]
        # each variant's reading, the OCR result it came from, and its confidence capped at
        # the judge's own (without a judge, its confidence)
        best: list[tuple[PlateRead, OcrResult, float]] = []
        for c, left in crops:
            one, raw = self._best_of(self.ocr.read_candidates(c))
            capped = one.confidence
            if isinstance(self.ocr, ScriptOcr):
                expert = self.ocr.expert("cn" if is_chinese(one.text) else "latin")
                if expert is not None and one.confidence >= need:
                    # the expert's text, with the confidence of the less sure model (the
                    # judge's softened, ``JUDGE_ROOT``): a reading needs both to pass
                    # min_confidence (text on a truck's side reads near 1.0 to a
                    # Latin-only model, not to the joint one)
                    judged = one.confidence
                    one, raw = self._best_of(expert.read_candidates(c))
                    capped = min(one.confidence, judged)
                    one.confidence = min(one.confidence, judged ** (1 / JUDGE_ROOT))
            if one.span is not None:  # into the crop's own coordinates
                cw = c.shape[1]
                one.span = ((left + one.span[0] * cw) / width, (left + one.span[1] * cw) / width)
            best.append((one, raw, capped))

        def script_key(variant: tuple[PlateRead, OcrResult, float]) -> tuple[bool, float]:
            """The script is chosen by the confidence capped at the judge's own (a Latin
            reading of a crop that lost its province is surer to the Latin models than the
            whole plate is to the joint ones: `AJU21` for `皖AJU215`)."""
            read, _, capped = variant
            return read.format is not None, capped

        read = max(best, key=script_key)[0]
        chinese = [v for v in best if is_chinese(v[0].text)]
        if not is_chinese(read.text) and any(
            r.format is not None and r.text[1:] == read.text for r, _, _ in chinese
        ):
            # a variant that cut the province off read the rest as a Latin plate, more
            # surely than the variants that kept it read the whole
            read = max(chinese, key=script_key)[0]
        if not is_chinese(read.text):
            read = surest_latin([(r, raw) for r, raw, _ in best if not is_chinese(r.text)])
        elif len(chinese) > 1:
            read = self._fuse_variants([(r, raw) for r, raw, _ in chinese])
        return read

    def _best_of(self, results: list[OcrResult]) -> tuple[PlateRead, OcrResult]:
        """The country reading whose path is most probable, and the OCR result it came
        from; one that fits a configured format beats one that does not.

        A Chinese reading whose text after the province is a Latin reading of the same
        crop that fits a format counts as fitting too: the two read the same characters,
        and the path tells whether a province stands before them (a Chinese plate read
        one character short, ``皖A7704``, is no Chinese format, but ``A7704`` is a US one).
        """
        reads = [(self._finish(r), r) for r in results]
        latin = {r.text for r, _ in reads if r.format is not None and not is_chinese(r.text)}

        def fits(read: PlateRead) -> bool:
            return read.format is not None or (is_chinese(read.text) and read.text[1:] in latin)

        return max(reads, key=lambda rr: (fits(rr[0]), rr[1].path_score))

    def _fuse_variants(self, reads: list[tuple[PlateRead, OcrResult]]) -> PlateRead:
        """One reading of a Chinese plate from its crop variants' readings, fused character
        by character (``fuse_readings``): a Chinese plate's characters sit at fixed places,
        so the variants' readings line up, and a province that each variant was unsure of
        is read from all of them (Chinese dev crops 85.7 -> 87.7 %; on the US crops, whose
        lengths vary, fusing lost 5 plates, so Latin readings keep the most confident)."""
        fused = fuse_readings([raw for _, raw in reads])
        out = self._finish(fused)
        # no surer than the surest variant (whose confidence carries the judge's cap)
        out.confidence = min(fused.confidence, max(r.confidence for r, _ in reads))
        spans = [r.span for r, _ in reads if r.span is not None]
        out.span = (min(a for a, _ in spans), max(b for _, b in spans)) if spans else None
        return out

    def _finish(self, result: OcrResult) -> PlateRead:
        """The reading fitted to the configured formats (colour and type: ``read_crop``)."""
        fitted = fit_reading(result.text, result.alternatives, self.formats)
        return PlateRead(
            text=fitted.text,
            confidence=result.confidence,
            char_confidences=list(result.char_confidences),
            format=fitted.format,
            span=result.span,
        )

    def acceptable(self, read: PlateRead | None) -> bool:
        if read is None or len(read.text) < self.min_chars or read.confidence < self.min_confidence:
            return False
        return read.format is not None or not self.strict_formats

    # ------------------------------------------------------------------ scenes

    def read_image(
        self, image: Image, regions: Sequence[Box] | None = None, finder: bool = True
    ) -> list[PlateRead]:
        """Find and read plates: at most one per region (vehicle box), or one in the ROI/frame.

        ``finder=False``: beside the classical search, leave the trained finder out this
        time (a video reads it on some frames only: ``PlateTap``); alone it always runs."""
        if regions is None or len(regions) == 0:
            regions = (
                [self.roi] if self.roi is not None else [(0, 0, image.shape[1], image.shape[0])]
            )
        out: list[PlateRead] = []
        for region in regions:
            best = self._best_in_region(image, region, finder)
            if best is not None:
                out.append(best)
        return out

    def _best_in_region(self, image: Image, region: Box, finder: bool = True) -> PlateRead | None:
        best: PlateRead | None = None
        best_score = 0.0
        if self.classical:
            first, second = locate(image, region, extra=None if self.dim_search else 0)
        else:  # the finder's boxes alone, ranked by its probabilities
            first, second = self._found(image, region, scored=True), list
        top = max((c.score for c in first), default=1.0) or 1.0
        settled = False  # the winner so far is sure, fits a format and has no penalty
        from_finder = False  # the winner so far is a finder's box beside the classical ones
        fallback: PlateRead | None = None  # the best of the classical search's boxes
        fallback_score = 0.0

        def candidates() -> Iterator[Candidate]:
            yield from first
            # the finder's boxes (beside the classical search's) and the second search are
            # for a plate the first search missed: each is run, and its boxes read, only
            # while the winner is unsettled
            later: list[Callable[[], list[Candidate]]] = [second]
            if self.classical and self.finder is not None and finder:
                later.insert(0, lambda: self._found(image, region, scored=False, known=first))
            for search in later:
                if settled:
                    return
                for cand in search():
                    if settled:
                        return
                    yield cand

        for cand in candidates():
            margins = CROP_MARGINS if cand.parent is None else TEXT_MARGINS
            for i, (fx, fy) in enumerate(margins):
                box = expand(cand.box, fx, fy, image.shape)
                read = self.read_crop(crop(image, box), box, need=self.min_confidence)
                if i == 0 and (read is None or read.confidence < CANDIDATE_FLOOR):
                    break  # not a plate: its other margins are not read
                if not self.acceptable(read):
                    continue
                assert read is not None
                fits = 1.0 if read.format else 0.6
                # (a second-search box's score is not on the first search's scale)
                score = read.confidence * fits * (0.9 + 0.1 * min(cand.score / top, 1.0))
                score *= 1 + LENGTH_BONUS * sum(c.isascii() for c in read.text)
                penalty = 1.0
                if _touches_edge(cand.found, image.shape):
                    penalty *= EDGE_PENALTY
                if read.text.isascii() and read.text.isalpha():
                    penalty *= WORD_PENALTY
                score *= penalty
                sure = _sure(read)
                if score > best_score:
                    best, best_score = read, score
                    settled = sure and penalty == 1.0
                    from_finder = cand.finder and self.classical
                if not cand.finder and score > fallback_score:
                    fallback, fallback_score = read, score
                if sure:
                    break  # sure enough: its other margins are not read
        if best is None:
            return None
        final = self._refit(image, best)
        if from_finder and not _sure(final):
            # beside the classical search, a finder's box must read surely in the end: it
            # also finds signs and lettering, read as plates at 0.8-0.9
            return self._refit(image, fallback) if fallback is not None else None
        return final

    def _found(
        self, image: Image, region: Box, scored: bool, known: Sequence[Candidate] = ()
    ) -> list[Candidate]:
        """The trained finder's boxes in ``region``, each with its box cut to its text, but
        for those that a box in ``known`` (the classical search's, already read) overlaps
        by ``FINDER_NEW`` or more. ``scored``: ranked by the finder's probabilities; else
        scored 0, below every box of the classical search (whose scores rank a scene's
        candidates), so that where both find a plate a tie between their readings goes to
        the classical box."""
        assert self.finder is not None
        found = [
            (b, p)
            for b, p in self.finder.find(image, region)
            if all(iou(b, k.box) < FINDER_NEW for k in known)
        ]
        found_boxes = [Candidate(b, p if scored else 0.0, finder=True) for b, p in found]
        return with_text_boxes(image, found_boxes)

    def _refit(self, image: Image, read: PlateRead) -> PlateRead:
        """Read the winning candidate again, at its own box and at the box cut to fit the
        text that the reading found, each with the crop variants (trimmed and padded);
        keep the reading whose text the readings agree on most (the summed confidence of
        the readings of each text; one that fits a format before one that does not), the
        most confident of that text.

        The localiser's boxes often hold a plate's frame, a sticker or the car around it
        (extra characters) or only part of the plate (missing ones); where the model saw
        the text tells how to cut the box (+3.1 points end to end on the US dev scenes).
        The variants, read for the winner only, took off frame edges and logos that the
        plain crops had read as characters (+4.1 points; four more OCR passes a region).
        Of the three readings (as found, at its own box, at the fitted box) the most
        confident one had been kept: with both countries a re-read that a variant alone
        read wrong, near 1.0 (`4YE132` at 0.99 against `AYE132` at 0.94 and 0.96), won over
        the two that agreed. By agreement: US dev scenes end to end with both countries
        77.0 -> 78.4 %; with US plates alone 80.2 % either way, and the fast-plate-ocr
        drop-in 85.6 % either way.
        """
        boxes = [(read.box, False)]  # the winner's own box as cut is ``read`` itself
        if read.span is not None and len(read.text) >= 2:
            fitted = refit_box(read.box, read.span, len(read.text), image.shape)
            if fitted != read.box:
                boxes.append((fitted, True))
        reads = [read]
        for box, plain in boxes:
            again = self.read_crop(
                crop(image, box), box, variants=True, need=self.min_confidence, plain=plain
            )
            if again is not None and self.acceptable(again):
                reads.append(again)
        agreed: dict[str, float] = {}
        for r in reads:
            agreed[r.text] = agreed.get(r.text, 0.0) + r.confidence
        return max(reads, key=lambda r: (r.format is not None, agreed[r.text], r.confidence))
