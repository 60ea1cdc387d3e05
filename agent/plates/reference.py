"""The plate reader's self-test: reference plates the installed models must read right.

``outpost doctor`` reads them with the box's own ``[plates]`` settings. A model file can
pass its sha256 check and still read wrong where the TFLite runtime does not run it as it
ran when it was trained (a runtime built without an op's int8 kernel, a broken wheel); this
is where that shows, before a camera's plates are missed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2

from agent.errors import DriverFault
from agent.plates.reader import PlateReader

REFERENCE_DIR = Path(__file__).with_name("reference")
"""The PNG files, drawn by ``training/reference_plates.py`` (Outpost's own renderer)."""


@dataclass(frozen=True)
class ReferencePlate:
    country: str
    """The ``countries`` value whose models must read it."""
    file: str
    text: str


REFERENCE_PLATES = (
    ReferencePlate("us", "us-7ABC123.png", "7ABC123"),
    ReferencePlate("cn", "cn-blue.png", "皖A12345"),
)


@dataclass(frozen=True)
class ReferenceRead:
    plate: ReferencePlate
    text: str
    """What the reader read ("" for nothing)."""
    confidence: float
    ms: float

    @property
    def right(self) -> bool:
        return self.text == self.plate.text


def read_references(reader: PlateReader, countries: Sequence[str]) -> list[ReferenceRead]:
    """Each reference plate of the configured ``countries`` read as a crop (with its
    variants, as ``outpost plates read --crop`` reads one); ``DriverFault`` if a file is
    missing."""
    out: list[ReferenceRead] = []
    for plate in REFERENCE_PLATES:
        if plate.country not in countries:
            continue
        path = REFERENCE_DIR / plate.file
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DriverFault(f"reference plate {path} missing or unreadable")
        t0 = time.perf_counter()
        read = reader.read_crop(image, variants=True)
        ms = (time.perf_counter() - t0) * 1000
        text, confidence = (read.text, read.confidence) if read is not None else ("", 0.0)
        out.append(ReferenceRead(plate, text, confidence, ms))
    return out
