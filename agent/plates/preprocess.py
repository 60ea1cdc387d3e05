"""Turn a plate crop into the tensor Outpost's OCR models take.

Shared by the trainer and the reader so that both see plates exactly the same way.
"""

from __future__ import annotations

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
