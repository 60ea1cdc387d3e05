"""Wiegand readers through gpiozero's MockFactory pins, pulsed with real timing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.rfid.reader import WiegandRfidReader
from drivers.rfid.tags import Tag
from drivers.rfid.wiegand import encode_wiegand


class Sink:
    def __init__(self) -> None:
        self.taps: list[Tag] = []
        self.faults: list[tuple[bool, str]] = []
        self.cond = threading.Condition()

    def tap(self, reader: str, tag: Tag, *, simulated: bool = False) -> None:
        with self.cond:
            self.taps.append(tag)
            self.cond.notify_all()

    def fault(self, reader: str, *, active: bool, detail: str) -> None:
        self.faults.append((active, detail))


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


def pulse_frame(factory: MockFactory, bits: str, d0: int = 5, d1: int = 6) -> None:
    """Active-low pulses of ~0.2 ms, ~2 ms apart, like a reader does (slower, for Python)."""
    pins = {"0": factory.pin(d0), "1": factory.pin(d1)}
    for b in bits:
        pin = pins[b]
        pin.drive_low()
        time.sleep(0.0002)
        pin.drive_high()
        time.sleep(0.002)


def test_wiegand26_through_mock_pins(factory: MockFactory) -> None:
    sink = Sink()
    reader = WiegandRfidReader("door", sink, 5, 6, pin_factory=factory, presence_gap_s=0.1)
    reader.start()
    try:
        pulse_frame(factory, encode_wiegand((90 << 16) | 324, 26))
        with sink.cond:
            assert sink.cond.wait_for(lambda: len(sink.taps) == 1, 2)
        assert sink.taps[0].key == "w26:090,00324"
        assert reader.last_card is not None and reader.last_card.printed == "090,00324"
        # A frame with a parity error is counted, never a tap.
        bad = encode_wiegand(0x5A0145, 26)
        bad = bad[:-1] + ("0" if bad[-1] == "1" else "1")
        time.sleep(0.05)
        pulse_frame(factory, bad)
        time.sleep(0.1)
        assert len(sink.taps) == 1
        assert reader.status()["bad_parity"] == 1
    finally:
        reader.stop()


def test_wiegand34_and_two_frames_back_to_back(factory: MockFactory) -> None:
    sink = Sink()
    reader = WiegandRfidReader("yard", sink, 5, 6, pin_factory=factory, presence_gap_s=0.0)
    reader.start()
    try:
        pulse_frame(factory, encode_wiegand(0xE3086CED, 34))
        time.sleep(0.04)  # just over the 25 ms frame gap
        pulse_frame(factory, encode_wiegand(0x00000001, 34))
        with sink.cond:
            assert sink.cond.wait_for(lambda: len(sink.taps) == 2, 2)
        assert [t.key for t in sink.taps] == ["dec32:3808980205", "dec32:0000000001"]
    finally:
        reader.stop()


def test_pin_in_use_is_a_fault_not_a_crash(factory: MockFactory) -> None:
    sink = Sink()
    first = WiegandRfidReader("a", sink, 5, 6, pin_factory=factory)
    first.start()
    second = WiegandRfidReader("b", sink, 5, 6, pin_factory=factory)
    try:
        second.start()
        assert sink.faults and sink.faults[0][0] is True
    finally:
        first.stop()
        second.stop()
