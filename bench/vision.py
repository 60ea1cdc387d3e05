"""Vision benchmark: per-camera decode and analysis rates, CPU on a static vs busy scene,
detector latency against the raw interpreter, and RSS with two cameras.

    .venv/bin/python bench/vision.py [--seconds 15] [--shared ../shared]

Needs ../shared/data/video/tollbooth_720p.mp4 (1280×720, 60 fps) and the COCO SSD model in
../shared/models. Figures are for this machine; the same-run baselines (decode alone, raw
interpreter) are what to compare against.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.config import Settings  # noqa: E402
from agent.events import Event, Priority, default_priority, utc_now_rfc3339, uuid7  # noqa: E402
from agent.runtime import AgentContext  # noqa: E402
from agent.vision.models import sha256_file  # noqa: E402
from agent.vision.service import VisionService  # noqa: E402

if TYPE_CHECKING:
    from agent.vision.detector import Detector

# The heavy modules (OpenCV, NumPy, the detector) are imported inside the functions that use
# them, so the RSS child holds only what the agent process holds.


def cpu_percent_during(fn: Any, seconds: float) -> tuple[float, Any]:
    """CPU% of this process (all threads; 100 = one core) while ``fn`` runs ``seconds``."""
    c0, w0 = time.process_time(), time.monotonic()
    result = fn(seconds)
    return 100 * (time.process_time() - c0) / (time.monotonic() - w0), result


def make_model_dir(shared: Path, tmp: Path) -> Path:
    d = tmp / "models"
    d.mkdir()
    shutil.copyfile(shared / "models/coco_ssd_mobilenet_v1_quant.tflite", d / "detect.tflite")
    shutil.copyfile(shared / "models/coco_ssd_mobilenet_v1_quant.labels.txt", d / "labels.txt")
    manifest = {
        "models": [
            {
                "name": "coco-ssd-mobilenet-v1",
                "file": "detect.tflite",
                "sha256": sha256_file(d / "detect.tflite"),
                "input": {"width": 300, "height": 300, "dtype": "uint8"},
                "outputs": "ssd_postprocess",
                "labels": "labels.txt",
                "label_offset": 1,
                "licence": "Apache-2.0",
            }
        ]
    }
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def static_copy(video: Path, out: Path, seconds: float = 5) -> Path:
    import cv2

    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS)
    ok, frame = cap.read()
    cap.release()
    assert ok
    h, w = frame.shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    for _ in range(int(fps * seconds)):
        writer.write(frame)
    writer.release()
    return out


def decode_max_fps(video: Path, frames: int = 300) -> float:
    import cv2

    cap = cv2.VideoCapture(str(video))
    t0 = time.perf_counter()
    n = 0
    while n < frames and cap.read()[0]:
        n += 1
    cap.release()
    return n / (time.perf_counter() - t0)


def decode_only_realtime(video: Path, seconds: float) -> float:
    """Baseline: a looping file read at its own frame rate, every frame decoded, no analysis."""
    from agent.vision.capture import CameraSource
    from agent.vision.config import CameraConfig

    src = CameraSource(CameraConfig(name="baseline", path=video))
    src.open()
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if src.grab():
            src.retrieve()
            n += 1
    src.close()
    return n / seconds


def run_pipeline(video: Path, detector: Detector | None, seconds: float) -> dict[str, Any]:
    from agent.vision.config import VisionConfig
    from agent.vision.pipeline import CameraPipeline

    cfg = VisionConfig.model_validate({"cameras": [{"name": "bench", "path": str(video)}]})
    p = CameraPipeline(cfg.cameras[0], cfg, detector, lambda m: None)
    p.start()
    time.sleep(seconds)
    st = p.status()
    st["frames_analysed"] = p.frames_analysed
    p.stop()
    return st


def detector_latency(detector: Detector, model_path: Path, frame: Any, n: int) -> dict[str, float]:
    import cv2
    import numpy as np

    from agent.vision.runtime import load_interpreter

    raw = load_interpreter(model_path, threads=2)
    inp = raw.get_input_details()[0]
    tensor = np.expand_dims(cv2.cvtColor(cv2.resize(frame, (300, 300)), cv2.COLOR_BGR2RGB), 0)
    raw_ms = []
    ours_ms = []
    for _ in range(5):
        raw.set_tensor(inp["index"], tensor)
        raw.invoke()
        detector.infer(frame)
    for _ in range(n):
        t0 = time.perf_counter()
        raw.set_tensor(inp["index"], tensor)
        raw.invoke()
        raw_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        detector.infer(frame)  # includes resize + colour conversion + decode
        ours_ms.append((time.perf_counter() - t0) * 1000)
    return {
        "raw_interpreter_median_ms": statistics.median(raw_ms),
        "detector_median_ms": statistics.median(ours_ms),
        "detector_p95_ms": sorted(ours_ms)[int(0.95 * len(ours_ms)) - 1],
    }


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class NullSink:
    def emit(self, type: str, data: Any = None, *, priority: Priority | None = None) -> Event:
        return Event(
            uuid7(),
            "bench",
            type,
            0,
            utc_now_rfc3339(),
            priority or default_priority(type),
            data or {},
        )


def wake_lag_ms(seconds: float, period_s: float = 0.005) -> dict[str, float]:
    """How late a thread of this process wakes from a short sleep: a stand-in for how long
    the alarm path could be held up by other work in the agent process (GIL, CPU)."""
    lags = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        time.sleep(period_s)
        lags.append((time.perf_counter() - t0 - period_s) * 1000)
    lags.sort()
    return {"p50": lags[len(lags) // 2], "p99": lags[int(len(lags) * 0.99)], "max": lags[-1]}


def two_camera_rss(
    tmp: Path, model_dir: Path, videos: list[Path], seconds: float
) -> dict[str, Any]:
    settings = Settings(
        device={"state_dir": str(tmp / "state")},
        vision={
            "cameras": [{"name": f"cam{i}", "path": str(v)} for i, v in enumerate(videos)],
            "detector": {"model_dir": str(model_dir)},
        },
    )
    ctx = AgentContext(settings=settings, sink=NullSink())
    svc = VisionService(ctx, settings.vision)
    lag_idle = wake_lag_ms(min(seconds, 5))
    svc.start()
    time.sleep(2)
    lag_busy = wake_lag_ms(max(seconds - 2, 1))
    st = svc.status()
    worker_pid = st["worker"]["pid"]
    out = {
        "agent_process_rss_mb": rss_kb(os.getpid()) / 1024,
        "worker_process_rss_mb": rss_kb(worker_pid) / 1024,
        "cameras": {
            n: {k: c.get(k) for k in ("decode_fps", "analysis_fps", "frame_size", "window_bytes")}
            for n, c in st["cameras"].items()
        },
    }
    out["total_rss_mb"] = out["agent_process_rss_mb"] + out["worker_process_rss_mb"]
    out["wake_lag_idle_ms"] = lag_idle
    out["wake_lag_two_cameras_ms"] = lag_busy
    svc.stop()
    return out


class OutboxSink:
    """The durable outbox as the vision component's ``EventSink``."""

    def __init__(self, outbox: Any) -> None:
        self._outbox = outbox
        self.count = 0

    def emit(self, type: str, data: Any = None, *, priority: Priority | None = None) -> Event:
        self.count += 1
        event: Event = self._outbox.put(type, data, priority=priority)
        return event


