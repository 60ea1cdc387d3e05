"""USB keyboard-emulation readers: the grabbed-device transport with a fake ``evdev``
module (the real one is Linux-only and optional), including unplug and replug."""

from __future__ import annotations

import errno
import os
import sys
import threading
import types
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from drivers.rfid.hid import KEY_ENTER
from drivers.rfid.reader import hid_reader
from drivers.rfid.tags import Tag, Tech


@dataclass
class KeyEvent:
    type: int
    code: int
    value: int
    sec: float

    def timestamp(self) -> float:
        return self.sec


class FakeKeyboard:
    """One plugged-in reader: a pipe makes its fd readable when keys are queued."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        self.events: list[KeyEvent] = []
        self.gone = False
        self.grabbed = False
        self.lock = threading.Lock()

    def type_line(self, text: str, t0: float) -> None:
        codes = {"0": 11, **{str(d): d + 1 for d in range(1, 10)}}
        with self.lock:
            for i, ch in enumerate(text):
                self.events.append(KeyEvent(1, codes[ch], 1, t0 + i * 0.005))
                self.events.append(KeyEvent(1, codes[ch], 0, t0 + i * 0.005 + 0.001))
            self.events.append(KeyEvent(1, KEY_ENTER, 1, t0 + 0.1))
        os.write(self.w, b"x")

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)

    def unplug(self) -> None:
        self.gone = True
        os.write(self.w, b"x")


class FakeEvdev(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("evdev")
        self.devices: dict[str, FakeKeyboard] = {}
        module = self

        class InputDevice:
            def __init__(self, path: str) -> None:
                kbd = module.devices.get(path)
                if kbd is None or kbd.gone:
                    raise FileNotFoundError(errno.ENOENT, "No such device", path)
                self.kbd = kbd
                self.fd = kbd.r

            def grab(self) -> None:
                self.kbd.grabbed = True

            def ungrab(self) -> None:
                if self.kbd.gone:
                    raise OSError(errno.ENODEV, "No such device")
                self.kbd.grabbed = False

            def close(self) -> None:
                pass

            def read(self) -> list[KeyEvent]:
                os.read(self.fd, 64)
                if self.kbd.gone:
                    raise OSError(errno.ENODEV, "No such device")
                with self.kbd.lock:
                    out, self.kbd.events = self.kbd.events, []
                return out

        self.InputDevice = InputDevice


@pytest.fixture
def evdev(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEvdev]:
    fake = FakeEvdev()
    monkeypatch.setitem(sys.modules, "evdev", fake)
    yield fake
    for kbd in fake.devices.values():
        kbd.close()


class Sink:
    def __init__(self) -> None:
        self.taps: list[Tag] = []
        self.faults: list[bool] = []
        self.cond = threading.Condition()

    def tap(self, reader: str, tag: Tag, *, simulated: bool = False) -> None:
        with self.cond:
            self.taps.append(tag)
            self.cond.notify_all()

    def fault(self, reader: str, *, active: bool, detail: str) -> None:
        with self.cond:
            self.faults.append(active)
            self.cond.notify_all()

    def wait(self, pred, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
        with self.cond:
            return self.cond.wait_for(pred, timeout)


PATH = "/dev/input/by-id/usb-Sycreader_RFID-event-kbd"


def test_grabbed_reader_taps_and_survives_replug(evdev: FakeEvdev) -> None:
    kbd = FakeKeyboard()
    evdev.devices[PATH] = kbd
    sink = Sink()
    reader = hid_reader("desk", sink, PATH, backoff_min_s=0.05, backoff_max_s=0.1)
    reader.start()
    try:
        assert sink.wait(lambda: kbd.grabbed)
        kbd.type_line("3808980205", 10.0)
        assert sink.wait(lambda: len(sink.taps) == 1)
        assert sink.taps[0] == Tag(Tech.DEC32, "E3086CED")
        kbd.unplug()
        assert sink.wait(lambda: sink.faults == [True])
        evdev.devices[PATH] = kbd2 = FakeKeyboard()  # plugged back: a new event node
        assert sink.wait(lambda: sink.faults == [True, False])
        assert sink.wait(lambda: kbd2.grabbed)
        kbd2.type_line("0000000001", 20.0)
        assert sink.wait(lambda: len(sink.taps) == 2)
        assert sink.taps[1].key == "dec32:0000000001"
    finally:
        reader.stop()


def test_missing_evdev_package_is_a_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "evdev", None)  # import evdev → ImportError
    sink = Sink()
    reader = hid_reader("desk", sink, PATH, backoff_min_s=0.05)
    reader.start()
    try:
        assert sink.wait(lambda: sink.faults == [True])
        assert "evdev" in reader.status()["last_error"]
    finally:
        reader.stop()
