"""RDM6300 / RDM630 (125 kHz EM4100, UART 9600 8N1): the ASCII frame parser.

Frame: STX ``0x02``, 10 hex chars (5 data bytes), 2 hex chars (XOR of the 5 bytes), ETX
``0x03``. The parser is fed whatever bytes the port gives and keeps partial state between
calls; anything that is not a whole, checksummed frame is counted and dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from drivers.rfid.tags import Tag, em4100

STX = 0x02
ETX = 0x03
BAUD = 9600
_HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")
_CRLF = frozenset(b"\r\n")


@dataclass
class ParserStats:
    """Counters a parser keeps; exposed in the reader's status."""

    frames: int = 0  # good frames (tags yielded)
    bad_checksum: int = 0
    bad_frame: int = 0  # wrong length, truncated by a new STX, wrong trailer
    noise_bytes: int = 0  # bytes outside any frame, or a non-hex byte inside one

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def xor_checksum(data: bytes) -> int:
    out = 0
    for b in data:
        out ^= b
    return out


def decode_ascii_frame(body: bytes) -> Tag | None:
    """12 ASCII hex chars (data + checksum) → the tag, or None if the checksum is wrong."""
    raw = bytes.fromhex(body.decode("ascii"))
    if xor_checksum(raw[:5]) != raw[5]:
        return None
    return em4100(raw[:5])


def encode_ascii_frame(data: bytes, *, crlf: bool = False, checksum: int | None = None) -> bytes:
    """The frame a reader sends for ``data`` (5 bytes); for tests, benchmarks and simulators."""
    if len(data) != 5:
        raise ValueError("an EM4100 frame carries 5 data bytes")
    check = xor_checksum(data) if checksum is None else checksum
    body = (data.hex() + f"{check:02x}").upper().encode()
    return bytes([STX]) + body + (b"\r\n" if crlf else b"") + bytes([ETX])


class Em4100AsciiParser:
    """The STX/ETX state machine shared by the RDM6300 and the ID-12LA family.

    ``require_crlf`` False (RDM6300): CR and LF inside a frame are ignored. True (ID-12LA):
    exactly ``CR LF`` must follow the 12 hex chars.
    """

    def __init__(self, *, require_crlf: bool = False) -> None:
        self.require_crlf = require_crlf
        self.stats = ParserStats()
        self._in_frame = False
        self._body = bytearray()
        self._trailer = bytearray()

    def reset(self) -> None:
        """Forget a partial frame (the port was reopened)."""
        self._in_frame = False
        self._body.clear()
        self._trailer.clear()

    def feed(self, data: bytes) -> list[Tag]:
        tags: list[Tag] = []
        i, n = 0, len(data)
        stats = self.stats
        while i < n:
            if not self._in_frame:
                start = data.find(STX, i)
                if start < 0:
                    stats.noise_bytes += n - i
                    return tags
                stats.noise_bytes += start - i
                i = start + 1
                self._in_frame = True
                self._body.clear()
                self._trailer.clear()
                continue
            b = data[i]
            i += 1
            if b == ETX:
                tag = self._finish()
                if tag is not None:
                    tags.append(tag)
            elif b == STX:
                # A new frame began before this one ended: the old one was cut short.
                stats.bad_frame += 1
                self._body.clear()
                self._trailer.clear()
            elif b in _HEX_DIGITS and not self._trailer:
                self._body.append(b)
                if len(self._body) > 12:
                    stats.bad_frame += 1
                    self._in_frame = False
            elif b in _CRLF:
                self._trailer.append(b)
                if len(self._trailer) > 2:
                    stats.bad_frame += 1
                    self._in_frame = False
            else:
                stats.noise_bytes += 1
                stats.bad_frame += 1
                self._in_frame = False
        return tags

    def _finish(self) -> Tag | None:
        self._in_frame = False
        if len(self._body) != 12:
            self.stats.bad_frame += 1
            return None
        if self.require_crlf and bytes(self._trailer) != b"\r\n":
            self.stats.bad_frame += 1
            return None
        tag = decode_ascii_frame(bytes(self._body))
        if tag is None:
            self.stats.bad_checksum += 1
            return None
        self.stats.frames += 1
        return tag


class Rdm6300Parser(Em4100AsciiParser):
    """RDM6300 / RDM630 and clones: 14-byte frames, repeated while the card is held."""

    def __init__(self) -> None:
        super().__init__(require_crlf=False)
