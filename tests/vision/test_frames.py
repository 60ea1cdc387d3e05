"""Motion gating, tamper checks and the recording window on real and manipulated frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from agent.vision.config import BufferConfig, MotionConfig, TamperConfig
from agent.vision.motion import MotionDetector
from agent.vision.recording import RecordingWindow, frames_to_clip
from agent.vision.tamper import TamperDetector

from .conftest import shared_video


def video_frames(name: str, count: int, every: int = 1) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(shared_video(name)))
    frames: list[np.ndarray] = []
    i = 0
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        if i % every == 0:
            frames.append(frame)
        i += 1
    cap.release()
    return frames


def test_motion_static_scene_gives_no_boxes() -> None:
    frame = video_frames("street_640x352.mp4", 1)[0]
    motion = MotionDetector(MotionConfig())
    rng = np.random.default_rng(1)
    for _ in range(30):  # sensor noise only
        noisy = np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)
        assert motion.detect(noisy) == []


def test_motion_moving_traffic_gives_boxes_in_frame_coordinates() -> None:
    frames = video_frames("street_640x352.mp4", 40, every=5)
    motion = MotionDetector(MotionConfig())
    found = [motion.detect(f) for f in frames]
    assert sum(1 for b in found if b) >= len(frames) // 2
    for boxes in found:
        for x1, y1, x2, y2 in boxes:
            assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 352


def test_motion_recalibrates_on_global_light_change() -> None:
    frame = video_frames("street_640x352.mp4", 1)[0]
    motion = MotionDetector(MotionConfig())
    motion.detect(frame)
    inverted = 255 - frame  # the whole view changes at once: lightning, IR switch
    assert motion.detect(inverted) == []
    assert motion.recalibrations == 1
    assert motion.detect(inverted) == []


def _feed(t: TamperDetector, frame: np.ndarray, start: float, seconds: float):
    changes = []
    now = start
    while now < start + seconds:
        change = t.check(frame, now)
        if change is not None:
            changes.append(change)
        now += 1.0
    return changes, now


def _learned(frame: np.ndarray) -> tuple[TamperDetector, float]:
    t = TamperDetector(TamperConfig(interval_s=1, hold_s=3, learn_s=3))
    changes, now = _feed(t, frame, 0.0, 5)
    assert changes == [] and t.reference is not None
    return t, now


def _manipulated(frame: np.ndarray, how: str) -> np.ndarray:
    h, w = frame.shape[:2]
    rng = np.random.default_rng(2)
    if how == "covered":
        return np.clip(rng.normal(18, 2, frame.shape), 0, 255).astype(np.uint8)
    if how == "blurred":
        return cv2.GaussianBlur(frame, (0, 0), 6)
    if how == "moved":
        m = np.float32([[1, 0, w * 0.3], [0, 1, h * 0.15]])
        return cv2.warpAffine(frame, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    if how == "ir":  # IR cut filter off: grey, brighter, flatter
        g = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)
        return cv2.cvtColor(np.clip(g * 0.6 + 90, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    if how == "night":  # dusk: dark and noisy
        dark = frame.astype(np.float32) * 0.3 + rng.normal(0, 4, frame.shape)
        return np.clip(dark, 0, 255).astype(np.uint8)
    raise ValueError(how)


@pytest.mark.parametrize(
    "video", ["street_640x352.mp4", "tollbooth_720p.mp4", "highway_320x240.avi"]
)
@pytest.mark.parametrize("how", ["covered", "blurred", "moved"])
def test_tamper_fires_and_restores(video: str, how: str) -> None:
    frame = video_frames(video, 1)[0]
    t, now = _learned(frame)
    changes, now = _feed(t, _manipulated(frame, how), now, 6)
    assert [(c.state, c.reason) for c in changes] == [("tampered", how)]
    changes, _ = _feed(t, frame, now, 6)
    assert [c.state for c in changes] == ["restored"]


@pytest.mark.parametrize(
    "video", ["street_640x352.mp4", "tollbooth_720p.mp4", "highway_320x240.avi"]
)
@pytest.mark.parametrize("how", ["ir", "night"])
def test_tamper_ignores_day_night_and_ir_switch(video: str, how: str) -> None:
    frames = video_frames(video, 12, every=15)
    t, now = _learned(frames[0])
    for f in frames[1:]:  # traffic keeps moving through the switched view
        changes, now = _feed(t, _manipulated(f, how), now, 2)
        assert changes == [], t.last_metrics


def test_tamper_brief_occlusion_below_hold_time_is_ignored() -> None:
    frame = video_frames("street_640x352.mp4", 1)[0]
    t, now = _learned(frame)
    changes, now = _feed(t, _manipulated(frame, "covered"), now, 2)  # a bird, a truck
    changes2, _ = _feed(t, frame, now, 5)
    assert changes == [] and changes2 == []


def test_recording_window_is_bounded_and_makes_clips() -> None:
    frames = video_frames("street_640x352.mp4", 30, every=4)
    window = RecordingWindow(BufferConfig(seconds=5, fps=2, width=320))
    for i, f in enumerate(frames):
        window.offer(f, 1000.0 + i * 0.5)
    span = window.span()
    assert span is not None and span[1] - span[0] <= 5.0
    assert len(window) <= 11
    picked = window.pick(span[1] - 2, span[1], 3)
    assert len(picked) == 3 and picked[-1].ts == span[1]
    clip = frames_to_clip(window.between(*span), 2.0)
    assert clip[4:8] == b"ftyp"


@pytest.mark.parametrize(
    "video", ["street_640x352.mp4", "tollbooth_720p.mp4", "highway_320x240.avi"]
)
def test_no_false_tamper_over_whole_real_videos(video: str) -> None:
    cap = cv2.VideoCapture(str(shared_video(video)))
    fps = cap.get(cv2.CAP_PROP_FPS)
    t = TamperDetector(TamperConfig(hold_s=2))  # stricter than the default 5 s
    i = 0
    checked = 0
    while cap.grab():
        ts = i / fps
        i += 1
        if t.due(ts):
            ok, frame = cap.retrieve()
            assert ok
            assert t.check(frame, ts) is None, t.last_metrics
            checked += 1
    cap.release()
    assert checked >= 15 and t.reference is not None
