"""Turn a plate crop into the tensor Outpost's OCR models take.

Shared by the trainer and the reader so that both see plates exactly the same way.
"""

from __future__ import annotations

import functools
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

OCR_HEIGHT = 32
OCR_WIDTH = 128
TWO_ROW_MAX_ASPECT = 2.6
"""Crops narrower than this (width / height) may be two-row plates (Chinese rear yellow)."""

Image = npt.NDArray[Any]


def to_gray(crop: Image) -> Image:
    if crop.ndim == 2:
        return crop
    return cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)


def unfold_two_row(gray: Image) -> Image:
    """Place the upper row of a two-row plate left of the lower row, as one line of text."""
    h = gray.shape[0]
    top = gray[: int(h * 0.40)]
    bottom = gray[int(h * 0.33) :]
    th = bottom.shape[0]
    if th < 4 or top.shape[0] < 2:
        return gray
    top = cv2.resize(top, (max(int(top.shape[1] * 0.6 * th / max(top.shape[0], 1)), 8), th))
    top = top[:, int(top.shape[1] * 0.15) : int(top.shape[1] * 0.85)]
    return np.ascontiguousarray(np.hstack([top, bottom]))


def ocr_input(crop: Image, two_row: bool = False) -> Image:
    """Gray, resized to OCR_HEIGHT × OCR_WIDTH (aspect not kept), uint8, shape (H, W)."""
    gray = to_gray(crop)
    if two_row:
        gray = unfold_two_row(gray)
    return cv2.resize(gray, (OCR_WIDTH, OCR_HEIGHT), interpolation=cv2.INTER_AREA)


LEANS = np.linspace(-0.5, 0.5, 21)
"""The leans ``lean`` tries, in x per y of the crop resized to ``_LEAN_SIZE``."""
_LEAN_SIZE = (96, 24)
_LEAN_ROWS = slice(5, 19)
"""The middle rows at ``_LEAN_SIZE``: the characters, not the plate's top and bottom edges."""
_LEAN_OVERSAMPLE = 2


def lean(crop: Image) -> float:
    """How far a crop's characters lean sideways, in x per y at the crop's own scale
    (positive: the top leans right, as italics do).

    The lean is the shear, of those in ``LEANS``, that lines the characters' vertical
    strokes up best: its column sums of horizontal gradient are the most peaked (the
    largest sum of squares). Worked out on the crop resized to 96×24 and oversampled 2×
    across, so a shear's row shifts are whole columns (4× read the dev crops no better).
    """
    w0, h0 = _LEAN_SIZE
    gray = cv2.resize(to_gray(crop), (w0 * _LEAN_OVERSAMPLE, h0), interpolation=cv2.INTER_LINEAR)
    gx = np.abs(cv2.Sobel(gray.astype(np.float32), cv2.CV_32F, 1, 0, ksize=3))[_LEAN_ROWS]
    index, span, nearest = _lean_bins()
    weights = np.broadcast_to(gx, index.shape)
    columns = np.bincount(index.ravel(), weights.ravel(), len(LEANS) * span)
    peaked = (columns.reshape(len(LEANS), span) ** 2).sum(axis=1)
    best = LEANS[nearest[int(np.argmax(peaked[nearest]))]]
    h, w = crop.shape[:2]
    return float(best * (w / w0) / (h / h0))


@functools.cache
def _lean_bins() -> tuple[npt.NDArray[np.int64], int, npt.NDArray[np.int64]]:
    """What ``lean`` works out from constants alone, once: for each lean, row and column
    of the oversampled middle rows, the bin its gradient adds to (``(leans, rows,
    columns)``, the leans' bins ``span`` apart); and the leans, smallest first, so that of
    equal scores (a blank crop's are all 0) the smallest wins: none rather than -0.5."""
    w0, h0 = _LEAN_SIZE
    k = _LEAN_OVERSAMPLE
    width = w0 * k
    ys = np.arange(_LEAN_ROWS.start, _LEAN_ROWS.stop) - h0 / 2
    reach = int(np.ceil(k * np.abs(LEANS).max() * np.abs(ys).max()))
    shift = np.rint(k * LEANS[:, None] * ys[None, :]).astype(np.int64) + reach  # (leans, rows)
    span = width + 2 * reach
    index = (
        np.arange(len(LEANS))[:, None, None] * span
        + shift[:, :, None]
        + np.arange(width)[None, None, :]
    )
    return index, span, np.argsort(np.abs(LEANS), kind="stable")


def upright(crop: Image, by: float) -> Image:
    """The crop sheared by ``by`` (x per y, ``lean``'s sign) about its middle row, so that
    characters leaning by that much stand upright; the same size, edge pixels repeated."""
    h, w = crop.shape[:2]
    m = np.array([[1, by, -by * h / 2], [0, 1, 0]], np.float32)
    return cv2.warpAffine(crop, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
