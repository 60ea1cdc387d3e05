"""Typed configuration of one RFID reader: a pydantic model per reader family, chosen by
``type`` (the ``[[patrol.readers]]`` tables of outpost.toml).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class Section(BaseModel):
    """Same rule as ``agent.config.Section`` (unknown keys are errors); defined here because
    ``agent.config`` imports this module through the patrol section."""

    model_config = ConfigDict(extra="forbid")


class _Reader(Section):
    name: str = Field(pattern=NAME_PATTERN, description="Reader name; simulate tap uses it.")
    # The checkpoint this reader stands for, until the centre's plan maps it; default: name.
    checkpoint: str | None = Field(None, min_length=1, max_length=64)
    # Repeats of the same card closer than this are one presence (one tap).
    presence_gap_s: float = Field(0.5, ge=0, le=30)


class _SerialReader(_Reader):
    port: str = Field("/dev/serial0", description="Prefer /dev/serial/by-id/… for USB adapters.")
    backoff_max_s: float = Field(10.0, gt=0, le=600)


class Rdm6300Config(_SerialReader):
    """RDM6300 / RDM630 (125 kHz, 9600 8N1, streams while a card is held)."""

    type: Literal["rdm6300"]
    baud: int = 9600


class Id12Config(_SerialReader):
    """ID-12LA / ID-20LA in ASCII mode (9600 8N1, CR LF before ETX)."""

    type: Literal["id12"]
    baud: int = 9600


class Pn532Config(_SerialReader):
    """PN532 in HSU mode (13.56 MHz MIFARE UIDs), polled."""

    type: Literal["pn532"]
    baud: int = 115200
    presence_gap_s: float = Field(1.0, ge=0, le=30)
    poll_s: float = Field(0.2, ge=0.02, le=10)
    timeout_s: float = Field(0.5, gt=0, le=10)
    retries: int = Field(2, ge=0, le=10)
    activation_retries: int = Field(16, ge=0, le=254, description="MxRtyPassiveActivation")


class WiegandReaderConfig(_Reader):
    """Wiegand 26/34 on two GPIO lines (BCM numbers or gpiozero pin names)."""

    type: Literal["wiegand"]
    d0: int | str
    d1: int | str
    gap_ms: float = Field(25, gt=0, le=500)
    pull_up: bool = True
    # gpiozero's MockFactory: simulated profile and tests only.
    mock: bool = False


class HidReaderConfig(_Reader):
    """A USB keyboard-emulation reader through evdev (needs the optional 'evdev' package)."""

    type: Literal["hid"]
    path: str = Field(description="/dev/input/by-id/usb-…-event-kbd")
    format: Literal["auto", "dec32", "dec24", "hex"] = "auto"
    backoff_max_s: float = Field(10.0, gt=0, le=600)


class SimReaderConfig(_Reader):
    """No hardware: only ``outpost simulate tap`` feeds it."""

    type: Literal["sim"]


ReaderConfig = Annotated[
    Rdm6300Config
    | Id12Config
    | Pn532Config
    | WiegandReaderConfig
    | HidReaderConfig
    | SimReaderConfig,
    Field(discriminator="type"),
]
