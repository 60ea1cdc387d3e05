"""A press on a MockFactory panic button gets pre- and post-alarm pictures from the cameras
that cover it.

The sink here hands each stored event to the local bus, as the daemon's outbox does, so the
chain is: gpiozero mock pin → AlarmPanel → alarm.panic → bus → vision worker → media.snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from agent.config import Settings
from agent.events import Event, Priority
from agent.runtime import AgentContext, LocalBus
from agent.vision import build as build_vision

from .conftest import RecordingSink

gpio = pytest.importorskip("drivers.gpio", reason="the GPIO driver package is needed")
pytest.importorskip("gpiozero", reason="gpiozero is needed for MockFactory pins")

BUTTON_PIN = 17


class BusSink(RecordingSink):
    """Records, then publishes to the local bus like the outbox after a durable put."""

    def __init__(self, bus: LocalBus) -> None:
        super().__init__()
        self.bus = bus

    def emit(
        self, type: str, data: Mapping[str, Any] | None = None, *, priority: Priority | None = None
    ) -> Event:
        event = super().emit(type, data, priority=priority)
        self.bus.publish_event(event)
        return event


def test_panic_press_gets_pre_and_post_pictures(tmp_path: Path) -> None:
    settings = Settings(
        device={"state_dir": str(tmp_path)},
        gpio={
            "mock": True,
            "buttons": [
                {"name": "front", "pin": BUTTON_PIN, "min_press_ms": 20, "release_ms": 20},
            ],
        },
        vision={
            "cameras": [
                {"name": "desk", "detect": False, "covers_buttons": ["front"]},
                {"name": "yard", "detect": False, "covers_buttons": ["back-door"]},
            ],
            "buffer": {"seconds": 10, "fps": 4},
            "alarm_pictures": {"pre_s": 2, "post_s": 1, "pre_count": 3, "post_count": 1},
        },
    )
    bus = LocalBus()
    sink = BusSink(bus)
    ctx = AgentContext(settings=settings, sink=sink, bus=bus)
    components = gpio.build(ctx) + build_vision(ctx)
    bus.start()
    for c in components:
        c.start()
    try:
        sink.wait_for("camera.online", count=2)
        time.sleep(2.5)  # two seconds of recording window before the press
        panel = components[0]
        pin = panel.pin_factory.pin(BUTTON_PIN)  # type: ignore[attr-defined]
        pin.drive_low()
        time.sleep(0.1)
        pin.drive_high()
        alarm = sink.wait_for("alarm.panic", timeout=5)[0]
        assert alarm.data["button"] == "front"
        pics = sink.wait_for(
            "media.snapshot", lambda e: e.data.get("alarm_id") == alarm.id, count=4, timeout=10
        )
        pre = [e for e in pics if e.data["phase"] == "pre"]
        post = [e for e in pics if e.data["phase"] == "post"]
        assert len(pre) == 3 and len(post) == 1
        assert {e.data["camera"] for e in pics} == {"desk"}
        assert all(e.seq > alarm.seq for e in pics)  # the alarm first, pictures after
        assert all(e.data["ts"] <= alarm.ts for e in pre)
        assert all(e.data["ts"] >= alarm.ts for e in post)
        time.sleep(1.5)
        assert len([e for e in sink.of("media.snapshot") if e.data.get("alarm_id")]) == 4
    finally:
        for c in reversed(components):
            c.stop()
        bus.stop()
