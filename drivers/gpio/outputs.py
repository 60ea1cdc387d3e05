"""The box's local signalling: the status LED and the buzzer, and what each pattern means.

``led_pattern`` is the pure rule (which state wins); ``StatusLed`` and ``Buzzer`` wrap one
gpiozero output each. Both are driven only from the panel's worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import gpiozero
from gpiozero import Factory

from drivers.gpio.config import OutputConfig


class LedPattern(StrEnum):
    OFF = "off"
    IDLE = "idle"  # slow heartbeat: armed, link up
    AWAITING = "awaiting"  # fast blink: alarm sent, centre has not acknowledged
    ACKNOWLEDGED = "acknowledged"  # solid: the centre acknowledged, help is coming
    LINK_DOWN = "link_down"  # long on, short off: no broker link


# (on seconds, off seconds); None = solid on.
BLINKS: dict[LedPattern, tuple[float, float] | None] = {
    LedPattern.IDLE: (0.1, 1.9),
    LedPattern.AWAITING: (0.1, 0.1),
    LedPattern.ACKNOWLEDGED: None,
    LedPattern.LINK_DOWN: (1.2, 0.3),
}


def led_pattern(*, awaiting: bool, acknowledged: bool, link_up: bool) -> LedPattern:
    """What the LED shows. An unacknowledged alarm outranks everything: a person who pressed
    must see that the box has not heard back, even when the link is down."""
    if awaiting:
        return LedPattern.AWAITING
    if acknowledged:
        return LedPattern.ACKNOWLEDGED
    if not link_up:
        return LedPattern.LINK_DOWN
    return LedPattern.IDLE


class StatusLed:
    """The status LED (through a transistor or directly with a series resistor)."""

    def __init__(self, cfg: OutputConfig, factory: Factory | None) -> None:
        self._led = gpiozero.LED(
            cfg.pin, active_high=cfg.active_high, initial_value=False, pin_factory=factory
        )
        self.pattern = LedPattern.OFF
        self._flash_until: float | None = None

    def show(self, pattern: LedPattern, now: float) -> None:
        if self._flash_until is not None and now < self._flash_until:
            self.pattern = pattern  # applied when the flash ends
            return
        if pattern is self.pattern and self._flash_until is None:
            return
        self._flash_until = None
        self.pattern = pattern
        blink = BLINKS.get(pattern)
        if pattern is LedPattern.OFF:
            self._led.off()
        elif blink is None:
            self._led.on()
        else:
            self._led.blink(on_time=blink[0], off_time=blink[1], background=True)

    def flash(self, count: int, now: float, on_s: float = 0.08, off_s: float = 0.08) -> None:
        """A short acknowledgement flash (patrol tap), then back to the current pattern."""
        self._led.blink(on_time=on_s, off_time=off_s, n=count, background=True)
        self._flash_until = now + count * (on_s + off_s)

    def deadline(self) -> float | None:
        return self._flash_until

    def poll(self, now: float) -> None:
        if self._flash_until is not None and now >= self._flash_until:
            pattern, self.pattern = self.pattern, LedPattern.OFF
            self._flash_until = None
            self.show(pattern, now)

    @property
    def is_lit(self) -> bool:
        return bool(self._led.is_lit)

    def close(self) -> None:
        self._led.close()


@dataclass(frozen=True, slots=True)
class Tone:
    on_s: float
    off_s: float
    count: int


ALARM_TONE = Tone(0.2, 0.1, 3)  # an audible panic was sent
ACK_TONE = Tone(0.8, 0.0, 1)  # the centre acknowledged an audible alarm
CANCEL_TONE = Tone(0.1, 0.1, 2)  # the cancel request was sent
TAP_ACCEPTED = Tone(0.06, 0.0, 1)  # patrol tap recorded
TAP_REJECTED = Tone(0.06, 0.06, 4)  # patrol tag unknown


class Buzzer:
    """An active buzzer, on/off only. Silent alarms never reach it: the panel never calls it."""

    def __init__(self, cfg: OutputConfig, factory: Factory | None) -> None:
        self._buzzer = gpiozero.Buzzer(
            cfg.pin, active_high=cfg.active_high, initial_value=False, pin_factory=factory
        )
        self.sounded = 0

    def sound(self, tone: Tone) -> None:
        self.sounded += 1
        self._buzzer.beep(on_time=tone.on_s, off_time=tone.off_s, n=tone.count, background=True)

    def close(self) -> None:
        self._buzzer.close()
