"""The plate finder's training scenes (Pillow and OpenCV, run in the project's suite), and a
short training run exported and read through the agent's runtime seam (where TensorFlow,
the training extra, is installed)::

    .venv-train/bin/python -m pytest -q tests/plates/test_finder_training.py
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

pytest.importorskip("PIL", reason="the renderer needs Pillow (training extra)")

from agent.plates.finder import FIND_STRIDE
from training import finder

SHARED = Path(__file__).resolve().parents[3] / "shared"
needs_videos = pytest.mark.skipif(
    not (SHARED / "data" / "video").is_dir(), reason="../shared/data/video is absent"
)


def test_a_scene_and_its_target_line_up() -> None:
    rng = random.Random(5)
    with_plates = 0
    for _ in range(40):
        img, target = finder.scene(rng, [])
        assert img.shape == (finder.PATCH, finder.PATCH) and img.dtype == np.uint8
        assert target.shape == (finder.PATCH // FIND_STRIDE,) * 2
        share = float((target > 127).mean())
        assert share < 0.6  # two plates at most, each at most 230 px wide
        with_plates += share > 0
    # a fifth of the scenes hold no plate (negatives); most hold one or two
    assert 20 <= with_plates < 40


def test_scenes_are_drawn_from_the_seed() -> None:
    a = finder.scene(random.Random(9), [])
    b = finder.scene(random.Random(9), [])
    c = finder.scene(random.Random(10), [])
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_a_pasted_plate_is_marked_where_it_was_drawn() -> None:
    rng = random.Random(3)
    img = np.full((finder.PATCH, finder.PATCH), 128, np.uint8)
    mask = np.zeros_like(img)
    finder._paste_plate(rng, img, mask)
    inside = mask > 127
    assert inside.any()
    # the plate changed the picture where it is marked; beyond the mark only its frame
    # (where it has one) did, around it
    changed = img != 128
    assert changed[inside].mean() > 0.5
    ys, xs = np.nonzero(inside)
    cy, cx = np.nonzero(changed)
    assert cy.min() <= ys.min() and cy.max() >= ys.max()
    assert cx.min() <= xs.min() and cx.max() >= xs.max()


def test_no_videos_means_synthetic_backdrops() -> None:
    assert finder.video_frames(None) == []
    assert finder.video_frames(Path("/nonexistent")) == []


@needs_videos
def test_the_traffic_videos_give_gray_backgrounds() -> None:
    frames = finder.video_frames(SHARED, every=50)
    assert len(frames) > 10
    assert all(f.ndim == 2 and min(f.shape) >= 200 for f in frames)


def test_a_short_run_exports_a_model_the_agent_reads(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason="the trainer needs TensorFlow (training extra)")
    argv = ["--samples", "32", "--val-samples", "8", "--steps", "10", "--batch", "4"]
    argv += ["--workers", "1", "--out", str(tmp_path), "--name", "f", "--shared", ""]
    assert finder.main(argv) == 0
    (entry,) = json.loads((tmp_path / "manifest.json").read_text())["models"]
    assert entry["name"] == "f" and entry["task"] == "plate-find"
    assert entry["command"].startswith("python -m training.finder --samples 32")
    import tensorflow as tf

    # any input size (a multiple of 8, as ``PlateFinder`` pads it), one map cell per 4 px
    interp = tf.lite.Interpreter(model_path=str(tmp_path / entry["file"]))
    inp = interp.get_input_details()[0]
    assert inp["dtype"] == np.uint8
    for h, w in ((96, 160), (104, 336)):
        interp.resize_tensor_input(inp["index"], [1, h, w, 1])
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], np.full((1, h, w, 1), 100, np.uint8))
        interp.invoke()
        out = interp.get_tensor(interp.get_output_details()[0]["index"])
        assert out.shape == (1, h // FIND_STRIDE, w // FIND_STRIDE, 1)
        assert np.all((out >= 0) & (out <= 1))
