"""Classical plate localisation: where in a frame (or a vehicle box / ROI) plates may be.

Plates are dense rows of vertical strokes: horizontal-gradient energy closed by a wide,
short kernel gives plate-shaped blobs. Candidates are ranked here and verified by the OCR
(the reader keeps the candidate whose reading fits a plate format best).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    parent: Box | None = None
    """For a box cut to the text inside another candidate (``text_box``): that candidate's box."""
    second: bool = False
    """Found by the second, locally scaled search (``LOCAL_EXTRA``)."""
    finder: bool = False
    """Found by the trained plate finder (``finder.py``), or cut from a box it found."""

    @property
    def found(self) -> Box:
        """The box the localiser found: the parent's for a text box, else its own."""
        return self.parent or self.box


def find_plates(
    image: npt.NDArray[Any],
    region: Box | None = None,
    max_candidates: int = 12,
    work_width: int = 960,
    extra: int | None = None,
) -> list[Candidate]:
    """Plate-shaped regions of ``image`` (inside ``region`` when given): the first search's
    best first and its best joined row; for each of those whose characters fill only part
    of it, the box cut to those characters (``text_box``; its ``parent`` set); last, up to
    ``extra`` (default ``LOCAL_EXTRA``; 0: no second search) new boxes from the locally
    scaled search (their ``second`` set)."""
    first, second = locate(image, region, max_candidates, work_width, extra)
    return first + second()


def locate(
    image: npt.NDArray[Any],
    region: Box | None = None,
    max_candidates: int = 12,
    work_width: int = 960,
    extra: int | None = None,
) -> tuple[list[Candidate], Callable[[], list[Candidate]]]:
    """``find_plates`` in two parts: the first search's candidates, and a function that
    runs the second search when called (the reader calls it only when the first search's
    candidates read as no plate it is sure of)."""
    extra = LOCAL_EXTRA if extra is None else extra
    H, W = image.shape[:2]
    rx, ry, rw, rh = region if region is not None else (0, 0, W, H)
    rx, ry = max(0, rx), max(0, ry)
    rw, rh = min(rw, W - rx), min(rh, H - ry)
    if rw < 16 or rh < 8:
        return [], list
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
    energies: list[tuple[npt.NDArray[Any], npt.NDArray[Any]]] = []  # for the second search
    for op in (cv2.MORPH_BLACKHAT, cv2.MORPH_TOPHAT):
        hat = cv2.morphologyEx(gray, op, char_kernel)
        gx = np.abs(cv2.Sobel(hat, cv2.CV_32F, 1, 0, ksize=3))
        scaled = (255.0 * gx / max(float(gx.max()), 1.0)).astype(np.uint8)
        shaped, blobs = _blobs(cv2.GaussianBlur(scaled, (5, 5), 0), hat, close_kernel)
        cands += [Candidate(_to_frame(box, scale, rx, ry), score) for box, score in shaped]
        for (x, y, w, h), ink in _row_unions(blobs):
            if _plate_aspect(w, h):
                score = _score(hat, x, y, w, h, ink / float(w * h))
                unions.append(Candidate(_to_frame((x, y, w, h), scale, rx, ry), score))
        if extra and op in LOCAL_OPS:
            energies.append((scaled, hat))
    kept = _suppress(sorted(cands, key=lambda c: -c.score), max_candidates)
    for u in sorted(unions, key=lambda c: -c.score)[:MAX_UNIONS]:
        # kept beside the parts they join: a part may be the better reading, and the
        # reader compares readings, not boxes
        if all(iou(u.box, k.box) < 0.8 for k in kept):
            kept.append(u)
    kept = with_text_boxes(image, kept)
    first = [k for k in kept if k.parent is None]

    def second() -> list[Candidate]:
        """The locally scaled search's best new boxes: its plate shapes only, none
        overlapping a box of the first search, without text boxes (they gained nothing)."""
        more: list[Candidate] = []
        for scaled, hat in energies:
            local = cv2.GaussianBlur(_rescale(scaled), (5, 5), 0)
            shaped, _ = _blobs(local, hat, close_kernel)
            more += [
                Candidate(_to_frame(box, scale, rx, ry), score, second=True)
                for box, score in shaped
            ]
        new = [e for e in more if all(iou(e.box, k.box) < 0.5 for k in first)]
        return _suppress(sorted(new, key=lambda c: -c.score), extra)

    return kept, second


