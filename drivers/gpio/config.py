"""Typed configuration of the GPIO side: panic buttons, tamper loop, mains input, LED, buzzer.

The ``[gpio]`` table of outpost.toml. Pins are BCM numbers (``17``) or any name gpiozero
accepts (``"GPIO17"``, ``"BOARD11"``). Pull and active state follow gpiozero's ``Button``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drivers.gpio.press import Mode, PressRules

Pin = int | str


class Section(BaseModel):
    """Same rule as ``agent.config.Section`` (unknown keys are errors), defined here because
    ``agent.config`` imports this module for its ``gpio`` field."""

    model_config = ConfigDict(extra="forbid")


NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class _InputConfig(Section):
    pin: Pin
    # "up": wired pin → switch → GND with the internal pull-up; active when low (the default).
    # "down": wired to 3V3 with the internal pull-down; active when high.
    # "off": an external pull resistor; then ``active`` must say which level is active.
    pull: Literal["up", "down", "off"] = "up"
    active: Literal["low", "high"] | None = None

    @model_validator(mode="after")
    def _check_pull(self) -> _InputConfig:
        if self.pull == "off" and self.active is None:
            raise ValueError('active ("low" or "high") is required when pull = "off"')
        implied = {"up": "low", "down": "high"}.get(self.pull)
        if implied is not None and self.active not in (None, implied):
            raise ValueError(f'pull = "{self.pull}" means active = "{implied}"; use pull = "off"')
        return self

    @property
    def pull_up(self) -> bool | None:
        """gpiozero's ``pull_up`` argument."""
        return {"up": True, "down": False, "off": None}[self.pull]

    @property
    def active_state(self) -> bool | None:
        """gpiozero's ``active_state`` argument (only with an external pull)."""
        return self.active == "high" if self.pull == "off" else None

    @property
    def active_high(self) -> bool:
        """The pin level that reads as active: what a simulator drives for a press."""
        return self.pull == "down" or self.active == "high"


class ButtonConfig(_InputConfig):
    """One panic button."""

    name: str = Field(pattern=NAME_PATTERN)
    mode: Literal["instant", "hold", "duress"] = "instant"
    # Hold mode: seconds held before the alarm (default 2). Duress mode: 0 = on press.
    hold_s: float | None = Field(None, ge=0, le=30)
    # Instant/hold button: held this long sends a silent alarm.duress instead of the panic.
    duress_hold_s: float | None = Field(None, gt=0, le=60)
    min_press_ms: float = Field(50, ge=0, le=2000)
    release_ms: float = Field(50, ge=0, le=2000)
    # A second press this soon after the alarm asks the centre to cancel it; 0 disables.
    cancel_window_s: float = Field(10, ge=0, le=600)
    stuck_s: float = Field(60, gt=0, le=3600)
    zone: int | None = Field(None, ge=0, le=999, description="Contact ID zone; default 1, 2, ...")

    def rules(self) -> PressRules:
        mode = Mode(self.mode)
        hold = self.hold_s if self.hold_s is not None else (2.0 if mode is Mode.HOLD else 0.0)
        return PressRules(
            mode=mode,
            min_press_s=self.min_press_ms / 1000,
            release_s=self.release_ms / 1000,
            hold_s=hold,
            duress_hold_s=self.duress_hold_s,
            cancel_window_s=self.cancel_window_s,
            stuck_s=self.stuck_s,
        )

    @model_validator(mode="after")
    def _check_rules(self) -> ButtonConfig:
        if self.mode == "instant" and self.hold_s:
            raise ValueError("hold_s does not apply to an instant button (use mode = 'hold')")
        self.rules()  # raises ValueError naming the rule that does not hold
        return self


class TamperConfig(_InputConfig):
    """The enclosure tamper: a normally-closed loop; open or cut reads as tamper."""

    name: str = Field("enclosure", pattern=NAME_PATTERN)
    kind: Literal["enclosure", "sensor"] = "enclosure"  # Contact ID 137 / 144
    settle_ms: float = Field(100, ge=0, le=10_000)
    zone: int = Field(0, ge=0, le=999)


class PowerConfig(_InputConfig):
    """A mains-present / UPS power-loss line. *Active* means mains is LOST."""

    name: str = Field("mains", pattern=NAME_PATTERN)
    settle_ms: float = Field(2000, ge=0, le=60_000)
    zone: int = Field(0, ge=0, le=999)


class OutputConfig(Section):
    """An LED or buzzer, usually through a transistor; active_high False for a sinking drive."""

    pin: Pin
    active_high: bool = True


class GpioConfig(Section):
    """Everything wired to the header. With no inputs and no outputs nothing is opened."""

    # Use gpiozero's MockFactory (simulated profile and tests). Never on a real box.
    mock: bool = False
    # lgpio chip on a Pi 5; None lets gpiozero choose (0 on current kernels).
    lgpio_chip: int | None = Field(None, ge=0, le=64)
    buttons: list[ButtonConfig] = Field(default_factory=list)
    tamper: TamperConfig | None = None
    power: PowerConfig | None = None
    led: OutputConfig | None = None
    buzzer: OutputConfig | None = None
    # Unacknowledged alarm this long → alarm.escalation event (0 disables).
    ack_timeout_s: float = Field(120, ge=0, le=86_400)
    # How long the LED stays solid after the centre acknowledged.
    ack_display_s: float = Field(30, ge=0, le=3600)
    group: int = Field(1, ge=0, le=99, description="Contact ID group/partition")

    @field_validator("buttons")
    @classmethod
    def _number_zones(cls, buttons: list[ButtonConfig]) -> list[ButtonConfig]:
        names = [b.name for b in buttons]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"button name {name!r} used twice")
        return [
            b if b.zone is not None else b.model_copy(update={"zone": i + 1})
            for i, b in enumerate(buttons)
        ]

    @model_validator(mode="after")
    def _pins_unique(self) -> GpioConfig:
        seen: dict[str, str] = {}
        named: list[tuple[str, Pin | None]] = [(f"buttons[{b.name}]", b.pin) for b in self.buttons]
        named += [
            ("tamper", self.tamper.pin if self.tamper else None),
            ("power", self.power.pin if self.power else None),
            ("led", self.led.pin if self.led else None),
            ("buzzer", self.buzzer.pin if self.buzzer else None),
        ]
        for what, pin in named:
            if pin is None:
                continue
            key = _pin_key(pin)
            if key in seen:
                raise ValueError(f"{what}: pin {pin!r} already used by {seen[key]}")
            seen[key] = what
        return self

    @property
    def empty(self) -> bool:
        return not (self.buttons or self.tamper or self.power or self.led or self.buzzer)


def _pin_key(pin: Pin) -> str:
    """Compare BCM numbers and ``GPIOn`` names alike; other spellings compare as written."""
    if isinstance(pin, int):
        return f"GPIO{pin}"
    text = pin.strip().upper()
    return f"GPIO{text}" if text.isdigit() else text
