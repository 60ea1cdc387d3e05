"""CTC and fixed-slot decoding, the fast-plate-ocr config parser, and the CLI's contract."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.plates import cli
from agent.plates.ocr import (
    OcrResult,
    ctc_decode,
    fuse_readings,
    parse_plate_config,
    slots_decode,
)

ALPHA = "AB1"


def _frames(seq: list[int], classes: int = 4, p: float = 0.9) -> np.ndarray:
    out = np.full((len(seq), classes), (1 - p) / (classes - 1), np.float32)
    for t, k in enumerate(seq):
        out[t, k] = p
    return out


def test_ctc_collapses_repeats_and_keeps_doubles_split_by_blank() -> None:
    probs = _frames([0, 1, 1, 0, 1, 2, 2, 0, 3, 0])
    probs[2, 1] = 0.95
    r = ctc_decode(probs, ALPHA)
    assert r.text == "AAB1"
    assert r.char_confidences[0] == pytest.approx(0.95)
    assert set(r.alternatives[0]) <= set(ALPHA)
    assert 0.89 < r.confidence < 0.95


def test_ctc_empty() -> None:
    r = ctc_decode(_frames([0, 0, 0]), ALPHA)
    assert (r.text, r.confidence, r.span) == ("", 0.0, None)


def test_ctc_span_runs_from_the_first_characters_frame_to_the_end_of_the_last() -> None:
    r = ctc_decode(_frames([0, 0, 1, 1, 0, 2, 0, 3, 3, 0]), ALPHA)
    assert r.text == "AB1"
    assert r.span == pytest.approx((0.2, 0.9))


def _reference_decode(probs: np.ndarray, alphabet: str, top_k: int = 4) -> tuple:
    """Greedy CTC decoding written frame by frame: what ``ctc_decode`` must agree with."""
    chars, confs, alts, prev, peak = [], [], [], 0, -1
    for t in range(len(probs)):
        k = int(np.argmax(probs[t]))
        if k and k != prev:
            chars.append(alphabet[k - 1])
            confs.append(float(probs[t, k]))
            peak = t
        elif k and k == prev and probs[t, k] > confs[-1]:
            confs[-1], peak = float(probs[t, k]), t
        if k and (k != prev or peak == t):
            order = [int(j) for j in np.argsort(probs[peak])[::-1][: top_k + 1] if j]
            cands = {alphabet[j - 1]: float(probs[peak, j]) for j in order}
            alts[len(chars) - 1 :] = [cands]
        prev = k
    return "".join(chars), confs, alts


def test_ctc_decode_agrees_with_a_frame_by_frame_decoder() -> None:
    """Random outputs, half of them on a coarse grid so that probabilities tie (as int8
    outputs do): same text, peaks' confidences and candidates."""
    rng = np.random.default_rng(7)
    alphabet = "0123456789ABCDEFGHIJ"
    for i in range(300):
        probs = rng.random((32, len(alphabet) + 1)).astype(np.float32)
        if i % 2:
            probs = np.round(probs * 4) / 4
        probs[:, 0] += rng.choice([0.0, 0.5], size=32)  # blanks between some characters
        got = ctc_decode(probs, alphabet)
        assert (got.text, got.char_confidences, got.alternatives) == _reference_decode(
            probs, alphabet
        )
        if got.text:
            mean = np.prod(got.char_confidences) ** (1 / len(got.text))
            assert got.confidence == pytest.approx(mean)


def _reading(
    text: str, alts: list[dict[str, float]], span: tuple[float, float] = (0.1, 0.9)
) -> OcrResult:
    confs = [max(a.values()) for a in alts]
    return OcrResult(text, float(np.prod(confs) ** (1 / len(confs))), confs, alts, -0.1, span)


