"""A tiny YOLO-format TFLite model whose answer is known, to test the YOLO decode path.

No YOLO model may be copied into the project, so the detector's ``yolo_raw`` path is tested
with this one: a real TFLite file, read by the real interpreter, with a raw output of shape
``[1, 4 + 2, 8]`` (centre-x, centre-y, width, height in input pixels, then two class scores,
for eight candidates; not six, since 4 + 2 = 6 would make the layout ambiguous). The scores
are computed from the picture:

- candidates 0 and 1 are two overlapping boxes on the left half, class 0 (``car``), scored
  by the mean brightness of the left half (candidate 1 at 0.9× that: NMS must drop it);
- candidates 2 and 3 are boxes on the right half, class 1 (``person``), scored by the mean
  brightness of the right half (3 at 0.5×, and apart from 2: NMS keeps both);
- candidates 4 to 7 score 0 everywhere.

So a picture with a white left half and a black right half yields one ``car`` on the left.

    .venv-train/bin/python -m training.yolo_toy tests/fixtures/models
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

SIZE = 64
# (cx, cy, w, h) in input pixels; class; share of the half's brightness
CANDIDATES = [
    ((16, 32, 24, 40), 0, 1.0),
    ((17, 33, 24, 40), 0, 0.9),
    ((44, 20, 16, 24), 1, 1.0),
    ((50, 48, 12, 16), 1, 0.5),
    ((32, 32, 8, 8), 0, 0.0),
    ((32, 32, 8, 8), 1, 0.0),
    ((8, 8, 4, 4), 0, 0.0),
    ((56, 56, 4, 4), 1, 0.0),
]


def build(out_dir: Path) -> Path:
    import numpy as np
    import tensorflow as tf

    boxes = np.array([c[0] for c in CANDIDATES], dtype=np.float32).T  # (4, N)
    left_w = np.zeros((2, len(CANDIDATES)), np.float32)  # (classes, N) weights of the halves
    right_w = np.zeros((2, len(CANDIDATES)), np.float32)
    for i, (_, cls, share) in enumerate(CANDIDATES):
        (left_w if cls == 0 else right_w)[cls, i] = share

    class Toy(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32)])
        def __call__(self, x: tf.Tensor) -> tf.Tensor:
            left = tf.reduce_mean(x[:, :, : SIZE // 2, :])
            right = tf.reduce_mean(x[:, :, SIZE // 2 :, :])
            scores = left * left_w + right * right_w  # (2, N); inputs are 0..1
            return tf.expand_dims(tf.concat([tf.constant(boxes), scores], axis=0), 0)

    toy = Toy()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [toy.__call__.get_concrete_function()], toy
    )
    data = converter.convert()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "yolo-toy.tflite"
    path.write_bytes(data)
    (out_dir / "yolo-toy.labels.txt").write_text("car\nperson\n")
    manifest = {
        "models": [
            {
                "name": "yolo-toy",
                "file": path.name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "input": {"width": SIZE, "height": SIZE, "dtype": "float32", "colour": "rgb",
                          "mean": 0.0, "std": 255.0},
                "outputs": "yolo_raw",
                "labels": "yolo-toy.labels.txt",
                "label_offset": 0,
                "licence": "Apache-2.0 (made by training/yolo_toy.py)",
            }
        ]
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return path


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/models")))
