"""Through the real daemon and a real mosquitto: vision events, `cmd/snapshot`, `cmd/clip`,
`cmd/media-get`, and pre/post-alarm pictures for a simulated panic press."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.fixtures.agent import AgentProcess, base_config, write_config
from tests.fixtures.broker import Mosquitto
from tests.fixtures.subscriber import Subscriber

BASE = "outpost/t/city/county/test-box"

VISION = """
[gpio]
mock = true

[[gpio.buttons]]
name = "front"
pin = 17
min_press_ms = 0

[vision]
enabled = true

[[vision.cameras]]
name = "yard"
detect = false
covers_buttons = ["front"]

[vision.buffer]
seconds = 20
fps = 2

[vision.alarm_pictures]
pre_s = 2
post_s = 1
pre_count = 2
post_count = 1
"""


@pytest.fixture
def agent(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[AgentProcess]:
    state = tmp_path / "state"
    body = base_config(state, mosquitto.url).replace("[vision]\nenabled = false\n", VISION)
    proc = AgentProcess(write_config(tmp_path / "outpost.toml", body), state)
    proc.start(wait_connected=True)
    yield proc
    proc.terminate()


def command(mosquitto: Mosquitto, sub: Subscriber, name: str, args: dict[str, Any]) -> Any:
    corr = f"c-{name}-{time.monotonic_ns()}"
    seen = len(sub.messages)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    payload = {**args, "reply_to": f"{BASE}/reply/{name}", "correlation_id": corr}
    client.publish(f"{BASE}/cmd/{name}", json.dumps(payload), qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()
    found: list[Any] = []

    def replied(s: Subscriber) -> bool:
        for m in list(s.messages)[seen:]:
            if m.topic == f"{BASE}/reply/{name}":
                found.append(json.loads(m.payload))
                return True
        return False

    assert sub.wait_for(replied, timeout=20), f"no reply to {name}"
    return found[0]


def test_vision_over_mqtt(agent: AgentProcess, mosquitto: Mosquitto) -> None:
    sub = Subscriber(mosquitto.host, mosquitto.port, f"{BASE}/#", client_id="vision-test")
    try:
        assert sub.wait_for(lambda s: s.payloads(f"{BASE}/event/camera/online"), timeout=30)
        time.sleep(3)  # recording window
        snap = command(mosquitto, sub, "snapshot", {"camera": "yard"})
        ref = snap["result"]["media"]
        got = command(mosquitto, sub, "media-get", {"id": ref["id"]})
        data = base64.b64decode(got["result"]["data_b64"])
        assert data[:2] == b"\xff\xd8" and hashlib.sha256(data).hexdigest() == ref["sha256"]
        clip = command(mosquitto, sub, "clip", {"camera": "yard", "seconds": 3})
        assert clip["result"]["media"]["content_type"] == "video/mp4"
        assert clip["result"]["frames"] >= 3

        agent.simulate("press", "front")
        assert sub.wait_for(lambda s: s.payloads(f"{BASE}/event/alarm/panic"), timeout=10)
        alarm = sub.payloads(f"{BASE}/event/alarm/panic")[0]

        def pictures(s: Subscriber) -> list[dict[str, Any]]:
            return [
                p
                for p in s.payloads(f"{BASE}/event/media/snapshot")
                if p["data"].get("alarm_id") == alarm["id"]
            ]

        assert sub.wait_for(lambda s: len(pictures(s)) >= 3, timeout=15)
        assert sorted(p["data"]["phase"] for p in pictures(sub)) == ["post", "pre", "pre"]
        assert all(p["priority"] == "vision" and p["seq"] > alarm["seq"] for p in pictures(sub))
    finally:
        sub.close()