def test_fused_readings_of_equal_length_average_each_characters_candidates() -> None:
    # model a is sure of Z at position 2, model b fairly sure of 2: the mean picks 2
    a = _reading("AZ1", [{"A": 0.99}, {"Z": 0.55, "2": 0.45}, {"1": 0.9, "I": 0.1}], (0.2, 0.8))
    b = _reading("A21", [{"A": 0.97}, {"2": 0.9, "Z": 0.1}, {"1": 0.95}], (0.1, 0.7))
    fused = fuse_readings([a, b])
    assert fused.text == "A21"
    assert fused.char_confidences == pytest.approx([0.98, 0.675, 0.925])
    assert fused.alternatives[1] == pytest.approx({"2": 0.675, "Z": 0.325})
    assert fused.confidence == pytest.approx((0.98 * 0.675 * 0.925) ** (1 / 3))
    assert fused.span == (0.1, 0.8)  # the text lies where either model saw it


def test_fused_readings_that_agree_or_differ_in_length_keep_the_most_confident() -> None:
    sure = _reading("AB12", [{"A": 0.99}, {"B": 0.99}, {"1": 0.99}, {"2": 0.99}])
    less = _reading("AB12", [{"A": 0.8}, {"B": 0.7}, {"1": 0.9}, {"2": 0.9}])
    assert fuse_readings([less, sure]) is sure
    short = _reading("B12", [{"B": 0.99}, {"1": 0.99}, {"2": 0.98}])
    assert fuse_readings([less, short]) is short
    assert fuse_readings([less, OcrResult("", 0.0)]) is less
    with pytest.raises(ValueError):
        fuse_readings([])


def test_three_readings_fuse_those_of_the_length_most_models_read() -> None:
    # the one-short reading is the most confident, but two models read four characters
    short = _reading("B12", [{"B": 0.99}, {"1": 0.99}, {"2": 0.99}])
    a = _reading("AB1Z", [{"A": 0.9}, {"B": 0.9}, {"1": 0.9}, {"Z": 0.6, "2": 0.4}])
    b = _reading("AB12", [{"A": 0.8}, {"B": 0.9}, {"1": 0.9}, {"2": 0.9, "Z": 0.1}])
    fused = fuse_readings([short, a, b])
    assert fused.text == "AB12"
    assert fused.char_confidences == pytest.approx([0.85, 0.9, 0.9, 0.65])
    # two that agree beat a third of another length; the surer of the two is kept
    assert fuse_readings([short, b, _reading("AB12", [{"A": 0.7}] * 4)]) is b
    # three lengths: nothing to pair, the most confident is kept
    assert fuse_readings([a, short, _reading("AB123", [{"A": 0.5}] * 5)]) is short


def test_slots_drop_pad() -> None:
    alpha = "AB_"
    r = slots_decode(_frames([0, 1, 2, 2], classes=3), alpha)
    assert r.text == "AB" and len(r.char_confidences) == 2


def test_plate_config_parser_reads_fast_plate_ocr_yaml() -> None:
    cfg = parse_plate_config(
        "# c\nmax_plate_slots: 9\nalphabet: '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_'\n"
        "pad_char: '_'\nimg_height: 64\nimage_color_mode: rgb\n"
    )
    assert cfg["alphabet"].endswith("Z_") and cfg["img_height"] == "64"
    assert cfg["pad_char"] == "_"


def test_cli_without_models_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.zeros((20, 60, 3), np.uint8))
    assert cli.main(["read", "--model-dir", str(tmp_path), str(img)]) == 2
    assert "manifest" in capsys.readouterr().err


MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.skipif(not (MODELS / "manifest.json").is_file(), reason="models/ not built")
def test_cli_prints_one_json_line_per_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(a), np.full((40, 120, 3), 255, np.uint8))
    cv2.imwrite(str(b), np.full((720, 1280, 3), 90, np.uint8))
    assert cli.main(["read", "--json", "--crop", str(a)]) == 0
    assert cli.main(["read", "--json", str(b), str(tmp_path / "missing.png")]) == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["image"] for x in lines] == [str(a), str(b)]
    for x in lines:
        assert set(x) == {"image", "plates", "ms"}
        for p in x["plates"]:
            assert {"text", "confidence", "box"} <= set(p) and len(p["box"]) == 4
