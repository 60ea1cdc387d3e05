"""A level that counts only once it has held still: the pure filter behind supervision inputs.

``SettledLevel`` is fed ``(level, monotonic time)`` and reports a change only after the new
level has been stable for ``settle_s``, so a bouncing lid switch or a flickering UPS line
gives one event and one restore, not a burst.
"""

from __future__ import annotations

# Float slack so a poll made exactly at ``deadline()`` always sees the time as reached.
EPS = 1e-9


class SettledLevel:
    """The debounced state of one two-level input."""

    def __init__(self, settle_s: float) -> None:
        if settle_s < 0:
            raise ValueError("settle_s must be >= 0")
        self.settle_s = settle_s
        self.level = False
        self._raw = False
        self._raw_since = 0.0
        self._now = 0.0

    def reset(self, level: bool, now: float) -> None:
        """Take the level read at start as settled."""
        self.level = self._raw = level
        self._raw_since = self._now = now

    def feed(self, level: bool, now: float) -> list[bool]:
        """One edge; returns the settled levels it (and any timer that ran out) produced."""
        now = max(now, self._now)
        changes = self.poll(now)
        if level != self._raw:
            self._raw = level
            self._raw_since = now
            changes += self.poll(now)
        return changes

    def poll(self, now: float) -> list[bool]:
        now = max(now, self._now)
        self._now = now
        if self._raw != self.level and now - self._raw_since >= self.settle_s - EPS:
            self.level = self._raw
            return [self.level]
        return []

    def deadline(self) -> float | None:
        return self._raw_since + self.settle_s if self._raw != self.level else None
