"""IoU tracker: joins per-frame detections into tracks, so one car is one event.

A track is reported once it has been seen ``min_hits`` times, and ends when it has not been
seen for ``timeout_s``. Objects standing still are kept alive by periodic re-detection of
their region (the pipeline asks ``boxes_to_recheck``), not by motion.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from agent.vision.config import TrackerConfig
from agent.vision.geometry import Box, inside_share, iou

# Labels a small detector confuses for one another on the same object (a van is a car in one
# frame and a truck in the next); they are tracked as one kind, and the track is named by the
# label with the most score over its life.
_KIND = {"car": "vehicle", "truck": "vehicle", "bus": "vehicle"}


# Share of one box inside another above which both are taken to be the same object.
_SAME_OBJECT = 0.6


def kind_of(label: str) -> str:
    return _KIND.get(label, label)


@dataclass(frozen=True, slots=True)
class Detection:
    label: str
    score: float
    box: Box


@dataclass(slots=True)
class Track:
    id: int
    label: str
    box: Box
    score: float
    top_score: float
    first_seen: float
    last_seen: float
    hits: int = 1
    reported: bool = False
    votes: dict[str, float] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return kind_of(self.label)

    def vote(self, label: str, score: float) -> None:
        self.votes[label] = self.votes.get(label, 0.0) + score
        self.label = max(self.votes, key=lambda k: self.votes[k])

    @property
    def duration_s(self) -> float:
        return self.last_seen - self.first_seen


class IouTracker:
    """Greedy IoU matching of detections to live tracks of the same kind."""

    def __init__(self, cfg: TrackerConfig) -> None:
        self._cfg = cfg
        self._ids = itertools.count(1)
        self.tracks: dict[int, Track] = {}
        self._last_recheck = float("-inf")

    def update(self, detections: list[Detection], now: float) -> tuple[list[Track], list[Track]]:
        """Match ``detections`` seen at ``now``; returns (newly confirmed, ended) tracks."""
        pairs = sorted(
            (
                (iou(t.box, d.box), tid, di)
                for tid, t in self.tracks.items()
                for di, d in enumerate(detections)
                if t.kind == kind_of(d.label)
            ),
            reverse=True,
        )
        used_tracks: set[int] = set()
        used_dets: set[int] = set()
        matches: list[tuple[int, int]] = []
        for overlap, tid, di in pairs:
            if overlap < self._cfg.iou:
                break
            if tid in used_tracks or di in used_dets:
                continue
            used_tracks.add(tid)
            used_dets.add(di)
            matches.append((tid, di))
        # Small, fast objects at a low analysis rate may not overlap from one frame to the
        # next: fall back to the nearest centre within one box size.
        near = sorted(
            (
                (_centre_distance(t.box, d.box), tid, di)
                for tid, t in self.tracks.items()
                if tid not in used_tracks
                for di, d in enumerate(detections)
                if di not in used_dets and t.kind == kind_of(d.label)
            ),
        )
        for dist, tid, di in near:
            if tid in used_tracks or di in used_dets:
                continue
            if dist > _box_size(self.tracks[tid].box):
                continue
            used_tracks.add(tid)
            used_dets.add(di)
            matches.append((tid, di))
        for tid, di in matches:
            t, d = self.tracks[tid], detections[di]
            t.box, t.score, t.last_seen = d.box, d.score, now
            t.top_score = max(t.top_score, d.score)
            t.hits += 1
            t.vote(d.label, d.score)
        for di, d in enumerate(detections):
            if di in used_dets or self._part_of_a_track(d):
                continue
            tid = next(self._ids)
            track = Track(tid, d.label, d.box, d.score, d.score, now, now)
            track.vote(d.label, d.score)
            self.tracks[tid] = track
        confirmed: list[Track] = []
        for t in self.tracks.values():
            if not t.reported and t.hits >= self._cfg.min_hits:
                t.reported = True
                confirmed.append(t)
        return confirmed, self.expire(now)

    def _part_of_a_track(self, d: Detection) -> bool:
        """A second box on an object already tracked (a region's edge cut it, or the detector
        boxed half of it): mostly inside a live track's box, or holding most of it."""
        k = kind_of(d.label)
        return any(
            t.kind == k
            and max(inside_share(d.box, t.box), inside_share(t.box, d.box)) >= _SAME_OBJECT
            for t in self.tracks.values()
        )

    def expire(self, now: float) -> list[Track]:
        """Drop tracks unseen for ``timeout_s``; returns those that had been reported."""
        ended = [t for t in self.tracks.values() if now - t.last_seen > self._cfg.timeout_s]
        for t in ended:
            del self.tracks[t.id]
        return [t for t in ended if t.reported]

    def boxes_to_recheck(self, now: float) -> list[Box]:
        """Boxes of live tracks when a re-detection is due (every ``recheck_s``), else none."""
        if not self.tracks or now - self._last_recheck < self._cfg.recheck_s:
            return []
        self._last_recheck = now
        return [t.box for t in self.tracks.values()]


def _centre_distance(a: Box, b: Box) -> float:
    ax, ay = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2
    bx, by = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    return float(((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5)


def _box_size(box: Box) -> float:
    return float(max(box[2] - box[0], box[3] - box[1]))
