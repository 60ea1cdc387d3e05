"""Panic latency: pin edge → alarm durable in the outbox → PUBACK from a real mosquitto.

    .venv/bin/python bench/panic_latency.py [--presses 1000] [--backlog 100000]

Presses a MockFactory panic button (real gpiozero device, ``drive_low``) ``--presses`` times
and times each ``alarm.panic`` from the pin edge to (a) ``sink.emit`` returning (on disk) and
(b) the broker's PUBACK as the link reports it (``agent.link``'s ``on_published`` hook; the
bench's own stand-in publisher where ``agent.link`` is missing), first with an idle outbox,
then while a ``--backlog``-event telemetry backlog drains. The same-run baseline is the bare
path: ``Outbox.put("alarm.panic")`` → PUBACK with no GPIO in front, so the ratio shows what
the GPIO side adds. The button uses ``min_press_ms = 0`` (fires on the first edge): with the
default 50 ms minimum press the alarm is held back by exactly that on purpose.
Goal: p99 ≤ 20 ms in both cases.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.events import Event, Priority  # noqa: E402
from agent.outbox import Outbox, Pending  # noqa: E402
from drivers.gpio.config import GpioConfig  # noqa: E402
from drivers.gpio.panel import AlarmPanel  # noqa: E402

PIN = 17


class TimedOutbox(Outbox):
    """The real outbox, noting when each alarm was fetched by the link and when it was acked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rowid_to_id: dict[int, str] = {}
        self.acked_at: dict[str, float] = {}
        self.durable_at: dict[str, float] = {}
        self.alarms: list[str] = []
        self.cond = threading.Condition()

    def put(
        self,
        type: str,
        data: Mapping[str, Any] | None = None,
        *,
        priority: Priority | None = None,
    ) -> Event:
        event = super().put(type, data, priority=priority)
        if event.priority is Priority.ALARM:
            now = time.perf_counter()
            with self.cond:
                self.durable_at[event.id] = now
                self.alarms.append(event.id)
                self.cond.notify_all()
        return event

    def wait_alarm(self, count: int, timeout: float = 10.0) -> str | None:
        """The id of the ``count``-th alarm stored, once it is."""
        with self.cond:
            self.cond.wait_for(lambda: len(self.alarms) >= count, timeout)
            return self.alarms[count - 1] if len(self.alarms) >= count else None

    emit = put

    def fetch(self, cls: Priority, after_rowid: int, limit: int) -> list[Pending]:
        rows = super().fetch(cls, after_rowid, limit)
        if cls is Priority.ALARM:
            for row in rows:
                self.rowid_to_id[row.rowid] = row.id
        return rows

    def ack(self, rowids: Iterable[int]) -> None:
        now = time.perf_counter()
        rowids = list(rowids)
        with self.cond:
            for rowid in rowids:
                event_id = self.rowid_to_id.pop(rowid, None)
                if event_id is not None:
                    self.acked_at.setdefault(event_id, now)
            self.cond.notify_all()
        super().ack(rowids)

    def mark_acked(self, event_id: str) -> None:
        """The link's PUBACK hook (``agent.link``'s ``on_published``); acks may be batched."""
        now = time.perf_counter()
        with self.cond:
            self.acked_at.setdefault(event_id, now)
            self.cond.notify_all()

    def wait_acked(self, event_id: str, timeout: float = 10.0) -> float | None:
        with self.cond:
            self.cond.wait_for(lambda: event_id in self.acked_at, timeout)
            return self.acked_at.get(event_id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_inflight_messages 0\nmax_queued_messages 0\n"
    )
    proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(name: str, ms: list[float]) -> dict[str, Any]:
    return {
        "case": name,
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(pct(ms, 99), 2),
        "max_ms": round(max(ms), 2),
    }


