"""Boxes, overlap and detection regions: pure functions over pixel coordinates.

A box is ``(x1, y1, x2, y2)`` in integer pixels of the full frame, x2/y2 exclusive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Box = tuple[int, int, int, int]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes; 0.0 when either is empty."""
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return float(inter / union) if union > 0 else 0.0


def inside_share(inner: Sequence[float], outer: Sequence[float]) -> float:
    """Share of ``inner``'s area that lies inside ``outer``."""
    w = max(0.0, min(inner[2], outer[2]) - max(inner[0], outer[0]))
    h = max(0.0, min(inner[3], outer[3]) - max(inner[1], outer[1]))
    area = max(1.0, (inner[2] - inner[0]) * (inner[3] - inner[1]))
    return float(w * h / area)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression; returns kept indices, best score first.

    ``boxes`` is an ``(N, 4)`` array of x1, y1, x2, y2.
    """
    if len(boxes) == 0:
        return []
    x1, y1, x2, y2 = (boxes[:, i].astype(np.float64) for i in range(4))
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        union = areas[i] + areas[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[overlap <= iou_threshold]
    return keep


def square_region(frame_w: int, frame_h: int, box: Box, min_side: int, multiplier: float) -> Box:
    """A square around ``box``: ``multiplier`` × its longest edge, at least ``min_side``, kept
    inside the frame (as Frigate's ``calculate_region`` does)."""
    bw, bh = box[2] - box[0], box[3] - box[1]
    side = int(max(min_side, multiplier * max(bw, bh)))
    side = min(side, frame_w, frame_h)
    cx, cy = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
    x1 = min(max(0, cx - side // 2), frame_w - side)
    y1 = min(max(0, cy - side // 2), frame_h - side)
    return (x1, y1, x1 + side, y1 + side)


def contains(outer: Box, inner: Box) -> bool:
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and outer[2] >= inner[2]
        and outer[3] >= inner[3]
    )


def union_box(boxes: Sequence[Box]) -> Box:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def detection_regions(
    frame_w: int,
    frame_h: int,
    boxes: Sequence[Box],
    *,
    min_side: int,
    max_regions: int,
    multiplier: float = 2.0,
) -> list[Box]:
    """The crops the detector should look at for these motion or track boxes.

    Largest box first, each gets a square region unless an earlier region already holds it;
    past ``max_regions`` the leftovers share one region around their union, so motion is never
    silently ignored.
    """
    regions: list[Box] = []
    sources: list[Box] = []
    leftovers: list[Box] = []
    for box in sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True):
        if any(contains(r, box) for r in regions):
            continue
        if len(regions) < max_regions:
            regions.append(square_region(frame_w, frame_h, box, min_side, multiplier))
            sources.append(box)
        else:
            leftovers.append(box)
    if leftovers:
        # The last slot covers the smallest kept box and everything that did not fit.
        regions.pop()
        leftovers.append(sources.pop())
        regions.append(cover_region(frame_w, frame_h, union_box(leftovers), min_side))
    return regions


def cover_region(frame_w: int, frame_h: int, box: Box, min_side: int) -> Box:
    """A region holding all of ``box`` (which may be wider than a square fits): the box with
    a 10 % margin, at least ``min_side`` each way, inside the frame. The detector input is
    square, so a wide region is squeezed; that costs accuracy, not coverage."""
    if max(box[2] - box[0], box[3] - box[1]) * 1.2 <= min(frame_w, frame_h):
        return square_region(frame_w, frame_h, box, min_side, 1.2)
    mx, my = (box[2] - box[0]) // 10, (box[3] - box[1]) // 10
    x1, y1 = max(0, box[0] - mx), max(0, box[1] - my)
    x2, y2 = min(frame_w, box[2] + mx), min(frame_h, box[3] + my)
    if x2 - x1 < min_side:
        x1, x2 = max(0, min(x1, frame_w - min_side)), min(frame_w, max(x2, x1 + min_side))
    if y2 - y1 < min_side:
        y1, y2 = max(0, min(y1, frame_h - min_side)), min(frame_h, max(y2, y1 + min_side))
    return (x1, y1, x2, y2)
