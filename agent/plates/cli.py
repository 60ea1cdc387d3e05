"""``outpost plates read IMAGE... [--json] [--crop]``: read plates in still images.

For installers (is the camera framing readable?) and for evaluation; prints one line per
image, JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from agent.errors import DriverFault
from agent.plates.config import FastPlateOcrConfig, OutpostOcrConfig, PlatesConfig
from agent.plates.reader import PlateReader


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="outpost plates", description="Plate reading tools.")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("read", help="read plates in images")
    r.add_argument("images", nargs="+", type=Path)
    r.add_argument("--json", action="store_true", help="one JSON object per line")
    r.add_argument("--crop", action="store_true", help="each image is already a plate crop")
    r.add_argument("--model-dir", type=Path, default=None, help="folder with manifest.json")
    r.add_argument(
        "--model", default=None, help="manifest name(s), comma-separated (default: [plates.ocr])"
    )
    r.add_argument(
        "--fast-plate-ocr",
        type=Path,
        default=None,
        help="use this fast-plate-ocr model instead (.onnx, or its .tflite export)",
    )
    r.add_argument("--roi", default=None, help="x,y,w,h to search instead of the whole image")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    cfg = PlatesConfig()
    updates: dict[str, object] = {}
    if args.model_dir:
        updates["model_dir"] = args.model_dir
    if args.fast_plate_ocr:
        updates["ocr"] = FastPlateOcrConfig(type="fast-plate-ocr", path=args.fast_plate_ocr)
    elif args.model:
        updates["ocr"] = OutpostOcrConfig(model=args.model.split(","))
    if args.roi:
        updates["roi"] = tuple(int(v) for v in args.roi.split(","))
    cfg = cfg.model_copy(update=updates)
    try:
        reader = PlateReader.from_config(cfg)
    except DriverFault as exc:
        print(f"outpost plates: {exc}", file=sys.stderr)
        return 2
    status = 0
    for path in args.images:
        img = (
            cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
            if path.is_file()
            else None
        )
        if img is None:
            print(f"outpost plates: cannot read image {path}", file=sys.stderr)
            status = 1
            continue
        t0 = time.perf_counter()
        if args.crop:
            one = reader.read_crop(img, variants=True)
            reads = [one] if one is not None and one.text else []
        else:
            reads = reader.read_image(img)
        ms = (time.perf_counter() - t0) * 1000
        plates = [
            {
                "text": r.text,
                "confidence": round(r.confidence, 3),
                "box": list(r.box),
                **({"colour": r.colour, "type": r.plate_type} if r.colour else {}),
            }
            for r in reads
        ]
        if args.json:
            out = {"image": str(path), "plates": plates, "ms": round(ms, 2)}
            print(json.dumps(out, ensure_ascii=False), flush=True)
        else:
            texts = ", ".join(f"{p['text']} ({p['confidence']:.2f})" for p in plates) or "-"
            print(f"{path}: {texts}  [{ms:.1f} ms]", flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
