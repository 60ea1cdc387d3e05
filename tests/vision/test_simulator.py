"""`outpost simulate camera-tamper` drives a simulated camera into and out of tamper."""

from __future__ import annotations

import time
from pathlib import Path

from agent.config import Settings
from agent.runtime import AgentContext
from agent.vision import build

from .conftest import RecordingSink


def test_simulated_cover_gives_tamper_and_restore(tmp_path: Path, sink: RecordingSink) -> None:
    settings = Settings(
        device={"state_dir": str(tmp_path)},
        vision={
            "cameras": [{"name": "yard", "detect": False, "analysis_fps": 5}],
            "tamper": {"interval_s": 0.5, "hold_s": 1, "learn_s": 1},
        },
    )
    ctx = AgentContext(settings=settings, sink=sink)
    [svc] = build(ctx)
    svc.start()
    try:
        sink.wait_for("camera.online")
        bad = ctx.simulators.dispatch("camera-tamper", {"argv": ["yard", "melted"]})
        assert not bad["ok"] and "usage" in bad["error"]
        time.sleep(2.5)  # reference view learned
        ok = ctx.simulators.dispatch("camera-tamper", {"argv": ["yard", "covered"]})
        assert ok["ok"], ok
        ev = sink.wait_for("camera.tamper", timeout=10)[0]
        assert ev.data["state"] == "tampered" and ev.data["reason"] == "covered"
        assert ev.data["snapshot"]["content_type"] == "image/jpeg"
        assert ctx.simulators.dispatch("camera-tamper", {"argv": ["yard", "clear"]})["ok"]
        back = sink.wait_for("camera.tamper", lambda e: e.data["state"] == "restored", timeout=10)
        assert back[0].data["camera"] == "yard"
    finally:
        svc.stop()
