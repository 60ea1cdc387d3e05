"""Delivery through a real mosquitto: outages, broker restarts, SIGKILLs, priorities."""

from __future__ import annotations

import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from agent.config import Settings, load_settings
from agent.events import Event
from agent.link import Link
from agent.outbox import Outbox
from tests.fixtures.agent import AgentProcess, base_config
from tests.fixtures.broker import Mosquitto
from tests.fixtures.subscriber import Subscriber


def _settings(tmp_path: Path, url: str, **mqtt: Any) -> Settings:
    cfg = tmp_path / "agent.toml"
    extra = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in mqtt.items())
    cfg.write_text(base_config(tmp_path / "state", url, mqtt_extra=extra))
    return load_settings(cfg)


def _dedupe(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for p in payloads:
        if p["id"] not in seen:
            seen.add(p["id"])
            out.append(p)
    return out


def test_20000_events_across_10_broker_restarts(tmp_path: Path, mosquitto: Mosquitto) -> None:
    settings = _settings(tmp_path, mosquitto.url)
    sub = Subscriber(mosquitto.host, mosquitto.port, f"{settings.topic_base}/event/#",
                     client_id=f"sub-{uuid.uuid4().hex[:8]}")
    outbox = Outbox(settings.outbox_path, settings.device.id)
    link = Link(settings, outbox, boot_id="b", boot_count=1)
    link.start()
    produced: list[Event] = []
    types = ["alarm.panic", "patrol.tap", "vision.object", "device.sample"]
    rng = random.Random(7)

    def produce() -> None:
        for i in range(200):
            futs = [outbox.submit(rng.choice(types), {"batch": i, "n": j}) for j in range(100)]
            produced.extend(f.result() for f in futs)
            time.sleep(0.004)

    producer = threading.Thread(target=produce)
    producer.start()
    for _ in range(10):
        time.sleep(rng.uniform(0.05, 0.4))
        mosquitto.stop()
        time.sleep(rng.uniform(0.05, 0.3))
        mosquitto.start()
    producer.join()
    ok = sub.wait_for(lambda s: len({p["id"] for p in s.payloads()}) >= 20000, timeout=120)
    got = _dedupe(sub.payloads())
    link.stop()
    outbox.close()
    sub.close()
    assert ok, f"only {len(got)} of 20000 distinct events arrived"
    assert len(produced) == 20000
    assert {p["id"] for p in got} == {e.id for e in produced}
    # seq: no gaps, no repeats.
    assert sorted(p["seq"] for p in got) == list(range(1, 20001))
    # Per-class order holds after de-duplication.
    for cls in ("alarm", "patrol", "vision", "telemetry"):
        seqs = [p["seq"] for p in got if p["priority"] == cls]
        assert seqs == sorted(seqs), f"{cls} out of order"
    # Delivered exactly as produced.
    by_id = {e.id: e for e in produced}
    assert all(Event.from_json(_json(p)) == by_id[p["id"]] for p in got[:500])


def _json(p: dict[str, Any]) -> bytes:
    import json

    return json.dumps(p).encode()


def test_sigkill_during_burst_loses_nothing_returned(tmp_path: Path,
                                                     mosquitto: Mosquitto) -> None:
    state = tmp_path / "state"
    cfg = tmp_path / "agent.toml"
    cfg.write_text(base_config(state, mosquitto.url))
    settings = load_settings(cfg)
    sub = Subscriber(mosquitto.host, mosquitto.port, f"{settings.topic_base}/event/#",
                     client_id=f"sub-{uuid.uuid4().hex[:8]}")
    agent = AgentProcess(cfg, state)
    returned: list[str] = []
    for round_no in range(5):
        agent.start()
        stop = threading.Event()

        def burst(stop: threading.Event = stop, round_no: int = round_no) -> None:
            n = 0
            while not stop.is_set():
                try:
                    kind = "alarm.panic" if n % 3 == 0 else "patrol.tap"
                    reply = agent.simulate("event", kind, "--count", "20",
                                           "--data", f'{{"round": {round_no}}}')
                except Exception:
                    return  # the agent died mid-request: that batch never returned
                if reply.get("ok"):
                    returned.extend(reply["result"]["ids"])
                n += 1

        t = threading.Thread(target=burst)
        t.start()
        time.sleep(random.uniform(0.3, 0.8))
        agent.kill()
        stop.set()
        t.join()
    agent.start(wait_connected=True)
    assert sub.wait_for(lambda s: {p["id"] for p in s.payloads()} >= set(returned), 60), (
        f"missing {len(set(returned) - {p['id'] for p in sub.payloads()})} of {len(returned)}"
    )
    seqs = sorted({p["seq"] for p in sub.payloads()})
    assert seqs == list(range(1, len(seqs) + 1)), "seq must have no gaps across SIGKILLs"
    assert len(returned) > 100
    agent.terminate()
    sub.close()


def test_live_alarm_overtakes_backlog(tmp_path: Path, mosquitto: Mosquitto) -> None:
    settings = _settings(tmp_path, mosquitto.url, window=8)
    outbox = Outbox(settings.outbox_path, settings.device.id)
    futs = [outbox.submit("device.sample", {"i": i, "pad": "x" * 200}) for i in range(20000)]
    for f in futs:
        f.result()
    sub = Subscriber(mosquitto.host, mosquitto.port, f"{settings.topic_base}/#",
                     client_id=f"sub-{uuid.uuid4().hex[:8]}")
    link = Link(settings, outbox, boot_id="b", boot_count=1)
    link.start()
    assert sub.wait_for(lambda s: len(s.payloads("outpost/")) > 500, 30)
    alarm = outbox.put("alarm.panic", {"button": "front"})
    assert sub.wait_for(lambda s: any(p.get("id") == alarm.id for p in s.payloads()), 30)
    order = [p.get("id") for p in sub.payloads() if "seq" in p]
    position = order.index(alarm.id)
    link.stop(flush_timeout=0)
    outbox.close()
    sub.close()
    # The alarm went out long before the 20,000-event backlog finished.
    assert position < 5000, f"alarm published after {position} backlog events"


def test_last_will_on_kill_and_clean_offline_on_stop(tmp_path: Path,
                                                     mosquitto: Mosquitto) -> None:
    state = tmp_path / "state"
    cfg = tmp_path / "agent.toml"
    cfg.write_text(base_config(state, mosquitto.url, mqtt_extra="keepalive_s = 5"))
    settings = load_settings(cfg)
    sub = Subscriber(mosquitto.host, mosquitto.port, settings.topic_base + "/state",
                     client_id=f"sub-{uuid.uuid4().hex[:8]}", persistent=False)
    agent = AgentProcess(cfg, state)
    agent.start(wait_connected=True)
    assert sub.wait_for(lambda s: any(p["state"] == "online" for p in s.payloads()), 10)
    birth = [p for p in sub.payloads() if p["state"] == "online"][-1]
    assert birth["boot_count"] == 1 and birth["boot_id"] and birth["version"]
    agent.kill()
    # The broker sends the will as soon as it sees the socket close.
    assert sub.wait_for(lambda s: s.payloads()[-1]["state"] == "offline", 20)
    will = sub.payloads()[-1]
    assert will["boot_id"] == birth["boot_id"] and will["bdseq"] == birth["bdseq"]
    agent.start(wait_connected=True)
    assert sub.wait_for(lambda s: s.payloads()[-1]["state"] == "online", 10)
    assert sub.payloads()[-1]["boot_count"] == 2
    assert agent.terminate() == 0
    assert sub.wait_for(lambda s: s.payloads()[-1]["state"] == "offline", 10)
    sub.close()


def test_outbox_holds_events_while_broker_down_then_drains(tmp_path: Path,
                                                           mosquitto: Mosquitto) -> None:
    state = tmp_path / "state"
    cfg = tmp_path / "agent.toml"
    cfg.write_text(base_config(state, mosquitto.url))
    settings = load_settings(cfg)
    sub = Subscriber(mosquitto.host, mosquitto.port, f"{settings.topic_base}/event/#",
                     client_id=f"sub-{uuid.uuid4().hex[:8]}")
    agent = AgentProcess(cfg, state)
    agent.start(wait_connected=True)
    mosquitto.stop()
    ids = agent.simulate("event", "patrol.tap", "--count", "50")["result"]["ids"]
    alarm = agent.simulate("event", "alarm.panic")["result"]["ids"][0]
    # A load-test sized count answers with the count and the seq range, not 3,000 ids.
    load = agent.simulate("event", "device.sample", "--count", "3000")["result"]
    assert load["count"] == 3000 and load["last_seq"] - load["first_seq"] == 2999
    st = agent.status()
    assert not st["link"]["connected"]
    assert st["outbox"]["patrol"]["depth"] == 50 and st["outbox"]["alarm"]["depth"] == 1
    assert st["outbox"]["telemetry"]["depth"] >= 3000
    mosquitto.start()
    assert sub.wait_for(lambda s: len([p for p in s.payloads() if "simulated" in p["data"]
                                       and p["type"] == "device.sample"]) >= 3000, 60)
    got = [p["id"] for p in sub.payloads()]
    assert got[0] == alarm, "the alarm leads the backlog after reconnect"
    patrol = [p["id"] for p in sub.payloads() if p["type"] == "patrol.tap"]
    assert patrol == ids
    agent.terminate()
    sub.close()
