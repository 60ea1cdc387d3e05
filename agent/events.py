"""The event envelope every driver produces and the priority classes the outbox schedules by.

An ``Event`` is immutable once the outbox has given it a ``seq``; its JSON form is what the
broker receives, byte for byte.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any, Protocol


class Priority(IntEnum):
    """Delivery classes, most urgent first. Lower value is published first."""

    ALARM = 0
    PATROL = 1
    VISION = 2
    TELEMETRY = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int | Priority) -> Priority:
        if isinstance(value, Priority):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[value.upper()]
        except KeyError:
            raise ValueError(f"unknown priority class {value!r}") from None


# Type prefixes and their default class. The longest matching prefix wins, so
# `device.tamper` can be an alarm while the rest of `device.*` is telemetry.
_DEFAULT_CLASSES: dict[str, Priority] = {
    "alarm": Priority.ALARM,
    "plate.hit": Priority.ALARM,
    "device.tamper": Priority.ALARM,
    "patrol": Priority.PATROL,
    "device.fault": Priority.PATROL,
    "vision": Priority.VISION,
    "camera": Priority.VISION,
    "plate": Priority.VISION,
    "media": Priority.VISION,
    "device": Priority.TELEMETRY,
}


def default_priority(event_type: str) -> Priority:
    """The class an event type gets when its producer does not say."""
    parts = event_type.split(".")
    for n in range(len(parts), 0, -1):
        cls = _DEFAULT_CLASSES.get(".".join(parts[:n]))
        if cls is not None:
            return cls
    return Priority.TELEMETRY


def validate_type(event_type: str) -> str:
    """Event types are dotted lower-case words; they become topic levels, so no wildcards."""
    if not event_type or any(not part for part in event_type.split(".")):
        raise ValueError(f"event type {event_type!r} must be dotted words, e.g. 'alarm.panic'")
    for ch in event_type:
        if not (ch.islower() or ch.isdigit() or ch in "._-"):
            raise ValueError(f"event type {event_type!r}: character {ch!r} not allowed")
    return event_type


_uuid_lock = threading.Lock()
_uuid_last_ms = 0
_uuid_counter = 0


def uuid7() -> str:
    """A UUIDv7 string (RFC 9562): 48-bit ms timestamp, then a counter and random bits.

    Ids made in one process are strictly increasing, so sorting by id sorts by creation.
    """
    global _uuid_last_ms, _uuid_counter
    with _uuid_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _uuid_last_ms:
            ms = _uuid_last_ms
            _uuid_counter += 1
            if _uuid_counter >= 1 << 12:
                ms += 1
                _uuid_counter = 0
        else:
            _uuid_counter = 0
        _uuid_last_ms = ms
        counter = _uuid_counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    value |= rand
    return str(uuid.UUID(int=value))


def utc_now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Event:
    """One event as the centre receives it."""

    id: str
    device_id: str
    type: str
    seq: int
    ts: str
    priority: Priority
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "device_id": self.device_id,
            "type": self.type,
            "seq": self.seq,
            "ts": self.ts,
            "priority": self.priority.label,
            "data": dict(self.data),
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        obj = json.loads(raw)
        return cls(
            id=obj["id"],
            device_id=obj["device_id"],
            type=obj["type"],
            seq=int(obj["seq"]),
            ts=obj["ts"],
            priority=Priority.parse(obj["priority"]),
            data=obj.get("data", {}),
        )


class EventSink(Protocol):
    """What a driver is given to report events. ``emit`` returns once the event is durable."""

    def emit(
        self,
        type: str,
        data: Mapping[str, Any] | None = None,
        *,
        priority: Priority | None = None,
    ) -> Event: ...
