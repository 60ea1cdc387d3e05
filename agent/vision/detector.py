"""Object detector: runs a verified TFLite model on frame regions and decodes its outputs.

Two output styles: SSD with the TFLite detection post-process (boxes, classes, scores,
count) and YOLO-style raw outputs (``[1, 4 + classes, N]``) that need score filtering and
NMS here. The decoders are pure functions over arrays.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from agent.errors import DriverFault
from agent.vision.config import DetectorConfig
from agent.vision.geometry import Box, inside_share, nms
from agent.vision.models import VerifiedModel
from agent.vision.runtime import Interpreter, load_interpreter
from agent.vision.tracker import Detection, kind_of

# (class index, score, x1, y1, x2, y2) with coordinates normalised to the model input
RawDetection = tuple[int, float, float, float, float, float]


def decode_ssd(
    boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray, count: np.ndarray | float
) -> list[RawDetection]:
    """Decode the 4 outputs of ``TFLite_Detection_PostProcess`` (boxes are ymin, xmin, ymax,
    xmax, normalised)."""
    n = int(np.asarray(count).reshape(-1)[0]) if np.asarray(count).size else 0
    b = np.asarray(boxes).reshape(-1, 4)
    c = np.asarray(classes).reshape(-1)
    s = np.asarray(scores).reshape(-1)
    n = min(n, len(b), len(c), len(s))
    return [
        (int(c[i]), float(s[i]), float(b[i, 1]), float(b[i, 0]), float(b[i, 3]), float(b[i, 2]))
        for i in range(n)
    ]


def decode_yolo(
    output: np.ndarray,
    *,
    input_size: tuple[int, int],
    min_score: float,
    iou_threshold: float,
    num_classes: int | None = None,
    max_detections: int = 100,
) -> list[RawDetection]:
    """Decode a raw YOLO (v5u/v8 style, no objectness) output of shape ``[1, 4 + C, N]`` or
    ``[1, N, 4 + C]`` with centre-x, centre-y, width, height boxes, then class-wise NMS.

    Boxes in input pixels or already normalised are both accepted. Without ``num_classes``
    the longer axis is taken as the candidates' axis (8400 vs 84 for YOLOv8 at 640).
    """
    out = np.asarray(output, dtype=np.float32)
    out = out.reshape(out.shape[-2], out.shape[-1])
    if num_classes is not None:
        if out.shape[0] == 4 + num_classes and out.shape[1] != 4 + num_classes:
            out = out.T  # → (N, 4 + C)
    elif out.shape[0] < out.shape[1]:
        out = out.T
    boxes, class_scores = out[:, :4], out[:, 4:]
    cls = class_scores.argmax(axis=1)
    score = class_scores[np.arange(len(cls)), cls]
    keep = score >= min_score
    boxes, cls, score = boxes[keep], cls[keep], score[keep]
    if len(boxes) == 0:
        return []
    w, h = input_size
    if float(np.abs(boxes).max()) > 2.0:  # pixels, not normalised
        boxes = boxes / np.array([w, h, w, h], dtype=np.float32)
    xyxy = np.stack(
        [
            boxes[:, 0] - boxes[:, 2] / 2,
            boxes[:, 1] - boxes[:, 3] / 2,
            boxes[:, 0] + boxes[:, 2] / 2,
            boxes[:, 1] + boxes[:, 3] / 2,
        ],
        axis=1,
    ).clip(0.0, 1.0)
    result: list[RawDetection] = []
    for c in np.unique(cls):
        idx = np.flatnonzero(cls == c)
        for k in nms(xyxy[idx], score[idx], iou_threshold):
            i = idx[k]
            x1, y1, x2, y2 = (float(v) for v in xyxy[i])
            result.append((int(c), float(score[i]), x1, y1, x2, y2))
    result.sort(key=lambda d: -d[1])
    return result[:max_detections]


def dequantize(tensor: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    quant = detail.get("quantization") or (0.0, 0)
    scale, zero = float(quant[0]), float(quant[1])
    if tensor.dtype in (np.int8, np.uint8) and scale:
        return (tensor.astype(np.float32) - zero) * scale
    return tensor.astype(np.float32)


class Detector:
    """One loaded model, shared by every camera of the worker (calls are serialised)."""

    def __init__(self, model: VerifiedModel, cfg: DetectorConfig) -> None:
        self.model = model
        self._cfg = cfg
        self._lock = threading.Lock()
        self.interpreter: Interpreter = load_interpreter(model.path, cfg.threads)
        inp = self.interpreter.get_input_details()[0]
        self._input = inp
        shape = tuple(int(v) for v in inp["shape"])
        spec = model.entry.input
        if shape[1:3] != (spec.height, spec.width):
            raise DriverFault(
                f"model {model.entry.name!r}: input is {shape}, manifest says "
                f"{spec.height}×{spec.width}"
            )
        self._outputs = self.interpreter.get_output_details()
        if model.entry.outputs == "ssd_postprocess" and len(self._outputs) != 4:
            raise DriverFault(
                f"model {model.entry.name!r}: ssd_postprocess needs 4 outputs, has "
                f"{len(self._outputs)}"
            )
        self.inferences = 0
        self.total_ms = 0.0
        self.last_ms = 0.0

    @property
    def input_size(self) -> tuple[int, int]:
        spec = self.model.entry.input
        return spec.width, spec.height

    def label(self, class_index: int) -> str:
        i = class_index + self.model.entry.label_offset
        labels = self.model.labels
        return labels[i] if 0 <= i < len(labels) else f"class{class_index}"

    def threshold(self, label: str) -> float:
        return self._cfg.thresholds.get(label, self._cfg.score_threshold)

    def _tensor(self, crop_bgr: np.ndarray) -> np.ndarray:
        spec = self.model.entry.input
        img = cv2.resize(crop_bgr, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
        if spec.colour == "rgb":
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        dtype = self._input["dtype"]
        if dtype == np.uint8:
            data = img
        else:
            norm = (img.astype(np.float32) - spec.mean) / spec.std
            quant = self._input.get("quantization", (0.0, 0))
            scale, zero = float(quant[0]), int(quant[1])
            if dtype == np.int8 and scale:
                data = np.clip(np.round(norm / scale + zero), -128, 127).astype(np.int8)
            else:
                data = norm.astype(dtype)
        return np.expand_dims(data, 0)

    def infer(self, crop_bgr: np.ndarray) -> list[RawDetection]:
        """Run the model on one image; detections normalised to that image."""
        tensor = self._tensor(crop_bgr)
        with self._lock:
            t0 = time.perf_counter()
            self.interpreter.set_tensor(self._input["index"], tensor)
            self.interpreter.invoke()
            outs = [self.interpreter.get_tensor(o["index"]) for o in self._outputs]
            ms = (time.perf_counter() - t0) * 1000
        self.inferences += 1
        self.total_ms += ms
        self.last_ms = ms
        if self.model.entry.outputs == "ssd_postprocess":
            return decode_ssd(*outs[:4])
        raw = dequantize(outs[0], self._outputs[0])
        return decode_yolo(
            raw,
            input_size=self.input_size,
            min_score=min([self._cfg.score_threshold, *self._cfg.thresholds.values()]),
            iou_threshold=self._cfg.nms_iou,
            num_classes=len(self.model.labels) - self.model.entry.label_offset,
        )

    def detect(self, frame: np.ndarray, regions: Sequence[Box]) -> list[Detection]:
        """Detect in each region of ``frame``; boxes come back in frame pixels, merged by NMS."""
        wanted = set(self._cfg.labels)
        found: list[Detection] = []
        for rx1, ry1, rx2, ry2 in regions:
            crop = frame[ry1:ry2, rx1:rx2]
            if crop.size == 0:
                continue
            rw, rh = rx2 - rx1, ry2 - ry1
            for cls, score, x1, y1, x2, y2 in self.infer(crop):
                label = self.label(cls)
                if (wanted and label not in wanted) or score < self.threshold(label):
                    continue
                box = (
                    rx1 + int(x1 * rw),
                    ry1 + int(y1 * rh),
                    rx1 + int(x2 * rw),
                    ry1 + int(y2 * rh),
                )
                if (box[2] - box[0]) * (box[3] - box[1]) < self._cfg.min_area:
                    continue
                found.append(Detection(label, score, box))
        return merge_detections(found, self._cfg.nms_iou)

    def stats(self) -> dict[str, object]:
        avg = self.total_ms / self.inferences if self.inferences else 0.0
        return {
            "model": self.model.entry.name,
            "inferences": self.inferences,
            "avg_ms": round(avg, 2),
            "last_ms": round(self.last_ms, 2),
        }


def merge_detections(
    dets: list[Detection], iou_threshold: float, contained: float = 0.8
) -> list[Detection]:
    """NMS per kind across overlapping regions, so one object found twice counts once.

    A box lying mostly (``contained`` of its area) inside a better box of the same label is
    dropped too: a region's edge often cuts an object, and the partial box barely overlaps
    the whole one by IoU.
    """
    out: list[Detection] = []
    for kind in {kind_of(d.label) for d in dets}:
        group = [d for d in dets if kind_of(d.label) == kind]
        boxes = np.array([d.box for d in group], dtype=np.float32)
        scores = np.array([d.score for d in group], dtype=np.float32)
        kept: list[Detection] = []
        for i in nms(boxes, scores, iou_threshold):
            d = group[i]
            if not any(inside_share(d.box, k.box) >= contained for k in kept):
                kept.append(d)
        out.extend(kept)
    return out
