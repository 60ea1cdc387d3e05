"""The box's GPIO inputs, one class per physical thing: panic button, tamper loop, mains line.

Each wraps one gpiozero ``DigitalInputDevice`` whose callbacks only pass the edge to the
panel, which timestamps it with its clock and queues it (they run on the backend's thread, or
the caller's with mock pins). The meaning of the levels lives in the pure trackers
(``PressTracker``, ``SettledLevel``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gpiozero
from gpiozero import Factory

from drivers.gpio.config import ButtonConfig, PowerConfig, TamperConfig, _InputConfig
from drivers.gpio.press import Action, PressTracker
from drivers.gpio.settle import SettledLevel

EdgeSink = Callable[["GpioInput", bool], None]


class GpioInput:
    """One input pin: opens it, reports edges as (device, active); the sink timestamps them."""

    name: str

    def __init__(self, cfg: _InputConfig, factory: Factory | None, on_edge: EdgeSink) -> None:
        self.cfg = cfg
        self._on_edge = on_edge
        # bounce_time stays None: debouncing is ours, identical on every backend and on mock pins.
        self.device = gpiozero.DigitalInputDevice(
            cfg.pin,
            pull_up=cfg.pull_up,
            active_state=cfg.active_state,
            bounce_time=None,
            pin_factory=factory,
        )
        self.device.when_activated = self._activated
        self.device.when_deactivated = self._deactivated

    def _activated(self) -> None:
        self._on_edge(self, True)

    def _deactivated(self) -> None:
        self._on_edge(self, False)

    @property
    def active_level_high(self) -> bool:
        """The pin level (True = high) that reads as active; what a simulator drives."""
        return self.cfg.active_high

    def read(self) -> bool:
        return bool(self.device.is_active)

    def close(self) -> None:
        self.device.close()

    def feed(self, active: bool, now: float) -> list[Any]:
        raise NotImplementedError

    def poll(self, now: float) -> list[Any]:
        raise NotImplementedError

    def deadline(self) -> float | None:
        raise NotImplementedError


class PanicButton(GpioInput):
    """A panic button: a normally-open push button between the pin and GND (pull-up on).

    Pressing it makes the contact (active); ``PressTracker`` decides what the press means:
    an instant panic, a panic after a hold, a silent duress, a cancel request or a stuck fault.
    """

    def __init__(self, cfg: ButtonConfig, factory: Factory | None, on_edge: EdgeSink) -> None:
        super().__init__(cfg, factory, on_edge)
        self.name = cfg.name
        self.mode = cfg.mode
        self.zone = cfg.zone if cfg.zone is not None else 0
        self.tracker = PressTracker(cfg.rules())
        self.last_alarm_id: str | None = None
        self.alarms = 0

    def reset(self, now: float) -> None:
        self.tracker.reset(self.read(), now)

    def feed(self, active: bool, now: float) -> list[Action]:
        return self.tracker.feed(active, now)

    def poll(self, now: float) -> list[Action]:
        return self.tracker.poll(now)

    def deadline(self) -> float | None:
        return self.tracker.deadline()


class TamperLoop(GpioInput):
    """The enclosure tamper: a normally-closed switch (or a loop through every lid) to GND.

    The loop intact pulls the pin low (active). Opening the lid or cutting a wire lets the
    pull-up win, which reads as tamper; both are the same event on purpose.
    """

    def __init__(self, cfg: TamperConfig, factory: Factory | None, on_edge: EdgeSink) -> None:
        super().__init__(cfg, factory, on_edge)
        self.name = cfg.name
        self.kind = cfg.kind
        self.zone = cfg.zone
        self.filter = SettledLevel(cfg.settle_ms / 1000)

    @property
    def is_open(self) -> bool:
        return self.filter.level

    def reset(self, now: float) -> None:
        self.filter.reset(not self.read(), now)

    def feed(self, active: bool, now: float) -> list[bool]:
        """Returns settled 'loop open' levels."""
        return self.filter.feed(not active, now)

    def poll(self, now: float) -> list[bool]:
        return self.filter.poll(now)

    def deadline(self) -> float | None:
        return self.filter.deadline()


class PowerInput(GpioInput):
    """A mains-present or UPS power-loss line; configured so that *active* means mains lost."""

    def __init__(self, cfg: PowerConfig, factory: Factory | None, on_edge: EdgeSink) -> None:
        super().__init__(cfg, factory, on_edge)
        self.name = cfg.name
        self.zone = cfg.zone
        self.filter = SettledLevel(cfg.settle_ms / 1000)

    @property
    def mains_lost(self) -> bool:
        return self.filter.level

    def reset(self, now: float) -> None:
        self.filter.reset(self.read(), now)

    def feed(self, active: bool, now: float) -> list[bool]:
        """Returns settled 'mains lost' levels."""
        return self.filter.feed(active, now)

    def poll(self, now: float) -> list[bool]:
        return self.filter.poll(now)

    def deadline(self) -> float | None:
        return self.filter.deadline()
