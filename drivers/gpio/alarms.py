"""The alarms this box raised and whether the centre has acknowledged them.

``AlarmLedger`` is pure bookkeeping with injected time: an alarm stays unacknowledged (and is
reported in ``status``) until an ``alarm-ack`` names it; one past the ack timeout is handed
out once for escalation. Nothing here withdraws an alarm. ``save``/``load`` keep the
unacknowledged ones across a restart (a box rebooted after a press still shows "awaiting").
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(slots=True)
class AlarmRecord:
    alarm_id: str
    type: str
    source: str
    silent: bool
    raised_at: float  # monotonic
    ts: str  # the event's RFC 3339 time, for people
    acked_by: str | None = None
    acked_at: float | None = None
    escalated: bool = False
    cancel_requested: bool = False
    raised_wall: float = 0.0  # time.time() when raised; survives a restart, monotonic does not

    @property
    def acknowledged(self) -> bool:
        return self.acked_by is not None

    def to_dict(self, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {
            "alarm_id": self.alarm_id,
            "type": self.type,
            "source": self.source,
            "ts": self.ts,
            "age_s": round(now - self.raised_at, 3),
            "escalated": self.escalated,
            "cancel_requested": self.cancel_requested,
        }
        if self.acked_by is not None and self.acked_at is not None:
            out["acked_by"] = self.acked_by
            out["ack_after_s"] = round(self.acked_at - self.raised_at, 3)
        return out


class UnknownAlarm(KeyError):
    """An ack named an alarm this box does not know (never raised, or long forgotten)."""


class AlarmLedger:
    """Raised alarms by id; thread-safe (acks arrive on the command thread)."""

    def __init__(self, ack_timeout_s: float, keep: int = 500, path: Path | None = None) -> None:
        self.ack_timeout_s = ack_timeout_s
        self._keep = keep
        self._records: OrderedDict[str, AlarmRecord] = OrderedDict()
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self.path = path

    # Persistence ----------------------------------------------------------------------------
    def save(self) -> None:
        """Write the unacknowledged alarms to ``path`` (atomic replace); no-op without a path."""
        if self.path is None:
            return
        with self._lock:
            rows = [
                {
                    "alarm_id": r.alarm_id,
                    "type": r.type,
                    "source": r.source,
                    "silent": r.silent,
                    "ts": r.ts,
                    "raised_wall": r.raised_wall,
                    "escalated": r.escalated,
                    "cancel_requested": r.cancel_requested,
                }
                for r in self._records.values()
                if not r.acknowledged
            ]
        with self._save_lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps({"unacknowledged": rows}))
                os.replace(tmp, self.path)
            except OSError as exc:
                log.error("gpio: cannot save unacknowledged alarms to %s: %s", self.path, exc)

    def load(self, now: float) -> int:
        """Read what ``save`` wrote; ages carry over by wall clock. Returns how many."""
        if self.path is None or not self.path.exists():
            return 0
        try:
            rows = json.loads(self.path.read_text())["unacknowledged"]
            wall = time.time()
            records = [
                AlarmRecord(
                    alarm_id=str(row["alarm_id"]),
                    type=str(row["type"]),
                    source=str(row["source"]),
                    silent=bool(row["silent"]),
                    raised_at=now - max(0.0, wall - float(row["raised_wall"])),
                    ts=str(row["ts"]),
                    escalated=bool(row["escalated"]),
                    cancel_requested=bool(row["cancel_requested"]),
                    raised_wall=float(row["raised_wall"]),
                )
                for row in rows
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("gpio: ignoring unreadable alarm state %s: %s", self.path, exc)
            return 0
        for record in records:
            self.add(record)
        return len(records)

    def add(self, record: AlarmRecord) -> None:
        with self._lock:
            self._records[record.alarm_id] = record
            # Forget the oldest acknowledged alarms first; an unacknowledged one is kept.
            while len(self._records) > self._keep:
                victim = next(
                    (k for k, r in self._records.items() if r.acknowledged),
                    next(iter(self._records)),
                )
                del self._records[victim]

    def get(self, alarm_id: str) -> AlarmRecord | None:
        with self._lock:
            return self._records.get(alarm_id)

    def acknowledge(self, alarm_id: str, by: str, now: float) -> tuple[AlarmRecord, bool]:
        """Mark ``alarm_id`` acknowledged; returns the record and whether it already was."""
        with self._lock:
            record = self._records.get(alarm_id)
            if record is None:
                raise UnknownAlarm(alarm_id)
            if record.acknowledged:
                return record, True
            record.acked_by = by
            record.acked_at = now
            return record, False

    def mark_cancel_requested(self, alarm_id: str) -> None:
        with self._lock:
            record = self._records.get(alarm_id)
            if record is not None:
                record.cancel_requested = True

    def unacknowledged(self) -> list[AlarmRecord]:
        with self._lock:
            return [r for r in self._records.values() if not r.acknowledged]

    def awaiting_audible(self) -> bool:
        """An alarm a person may watch the LED for (silent ones never show) is unacknowledged."""
        with self._lock:
            return any(not r.acknowledged and not r.silent for r in self._records.values())

    def overdue(self, now: float) -> list[AlarmRecord]:
        """Unacknowledged alarms past the timeout not yet escalated; each is returned once."""
        if self.ack_timeout_s <= 0:
            return []
        out = []
        with self._lock:
            for r in self._records.values():
                due = now - r.raised_at >= self.ack_timeout_s
                if due and not r.acknowledged and not r.escalated:
                    r.escalated = True
                    out.append(r)
        return out

    def deadline(self) -> float | None:
        if self.ack_timeout_s <= 0:
            return None
        with self._lock:
            times = [
                r.raised_at + self.ack_timeout_s
                for r in self._records.values()
                if not r.acknowledged and not r.escalated
            ]
        return min(times) if times else None
