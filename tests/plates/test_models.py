"""The committed OCR models load, are small and fast, and meet floors on ../shared dev sets."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest

from agent.plates.config import OutpostOcrConfig, PlatesConfig
from agent.plates.formats import normalise
from agent.plates.reader import PlateReader

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
DEV = ROOT.parent / "shared" / "data" / "plates-dev"
needs_dev = pytest.mark.skipif(not DEV.is_dir(), reason="../shared/data/plates-dev is absent")

# Floors a little under the figures measured when the models were committed (docs/plates.md).
# (measured 2026-11-24 on the first 150 crops, int8, one read per crop: cn 70.7 %, us 64.0 %)
FLOORS = {"lprnet-cn-crops": ("cn", 0.66), "openalpr-us-crops": ("us", 0.59)}


def _manifest() -> dict[str, dict]:
    return {m["name"]: m for m in json.loads((MODELS / "manifest.json").read_text())["models"]}


def _reader(name: str, countries: list[str] | None = None) -> PlateReader:
    cfg = PlatesConfig(
        model_dir=MODELS,
        ocr=OutpostOcrConfig(model=name),
        countries=countries or ["cn", "us"],  # type: ignore[arg-type]
    )
    return PlateReader.from_config(cfg)


@pytest.mark.parametrize("name", ["outpost-plate-ocr", "outpost-plate-ocr-int8"])
def test_manifest_matches_files(name: str) -> None:
    entry = _manifest()[name]
    data = (MODELS / entry["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert len(data) <= 5 * 1024 * 1024
    assert entry["command"].startswith("python -m training.plates")


def test_int8_model_reads_a_crop_fast() -> None:
    reader = _reader("outpost-plate-ocr-int8")
    crop = np.full((40, 140, 3), 200, np.uint8)
    reader.read_crop(crop)
    t0 = time.perf_counter()
    for _ in range(20):
        reader.read_crop(crop)
    assert (time.perf_counter() - t0) / 20 < 0.02  # generous: shared CI cores


def _crops(folder: Path, limit: int) -> list[tuple[Path, str]]:
    gt = folder / "groundtruth.csv"
    if gt.is_file():
        rows = [ln.split(",") for ln in gt.read_text().splitlines() if ln and "," in ln]
        return [(folder / r[0], r[-1]) for r in rows][:limit]
    return [(p, p.stem) for p in sorted(folder.glob("*.jpg"))][:limit]


@needs_dev
@pytest.mark.parametrize("folder", sorted(FLOORS))
def test_dev_set_floor(folder: str) -> None:
    import cv2

    country, floor = FLOORS[folder]
    reader = _reader("outpost-plate-ocr-int8", [country])
    samples = _crops(DEV / folder, 150)
    ok = 0
    for path, plate in samples:
        img = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
        read = reader.read_crop(img)
        ok += read is not None and normalise(read.text) == normalise(plate)
    assert ok / len(samples) >= floor