def panic_with_vision(tmp: Path, shared: Path, presses: int) -> dict[str, Any]:
    """In one process, like the daemon: panic presses timed by bench/panic_latency.py, first
    alone, then while a two-camera VisionService runs and stores its events and media."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("panic_latency", ROOT / "bench/panic_latency.py")
    assert spec is not None and spec.loader is not None
    pl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pl)
    from agent.outbox import Outbox

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    videos = [shared / "data/video/tollbooth_720p.mp4", shared / "data/video/street_640x352.mp4"]
    out: dict[str, Any] = {}
    proc, port = pl.start_mosquitto(tmp)
    try:
        (tmp / "alone").mkdir()
        out["without_vision"] = pl.run_case(tmp / "alone", port, presses, 0, log)
        settings = Settings(
            device={"state_dir": str(tmp / "state")},
            vision={
                "cameras": [{"name": f"cam{i}", "path": str(v)} for i, v in enumerate(videos)],
                "detector": {"model_dir": str(tmp / "models")},
            },
        )
        vision_outbox = Outbox(tmp / "state" / "vision-outbox.db", "bench")
        sink = OutboxSink(vision_outbox)
        svc = VisionService(AgentContext(settings=settings, sink=sink), settings.vision)
        svc.start()
        try:
            time.sleep(3)
            (tmp / "vision").mkdir()
            out["with_two_cameras"] = pl.run_case(tmp / "vision", port, presses, 0, log)
            out["vision_status"] = {
                n: {k: c.get(k) for k in ("decode_fps", "analysis_fps", "detector_runs")}
                for n, c in svc.status()["cameras"].items()
            }
        finally:
            svc.stop()
            vision_outbox.close()
        out["vision_events"] = sink.count
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--shared", type=Path, default=ROOT / ".." / "shared")
    ap.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument(
        "--panic",
        type=int,
        default=0,
        metavar="N",
        help="also time N panic presses (pin edge → PUBACK, bench/panic_latency.py) without "
        "and then with two cameras running in the same process",
    )
    ap.add_argument("--panic-child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.panic_child:
        print(json.dumps(panic_with_vision(args.panic_child, args.shared, args.panic)))
        return
    if args.rss_child:  # a fresh process that holds only what the agent holds
        videos = [args.shared / "data/video/tollbooth_720p.mp4"]
        videos.append(args.shared / "data/video/street_640x352.mp4")
        print(
            json.dumps(
                two_camera_rss(args.rss_child, args.rss_child / "models", videos, args.seconds)
            )
        )
        return
    video = args.shared / "data/video/tollbooth_720p.mp4"
    if not video.is_file():
        sys.exit(f"{video} not found")
    import cv2

    from agent.vision.config import VisionConfig
    from agent.vision.detector import Detector
    from agent.vision.models import verify_model

    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        model_dir = make_model_dir(args.shared, tmp)
        verified = verify_model(model_dir, "coco-ssd-mobilenet-v1")
        detector = Detector(verified, VisionConfig().detector)
        still = static_copy(video, tmp / "static_720p.mp4")
        s = args.seconds
        fps = cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS)
        print(
            f"# vision benchmark, tollbooth 1280x720 ({fps:.1f} fps average), {s:.0f} s per phase"
        )
        print(f"decode, as fast as possible:          {decode_max_fps(video):7.1f} fps")
        cpu_base, fps_base = cpu_percent_during(lambda x: decode_only_realtime(still, x), s)
        print(f"baseline: decode only, static video:  {fps_base:7.1f} fps  CPU {cpu_base:5.1f} %")
        cpu_bbase, fps_bbase = cpu_percent_during(lambda x: decode_only_realtime(video, x), s)
        print(f"baseline: decode only, busy video:    {fps_bbase:7.1f} fps  CPU {cpu_bbase:5.1f} %")
        cpu_static, st_static = cpu_percent_during(lambda x: run_pipeline(still, detector, x), s)
        print(
            f"pipeline, static scene:               decode {st_static['decode_fps']:5.1f} fps, "
            f"analysis {st_static['analysis_fps']:4.1f} fps, detector runs "
            f"{st_static['detector_runs']}, CPU {cpu_static:5.1f} % "
            f"(= {cpu_static / cpu_base:4.2f}x decode-only)"
        )
        runs0 = detector.inferences
        cpu_busy, st_busy = cpu_percent_during(lambda x: run_pipeline(video, detector, x), s)
        print(
            f"pipeline, busy traffic:               decode {st_busy['decode_fps']:5.1f} fps, "
            f"analysis {st_busy['analysis_fps']:4.1f} fps, detector runs "
            f"{st_busy['detector_runs']} ({detector.inferences - runs0} inferences), "
            f"CPU {cpu_busy:5.1f} % (= {cpu_busy / cpu_bbase:4.2f}x decode-only)"
        )
        cap = cv2.VideoCapture(str(video))
        frame = cap.read()[1]
        cap.release()
        lat = detector_latency(detector, verified.path, frame, 50)
        print(
            f"detector per inference:               {lat['detector_median_ms']:6.1f} ms median "
            f"(p95 {lat['detector_p95_ms']:.1f}); raw interpreter "
            f"{lat['raw_interpreter_median_ms']:.1f} ms (ratio "
            f"{lat['detector_median_ms'] / lat['raw_interpreter_median_ms']:.2f}x)"
        )
        child = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(tmp), "--seconds", str(s),
             "--shared", str(args.shared)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        rss = json.loads(child.stdout.strip().splitlines()[-1])
        print(
            f"RSS with two cameras (tollbooth 720p + street 640x352): agent "
            f"{rss['agent_process_rss_mb']:.0f} MB + worker {rss['worker_process_rss_mb']:.0f} MB "
            f"= {rss['total_rss_mb']:.0f} MB (goal <= 250 MB)"
        )
        idle, busy = rss["wake_lag_idle_ms"], rss["wake_lag_two_cameras_ms"]
        print(
            f"agent-process wake-up lag (5 ms sleeps): no vision p50 {idle['p50']:.2f} / p99 "
            f"{idle['p99']:.2f} / max {idle['max']:.2f} ms; two cameras p50 {busy['p50']:.2f} / "
            f"p99 {busy['p99']:.2f} / max {busy['max']:.2f} ms"
        )
        print(json.dumps(rss["cameras"]))
        if args.panic:
            child = subprocess.run(
                [sys.executable, __file__, "--panic-child", str(tmp), "--panic", str(args.panic),
                 "--shared", str(args.shared)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            res = json.loads(child.stdout.strip().splitlines()[-1])
            for case in ("without_vision", "with_two_cameras"):
                r = res[case]["gpio_edge_to_puback"]
                b = res[case]["baseline_put_to_puback"]
                print(
                    f"panic pin→PUBACK, {case.replace('_', ' ')}: p50 {r['p50_ms']:.2f} ms, "
                    f"p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.2f} ms (n={r['n']}); bare "
                    f"put→PUBACK p99 {b['p99_ms']:.2f} ms (goal p99 <= 20 ms)"
                )
            print(f"  link: {res['with_two_cameras'].get('link')}; vision events stored during "
                  f"the run: {res['vision_events']}")  # fmt: skip


if __name__ == "__main__":
    main()
