"""The in-memory recording window of one camera: the last N seconds as small JPEG frames.

Pre-alarm pictures and ``clip`` requests are served from it. Frames are scaled down and
JPEG-encoded on entry, so RAM stays bounded (seconds × fps × a few tens of kB).
"""

from __future__ import annotations

import tempfile
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from agent.errors import DriverFault
from agent.vision.config import BufferConfig


@dataclass(frozen=True, slots=True)
class StoredFrame:
    ts: float  # wall-clock seconds
    jpeg: bytes


def encode_jpeg(frame: np.ndarray, max_width: int, quality: int) -> bytes:
    """Scale ``frame`` down to at most ``max_width`` and encode it as JPEG."""
    h, w = frame.shape[:2]
    if w > max_width:
        frame = cv2.resize(
            frame, (max_width, round(h * max_width / w)), interpolation=cv2.INTER_AREA
        )
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DriverFault("JPEG encoding failed")
    return buf.tobytes()


class RecordingWindow:
    """Thread-safe ring of ``StoredFrame`` covering the last ``cfg.seconds``."""

    def __init__(self, cfg: BufferConfig) -> None:
        self._cfg = cfg
        self._frames: deque[StoredFrame] = deque()
        self._lock = threading.Lock()
        self._last_ts = float("-inf")
        self.bytes = 0

    def due(self, ts: float) -> bool:
        return ts - self._last_ts >= 1.0 / self._cfg.fps

    def offer(self, frame: np.ndarray, ts: float) -> bool:
        """Keep ``frame`` if one is due at the window's fps; returns whether it was kept."""
        if not self.due(ts):
            return False
        self._last_ts = ts
        jpeg = encode_jpeg(frame, self._cfg.width, self._cfg.jpeg_quality)
        with self._lock:
            self._frames.append(StoredFrame(ts, jpeg))
            self.bytes += len(jpeg)
            while self._frames and self._frames[0].ts < ts - self._cfg.seconds:
                self.bytes -= len(self._frames.popleft().jpeg)
        return True

    def span(self) -> tuple[float, float] | None:
        with self._lock:
            if not self._frames:
                return None
            return self._frames[0].ts, self._frames[-1].ts

    def between(self, start: float, end: float) -> list[StoredFrame]:
        with self._lock:
            return [f for f in self._frames if start <= f.ts <= end]

    def pick(self, start: float, end: float, count: int) -> list[StoredFrame]:
        """Up to ``count`` frames spread evenly over [start, end]."""
        frames = self.between(start, end)
        if count <= 0 or not frames:
            return []
        if len(frames) <= count:
            return frames
        step = (len(frames) - 1) / max(count - 1, 1)
        return [frames[round(i * step)] for i in range(count)] if count > 1 else [frames[-1]]

    def __len__(self) -> int:
        return len(self._frames)


def frames_to_clip(frames: list[StoredFrame], fps: float, tmp_dir: Path | None = None) -> bytes:
    """Assemble JPEG frames into an MP4 (mpeg4 part 2) clip and return its bytes."""
    if not frames:
        raise DriverFault("no frames in the requested range")
    first = cv2.imdecode(np.frombuffer(frames[0].jpeg, np.uint8), cv2.IMREAD_COLOR)
    if first is None:
        raise DriverFault("stored frame could not be decoded")
    h, w = first.shape[:2]
    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        path = Path(tmp) / "clip.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
        if not writer.isOpened():
            raise DriverFault("no MP4 encoder available in OpenCV")
        try:
            for f in frames:
                img = cv2.imdecode(np.frombuffer(f.jpeg, np.uint8), cv2.IMREAD_COLOR)
                if img is not None and img.shape[:2] == (h, w):
                    writer.write(img)
        finally:
            writer.release()
        return path.read_bytes()
