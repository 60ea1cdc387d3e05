"""Fixtures for the vision tests: shared videos and model, a recording sink, a model dir."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.events import Event, Priority, default_priority, utc_now_rfc3339, uuid7
from agent.vision.models import sha256_file

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
VIDEO_DIR = SHARED / "data" / "video"
MODEL_DIR = SHARED / "models"
SSD_MODEL = MODEL_DIR / "coco_ssd_mobilenet_v1_quant.tflite"
SSD_LABELS = MODEL_DIR / "coco_ssd_mobilenet_v1_quant.labels.txt"
MODEL_NAME = "coco-ssd-mobilenet-v1"


def shared_video(name: str) -> Path:
    path = VIDEO_DIR / name
    if not path.is_file():
        pytest.skip(f"{path} absent: ../shared/data/video is needed for this test")
    return path


class RecordingSink:
    """An ``EventSink`` that keeps what it is given, for assertions."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def emit(
        self,
        type: str,
        data: Mapping[str, Any] | None = None,
        *,
        priority: Priority | None = None,
    ) -> Event:
        with self._cond:
            ev = Event(
                id=uuid7(),
                device_id="test",
                type=type,
                seq=len(self.events) + 1,
                ts=utc_now_rfc3339(),
                priority=priority or default_priority(type),
                data=dict(data or {}),
            )
            self.events.append(ev)
            self._cond.notify_all()
            return ev

    def of(self, type_: str) -> list[Event]:
        with self._cond:
            return [e for e in self.events if e.type == type_]

    def wait_for(
        self,
        type_: str,
        pred: Callable[[Event], bool] = lambda e: True,
        timeout: float = 20.0,
        count: int = 1,
    ) -> list[Event]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self.events if e.type == type_ and pred(e)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [e.type for e in self.events]
                    raise AssertionError(f"no {count}× {type_} within {timeout}s; saw {seen}")
                self._cond.wait(left)


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


def write_manifest(model_dir: Path, *, sha256: str | None = None) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "models": [
            {
                "name": MODEL_NAME,
                "file": "detect.tflite",
                "sha256": sha256 or sha256_file(model_dir / "detect.tflite"),
                "input": {"width": 300, "height": 300, "dtype": "uint8"},
                "outputs": "ssd_postprocess",
                "labels": "labels.txt",
                "label_offset": 1,
                "licence": "Apache-2.0",
            }
        ]
    }
    (model_dir / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A models directory holding the shared COCO SSD model and its manifest."""
    return ssd_model_dir(tmp_path / "models")


def ssd_model_dir(d: Path) -> Path:
    """``d``, made to hold the shared COCO SSD model and its manifest (the test skips where
    ../shared/models is absent)."""
    if not SSD_MODEL.is_file():
        pytest.skip(f"{SSD_MODEL} absent: ../shared/models is needed for real inference")
    d.mkdir(parents=True)
    shutil.copyfile(SSD_MODEL, d / "detect.tflite")
    shutil.copyfile(SSD_LABELS, d / "labels.txt")
    write_manifest(d)
    return d


def write_video(path: Path, frames: list[np.ndarray], fps: int) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return path


@pytest.fixture
def static_video(tmp_path: Path) -> Path:
    cap = cv2.VideoCapture(str(shared_video("street_640x352.mp4")))
    ok, frame = cap.read()
    cap.release()
    assert ok
    return write_video(tmp_path / "static.mp4", [frame] * 20, fps=10)


@pytest.fixture
def street_clip(tmp_path: Path) -> Path:
    """Ten seconds of the street video at 10 fps: short, keeps the test fast."""
    cap = cv2.VideoCapture(str(shared_video("street_640x352.mp4")))
    frames = []
    i = 0
    while len(frames) < 100:
        ok, frame = cap.read()
        if not ok:
            break
        if i % 2 == 0:
            frames.append(frame)
        i += 1
    cap.release()
    return write_video(tmp_path / "street10.mp4", frames, fps=10)
