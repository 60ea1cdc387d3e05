"""Tap latency on the box: RDM6300 frame bytes written into a pseudo-terminal → the
``patrol.tap`` event durable in the real SQLite outbox (p50 / p99 / max, milliseconds).

Usage::

    .venv/bin/python bench/patrol_tap_latency.py [--taps 200]

The same-run baseline is the pty itself: the same 14 bytes through the same pty into a
bare ``serial.Serial.read`` loop.

``--mqtt`` also runs the whole daemon (``agent.daemon.Agent``) against a local mosquitto and
measures frame bytes in → the ``patrol.tap`` message arriving at a subscriber (the centre's
view; the box's PUBACK arrives at about the same time).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import serial

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.events import Event, Priority
from agent.outbox import Outbox
from agent.patrol.config import PatrolConfig
from agent.patrol.service import PatrolService
from drivers.rfid.rdm6300 import encode_ascii_frame


class TimedSink:
    """Puts into the outbox and notes when ``put`` returned (the event is on disk)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.done: dict[str, float] = {}
        self.cond = threading.Condition()

    def emit(
        self, type: str, data: Mapping[str, Any] | None = None, *, priority: Priority | None = None
    ) -> Event:
        ev = self.outbox.put(type, data, priority=priority)
        if type == "patrol.tap" and data is not None:
            with self.cond:
                self.done[data["tag"]["uid"]] = time.perf_counter()
                self.cond.notify_all()
        return ev


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def run_service(n: int, tmp: Path) -> list[float]:
    master, slave = os.openpty()
    link = tmp / "ttyRDM"
    link.symlink_to(os.ttyname(slave))
    outbox = Outbox(tmp / "outbox.db", "bench")
    sink = TimedSink(outbox)
    cfg = PatrolConfig.model_validate(
        {
            "readers": [
                {"type": "rdm6300", "name": "gate", "port": str(link), "presence_gap_s": 0}
            ],
            "retap_holdoff_s": 0,
        }
    )
    svc = PatrolService(cfg, sink, tmp / "state")
    svc.start()
    reader = svc.readers["gate"]
    while not reader.status()["connected"]:
        time.sleep(0.01)
    time.sleep(0.1)
    rng = random.Random(3)
    lat = []
    try:
        for _ in range(n):
            data = rng.randbytes(5)
            uid = data.hex().upper()
            t0 = time.perf_counter()
            os.write(master, encode_ascii_frame(data))
            with sink.cond:
                if not sink.cond.wait_for(lambda uid=uid: uid in sink.done, 5):  # type: ignore[misc]
                    raise SystemExit("a tap never arrived")
            lat.append((sink.done[uid] - t0) * 1000)
            time.sleep(0.01)
    finally:
        svc.stop()
        outbox.close()
        os.close(master)
        os.close(slave)
    return lat


def run_baseline(n: int) -> list[float]:
    master, slave = os.openpty()
    port = serial.Serial(os.ttyname(slave), 9600, timeout=0.1)
    frame = encode_ascii_frame(b"\x01\x02\x03\x04\x05")
    lat = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(master, frame)
            got = b""
            while len(got) < len(frame):
                got += port.read(max(1, port.in_waiting))
            lat.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.01)
    finally:
        port.close()
        os.close(master)
        os.close(slave)
    return lat


def run_mqtt(n: int, tmp: Path) -> list[float]:
    import json

    import paho.mqtt.client as mqtt

    from agent.config import Settings
    from agent.daemon import Agent
    from tests.fixtures.broker import Mosquitto

    broker = Mosquitto(tmp / "broker")
    broker.start()
    master, slave = os.openpty()
    link = tmp / "ttyRDM-mqtt"
    link.symlink_to(os.ttyname(slave))
    settings = Settings(
        device={"id": "bench", "state_dir": tmp / "mqtt-state"},
        mqtt={"urls": [broker.url]},
        control={"socket": tmp / "control.sock"},
        patrol={
            "readers": [
                {"type": "rdm6300", "name": "gate", "port": str(link), "presence_gap_s": 0}
            ],
            "retap_holdoff_s": 0,
        },
    )
    arrived: dict[str, float] = {}
    cond = threading.Condition()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        t = time.perf_counter()
        uid = json.loads(msg.payload)["data"]["tag"]["uid"]
        with cond:
            arrived[uid] = t
            cond.notify_all()

    centre = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-centre")
    centre.on_message = on_message
    centre.connect(broker.host, broker.port)
    centre.subscribe(f"{settings.topic_base}/event/patrol/tap", qos=1)
    centre.loop_start()
    agent = Agent(settings)
    agent.start()
    lat = []
    try:
        patrol = next(c for c in agent.components if c.name == "patrol")
        while not (agent.link.connected and patrol.readers["gate"].status()["connected"]):
            time.sleep(0.01)
        time.sleep(0.2)
        rng = random.Random(5)
        for _ in range(n):
            data = rng.randbytes(5)
            uid = data.hex().upper()
            t0 = time.perf_counter()
            os.write(master, encode_ascii_frame(data))
            with cond:
                if not cond.wait_for(lambda uid=uid: uid in arrived, 5):  # type: ignore[misc]
                    raise SystemExit("a tap never reached the subscriber")
            lat.append((arrived[uid] - t0) * 1000)
            time.sleep(0.01)
    finally:
        agent.stop()
        agent.shutdown()
        centre.loop_stop()
        centre.disconnect()
        broker.stop()
        os.close(master)
        os.close(slave)
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--taps", type=int, default=200)
    ap.add_argument("--mqtt", action="store_true", help="also through the daemon and mosquitto")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        lat = run_service(args.taps, Path(d))
        rows = [("in outbox", lat)]
        if args.mqtt:
            rows.append(("at centre", run_mqtt(args.taps, Path(d))))
    base = run_baseline(args.taps)
    rows.append(("pty baseline", base))
    print(f"{args.taps} taps; RDM6300 frame bytes into a pty → patrol.tap")
    for name, v in rows:
        print(
            f"{name:<13} p50 {statistics.median(v):6.2f} ms   p99 {pct(v, 0.99):6.2f} ms   "
            f"max {max(v):6.2f} ms"
        )
    print(
        "p50 ratio (in outbox / baseline) "
        f"{statistics.median(lat) / statistics.median(base):.1f}x; "
        "goal ≤ 20 ms end to end"
    )


if __name__ == "__main__":
    main()
