"""Turning a stream of reads into taps: one tap per presence, and a re-tap hold-off.

Readers repeat a card for as long as it is in the field (RDM6300 every ~100 ms, a PN532 on
every poll). ``PresenceFilter`` passes the first read and swallows repeats until the card has
been silent for ``gap_s``. ``RetapHoldoff`` then ignores the same card at the same checkpoint
for ``holdoff_s`` after a tap, so a guard fumbling a fob makes one record, not three.
"""

from __future__ import annotations

from collections.abc import Hashable


class PresenceFilter:
    """Per reader. ``seen(key, now)`` is True only for the first read of a presence."""

    def __init__(self, gap_s: float = 0.5) -> None:
        self.gap_s = gap_s
        self.repeats = 0
        self._last: dict[Hashable, float] = {}

    def seen(self, key: Hashable, now: float) -> bool:
        last = self._last.get(key)
        self._last[key] = now
        if len(self._last) > 64:
            self._prune(now)
        if last is not None and now - last <= self.gap_s:
            self.repeats += 1
            return False
        return True

    def _prune(self, now: float) -> None:
        for key, t in list(self._last.items()):
            if now - t > self.gap_s:
                del self._last[key]


class RetapHoldoff:
    """Per (tag, checkpoint): ``allow(key, now)`` is False within ``holdoff_s`` of the last
    allowed tap of the same key. Suppressed taps do not extend the hold-off."""

    def __init__(self, holdoff_s: float = 30.0) -> None:
        self.holdoff_s = holdoff_s
        self.suppressed = 0
        self._last: dict[Hashable, float] = {}

    def allow(self, key: Hashable, now: float) -> bool:
        last = self._last.get(key)
        if last is not None and 0 <= now - last < self.holdoff_s:
            self.suppressed += 1
            return False
        self._last[key] = now
        if len(self._last) > 1024:
            for k, t in list(self._last.items()):
                if now - t >= self.holdoff_s:
                    del self._last[k]
        return True
