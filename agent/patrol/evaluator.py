"""Tour evaluation on the box: which scheduled stop a tap satisfies, how it rates, and
which stop windows closed without one. Pure: times in, verdicts out; no clock, no I/O.

State (``EvaluatorState``) is a plain dict the service persists after every change, so a
box that restarts mid-route neither forgets a visit nor misses a ``patrol.missed``: on start
``advance(now)`` reports every window that closed while it was down.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from agent.patrol.plan import Officer, PatrolPlan, Route, check_timezone

# How long a visit is kept after its window closed (slack for a clock stepped back).
VISIT_KEEP_S = 3600.0


class TapStatus(StrEnum):
    ON_TIME = "on_time"
    EARLY = "early"
    LATE = "late"
    OUT_OF_ORDER = "out_of_order"
    DUPLICATE = "duplicate"  # this stop of this tour was already tapped
    UNSCHEDULED = "unscheduled"  # a known card, but no open window for this checkpoint
    UNKNOWN_CARD = "unknown_card"


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class StopWindow:
    """One stop of one tour instance, in absolute (epoch) seconds."""

    route: Route
    tour_start: float
    index: int
    due: float
    opens: float
    on_time_from: float
    on_time_until: float
    closes: float

    @property
    def checkpoint(self) -> str:
        return self.route.stops[self.index].checkpoint

    @property
    def tour_id(self) -> str:
        return f"{self.route.id}@{rfc3339(self.tour_start)}"

    @property
    def key(self) -> str:
        return f"{self.tour_id}#{self.index}"

    def describe(self) -> dict[str, Any]:
        return {
            "route": self.route.id,
            "route_name": self.route.name,
            "tour": self.tour_id,
            "tour_start": rfc3339(self.tour_start),
            "stop": self.index,
            "stops": len(self.route.stops),
            "checkpoint": self.checkpoint,
            "due_at": rfc3339(self.due),
            "window_start": rfc3339(self.opens),
            "window_end": rfc3339(self.closes),
        }


@dataclass(frozen=True, slots=True)
class TapVerdict:
    status: TapStatus
    window: StopWindow | None = None
    timing: TapStatus | None = None  # on_time / early / late, also for out_of_order
    lateness_s: float | None = None  # negative when early
    tour_complete: bool = False

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status.value}
        if self.window is not None:
            out.update(self.window.describe())
            out["timing"] = self.timing.value if self.timing else None
            out["lateness_s"] = round(self.lateness_s or 0.0, 1)
            out["tour_complete"] = self.tour_complete
        return out


@dataclass
class EvaluatorState:
    """What must survive a restart: the evaluation horizon and the visits since."""

    since: float  # windows closing at or before this have been reported
    visits: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"since": self.since, "visits": self.visits}

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> EvaluatorState:
        return cls(since=float(obj["since"]), visits=dict(obj.get("visits", {})))


class TourEvaluator:
    """Evaluates taps against a ``PatrolPlan``. ``default_tz`` applies to schedules without
    their own ``tz``; ``catchup_s`` bounds how far back ``advance`` looks after downtime.

    ``local`` is the set of checkpoints this box serves (None: all). A site-wide plan goes
    to every box; each box judges only its own stops (it cannot see the others' taps), so
    misses, ordering and completeness are about local stops; the centre joins the boxes.
    """

    def __init__(
        self,
        plan: PatrolPlan,
        state: EvaluatorState,
        *,
        default_tz: str = "UTC",
        catchup_s: float = 48 * 3600,
        local: frozenset[str] | None = None,
    ) -> None:
        self.plan = plan
        self.state = state
        self.default_tz = default_tz
        self.catchup_s = catchup_s
        self.local = local

    def is_local(self, checkpoint: str) -> bool:
        return self.local is None or checkpoint in self.local

    def _local_stops(self, route: Route) -> list[int]:
        return [i for i, s in enumerate(route.stops) if self.is_local(s.checkpoint)]

    # --- windows -------------------------------------------------------------------------

    def tour_starts(self, route: Route, lo: float, hi: float) -> Iterator[float]:
        """Scheduled starts of ``route`` with lo <= start <= hi (epoch seconds)."""
        tz = check_timezone(route.schedule.tz or self.default_tz)
        days = route.schedule.weekdays()
        times = route.schedule.start_times()
        day = datetime.fromtimestamp(lo, tz).date() - timedelta(days=1)
        last = datetime.fromtimestamp(hi, tz).date() + timedelta(days=1)
        while day <= last:
            if day.weekday() in days:
                for t in times:
                    start = datetime.combine(day, t, tzinfo=tz).timestamp()
                    if lo <= start <= hi:
                        yield start
            day += timedelta(days=1)

    def window(self, route: Route, start: float, index: int) -> StopWindow:
        early, late, span = (m * 60 for m in route.tolerances(index))
        due = start + route.stops[index].at_min * 60
        return StopWindow(route, start, index, due, due - span, due - early, due + late, due + span)

    def windows_open_at(self, checkpoint: str, t: float) -> list[StopWindow]:
        out = []
        for route in self.plan.routes:
            for i, stop in enumerate(route.stops):
                if stop.checkpoint != checkpoint:
                    continue
                at = stop.at_min * 60
                span = route.tolerances(i)[2] * 60
                for start in self.tour_starts(route, t - at - span, t - at + span):
                    w = self.window(route, start, i)
                    if w.opens <= t <= w.closes:
                        out.append(w)
        return out

    # --- taps and closes -----------------------------------------------------------------

    def tap(self, checkpoint: str, officer: Officer | None, t: float) -> TapVerdict:
        """Rate one tap at time ``t``; records the visit in the state."""
        if officer is None:
            return TapVerdict(TapStatus.UNKNOWN_CARD)
        # Visits older than the horizon are forgotten, so such windows cannot be judged.
        horizon = self.state.since - VISIT_KEEP_S
        candidates = [w for w in self.windows_open_at(checkpoint, t) if w.closes >= horizon]
        if not candidates:
            return TapVerdict(TapStatus.UNSCHEDULED)
        fresh = [w for w in candidates if w.key not in self.state.visits]
        if not fresh:
            w = min(candidates, key=lambda w: abs(t - w.due))
            return TapVerdict(TapStatus.DUPLICATE, w, _timing(w, t), t - w.due)
        w = min(fresh, key=lambda w: abs(t - w.due))
        timing = _timing(w, t)
        status = TapStatus.OUT_OF_ORDER if self._out_of_order(w, t) else timing
        self.state.visits[w.key] = {
            "t": t,
            "officer": officer.id,
            "status": status.value,
            "closes": w.closes,
        }
        complete = all(f"{w.tour_id}#{i}" in self.state.visits for i in self._local_stops(w.route))
        return TapVerdict(status, w, timing, t - w.due, complete)

    def _out_of_order(self, w: StopWindow, t: float) -> bool:
        if not w.route.ordered:
            return False
        for i in self._local_stops(w.route):
            if i == w.index:
                continue
            visited = f"{w.tour_id}#{i}" in self.state.visits
            if i > w.index and visited:
                return True  # a later stop was already done
            if i < w.index and not visited and self.window(w.route, w.tour_start, i).closes > t:
                return True  # an earlier stop is still open: it was skipped, for now
        return False

    def advance(self, now: float) -> list[StopWindow]:
        """Every stop window that closed in (since, now] without a tap; moves ``since``."""
        since = max(self.state.since, now - self.catchup_s)
        missed: list[StopWindow] = []
        if now > since:
            for route in self.plan.routes:
                for i in self._local_stops(route):
                    stop = route.stops[i]
                    tail = stop.at_min * 60 + route.tolerances(i)[2] * 60
                    for start in self.tour_starts(route, since - tail, now - tail):
                        w = self.window(route, start, i)
                        if since < w.closes <= now and w.key not in self.state.visits:
                            missed.append(w)
        self.state.since = max(self.state.since, now)
        # A visit is only needed while its window can still take a tap (plus clock slack).
        horizon = self.state.since - VISIT_KEEP_S
        for key in [k for k, v in self.state.visits.items() if v["closes"] < horizon]:
            del self.state.visits[key]
        missed.sort(key=lambda w: (w.closes, w.route.id, w.index))
        return missed


def _timing(w: StopWindow, t: float) -> TapStatus:
    if t < w.on_time_from:
        return TapStatus.EARLY
    if t > w.on_time_until:
        return TapStatus.LATE
    return TapStatus.ON_TIME
