"""Plate reading accuracy and speed on labelled folders, Outpost's models next to fast-plate-ocr.

Usage::

    .venv/bin/python bench/plates_eval.py [--data ../shared/data/plates-dev] [--limit N]

Folder formats (auto-detected): OpenALPR scenes (``NAME.txt`` beside each image:
``image x y w h PLATE``), crops with ``groundtruth.csv`` (``image,state,PLATE``), crops
named after their plate (``京PL3N67.jpg``). Prints exact-plate and character accuracy,
localisation recall and ms per image, per model, in one run.
"""

from __future__ import annotations

import argparse
import collections
import csv
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.plates.config import (
    DEFAULT_OCR_MODELS,
    FastPlateOcrConfig,
    OutpostOcrConfig,
    PlatesConfig,
)
from agent.plates.formats import fold, is_chinese, normalise
from agent.plates.localise import find_plates, iou
from agent.plates.reader import PlateReader

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp"}


@dataclass
class Sample:
    path: Path
    plate: str
    box: tuple[int, int, int, int] | None = None


@dataclass
class Score:
    n: int = 0
    exact: int = 0
    folded: int = 0
    chars: float = 0.0
    ms: list[float] = field(default_factory=list)
    found: int = 0
    misreads: collections.Counter[str] = field(default_factory=collections.Counter)
    """What went wrong: ``2→Z`` per character read as another in a reading of the right
    length, else ``one short``, ``one long``, ``length`` or ``nothing read``."""
    positions: collections.Counter[int] = field(default_factory=collections.Counter)
    """Per character position, how many readings of the right length got it wrong."""
    chinese: int = 0
    province: int = 0
    rest: int = 0
    """Of the Chinese plates (``is_chinese``): how many readings start with the plate's
    province, and how many read everything after it right (whatever the first character
    read): the two kinds of error on Chinese plates, apart."""

    def add(self, truth: str, got: str, ms: float) -> None:
        self.n += 1
        t, g = normalise(truth), normalise(got)
        self.exact += t == g
        self.folded += fold(t) == fold(g)
        self.chars += max(0.0, 1 - _lev(t, g) / max(len(t), 1))
        self.ms.append(ms)
        if is_chinese(t):
            self.chinese += 1
            self.province += g[:1] == t[0]
            self.rest += (g[1:] if is_chinese(g) else g) == t[1:]
        if t == g:
            return
        if not g:
            self.misreads["nothing read"] += 1
        elif len(t) == len(g):
            wrong = [i for i, (a, b) in enumerate(zip(t, g, strict=True)) if a != b]
            self.misreads.update(f"{t[i]}→{g[i]}" for i in wrong)
            self.positions.update(wrong)
        else:
            self.misreads[{-1: "one short", 1: "one long"}.get(len(g) - len(t), "length")] += 1


