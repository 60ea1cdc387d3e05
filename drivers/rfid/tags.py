"""Canonical tag identities per reader technology, and the printed forms people match on.

A read is a ``Tag``: its technology and its canonical id (upper-case hex). ``Tag.key`` is
the strongest form that read supports; ``tag_keys(entry)`` expands a roster entry into every
form derivable from it, so a card listed once matches on any reader that can read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Tech(StrEnum):
    EM4100 = "em4100"  # 125 kHz, 5 data bytes (version + 32-bit id): RDM6300, ID-12/20LA
    MIFARE = "mifare"  # 13.56 MHz ISO14443A UID, 4/7/10 bytes: PN532
    WIEGAND26 = "wiegand26"  # 8-bit facility + 16-bit card
    WIEGAND34 = "wiegand34"  # 32 data bits
    DEC32 = "dec32"  # a keyboard reader that types the 10-digit decimal of 32 bits
    DEC24 = "dec24"  # a keyboard reader that types 8 digits (24 bits)


_HEX = re.compile(r"^[0-9A-F]+$")


def dec32(value: int) -> str:
    """The 10-digit number printed on most 125 kHz fobs (the low 32 bits)."""
    return f"{value & 0xFFFFFFFF:010d}"


def w26(value: int) -> str:
    """The ``FFF,CCCCC`` Wiegand-26 view: 8-bit facility and 16-bit card of the low 24 bits."""
    return f"{(value >> 16) & 0xFF:03d},{value & 0xFFFF:05d}"


def dec24(value: int) -> str:
    return f"{value & 0xFFFFFF:08d}"


@dataclass(frozen=True, slots=True)
class Tag:
    """One card as a reader saw it. ``uid`` is upper-case hex of the bits the reader gave."""

    tech: Tech
    uid: str

    def __post_init__(self) -> None:
        if not _HEX.match(self.uid):
            raise ValueError(f"tag uid {self.uid!r} must be upper-case hex")

    @property
    def value(self) -> int:
        return int(self.uid, 16)

    @property
    def key(self) -> str:
        """The roster key this read is looked up by (its strongest form)."""
        if self.tech is Tech.EM4100:
            return f"em4100:{self.uid}"
        if self.tech is Tech.MIFARE:
            return f"uid:{self.uid}"
        if self.tech in (Tech.WIEGAND26, Tech.DEC24):
            return f"w26:{w26(self.value)}"
        return f"dec32:{dec32(self.value)}"

    def forms(self) -> dict[str, str]:
        """Every printed form this read determines (for events and for people)."""
        v = self.value
        out = {"hex": self.uid}
        if self.tech is Tech.MIFARE:
            if len(self.uid) == 8:
                out["dec32"] = dec32(v)
            return out
        if self.tech in (Tech.EM4100, Tech.WIEGAND34, Tech.DEC32):
            out["dec32"] = dec32(v)
        out["w26"] = w26(v)
        out["dec24"] = dec24(v)
        return out

    def to_dict(self) -> dict[str, object]:
        return {"tech": self.tech.value, "uid": self.uid, "key": self.key, "forms": self.forms()}


def em4100(data: bytes) -> Tag:
    if len(data) != 5:
        raise ValueError("an EM4100 id is 5 bytes")
    return Tag(Tech.EM4100, data.hex().upper())


def tag_keys(entry: str) -> frozenset[str]:
    """Every key a roster entry matches, or ``ValueError`` naming what is wrong.

    Accepted: ``em4100:62E3086CED`` (or plain 10 hex), ``uid:04A1B2C3`` (or plain 8/14/20
    hex), ``dec32:3808980205``, ``w26:008,27885`` (or plain ``008,27885``), ``dec24:00552173``.
    A plain all-digit string is refused: it could be hex or decimal, so say which.
    """
    text = entry.strip()
    kind, sep, body = text.partition(":")
    if not sep:
        kind, body = "", text
    kind = kind.lower()
    body = body.strip().upper()
    if not kind:
        if "," in body:
            kind = "w26"
        elif body.isdigit():
            raise ValueError(f"tag {entry!r} is all digits: write dec32:{body} or em4100:{body}")
        elif len(body) == 10:
            kind = "em4100"
        else:
            kind = "uid"
    if kind == "em4100":
        if len(body) != 10 or not _HEX.match(body):
            raise ValueError(f"tag {entry!r}: an EM4100 id is 10 hex digits")
        v = int(body, 16)
        return frozenset({f"em4100:{body}", f"dec32:{dec32(v)}", f"w26:{w26(v)}"})
    if kind == "uid":
        if len(body) not in (8, 14, 20) or not _HEX.match(body):
            raise ValueError(f"tag {entry!r}: a MIFARE UID is 4, 7 or 10 bytes of hex")
        return frozenset({f"uid:{body}"})
    if kind == "dec32":
        if not body.isdigit() or int(body) > 0xFFFFFFFF:
            raise ValueError(f"tag {entry!r}: dec32 is a decimal number below 2^32")
        v = int(body)
        return frozenset({f"dec32:{dec32(v)}", f"w26:{w26(v)}"})
    if kind == "dec24":
        if not body.isdigit() or int(body) > 0xFFFFFF:
            raise ValueError(f"tag {entry!r}: dec24 is a decimal number below 2^24")
        return frozenset({f"w26:{w26(int(body))}"})
    if kind == "w26":
        fc, comma, card = body.partition(",")
        if not comma or not fc.isdigit() or not card.isdigit():
            raise ValueError(f"tag {entry!r}: w26 is FFF,CCCCC")
        if int(fc) > 0xFF or int(card) > 0xFFFF:
            raise ValueError(f"tag {entry!r}: facility ≤ 255, card ≤ 65535")
        return frozenset({f"w26:{int(fc):03d},{int(card):05d}"})
    raise ValueError(f"tag {entry!r}: unknown form {kind!r} (em4100, uid, dec32, dec24, w26)")


def parse_tag(text: str) -> Tag:
    """A tag written the way a roster writes it, as a read (the simulator's input).

    ``em4100:62E3086CED`` / ``62E3086CED`` → an EM4100 read, ``uid:04A1B2C3`` → MIFARE,
    ``w26:008,27885`` → Wiegand 26, ``dec32:3808980205`` → a 32-bit (Wiegand 34) read."""
    keys = tag_keys(text)  # validates and normalises
    strongest = sorted(keys, key=lambda k: ("em4100", "uid", "dec32", "w26").index(k.split(":")[0]))
    kind, _, body = strongest[0].partition(":")
    if kind == "em4100":
        return Tag(Tech.EM4100, body)
    if kind == "uid":
        return Tag(Tech.MIFARE, body)
    if kind == "dec32":
        return Tag(Tech.WIEGAND34, f"{int(body):08X}")
    fc, _, card = body.partition(",")
    return Tag(Tech.WIEGAND26, f"{(int(fc) << 16) | int(card):06X}")
