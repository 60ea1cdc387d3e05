"""``outpost plates read``: read plates in still images or a configured camera's frames.

For installers and field techs (is the camera framing readable? would this plate raise a
hit?) and for evaluation. It reads with the box's own ``[plates]`` settings and watchlist
when its config file is there; prints one line per image or frame, JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from agent.errors import ConfigError, DriverFault
from agent.plates.config import FastPlateOcrConfig, OutpostOcrConfig, PlatesConfig
from agent.plates.localise import Box
from agent.plates.reader import PlateReader
from agent.plates.voting import PlateRead
from agent.plates.watchlist import Watchlist
from agent.vision.config import CameraConfig, synthetic_clip_path

EXIT_USAGE = 2
EXIT_CONFIG = 78
CAMERA_FRAMES = 10
"""Frames read from a camera (``--camera``) unless ``--frames`` says otherwise."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="outpost plates", description="Plate reading tools.")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser(
        "read",
        help="read plates in images, or in a configured camera's frames (--camera)",
        description="Reads with the [plates] settings of the config file (outpost -c FILE) "
        "and matches each reading against the box's watchlist; without a config file, with "
        "the built-in defaults and no watchlist.",
    )
    r.add_argument("images", nargs="*", type=Path)
    r.add_argument("--json", action="store_true", help="one JSON object per line")
    r.add_argument("--crop", action="store_true", help="each image is already a plate crop")
    r.add_argument(
        "--camera", default=None, help="read this [[vision.cameras]] entry's frames instead"
    )
    r.add_argument(
        "--frames", type=int, default=CAMERA_FRAMES, help="frames to read from --camera"
    )
    r.add_argument(
        "--every",
        type=int,
        default=None,
        help="read every Nth frame of --camera (default: the camera's analysis_fps)",
    )
    r.add_argument(
        "--no-detector",
        action="store_true",
        help="with --camera: read the ROI (or whole frame), not the detector's vehicle boxes",
    )
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
    r.add_argument(
        "--countries", default=None, help="format rules, e.g. cn or cn,us (default: [plates])"
    )
    return p


def _box_settings(config: Path | None) -> tuple[Settings | None, str]:
    """The box's settings and where they came from: the config file when there is one.

    ``config`` None (a bare ``python -m agent.plates.cli``) or the default path with no file
    there (a development checkout) give the built-in defaults; a file named on purpose
    that is missing or invalid raises ``ConfigError``."""
    if config is None:
        return None, "built-in defaults"
    if not config.is_file() and config == DEFAULT_CONFIG_PATH:
        return None, f"built-in defaults (no {config})"
    return load_settings(config), str(config)


def _plates_config(args: argparse.Namespace, settings: Settings | None) -> PlatesConfig:
    cfg = settings.plates if settings is not None else PlatesConfig()
    updates: dict[str, object] = {}
    if args.model_dir:
        updates["model_dir"] = args.model_dir
    if args.fast_plate_ocr:
        updates["ocr"] = FastPlateOcrConfig(type="fast-plate-ocr", path=args.fast_plate_ocr)
    elif args.model:
        updates["ocr"] = OutpostOcrConfig(model=args.model.split(","))
    if args.roi:
        updates["roi"] = tuple(int(v) for v in args.roi.split(","))
    if args.countries:
        updates["countries"] = args.countries.split(",")
    if not updates:
        return cfg
    # validated as the config file's section is: a bad value is a usage error naming the key
    return PlatesConfig.model_validate({**cfg.model_dump(), **updates})


