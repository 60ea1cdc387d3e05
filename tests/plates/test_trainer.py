"""The trainer end to end on a few steps: where TensorFlow (the training extra) is installed.

The project's own suite runs without it (``.venv``); run these with the training venv::

    .venv-train/bin/python -m pytest -q tests/plates/test_trainer.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL", reason="the renderer needs Pillow (training extra)")
pytest.importorskip("tensorflow", reason="the trainer needs TensorFlow (training extra)")

from training import plates


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_a_short_run_exports_float32_and_int8_models(tmp_path: Path, precision: str) -> None:
    import tensorflow as tf

    argv = ["--samples", "64", "--val-samples", "16", "--steps", "2", "--batch", "8"]
    argv += ["--cn-share", "0", "--workers", "1", "--out", str(tmp_path), "--name", "t"]
    argv += ["--precision", precision]
    assert plates.main(argv) == 0
    written = json.loads((tmp_path / "manifest.json").read_text())["models"]
    manifest = {m["name"]: m for m in written}
    assert set(manifest) == {"t", "t-int8"}
    assert manifest["t"]["command"].endswith(f"--precision {precision}")
    # the int8 model's output is quantised in steps of 1/256: up to 75 half-steps off
    for name, in_dtype, tol in (("t", np.float32, 0.01), ("t-int8", np.uint8, 0.15)):
        interp = tf.lite.Interpreter(model_path=str(tmp_path / manifest[name]["file"]))
        interp.allocate_tensors()
        # trained in bfloat16 or not, no bfloat16 tensor reaches the device's model
        kinds = {d["dtype"] for d in interp.get_tensor_details()}
        assert tf.bfloat16.as_numpy_dtype not in kinds, kinds
        inp = interp.get_input_details()[0]
        assert inp["dtype"] == in_dtype
        x = np.random.default_rng(0).integers(0, 256, inp["shape"]).astype(in_dtype)
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        probs = interp.get_tensor(interp.get_output_details()[0]["index"])
        assert probs.shape == (1, plates.T_STEPS, plates.NUM_CLASSES)
        assert np.allclose(probs.sum(-1), 1.0, atol=tol)  # a distribution at every step


def test_bfloat16_keeps_the_output_and_the_weights_in_float32() -> None:
    plates.set_precision("bfloat16")
    try:
        model = plates.build_model(0.25, 1)
        assert model.output.dtype == "float32"
        assert all(w.dtype == "float32" for w in model.weights)
        conv = next(layer for layer in model.layers if "conv" in layer.name)
        assert conv.compute_dtype == "bfloat16"
    finally:
        plates.set_precision("float32")
    assert plates.build_model(0.25, 1).layers[2].compute_dtype == "float32"
