"""Resident memory that plate reading adds to a process (the vision worker's share).

Usage::

    .venv/bin/python bench/plates_rss.py [--model-dir models] [--countries cn,us]

Reads VmRSS after the imports (the baseline: OpenCV, numpy, the TFLite runtime), then
loads the configured plate models, reads a synthetic 1280×720 frame and a crop five times
each, and reads VmRSS again. Prints both and what the plates add.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.plates.config import PlatesConfig
from agent.plates.reader import PlateReader


def rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+)", status)
    return int(match.group(1)) / 1024 if match else 0.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model-dir", default="models")
    p.add_argument("--countries", default="cn,us")
    args = p.parse_args()
    base = rss_mb()
    cfg = PlatesConfig(model_dir=Path(args.model_dir), countries=args.countries.split(","))  # type: ignore[arg-type]
    reader = PlateReader.from_config(cfg)
    frame = np.full((720, 1280, 3), 120, np.uint8)
    cv2.putText(frame, "ABC1234", (500, 400), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 0, 0), 5)
    for _ in range(5):
        reader.read_image(frame)
        reader.read_crop(frame[350:420, 480:800], variants=True)
    after = rss_mb()
    print(f"baseline (imports) {base:.1f} MB; models loaded and read {after:.1f} MB; "
          f"plates add {after - base:.1f} MB ({after / base:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
