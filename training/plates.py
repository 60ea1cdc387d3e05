"""Train Outpost's plate OCR model (CTC, Chinese + Latin) on synthetic plates; export TFLite.

One command, reproducible from the seed::

    .venv-train/bin/python -m training.plates --seed 1 --out models/

Heavy dependencies (tensorflow-cpu, Pillow) are for training only; the agent reads the
exported .tflite files through agent/vision/runtime.py (the one TFLite seam).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing as mp
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from agent.plates.formats import ALPHABET
from agent.plates.preprocess import OCR_HEIGHT, OCR_WIDTH, ocr_input
from training.cli import add_worker_options, trainer_parser

log = logging.getLogger("training.plates")
MAX_LABEL = 10
T_STEPS = OCR_WIDTH // 4
NUM_CLASSES = len(ALPHABET) + 1  # class 0 = CTC blank
CHAR_INDEX = {c: i + 1 for i, c in enumerate(ALPHABET)}


def _render_chunk(
    job: tuple[int, int, int, dict[str, float]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from training.render import sample

    seed, chunk, n, mix = job
    rng = random.Random(seed * 1_000_003 + chunk)
    xs = np.zeros((n, OCR_HEIGHT, OCR_WIDTH), np.uint8)
    ys = np.zeros((n, MAX_LABEL), np.int32)
    lens = np.zeros((n,), np.int32)
    for i in range(n):
        img, text, two_row = sample(rng, **mix)
        xs[i] = ocr_input(img, two_row=two_row)
        ids = [CHAR_INDEX[c] for c in text][:MAX_LABEL]
        ys[i, : len(ids)] = ids
        lens[i] = len(ids)
    return xs, ys, lens


def render_dataset(
    seed: int, n: int, workers: int, chunk: int = 1000, **mix: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` samples in chunks of ``chunk``, each chunk drawn from its own seed on one of
    ``workers`` processes. ``mix``: ``render.sample``'s options (``cn_share``,
    ``edge_cut``, ``california``, ``shear``, ``level_cut``)."""
    jobs = [(seed, c, min(chunk, n - c * chunk), mix) for c in range((n + chunk - 1) // chunk)]
    with mp.get_context("fork").Pool(workers) as pool:
        parts = pool.map(_render_chunk, jobs)
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


CONTEXT_DILATIONS = (2, 4, 8)
"""Dilations of the optional residual blocks over the time axis (``--context``)."""


def build_model(width: float = 1.0, context: int = 0, lean: bool = False):  # type: ignore[no-untyped-def]
    """The CTC model. ``context``: that many more residual blocks over the 32 time steps,
    dilated 2, 4, 8: each step then sees 106 (2 blocks) or 170 (3) of the 128 input
    columns instead of 58, so where the plate ends and what is beside it can tell a frame
    edge or a logo from a character.

    ``lean``: the two full-resolution blocks take a bias instead of batch normalisation
    (whose statistics over 32×128 and 16×64 maps cost more than those convolutions), and
    the 4×32 stage has one 128-channel block instead of two. A training step takes about
    two thirds of the time (``bench/training_speed.py``)."""
    import tensorflow as tf
    from tensorflow import keras
    from tensorflow.keras import layers

    def c(n: int) -> int:
        return int(n * width)

    def block(x, n, k=(3, 3), norm=True):  # type: ignore[no-untyped-def]
        x = layers.Conv2D(n, k, padding="same", use_bias=not norm)(x)
        if norm:
            x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    inp = keras.Input((OCR_HEIGHT, OCR_WIDTH, 1), name="image")
    x = layers.Rescaling(1 / 255.0)(inp)
    x = block(x, c(16), norm=not lean)
    x = layers.MaxPooling2D(2)(x)  # 16×64
    x = block(x, c(32), norm=not lean)
    x = layers.MaxPooling2D(2)(x)  # 8×32
    x = block(x, c(64))
    x = block(x, c(64))
    x = layers.MaxPooling2D((2, 1))(x)  # 4×32
    for _ in range(1 if lean else 2):
        x = block(x, c(128))
    x = layers.Conv2D(c(192), (4, 1), padding="valid", use_bias=False)(x)  # 1×32
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    y = block(x, c(192), (1, 3))
    y = block(y, c(192), (1, 3))
    x = layers.Add()([x, y])
    for d in CONTEXT_DILATIONS[:context]:
        y = layers.Conv2D(c(192), (1, 3), dilation_rate=(1, d), padding="same", use_bias=False)(x)
        y = layers.BatchNormalization()(y)
        x = layers.Add()([x, layers.ReLU()(y)])
    x = layers.Dropout(0.15)(x)
    x = layers.Conv2D(NUM_CLASSES, (1, 1))(x)
    x = layers.Reshape((T_STEPS, NUM_CLASSES))(x)
    # float32 whatever the compute precision: the CTC loss takes the log of these
    out = layers.Softmax(name="probs", dtype="float32")(x)
    del tf
    return keras.Model(inp, out, name="outpost_plate_ocr")


def ctc_greedy(probs: np.ndarray) -> str:
    best = probs.argmax(-1)
    out, prev = [], 0
    for k in best:
        if k != prev and k != 0:
            out.append(ALPHABET[k - 1])
        prev = k
    return "".join(out)


def labels_to_text(y: np.ndarray, n: int) -> str:
    return "".join(ALPHABET[k - 1] for k in y[:n])


def train_step(model, opt):  # type: ignore[no-untyped-def]
    """One optimiser step on a batch (images, labels, label lengths) -> mean CTC loss."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def step(x, y, n):  # type: ignore[no-untyped-def]
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            logits = tf.math.log(probs + 1e-8)
            loss = tf.nn.ctc_loss(
                labels=y,
                logits=logits,
                label_length=n,
                logit_length=tf.fill([tf.shape(x)[0]], T_STEPS),
                logits_time_major=False,
                blank_index=0,
            )
            loss = tf.reduce_mean(loss)
        grads = tape.gradient(loss, model.trainable_variables)
        grads, _ = tf.clip_by_global_norm(grads, 5.0)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    return step


PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16"}
"""``--precision``: the Keras dtype policy each names. bfloat16 computes the layers in
bfloat16 and keeps the weights, the optimiser and the output in float32; it pays where
the CPU has bfloat16 instructions (AVX512_BF16, AMX)."""


def set_precision(name: str) -> None:
    """Layers built after this compute in ``name`` (a ``PRECISIONS`` key)."""
    from tensorflow import keras

    keras.mixed_precision.set_global_policy(PRECISIONS[name])


def configured_tensorflow(seed: int, threads: int):  # type: ignore[no-untyped-def]
    """TensorFlow, imported and set up as the trainer runs it (bench/training_speed.py too).

    Call it before anything else imports TensorFlow: the environment is read at import."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow left its oneDNN kernels off on the AMD EPYC dev VM of 2026-11-25 unless told.
    # There they made a training step 1.4x faster (527 -> 372 ms), and two runs with them
    # wrote byte-identical models. Set it to 0 to compare.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


def train(args: argparse.Namespace) -> None:
    tf = configured_tensorflow(args.seed, args.threads)

    t0 = time.time()
    mix = {
        "cn_share": args.cn_share,
        "edge_cut": args.edge_cut,
        "california": args.california,
        "shear": args.shear,
        "level_cut": args.level_cut,
    }
    xs, ys, lens = render_dataset(args.seed, args.samples, args.workers, **mix)
    xv, yv, lv = render_dataset(args.seed + 7919, args.val_samples, args.workers, **mix)
    log.info("rendered %d train + %d val in %.0f s", len(xs), len(xv), time.time() - t0)

    set_precision(args.precision)
    model = build_model(args.width, args.context, args.lean)
    model.summary(print_fn=log.info)
    sched = tf.keras.optimizers.schedules.CosineDecay(args.lr, args.steps, alpha=0.02)
    opt = tf.keras.optimizers.Adam(sched)

    step = train_step(model, opt)

    rng = np.random.default_rng(args.seed)
    t1 = time.time()
    for it in range(args.steps):
        idx = rng.integers(0, len(xs), args.batch)
        xb = xs[idx].astype(np.float32)[..., None]
        if rng.random() < 0.5:  # polarity and small shifts keep the model honest on real crops
            shift = rng.integers(-3, 4)
            xb = np.roll(xb, shift, axis=2)
        loss = step(xb, ys[idx], lens[idx])
        if it % 1000 == 0 or it == args.steps - 1:
            acc = evaluate(model, xv[:500], yv[:500], lv[:500])
            log.info(
                "step %d/%d loss %.3f val_exact %.3f elapsed %.0f s",
                it,
                args.steps,
                float(loss),
                acc,
                time.time() - t1,
            )
    if args.precision != "float32":
        # exported in float32 (the int8 file is quantised from it): the same weights in a
        # float32 copy of the network, so no bfloat16 cast reaches the TFLite graph
        set_precision("float32")
        trained, model = model, build_model(args.width, args.context, args.lean)
        model.set_weights(trained.get_weights())
    acc = evaluate(model, xv, yv, lv)
    log.info("final synthetic val exact %.4f, training %.0f s", acc, time.time() - t1)
    export(model, args, xs, acc, time.time() - t0)


def evaluate(model, xv, yv, lv) -> float:  # type: ignore[no-untyped-def]
    probs = model.predict(xv.astype(np.float32)[..., None], batch_size=256, verbose=0)
    ok = sum(ctc_greedy(p) == labels_to_text(y, n) for p, y, n in zip(probs, yv, lv, strict=True))
    return ok / len(xv)


def export(model, args, xs, val_acc: float, wall: float) -> None:  # type: ignore[no-untyped-def]
    import tensorflow as tf

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / ".savedmodel"
    model.export(str(saved), format="tf_saved_model", verbose=False)
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    float_bytes = conv.convert()
    int8_bytes = int8_tflite(saved, xs, 400)
    shutil.rmtree(saved, ignore_errors=True)

    command = "python -m training.plates " + " ".join(args.argv)
    entries: dict[str, dict[str, object]] = {}
    for name, data, dtype in (
        (args.name, float_bytes, "float32"),
        (f"{args.name}-int8", int8_bytes, "uint8"),
    ):
        f = out / f"{name}.tflite"
        f.write_bytes(data)
        entries[name] = {
            "name": name,
            "file": f.name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "task": "plate-ocr",
            "decoder": "ctc",
            "input": {
                "shape": [1, OCR_HEIGHT, OCR_WIDTH, 1],
                "dtype": dtype,
                "colour": "gray",
                "range": "0-255",
                "resize": "stretch (aspect not kept); two-row plates unfolded",
            },
            "outputs": [{"name": "probs", "shape": [1, T_STEPS, NUM_CLASSES], "blank": 0}],
            "alphabet": ALPHABET,
            "countries": args.countries,
            "licence": "Apache-2.0 (trained by Outpost on synthetic plates; fonts: DejaVu, "
            "Liberation, GNU FreeFont, URW Nimbus Sans Narrow, Roboto Condensed, Open Sans, "
            "Bebas Neue, WenQuanYi Zen Hei, Noto Sans CJK, Noto Serif CJK, Droid Sans Fallback, "
            "Smiley Sans, AR PL SungtiL GB)",
            "command": command,
            "seed": args.seed,
            "synthetic_val_exact": round(val_acc, 4),
            "wall_time_s": round(wall),
        }
    merge_manifest(out, list(entries.values()))
    log.info("wrote %s", ", ".join(sorted(entries)))


def int8_tflite(saved: Path, xs: np.ndarray, samples: int) -> bytes:
    """The SavedModel at ``saved`` as a full-integer TFLite model (uint8 input, float32
    output), calibrated on the first ``samples`` of ``xs`` (gray pictures, one channel
    added): the OCR's and the plate finder's device models."""
    import tensorflow as tf

    def rep():  # type: ignore[no-untyped-def]
        for i in range(0, samples):
            yield [xs[i : i + 1].astype(np.float32)[..., None]]

    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.float32
    return bytes(conv.convert())


def merge_manifest(out: Path, entries: list[dict[str, object]]) -> None:
    """Add ``entries`` to ``out/manifest.json`` (created if missing), each replacing the
    entry of its name; the list sorted by name."""
    path = out / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {"models": []}
    by_name = {m["name"]: m for m in manifest.get("models", [])}
    by_name.update({str(e["name"]): e for e in entries})
    manifest["models"] = sorted(by_name.values(), key=lambda m: m["name"])
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def parser() -> argparse.ArgumentParser:
    p = trainer_parser(
        "python -m training.plates",
        __doc__,
        samples=60000,
        val_samples=2000,
        steps=8000,
        batch=64,
    )
    p.add_argument(
        "--context", type=int, default=0, choices=range(len(CONTEXT_DILATIONS) + 1),
        help="dilated residual blocks over the time axis (wider context per step)",
    )
    p.add_argument(
        "--lean", action="store_true",
        help="no batch norm in the two full-resolution blocks, one 128-channel block: "
        "a step in about two thirds of the time",
    )
    p.add_argument("--cn-share", type=float, default=0.5, help="1 = Chinese only, 0 = Latin only")
    p.add_argument(
        "--edge-cut", type=float, default=0.0,
        help="share of snug Chinese crops cut into an edge character (default 0: none)",
    )
    p.add_argument(
        "--california", type=float, default=0.0,
        help="share of US plates drawn as California's standard plate (default 0: none)",
    )
    p.add_argument(
        "--shear", type=float, default=0.0,
        help="share of Chinese plates sheared sideways, leaning (default 0: none)",
    )
    p.add_argument(
        "--level-cut", type=float, default=0.0,
        help="share of snug Chinese crops of a turned plate cut level to its own height "
        "(default 0: none)",
    )
    p.add_argument("--name", default="outpost-plate-ocr", help="model name (file and manifest)")
    p.add_argument(
        "--precision", choices=sorted(PRECISIONS), default="float32",
        help="compute precision while training (bfloat16: faster on CPUs with AVX512_BF16)",
    )
    add_worker_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the manifest's command
    args.countries = ["cn"] * (args.cn_share > 0) + ["latin"] * (args.cn_share < 1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