def with_text_boxes(image: npt.NDArray[Any], kept: Sequence[Candidate]) -> list[Candidate]:
    """``kept`` and, after them, each one's box cut to its row of characters where that
    differs from it (``text_box``): the classical search's boxes, and the trained
    finder's (``finder.py``)."""
    out = list(kept)
    for cand in kept:
        inner = text_box(image, cand.box)
        if inner is not None and iou(inner, cand.box) < TEXT_BOX_NEW:
            out.append(Candidate(inner, cand.score, cand.box, finder=cand.finder))
    return out


LOCAL_EXTRA = 4
"""Candidates added from the second, locally normalised search (``_rescale``), each
overlapping none of the first search's (IoU < 0.5). The first search scales the stroke
energy by the frame's strongest edge, so a dim or washed-out plate beside a sunlit
windscreen or a tail light falls under the Otsu threshold; scaled by the strongest edge
within ``LOCAL_WINDOW`` instead, it stands out. Kept apart and few, because the locally
normalised search alone finds more plates and also more look-alikes: in place of the
first search it read fewer US dev scenes end to end (75.7 against 77.9 %)."""
LOCAL_WINDOW = 120
"""Half-width (pixels at the working width) of the neighbourhood whose strongest edge
scales the stroke energy; the neighbourhood is half as high."""
LOCAL_FLOOR = 0.1
"""The scale is never below this fraction of the frame's strongest edge, so that flat
road and sky are not stretched into candidates."""
LOCAL_POOL = 8
"""The neighbourhood maximum is taken on a grid this many times coarser (speed)."""
LOCAL_OPS = (cv2.MORPH_BLACKHAT,)
"""The second search looks for dark characters only (on light plates: US, yellow, white).
Both polarities found the same dev plates (the light-on-dark one alone read the same
scenes too) for 3 ms more per US dev scene; the fast-plate-ocr drop-in read one scene
more with both."""