def _lev(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        prev = cur
    return prev[-1]


def imread(path: Path) -> np.ndarray:
    data = np.fromfile(str(path), np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot decode {path}")
    return img


def load_folder(folder: Path) -> tuple[str, list[Sample]]:
    """('scenes' | 'crops', samples) for one labelled folder."""
    gt = folder / "groundtruth.csv"
    if gt.is_file():
        rows = list(csv.reader(gt.open(encoding="utf-8")))
        return "crops", [
            Sample(folder / r[0], r[-1]) for r in rows if len(r) >= 2 and r[0] != "image"
        ]
    txts = sorted(folder.glob("*.txt"))
    if txts:
        out = []
        for t in txts:
            parts = t.read_text(encoding="utf-8").strip().split("\t")
            if len(parts) >= 6:
                x, y, w, h = (int(v) for v in parts[1:5])
                out.append(Sample(folder / parts[0], parts[5], (x, y, w, h)))
        return "scenes", out
    imgs = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXT)
    return "crops", [Sample(p, p.stem.split("_")[0]) for p in imgs]


def countries_for(folder: Path, option: str) -> list[str]:
    """``auto``: the country in the folder name (``…-cn-…`` / ``…-us-…``), else both."""
    if option != "auto":
        return option.split(",")
    parts = folder.name.split("-")
    found = [c for c in ("cn", "us") if c in parts]
    return found or ["cn", "us"]


def readers(args: argparse.Namespace, countries: list[str]) -> dict[str, PlateReader]:
    out: dict[str, PlateReader] = {}
    for name in args.models.split(","):
        cfg = PlatesConfig(
            model_dir=Path(args.model_dir),
            ocr=OutpostOcrConfig(model=name.split("+")),
            countries=countries,  # type: ignore[arg-type]
            home_provinces=list(args.home_provinces),
            finder=args.finder,
        )
        out[name] = PlateReader.from_config(cfg)
    fpo = Path(args.fast_plate_ocr)
    if fpo.is_file():
        try:
            cfg = PlatesConfig(
                model_dir=Path(args.model_dir),
                ocr=FastPlateOcrConfig(type="fast-plate-ocr", path=fpo),
                countries=countries,  # type: ignore[arg-type]
                finder=args.finder,
            )
            out["fast-plate-ocr"] = PlateReader.from_config(cfg)
        except Exception as exc:  # an optional baseline must not stop the run
            print(f"fast-plate-ocr baseline skipped: {exc}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="../shared/data/plates-dev")
    p.add_argument("--model-dir", default="models")
    p.add_argument(
        "--models",
        default=",".join(
            "+".join(n.removesuffix(suffix) for n in DEFAULT_OCR_MODELS) for suffix in ("", "-int8")
        ),
        help="comma-separated readers; a reader may join models with + (one per script)",
    )
    p.add_argument(
        "--fast-plate-ocr",
        default="../shared/models/fast_plate_ocr_cct_xs_v1_global.onnx",
        help="the baseline: a fast-plate-ocr .onnx or its .tflite export; 'none' to leave it out",
    )
    p.add_argument(
        "--countries", default="auto", help="format rules: auto (from the folder name) or cn,us"
    )
    p.add_argument(
        "--no-variants",
        dest="variants",
        action="store_false",
        help="read each crop once (default: best of crop, trimmed, padded)",
    )
    p.add_argument(
        "--home-provinces",
        default="",
        help="[plates] home_provinces for Outpost's models, e.g. 皖 (default: none)",
    )
    p.add_argument(
        "--finder",
        default=PlatesConfig().finder,
        choices=("both", "model", "classical"),
        help="[plates] finder: the trained finder's boxes and the classical localiser's, "
        "or either alone (default: the config's default)",
    )
    p.add_argument("--limit", type=int, default=0, help="first N samples of each folder")
    p.add_argument(
        "--errors", action="store_true", help="print misreads and the commonest kinds of misread"
    )
    args = p.parse_args(argv)
    root = Path(args.data)
    folders = (
        [root]
        if not any(d.is_dir() for d in root.iterdir())
        else sorted(d for d in root.iterdir() if d.is_dir())
    )
    print(
        f"{'set':<28}{'model':<26}{'n':>5}{'exact%':>8}{'fold%':>8}{'char%':>8}{'loc%':>7}{'ms':>8}"
    )
    for folder in folders:
        kind, samples = load_folder(folder)
        countries = countries_for(folder, args.countries)
        models = readers(args, countries)
        print(f"# {folder.name}: {kind}, countries {','.join(countries)}")
        if args.limit:
            samples = samples[: args.limit]
        images = [(s, imread(s.path)) for s in samples]
        for name, reader in models.items():
            crops = Score()
            for s, img in images:
                c = img if s.box is None else _gt_crop(img, s.box)
                t0 = time.perf_counter()
                read = reader.read_crop(c, variants=args.variants)
                crops.add(s.plate, read.text if read else "", (time.perf_counter() - t0) * 1000)
                if args.errors and read and normalise(read.text) != normalise(s.plate):
                    print(
                        f"  {name} {s.path.name}: {s.plate} -> {read.text} ({read.confidence:.2f})"
                    )
            label = f"{folder.name}{'(gt crop)' if kind == 'scenes' else ''}"
            _row(label, name, crops)
            if args.errors:
                _misreads(crops)
            if kind == "scenes":
                e2e = Score()
                for s, img in images:
                    t0 = time.perf_counter()
                    reads = reader.read_image(img)
                    ms = (time.perf_counter() - t0) * 1000
                    got = reads[0] if reads else None
                    e2e.add(s.plate, got.text if got else "", ms)
                    if args.errors and normalise(got.text if got else "") != normalise(s.plate):
                        seen = f"{got.text} ({got.confidence:.2f}) at {got.box}" if got else "-"
                        print(f"  {name} e2e {s.path.name}: {s.plate} -> {seen}, gt {s.box}")
                    assert s.box is not None
                    e2e.found += bool(got and iou(got.box, s.box) > 0.3)
                _row(f"{folder.name}(e2e)", name, e2e, loc=True)
                if args.errors:
                    _misreads(e2e)
        if kind == "scenes":
            # the localiser's 12 candidates (and a joined row), their text boxes and the
            # second search's boxes
            searches = {"localiser": lambda img: [c.box for c in find_plates(img)]}
            finder = next((r.finder for r in models.values() if r.finder is not None), None)
            if finder is not None:
                searches["finder"] = lambda img, f=finder: [b for b, _ in f.find(img)]
            for what, search in searches.items():
                best = []
                for s, img in images:
                    assert s.box is not None
                    best.append(max((iou(b, s.box) for b in search(img)), default=0.0))
                for floor in (0.3, 0.5, 0.7):
                    found = sum(b > floor for b in best)
                    print(
                        f"{folder.name:<28}{f'{what} recall, IoU {floor}':<26}{len(images):>5}"
                        f"{'':>24}{100 * found / max(len(images), 1):>7.1f}"
                    )
    return 0


def _gt_crop(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return img[max(y, 0) : y + h, max(x, 0) : x + w]


def _row(label: str, name: str, s: Score, loc: bool = False) -> None:
    n = max(s.n, 1)
    med = statistics.median(s.ms) if s.ms else 0.0
    locs = f"{100 * s.found / n:>7.1f}" if loc else f"{'':>7}"
    print(
        f"{label:<28}{name:<26}{s.n:>5}{100 * s.exact / n:>8.1f}{100 * s.folded / n:>8.1f}"
        f"{100 * s.chars / n:>8.1f}{locs}{med:>8.2f}"
    )
    if s.chinese:
        c = s.chinese
        print(
            f"  Chinese plates: province right {100 * s.province / c:.1f} %, "
            f"the rest right {100 * s.rest / c:.1f} %"
        )


def _misreads(s: Score, top: int = 12) -> None:
    print("  misreads: " + ", ".join(f"{k} {v}" for k, v in s.misreads.most_common(top)))
    if s.positions:
        at = ", ".join(f"{i + 1}: {n}" for i, n in sorted(s.positions.items()))
        print(f"  wrong characters by position (readings of the right length): {at}")


if __name__ == "__main__":
    raise SystemExit(main())
