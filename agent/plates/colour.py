"""Plate colour and type of Chinese plates (GA 36-2018), from the crop's pixels and text.

Colour is the dominant background hue of the crop; the type follows from colour and text
(警 → police, 8 characters → new energy, 挂/学 → trailer/learner, 港/澳 → cross-border).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

COLOURS = ("blue", "yellow", "green", "white", "black")


def plate_colour(crop: npt.NDArray[Any]) -> str:
    """Background colour of a plate crop: blue, yellow, green, white or black."""
    if crop.ndim != 3 or crop.size == 0:
        return "unknown"
    h, w = crop.shape[:2]
    inner = crop[int(h * 0.1) : max(int(h * 0.9), 1), int(w * 0.05) : max(int(w * 0.95), 1)]
    hsv = cv2.cvtColor(inner, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.int32)
    hue, sat, val = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    coloured = (sat > 70) & (val > 50)
    votes = {
        "blue": int(np.count_nonzero(coloured & (hue >= 95) & (hue <= 130))),
        "yellow": int(np.count_nonzero(coloured & (hue >= 12) & (hue <= 34))),
        "green": int(np.count_nonzero(coloured & (hue >= 35) & (hue <= 90))),
    }
    best = max(votes, key=lambda k: votes[k])
    if votes[best] > 0.25 * len(hue):
        return best
    # No dominant hue: the background is the majority of the bright or the dark pixels.
    return "white" if np.count_nonzero(val > 150) > 0.45 * len(val) else "black"


def cn_plate_type(text: str, colour: str) -> str:
    """Plate type of a Chinese plate reading, e.g. ``small-car``, ``police``, ``nev-small``."""
    if not text:
        return "unknown"
    last = text[-1]
    if last == "警" or colour == "white":
        return "police"
    if last in "港澳":
        return "hk-macau"
    if text[0] in "使领":
        return "embassy"
    if last == "挂":
        return "trailer"
    if last == "学":
        return "learner"
    if len(text) == 8:
        return "nev-large" if text[-1].isalpha() else "nev-small"
    if colour == "yellow":
        return "large-vehicle"
    if colour == "black":
        return "foreign"
    return "small-car"
