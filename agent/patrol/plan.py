"""The patrol plan the centre pushes: roster (officers' cards), reader → checkpoint map, and
routes with ordered stops and schedules. Validated as a whole; an invalid plan is refused
with the key that is wrong, and the box keeps the plan it had.
"""

from __future__ import annotations

import re
from datetime import time as dtime
from functools import cached_property
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent.errors import CommandError
from drivers.rfid.tags import Tag, tag_keys

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Officer(_Model):
    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    tags: list[str] = Field(min_length=1, description="em4100:…, uid:…, dec32:…, w26:FFF,CCCCC")

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, tags: list[str]) -> list[str]:
        for t in tags:
            tag_keys(t)  # ValueError names the tag
        return tags


class Stop(_Model):
    """One checkpoint of a route, due ``at_min`` minutes after the tour starts."""

    checkpoint: str = Field(pattern=ID_PATTERN)
    at_min: float = Field(ge=0, le=24 * 60)
    # Per-stop overrides of the route's tolerances.
    early_min: float | None = Field(None, ge=0, le=24 * 60)
    late_min: float | None = Field(None, ge=0, le=24 * 60)
    window_min: float | None = Field(None, gt=0, le=24 * 60)


class Schedule(_Model):
    """When tours of a route start: local ``HH:MM`` times on the given weekdays."""

    times: list[str] = Field(min_length=1, max_length=288)
    days: list[Day] = Field(default_factory=lambda: list(DAYS))
    tz: str | None = Field(None, description="IANA zone; default [patrol].timezone")

    @field_validator("times")
    @classmethod
    def _check_times(cls, times: list[str]) -> list[str]:
        for t in times:
            if not _HHMM.match(t):
                raise ValueError(f"time {t!r} must be HH:MM (24 h)")
        if len(set(times)) != len(times):
            raise ValueError("times repeat")
        return times

    @field_validator("tz")
    @classmethod
    def _check_tz(cls, tz: str | None) -> str | None:
        if tz is not None:
            check_timezone(tz)
        return tz

    def start_times(self) -> list[dtime]:
        return [dtime(int(t[:2]), int(t[3:])) for t in sorted(self.times)]

    def weekdays(self) -> frozenset[int]:
        return frozenset(DAYS.index(d) for d in self.days)


class Route(_Model):
    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    # Ordered: a stop tapped while an earlier one is still open is out_of_order.
    ordered: bool = True
    stops: list[Stop] = Field(min_length=1, max_length=200)
    schedule: Schedule
    # A tap within early/late of the due time is on time; a tap within window_min of it
    # counts for the stop (early or late); when the window closes untapped, it is missed.
    early_min: float = Field(5, ge=0, le=24 * 60)
    late_min: float = Field(5, ge=0, le=24 * 60)
    window_min: float = Field(30, gt=0, le=24 * 60)

    @model_validator(mode="after")
    def _check_windows(self) -> Route:
        for i, _ in enumerate(self.stops):
            early, late, window = self.tolerances(i)
            if early > window or late > window:
                raise ValueError(
                    f"stops[{i}]: early/late tolerance ({early}/{late} min) exceeds the "
                    f"window ({window} min)"
                )
        return self

    def tolerances(self, index: int) -> tuple[float, float, float]:
        """(early, late, window) in minutes for stop ``index``."""
        s = self.stops[index]
        return (
            self.early_min if s.early_min is None else s.early_min,
            self.late_min if s.late_min is None else s.late_min,
            self.window_min if s.window_min is None else s.window_min,
        )


class PatrolPlan(_Model):
    """What ``patrol-config`` carries. ``checkpoints`` maps reader names to checkpoint ids."""

    version: str | int | None = None
    roster: list[Officer] = Field(default_factory=list)
    checkpoints: dict[str, str] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_unique(self) -> PatrolPlan:
        _unique([o.id for o in self.roster], "roster officer id")
        _unique([r.id for r in self.routes], "route id")
        owner: dict[str, str] = {}
        for o in self.roster:
            for t in o.tags:
                for key in tag_keys(t):
                    other = owner.setdefault(key, o.id)
                    if other != o.id:
                        raise ValueError(f"tag {t!r} of officer {o.id!r} is also {other!r}'s")
        return self

    @cached_property
    def _tag_index(self) -> dict[str, Officer]:
        return {key: o for o in self.roster for t in o.tags for key in tag_keys(t)}

    def officer_for(self, tag: Tag) -> Officer | None:
        return self._tag_index.get(tag.key)

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "officers": len(self.roster),
            "checkpoints": len(self.checkpoints),
            "routes": len(self.routes),
        }


def _unique(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{what} {v!r} appears twice")
        seen.add(v)


def check_timezone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}") from None


def parse_plan(payload: dict[str, Any]) -> PatrolPlan:
    """Validate a pushed plan; ``CommandError`` lists every problem with its key path."""
    try:
        return PatrolPlan.model_validate(payload)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:10]:
            loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{loc.lstrip('.') or '<plan>'}: {msg}")
        raise CommandError("invalid patrol plan: " + "; ".join(problems)) from None
