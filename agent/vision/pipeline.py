"""One camera's pipeline inside the vision worker: capture → window → tamper → motion →
detector → tracker, reported as small messages.

Two named threads per camera: the capture thread owns the ``CameraSource`` (reconnects with
backoff, keeps the latest frame), the analysis thread takes the latest frame at the capped
analysis rate. Results leave through ``out(message)``; in the worker that is a queue to the
agent process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.errors import DriverFault
from agent.vision.capture import CameraSource
from agent.vision.config import CameraConfig, VisionConfig
from agent.vision.detector import Detector
from agent.vision.geometry import Box, detection_regions
from agent.vision.motion import MotionDetector
from agent.vision.recording import RecordingWindow, encode_jpeg
from agent.vision.synthetic import apply_effect
from agent.vision.tamper import TamperDetector
from agent.vision.tracker import Detection, IouTracker, Track

if TYPE_CHECKING:
    from agent.plates.tap import PlateTap

log = logging.getLogger(__name__)

Message = dict[str, Any]
Out = Callable[[Message], None]

# Detector labels whose boxes are searched for a licence plate.
PLATE_LABELS = frozenset({"car", "truck", "bus", "motorcycle"})


def vehicle_boxes(detections: Iterable[Detection]) -> list[tuple[int, int, int, int]]:
    """The boxes of ``detections`` that may carry a plate (``PLATE_LABELS``), as (x, y, w, h):
    a frame's plate regions where there is no tracker (``outpost plates read --camera``, the
    frame bench)."""
    return [
        (x1, y1, x2 - x1, y2 - y1)
        for d in detections
        if d.label in PLATE_LABELS
        for x1, y1, x2, y2 in [d.box]
    ]


class RateMeter:
    """Events per second over the last few seconds."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._window = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)
        while self._times and self._times[0] < now - self._window:
            self._times.popleft()

    def rate(self, now: float) -> float:
        while self._times and self._times[0] < now - self._window:
            self._times.popleft()
        return len(self._times) / self._window


