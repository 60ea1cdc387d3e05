"""Plate reading time per video frame (issue #6: ≤ 60 ms per 1280×720 frame, end to end).

Usage::

    .venv/bin/python bench/plates_frame.py [--video ../shared/data/video/tollbooth_720p.mp4]
        [--every 6] [--roi X,Y,W,H] [--dim-search off] [--finder classical,both]
        [--finder-every 1,3]

Decodes the video, and for every ``--every``-th frame times ``PlateReader.read_image``
(localise, crop margins, OCR, formats) on the whole frame and on the ROI. The baseline in
the same run is the localiser alone on the same frames; the ratio shows what reading adds.

With ../shared's COCO SSD model (``--shared``) it also times what a camera with the detector
does: the detector on the frame (as one region), then plates read only inside its vehicle
boxes, on the frames where it finds at least one vehicle.

``--finder``: one or more ``[plates] finder`` settings, timed one after another in the same
run (``classical,both``: without the trained finder, then with it). ``--finder-every``: one
or more ``[plates] finder_every`` settings, each timed with each ``--finder`` (as a camera's
``PlateTap`` does, the finder beside the classical search is run on every Nth timed frame).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
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
    p.add_argument("--shared", type=Path, default=Path("../shared"))
    p.add_argument(
        "--dim-search",
        choices=("on", "off"),
        default="on",
        help="[plates] dim_search (on: the default, the localiser's second search for dim plates)",
    )
    p.add_argument(
        "--finder",
        default=PlatesConfig().finder,
        help="[plates] finder settings to time in turn, comma-separated "
        "(both, model, classical; default: the config's default)",
    )
    p.add_argument(
        "--finder-every",
        default=str(PlatesConfig().finder_every),
        help="[plates] finder_every settings to time in turn, comma-separated (default: "
        "the config's default)",
    )
    args = p.parse_args()
    everies = [int(v) for v in args.finder_every.split(",")]
    finders = [(f, n) for f in args.finder.split(",") for n in everies]
    bad = [f for f, _ in finders if f not in ("both", "model", "classical")]
    if bad:
        p.error(f"--finder {','.join(bad)}: not both, model or classical")
    dim = args.dim_search == "on"
    extra = None if dim else 0
    video = Path(args.video)
    if not video.is_file():
        print(f"no video at {video} (../shared is needed)")
        return 2
    roi: Box = tuple(int(v) for v in args.roi.split(","))  # type: ignore[assignment]
    shots = frames(video, args.every)
    h, w = shots[0].shape[:2]  # type: ignore[attr-defined]
    print(f"{video.name}: {len(shots)} frames of {w}x{h}, every {args.every}th")
    for (finder, every), (label, region) in (
        (f, r) for f in finders for r in (("whole frame", None), (f"roi {args.roi}", roi))
    ):
        label = f"{label} [{finder}, 1/{every}]"
        reader = PlateReader.from_config(PlatesConfig(roi=region, dim_search=dim, finder=finder))
        reader.read_image(shots[0])  # load the model, warm the interpreter
        whole: Box = (0, 0, w, h)
        base, total, plates = [], [], 0
        for i, f in enumerate(shots):
            t0 = time.perf_counter()
            find_plates(f, region or whole, extra=extra)  # type: ignore[arg-type]
            base.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            plates += len(reader.read_image(f, None, i % every == 0))  # type: ignore[arg-type]
            total.append((time.perf_counter() - t0) * 1000)
        ratio = statistics.median(total) / statistics.median(base)
        print(f"{label:34s} localise only (baseline): {summary(base)}")
        print(f"{label:34s} read_image, end to end:   {summary(total)}  = {ratio:.1f}x baseline;"
              f" {plates} readings (goal: median <= 60 ms)")
    if (args.shared / "models" / "coco_ssd_mobilenet_v1_quant.tflite").is_file():
        for finder, every in finders:
            vehicle_boxes(shots, args.shared, dim, finder, every)
    else:
        print(f"no COCO SSD model under {args.shared}/models: the detector's mode is skipped")
    return 0


def vehicle_boxes(
    shots: list[object], shared: Path, dim: bool = True, finder: str = "both", every: int = 1
) -> None:
    """Detector, then plates read inside its vehicle boxes: the camera path of the daemon."""
    from agent.vision import pipeline
    from agent.vision.config import VisionConfig
    from agent.vision.detector import Detector
    from agent.vision.models import verify_model
    from bench.vision import make_model_dir

    with tempfile.TemporaryDirectory() as tmp:
        detector = Detector(
            verify_model(make_model_dir(shared, Path(tmp)), "coco-ssd-mobilenet-v1"),
            VisionConfig().detector,
        )
    reader = PlateReader.from_config(PlatesConfig(dim_search=dim, finder=finder))
    reader.read_image(shots[0])  # type: ignore[arg-type]
    base, detect, total, boxes, plates = [], [], [], 0, 0
    for i, f in enumerate(shots):
        h, w = f.shape[:2]  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        found = detector.detect(f, [(0, 0, w, h)])  # type: ignore[arg-type]
        t1 = time.perf_counter()
        vehicles: list[Box] = pipeline.vehicle_boxes(found)  # (this function shares its name)
        if not vehicles:
            continue
        plates += len(reader.read_image(f, vehicles, i % every == 0))  # type: ignore[arg-type]
        t2 = time.perf_counter()
        for v in vehicles:
            find_plates(f, v, extra=None if dim else 0)  # type: ignore[arg-type]
        base.append((time.perf_counter() - t2) * 1000)
        detect.append((t1 - t0) * 1000)
        total.append((t2 - t0) * 1000)
        boxes += len(vehicles)
    if not total:
        print("vehicle boxes: the detector found no vehicle")
        return
    label = f"vehicle boxes [{finder}, 1/{every}]"
    print(f"{label:34s} {len(total)} frames with a vehicle, {boxes / len(total):.1f} boxes each")
    print(f"{label:34s} localise only (baseline): {summary(base)}")
    print(f"{label:34s} detector:                 {summary(detect)}")
    ratio = statistics.median(total) / statistics.median(base)
    print(f"{label:34s} detector + read, per frame: {summary(total)}  = {ratio:.1f}x baseline;"
          f" {plates} readings (goal: median <= 60 ms)")


if __name__ == "__main__":
    raise SystemExit(main())
