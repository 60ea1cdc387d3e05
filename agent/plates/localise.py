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
    unions: list[Candidate] = []
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
        blobs: list[tuple[Box, float]] = []  # (box, ink area) of character-group-sized blobs
        for c in contours:
            x, y, w, h = cv2.boundingRect(c)
            if h >= UNION_MIN_HEIGHT and w / h >= 0.6:
                blobs.append(((x, y, w, h), cv2.contourArea(c)))
            if h < 8 or w < 20:
                continue
            aspect = w / h
            if not 1.3 <= aspect <= 7.0:
                continue
            fill = cv2.contourArea(c) / float(w * h)
            score = _score(hat, x, y, w, h, fill)
            cands.append(Candidate(_to_frame((x, y, w, h), scale, rx, ry), score))
        for (x, y, w, h), ink in _row_unions(blobs):
            aspect = w / h
            if 1.3 <= aspect <= 7.0:
                score = _score(hat, x, y, w, h, ink / float(w * h))
                unions.append(Candidate(_to_frame((x, y, w, h), scale, rx, ry), score))
    kept = _suppress(sorted(cands, key=lambda c: -c.score), max_candidates)
    for u in sorted(unions, key=lambda c: -c.score)[:MAX_UNIONS]:
        # kept beside the parts they join: a part may be the better reading, and the
        # reader compares readings, not boxes
        if all(iou(u.box, k.box) < 0.8 for k in kept):
            kept.append(u)
    return kept


UNION_MIN_HEIGHT = 12
"""Blobs at least this high (pixels, at the localiser's working width) may be joined."""
MAX_UNIONS = 1
"""At most this many joined boxes are added to a region's candidates (OCR time)."""


def _score(hat: npt.NDArray[Any], x: int, y: int, w: int, h: int, fill: float) -> float:
    """Plates are ~2:1 (US) to ~3.2:1 (CN): prefer those shapes, dense strokes, size."""
    density = float(hat[y : y + h, x : x + w].mean()) / 255.0
    shape = float(np.exp(-((np.log(w / h) - np.log(2.6)) ** 2) / 0.5))
    return shape * fill * (0.3 + density) * float(np.sqrt(w * h))


def _row_unions(blobs: list[tuple[Box, float]]) -> list[tuple[Box, float]]:
    """Neighbouring blobs in one row of text, joined: (box, ink area) of each pair.

    Close to the camera a plate's character groups are further apart than the closing
    kernel reaches (`EAZ 6913`, `5VCF 203`, `CC = 2881` on the US dev scenes), so each
    group is a candidate of its own and the best reading is a part of the plate. Two blobs
    are one row when they are of about the same height (within 1.5 times), overlap by at
    least 70 % of the shorter one's height, and the gap between them is under one height."""
    out: list[tuple[Box, float]] = []
    order = sorted(blobs, key=lambda b: b[0][0])
    for i, ((ax, ay, aw, ah), a_ink) in enumerate(order):
        for (bx, by, bw, bh), b_ink in order[i + 1 :]:
            gap = bx - (ax + aw)
            if gap > max(ah, bh):
                break  # sorted by x: every later blob starts further off
            if gap < -0.2 * min(aw, bw) or not 0.67 <= ah / bh <= 1.5:
                continue
            overlap = min(ay + ah, by + bh) - max(ay, by)
            if overlap < 0.7 * min(ah, bh):
                continue
            x0, y0 = ax, min(ay, by)
            x1, y1 = max(ax + aw, bx + bw), max(ay + ah, by + bh)
            out.append(((x0, y0, x1 - x0, y1 - y0), a_ink + b_ink))
    return out


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