class CameraPipeline:
    """Everything one camera does in the worker process."""

    def __init__(
        self,
        cam: CameraConfig,
        vision: VisionConfig,
        detector: Detector | None,
        out: Out,
        file_path: Path | None = None,
        plates: PlateTap | None = None,
    ) -> None:
        self.cam = cam
        self._plates = plates
        self._vision = vision
        self._detector = detector if cam.detect else None
        self._out = out
        self.source = CameraSource(cam, file_path)
        self.window = RecordingWindow(vision.buffer)
        self.motion = MotionDetector(vision.motion)
        self.tamper = TamperDetector(vision.tamper) if cam.tamper else None
        self.tracker = IouTracker(vision.tracker)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: tuple[float, np.ndarray] | None = None  # (wall ts, frame)
        self._latest_seq = 0
        self._decode = RateMeter()
        self._analysis = RateMeter()
        self._last_frame_mono: float | None = None
        self._state_lock = threading.Lock()
        self.online: bool | None = None
        self.reconnects = 0
        self.detector_runs = 0
        self.frames_analysed = 0
        self.last_error: str | None = None
        self.effect: str | None = None  # simulated tamper applied to every frame
        self._threads: list[threading.Thread] = []

    # lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        for name, target in (("capture", self._capture_loop), ("analysis", self._analysis_loop)):
            t = threading.Thread(target=target, name=f"cam-{self.cam.name}-{name}", daemon=True)
            self._threads.append(t)
            t.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=10)
        self.source.close()

    # capture ----------------------------------------------------------------------
    def _set_online(self, online: bool, reason: str | None = None) -> None:
        with self._state_lock:
            if self.online == online:
                return
            self.online = online
        msg: Message = {"kind": "camera", "camera": self.cam.name, "online": online}
        if reason:
            msg["reason"] = reason
        self._out(msg)

    def _capture_loop(self) -> None:
        rc = self._vision.reconnect
        backoff = rc.backoff_min_s
        interval = 1.0 / max(self.cam.analysis_fps, self._vision.buffer.fps)
        next_due = 0.0
        while not self._stop.is_set():
            if not self.source.is_open:
                try:
                    self.source.open()
                except DriverFault as exc:
                    self.last_error = str(exc)
                    self._set_online(False, str(exc))
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, rc.backoff_max_s)
                    continue
            if not self.source.grab():
                if self.source.ended:  # a file played once: nothing to reconnect to
                    self.source.close()
                    self._set_online(False, f"video file {self.source.describe()} ended")
                    self._stop.wait()
                    continue
                self.source.close()
                self.reconnects += 1
                self.last_error = f"stream from {self.source.describe()} dropped"
                self._set_online(False, self.last_error)
                self.motion.reset()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, rc.backoff_max_s)
                continue
            mono = time.monotonic()
            self._decode.tick(mono)
            self._last_frame_mono = mono
            if mono < next_due:
                continue
            # A schedule, not "interval since the last one": 5 fps from an 18 fps camera
            # is 5 fps on average, not every fourth frame.
            next_due = max(next_due + interval, mono)
            frame = self.source.retrieve()
            if frame is None:
                continue
            if self.effect is not None:
                frame = apply_effect(frame, self.effect)
            if self.online is not True:
                backoff = rc.backoff_min_s
                self._set_online(True)
            with self._cond:
                self._latest = (time.time(), frame)
                self._latest_seq += 1
                self._cond.notify_all()

    def latest(self) -> tuple[float, np.ndarray] | None:
        with self._cond:
            return self._latest

    # analysis ---------------------------------------------------------------------
    def _analysis_loop(self) -> None:
        seen = 0
        interval = 1.0 / self.cam.analysis_fps
        next_due = time.monotonic()
        while not self._stop.is_set():
            latest = None
            with self._cond:
                if self._latest_seq == seen:
                    self._cond.wait(timeout=1.0)
                if self._latest_seq != seen and self._latest is not None:
                    seen = self._latest_seq
                    latest = self._latest
            if self._plates is not None:
                self._plates.tick()
            if latest is None:  # nothing new: still time to end tracks and notice a stall
                self._expire_tracks(time.time())
                self._check_stall()
                continue
            ts, frame = latest
            now = time.monotonic()
            if now < next_due:
                continue
            next_due = max(next_due + interval, now)
            self._analysis.tick(now)
            try:
                self.analyse(frame, ts)
            except Exception as exc:  # one bad frame must not stop the camera
                log.exception("camera %s: analysis failed", self.cam.name)
                self.last_error = f"analysis: {type(exc).__name__}: {exc}"

    def _check_stall(self) -> None:
        """A source that stays open but delivers nothing is as good as offline."""
        last = self._last_frame_mono
        stall_s = self._vision.reconnect.stall_s
        if self.online and last is not None and time.monotonic() - last > stall_s:
            self._set_online(False, f"no frame for {stall_s:g} s from {self.source.describe()}")

    def analyse(self, frame: np.ndarray, ts: float) -> None:
        """Run one frame through window, tamper, motion, detector and tracker."""
        self.frames_analysed += 1
        self.window.offer(frame, ts)
        if self.tamper is not None:
            change = self.tamper.check(frame, ts)
            if change is not None:
                self.motion.reset()
                self._out(
                    {
                        "kind": "tamper",
                        "camera": self.cam.name,
                        "state": change.state,
                        "reason": change.reason,
                        "metrics": change.metrics,
                        "ts": ts,
                        "jpeg": self._snapshot_jpeg(frame),
                    }
                )
            if self.tamper.state is not None:
                self._expire_tracks(ts)
                return
        boxes = self.motion.detect(frame)
        if self._plates is not None and self._detector is None and boxes:
            self._read_plates(frame, None)  # fixed checkpoint camera: the ROI, when it moves
        boxes += self.tracker.boxes_to_recheck(ts) if boxes or self.tracker.tracks else []
        if self._detector is None or not boxes:
            self._expire_tracks(ts)
            return
        h, w = frame.shape[:2]
        side = min(self._detector.input_size)
        regions = detection_regions(
            w, h, boxes, min_side=side, max_regions=self._vision.detector.max_regions
        )
        detections = self._detector.detect(frame, regions)
        self.detector_runs += 1
        new, ended = self.tracker.update(detections, ts)
        if new:
            # One picture for every object that appeared in this frame.
            self._out(
                {
                    "kind": "objects_new",
                    "camera": self.cam.name,
                    "ts": ts,
                    "frame_size": [frame.shape[1], frame.shape[0]],
                    "objects": [self._track_message("object_new", t) for t in new],
                    "jpeg": self._snapshot_jpeg(frame),
                }
            )
        if self._plates is not None:
            vehicles = [(self._track_id(t), (t.box[0], t.box[1], t.box[2] - t.box[0],
                                             t.box[3] - t.box[1]))
                        for t in self.tracker.tracks.values()
                        if t.last_seen == ts and t.label in PLATE_LABELS]
            if vehicles:
                self._read_plates(frame, vehicles)
        for track in ended:
            self._end_track(track)

    def _expire_tracks(self, ts: float) -> None:
        for track in self.tracker.expire(ts):
            self._end_track(track)

    def _end_track(self, track: Track) -> None:
        self._out(self._track_message("object_end", track))
        if self._plates is not None:
            self._plates.end_track(self._track_id(track))

    def _read_plates(self, frame: np.ndarray, vehicles: list[tuple[str, Box]] | None) -> None:
        assert self._plates is not None
        for read in self._plates.read_frame(frame, vehicles, camera=self.cam.name):
            x, y, w, h = read.box
            pad_x, pad_y = w // 4, h // 2
            crop = frame[max(0, y - pad_y) : y + h + pad_y, max(0, x - pad_x) : x + w + pad_x]
            read.extra["crop"] = encode_jpeg(crop, crop.shape[1], self._vision.media.jpeg_quality)

    def _track_id(self, t: Track) -> str:
        return f"{self.cam.name}-{int(t.first_seen)}-{t.id}"

    def _track_message(self, kind: str, t: Track) -> Message:
        msg: Message = {
            "kind": kind,
            "camera": self.cam.name,
            "track_id": self._track_id(t),
            "label": t.label,
            "score": round(t.score, 3),
            "top_score": round(t.top_score, 3),
            "box": list(t.box),
            "start": t.first_seen,
            "ts": t.last_seen,
        }
        if kind == "object_end":
            msg["duration_s"] = round(t.duration_s, 2)
        return msg

    def _snapshot_jpeg(self, frame: np.ndarray) -> bytes:
        media = self._vision.media
        return encode_jpeg(frame, media.snapshot_width, media.jpeg_quality)

    def snapshot(self) -> tuple[float, bytes]:
        """The newest frame as a JPEG; ``DriverFault`` if the camera has none."""
        latest = self.latest()
        if latest is None or self.online is False:
            raise DriverFault(f"camera {self.cam.name} has no current frame ({self.last_error})")
        ts, frame = latest
        return ts, self._snapshot_jpeg(frame)

    # status -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        mono = time.monotonic()
        stall = None if self._last_frame_mono is None else round(mono - self._last_frame_mono, 2)
        span = self.window.span()
        return {
            "kind": self.cam.kind,
            "source": self.source.describe(),
            "online": bool(self.online),
            "decode_fps": round(self._decode.rate(mono), 2),
            "analysis_fps": round(self._analysis.rate(mono), 2),
            "stall_s": stall,
            "frame_size": list(self.source.frame_size) if self.source.frame_size else None,
            "reconnects": self.reconnects,
            "motion_fraction": round(self.motion.motion_fraction, 4),
            "frames_analysed": self.frames_analysed,
            "detector_runs": self.detector_runs,
            "tracks": len(self.tracker.tracks),
            "tamper": self.tamper.state if self.tamper else None,
            "window_s": round(span[1] - span[0], 1) if span else 0.0,
            "window_bytes": self.window.bytes,
            "last_error": self.last_error,
        }
