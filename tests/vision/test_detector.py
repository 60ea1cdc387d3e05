"""Real TFLite inference through the runtime seam, and the model manifest checks."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.errors import DriverFault
from agent.vision.config import DetectorConfig
from agent.vision.detector import Detector
from agent.vision.models import verify_model
from agent.vision.runtime import load_interpreter, runtime_name

from .conftest import MODEL_NAME, shared_video, write_manifest


def frames_of(path: Path, every: int, limit: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    i = 0
    while len(out) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        if i % every == 0:
            out.append(frame)
        i += 1
    cap.release()
    return out


def test_runtime_seam_loads_the_model(model_dir: Path) -> None:
    interp = load_interpreter(model_dir / "detect.tflite", threads=2)
    assert runtime_name() in ("ai_edge_litert", "tflite_runtime")
    assert [int(v) for v in interp.get_input_details()[0]["shape"]] == [1, 300, 300, 3]
    assert len(interp.get_output_details()) == 4


def test_runtime_seam_rejects_missing_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(DriverFault, match="not found"):
        load_interpreter(tmp_path / "nope.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(DriverFault, match="could not be loaded"):
        load_interpreter(bad)


@pytest.mark.parametrize(
    ("video", "every"), [("street_640x352.mp4", 24), ("tollbooth_720p.mp4", 60)]
)
def test_coco_ssd_finds_cars(model_dir: Path, video: str, every: int) -> None:
    detector = Detector(verify_model(model_dir, MODEL_NAME), DetectorConfig(threads=2))
    frames = frames_of(shared_video(video), every, 6)
    with_car = 0
    for frame in frames:
        h, w = frame.shape[:2]
        dets = detector.detect(frame, [(0, 0, w, h)])
        assert all(d.score >= 0.5 for d in dets)
        assert all(0 <= d.box[0] < d.box[2] <= w and 0 <= d.box[1] < d.box[3] <= h for d in dets)
        with_car += any(d.label == "car" for d in dets)
    assert with_car >= len(frames) - 1, f"cars found in {with_car}/{len(frames)} frames"
    assert detector.stats()["inferences"] == len(frames)


def test_per_label_thresholds_and_label_filter(model_dir: Path) -> None:
    frame = frames_of(shared_video("street_640x352.mp4"), 1, 1)[0]
    region = [(0, 0, frame.shape[1], frame.shape[0])]
    strict = Detector(verify_model(model_dir, MODEL_NAME), DetectorConfig(thresholds={"car": 0.99}))
    assert not [d for d in strict.detect(frame, region) if d.label == "car"]
    people_only = Detector(verify_model(model_dir, MODEL_NAME), DetectorConfig(labels=["person"]))
    assert all(d.label == "person" for d in people_only.detect(frame, region))


def test_manifest_missing_model_and_corrupt(model_dir: Path) -> None:
    assert verify_model(model_dir, MODEL_NAME).labels[3] == "car"
    with pytest.raises(DriverFault, match="not in"):
        verify_model(model_dir, "yolo")
    write_manifest(model_dir, sha256="0" * 64)
    with pytest.raises(DriverFault, match="corrupt"):
        verify_model(model_dir, MODEL_NAME)
    write_manifest(model_dir)
    (model_dir / "detect.tflite").unlink()
    with pytest.raises(DriverFault, match="missing"):
        verify_model(model_dir, MODEL_NAME)
    (model_dir / "manifest.json").unlink()
    with pytest.raises(DriverFault, match=r"manifest .* not found"):
        verify_model(model_dir, MODEL_NAME)


def test_manifest_schema_errors_are_faults(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"models": [{"name": "x"}]}))
    with pytest.raises(DriverFault, match="invalid"):
        verify_model(tmp_path, "x")


def test_runtime_seam_falls_back_to_tflite_runtime(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    from ai_edge_litert.interpreter import Interpreter as LiteRt

    fallback = types.ModuleType("tflite_runtime.interpreter")
    fallback.Interpreter = LiteRt  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", types.ModuleType("tflite_runtime"))
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fallback)
    assert runtime_name() == "tflite_runtime"
    assert len(load_interpreter(model_dir / "detect.tflite").get_output_details()) == 4
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with pytest.raises(DriverFault, match="no TFLite runtime"):
        load_interpreter(model_dir / "detect.tflite")


TOY_MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def test_yolo_raw_model_through_the_real_interpreter() -> None:
    """training/yolo_toy.py's model: a white left half is one car there, nothing else."""
    import numpy as np

    det = Detector(verify_model(TOY_MODELS, "yolo-toy"),
                   DetectorConfig(model="yolo-toy", min_area=0))  # fmt: skip
    frame = np.zeros((128, 256, 3), np.uint8)
    frame[:, :128] = 255  # the model's left half, in a region spanning the whole frame
    found = det.detect(frame, [(0, 0, 256, 128)])
    assert [(d.label, round(d.score, 2)) for d in found] == [("car", 1.0)]  # twin box NMSed
    # Candidate 0 is centred at (16, 32) of 64×64 and 24×40: scaled to the 256×128 region.
    assert found[0].box == (16, 24, 112, 104)

    frame[:] = 0
    frame[:, 128:] = 204  # right half at 0.8: two separate people, one under the threshold
    people = det.detect(frame, [(0, 0, 256, 128)])
    assert [(d.label, round(d.score, 2)) for d in people] == [("person", 0.8)]
    low = Detector(verify_model(TOY_MODELS, "yolo-toy"),
                   DetectorConfig(model="yolo-toy", min_area=0, score_threshold=0.3))  # fmt: skip
    assert sorted(round(d.score, 2) for d in low.detect(frame, [(0, 0, 256, 128)])) == [0.4, 0.8]
    assert det.stats()["inferences"] == 2
