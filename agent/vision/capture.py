"""Frame sources: a USB/V4L2 camera, an RTSP stream or a video file, behind one class.

``CameraSource`` only opens, reads and closes; reconnect policy and pacing live in the
camera pipeline. A video file is read at its own frame rate and, if ``loop`` is set,
restarts at its end, so it behaves like a live camera in the simulated profile.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np

from agent.errors import DriverFault
from agent.vision.config import CameraConfig

# RTSP over TCP: UDP loses packets on busy links and gives grey smeared frames.
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")

_OPEN_TIMEOUT_MS = 5000
_READ_TIMEOUT_MS = 5000


class CameraSource:
    """One camera's frame source. Not thread-safe: one capture thread owns it."""

    def __init__(self, cfg: CameraConfig, file_path: Path | None = None) -> None:
        self.cfg = cfg
        self._file_path = file_path or cfg.path
        self._cap: cv2.VideoCapture | None = None
        self.native_fps = 0.0
        self._next_due = 0.0  # file pacing: when the next frame may be handed out
        self.frame_size: tuple[int, int] | None = None
        self.ended = False  # a non-looping file has been played to its end

    @property
    def is_file(self) -> bool:
        return self.cfg.kind == "file"

    def describe(self) -> str:
        if self.cfg.kind == "rtsp":
            return _redact(self.cfg.url or "")
        if self.cfg.kind == "usb":
            return str(self.cfg.device)
        return str(self._file_path)

    def open(self) -> None:
        """Open the source; raises ``DriverFault`` with the reason when it cannot."""
        self.close()
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            _OPEN_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            _READ_TIMEOUT_MS,
        ]
        if self.cfg.kind == "rtsp":
            cap = cv2.VideoCapture(self.cfg.url or "", cv2.CAP_FFMPEG, params)
        elif self.cfg.kind == "usb":
            dev = self.cfg.device or "0"
            cap = cv2.VideoCapture(int(dev) if dev.isdigit() else dev, cv2.CAP_V4L2)
            if self.cfg.width and self.cfg.height:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.cfg.width)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.cfg.height)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        else:
            if self._file_path is None or not Path(self._file_path).is_file():
                raise DriverFault(f"camera {self.cfg.name}: video file {self._file_path} not found")
            cap = cv2.VideoCapture(str(self._file_path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise DriverFault(f"camera {self.cfg.name}: cannot open {self.describe()}")
        self._cap = cap
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.native_fps = fps if 0 < fps <= 240 else 25.0
        self._next_due = time.monotonic()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    @property
    def is_open(self) -> bool:
        return self._cap is not None

    def grab(self) -> bool:
        """Take the next frame from the stream without converting it; False at a drop or end.

        A looping file restarts at its end; a file is paced to its native frame rate.
        """
        if self._cap is None:
            return False
        if self.is_file:
            delay = self._next_due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next_due = max(self._next_due + 1.0 / self.native_fps, time.monotonic() - 1.0)
        if self._cap.grab():
            return True
        if self.is_file:
            if not self.cfg.loop:
                self.ended = True
                return False
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            return bool(self._cap.grab())
        return False

    def retrieve(self) -> np.ndarray | None:
        """Decode the last grabbed frame to BGR."""
        if self._cap is None:
            return None
        ok, frame = self._cap.retrieve()
        if not ok or frame is None:
            return None
        self.frame_size = (frame.shape[1], frame.shape[0])
        return frame


def _redact(url: str) -> str:
    """Hide a password in an RTSP URL before it reaches logs, status or events."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
