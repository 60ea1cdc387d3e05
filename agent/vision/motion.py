"""Motion gate in the manner of Frigate's improved motion detector.

A small grey copy of each frame is compared with a running average; the boxes around what
changed (in full-frame pixels) decide where the object detector looks. A static scene costs
one resize and a few small array operations per analysed frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from agent.vision.config import MotionConfig
from agent.vision.geometry import Box


class MotionDetector:
    """Stateful: feed it frames in order with ``detect``; it returns motion boxes."""

    def __init__(self, cfg: MotionConfig) -> None:
        self._cfg = cfg
        self._avg: np.ndarray | None = None
        self._kernel = np.ones((3, 3), np.uint8)
        self.motion_fraction = 0.0
        self.recalibrations = 0

    def reset(self) -> None:
        """Forget the background (after a reconnect or a tamper event)."""
        self._avg = None

    def detect(self, frame: np.ndarray) -> list[Box]:
        h, w = frame.shape[:2]
        small_h = min(self._cfg.frame_height, h)
        small_w = max(1, round(w * small_h / h))
        small = cv2.resize(frame, (small_w, small_h), interpolation=cv2.INTER_LINEAR)
        gray = small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        lo, hi = np.percentile(gray, (4, 96))
        if hi - lo >= 1:
            # Contrast stretch: motion in a dull, low-contrast scene still clears the threshold.
            gray = cv2.convertScaleAbs(gray, alpha=255.0 / (hi - lo), beta=-lo * 255.0 / (hi - lo))
        gray = cv2.GaussianBlur(gray, (3, 3), 0)
        if self._avg is None:
            self._avg = gray.astype(np.float32)
            self.motion_fraction = 0.0
            return []
        diff = cv2.absdiff(gray, cv2.convertScaleAbs(self._avg))
        cv2.accumulateWeighted(gray, self._avg, self._cfg.frame_alpha)
        _, mask = cv2.threshold(diff, self._cfg.threshold, 255, cv2.THRESH_BINARY)
        mask = cv2.dilate(mask, self._kernel, iterations=1)
        self.motion_fraction = float(np.count_nonzero(mask)) / mask.size
        if self.motion_fraction > self._cfg.lightning_threshold:
            # Lightning, an IR switch or a camera move: take the new view as the background.
            self._avg = gray.astype(np.float32)
            self.recalibrations += 1
            return []
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        sx, sy = w / small_w, h / small_h
        boxes: list[Box] = []
        for c in contours:
            if cv2.contourArea(c) <= self._cfg.contour_area:
                continue
            x, y, bw, bh = cv2.boundingRect(c)
            boxes.append(
                (int(x * sx), int(y * sy), min(w, int((x + bw) * sx)), min(h, int((y + bh) * sy)))
            )
        return boxes
