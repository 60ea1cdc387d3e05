"""PatrolService end to end without a broker: simulated and serial readers, the plan
command, hold-off, feedback, missed windows, a restart mid-route, and the event journal."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from agent.config import Settings
from agent.errors import OutboxError
from agent.events import Event, Priority, default_priority, uuid7
from agent.patrol import build
from agent.patrol.config import PatrolConfig
from agent.patrol.service import PatrolService
from agent.runtime import AgentContext

from .scenario import MIN, PLAN, T0

LI = "em4100:62E3086CED"


class MemorySink:
    """An EventSink keeping events in memory; ``fail`` makes the next N emits raise."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.fail = 0
        self.cond = threading.Condition()

    def emit(
        self, type: str, data: Mapping[str, Any] | None = None, *, priority: Priority | None = None
    ) -> Event:
        with self.cond:
            if self.fail:
                self.fail -= 1
                raise OutboxError("disk full (test)")
            ev = Event(uuid7(), "dev", type, len(self.events) + 1, "ts",
                       priority or default_priority(type), dict(data or {}))  # fmt: skip
            self.events.append(ev)
            self.cond.notify_all()
            return ev

    def of(self, type_: str) -> list[dict[str, Any]]:
        with self.cond:
            return [dict(e.data) for e in self.events if e.type == type_]

    def wait(self, pred: Callable[[], bool], timeout: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(pred, timeout)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Beeper:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def accepted(self) -> None:
        self.calls.append("accepted")

    def rejected(self) -> None:
        self.calls.append("rejected")


def config(**kw: Any) -> PatrolConfig:
    readers = [
        {"type": "sim", "name": "north", "presence_gap_s": 0.05},
        {"type": "sim", "name": "b", "checkpoint": "B", "presence_gap_s": 0.05},
        *({"type": "sim", "name": c.lower(), "checkpoint": c} for c in "CDE"),
    ]
    return PatrolConfig.model_validate({"readers": readers, "tick_s": 0.05, **kw})


def tap(svc: PatrolService, reader: str, tag: str) -> dict[str, Any]:
    out = svc.simulate_tap({"argv": [reader, tag]})
    time.sleep(0.06)  # let the presence gap pass, like a card taken away
    return out


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


def test_taps_statuses_holdoff_and_feedback(tmp_path: Path, sink: MemorySink) -> None:
    clock = Clock(T0 + 1 * MIN)
    beeper = Beeper()
    svc = PatrolService(config(retap_holdoff_s=5), sink, tmp_path, feedback=beeper, clock=clock)
    svc.configure(dict(PLAN))
    svc.start()
    try:
        out = tap(svc, "north", LI)  # "north" maps to checkpoint A in the plan
        assert out["result"]["status"] == "on_time"
        assert out["result"]["checkpoint"] == "A"
        assert out["result"]["officer"] == {"id": "o-17", "name": "Li Wei"}
        # The same card again at once: the hold-off swallows it (no event).
        assert tap(svc, "north", LI)["result"]["status"] == "suppressed"
        assert tap(svc, "north", "em4100:0102030405")["result"]["status"] == "unknown_card"
        clock.now = T0 + 10 * MIN
        assert tap(svc, "b", "w26:008,27885")["result"]["status"] == "on_time"  # same fob, W26 view
        taps = sink.of("patrol.tap")
        assert [t["status"] for t in taps] == ["on_time", "unknown_card", "on_time"]
        assert taps[0]["tag"]["forms"]["dec32"] == "3808980205"
        assert taps[0]["simulated"] is True and taps[0]["tour"] == "night@2026-11-24T22:00:00Z"
        assert beeper.calls == ["accepted", "rejected", "accepted"]
        assert svc.status()["suppressed_retaps"] == 1
    finally:
        svc.stop()


def test_missed_windows_and_restart_mid_route(tmp_path: Path, sink: MemorySink) -> None:
    clock = Clock(T0 - 1 * MIN)
    svc = PatrolService(config(), sink, tmp_path, clock=clock)
    svc.configure(dict(PLAN))
    svc.start()
    try:
        clock.now = T0
        tap(svc, "north", LI)
        clock.now = T0 + 10 * MIN
        tap(svc, "b", LI)
        clock.now = T0 + 12 * MIN
        time.sleep(0.15)
    finally:
        svc.stop()  # the box goes down at 22:12 with C, D, E still ahead

    clock.now = T0 + 39 * MIN  # back at 22:39: C (22:28) and D (22:38) closed meanwhile
    svc2 = PatrolService(config(), sink, tmp_path, clock=clock)  # plan comes from the store
    assert svc2.plan.version == 7
    svc2.start()
    try:
        missed = sink.of("patrol.missed")
        assert [(m["checkpoint"], m["stop"]) for m in missed] == [("C", 2), ("D", 3)]
        assert all(m["detected_late"] for m in missed)
        clock.now = T0 + 48 * MIN + 1  # E closes at 22:48 while the box is up
        assert sink.wait(lambda: len(sink.of("patrol.missed")) == 3)
        last = sink.of("patrol.missed")[-1]
        assert (last["checkpoint"], last["detected_late"]) == ("E", False)
        time.sleep(0.2)
        assert len(sink.of("patrol.missed")) == 3  # each window reported exactly once
    finally:
        svc2.stop()


def test_journal_replays_events_the_outbox_refused(tmp_path: Path, sink: MemorySink) -> None:
    clock = Clock(T0)
    svc = PatrolService(config(), sink, tmp_path, clock=clock)
    svc.configure(dict(PLAN))
    sink.fail = 1
    svc.start()
    try:
        tap(svc, "north", LI)
        assert svc.status()["counts"]["emit_errors"] == 1
        # The next tick retries the journalled tap.
        assert sink.wait(lambda: len(sink.of("patrol.tap")) == 1)
        assert svc.status()["pending_events"] == 0
    finally:
        svc.stop()


def test_journal_survives_a_crash(tmp_path: Path, sink: MemorySink) -> None:
    clock = Clock(T0)
    svc = PatrolService(config(), sink, tmp_path, clock=clock)
    svc.configure(dict(PLAN))
    sink.fail = 10**6  # the outbox never takes it before the "crash"
    svc.start()
    tap(svc, "north", LI)
    svc.stop()
    sink.fail = 0
    svc2 = PatrolService(config(), sink, tmp_path, clock=clock)
    svc2.start()
    try:
        [t] = sink.of("patrol.tap")
        assert t["status"] == "on_time" and t["officer"]["id"] == "o-17"
    finally:
        svc2.stop()


def test_serial_reader_missing_is_one_fault_event(tmp_path: Path, sink: MemorySink) -> None:
    cfg = PatrolConfig.model_validate(
        {
            "readers": [
                {
                    "type": "rdm6300",
                    "name": "gate",
                    "port": str(tmp_path / "nope"),
                    "backoff_max_s": 0.1,
                }
            ],
            "tick_s": 0.05,
        }
    )
    svc = PatrolService(cfg, sink, tmp_path)
    svc.start()
    try:
        assert sink.wait(lambda: len(sink.of("device.fault")) == 1)
        time.sleep(0.5)
        [f] = sink.of("device.fault")
        assert (f["component"], f["reader"], f["state"]) == ("rfid", "gate", "active")
        assert svc.status()["readers"]["gate"]["faulted"] is True
    finally:
        svc.stop()


def test_build_registers_command_and_simulator(tmp_path: Path, sink: MemorySink) -> None:
    settings = Settings(
        device={"state_dir": tmp_path},
        patrol={"readers": [{"type": "sim", "name": "gate", "checkpoint": "A"}]},
    )
    ctx = AgentContext(settings=settings, sink=sink)
    [svc] = build(ctx)
    assert "patrol-config" in ctx.commands.names() and "tap" in ctx.simulators.names()
    svc.start()
    try:
        bad = ctx.commands.dispatch("patrol-config", b'{"roster": [{"id": "x", "tags": []}]}')
        assert bad["ok"] is False and "roster[0].tags" in bad["error"]
        assert ctx.commands.dispatch("patrol-config", b"{}")["ok"] is False
        ok = ctx.commands.dispatch("patrol-config", {"roster": PLAN["roster"]})
        assert ok == {
            "ok": True,
            "result": {"version": None, "officers": 2, "checkpoints": 0, "routes": 0},
        }
        again = ctx.commands.dispatch("patrol-config", {"roster": PLAN["roster"]})
        assert again["result"]["unchanged"] is True
        reply = ctx.simulators.dispatch("tap", {"argv": ["gate", LI]})
        assert reply["ok"] and reply["result"]["result"]["status"] == "unscheduled"
        assert not ctx.simulators.dispatch("tap", {"argv": ["nope", LI]})["ok"]
        assert not ctx.simulators.dispatch("tap", {"argv": ["gate", "12345"]})["ok"]
    finally:
        svc.stop()
    assert build(AgentContext(settings=Settings(), sink=sink)) == []