class StandInLink:
    """A minimal QoS 1 publisher used only when ``agent.link`` is not there yet.

    Alarms first, always, with a slot beyond the backlog's window; the backlog keeps at most
    ``window`` messages in flight. Each PUBACK acks the row in the outbox, as the real link does.
    """

    def __init__(self, outbox: Outbox, port: int, window: int = 64) -> None:
        import paho.mqtt.client as mqtt

        self.outbox = outbox
        self.window = window
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id="bench-standin",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(window + 16)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self._lock = threading.Lock()
        self._inflight: dict[int, tuple[int, Priority]] = {}
        self._backlog_inflight = 0
        self._early: set[int] = set()
        self._sent_alarms: dict[str, None] = {}  # insertion-ordered set of event ids
        self._wake = threading.Event()
        self._stop = False
        self._cursor = {p: 0 for p in Priority}
        outbox.add_listener(lambda _e: self._wake.set())
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="bench-link", daemon=True)
        self._thread.start()

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        # paho calls this holding its own lock, so never publish while holding ours.
        with self._lock:
            entry = self._inflight.pop(mid, None)
            if entry is None:
                self._early.add(mid)  # PUBACK came before _send recorded the mid
                return
            if entry[1] is not Priority.ALARM:
                self._backlog_inflight -= 1
        self.outbox.ack([entry[0]])
        self._wake.set()

    def _send(self, row: Pending) -> None:
        topic = "bench/" + row.type.replace(".", "/")
        if row.cls is not Priority.ALARM:
            with self._lock:
                self._backlog_inflight += 1
        info = self.client.publish(topic, row.payload, qos=1)
        self._cursor[row.cls] = row.rowid
        with self._lock:
            early = info.mid in self._early
            if early:
                self._early.discard(info.mid)
                if row.cls is not Priority.ALARM:
                    self._backlog_inflight -= 1
            else:
                self._inflight[info.mid] = (row.rowid, row.cls)
        if early:
            self.outbox.ack([row.rowid])

    def _run(self) -> None:
        while not self._stop:
            self._wake.clear()
            busy = False
            # Alarms: scan from the start and skip what was sent, by event id. SQLite reuses
            # the rowid of a deleted last row (INTEGER PRIMARY KEY without AUTOINCREMENT), so
            # a rowid cursor could sit past a new alarm.
            for row in self.outbox.fetch(Priority.ALARM, 0, 256):
                if row.id not in self._sent_alarms:
                    self._sent_alarms[row.id] = None
                    self._send(row)
                    busy = True
            while len(self._sent_alarms) > 4096:
                del self._sent_alarms[next(iter(self._sent_alarms))]
            for cls in (Priority.PATROL, Priority.VISION, Priority.TELEMETRY):
                room = self.window - self._backlog_inflight
                if room <= 0:
                    break
                rows = self.outbox.fetch(cls, self._cursor[cls], room)
                for row in rows:
                    self._send(row)
                busy = busy or bool(rows)
                if any(
                    r.id not in self._sent_alarms for r in self.outbox.fetch(Priority.ALARM, 0, 8)
                ):
                    break  # an alarm arrived meanwhile: it goes before more backlog
            if not busy:
                self._wake.wait(0.5)

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=5)
        self.client.loop_stop()
        self.client.disconnect()


def make_panel(outbox: Outbox) -> AlarmPanel:
    cfg = GpioConfig.model_validate(
        {
            "mock": True,
            "buttons": [
                {
                    "name": "bench",
                    "pin": PIN,
                    "min_press_ms": 0,
                    "release_ms": 2,
                    "cancel_window_s": 0,
                    "stuck_s": 60,
                }
            ],
            "ack_timeout_s": 0,
        }
    )
    panel = AlarmPanel(cfg, outbox, link_up=True)
    panel.start()
    return panel


def press_once(panel: AlarmPanel, outbox: TimedOutbox) -> tuple[float, float]:
    """One press of the mock button; returns (edge→durable ms, edge→PUBACK ms)."""
    assert panel.pin_factory is not None
    pin = panel.pin_factory.pin(PIN)
    count = len(outbox.alarms) + 1
    t0 = time.perf_counter()
    pin.drive_low()  # the edge: gpiozero's callback runs in this thread
    event_id = outbox.wait_alarm(count)
    if event_id is None:
        raise RuntimeError("alarm was not stored within 10 s")
    t_ack = outbox.wait_acked(event_id)
    if t_ack is None:
        raise RuntimeError("no PUBACK within 10 s")
    pin.drive_high()
    time.sleep(0.004)  # past release_ms, so the next edge is a new press
    return (outbox.durable_at[event_id] - t0) * 1000, (t_ack - t0) * 1000


def fill_backlog(outbox: Outbox, n: int) -> float:
    """``n`` telemetry events stored (as a day offline would leave them); returns seconds."""
    t0 = time.perf_counter()
    futures = [
        outbox.submit("device.telemetry", {"i": i, "cpu_temp_c": 48.5, "load": [0.4, 0.3, 0.2]})
        for i in range(n)
    ]
    for fut in futures:
        fut.result()
    return time.perf_counter() - t0


class AgentLink:
    """``agent.link.Link`` with PUBACKs timed through its ``on_published`` hook."""

    def __init__(self, outbox: TimedOutbox, port: int) -> None:
        from agent.config import Settings
        from agent.events import uuid7
        from agent.link import Link

        settings = Settings(
            device={"id": "bench-box"},
            mqtt={"urls": [f"mqtt://127.0.0.1:{port}"], "client_id": f"bench-{uuid7()[-12:]}"},
        )
        self.link = Link(
            settings,
            outbox,
            boot_id=uuid7(),
            boot_count=1,
            on_published=lambda item: outbox.mark_acked(item.id),
        )
        self.link.start()
        deadline = time.monotonic() + 10
        while not self.link.connected:
            if time.monotonic() > deadline:
                raise RuntimeError("agent.link did not connect within 10 s")
            time.sleep(0.01)

    def close(self) -> None:
        self.link.stop(flush_timeout=0.5)


