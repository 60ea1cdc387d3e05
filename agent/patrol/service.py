"""The patrol component: owns the readers, turns their taps into ``patrol.tap`` events,
reports ``patrol.missed`` when a stop window closes untapped, and keeps plan and state
across restarts.

Readers call ``tap``/``fault`` on their own threads; both only queue. One worker thread
("patrol-worker") does the rest in order: hold-off, roster lookup, evaluation, journal,
local feedback, then ``sink.emit``. Events are journalled in the state file before they
are emitted and replayed after a crash, so none is lost (the centre dedups on ``tap_id`` /
``missed_id``).
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.errors import CommandError, OutpostError
from agent.events import EventSink, uuid7
from agent.patrol.config import PatrolConfig
from agent.patrol.evaluator import EvaluatorState, StopWindow, TapStatus, TourEvaluator, rfc3339
from agent.patrol.feedback import Feedback, NoFeedback
from agent.patrol.plan import PatrolPlan, parse_plan
from agent.patrol.store import PatrolStore
from drivers.rfid.presence import RetapHoldoff
from drivers.rfid.reader import RfidReader, make_reader
from drivers.rfid.tags import Tag, parse_tag

log = logging.getLogger(__name__)

_PLAN_KEYS = ("roster", "checkpoints", "routes")
HORIZON_SAVE_S = 60.0


class PatrolService:
    """The ``[patrol]`` component (see the module docstring)."""

    name = "patrol"

    def __init__(
        self,
        cfg: PatrolConfig,
        sink: EventSink,
        state_dir: Path,
        *,
        feedback: Feedback | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.sink = sink
        self.store = PatrolStore(state_dir)
        self.feedback: Feedback = feedback or NoFeedback()
        self._clock = clock
        self._mono = monotonic
        self.holdoff = RetapHoldoff(cfg.retap_holdoff_s)
        self.readers: dict[str, RfidReader] = {r.name: make_reader(r, self) for r in cfg.readers}
        self._reader_cfg = {r.name: r for r in cfg.readers}
        self._lock = threading.RLock()
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._done = threading.Condition()
        self._submitted = 0
        self._processed = 0
        self.last_result: dict[str, dict[str, Any]] = {}
        self.counts: dict[str, int] = {}
        self.plan = self._load_plan()
        raw = self.store.load_state() or {}
        try:
            state = EvaluatorState.from_dict(raw)
        except (KeyError, TypeError, ValueError):
            state = EvaluatorState(since=self._clock())
        self._pending: list[dict[str, Any]] = list(raw.get("pending", []))
        self._saved_at = self._mono()
        self.evaluator = TourEvaluator(
            self.plan,
            state,
            default_tz=cfg.timezone,
            catchup_s=cfg.catchup_max_h * 3600,
            local=self._local_checkpoints(),
        )

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            self._flush_pending()
            self._advance(self._clock())  # windows that closed while the box was down
        self._thread = threading.Thread(target=self._run, name="patrol-worker", daemon=True)
        self._thread.start()
        for reader in self.readers.values():
            reader.start()

    def stop(self) -> None:
        for reader in self.readers.values():
            reader.stop()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def set_feedback(self, feedback: Feedback) -> None:
        """Wire the box's LED/buzzer (the GPIO panel's ``feedback``)."""
        self.feedback = feedback

    # --- TapSink (reader threads) --------------------------------------------------------

    def tap(self, reader: str, tag: Tag, *, simulated: bool = False) -> None:
        with self._done:
            self._submitted += 1
        self._queue.put(("tap", reader, tag, self._clock(), self._mono(), simulated))

    def fault(self, reader: str, *, active: bool, detail: str) -> None:
        self._queue.put(("fault", reader, active, detail))

    # --- worker --------------------------------------------------------------------------

    def _run(self) -> None:
        next_tick = self._mono()
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, next_tick - self._mono()))
            except queue.Empty:
                item = ("tick",)
            if item is None:
                return
            try:
                self._handle(item)
            except Exception:  # one bad tap must not stop patrol evaluation
                log.exception("patrol: failed to handle %s", item[0])
            finally:
                if item[0] == "tap":
                    with self._done:
                        self._processed += 1
                        self._done.notify_all()
            if self._mono() >= next_tick:
                next_tick = self._mono() + self.cfg.tick_s
                with self._lock:
                    self._flush_pending()
                    self._advance(self._clock())
                    if self._mono() - self._saved_at > HORIZON_SAVE_S:
                        self._save()

    def _handle(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "tap":
            _, reader, tag, t, mono, simulated = item
            self._on_tap(reader, tag, t, mono, simulated)
        elif kind == "fault":
            _, reader, active, detail = item
            self._on_fault(reader, active, detail)

    def checkpoint_for(self, reader: str) -> str:
        cfg = self._reader_cfg.get(reader)
        return self.plan.checkpoints.get(reader) or (cfg.checkpoint if cfg else None) or reader

    def _local_checkpoints(self) -> frozenset[str]:
        return frozenset(self.checkpoint_for(name) for name in self.readers)

    def _on_tap(self, reader: str, tag: Tag, t: float, mono: float, simulated: bool) -> None:
        checkpoint = self.checkpoint_for(reader)
        if not self.holdoff.allow((tag.key, checkpoint), mono):
            self._count("suppressed")
            self.last_result[reader] = {"status": "suppressed", "tag": tag.key}
            return
        with self._lock:
            events = self._advance_events(t)
            officer = self.plan.officer_for(tag)
            verdict = self.evaluator.tap(checkpoint, officer, t)
            data: dict[str, Any] = {
                "tap_id": uuid7(),
                "occurred_at": rfc3339(t),
                "reader": reader,
                "reader_type": self.readers[reader].kind if reader in self.readers else None,
                "checkpoint": checkpoint,
                "tag": tag.to_dict(),
                "officer": {"id": officer.id, "name": officer.name} if officer else None,
                "simulated": simulated,
                "plan_version": self.plan.version,
                **verdict.describe(),
            }
            events.append({"type": "patrol.tap", "data": data})
            self._journal(events)
            self._count(f"tap.{verdict.status.value}")
            self.last_result[reader] = data
            self._signal(verdict.status)
            self._flush_pending()

    def _signal(self, status: TapStatus) -> None:
        try:
            if status is TapStatus.UNKNOWN_CARD:
                self.feedback.rejected()
            else:
                self.feedback.accepted()
        except Exception:
            log.exception("patrol: feedback failed")

    def _on_fault(self, reader: str, active: bool, detail: str) -> None:
        r = self.readers.get(reader)
        data = {
            "component": "rfid",
            "reader": reader,
            "reader_type": r.kind if r else None,
            "checkpoint": self.checkpoint_for(reader),
            "fault": "reader_lost",
            "state": "active" if active else "cleared",
            "detail": detail,
        }
        self._count("fault" if active else "fault_cleared")
        with self._lock:
            self._journal([{"type": "device.fault", "data": data}])
            self._flush_pending()

    # --- evaluation, journal -------------------------------------------------------------

    def _advance(self, now: float) -> None:
        events = self._advance_events(now)
        if events:
            self._journal(events)
            self._flush_pending()

    def _advance_events(self, now: float) -> list[dict[str, Any]]:
        # The moved horizon is saved with the next journal write, or by the tick once a
        # minute: replaying from an older horizon finds the same visits and nothing new,
        # so there is no need to write the SD card every second.
        missed = self.evaluator.advance(now)
        return [{"type": "patrol.missed", "data": self._missed_data(w, now)} for w in missed]

    def _missed_data(self, w: StopWindow, now: float) -> dict[str, Any]:
        self._count("missed")
        return {
            "missed_id": w.key,
            **w.describe(),
            "detected_at": rfc3339(now),
            # Reported after the box was down (or busy) past the window's end.
            "detected_late": now - w.closes > 2 * self.cfg.tick_s + 5,
            "plan_version": self.plan.version,
        }

    def _journal(self, events: list[dict[str, Any]]) -> None:
        self._pending.extend(events)
        self._save()

    def _flush_pending(self) -> None:
        while self._pending:
            ev = self._pending[0]
            try:
                self.sink.emit(ev["type"], ev["data"])
            except OutpostError as exc:  # the outbox refused: keep it journalled, retry
                log.error("patrol: %s not stored yet: %s", ev["type"], exc)
                self._count("emit_errors")
                return
            self._pending.pop(0)
            self._save()

    def _save(self) -> None:
        self._saved_at = self._mono()
        state = self.evaluator.state.to_dict()
        state["pending"] = self._pending
        try:
            self.store.save_state(state)
        except OSError as exc:
            log.error("patrol: cannot save state: %s", exc)
            self._count("save_errors")

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    # --- plan ----------------------------------------------------------------------------

    def _load_plan(self) -> PatrolPlan:
        stored = self.store.load_plan()
        for source, obj in (("stored", stored), ("plan_file", self._read_plan_file())):
            if obj is None:
                continue
            try:
                return parse_plan(obj)
            except CommandError as exc:
                log.error("patrol: %s plan ignored: %s", source, exc)
        return PatrolPlan()

    def _read_plan_file(self) -> dict[str, Any] | None:
        if self.cfg.plan_file is None:
            return None
        try:
            obj = json.loads(self.cfg.plan_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            log.error("patrol: cannot read plan_file %s: %s", self.cfg.plan_file, exc)
            return None
        return obj if isinstance(obj, dict) else None

    def configure(self, args: dict[str, Any]) -> dict[str, Any]:
        """The ``patrol-config`` command: replace roster, checkpoint map and routes."""
        if not any(k in args for k in _PLAN_KEYS):
            raise CommandError("a patrol plan needs at least one of: " + ", ".join(_PLAN_KEYS))
        plan = parse_plan(args)
        if plan == self.plan:  # a retained plan re-delivered on every reconnect
            return {**plan.summary(), "unchanged": True}
        with self._lock:
            try:
                self.store.save_plan(plan.model_dump(mode="json"))
            except OSError as exc:
                raise CommandError(f"cannot store the plan: {exc}") from None
            self.plan = plan
            self.evaluator.plan = plan
            self.evaluator.local = self._local_checkpoints()
            unknown = sorted(set(plan.checkpoints) - set(self.readers))
        summary = plan.summary()
        if unknown:
            summary["unknown_readers"] = unknown
        return summary

    # --- simulator -----------------------------------------------------------------------

    def simulate_tap(self, args: dict[str, Any]) -> dict[str, Any]:
        """``outpost simulate tap <reader> <tag>``: the tag enters the reader's own path
        (presence filter, hold-off, evaluation) as if the reader had read it."""
        parser = argparse.ArgumentParser(prog="outpost simulate tap", exit_on_error=False)
        parser.add_argument("reader")
        parser.add_argument("tag", help="em4100:62E3086CED, uid:04A1B2C3, w26:008,27885, …")
        try:
            ns = parser.parse_args([str(a) for a in args.get("argv", [])])
        except (argparse.ArgumentError, SystemExit) as exc:
            raise CommandError(f"usage: reader tag ({exc})") from None
        reader = self.readers.get(ns.reader)
        if reader is None:
            raise CommandError(f"no reader {ns.reader!r}; readers: {', '.join(self.readers)}")
        try:
            tag = parse_tag(ns.tag)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if not reader.inject(tag):
            return {"reader": ns.reader, "tag": tag.key, "result": "repeat (card still present)"}
        with self._done:
            self._done.wait_for(lambda: self._processed >= self._submitted, timeout=5)
        return {"reader": ns.reader, "tag": tag.key, "result": self.last_result.get(ns.reader)}

    # --- status --------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        readers = {
            name: {**r.status(), "checkpoint": self.checkpoint_for(name)}
            for name, r in self.readers.items()
        }
        return {
            "readers": readers,
            "plan": self.plan.summary(),
            "counts": dict(self.counts),
            "suppressed_retaps": self.holdoff.suppressed,
            "pending_events": len(self._pending),
            "evaluated_until": rfc3339(self.evaluator.state.since),
        }
