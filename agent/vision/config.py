"""Configuration models of the vision section: cameras, motion, tamper, detector, media.

``VisionConfig`` is the ``[vision]`` table of the agent's TOML; every field has a default
that works in the simulated profile, and unknown keys are errors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Section(BaseModel):
    """Same rule as ``agent.config.Section`` (unknown keys are errors), defined here because
    ``agent.config`` imports this module for its ``vision`` field."""

    model_config = ConfigDict(extra="forbid")


# What ``camera.tamper`` can report as its reason.
TAMPER_REASONS = ("covered", "blurred", "moved")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def synthetic_clip_path(state_dir: Path) -> Path:
    """Where the vision worker keeps the simulated cameras' clip (a file camera without a
    ``path``): ``<state_dir>/vision/synthetic.mp4``."""
    return state_dir / "vision" / "synthetic.mp4"


class CameraConfig(Section):
    """One camera: where its frames come from and what it watches over."""

    name: str = Field(description="Short name, lower-case letters, digits, '-' or '_'.")
    kind: Literal["usb", "rtsp", "file"] = "file"
    url: str | None = Field(None, description="rtsp://… for kind=rtsp")
    device: str | None = Field(None, description="/dev/videoN or index N for kind=usb")
    path: Path | None = Field(
        None, description="video file for kind=file; none = a synthetic clip made in state_dir"
    )
    loop: bool = Field(True, description="restart a video file at its end (simulated camera)")
    width: int | None = Field(None, ge=16, le=7680, description="requested USB capture width")
    height: int | None = Field(None, ge=16, le=4320, description="requested USB capture height")
    analysis_fps: float = Field(5.0, gt=0, le=30)
    detect: bool = True
    tamper: bool = True
    plates: bool = Field(
        False,
        description="read licence plates here: in vehicle boxes when the detector runs on this "
        "camera, else in [plates] roi (or the whole frame) whenever something moves",
    )
    covers_buttons: list[str] = Field(
        default_factory=list, description="panic buttons whose alarms get this camera's pictures"
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"camera name {v!r}: use 1-32 of a-z 0-9 _ - (starting a-z0-9)")
        return v

    @model_validator(mode="after")
    def _check_source(self) -> CameraConfig:
        if self.kind == "rtsp" and not (self.url and self.url.startswith(("rtsp://", "rtsps://"))):
            raise ValueError(f"camera {self.name!r}: kind rtsp needs url = 'rtsp://…'")
        if self.kind == "usb" and not self.device:
            raise ValueError(f"camera {self.name!r}: kind usb needs device = '/dev/videoN'")
        return self


class MotionConfig(Section):
    """Frigate-style motion gate; the detector only sees regions around motion."""

    frame_height: int = Field(100, ge=32, le=720)
    threshold: int = Field(30, ge=1, le=255)
    contour_area: int = Field(10, ge=1)
    frame_alpha: float = Field(0.01, gt=0, le=1)
    lightning_threshold: float = Field(0.8, gt=0, le=1)


class TamperConfig(Section):
    """Thresholds for covered, defocused and moved cameras. Ratios are against the reference."""

    interval_s: float = Field(1.0, gt=0, le=60, description="seconds between checks")
    hold_s: float = Field(5.0, ge=0, le=600, description="a condition must last this long")
    learn_s: float = Field(5.0, ge=0, le=600, description="reference built over this long")
    covered_edge_ratio: float = Field(0.15, gt=0, lt=1)
    covered_std: float = Field(8.0, ge=0, description="grey std-dev below this = uniform")
    blurred_sharpness_ratio: float = Field(0.35, gt=0, lt=1)
    moved_similarity: float = Field(0.35, gt=-1, lt=1, description="edge-map correlation floor")


class TrackerConfig(Section):
    iou: float = Field(0.3, gt=0, lt=1)
    timeout_s: float = Field(10.0, gt=0, description="a track unseen this long has ended")
    recheck_s: float = Field(2.0, gt=0, description="re-detect still objects this often")
    min_hits: int = Field(2, ge=1, le=30, description="detections before a track is reported")


class DetectorConfig(Section):
    enabled: bool = True
    model_dir: Path | None = Field(
        None, description="directory with manifest.json; default <state_dir>/models"
    )
    model: str = Field("coco-ssd-mobilenet-v1", description="model name in the manifest")
    threads: int = Field(2, ge=1, le=16)
    score_threshold: float = Field(0.5, gt=0, le=1)
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="per-label score thresholds, e.g. {person = 0.6}"
    )
    labels: list[str] = Field(
        default_factory=lambda: ["person", "bicycle", "car", "motorcycle", "bus", "truck"],
        description="labels that become tracks; empty = all",
    )
    nms_iou: float = Field(0.5, gt=0, lt=1)
    min_area: int = Field(400, ge=0, description="ignore objects smaller than this (px²)")
    max_regions: int = Field(4, ge=1, le=32)

    def model_folder(self, state_dir: Path) -> Path:
        """Where the model's files and manifest are: ``model_dir``, else
        ``<state_dir>/models``."""
        return self.model_dir or state_dir / "models"


class BufferConfig(Section):
    """The in-memory recording window per camera: pre-alarm pictures and clips come from it."""

    seconds: float = Field(30.0, ge=1, le=600)
    fps: float = Field(2.0, gt=0, le=30)
    width: int = Field(640, ge=64, le=3840, description="frames are scaled down to this width")
    jpeg_quality: int = Field(70, ge=10, le=100)


class AlarmPicturesConfig(Section):
    pre_s: float = Field(5.0, ge=0, le=600)
    post_s: float = Field(5.0, ge=0, le=600)
    pre_count: int = Field(3, ge=0, le=30)
    post_count: int = Field(2, ge=0, le=30)


class MediaConfig(Section):
    """The bounded local store of JPEG snapshots and clips."""

    dir: Path | None = Field(None, description="default <state_dir>/media")
    max_bytes: int = Field(512 * 1024 * 1024, ge=1024 * 1024)
    retention_s: float = Field(7 * 86400, gt=0)
    min_free_bytes: int = Field(256 * 1024 * 1024, ge=0, description="keep this much disk free")
    snapshot_width: int = Field(1280, ge=64, le=7680)
    jpeg_quality: int = Field(80, ge=10, le=100)


class ReconnectConfig(Section):
    backoff_min_s: float = Field(1.0, gt=0, le=60)
    backoff_max_s: float = Field(30.0, gt=0, le=3600)
    stall_s: float = Field(10.0, gt=0, le=600, description="no frame this long = offline")


class VisionConfig(Section):
    """The ``[vision]`` table."""

    enabled: bool = True
    worker_nice: int = Field(
        10, ge=0, le=19, description="CPU niceness of the worker: the alarm path always comes first"
    )
    cameras: list[CameraConfig] = Field(default_factory=list)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    tamper: TamperConfig = Field(default_factory=TamperConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    alarm_pictures: AlarmPicturesConfig = Field(default_factory=AlarmPicturesConfig)
    media: MediaConfig = Field(default_factory=MediaConfig)
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)

    @field_validator("cameras")
    @classmethod
    def _unique_names(cls, cams: list[CameraConfig]) -> list[CameraConfig]:
        seen: set[str] = set()
        for cam in cams:
            if cam.name in seen:
                raise ValueError(f"camera name {cam.name!r} used twice")
            seen.add(cam.name)
        return cams
