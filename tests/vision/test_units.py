"""Pure parts of the vision pipeline: geometry, decoders, tracker, config validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from agent.config import Settings
from agent.vision.config import CameraConfig, TrackerConfig, VisionConfig
from agent.vision.detector import decode_ssd, decode_yolo, merge_detections
from agent.vision.geometry import detection_regions, iou, nms, square_region
from agent.vision.tracker import Detection, IouTracker


def test_iou_and_nms() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([0.6, 0.9, 0.5], dtype=np.float32)
    assert nms(boxes, scores, 0.5) == [1, 2]


def test_square_region_is_model_sized_and_inside_frame() -> None:
    r = square_region(1280, 720, (1200, 700, 1270, 715), min_side=300, multiplier=2)
    assert r[2] - r[0] == r[3] - r[1] == 300
    assert r[0] >= 0 and r[1] >= 0 and r[2] <= 1280 and r[3] <= 720
    big = square_region(1280, 720, (0, 0, 600, 500), min_side=300, multiplier=2)
    assert big == (0, 0, 720, 720)  # capped at the frame's short side


def test_detection_regions_merge_contained_and_cap_count() -> None:
    boxes = [(100, 100, 140, 140), (110, 110, 120, 120)]
    assert len(detection_regions(1280, 720, boxes, min_side=300, max_regions=4)) == 1
    many = [(x, 10, x + 20, 30) for x in range(0, 1280, 320)] + [(10, 600, 30, 620)]
    regions = detection_regions(1280, 720, many, min_side=300, max_regions=3)
    assert len(regions) == 3
    # every motion box is still looked at
    for b in many:
        assert any(r[0] <= b[0] and r[1] <= b[1] and r[2] >= b[2] and r[3] >= b[3] for r in regions)


def test_decode_ssd() -> None:
    boxes = np.array([[[0.1, 0.2, 0.5, 0.6], [0, 0, 0, 0]]], dtype=np.float32)
    classes = np.array([[2.0, 0.0]], dtype=np.float32)
    scores = np.array([[0.8, 0.1]], dtype=np.float32)
    out = decode_ssd(boxes, classes, scores, np.array([1.0]))
    assert len(out) == 1
    assert out[0][0] == 2
    assert out[0][1:] == pytest.approx((0.8, 0.2, 0.1, 0.6, 0.5))


def test_decode_yolo_raw_with_nms() -> None:
    n, classes = 6, 3
    out = np.zeros((1, 4 + classes, n), dtype=np.float32)
    # two overlapping class-1 boxes (pixels of a 320 input) and one class-2 box
    out[0, :4, 0] = [160, 160, 100, 80]
    out[0, 4 + 1, 0] = 0.9
    out[0, :4, 1] = [165, 160, 100, 80]
    out[0, 4 + 1, 1] = 0.7
    out[0, :4, 2] = [40, 40, 20, 20]
    out[0, 4 + 2, 2] = 0.6
    out[0, 4 + 0, 3] = 0.1  # below threshold
    dets = decode_yolo(
        out, input_size=(320, 320), min_score=0.25, iou_threshold=0.5, num_classes=classes
    )
    assert [(d[0], round(d[1], 2)) for d in dets] == [(1, 0.9), (2, 0.6)]
    _cls, _score, x1, y1, x2, y2 = dets[0]
    assert (x1, y1, x2, y2) == pytest.approx((110 / 320, 120 / 320, 210 / 320, 200 / 320))
    # [1, N, 4 + C] layout decodes the same
    again = decode_yolo(
        out.transpose(0, 2, 1),
        input_size=(320, 320),
        min_score=0.25,
        iou_threshold=0.5,
        num_classes=classes,
    )
    assert [d[:2] for d in again] == [d[:2] for d in dets]


def test_merge_detections_across_regions() -> None:
    a = Detection("car", 0.8, (100, 100, 200, 200))
    b = Detection("car", 0.7, (102, 101, 201, 203))
    c = Detection("person", 0.7, (102, 101, 201, 203))
    merged = merge_detections([a, b, c], 0.5)
    assert sorted((d.label, d.score) for d in merged) == [("car", 0.8), ("person", 0.7)]


def test_car_standing_at_barrier_is_one_track() -> None:
    tracker = IouTracker(TrackerConfig(timeout_s=10, min_hits=2))
    new_total, ended_total = [], []
    t = 0.0
    for i in range(100):  # 50 s at 2 fps, small jitter
        t = i * 0.5
        box = (400 + i % 3, 300, 600 + i % 3, 420)
        new, ended = tracker.update([Detection("car", 0.7 + (i % 5) / 100, box)], t)
        new_total += new
        ended_total += ended
    assert len(new_total) == 1 and not ended_total
    ended = tracker.expire(t + 11)
    assert len(ended) == 1
    assert ended[0].duration_s == pytest.approx(49.5)
    assert ended[0].top_score == pytest.approx(0.74)


def test_single_false_positive_is_not_reported() -> None:
    tracker = IouTracker(TrackerConfig(min_hits=2, timeout_s=1))
    new, _ = tracker.update([Detection("person", 0.6, (0, 0, 30, 60))], 0.0)
    assert new == []
    assert tracker.expire(5.0) == []  # never reported, so no end event either


def test_fast_small_object_keeps_its_track() -> None:
    tracker = IouTracker(TrackerConfig(min_hits=2))
    seen = []
    for i in range(5):  # moves 25 px per frame, box 30 px: IoU < 0.3 between frames
        new, _ = tracker.update([Detection("car", 0.6, (i * 25, 0, i * 25 + 30, 20))], i * 0.2)
        seen += new
    assert len(seen) == 1 and len(tracker.tracks) == 1


def test_camera_config_errors_name_the_problem() -> None:
    with pytest.raises(ValidationError, match="needs url"):
        CameraConfig(name="gate", kind="rtsp")
    with pytest.raises(ValidationError, match="camera name"):
        CameraConfig(name="Gate 1")
    with pytest.raises(ValidationError, match="used twice"):
        VisionConfig(cameras=[CameraConfig(name="a"), CameraConfig(name="a")])
    with pytest.raises(ValidationError, match="extra"):
        VisionConfig.model_validate({"cameras": [{"name": "a", "fps": 3}]})


def test_settings_has_vision_with_working_defaults() -> None:
    s = Settings(vision={"cameras": [{"name": "sim"}]})
    cam = s.vision.cameras[0]
    assert cam.kind == "file" and cam.path is None  # synthetic clip in the simulated profile
    assert s.vision.detector.threads >= 1


def test_config_file_errors_name_the_camera_key(tmp_path: Path) -> None:
    from agent.config import load_settings
    from agent.errors import ConfigError

    toml = tmp_path / "outpost.toml"
    toml.write_text(
        '[[vision.cameras]]\nname = "gate"\n\n'
        '[[vision.cameras]]\nname = "lane"\nkind = "rtsp"\nanalysis_fps = 50\n'
    )
    with pytest.raises(ConfigError) as err:
        load_settings(toml)
    text = str(err.value)
    assert "vision.cameras[1].analysis_fps" in text


def test_label_flips_and_partial_boxes_stay_one_track() -> None:
    tracker = IouTracker(TrackerConfig(min_hits=2))
    new_all = []
    for i, (label, score) in enumerate([("car", 0.6), ("truck", 0.55), ("car", 0.7), ("bus", 0.5)]):
        dets = [Detection(label, score, (400, 300, 700, 500))]
        if i == 2:  # a region's edge also cut the same van in half
            dets.append(Detection("car", 0.52, (400, 300, 550, 500)))
        new, _ = tracker.update(dets, i * 0.2)
        new_all += new
    assert len(new_all) == 1 and len(tracker.tracks) == 1
    assert next(iter(tracker.tracks.values())).label == "car"  # most score over its life
    # a person is a different kind of object, even on top of the van
    tracker.update([Detection("person", 0.6, (450, 320, 500, 450))], 1.0)
    assert len(tracker.tracks) == 2
