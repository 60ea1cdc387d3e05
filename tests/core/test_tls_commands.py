"""Mutual TLS, broker failover and the command/reply path over a real mosquitto."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.config import load_settings
from tests.fixtures.agent import AgentProcess, base_config
from tests.fixtures.broker import Mosquitto, free_port
from tests.fixtures.subscriber import Subscriber

pytest.importorskip("cryptography.x509", reason="cryptography (provision extra)")
from tests.fixtures.pki import make_pki


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    d.mkdir()
    make_pki(d, extra_clients=("centre",))
    return d


def test_mutual_tls_required_by_broker(tmp_path: Path, pki: Path) -> None:
    port = free_port()
    broker = Mosquitto(tmp_path / "broker", port=port, extra=(
        f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
        "require_certificate true\nuse_identity_as_username true\n"))
    broker.start()
    try:
        sub = _tls_subscriber(port, pki)
        state = tmp_path / "state"
        cfg = tmp_path / "agent.toml"
        tls = (f'[mqtt.tls]\nca_file = "{pki / "ca.crt"}"\ncert_file = "{pki / "test-box.crt"}"\n'
               f'key_file = "{pki / "test-box.key"}"\n')
        cfg.write_text(base_config(state, f"mqtts://127.0.0.1:{port}", extra=tls))
        agent = AgentProcess(cfg, state)
        agent.start(wait_connected=True)
        eid = agent.simulate("event", "alarm.panic")["result"]["ids"][0]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and eid.encode() not in b"".join(sub.got):
            time.sleep(0.05)
        assert eid.encode() in b"".join(sub.got)
        agent.terminate()
        # Without a client certificate the same broker refuses the agent.
        cfg.write_text(base_config(tmp_path / "state2", f"mqtts://127.0.0.1:{port}",
                                   extra=f'[mqtt.tls]\nca_file = "{pki / "ca.crt"}"\n'))
        agent2 = AgentProcess(cfg, tmp_path / "state2")
        agent2.start()
        time.sleep(2)
        st = agent2.status()["link"]
        assert not st["connected"] and st["last_error"]
        agent2.terminate()
        sub.client.loop_stop()
    finally:
        broker.stop()


class _TlsSub:
    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self.got: list[bytes] = []


def _tls_subscriber(port: int, pki: Path) -> _TlsSub:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="centre")
    c.tls_set(ca_certs=str(pki / "ca.crt"), certfile=str(pki / "centre.crt"),
              keyfile=str(pki / "centre.key"))
    sub = _TlsSub(c)
    c.on_message = lambda cl, u, m: sub.got.append(m.payload)
    c.connect("127.0.0.1", port)
    c.subscribe("outpost/#", qos=1)
    c.loop_start()
    time.sleep(0.3)
    return sub


def test_failover_to_second_broker(tmp_path: Path, mosquitto: Mosquitto) -> None:
    dead = f"mqtt://127.0.0.1:{free_port()}"
    state = tmp_path / "state"
    cfg = tmp_path / "agent.toml"
    cfg.write_text(base_config(state, dead).replace(
        f'urls = ["{dead}"]', f'urls = ["{dead}", "{mosquitto.url}"]'))
    agent = AgentProcess(cfg, state)
    agent.start(wait_connected=True)
    assert agent.status()["link"]["broker"] == mosquitto.url
    agent.terminate()


def _request(port: int, topic: str, payload: bytes, *, v5: bool, reply_topic: str,
             correlation: bytes | None = None, timeout: float = 10) -> dict:
    proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"centre-{uuid.uuid4().hex[:6]}",
                    protocol=proto)
    got: list[mqtt.MQTTMessage] = []
    c.on_message = lambda cl, u, m: got.append(m)
    c.connect("127.0.0.1", port)
    c.subscribe(reply_topic, qos=1)
    c.loop_start()
    time.sleep(0.2)
    props = None
    if v5:
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply_topic
        if correlation is not None:
            props.CorrelationData = correlation
    c.publish(topic, payload, qos=1, properties=props).wait_for_publish(5)
    deadline = time.monotonic() + timeout
    while not got and time.monotonic() < deadline:
        time.sleep(0.02)
    c.loop_stop()
    c.disconnect()
    assert got, f"no reply on {reply_topic}"
    msg = got[0]
    reply = json.loads(msg.payload)
    if v5:
        reply["_correlation"] = getattr(msg.properties, "CorrelationData", None)
    return reply


def test_commands_mqtt5_and_311_fallback_and_bad_input(tmp_path: Path,
                                                       mosquitto: Mosquitto) -> None:
    state = tmp_path / "state"
    cfg = tmp_path / "agent.toml"
    cfg.write_text(base_config(state, mosquitto.url))
    base = load_settings(cfg).topic_base
    agent = AgentProcess(cfg, state)
    agent.start(wait_connected=True)
    # MQTT 5: response topic + correlation data.
    r = _request(mosquitto.port, f"{base}/cmd/ping", b"", v5=True, reply_topic="centre/r/1",
                 correlation=b"req-42")
    assert r["ok"] and r["result"]["pong"] and r["_correlation"] == b"req-42"
    # MQTT 3.1.1: reply_to and correlation_id in the payload.
    r = _request(mosquitto.port, f"{base}/cmd/ping",
                 json.dumps({"reply_to": "centre/r/2", "correlation_id": "abc"}).encode(),
                 v5=False, reply_topic="centre/r/2")
    assert r["ok"] and r["correlation_id"] == "abc"
    # 3.1.1 without reply_to: the default reply topic.
    r = _request(mosquitto.port, f"{base}/cmd/status", b"", v5=False,
                 reply_topic=f"{base}/reply/status")
    assert r["ok"] and r["result"]["device_id"] == "test-box"
    # Malformed and unknown commands get a reason; the daemon keeps running.
    r = _request(mosquitto.port, f"{base}/cmd/ping", b"{not json", v5=True,
                 reply_topic="centre/r/3")
    assert not r["ok"] and "not JSON" in r["error"]
    r = _request(mosquitto.port, f"{base}/cmd/self-destruct", b"{}", v5=True,
                 reply_topic="centre/r/4")
    assert not r["ok"] and "unknown command" in r["error"]
    r = _request(mosquitto.port, f"{base}/cmd/ping", b"\xff\xfe", v5=True,
                 reply_topic="centre/r/5")
    assert not r["ok"]
    st = agent.status()
    assert st["commands"]["rejected"] == 3 and st["commands"]["accepted"] == 3
    assert st["link"]["connected"]
    sub = Subscriber(mosquitto.host, mosquitto.port, f"{base}/event/#",
                     client_id=f"sub-{uuid.uuid4().hex[:6]}")
    eid = agent.simulate("event", "alarm.panic")["result"]["ids"][0]
    assert sub.wait_for(lambda s: any(p["id"] == eid for p in s.payloads()), 10)
    assert agent.terminate() == 0
    sub.close()
