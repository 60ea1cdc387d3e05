"""What a panic button's pin levels mean: the pure press state machine.

``PressTracker`` is fed ``(level, monotonic time)`` pairs and timer polls and returns actions
(alarm, cancel request, stuck fault). It never touches a pin or a clock, so every timing rule
(debounce, minimum press, hold to confirm, duress hold, cancel window, stuck) is testable alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Float slack so a poll made exactly at ``deadline()`` always sees the time as reached.
EPS = 1e-9


class Mode(StrEnum):
    """How a press turns into an alarm."""

    INSTANT = "instant"  # a press is an alarm.panic at once
    HOLD = "hold"  # held for hold_s, against accidental presses
    DURESS = "duress"  # a dedicated silent button: alarm.duress


class AlarmKind(StrEnum):
    PANIC = "panic"
    DURESS = "duress"


@dataclass(frozen=True, slots=True)
class PressRules:
    """Timing rules of one button, in seconds.

    ``min_press_s``: the contact must stay made this long before it counts (0 fires on the
    first edge; bounce after it is then absorbed by ``release_s``). ``release_s``: it must
    stay open this long before a release counts, so release bounce never makes a new press.
    ``duress_hold_s`` on an instant or hold button: holding that long sends a silent duress
    instead; the panic then waits for the release (it cannot be sent, then taken back).
    """

    mode: Mode = Mode.INSTANT
    min_press_s: float = 0.05
    release_s: float = 0.05
    hold_s: float = 0.0
    duress_hold_s: float | None = None
    cancel_window_s: float = 10.0
    stuck_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("min_press_s", "release_s", "hold_s", "cancel_window_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.mode is Mode.HOLD and self.hold_s <= 0:
            raise ValueError("hold mode needs hold_s > 0")
        if self.duress_hold_s is not None:
            if self.mode is Mode.DURESS:
                raise ValueError("duress_hold_s is for instant or hold buttons")
            if self.duress_hold_s <= max(self.hold_s, self.min_press_s):
                raise ValueError("duress_hold_s must be longer than hold_s and min_press_s")
        longest = max(self.hold_s, self.min_press_s, self.duress_hold_s or 0.0)
        if self.stuck_s <= longest:
            raise ValueError(f"stuck_s must be longer than every hold ({longest} s)")


# Actions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alarm:
    """Send an alarm now. ``pressed_at`` is when the contact was first made."""

    kind: AlarmKind
    pressed_at: float
    held_s: float


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """A second press inside the cancel window: ask the centre to stand the last alarm down."""

    pressed_at: float
    since_alarm_s: float


@dataclass(frozen=True, slots=True)
class ShortPress:
    """A press released before it was confirmed (hold mode): no alarm, only counted."""

    held_s: float


@dataclass(frozen=True, slots=True)
class Stuck:
    """Held far longer than a person would: report one fault, never a stream of alarms."""

    held_s: float
    at_startup: bool


@dataclass(frozen=True, slots=True)
class StuckCleared:
    held_s: float


Action = Alarm | CancelRequest | ShortPress | Stuck | StuckCleared


class PressTracker:
    """The debounced press/release state of one button and what each press means.

    Call ``reset`` once with the level read at start, then ``feed`` every edge and ``poll``
    whenever ``deadline()`` is reached. Times must come from one monotonic clock.
    """

    def __init__(self, rules: PressRules) -> None:
        self.rules = rules
        self._raw = False
        self._raw_since = 0.0
        self._now = 0.0
        self.pressed = False
        self._press_started = 0.0
        self._alarmed = False  # this press already produced its alarm
        self._consumed = False  # this press was a cancel request or began before start
        self._at_startup = False
        self._stuck = False
        self._last_alarm: tuple[AlarmKind, float] | None = None
        self._cancel_used = False

    def reset(self, active: bool, now: float) -> None:
        """Start from the level read at start; a button already held never raises an alarm."""
        self._raw = active
        self._raw_since = now
        self._now = now
        self.pressed = active
        self._press_started = now
        self._alarmed = False
        self._consumed = active
        self._at_startup = active
        self._stuck = False

    @property
    def stuck(self) -> bool:
        return self._stuck

    def held_s(self, now: float) -> float:
        return max(0.0, now - self._press_started) if self.pressed else 0.0

    def feed(self, active: bool, now: float) -> list[Action]:
        """One edge (level after it, time of it); returns what to do."""
        now = max(now, self._now)
        actions = self.poll(now)  # timers that ran out before this edge count first
        if active != self._raw:
            self._raw = active
            self._raw_since = now
            actions += self.poll(now)
        return actions

    def poll(self, now: float) -> list[Action]:
        now = max(now, self._now)
        self._now = now
        r = self.rules
        actions: list[Action] = []
        if not self.pressed:
            if self._raw and now - self._raw_since >= r.min_press_s - EPS:
                self.pressed = True
                self._press_started = self._raw_since
                self._alarmed = self._consumed = self._at_startup = self._stuck = False
                actions += self._on_press()
        elif not self._raw and now - self._raw_since >= r.release_s - EPS:
            held = self._raw_since - self._press_started
            self.pressed = False
            actions += self._on_release(held)
        if self.pressed and self._raw:
            actions += self._on_held(now - self._press_started)
        return actions

    def deadline(self) -> float | None:
        """The next time ``poll`` has something to decide, or None until the next edge."""
        r = self.rules
        if not self.pressed:
            return self._raw_since + r.min_press_s if self._raw else None
        if not self._raw:
            return self._raw_since + r.release_s
        times = [] if self._stuck else [self._press_started + r.stuck_s]
        if not (self._alarmed or self._consumed):
            if r.duress_hold_s is not None:
                times.append(self._press_started + r.duress_hold_s)
            elif r.hold_s > 0:
                times.append(self._press_started + r.hold_s)
        return min(times) if times else None

    # Decisions ------------------------------------------------------------------------------
    def _alarm(self, kind: AlarmKind, held: float) -> Alarm:
        self._alarmed = True
        self._last_alarm = (kind, self._now)
        self._cancel_used = False
        return Alarm(kind, self._press_started, held)

    def _on_press(self) -> list[Action]:
        r = self.rules
        last = self._last_alarm
        # A coerced "cancel" is what a duress alarm guards against, so duress is never cancelled.
        if (
            last is not None
            and last[0] is AlarmKind.PANIC
            and not self._cancel_used
            and r.cancel_window_s > 0
            and self._press_started - last[1] <= r.cancel_window_s
        ):
            self._cancel_used = True
            self._consumed = True
            return [CancelRequest(self._press_started, self._press_started - last[1])]
        held = self._now - self._press_started
        if r.mode is Mode.INSTANT and r.duress_hold_s is None:
            return [self._alarm(AlarmKind.PANIC, held)]
        if r.mode is Mode.DURESS and r.hold_s <= 0:
            return [self._alarm(AlarmKind.DURESS, held)]
        return []

    def _on_held(self, held: float) -> list[Action]:
        r = self.rules
        actions: list[Action] = []
        if not (self._alarmed or self._consumed):
            if r.duress_hold_s is not None:
                if held + EPS >= r.duress_hold_s:
                    actions.append(self._alarm(AlarmKind.DURESS, held))
            elif r.mode is Mode.HOLD and held + EPS >= r.hold_s:
                actions.append(self._alarm(AlarmKind.PANIC, held))
            elif r.mode is Mode.DURESS and r.hold_s > 0 and held + EPS >= r.hold_s:
                actions.append(self._alarm(AlarmKind.DURESS, held))
        if not self._stuck and held + EPS >= r.stuck_s:
            self._stuck = True
            actions.append(Stuck(held, self._at_startup))
        return actions

    def _on_release(self, held: float) -> list[Action]:
        r = self.rules
        if self._stuck:
            self._stuck = False
            return [StuckCleared(held)]
        if self._alarmed or self._consumed:
            return []
        if r.duress_hold_s is not None and held >= (r.hold_s if r.mode is Mode.HOLD else 0.0):
            # Released before the duress hold: the ordinary panic this press meant.
            return [self._alarm(AlarmKind.PANIC, held)]
        return [ShortPress(held)]