def main(argv: list[str], config: Path | None = None) -> int:
    """``config``: the box's config file (``outpost -c FILE plates …`` passes it)."""
    args = _parser().parse_args(argv)
    if bool(args.images) == bool(args.camera):
        print("outpost plates read: give IMAGE... or --camera NAME", file=sys.stderr)
        return EXIT_USAGE
    settings, source = _box_settings(config)
    if args.camera and settings is None:
        print(
            f"outpost plates read: --camera needs the box's config file ({source})",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        cfg = _plates_config(args, settings)
    except ValueError as exc:  # pydantic's ValidationError, with the key named
        print(f"outpost plates read: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"outpost plates: settings from {source}", file=sys.stderr)
    try:
        reader = PlateReader.from_config(cfg)
    except DriverFault as exc:
        print(f"outpost plates: {exc}", file=sys.stderr)
        return EXIT_USAGE
    watchlist = None
    if settings is not None:
        watchlist = Watchlist(cfg.watchlist_path(settings.device.state_dir), cfg.match_distance)
    if args.camera:
        assert settings is not None  # (refused above)
        return _read_camera(args, settings, reader, watchlist)
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
        _print({"image": str(path)}, reads, time.perf_counter() - t0, watchlist, args.json)
    return status


def _vehicle_finder(
    cam: CameraConfig, settings: Settings
) -> Callable[[np.ndarray], list[Box]] | None:
    """The detector's vehicle boxes for a frame, as the daemon searches a camera that has
    the detector (its tracker and votes aside); None where the camera reads its ROI.
    ``DriverFault`` where the detector's model is missing or corrupt."""
    from agent.vision.detector import Detector
    from agent.vision.models import verify_model
    from agent.vision.pipeline import vehicle_boxes

    det = settings.vision.detector
    if not (cam.detect and settings.vision.enabled and det.enabled):
        return None
    detector = Detector(
        verify_model(det.model_folder(settings.device.state_dir), det.model), det
    )

    def vehicles(frame: np.ndarray) -> list[Box]:
        h, w = frame.shape[:2]
        return vehicle_boxes(detector.detect(frame, [(0, 0, w, h)]))

    return vehicles


def _read_camera(
    args: argparse.Namespace, settings: Settings, reader: PlateReader, watchlist: Watchlist | None
) -> int:
    """Read ``--frames`` frames of a configured camera (every ``--every``-th) where the
    daemon would: in the detector's vehicle boxes where the camera has the detector, else
    in the ROI (or the whole frame)."""
    from agent.vision.capture import CameraSource
    from agent.vision.synthetic import make_synthetic_video

    cams = {c.name: c for c in settings.vision.cameras}
    cam = cams.get(args.camera)
    if cam is None:
        print(
            f"outpost plates read: no camera {args.camera!r} in the config "
            f"(cameras: {', '.join(cams) or 'none'})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        vehicles = None if args.no_detector else _vehicle_finder(cam, settings)
    except DriverFault as exc:
        print(f"outpost plates: {exc} (--no-detector reads the ROI)", file=sys.stderr)
        return 1
    try:
        clip = None
        if cam.kind == "file" and cam.path is None:  # the simulated camera: the worker's clip
            clip = make_synthetic_video(synthetic_clip_path(settings.device.state_dir))
        source = CameraSource(cam.model_copy(update={"loop": False}), clip)
        source.open()
    except (DriverFault, OSError) as exc:  # OSError: the state dir's clip cannot be written
        print(f"outpost plates: {exc}", file=sys.stderr)
        return 1
    search = "vehicle boxes" if vehicles is not None else "ROI" if reader.roi else "whole frame"
    every = args.every or max(1, round(source.native_fps / cam.analysis_fps))
    seen: Counter[str] = Counter()
    read = 0
    try:
        for index, frame in _frames(source, every, args.frames):
            t0 = time.perf_counter()
            where: dict[str, Any] = {"camera": cam.name, "frame": index}
            if vehicles is None:
                reads = reader.read_image(frame)
            else:  # no vehicle, no reading: the ROI is not read in its place
                boxes = vehicles(frame)
                where["vehicles"] = len(boxes)
                reads = reader.read_image(frame, boxes) if boxes else []
            _print(where, reads, time.perf_counter() - t0, watchlist, args.json)
            seen.update(r.text for r in reads)
            read += 1
    finally:
        source.close()
    if not args.json:
        texts = ", ".join(f"{t} ×{n}" for t, n in seen.most_common()) or "no plate"
        print(f"{cam.name}: {read} frames read, every {every}, {search}: {texts}", flush=True)
    if read == 0:
        print(f"outpost plates: no frame from {source.describe()}", file=sys.stderr)
        return 1
    return 0


def _frames(source: Any, every: int, count: int) -> Iterator[tuple[int, np.ndarray]]:
    """Up to ``count`` decoded frames of ``source``, every ``every``-th, with their index."""
    index = -1
    taken = 0
    while taken < count and source.grab():
        index += 1
        if index % every:
            continue
        frame = source.retrieve()
        if frame is None:
            continue
        taken += 1
        yield index, frame


def _print(
    where: dict[str, Any],
    reads: list[PlateRead],
    seconds: float,
    watchlist: Watchlist | None,
    as_json: bool,
) -> None:
    plates: list[dict[str, Any]] = []
    for r in reads:
        plate: dict[str, Any] = {
            "text": r.text,
            "confidence": round(r.confidence, 3),
            "box": list(r.box),
        }
        if r.colour:
            plate.update(colour=r.colour, type=r.plate_type)
        hit = watchlist.match(r.text) if watchlist is not None else None
        if hit is not None:
            plate["watch"] = {
                "plate": hit.entry.plate,
                "reason": hit.entry.reason,
                "id": hit.entry.id,
                "distance": hit.distance,
            }
        plates.append(plate)
    ms = seconds * 1000
    if as_json:
        out = {**where, "plates": plates, "ms": round(ms, 2)}
        print(json.dumps(out, ensure_ascii=False), flush=True)
        return
    label = where.get("image") or f"{where['camera']}#{where['frame']}"
    if "vehicles" in where:
        n = where["vehicles"]
        label += f" ({n} vehicle{'' if n == 1 else 's'})"
    texts = ", ".join(_describe(p) for p in plates) or "-"
    print(f"{label}: {texts}  [{ms:.1f} ms]", flush=True)


def _describe(plate: dict[str, Any]) -> str:
    text = f"{plate['text']} ({plate['confidence']:.2f})"
    watch = plate.get("watch")
    if watch:
        why = f", {watch['reason']}" if watch["reason"] else ""
        text += f" HIT {watch['plate']}{why}"
    return text


if __name__ == "__main__":
    try:
        raise SystemExit(main(sys.argv[1:]))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
