"""The vision component end to end: worker process, events, media, commands, alarms."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import Settings
from agent.events import Event, Priority, utc_now_rfc3339, uuid7
from agent.runtime import AgentContext
from agent.vision import build
from agent.vision.service import VisionService, rfc3339

from .conftest import RecordingSink, write_manifest


def make_service(
    tmp_path: Path, sink: RecordingSink, model_dir: Path, cameras: list[dict[str, Any]]
) -> tuple[VisionService, AgentContext]:
    settings = Settings(
        device={"state_dir": str(tmp_path / "state")},
        vision={
            "cameras": cameras,
            "detector": {"model_dir": str(model_dir)},
            "buffer": {"seconds": 20, "fps": 2},
            "alarm_pictures": {"pre_s": 3, "post_s": 2, "pre_count": 2, "post_count": 2},
            "media": {"max_bytes": 20 * 1024 * 1024, "min_free_bytes": 0},
        },
    )
    ctx = AgentContext(settings=settings, sink=sink)
    [svc] = build(ctx)
    assert isinstance(svc, VisionService)
    return svc, ctx


@pytest.fixture
def running(
    tmp_path: Path, sink: RecordingSink, model_dir: Path, street_clip: Path
) -> Iterator[tuple[VisionService, AgentContext]]:
    svc, ctx = make_service(
        tmp_path,
        sink,
        model_dir,
        [
            {"name": "gate", "path": str(street_clip), "covers_buttons": ["front"]},
            {"name": "yard"},  # synthetic clip, covers no button
        ],
    )
    ctx.bus.start()
    svc.start()
    yield svc, ctx
    svc.stop()
    ctx.bus.stop()


def test_objects_snapshots_commands_and_alarm_pictures(
    running: tuple[VisionService, AgentContext], sink: RecordingSink
) -> None:
    svc, ctx = running
    sink.wait_for("camera.online", count=2)
    obj = sink.wait_for("vision.object", lambda e: e.data["label"] == "car")[0]
    assert obj.priority == Priority.VISION
    assert obj.data["camera"] == "gate" and len(obj.data["box"]) == 4
    ref = obj.data["snapshot"]
    media = sink.wait_for("media.snapshot", lambda e: obj.id in e.data.get("event_ids", []))[0]
    assert media.seq > obj.seq and media.data["media"] == ref  # picture after the event

    got = ctx.commands.dispatch("media-get", {"id": ref["id"]})
    data = base64.b64decode(got["result"]["data_b64"])
    assert data[:2] == b"\xff\xd8" and hashlib.sha256(data).hexdigest() == ref["sha256"]

    snap = ctx.commands.dispatch("snapshot", {"camera": "yard"})
    assert snap["ok"], snap
    assert snap["result"]["media"]["content_type"] == "image/jpeg"
    bad = ctx.commands.dispatch("snapshot", {"camera": "nope"})
    assert not bad["ok"] and "unknown camera" in bad["error"]

    time.sleep(3)  # let the recording window fill
    clip = ctx.commands.dispatch("clip", {"camera": "gate", "seconds": 4})
    assert clip["ok"], clip
    assert clip["result"]["frames"] >= 4
    mp4 = base64.b64decode(
        ctx.commands.dispatch("media-get", {"id": clip["result"]["media"]["id"]})["result"][
            "data_b64"
        ]
    )
    assert mp4[4:8] == b"ftyp"
    now = time.time()
    by_time = ctx.commands.dispatch(
        "clip", {"camera": "gate", "start": rfc3339(now - 3), "end": rfc3339(now)}
    )
    assert by_time["ok"], by_time
    assert by_time["result"]["start"] >= rfc3339(now - 3.6)  # the window's 2 fps granularity
    too_old = ctx.commands.dispatch(
        "clip", {"camera": "gate", "start": "2020-01-01T00:00:00Z", "end": "2020-01-01T00:00:05Z"}
    )
    assert not too_old["ok"] and "recording window" in too_old["error"]

    alarm = Event(uuid7(), "test", "alarm.panic", 1, utc_now_rfc3339(), Priority.ALARM,
                  {"button": "front"})  # fmt: skip
    ctx.bus.publish_event(alarm)
    pics = sink.wait_for(
        "media.snapshot", lambda e: e.data.get("alarm_id") == alarm.id, count=4, timeout=15
    )
    assert sorted(e.data["phase"] for e in pics) == ["post", "post", "pre", "pre"]
    assert {e.data["camera"] for e in pics} == {"gate"}  # yard does not cover 'front'

    st = svc.status()
    assert st["worker"]["alive"] and st["worker"]["pid"] != os.getpid()
    assert st["detector"]["enabled"] and st["detector"]["inferences"] > 0
    assert st["cameras"]["gate"]["online"] and st["cameras"]["gate"]["decode_fps"] > 0
    assert st["media"]["items"] >= 3


def test_worker_crash_is_reported_and_restarted(
    running: tuple[VisionService, AgentContext], sink: RecordingSink
) -> None:
    svc, _ = running
    sink.wait_for("camera.online", count=2)
    pid = svc.status()["worker"]["pid"]
    os.kill(pid, signal.SIGKILL)
    fault = sink.wait_for("device.fault", timeout=10)[0]
    assert "exited" in fault.data["reason"]
    sink.wait_for("camera.online", count=4, timeout=30)
    assert svc.status()["worker"]["pid"] != pid and svc.restarts == 1


def test_the_watchlist_reaches_the_worker_and_a_restarted_one(
    tmp_path: Path, sink: RecordingSink
) -> None:
    """``early_hit`` decides a watched car's track where the frames are: the plates
    component's watchlist goes to the vision worker, and again to a worker restarted after
    a crash (an alarm must not wait for a track's end because the worker died once)."""
    settings = Settings(
        device={"state_dir": str(tmp_path / "state")},
        vision={
            "cameras": [{"name": "lane", "detect": False, "plates": True}],
            "detector": {"enabled": False},
            "media": {"min_free_bytes": 0},
        },
        plates={"enabled": True},
    )
    ctx = AgentContext(settings=settings, sink=sink)
    [svc] = build(ctx)
    assert isinstance(svc, VisionService)
    svc.set_watchlist(["ABC123", "京A12345"], 0.5)  # before start: sent once it runs
    ctx.bus.start()
    svc.start()
    try:

        def watched() -> int | None:
            plates = svc.status().get("plates") or {}
            return plates.get("watchlist")

        deadline = time.monotonic() + 30
        while watched() != 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert watched() == 2, svc.status()
        svc.set_watchlist(["ABC123"], 0.5)  # a change while it runs
        deadline = time.monotonic() + 10
        while watched() != 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert watched() == 1, svc.status()
        pid = svc.status()["worker"]["pid"]
        os.kill(pid, signal.SIGKILL)
        sink.wait_for("device.fault", timeout=10)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not (
            svc.status()["worker"]["pid"] not in (pid, None) and watched() == 1
        ):
            time.sleep(0.2)
        assert svc.restarts == 1 and watched() == 1, svc.status()
    finally:
        svc.stop()
        ctx.bus.stop()


@pytest.mark.parametrize(
    ("damage", "said"),
    [("missing", "missing"), ("corrupt", "corrupt"), ("unloadable", "could not be loaded")],
)
def test_bad_model_disables_detection_only(
    tmp_path: Path, sink: RecordingSink, model_dir: Path, damage: str, said: str
) -> None:
    model = model_dir / "detect.tflite"
    if damage == "missing":
        model.unlink()
    elif damage == "corrupt":  # bytes changed after the manifest was written
        with model.open("r+b") as fh:
            fh.seek(1000)
            fh.write(b"\x00" * 64)
    else:  # hash matches, but it is not a model the runtime can load
        model.write_bytes(b"not a flatbuffer" * 64)
        write_manifest(model_dir)
    svc, ctx = make_service(tmp_path, sink, model_dir, [{"name": "yard"}])
    svc.start()
    try:
        fault = sink.wait_for("device.fault")[0]
        assert said in fault.data["reason"] and "detection disabled" in fault.data["reason"]
        sink.wait_for("camera.online")
        assert ctx.commands.dispatch("snapshot", {})["ok"]  # the camera itself keeps working
        st = svc.status()
        assert not st["detector"]["enabled"] and said in st["detector"]["fault"]
    finally:
        svc.stop()


def test_no_cameras_builds_nothing(tmp_path: Path, sink: RecordingSink) -> None:
    ctx = AgentContext(settings=Settings(device={"state_dir": str(tmp_path)}), sink=sink)
    assert build(ctx) == []


def test_agent_process_never_loads_opencv_or_the_runtime(tmp_path: Path) -> None:
    """Decoding and inference libraries live in the worker only (RSS, GIL, import time)."""
    script = f"""
import sys, time
from agent.config import Settings
from agent.events import Event
from agent.runtime import AgentContext
from agent.vision import build

class Sink:
    def emit(self, type, data=None, *, priority=None):
        return Event("id", "d", type, 1, "ts", 0, data or {{}})

if __name__ == "__main__":
    s = Settings(device={{"state_dir": {str(tmp_path)!r}}},
                 vision={{"cameras": [{{"name": "yard"}}]}})
    ctx = AgentContext(settings=s, sink=Sink())
    [svc] = build(ctx)
    svc.start()
    time.sleep(3)
    assert svc.status()["worker"]["alive"]
    svc.stop()
    heavy = [m for m in ("cv2", "numpy", "ai_edge_litert", "tflite_runtime") if m in sys.modules]
    print("HEAVY", heavy)
"""
    path = tmp_path / "agent_side.py"
    path.write_text(script)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(path)], cwd=root, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr
