"""Plate finding with a trained model (``models/outpost-plate-find-int8.tflite``).

The model is a small fully convolutional net (``training/finder.py``) that gives, for each
4 × 4 block of a gray picture, the probability that it lies on a licence plate. The
picture is a region (a vehicle box, the ROI or the frame) scaled to ``FIND_WIDTH`` at
most; the plate-marked blocks that touch make one candidate box, scored by their highest
probability. The classical localiser (``localise.py``) works from character edges and
misses plates in busy scenes (a mesh grille, a van's lettering, a dark frame around a
small plate); the finder looks at the whole plate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

Box = tuple[int, int, int, int]

FIND_STRIDE = 4
"""Pixels of the model's input per output cell."""
FIND_WIDTH = 1280
"""A region is scaled down to at most this many pixels across (and as much in height) before
the model reads it; smaller regions are read as they are."""
FIND_THRESHOLD = 0.5
"""Cells at or above this probability are plate."""
FIND_MAX = 4
"""At most this many boxes from one region, the surest first."""
FIND_MIN_CELLS = 3
"""A box needs at least this many plate cells."""
_ALIGN = 8
"""The input's sides are padded to a multiple of this (the net's deepest stride)."""


class PlateFinder:
    """Reads a picture with the finder model; ``find`` returns candidate plate boxes."""

    def __init__(self, model_path: Path, threads: int = 1) -> None:
        from agent.vision.runtime import load_interpreter

        self.name = model_path.stem
        self._interp = load_interpreter(model_path, threads=threads)
        inp = self._interp.get_input_details()[0]
        self._in_index = inp["index"]
        self._in_dtype = inp["dtype"]
        self._out_index = self._interp.get_output_details()[0]["index"]
        self._shape: tuple[int, int] | None = None

    def probabilities(self, gray: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """The plate probability of each ``FIND_STRIDE`` block of ``gray`` (its sides padded
        to a multiple of 8 with edge pixels; the padding's cells cut off again)."""
        h, w = gray.shape[:2]
        ph, pw = -h % _ALIGN, -w % _ALIGN
        x = cv2.copyMakeBorder(gray, 0, ph, 0, pw, cv2.BORDER_REPLICATE) if ph or pw else gray
        shape = (x.shape[0], x.shape[1])
        if shape != self._shape:
            self._interp.resize_tensor_input(self._in_index, [1, shape[0], shape[1], 1])
            self._interp.allocate_tensors()
            self._shape = shape
        arr = x.astype(self._in_dtype)[None, :, :, None]
        self._interp.set_tensor(self._in_index, arr)
        self._interp.invoke()
        out = np.asarray(self._interp.get_tensor(self._out_index))[0, :, :, 0]
        return out[: -(-h // FIND_STRIDE), : -(-w // FIND_STRIDE)].astype(np.float32)

    def find(self, image: npt.NDArray[Any], region: Box | None = None) -> list[tuple[Box, float]]:
        """Plate boxes (frame pixels) inside ``region`` of ``image`` and their scores, the
        surest first."""
        H, W = image.shape[:2]
        rx, ry, rw, rh = region if region is not None else (0, 0, W, H)
        rx, ry = max(0, rx), max(0, ry)
        rw, rh = min(rw, W - rx), min(rh, H - ry)
        if rw < 16 or rh < 8:
            return []
        roi = image[ry : ry + rh, rx : rx + rw]
        gray = cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY) if roi.ndim == 3 else roi
        scale = min(1.0, FIND_WIDTH / max(rw, rh))
        if scale < 1:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        probs = self.probabilities(gray)
        return boxes_from_map(probs, scale, (rx, ry), (W, H))


def boxes_from_map(
    probs: npt.NDArray[np.float32],
    scale: float,
    origin: tuple[int, int],
    size: tuple[int, int],
    threshold: float = FIND_THRESHOLD,
) -> list[tuple[Box, float]]:
    """The connected groups of cells at or above ``threshold`` as boxes in frame pixels
    (``scale``: the map's input pixels per frame pixel; ``origin``: the region's corner in
    the frame; ``size``: the frame's width and height to clamp to), each scored by its most
    probable cell, the surest first (``FIND_MAX``)."""
    binary = (probs >= threshold).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    # each component's most probable cell, in one pass over the map
    peak = np.zeros(n, np.float32)
    np.maximum.at(peak, labels.ravel().astype(np.intp), probs.ravel())
    out: list[tuple[Box, float]] = []
    f = FIND_STRIDE / scale
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area < FIND_MIN_CELLS:
            continue
        score = float(peak[i])
        bx, by = origin[0] + int(x * f), origin[1] + int(y * f)
        bw = min(int(np.ceil(w * f)), size[0] - bx)
        bh = min(int(np.ceil(h * f)), size[1] - by)
        out.append(((bx, by, bw, bh), score))
    out.sort(key=lambda b: -b[1])
    return out[:FIND_MAX]
