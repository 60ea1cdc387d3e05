"""Wiegand 26 / 34 readers on two GPIO lines (D0, D1): bit collection and frame decoding.

``decode_wiegand`` and ``WiegandAssembler`` are pure. ``WiegandReader`` is the hardware side:
two gpiozero inputs whose callbacks only queue (bit, time); its own thread ends a frame
after ``gap_s`` of silence, decodes it and hands the tag on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from drivers.rfid.tags import Tag, Tech

log = logging.getLogger(__name__)

# Frame end: pulses are ~1-2 ms apart; a silence longer than this ends the frame.
DEFAULT_GAP_S = 0.025


@dataclass(frozen=True, slots=True)
class WiegandCard:
    bits: int  # 26 or 34
    facility: int
    card: int
    tag: Tag

    @property
    def printed(self) -> str:
        """``FFF,CCCCC`` for 26 bits; ``FFFFF,CCCCC`` for 34 (16-bit facility)."""
        width = 3 if self.bits == 26 else 5
        return f"{self.facility:0{width}d},{self.card:05d}"


def _parity_ok(bits: str) -> bool:
    half = len(bits) // 2
    even_ok = bits[:half].count("1") % 2 == 0  # leading bit makes the first half even
    odd_ok = bits[half:].count("1") % 2 == 1  # trailing bit makes the second half odd
    return even_ok and odd_ok


def decode_wiegand(bits: str) -> WiegandCard:
    """A string of '0'/'1' (first bit first) → the card; ``ValueError`` if length or parity
    is wrong. 26: P FC8 CARD16 P. 34: P DATA32 P (16-bit facility + 16-bit card)."""
    if len(bits) not in (26, 34) or set(bits) - {"0", "1"}:
        raise ValueError(f"wiegand frame of {len(bits)} bits (expected 26 or 34)")
    if not _parity_ok(bits):
        raise ValueError("wiegand parity error")
    data = int(bits[1:-1], 2)
    if len(bits) == 26:
        return WiegandCard(26, data >> 16, data & 0xFFFF, Tag(Tech.WIEGAND26, f"{data:06X}"))
    return WiegandCard(34, data >> 16, data & 0xFFFF, Tag(Tech.WIEGAND34, f"{data:08X}"))


def encode_wiegand(data: int, bits: int = 26) -> str:
    """The bit string a reader sends for ``data`` (24 or 32 bits), parity included."""
    width = bits - 2
    if bits not in (26, 34) or not 0 <= data < (1 << width):
        raise ValueError("wiegand 26 carries 24 data bits, 34 carries 32")
    body = f"{data:0{width}b}"
    half = width // 2
    lead = "1" if body[:half].count("1") % 2 else "0"
    trail = "0" if body[half:].count("1") % 2 else "1"
    return lead + body + trail


@dataclass
class WiegandStats:
    frames: int = 0
    bad_parity: int = 0
    bad_length: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class WiegandAssembler:
    """Collects timed bits into frames. Feed ``bit(value, t)``; call ``flush(now)`` when
    idle. Both return the decoded card of a frame that ended, or None."""

    def __init__(self, gap_s: float = DEFAULT_GAP_S) -> None:
        self.gap_s = gap_s
        self.stats = WiegandStats()
        self._bits: list[str] = []
        self._last = 0.0

    def bit(self, value: int, t: float) -> WiegandCard | None:
        done = self.flush(t)
        self._bits.append("1" if value else "0")
        self._last = t
        if len(self._bits) > 64:  # a stuck line: drop, do not grow without bound
            self.stats.bad_length += 1
            self._bits.clear()
        return done

    def pending_deadline(self) -> float | None:
        return self._last + self.gap_s if self._bits else None

    def flush(self, now: float) -> WiegandCard | None:
        if not self._bits or now - self._last <= self.gap_s:
            return None
        bits = "".join(self._bits)
        self._bits.clear()
        try:
            card = decode_wiegand(bits)
        except ValueError as exc:
            if "parity" in str(exc):
                self.stats.bad_parity += 1
            else:
                self.stats.bad_length += 1
            return None
        self.stats.frames += 1
        return card


class WiegandReader:
    """A Wiegand reader on two GPIO inputs (active-low D0 = '0', D1 = '1').

    Wiring: reader D0/D1 (5 V open-drain) through a level shifter or opto to two GPIOs;
    ``pull_up`` True uses the Pi's internal pull-ups. Python callbacks need a backend that
    queues edges in the kernel (lgpio on current Pi OS); timestamps come from the callback.
    """

    def __init__(
        self,
        name: str,
        d0: int | str,
        d1: int | str,
        on_card: Callable[[WiegandCard], None],
        *,
        gap_s: float = DEFAULT_GAP_S,
        pull_up: bool = True,
        pin_factory: Any = None,
    ) -> None:
        self.name = name
        self._d0_pin, self._d1_pin = d0, d1
        self._pull_up = pull_up
        self._factory = pin_factory
        self._on_card = on_card
        self.assembler = WiegandAssembler(gap_s)
        self._bits: queue.SimpleQueue[tuple[int, float] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._devices: list[Any] = []

    def start(self) -> None:
        from gpiozero import DigitalInputDevice

        for pin, value in ((self._d0_pin, 0), (self._d1_pin, 1)):
            dev = DigitalInputDevice(pin, pull_up=self._pull_up, pin_factory=self._factory)
            dev.when_activated = self._edge_handler(value)
            self._devices.append(dev)
        self._thread = threading.Thread(target=self._run, name=f"wiegand-{self.name}", daemon=True)
        self._thread.start()

    def _edge_handler(self, value: int) -> Callable[[], None]:
        put = self._bits.put

        def handler() -> None:
            put((value, time.monotonic()))  # hand off and return: nothing else here

        return handler

    def stop(self) -> None:
        self._bits.put(None)
        if self._thread is not None:
            self._thread.join(timeout=2)
        for dev in self._devices:
            dev.close()
        self._devices.clear()

    def _run(self) -> None:
        while True:
            deadline = self.assembler.pending_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic() + 0.001)
            try:
                item = self._bits.get(timeout=timeout)
            except queue.Empty:
                card = self.assembler.flush(time.monotonic())
            else:
                if item is None:
                    return
                card = self.assembler.bit(item[0], item[1])
            if card is not None:
                try:
                    self._on_card(card)
                except Exception:
                    log.exception("wiegand %s: tap handler failed", self.name)

    def status(self) -> dict[str, Any]:
        return {"type": "wiegand", **self.assembler.stats.to_dict()}
