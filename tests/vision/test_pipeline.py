"""One camera pipeline in-process: file looping, motion gating, RTSP drop and reconnect."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.vision.config import VisionConfig
from agent.vision.detector import Detector
from agent.vision.models import verify_model
from agent.vision.pipeline import CameraPipeline

from .conftest import MODEL_NAME
from .rtsp_relay import RtspRelay


class Collector:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def __call__(self, msg: dict[str, Any]) -> None:
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def wait(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages:
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    kinds = [(m["kind"], m.get("online")) for m in self.messages]
                    raise AssertionError(f"message not seen in {timeout}s; got {kinds}")
                self._cond.wait(left)

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()


@pytest.fixture
def pipeline_factory() -> Iterator[Callable[..., tuple[CameraPipeline, Collector]]]:
    made: list[CameraPipeline] = []

    def make(
        cam: dict[str, Any], detector: Detector | None = None, **vision: Any
    ) -> tuple[CameraPipeline, Collector]:
        vision.setdefault("reconnect", {"backoff_min_s": 0.3, "backoff_max_s": 1})
        cfg = VisionConfig.model_validate({"cameras": [cam], **vision})
        out = Collector()
        p = CameraPipeline(cfg.cameras[0], cfg, detector, out)
        made.append(p)
        p.start()
        return p, out

    yield make
    for p in made:
        p.stop()


def test_file_camera_loops_and_caps_analysis_rate(
    pipeline_factory: Callable[..., tuple[CameraPipeline, Collector]], static_video: Path
) -> None:
    p, out = pipeline_factory({"name": "loop", "path": str(static_video), "analysis_fps": 4})
    out.wait(lambda m: m["kind"] == "camera" and m["online"])
    time.sleep(3.5)  # the 2 s file has wrapped at least once
    st = p.status()
    assert st["online"] and st["reconnects"] == 0
    assert 7 <= st["decode_fps"] <= 11, st
    assert 2 <= st["analysis_fps"] <= 4.5, st
    assert st["stall_s"] < 1


def test_motion_gate_runs_detector_only_when_something_moves(
    pipeline_factory: Callable[..., tuple[CameraPipeline, Collector]],
    static_video: Path,
    street_clip: Path,
    model_dir: Path,
) -> None:
    detector = Detector(verify_model(model_dir, MODEL_NAME), VisionConfig().detector)
    still, _ = pipeline_factory(
        {"name": "still", "path": str(static_video), "analysis_fps": 5}, detector
    )
    busy, busy_out = pipeline_factory(
        {"name": "busy", "path": str(street_clip), "analysis_fps": 5}, detector
    )
    new = busy_out.wait(lambda m: m["kind"] == "objects_new", timeout=15)
    assert any(o["label"] == "car" for o in new["objects"])
    assert new["jpeg"][:2] == b"\xff\xd8"
    time.sleep(1)
    assert still.frames_analysed >= 5
    assert still.detector_runs == 0
    assert busy.detector_runs >= 2


def test_rtsp_drop_and_reconnect(
    pipeline_factory: Callable[..., tuple[CameraPipeline, Collector]], street_clip: Path
) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (apt-get install -y ffmpeg)")
    relay = RtspRelay(street_clip)
    try:
        p, out = pipeline_factory(
            {"name": "gate", "kind": "rtsp", "url": relay.url, "analysis_fps": 5, "tamper": False}
        )
        out.wait(lambda m: m["kind"] == "camera" and m["online"])
        time.sleep(1.5)
        st = p.status()
        assert st["frame_size"] == [640, 352] and st["decode_fps"] > 2, st
        out.clear()
        relay.drop()
        offline = out.wait(lambda m: m["kind"] == "camera" and not m["online"], timeout=15)
        assert "dropped" in offline["reason"] or "cannot open" in offline["reason"]
        time.sleep(1)
        relay.resume()
        out.wait(lambda m: m["kind"] == "camera" and m["online"], timeout=20)
        assert p.status()["reconnects"] >= 1
        assert relay.sessions >= 2
    finally:
        relay.close()


def test_rtsp_stall_without_disconnect_is_offline(
    pipeline_factory: Callable[..., tuple[CameraPipeline, Collector]], street_clip: Path
) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (apt-get install -y ffmpeg)")
    relay = RtspRelay(street_clip)
    try:
        p, out = pipeline_factory(
            {"name": "gate", "kind": "rtsp", "url": relay.url, "tamper": False},
            reconnect={"stall_s": 1.5, "backoff_min_s": 0.3, "backoff_max_s": 1},
        )
        out.wait(lambda m: m["kind"] == "camera" and m["online"])
        out.clear()
        relay.paused.set()
        offline = out.wait(lambda m: m["kind"] == "camera" and not m["online"], timeout=10)
        assert offline["reason"].startswith("no frame for 1.5 s")
        relay.paused.clear()
        out.wait(lambda m: m["kind"] == "camera" and m["online"], timeout=20)
        assert p.status()["stall_s"] < 2
    finally:
        relay.close()


def test_usb_camera_that_is_not_there_is_offline_with_reason(
    pipeline_factory: Callable[..., tuple[CameraPipeline, Collector]],
) -> None:
    _, out = pipeline_factory({"name": "usb", "kind": "usb", "device": "/dev/video97"})
    offline = out.wait(lambda m: m["kind"] == "camera" and not m["online"], timeout=10)
    assert "cannot open /dev/video97" in offline["reason"]


def test_file_without_loop_plays_once_then_is_offline(
    pipeline_factory: Callable[..., tuple[CameraPipeline, Collector]], static_video: Path
) -> None:
    _, out = pipeline_factory({"name": "once", "path": str(static_video), "loop": False})
    out.wait(lambda m: m["kind"] == "camera" and m["online"])
    ended = out.wait(lambda m: m["kind"] == "camera" and not m["online"], timeout=6)
    assert "ended" in ended["reason"]
