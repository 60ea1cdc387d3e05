"""Benchmark: drain a telemetry backlog through the Link vs raw paho, and alarm latency.

Fills an outbox with ``--events`` telemetry events (~200-byte JSON), starts a local mosquitto
(persistence off, unlimited inflight/queue), then times the Link until every event is PUBACKed
and deleted. Same-run baselines: raw paho-mqtt QoS 1 publishing of the same payloads with the
same max_inflight, without and with the MQTT5 ``event_id`` user property. Alarm latency
(put() call to PUBACK) is measured while the backlog drains and on an idle link.

    .venv/bin/python bench/drain.py [--events 100000] [--window 64]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.config import Settings
from agent.events import Priority
from agent.link import Link
from agent.outbox import Outbox, Pending
from tests.fixtures.broker import Mosquitto


def sample_data(i: int) -> dict[str, object]:
    return {
        "cpu_temp_c": 48.5 + (i % 10) / 10,
        "load": [0.42, 0.38, 0.31],
        "mem_free_mb": 612,
        "disk_free_mb": 10240,
        "uptime_s": 86400 + i,
        "note": "periodic sample",
    }


def fill(outbox: Outbox, n: int) -> float:
    t0 = time.perf_counter()
    futs = [
        outbox.submit("device.sample", sample_data(i), priority=Priority.TELEMETRY)
        for i in range(n)
    ]
    for f in futs:
        f.result()
    return time.perf_counter() - t0


def raw_paho(
    url_port: int, payloads: list[tuple[str, bytes, str]], window: int, user_prop: bool
) -> float:
    # The window is kept here as well as in paho: publishing into paho's own queue from
    # another thread can leave messages stuck past max_inflight (seen: 100k never completed).
    slots = threading.Semaphore(window)
    done = threading.Event()
    acked = [0]
    total = len(payloads)

    def on_publish(
        client: mqtt.Client, userdata: object, mid: int, rc: object, props: object
    ) -> None:
        acked[0] += 1
        slots.release()
        if acked[0] >= total:
            done.set()

    connected = threading.Event()
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"raw-{user_prop}", protocol=mqtt.MQTTv5
    )
    c.on_publish = on_publish
    c.on_connect = lambda *a: connected.set()
    c.max_inflight_messages_set(window)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", url_port)
    c.loop_start()
    connected.wait(10)
    t0 = time.perf_counter()
    for topic, payload, eid in payloads:
        props = None
        if user_prop:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [("event_id", eid)]
        slots.acquire()
        c.publish(topic, payload, qos=1, properties=props)
    if not done.wait(120):
        print(f"  WARNING: raw paho stalled at {acked[0]}/{total} acks")
    dt = time.perf_counter() - t0
    c.disconnect()
    c.loop_stop()
    return dt


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def fmt_lat(name: str, xs: list[float]) -> str:
    if not xs:
        return f"{name}: no samples"
    ms = [x * 1000 for x in xs]
    return (
        f"{name}: n={len(ms)} p50={statistics.median(ms):.2f} ms p99={pct(ms, 99):.2f} ms "
        f"max={max(ms):.2f} ms"
    )


class AlarmProbe:
    """Injects alarms every ``period`` s from its own thread; pairs put() start with PUBACK."""

    def __init__(self, outbox: Outbox, period: float) -> None:
        self.outbox = outbox
        self.period = period
        self.started: dict[str, float] = {}
        self.stored: dict[str, float] = {}
        self.acked: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-alarms", daemon=True)

    def on_published(self, item: Pending) -> None:
        if item.cls is Priority.ALARM:
            self.acked[item.id] = time.perf_counter()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            t0 = time.perf_counter()
            ev = self.outbox.put(
                "alarm.panic", {"button": "bench", "n": n}, priority=Priority.ALARM
            )
            self.started[ev.id] = t0
            self.stored[ev.id] = time.perf_counter()
            n += 1
            self._stop.wait(max(0.0, self.period - (time.perf_counter() - t0)))

    def latencies(self, wait_s: float = 5.0) -> list[float]:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and set(self.started) - set(self.acked):
            time.sleep(0.01)
        missing = set(self.started) - set(self.acked)
        if missing:
            print(f"  WARNING: {len(missing)} alarms not acknowledged")
        return [self.acked[i] - t for i, t in self.started.items() if i in self.acked]

    def put_latencies(self) -> list[float]:
        """put() call to return: the alarm is on disk (fsynced)."""
        return [self.stored[i] - t for i, t in self.started.items()]


def drain(
    outbox: Outbox, link_box: list[Link], settings: Settings, n: int, probe: AlarmProbe | None
) -> float:
    """Start a Link on a filled outbox; seconds until the telemetry backlog is gone."""
    link = Link(
        settings,
        outbox,
        boot_id="bench",
        boot_count=1,
        on_published=probe.on_published if probe else None,
    )
    link_box.append(link)
    t0 = time.perf_counter()
    link.start()
    if probe:
        probe.start()
    while outbox.depths()[Priority.TELEMETRY] > 0:
        time.sleep(0.002)  # in-memory counters: polling them costs the link nothing
    dt = time.perf_counter() - t0
    if probe:
        probe.stop()
    return dt


def run_link(
    tmp: Path, port: int, n: int, window: int, alarm_period: float, idle_s: float
) -> float:
    outbox = Outbox(tmp / "outbox.db", "bench-01", max_bytes=2 * 1024**3)
    settings = Settings(
        device={"id": "bench-01", "state_dir": str(tmp)},
        mqtt={"urls": [f"mqtt://127.0.0.1:{port}"], "window": window},
    )
    fill_s = fill(outbox, n)
    sample = outbox.fetch(Priority.TELEMETRY, 0, 1)[0]
    print(
        f"backlog: {n} telemetry events ({len(sample.payload)}-byte payloads) stored in "
        f"{fill_s:.1f}s"
    )
    links: list[Link] = []
    drain_s = drain(outbox, links, settings, n, None)
    rate = n / drain_s
    print(
        f"link drain: {n} events PUBACKed+deleted in {drain_s:.2f}s = {rate:,.0f} msg/s "
        f"(from Link.start(), connect included)"
    )
    links.pop().stop()

    fill(outbox, n)
    probe = AlarmProbe(outbox, alarm_period)
    drain_s = drain(outbox, links, settings, n, probe)
    busy = probe.latencies()
    print(
        f"link drain with an alarm every {alarm_period * 1000:.0f} ms: {n / drain_s:,.0f} "
        f"msg/s ({len(busy)} alarms)"
    )
    print("  " + fmt_lat("alarm put()->PUBACK during drain", busy))
    print("  " + fmt_lat("  of which put() (stored, fsynced)", probe.put_latencies()))
    idle = AlarmProbe(outbox, alarm_period)
    links[0]._on_published = idle.on_published
    idle.start()
    time.sleep(idle_s)
    idle.stop()
    print("  " + fmt_lat("alarm put()->PUBACK idle link", idle.latencies()))
    links.pop().stop()
    outbox.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--alarm-period-ms", type=float, default=10.0)
    ap.add_argument("--idle-s", type=float, default=5.0)
    ap.add_argument(
        "--switch-interval-ms",
        type=float,
        default=1.0,
        help="sys.setswitchinterval (default 1 ms, as `outpost run` sets it; CPython: 5 ms)",
    )
    args = ap.parse_args()
    sys.setswitchinterval(args.switch_interval_ms / 1000)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory(prefix="outpost-bench-") as d:
        tmp = Path(d)
        broker = Mosquitto(tmp / "broker", persistence=False)
        broker.start()
        try:
            link_rate = run_link(
                tmp, broker.port, args.events, args.window, args.alarm_period_ms / 1000, args.idle_s
            )
            # Same payloads and topics as the outbox produced.
            topic = "outpost/demo/city/county/bench-01/evt/device/sample"
            payloads = []
            for i in range(args.events):
                body = {
                    "id": f"0190{i:028x}",
                    "device_id": "bench-01",
                    "type": "device.sample",
                    "seq": i,
                    "ts": "2026-11-24T17:00:00.000Z",
                    "priority": "telemetry",
                    "data": sample_data(i),
                }
                payloads.append((topic, json.dumps(body).encode(), body["id"]))
            for user_prop in (False, True):
                dt = raw_paho(broker.port, payloads, args.window, user_prop)
                rate = args.events / dt
                label = "raw paho + user property" if user_prop else "raw paho"
                print(
                    f"{label}: {args.events} in {dt:.2f}s = {rate:,.0f} msg/s; "
                    f"link/this = {link_rate / rate:.2f}x"
                )
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
