"""USB keyboard-emulation RFID readers ("ID"/"IC" USB readers) through evdev.

``KeystrokeDecoder`` is pure: key-down codes in, a tag out when ENTER ends the line. The
transport (``HidTransport``) grabs the input device so typed ids never reach a console; it
imports ``evdev`` only when opened, so the rest of the agent runs without it.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any, Literal

from drivers.rfid.tags import Tag, Tech

# Linux input key codes (linux/input-event-codes.h).
KEY_ENTER = 28
KEY_KPENTER = 96
_KEYS: dict[int, str] = {
    2: "1", 3: "2", 4: "3", 5: "4", 6: "5", 7: "6", 8: "7", 9: "8", 10: "9", 11: "0",
    79: "1", 80: "2", 81: "3", 75: "4", 76: "5", 77: "6", 71: "7", 72: "8", 73: "9", 82: "0",
    30: "A", 48: "B", 46: "C", 32: "D", 18: "E", 33: "F",
}  # fmt: skip
_SHIFT = frozenset({42, 54})
EV_KEY = 1
KEY_DOWN = 1

Format = Literal["auto", "dec32", "dec24", "hex"]


@dataclass
class HidStats:
    lines: int = 0
    bad_lines: int = 0  # wrong length, not a number, unknown keys
    timeouts: int = 0  # a partial line that never got its ENTER

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def decode_line(text: str, fmt: Format = "auto") -> Tag:
    """What the reader typed → the tag; ``ValueError`` if it is not a card id.

    ``auto``: 10 digits = 32-bit decimal, 8 digits = 24-bit decimal, otherwise hex (10 hex =
    EM4100, 8/14/20 hex = MIFARE UID)."""
    text = text.upper()
    if fmt == "auto":
        if text.isdigit() and len(text) in (8, 10):
            fmt = "dec24" if len(text) == 8 else "dec32"
        else:
            fmt = "hex"
    if fmt == "dec32":
        if not text.isdigit() or not 0 <= int(text) <= 0xFFFFFFFF:
            raise ValueError(f"{text!r} is not a 32-bit decimal")
        return Tag(Tech.DEC32, f"{int(text):08X}")
    if fmt == "dec24":
        if not text.isdigit() or not 0 <= int(text) <= 0xFFFFFF:
            raise ValueError(f"{text!r} is not a 24-bit decimal")
        return Tag(Tech.DEC24, f"{int(text):06X}")
    if len(text) == 10:
        return Tag(Tech.EM4100, text)
    if len(text) in (8, 14, 20):
        return Tag(Tech.MIFARE, text)
    raise ValueError(f"{text!r}: unexpected length {len(text)} for a hex id")


class KeystrokeDecoder:
    """Feed key-down codes with their time; returns a tag when a line ends.

    A line not finished within ``timeout_s`` of its last key (card pulled away mid-line)
    is dropped, so its digits never prefix the next card."""

    def __init__(self, fmt: Format = "auto", timeout_s: float = 0.2) -> None:
        self.fmt: Format = fmt
        self.timeout_s = timeout_s
        self.stats = HidStats()
        self._line: list[str] = []
        self._bad = False
        self._last = 0.0

    def key(self, code: int, t: float) -> Tag | None:
        if self._line and t - self._last > self.timeout_s:
            self.stats.timeouts += 1
            self._line.clear()
            self._bad = False
        self._last = t
        if code in _SHIFT:
            return None
        if code in (KEY_ENTER, KEY_KPENTER):
            text, bad = "".join(self._line), self._bad
            self._line.clear()
            self._bad = False
            if not text:
                return None
            try:
                if bad:
                    raise ValueError("unknown key in line")
                tag = decode_line(text, self.fmt)
            except ValueError:
                self.stats.bad_lines += 1
                return None
            self.stats.lines += 1
            return tag
        ch = _KEYS.get(code)
        if ch is None:
            self._bad = True
        elif len(self._line) < 32:
            self._line.append(ch)
        else:
            self._bad = True
        return None


class HidTransport:
    """One grabbed evdev input device (use the stable ``/dev/input/by-id/...-event-kbd`` path).

    The service user needs read access to it (``input`` group or a udev rule)."""

    def __init__(self, path: str, decoder: KeystrokeDecoder) -> None:
        self.path = path
        self.decoder = decoder
        self._dev: Any = None

    def open(self) -> None:
        try:
            import evdev  # optional dependency: only USB keyboard readers need it
        except ImportError as exc:
            raise OSError(f"python package 'evdev' is not installed: {exc}") from exc
        dev = evdev.InputDevice(self.path)
        try:
            dev.grab()
        except OSError:
            dev.close()
            raise
        self._dev = dev

    def close(self) -> None:
        if self._dev is not None:
            with contextlib.suppress(OSError):
                self._dev.ungrab()
            self._dev.close()
            self._dev = None

    def read(self, timeout_s: float) -> list[Tag]:
        """Wait up to ``timeout_s`` for key events; ``OSError`` when the device is gone."""
        import select

        dev = self._dev
        if dev is None:
            raise OSError("device not open")
        ready, _, _ = select.select([dev.fd], [], [], timeout_s)
        if not ready:
            return []
        tags: list[Tag] = []
        for ev in dev.read():
            if ev.type == EV_KEY and ev.value == KEY_DOWN:
                tag = self.decoder.key(ev.code, ev.timestamp())
                if tag is not None:
                    tags.append(tag)
        return tags