def _blobs(
    gx: npt.NDArray[Any], hat: npt.NDArray[Any], close_kernel: npt.NDArray[Any]
) -> tuple[list[tuple[Box, float]], list[tuple[Box, float]]]:
    """(plate-shaped boxes with their scores, character-group blobs with their ink)."""
    gx = cv2.morphologyEx(gx, cv2.MORPH_CLOSE, close_kernel)
    _, binary = cv2.threshold(gx, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    square = np.ones((3, 3), np.uint8)
    binary = cv2.dilate(cv2.erode(binary, square, iterations=2), square, iterations=2)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    found: list[tuple[Box, float]] = []
    blobs: list[tuple[Box, float]] = []
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        if h >= UNION_MIN_HEIGHT and w / h >= 0.6:
            blobs.append(((x, y, w, h), cv2.contourArea(c)))
        if h < 8 or w < 20:
            continue
        if not _plate_aspect(w, h):
            continue
        fill = cv2.contourArea(c) / float(w * h)
        found.append(((x, y, w, h), _score(hat, x, y, w, h, fill)))
    return found, blobs


def _plate_aspect(w: int, h: int) -> bool:
    """Wide enough for a plate's row of characters, not so wide as a stripe."""
    return 1.3 <= w / h <= 7.0


def _rescale(scaled: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Stroke energy (uint8, scaled by the frame's strongest edge) scaled again by the
    strongest edge near each pixel (``LOCAL_WINDOW``; at least ``LOCAL_FLOOR`` of the
    frame's)."""
    f = LOCAL_POOL
    h, w = scaled.shape
    pooled = cv2.dilate(scaled, np.ones((f, f), np.uint8))[f // 2 :: f, f // 2 :: f]
    k = max(LOCAL_WINDOW // f, 1)
    pooled = cv2.dilate(pooled, np.ones((k // 2 * 2 + 1, k * 2 + 1), np.uint8))
    pooled = cv2.blur(pooled, (k, k))
    near = cv2.max(cv2.resize(pooled, (w, h), interpolation=cv2.INTER_LINEAR), LOCAL_FLOOR * 255)
    return cv2.divide(scaled, near, scale=255.0)


UNION_MIN_HEIGHT = 12
"""Blobs at least this high (pixels, at the localiser's working width) may be joined."""
MAX_UNIONS = 1
"""At most this many joined boxes are added to a region's candidates (OCR time)."""


TEXT_BOX_NEW = 0.85
"""A text box is offered only where it differs from its candidate (IoU below this)."""
TEXT_HEIGHT = 64
"""Height (pixels) a candidate is scaled to before its characters are sought."""
TEXT_PAD = (0.7, 0.3)
"""Margin left around the characters, in character heights (x, y)."""
TEXT_BLOCK, TEXT_C = 31, 7
"""Adaptive threshold: neighbourhood (pixels at ``TEXT_HEIGHT``) and offset below its mean."""


def text_box(image: npt.NDArray[Any], box: Box) -> Box | None:
    """The box around the row of character-sized blobs inside ``box`` (None: no such row).

    The localiser's boxes are closed gradient blobs: a bumper's edge, a plate frame or a
    dealer's sticker beside the plate widens them (on the US dev scenes only 52 % of the
    best candidates overlap the plate by IoU 0.7), and the OCR models, trained on snug
    crops, read a loose box with extra, missing or unsure characters. Here the box and a
    quarter of its height above and below are binarised (adaptive threshold, both
    polarities); components of a character's shape (0.25-0.8 of the height, 0.1-1.1 as
    wide as high) that share a height and a line and follow one another (``_chain``)
    make rows, and the longest row of three or more gives the text's extent, padded by
    ``TEXT_PAD``.
    """
    x, y, w, h = box
    H, W = image.shape[:2]
    y0, y1 = max(0, y - h // 4), min(H, y + h + h // 4)
    roi = image[y0:y1, x : x + w]
    if roi.shape[0] < 8 or roi.shape[1] < 16:
        return None
    gray = cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY) if roi.ndim == 3 else roi
    scale = TEXT_HEIGHT / gray.shape[0]
    size = (max(int(gray.shape[1] * scale), 8), TEXT_HEIGHT)
    gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    best: list[Box] = []
    for polarity in (cv2.THRESH_BINARY_INV, cv2.THRESH_BINARY):  # dark text, light text
        binary = cv2.adaptiveThreshold(
            gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, polarity, TEXT_BLOCK, TEXT_C
        )
        n, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        glyphs: list[Box] = [
            (int(gx), int(gy), int(gw), int(gh))
            for gx, gy, gw, gh, area in stats[1:n].tolist()
            if 0.25 * TEXT_HEIGHT <= gh <= 0.8 * TEXT_HEIGHT
            and 0.1 <= gw / gh <= 1.1
            and area >= 0.15 * gw * gh
        ]
        for g in glyphs:
            row = _chain([o for o in glyphs if _same_line(g, o)], g)
            if len(row) >= 3 and len(row) > len(best):
                best = row
    if not best:
        return None
    left = min(g[0] for g in best)
    right = max(g[0] + g[2] for g in best)
    top = min(g[1] for g in best)
    bottom = max(g[1] + g[3] for g in best)
    char_h = float(np.median([g[3] for g in best]))
    px, py = TEXT_PAD[0] * char_h, TEXT_PAD[1] * char_h
    fx0 = max(0, int(x + (left - px) / scale))
    fx1 = min(W, int(x + (right + px) / scale))
    fy0 = max(0, int(y0 + (top - py) / scale))
    fy1 = min(H, int(y0 + (bottom + py) / scale))
    if fx1 - fx0 < 12 or fy1 - fy0 < 6:
        return None
    return (fx0, fy0, fx1 - fx0, fy1 - fy0)


TEXT_GAP = 1.0
"""Characters of one plate lie at most this many character heights apart."""


def _chain(row: list[Box], seed: Box) -> list[Box]:
    """The glyphs of ``row`` (``seed`` among them) that follow one another from ``seed``
    leftwards and rightwards with gaps under ``TEXT_GAP`` heights and without overlapping
    by more than a third of the narrower one."""
    row = sorted(row, key=lambda g: g[0])
    i = row.index(seed)
    lo = hi = i
    while lo > 0 and _next_to(row[lo - 1], row[lo], seed[3]):
        lo -= 1
    while hi < len(row) - 1 and _next_to(row[hi], row[hi + 1], seed[3]):
        hi += 1
    return row[lo : hi + 1]


def _next_to(a: Box, b: Box, height: int) -> bool:
    gap = b[0] - (a[0] + a[2])
    return -min(a[2], b[2]) / 3 <= gap <= TEXT_GAP * height


def _same_line(a: Box, b: Box) -> bool:
    """``b`` is of ``a``'s height (within a third) and centred on its line."""
    ratio = b[3] / a[3]
    centre_gap = abs((b[1] + b[3] / 2) - (a[1] + a[3] / 2))
    return 0.75 <= ratio <= 1.33 and centre_gap < 0.3 * a[3]


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
        if len(kept) >= limit:
            break
        if all(iou(c.box, k.box) < 0.5 for k in kept):
            kept.append(c)
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
