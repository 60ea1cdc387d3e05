"""Where frames meet the plate reader: read vehicle boxes (or the ROI), vote per track.

``PlateTap`` is used in two places: inside the vision worker process, where the frames are
(decided tracks leave as small messages), and in the agent's ``PlateComponent`` for
in-process use. It owns no events and no watchlist (only a test for a watched plate,
``set_watch``, for ``early_hit``); ``on_decided(track, voted)`` is told once per track.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from agent.plates.voting import PlateRead, TrackVoter, VotedPlate

if TYPE_CHECKING:
    import numpy.typing as npt

    from agent.plates.config import PlatesConfig
    from agent.plates.localise import Box
    from agent.plates.reader import PlateReader

Decided = Callable[[str, VotedPlate], None]

EARLY_VOTES = 2
"""Frames that must read a watched plate exactly before its track is decided early
(``early_hit``), whatever ``min_reads`` says: the rest of a track decided early is not
voted on, so one frame's misread of another car's plate, a confusable swap away from a
watched one, must not decide it."""


class PlateTap:
    """Per-track voting over the readings of many frames; thread-safe (cameras share it)."""

    def __init__(
        self,
        reader: PlateReader,
        on_decided: Decided,
        timeout_s: float,
        min_reads: int,
        min_confidence: float = 0.0,
        finder_every: int = 1,
        early_hit: bool = False,
    ) -> None:
        self.reader = reader
        self.early_hit = early_hit
        self._decided_early: list[tuple[str, VotedPlate]] = []
        """Tracks decided by ``_early``, told on the next ``tick``: the caller of
        ``read_frame`` first adds the plate's picture to its readings."""
        self.watch: Callable[[str], bool] | None = None
        """Whether a plate is on the watchlist (``set_watch``). With ``early_hit``, a
        reading it takes decides its track at once, so that the ``plate.hit`` is raised
        while the car is still in view, not when its track ends."""
        self.finder_every = max(finder_every, 1)
        """The trained finder (beside the classical search) is run on every Nth frame of a
        camera: a passing car stays in view for many frames, and the finder costs about
        as much as the classical search on a frame where no plate reads surely."""
        self._camera_frames: dict[str, int] = {}
        self._on_decided = on_decided
        self.min_confidence = min_confidence
        self._unsure = 0
        self._voter = TrackVoter(timeout_s, min_reads)
        # One lock for the reader and the voter: a TFLite interpreter is not re-entrant.
        self._lock = threading.Lock()
        self.frames = 0
        self.reads = 0

    @classmethod
    def from_config(cls, reader: PlateReader, cfg: PlatesConfig, on_decided: Decided) -> PlateTap:
        """A tap with ``[plates]``' track timeout, minimum reads, minimum confidence,
        ``finder_every`` and ``early_hit``."""
        return cls(
            reader,
            on_decided,
            cfg.track_timeout_s,
            cfg.min_reads,
            cfg.min_confidence,
            cfg.finder_every,
            cfg.early_hit,
        )

    def set_watch(self, watch: Callable[[str], bool] | None) -> None:
        """The watchlist's test for a plate's text (None: no watchlist)."""
        with self._lock:
            self.watch = watch

    def read_frame(
        self,
        frame: npt.NDArray[Any],
        vehicles: Sequence[tuple[str, Box]] | None = None,
        camera: str = "",
        media: str | None = None,
    ) -> list[PlateRead]:
        """Read plates in one frame (BGR) and add them to their tracks' votes.

        ``vehicles``: ``(track_id, (x, y, w, h))`` per tracked vehicle in this frame. Without
        them the ROI (or the whole frame) is searched, and readings are grouped into tracks
        by their text (one fixed checkpoint camera, one car at a time).
        """
        now = time.monotonic()
        jobs: list[tuple[str, Box | None]] = (
            list(vehicles) if vehicles else [(f"{camera or 'cam'}:roi", None)]
        )
        out: list[PlateRead] = []
        with self._lock:
            self.frames += 1
            seen = self._camera_frames.get(camera, 0)
            self._camera_frames[camera] = seen + 1
            finder = seen % self.finder_every == 0
            for track, box in jobs:
                region = [box] if box is not None else None
                reads = self.reader.read_image(frame, region, finder)
                for r in reads:
                    tid = track if vehicles else self._voter.assign(track, r.text)
                    r.ts = time.time()
                    r.extra = {"camera": camera, "track": tid, "media": media}
                    self._voter.add(tid, r, now)
                    voted = self._early(tid, r)
                    if voted is not None:
                        self._decided_early.append((tid, voted))
                if not reads and vehicles:
                    # A vehicle still in view keeps its vote open even in frames where its
                    # plate is not legible; the ROI's tracks end when readings stop.
                    self._voter.seen(track, now)
                self.reads += len(reads)
                out.extend(reads)
        return out

    def _early(self, track: str, read: PlateRead) -> VotedPlate | None:
        """With ``early_hit``: the track decided now, if this reading is on the watchlist
        and so is the vote of the track's readings so far (``TrackVoter.decide``), read
        exactly by ``EARLY_VOTES`` frames."""
        watch = self.watch
        if (
            not self.early_hit
            or watch is None
            or read.confidence < self.min_confidence
            or self._voter.decided(track)
            or not watch(read.text)
        ):
            return None
        return self._voter.decide(
            track,
            lambda v: v.votes >= EARLY_VOTES
            and v.confidence >= self.min_confidence
            and watch(v.text),
        )

    def end_track(self, track_id: str) -> None:
        """The tracker lost this vehicle: decide its plate now instead of at the timeout
        (a track decided early, ``early_hit``, is told now if no ``tick`` has told it)."""
        with self._lock:
            finished, self._decided_early = self._decided_early, []
            voted = self._voter.finish(track_id)
        if voted is not None:
            finished.append((track_id, voted))
        for track, decided in finished:
            self._decide(track, decided)

    def tick(self, now: float | None = None) -> None:
        """Tell the tracks decided early (``early_hit``), then decide those that have been
        silent for the timeout."""
        with self._lock:
            finished, self._decided_early = self._decided_early, []
            finished += self._voter.due(time.monotonic() if now is None else now)
        for track, voted in finished:
            self._decide(track, voted)

    def flush(self) -> None:
        """Decide every open track (at shutdown)."""
        with self._lock:
            finished, self._decided_early = self._decided_early, []
            finished += self._voter.flush()
        for track, voted in finished:
            self._decide(track, voted)

    def _decide(self, track: str, voted: VotedPlate) -> None:
        # Frames that disagree character by character (a far car's unreadable plate, a
        # sign) vote to a low confidence: no reading is better than a made-up one.
        if voted.confidence < self.min_confidence:
            self._unsure += 1
            return
        self._on_decided(track, voted)

    @property
    def rejected(self) -> int:
        """Tracks that gave no reading: too unsure, or too few frames that agree."""
        return self._unsure + self._voter.dropped

    @property
    def open_tracks(self) -> int:
        return self._voter.open_tracks
