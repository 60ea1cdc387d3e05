"""Ademco Contact ID (SIA DC-05) codes for the events the GPIO side raises.

Pure values: an alarm receiving centre reads ``data.contact_id`` unchanged. The account
number is the centre's business (it maps the device id), so it is not part of the payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PANIC = 120
DURESS = 121
TAMPER = 137  # panel/enclosure tamper
SENSOR_TAMPER = 144  # tamper on an external loop or sensor
AC_LOSS = 301
TROUBLE = 380  # global trouble: a stuck panic button
CANCEL = 406

NEW = 1  # qualifier: new event / opening ("E")
RESTORE = 3  # qualifier: restore / closing ("R")


@dataclass(frozen=True, slots=True)
class ContactId:
    """One Contact ID event: qualifier, event code, group (partition) and zone or user."""

    code: int
    qualifier: int = NEW
    group: int = 1
    zone: int = 0

    def __post_init__(self) -> None:
        if self.qualifier not in (NEW, RESTORE, 6):
            raise ValueError(f"Contact ID qualifier {self.qualifier} must be 1, 3 or 6")
        for name, value, top in (("code", self.code, 999), ("group", self.group, 99)):
            if not 0 <= value <= top:
                raise ValueError(f"Contact ID {name} {value} out of range 0..{top}")
        if not 0 <= self.zone <= 999:
            raise ValueError(f"Contact ID zone {self.zone} out of range 0..999")

    @property
    def kind(self) -> str:
        """``E`` for a new event, ``R`` for a restore, as receivers print them."""
        return "R" if self.qualifier == RESTORE else "E"

    @property
    def adm_cid(self) -> str:
        """The ``Q EEE GG ZZZ`` block a DC-09 ``ADM-CID`` frame carries, e.g. ``1120 01 001``."""
        return f"{self.qualifier}{self.code:03d} {self.group:02d} {self.zone:03d}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "qualifier": self.qualifier,
            "event": self.kind,
            "group": self.group,
            "zone": self.zone,
            "adm_cid": self.adm_cid,
        }


def checksum_digit(digits: str) -> str:
    """The 16th digit of a Contact ID message: (sum of all 16) mod 15 == 0, with 0 counted as 10.

    ``digits`` are the first 15 hex digits (account, ``18``, qualifier, code, group, zone).
    A computed check value of 0 is sent as ``F``.
    """
    if len(digits) != 15:
        raise ValueError(f"Contact ID body must be 15 digits, got {len(digits)}")
    total = 0
    for ch in digits:
        value = int(ch, 16)
        total += 10 if value == 0 else value
    check = (15 - total % 15) % 15
    if check == 0:
        return "F"  # F (15) is congruent to 0
    if check == 10:
        return "0"  # the digit 0 carries the value 10
    return format(check, "X")


def message(account: str, cid: ContactId) -> str:
    """The full 16-digit DC-05 message for ``account`` (4 hex digits), checksum included."""
    if len(account) != 4:
        raise ValueError(f"Contact ID account {account!r} must be 4 digits")
    body = f"{account}18{cid.qualifier}{cid.code:03d}{cid.group:02d}{cid.zone:03d}"
    return body + checksum_digit(body)
