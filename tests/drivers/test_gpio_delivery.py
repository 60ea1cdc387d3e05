"""Panic presses through the real daemon (mock GPIO pins) to a real mosquitto."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from agent.config import load_settings
from tests.fixtures.agent import AgentProcess, base_config
from tests.fixtures.broker import Mosquitto
from tests.fixtures.subscriber import Subscriber

GPIO = """
[gpio]
mock = true
ack_timeout_s = 0

[[gpio.buttons]]
name = "front"
pin = 17
min_press_ms = 20
release_ms = 20
cancel_window_s = 0

[[gpio.buttons]]
name = "duress"
pin = 27
mode = "duress"

[gpio.tamper]
pin = 22

[gpio.led]
pin = 5

[gpio.buzzer]
pin = 6
"""


def _agent(tmp_path: Path, mosquitto: Mosquitto) -> tuple[AgentProcess, Subscriber, str]:
    state = tmp_path / "state"
    cfg = tmp_path / "agent.toml"
    cfg.write_text(base_config(state, mosquitto.url, extra=GPIO))
    base = load_settings(cfg).topic_base
    sub = Subscriber(
        mosquitto.host, mosquitto.port, f"{base}/event/#", client_id=f"sub-{uuid.uuid4().hex[:8]}"
    )
    return AgentProcess(cfg, state), sub, base


def _start(agent: AgentProcess) -> None:
    """Start and wait until the GPIO component is built (the control socket answers first)."""
    agent.start(wait_connected=True)
    deadline = time.monotonic() + 20
    while not agent.status()["components"].get("gpio", {}).get("started"):
        assert time.monotonic() < deadline, "gpio component never appeared in status"
        time.sleep(0.05)


def test_alarm_raised_while_broker_down_is_delivered_first(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    agent, sub, base = _agent(tmp_path, mosquitto)
    _start(agent)
    try:
        mosquitto.stop()
        backlog = agent.simulate("event", "patrol.tap", "--count", "50")["result"]["ids"]
        reply = agent.simulate("press", "front")
        assert reply["ok"] is True, reply
        (alarm,) = reply["result"]["events"]
        assert alarm["type"] == "alarm.panic"
        st = agent.status()
        assert not st["link"]["connected"]
        assert st["components"]["gpio"]["led"] == "awaiting"
        mosquitto.start()
        assert sub.wait_for(lambda s: len(s.payloads()) >= 51, 30), (
            [m.topic for m in sub.messages][:5],
            len(sub.messages),
            agent.status()["link"],
        )
        msgs = [(m.topic, m.payload) for m in sub.messages]
        first_topic = msgs[0][0]
        got = [p["id"] for p in sub.payloads()]
        assert got[0] == alarm["id"], "the alarm leads the backlog after reconnect"
        assert first_topic == f"{base}/event/alarm/panic"
        assert sorted(i for i in got if i != alarm["id"]) == sorted(backlog)
        panic = sub.payloads()[0]
        assert panic["data"]["contact_id"]["code"] == 120
        assert panic["data"]["button"] == "front"
    finally:
        agent.terminate()
        sub.close()


def test_every_press_is_delivered_when_the_outbox_empties_between_presses(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Each alarm is delivered and acknowledged before the next press."""
    agent, sub, _ = _agent(tmp_path, mosquitto)
    _start(agent)
    try:
        ids = []
        for n in range(1, 4):
            (event,) = agent.simulate("press", "front")["result"]["events"]
            ids.append(event["id"])
            assert sub.wait_for(lambda s, n=n: len(s.payloads("")) >= n, 10), (
                f"press {n} not delivered; status: {agent.status()['outbox']}"
            )
        assert [p["id"] for p in sub.payloads()] == ids
    finally:
        agent.terminate()
        sub.close()