def start_link(outbox: TimedOutbox, port: int) -> tuple[Any, str]:
    """The agent's own link when it exists, else the bench's stand-in."""
    try:
        import agent.link  # noqa: F401
    except ImportError:
        return StandInLink(outbox, port), "bench stand-in (agent.link not available)"
    return AgentLink(outbox, port), "agent.link.Link"


def bare_once(outbox: TimedOutbox) -> float:
    """Baseline: an alarm put straight into the outbox, no GPIO in front; put→PUBACK ms."""
    t0 = time.perf_counter()
    event = outbox.put("alarm.panic", {"button": "baseline"}, priority=Priority.ALARM)
    t_ack = outbox.wait_acked(event.id)
    if t_ack is None:
        raise RuntimeError(f"baseline: no PUBACK within 10 s for seq {event.seq}")
    time.sleep(0.004)
    return (t_ack - t0) * 1000


def run_case(workdir: Path, port: int, presses: int, backlog: int, log: Any) -> dict[str, Any]:
    """Alternate GPIO presses and baseline puts; with a backlog, count only those made while
    it was still draining, refilling it (link stopped, as after an outage) as often as needed."""
    outbox = TimedOutbox(workdir / "outbox.db", "bench-box")
    panel = make_panel(outbox)
    durable: list[float] = []
    acked: list[float] = []
    base: list[float] = []
    out: dict[str, Any] = {"rounds": 0, "fill_s": []}
    t_start = time.perf_counter()
    try:
        while len(acked) < presses:
            if backlog:
                fill_s = fill_backlog(outbox, backlog)
                out["fill_s"].append(round(fill_s, 1))
                log(f"  round {out['rounds'] + 1}: {backlog} events stored in {fill_s:.1f} s")
            before = len(acked)
            link, out["link"] = start_link(outbox, port)
            out["rounds"] += 1
            drained_at = None
            t_round = time.perf_counter()
            try:
                while len(acked) < presses:
                    if backlog and outbox.depth() < backlog // 100:
                        drained_at = time.perf_counter() - t_round
                        break  # nearly drained: what follows would be an idle measurement
                    d, a = press_once(panel, outbox)
                    durable.append(d)
                    acked.append(a)
                    base.append(bare_once(outbox))
            finally:
                link.close()
            if backlog:
                if drained_at is None:
                    drained_at = time.perf_counter() - t_round
                log(f"    {len(acked)} presses so far; backlog drained in {drained_at:.1f} s")
                out.setdefault("drain_s", []).append(round(drained_at, 1))
                if len(acked) == before:
                    raise RuntimeError("the backlog drained before a single press completed")
    finally:
        panel.stop()
        outbox.close()
    out["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    out["gpio_edge_to_durable"] = summary("edge→durable", durable)
    out["gpio_edge_to_puback"] = summary("edge→PUBACK", acked)
    out["baseline_put_to_puback"] = summary("put→PUBACK", base)
    out["ratio_p99_gpio_vs_baseline"] = round(
        out["gpio_edge_to_puback"]["p99_ms"] / out["baseline_put_to_puback"]["p99_ms"], 2
    )
    out["goal_met"] = out["gpio_edge_to_puback"]["p99_ms"] <= 20
    return out


def run(presses: int, backlog: int, quiet: bool = False) -> dict[str, Any]:
    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    results: dict[str, Any] = {
        "presses": presses,
        "goal_p99_ms": 20,
        "switch_interval_ms": sys.getswitchinterval() * 1000,
        "cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="panic-bench-") as tmp:
        proc, port = start_mosquitto(Path(tmp))
        try:
            log("idle outbox ...")
            (Path(tmp) / "idle").mkdir()
            results["idle"] = run_case(Path(tmp) / "idle", port, presses, 0, log)
            log(f"while a {backlog}-event backlog drains ...")
            (Path(tmp) / "backlog").mkdir()
            results["backlog"] = run_case(Path(tmp) / "backlog", port, presses, backlog, log)
        finally:
            proc.terminate()
            proc.wait(timeout=5)
    return results


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presses", type=int, default=1000)
    ap.add_argument("--backlog", type=int, default=100_000)
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    ap.add_argument(
        "--switch-interval-ms",
        type=float,
        default=1.0,
        help="sys.setswitchinterval for this run (default 1 ms, as `outpost run` sets it; "
        "CPython's own default is 5 ms): how long a busy thread may keep the GIL from a "
        "thread that an edge or a commit just woke",
    )
    args = ap.parse_args()
    sys.setswitchinterval(args.switch_interval_ms / 1000)
    results = run(args.presses, args.backlog, quiet=args.json)
    print(json.dumps(results, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
