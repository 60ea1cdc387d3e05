"""Plate reading time per video frame (issue #6: ≤ 60 ms per 1280×720 frame, end to end).

Usage::

    .venv/bin/python bench/plates_frame.py [--video ../shared/data/video/tollbooth_720p.mp4]
        [--every 6] [--roi X,Y,W,H]

Decodes the video, and for every ``--every``-th frame times ``PlateReader.read_image``
(localise, crop margins, OCR, formats) on the whole frame and on the ROI. The baseline in
the same run is the localiser alone on the same frames; the ratio shows what reading adds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.plates.config import PlatesConfig
from agent.plates.localise import Box, find_plates
from agent.plates.reader import PlateReader


def frames(video: Path, every: int) -> list[object]:
    cap = cv2.VideoCapture(str(video))
    out = []
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        i += 1
        if i % every == 0:
            out.append(frame)
    cap.release()
    return out


def summary(ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return f"median {statistics.median(ms):6.1f} ms  p95 {p95:6.1f} ms  max {ms[-1]:6.1f} ms"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--video", default="../shared/data/video/tollbooth_720p.mp4")
    p.add_argument("--every", type=int, default=6)
    p.add_argument("--roi", default="0,120,1280,600")
    args = p.parse_args()
    video = Path(args.video)
    if not video.is_file():
        print(f"no video at {video} (../shared is needed)")
        return 2
    roi: Box = tuple(int(v) for v in args.roi.split(","))  # type: ignore[assignment]
    shots = frames(video, args.every)
    h, w = shots[0].shape[:2]  # type: ignore[attr-defined]
    print(f"{video.name}: {len(shots)} frames of {w}x{h}, every {args.every}th")
    for label, region in (("whole frame", None), (f"roi {args.roi}", roi)):
        reader = PlateReader.from_config(PlatesConfig(roi=region))
        reader.read_image(shots[0])  # load the model, warm the interpreter
        whole: Box = (0, 0, w, h)
        base, total, plates = [], [], 0
        for f in shots:
            t0 = time.perf_counter()
            find_plates(f, region or whole)  # type: ignore[arg-type]
            base.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            plates += len(reader.read_image(f))  # type: ignore[arg-type]
            total.append((time.perf_counter() - t0) * 1000)
        ratio = statistics.median(total) / statistics.median(base)
        print(f"{label:22s} localise only (baseline): {summary(base)}")
        print(f"{label:22s} read_image, end to end:   {summary(total)}  = {ratio:.1f}x baseline;"
              f" {plates} readings (goal: median <= 60 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
