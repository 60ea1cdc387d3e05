"""Local feedback for a tap: what the officer hears and sees at the checkpoint box.

The GPIO panel's ``TapFeedback`` implements this (short beep + LED flash for an accepted
tap, a distinct pattern for an unknown card); patrol never imports GPIO code.
"""

from __future__ import annotations

from typing import Protocol


class Feedback(Protocol):
    """Both calls must return at once (hand off to the device's own thread)."""

    def accepted(self) -> None: ...

    def rejected(self) -> None: ...


class NoFeedback:
    """The default when no LED or buzzer is wired."""

    def accepted(self) -> None:
        pass

    def rejected(self) -> None:
        pass
