"""Typed configuration of the ``[patrol]`` section: the readers on this box and the local
rules (re-tap hold-off, time zone, catch-up). Routes and roster come from the centre
(``patrol-config`` command), not from this file; ``plan_file`` seeds them for a demo.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from agent.patrol.plan import check_timezone
from drivers.rfid.config import ReaderConfig, Section


class PatrolConfig(Section):
    readers: list[ReaderConfig] = Field(default_factory=list)
    # The same card at the same checkpoint within this many seconds is one tap.
    retap_holdoff_s: float = Field(30.0, ge=0, le=3600)
    timezone: str = Field("UTC", description="Zone of route schedules that name none.")
    # After downtime, windows that closed up to this long ago are still reported missed.
    catchup_max_h: float = Field(48.0, ge=0, le=24 * 31)
    tick_s: float = Field(1.0, gt=0, le=60)
    # JSON plan used when the centre has not pushed one yet (demo / commissioning).
    plan_file: Path | None = None

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, tz: str) -> str:
        check_timezone(tz)
        return tz

    @field_validator("readers")
    @classmethod
    def _check_names(cls, readers: list[ReaderConfig]) -> list[ReaderConfig]:
        names = [r.name for r in readers]
        for n in names:
            if names.count(n) > 1:
                raise ValueError(f"reader name {n!r} appears twice")
        return readers

    @property
    def enabled(self) -> bool:
        return bool(self.readers)
