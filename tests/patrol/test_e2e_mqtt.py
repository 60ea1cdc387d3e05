"""A patrol round on a real mosquitto through the real daemon: the plan arrives as a
retained config message, one tap comes as RDM6300 bytes on a pty, the others through
``simulate tap``; the box restarts mid-route. The centre must see on_time, out_of_order,
late, and exactly one missed stop (the one whose window closed while the box was down)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

paho = pytest.importorskip("paho.mqtt.client")
daemon = pytest.importorskip("agent.daemon")

from agent.config import Settings  # noqa: E402
from drivers.rfid.rdm6300 import encode_ascii_frame  # noqa: E402

CARD = bytes.fromhex("62E3086CED")
STEP = 3.0  # seconds between stops
SPAN = 1.5 * STEP  # each stop's window: due ± SPAN
TOL = 1.0  # on time: due ± TOL


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Any:
    try:
        return request.getfixturevalue("mosquitto")
    except pytest.FixtureLookupError:
        pytest.skip("needs the mosquitto fixture of tests/conftest.py")


class Centre:
    """A subscriber on the box's topic tree, as the centre would run it."""

    def __init__(self, host: str, port: int, base: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="centre")
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.subscribe(f"{base}/event/#", qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.cond:
            self.events.append(json.loads(msg.payload))
            self.cond.notify_all()

    def of(self, type_: str) -> list[dict[str, Any]]:
        with self.cond:
            return [e["data"] for e in self.events if e["type"] == type_]

    def wait_for(self, type_: str, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.of(type_)) >= n, timeout)
        return self.of(type_)

    def publish_retained(self, topic: str, obj: dict[str, Any]) -> None:
        self.client.publish(topic, json.dumps(obj), qos=1, retain=True).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def pty_link(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    master, slave = os.openpty()
    link = tmp_path / "ttyRDM6300"
    link.symlink_to(os.ttyname(slave))
    yield master, link
    os.close(master)
    os.close(slave)


def _plan(first_due: float) -> dict[str, Any]:
    start = first_due - first_due % 60  # the schedule's minute (UTC)
    hhmm = datetime.fromtimestamp(start, UTC).strftime("%H:%M")
    stops = [
        {"checkpoint": cp, "at_min": (first_due - start + i * STEP) / 60}
        for i, cp in enumerate("ABCD")
    ]
    return {
        "version": "e2e",
        "roster": [{"id": "o-17", "name": "Li Wei", "tags": ["em4100:62E3086CED"]}],
        "checkpoints": {"gate": "A"},
        "routes": [
            {
                "id": "round",
                "stops": stops,
                "early_min": TOL / 60,
                "late_min": TOL / 60,
                "window_min": SPAN / 60,
                "schedule": {"times": [hhmm], "tz": "UTC"},
            }
        ],
    }


def _patrol(agent: Any) -> Any:
    return next(c for c in agent.components if c.name == "patrol")


def _wait(pred: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


def test_round_with_restart_over_mqtt(broker: Any, tmp_path: Path, pty_link: Any) -> None:
    master, link = pty_link
    settings = Settings(
        device={"id": "box-e2e", "state_dir": tmp_path / "state"},
        mqtt={"urls": [broker.url]},
        control={"socket": tmp_path / "control.sock"},
        patrol={
            "readers": [
                {"type": "rdm6300", "name": "gate", "port": str(link), "presence_gap_s": 0.2},
                *({"type": "sim", "name": c.lower(), "checkpoint": c} for c in "BCD"),
            ],
            "retap_holdoff_s": 0,
            "tick_s": 0.2,
        },
    )
    centre = Centre(broker.host, broker.port, settings.topic_base)
    agent = daemon.Agent(settings)
    agent.start()
    try:
        _wait(lambda: agent.link.connected)
        _wait(lambda: _patrol(agent).readers["gate"].status()["connected"])
        due = time.time() + 3.0  # stop A is due in 3 s
        centre.publish_retained(f"{settings.topic_base}/config/patrol-config", _plan(due))
        _wait(lambda: _patrol(agent).plan.version == "e2e")

        _sleep_until(due)
        os.write(master, encode_ascii_frame(CARD))  # A on time, as real reader bytes
        _sleep_until(due + 2 * STEP - 4.0)  # C's window has opened, B's is still open
        agent.ctx.simulators.dispatch("tap", {"argv": ["c", "em4100:62E3086CED"]})
        taps = centre.wait_for("patrol.tap", 2)
    finally:
        agent.stop()
        agent.shutdown()  # the box goes down mid-route, with B untapped

    _sleep_until(due + STEP + SPAN + 0.5)  # B's window closes while the box is down
    agent = daemon.Agent(settings)
    agent.start()
    try:
        missed = centre.wait_for("patrol.missed", 1)
        _sleep_until(due + 3 * STEP + 2 * TOL)  # D late
        agent.ctx.simulators.dispatch("tap", {"argv": ["d", "em4100:62E3086CED"]})
        taps = centre.wait_for("patrol.tap", 3)
        _sleep_until(due + 3 * STEP + SPAN + 1.0)  # every window has closed
        time.sleep(0.5)
        missed = centre.of("patrol.missed")
    finally:
        agent.stop()
        agent.shutdown()
        centre.close()

    assert [(t["checkpoint"], t["status"]) for t in taps] == [
        ("A", "on_time"),
        ("C", "out_of_order"),
        ("D", "late"),
    ]
    assert taps[0]["simulated"] is False and taps[0]["officer"]["id"] == "o-17"
    assert taps[1]["timing"] == "early"
    assert [(m["checkpoint"], m["stop"]) for m in missed] == [("B", 1)]
    assert len({t["tap_id"] for t in taps}) == 3
