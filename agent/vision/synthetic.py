"""A synthetic street scene for the simulated profile: no real footage needs to ship.

Textured static background (so tamper checks have structure) with two rectangles driving
across, written once with ``cv2.VideoWriter`` and looped by the file camera.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from agent.errors import DriverFault
from agent.vision.config import TAMPER_REASONS


def synthetic_frames(width: int, height: int, fps: int, seconds: float) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    bg = np.full((height, width, 3), 90, np.uint8)
    for _ in range(40):  # buildings, signs, kerbs: fixed structure
        x, y = int(rng.integers(0, width - 40)), int(rng.integers(0, height // 2))
        w, h = int(rng.integers(20, 120)), int(rng.integers(20, 120))
        colour = tuple(int(c) for c in rng.integers(30, 230, 3))
        cv2.rectangle(bg, (x, y), (x + w, y + h), colour, -1)
    road_top = height * 3 // 5
    cv2.rectangle(bg, (0, road_top), (width, height), (60, 60, 60), -1)
    for x in range(0, width, 60):
        cv2.line(bg, (x, height * 4 // 5), (x + 30, height * 4 // 5), (220, 220, 220), 3)
    frames = []
    n = int(fps * seconds)
    for i in range(n):
        frame = bg.copy()
        t = i / n
        x1 = int(-160 + t * (width + 320))
        cv2.rectangle(frame, (x1, road_top + 10), (x1 + 150, road_top + 70), (30, 30, 200), -1)
        cv2.rectangle(frame, (x1 + 20, road_top - 20), (x1 + 120, road_top + 12), (40, 40, 160), -1)
        x2 = int(width + 100 - ((t * 2) % 1) * (width + 300))
        cv2.rectangle(frame, (x2, road_top + 80), (x2 + 110, road_top + 125), (200, 160, 20), -1)
        frames.append(frame)
    return frames


def make_synthetic_video(
    path: Path, width: int = 640, height: int = 360, fps: int = 10, seconds: float = 20.0
) -> Path:
    """Write the synthetic clip to ``path`` (atomically) unless it already exists."""
    if path.is_file() and path.stat().st_size > 0:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part" + path.suffix)
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise DriverFault(f"cannot write synthetic video {tmp}")
    try:
        for frame in synthetic_frames(width, height, fps, seconds):
            writer.write(frame)
    finally:
        writer.release()
    tmp.replace(path)
    return path


def apply_effect(frame: np.ndarray, effect: str) -> np.ndarray:
    """What a tampered camera would show: for ``outpost simulate camera-tamper``."""
    h, w = frame.shape[:2]
    if effect == "covered":
        return np.full_like(frame, 16)
    if effect == "blurred":
        return cv2.GaussianBlur(frame, (0, 0), 6)
    if effect == "moved":
        m = np.array([[1, 0, w * 0.3], [0, 1, h * 0.15]], dtype=np.float32)
        return cv2.warpAffine(frame, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    raise ValueError(f"unknown effect {effect!r}; use one of {', '.join(TAMPER_REASONS)}")
