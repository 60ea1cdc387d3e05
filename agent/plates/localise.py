"""Classical plate localisation: where in a frame (or a vehicle box / ROI) plates may be.

Plates are dense rows of vertical strokes: horizontal-gradient energy closed by a wide,
short kernel gives plate-shaped blobs. Candidates are ranked here and verified by the OCR
(the reader keeps the candidate whose reading fits a plate format best).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

Box = tuple[int, int, int, int]
"""x, y, w, h in pixels of the full frame."""


@dataclass(frozen=True)
class Candidate:
    box: Box
    score: float


def find_plates(
    image: npt.NDArray[Any],
    region: Box | None = None,
    max_candidates: int = 12,
    work_width: int = 960,
) -> list[Candidate]:
    """Plate-shaped regions of ``image`` (inside ``region`` when given), best first."""
    H, W = image.shape[:2]
    rx, ry, rw, rh = region if region is not None else (0, 0, W, H)
    rx, ry = max(0, rx), max(0, ry)
    rw, rh = min(rw, W - rx), min(rh, H - ry)
    if rw < 16 or rh < 8:
        return []
    roi = image[ry : ry + rh, rx : rx + rw]
    scale = min(1.0, work_width / rw)
    small = (
        cv2.resize(roi, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if scale < 1
        else roi
    )
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    # Black-hat finds dark characters on a light plate (US, yellow, white), top-hat light
    # characters on a dark plate (blue, black); each is searched separately.
    char_kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (13, 5))
    close_kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (17, 5))
    cands: list[Candidate] = []
    for op in (cv2.MORPH_BLACKHAT, cv2.MORPH_TOPHAT):
        hat = cv2.morphologyEx(gray, op, char_kernel)
        gx = np.abs(cv2.Sobel(hat, cv2.CV_32F, 1, 0, ksize=3))
        gx = (255.0 * gx / max(float(gx.max()), 1.0)).astype(np.uint8)
        gx = cv2.GaussianBlur(gx, (5, 5), 0)
        gx = cv2.morphologyEx(gx, cv2.MORPH_CLOSE, close_kernel)
        _, binary = cv2.threshold(gx, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        square = np.ones((3, 3), np.uint8)
        binary = cv2.dilate(cv2.erode(binary, square, iterations=2), square, iterations=2)
        contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for c in contours:
            x, y, w, h = cv2.boundingRect(c)
            if h < 8 or w < 20:
                continue
            aspect = w / h
            if not 1.3 <= aspect <= 7.0:
                continue
            fill = cv2.contourArea(c) / float(w * h)
            density = float(hat[y : y + h, x : x + w].mean()) / 255.0
            # Plates are ~2:1 (US) to ~3.2:1 (CN): prefer those shapes, dense strokes, size.
            shape = float(np.exp(-((np.log(aspect) - np.log(2.6)) ** 2) / 0.5))
            score = shape * fill * (0.3 + density) * float(np.sqrt(w * h))
            cands.append(Candidate(_to_frame((x, y, w, h), scale, rx, ry), score))
    return _suppress(sorted(cands, key=lambda c: -c.score), max_candidates)


def _to_frame(box: Box, scale: float, ox: int, oy: int) -> Box:
    x, y, w, h = box
    return (int(x / scale) + ox, int(y / scale) + oy, int(w / scale), int(h / scale))


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union else 0.0


def _suppress(cands: list[Candidate], limit: int) -> list[Candidate]:
    kept: list[Candidate] = []
    for c in cands:
        if all(iou(c.box, k.box) < 0.5 for k in kept):
            kept.append(c)
        if len(kept) >= limit:
            break
    return kept


def expand(box: Box, frac_x: float, frac_y: float, shape: tuple[int, ...]) -> Box:
    """Grow a box by fractions of its size on each side, clamped to the image."""
    x, y, w, h = box
    H, W = shape[:2]
    dx, dy = int(w * frac_x), int(h * frac_y)
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(W, x + w + dx), min(H, y + h + dy)
    return (x0, y0, x1 - x0, y1 - y0)


def crop(image: npt.NDArray[Any], box: Box) -> npt.NDArray[Any]:
    x, y, w, h = box
    return image[y : y + h, x : x + w]
