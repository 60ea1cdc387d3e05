"""ID Innovations ID-2LA / ID-12LA / ID-20LA in ASCII mode (9600 8N1): the frame parser.

Frame: STX, 10 hex data chars, 2 hex XOR checksum chars, CR, LF, ETX (16 bytes). The
reader sends one frame per presentation. Same state machine as the RDM6300, but strict
about the CR LF trailer, so a mis-strapped reader shows up as bad frames, not as tags.
"""

from __future__ import annotations

from drivers.rfid.rdm6300 import BAUD, Em4100AsciiParser

__all__ = ["BAUD", "Id12Parser"]


class Id12Parser(Em4100AsciiParser):
    """ID-12LA / ID-20LA ASCII output (the datasheet's ``STX DATA CHECK CR LF ETX``)."""

    def __init__(self) -> None:
        super().__init__(require_crlf=True)
