"""The fast-plate-ocr drop-in: the real ONNX model from ../shared, its TFLite export where one
is at hand, and the clear errors a wrong file gives."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import cv2
import pytest

from agent.errors import DriverFault
from agent.plates.config import FastPlateOcrConfig, PlatesConfig
from agent.plates.ocr import FastPlateOcr
from agent.plates.reader import PlateReader
from tests.conftest import shared_path

ROOT = Path(__file__).resolve().parents[2]
FPO = "fast_plate_ocr_cct_xs_v1_global"
TFLITE_ENV = "OUTPOST_FPO_TFLITE"
"""A TFLite export of the shared model (docs/plates.md, *Drop-ins*: how to make one). It
cannot be made here without TensorFlow, nor committed (a third-party model), so the
comparison below runs only where it names a file."""


def _crops(n: int) -> list[tuple[Path, str]]:
    folder = shared_path("data", "plates-dev", "openalpr-us-crops")
    with (folder / "groundtruth.csv").open(encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r and r[0] != "image"]
    return [(folder / r[0], r[2]) for r in rows[:n]]


def _onnx() -> FastPlateOcr:
    pytest.importorskip("onnxruntime", reason="onnxruntime (the onnx extra) is not installed")
    return FastPlateOcr(shared_path("models", f"{FPO}.onnx"))


def test_onnx_drop_in_reads_us_crops() -> None:
    ocr = _onnx()
    crops = _crops(200)
    right = sum(ocr.read(cv2.imread(str(p))).text == plate for p, plate in crops)
    # measured 2026-12-06: 163 of the first 200 (613 of all 751, 81.6 %, as the model reads
    # alone; ../shared/models/README.md gives 80.6 % for its own pipeline)
    assert right >= 150


def test_onnx_drop_in_through_the_reader_config() -> None:
    _onnx()
    model = shared_path("models", f"{FPO}.onnx")
    cfg = PlatesConfig(
        ocr=FastPlateOcrConfig(type="fast-plate-ocr", path=model), countries=["us"]
    )
    reader = PlateReader.from_config(cfg)
    (path, plate), = _crops(1)
    read = reader.read_crop(cv2.imread(str(path)))
    assert read is not None and read.text == plate


def test_tflite_export_reads_as_the_onnx_model() -> None:
    named = os.environ.get(TFLITE_ENV)
    if not named:
        pytest.skip(f"{TFLITE_ENV} names no TFLite export of {FPO} (see docs/plates.md)")
    onnx = _onnx()
    tfl = FastPlateOcr(
        Path(named), shared_path("models", f"{FPO}.plate_config.yaml")
    )
    for path, _plate in _crops(100):
        img = cv2.imread(str(path))
        a, b = onnx.read(img), tfl.read(img)
        assert a.text == b.text, path.name
        assert abs(a.confidence - b.confidence) < 0.01, path.name


def _yaml(tmp_path: Path, height: int, width: int, mode: str) -> Path:
    path = tmp_path / "plate_config.yaml"
    path.write_text(
        "max_plate_slots: 9\n"
        "alphabet: '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_'\n"
        "pad_char: '_'\n"
        f"img_height: {height}\nimg_width: {width}\n"
        f"image_color_mode: {mode}\n",
        encoding="utf-8",
    )
    return path


def test_a_tflite_file_whose_input_is_not_the_configs_is_refused(tmp_path: Path) -> None:
    # a real TFLite file of another kind: Outpost's own CTC model (gray 32 x 128 input)
    model = ROOT / "models" / "outpost-plate-ocr-latin-int8.tflite"
    with pytest.raises(DriverFault, match=r"takes input \[1, 32, 128, 1\].*says \[1, 64, 128, 3\]"):
        FastPlateOcr(model, _yaml(tmp_path, 64, 128, "rgb"))


def test_a_tflite_file_whose_output_is_not_slots_of_the_alphabet_is_refused(
    tmp_path: Path,
) -> None:
    model = ROOT / "models" / "outpost-plate-ocr-latin-int8.tflite"
    with pytest.raises(DriverFault, match=r"gives output \[1, 32, 75\], not \[1, slots, 37\]"):
        FastPlateOcr(model, _yaml(tmp_path, 32, 128, "grayscale"))


def test_a_missing_model_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(DriverFault, match=r"nope\.tflite not found"):
        FastPlateOcr(tmp_path / "nope.tflite")


def test_the_config_beside_the_model_is_found(tmp_path: Path) -> None:
    model = tmp_path / "plates.tflite"
    shutil.copy(ROOT / "models" / "outpost-plate-ocr-latin-int8.tflite", model)
    _yaml(tmp_path, 32, 128, "grayscale").rename(tmp_path / "plates.plate_config.yaml")
    # found and read: its alphabet (37) is what the output (75) is checked against
    with pytest.raises(DriverFault, match=r"not \[1, slots, 37\]"):
        FastPlateOcr(model)


def test_the_conversion_tool_makes_a_tflite_that_reads_as_the_onnx(tmp_path: Path) -> None:
    pytest.importorskip("onnx2tf", reason="onnx2tf (the convert extra) is not installed")
    from training.fpo_tflite import compare, convert

    onnx = shared_path("models", f"{FPO}.onnx")
    _onnx()
    tflite = convert(onnx, tmp_path, 64, 128)
    shutil.copyfile(
        shared_path("models", f"{FPO}.plate_config.yaml"),
        tflite.with_suffix(".plate_config.yaml"),
    )
    crops = [p for p, _ in _crops(50)]
    same, gap = compare(onnx, tflite, crops)
    assert same == len(crops)
    assert gap < 0.01
