"""Voting across the frames of one vehicle track, so one pass yields one ``plate.read``.

Pure bookkeeping: readings go in with a track id and a time, finished tracks come out.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.plates.formats import match_distance


@dataclass
class PlateRead:
    """One plate reading from one frame (or one still image)."""

    text: str
    confidence: float
    char_confidences: list[float] = field(default_factory=list)
    box: tuple[int, int, int, int] = (0, 0, 0, 0)
    colour: str = ""
    plate_type: str = ""
    format: str | None = None
    ts: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    span: tuple[float, float] | None = None
    """Where the text lies across the crop (fractions of its width); not published."""


@dataclass
class VotedPlate:
    """The outcome of a track: the agreed text and how strongly the frames agreed."""

    text: str
    confidence: float
    char_confidences: list[float]
    votes: int
    frames: int
    best: PlateRead
    agree: int = 0
    """Readings within one character (``match_distance`` <= 1) of the voted text, or a part
    of it four characters long or more."""


def vote(reads: list[PlateRead]) -> VotedPlate | None:
    """Agree on one plate from a track's readings.

    For each length read, each position takes the character with the highest summed
    per-character confidence among the readings of that length, so frames that each got a
    different character wrong still add up to the right plate. Of those plates, the one
    that the most readings agree with wins (summed confidence; ``_agrees``), then the one
    read at its own length most: frames that read only one of a plate's character groups
    (`34A231`, twice, beside one `34A23126`) back the whole plate, while one frame with
    an extra character (`U6TIX874` beside five `6TIX874`) agrees with the others as much
    as they agree with it, and loses on its own length.
    """
    if not reads:
        return None
    by_len: dict[int, list[PlateRead]] = defaultdict(list)
    for r in reads:
        by_len[len(r.text)].append(r)
    options = []
    for same in by_len.values():
        text, confs = _per_position(same)
        agreeing = [r for r in reads if _agrees(r.text, text)]
        backing = sum(r.confidence for r in agreeing)
        options.append((backing, sum(r.confidence for r in same), text, confs, same, agreeing))
    _, _, text, confs, same, agreeing = max(options, key=lambda o: (o[0], o[1]))
    counts = Counter(r.text for r in reads)
    matching = [r for r in same if r.text == text]
    best = max(matching or same, key=lambda r: r.confidence)
    conf = float(sum(confs) / len(confs)) if confs else 0.0
    return VotedPlate(text, conf, confs, counts.get(text, 0), len(reads), best, len(agreeing))


def _per_position(same: list[PlateRead]) -> tuple[str, list[float]]:
    """Readings of one length voted position by position: the text and each position's
    mean confidence."""
    chars: list[str] = []
    confs: list[float] = []
    for i in range(len(same[0].text)):
        tally: dict[str, float] = defaultdict(float)
        for r in same:
            c = r.char_confidences[i] if i < len(r.char_confidences) else r.confidence
            tally[r.text[i]] += c
        ch = max(tally, key=lambda k: tally[k])
        chars.append(ch)
        confs.append(tally[ch] / len(same))
    return "".join(chars), confs


def _agrees(read: str, voted: str) -> bool:
    """A reading agrees with the voted plate: one character off at most, or a part of it
    (a frame that read only one of the plate's character groups)."""
    return match_distance(read, voted) <= 1.0 or (len(read) >= 4 and read in voted)


class TrackVoter:
    """Collects readings per track; a track is decided when it has been silent long enough."""

    def __init__(self, timeout_s: float = 2.0, min_reads: int = 1) -> None:
        self.timeout_s = timeout_s
        self.min_reads = min_reads
        self._reads: dict[str, list[PlateRead]] = {}
        self._last: dict[str, float] = {}
        self._serial = 0
        self._decided: set[str] = set()
        """Tracks decided before they ended (``decide``): their later readings are kept,
        so that a fixed camera's readings of the same car still join them, but they are
        not decided again."""
        self.dropped = 0
        """Tracks finished with fewer than ``min_reads`` readings that agree."""

    def add(self, track_id: str, read: PlateRead, now: float) -> None:
        self._reads.setdefault(track_id, []).append(read)
        self._last[track_id] = now

    def assign(self, prefix: str, text: str, max_distance: float = 2.0) -> str:
        """Track id for a reading without a tracker (fixed ROI camera).

        Readings go to the open ``prefix#n`` track whose last text is within
        ``max_distance`` (confusion-aware edit distance), else to a new one; so two cars,
        or a car and a sign in the ROI, are voted apart.
        """
        best, best_d = None, max_distance
        for tid, reads in self._reads.items():
            if tid.startswith(prefix + "#") and reads:
                d = match_distance(reads[-1].text, text)
                if d <= best_d:
                    best, best_d = tid, d
        if best is not None:
            return best
        self._serial += 1
        return f"{prefix}#{self._serial}"

    def seen(self, track_id: str, now: float) -> None:
        """The track is still in view (even if no plate was read in this frame)."""
        if track_id in self._reads:
            self._last[track_id] = now

    def decide(
        self, track_id: str, accept: Callable[[VotedPlate], bool]
    ) -> VotedPlate | None:
        """Decide an open track now, from its readings so far, if their vote has at least
        ``min_reads`` readings that agree and ``accept`` takes it (``early_hit``: the
        voted plate is on the watchlist). None, and the track stays open, otherwise."""
        if track_id in self._decided:
            return None
        voted = vote(self._reads.get(track_id, []))
        if voted is None or voted.agree < self.min_reads or not accept(voted):
            return None
        self._decided.add(track_id)
        return voted

    def decided(self, track_id: str) -> bool:
        return track_id in self._decided

    def finish(self, track_id: str) -> VotedPlate | None:
        reads = self._reads.pop(track_id, [])
        self._last.pop(track_id, None)
        if track_id in self._decided:  # decided already (``decide``): not twice
            self._decided.discard(track_id)
            return None
        voted = vote(reads)
        # frames that agree, not frames: two readings of a tiny plate far off in a side lane
        # (`17171`, `5L1717T1`) are not a plate read twice
        if voted is None or voted.agree < self.min_reads:
            self.dropped += bool(reads)
            return None
        return voted

    def due(self, now: float) -> list[tuple[str, VotedPlate]]:
        """Tracks silent for ``timeout_s``, decided and forgotten."""
        out: list[tuple[str, VotedPlate]] = []
        for tid in [t for t, last in self._last.items() if now - last >= self.timeout_s]:
            result = self.finish(tid)
            if result is not None:
                out.append((tid, result))
        return out

    def flush(self) -> list[tuple[str, VotedPlate]]:
        out: list[tuple[str, VotedPlate]] = []
        for tid in list(self._reads):
            result = self.finish(tid)
            if result is not None:
                out.append((tid, result))
        return out

    @property
    def open_tracks(self) -> int:
        return len(self._reads)


def to_message(track: str, voted: VotedPlate) -> dict[str, Any]:
    """A decided track as a small picklable dict (for the vision worker's result queue)."""
    b = voted.best
    return {
        "kind": "plate",
        "track": track,
        "text": voted.text,
        "confidence": voted.confidence,
        "char_confidences": list(voted.char_confidences),
        "votes": voted.votes,
        "frames": voted.frames,
        "agree": voted.agree,
        "best": {
            "text": b.text,
            "confidence": b.confidence,
            "box": list(b.box),
            "colour": b.colour,
            "plate_type": b.plate_type,
            "format": b.format,
            "ts": b.ts,
            "extra": dict(b.extra),
        },
    }


def from_message(msg: dict[str, Any]) -> tuple[str, VotedPlate]:
    """Inverse of ``to_message``."""
    b = msg["best"]
    best = PlateRead(
        text=b["text"],
        confidence=b["confidence"],
        box=tuple(b["box"]),
        colour=b.get("colour", ""),
        plate_type=b.get("plate_type", ""),
        format=b.get("format"),
        ts=b.get("ts", 0.0),
        extra=dict(b.get("extra", {})),
    )
    voted = VotedPlate(
        msg["text"],
        msg["confidence"],
        list(msg["char_confidences"]),
        msg["votes"],
        msg["frames"],
        best,
        msg["agree"],
    )
    return str(msg["track"]), voted
