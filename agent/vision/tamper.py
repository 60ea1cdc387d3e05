"""Camera tamper: covered or blacked out, defocused, or turned away from its reference view.

The measures look at structure (edges and gradients, normalised by the frame's own contrast),
not at brightness, so a day/night or IR-cut switch, which changes brightness and colour but
keeps the scene's structure, does not count as tampering.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from agent.vision.config import TamperConfig

_WIDTH = 320  # features are measured on a grey copy this wide
_MAP_WIDTH = 80  # gradient map used to compare with the reference view


@dataclass(frozen=True, slots=True)
class ViewFeatures:
    """What one frame looks like, brightness-independent where it matters."""

    std: float  # grey-level spread; a cap or a hand gives a nearly uniform frame
    edge_density: float  # share of pixels on a contrast-normalised edge
    sharpness: float  # Laplacian variance / grey variance: falls when defocused
    gradient_map: np.ndarray  # small zero-mean, unit-std gradient magnitude map


def view_features(frame: np.ndarray) -> ViewFeatures:
    """Measure a BGR or grey frame."""
    h, w = frame.shape[:2]
    size = (_WIDTH, max(1, round(h * _WIDTH / w)))
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    gray = small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    g = gray.astype(np.float32)
    std = float(g.std())
    # Contrast-normalise before edge finding so the edge count does not follow brightness.
    lo, hi = float(gray.min()), float(gray.max())
    norm = (
        cv2.convertScaleAbs(gray, alpha=255.0 / (hi - lo), beta=-lo * 255.0 / (hi - lo))
        if hi > lo
        else gray
    )
    edges = cv2.Canny(norm, 60, 150)
    edge_density = float(np.count_nonzero(edges)) / edges.size
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=3)
    sharpness = float(lap.var()) / max(std * std, 1.0)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    mag = cv2.magnitude(gx, gy)
    map_size = (_MAP_WIDTH, max(1, round(h * _MAP_WIDTH / w)))
    gmap = cv2.resize(mag, map_size, interpolation=cv2.INTER_AREA)
    gmap = cv2.GaussianBlur(gmap, (5, 5), 0)
    gmap = (gmap - gmap.mean()) / max(float(gmap.std()), 1e-6)
    return ViewFeatures(std, edge_density, sharpness, gmap)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two normalised gradient maps: 1 = same view, about 0 = unrelated."""
    if a.shape != b.shape:
        return 0.0
    return float((a * b).mean())


def classify(
    cur: ViewFeatures, ref: ViewFeatures, cfg: TamperConfig
) -> tuple[str | None, dict[str, float]]:
    """Which tamper condition (``covered``, ``blurred``, ``moved``) this frame shows, if any."""
    edge_ratio = cur.edge_density / max(ref.edge_density, 1e-6)
    sharp_ratio = cur.sharpness / max(ref.sharpness, 1e-6)
    sim = similarity(cur.gradient_map, ref.gradient_map)
    metrics = {
        "std": round(cur.std, 2),
        "edge_ratio": round(edge_ratio, 3),
        "sharpness_ratio": round(sharp_ratio, 3),
        "similarity": round(sim, 3),
    }
    if cur.std < cfg.covered_std:
        return "covered", metrics
    # A close cover that still lets light through looks like a very defocused view.
    if sharp_ratio < cfg.blurred_sharpness_ratio or edge_ratio < cfg.covered_edge_ratio:
        return "blurred", metrics
    if sim < cfg.moved_similarity:
        return "moved", metrics
    return None, metrics


@dataclass(frozen=True, slots=True)
class TamperChange:
    """A state change to report: ``tampered`` with a reason, or ``restored``."""

    state: str
    reason: str | None
    metrics: dict[str, float]


class TamperDetector:
    """Learns a reference view, then reports conditions that last ``hold_s`` seconds.

    Feed it frames with ``check(frame, now)`` as often as you like; it measures at most once
    per ``interval_s``. The reference follows slow scene changes (shadows, parked cars) while
    the view is healthy.
    """

    def __init__(self, cfg: TamperConfig) -> None:
        self._cfg = cfg
        self._samples: list[ViewFeatures] = []
        self._learn_started: float | None = None
        self.reference: ViewFeatures | None = None
        self._last_check = float("-inf")
        self._candidate: str | None = None
        self._candidate_since = 0.0
        self.state: str | None = None  # the reported tamper reason, None when healthy
        self.last_metrics: dict[str, float] = {}

    def due(self, now: float) -> bool:
        return now - self._last_check >= self._cfg.interval_s

    def check(self, frame: np.ndarray, now: float) -> TamperChange | None:
        if not self.due(now):
            return None
        self._last_check = now
        cur = view_features(frame)
        if self.reference is None:
            self._learn(cur, now)
            return None
        reason, metrics = classify(cur, self.reference, self._cfg)
        self.last_metrics = metrics
        if reason != self._candidate:
            self._candidate, self._candidate_since = reason, now
        if reason is None and self.state is None:
            self._adapt(cur)
        held = now - self._candidate_since >= self._cfg.hold_s
        if held and self._candidate != self.state:
            self.state = self._candidate
            if self.state is None:
                return TamperChange("restored", None, metrics)
            return TamperChange("tampered", self.state, metrics)
        return None

    def _learn(self, cur: ViewFeatures, now: float) -> None:
        if self._learn_started is None:
            self._learn_started = now
        self._samples.append(cur)
        if now - self._learn_started < self._cfg.learn_s and len(self._samples) < 100:
            return
        gmap = np.mean([s.gradient_map for s in self._samples], axis=0)
        gmap = (gmap - gmap.mean()) / max(float(gmap.std()), 1e-6)
        self.reference = ViewFeatures(
            std=float(np.median([s.std for s in self._samples])),
            edge_density=float(np.median([s.edge_density for s in self._samples])),
            sharpness=float(np.median([s.sharpness for s in self._samples])),
            gradient_map=gmap.astype(np.float32),
        )
        self._samples = []

    def _adapt(self, cur: ViewFeatures, alpha: float = 0.05) -> None:
        ref = self.reference
        assert ref is not None
        gmap = (1 - alpha) * ref.gradient_map + alpha * cur.gradient_map
        gmap = (gmap - gmap.mean()) / max(float(gmap.std()), 1e-6)
        self.reference = ViewFeatures(
            std=ref.std,
            edge_density=(1 - alpha) * ref.edge_density + alpha * cur.edge_density,
            sharpness=(1 - alpha) * ref.sharpness + alpha * cur.sharpness,
            gradient_map=gmap.astype(np.float32),
        )
