"""Train Outpost's plate finder: a small fully convolutional net that marks the pixels of
licence plates in a picture, trained on synthetic scenes; export TFLite.

One command, reproducible from the seed (the backgrounds are frames of the traffic videos
in ../shared/data/video where that folder is present, synthetic clutter otherwise)::

    .venv-train/bin/python -m training.finder --seed 1 --out models/

A scene is a 256 × 256 gray patch at the finder's working scale (``FIND_WIDTH``): a video
frame (or a synthetic backdrop) with zero to two rendered plates pasted in under a random
perspective, often in a frame on a bumper, among distractors that are not plates: bare
lettering (signs, a van's phone number, a car's badge), grilles, lamps and blank plates'
look-alikes. The target is the plate's own outline at a quarter of the resolution.
The net is fully convolutional, so the exported model takes any input size (the reader
resizes its region to the working scale; ``agent/plates/finder.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import multiprocessing as mp
import random
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from agent.plates.finder import FIND_STRIDE
from training.cli import add_worker_options, trainer_parser

log = logging.getLogger("training.finder")
PATCH = 256
PLATE_WIDTHS = (20, 230)
"""A pasted plate's width in pixels at the working scale: drawn evenly on a log scale."""
VIDEOS = ("street_640x352.mp4", "highway_320x240.avi")
"""Real traffic without readable plates: cars, roads, signs, trees. The toll-booth video is
left out: its plates are readable and unlabelled."""


def video_frames(shared: Path | None, every: int = 12) -> list[np.ndarray]:
    """Every ``every``-th frame of the ``VIDEOS`` found under ``shared/data/video``."""
    frames: list[np.ndarray] = []
    if shared is None:
        return frames
    for name in VIDEOS:
        path = shared / "data" / "video" / name
        if not path.is_file():
            continue
        cap = cv2.VideoCapture(str(path))
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if i % every == 0:
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
            i += 1
        cap.release()
    return frames


def _backdrop(rng: random.Random, frames: list[np.ndarray]) -> np.ndarray:
    """A 256 × 256 gray patch of a video frame at a random scale, or synthetic clutter."""
    if frames and rng.random() < 0.7:
        f = rng.choice(frames)
        s = rng.uniform(1.0, 3.0) * (PATCH + 1) / min(f.shape)
        big = cv2.resize(f, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
        y = rng.randint(0, big.shape[0] - PATCH)
        x = rng.randint(0, big.shape[1] - PATCH)
        out = big[y : y + PATCH, x : x + PATCH].astype(np.float32)
        if rng.random() < 0.5:
            out = out[:, ::-1]
        return np.clip(out * rng.uniform(0.6, 1.3) + rng.uniform(-30, 30), 0, 255).astype(np.uint8)
    grid = np.array([[rng.random() for _ in range(6)] for _ in range(6)], np.float32)
    out = rng.uniform(40, 210) + (cv2.resize(grid, (PATCH, PATCH)) - 0.5) * rng.uniform(0, 160)
    out = np.clip(out, 0, 255).astype(np.uint8)
    for _ in range(rng.randint(2, 8)):  # body panels, windows, shadows
        x0, y0 = rng.randint(-50, PATCH), rng.randint(-50, PATCH)
        x1, y1 = x0 + rng.randint(20, 200), y0 + rng.randint(10, 120)
        cv2.rectangle(out, (x0, y0), (x1, y1), rng.randint(0, 255), -1)
    return out


def _lettering(rng: random.Random, img: np.ndarray) -> None:
    """Bare text that is not a plate: a sign, a phone number on a van, a model badge."""
    from training.render import DEALER_WORDS, LATIN_FONTS, draw_glyph

    kind = rng.random()
    if kind < 0.4:
        word = "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 10)))
    elif kind < 0.7:
        word = rng.choice(DEALER_WORDS).replace(" ", "")
    else:
        chars = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
        word = "".join(rng.choice(chars) for _ in range(rng.randint(2, 6)))
    ch_h = rng.randint(7, 40)
    ch_w = max(int(ch_h * rng.uniform(0.45, 0.75)), 3)
    x, y = rng.randint(-20, PATCH - 20), rng.randint(0, PATCH - ch_h)
    col = rng.randint(0, 255)
    colour = (col, col, col)
    font = rng.choice(LATIN_FONTS)
    canvas = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    for ch in word:
        if x + ch_w >= PATCH:
            break
        if x >= 0:
            draw_glyph(canvas, ch, (x, y, ch_w, ch_h), font, colour)
        x += ch_w + max(int(ch_w * rng.uniform(0.05, 0.3)), 1)
    img[:] = cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY)


def _grille(rng: random.Random, img: np.ndarray) -> None:
    """A radiator grille or a mesh: a block of regular bars, often plate-sized."""
    w, h = rng.randint(30, 200), rng.randint(12, 80)
    x, y = rng.randint(-20, PATCH - 10), rng.randint(-10, PATCH - 10)
    a, b = rng.randint(0, 255), rng.randint(0, 255)
    pitch = rng.randint(3, 10)
    horizontal = rng.random() < 0.5
    for k in range(0, w if not horizontal else h, pitch):
        if horizontal:
            cv2.rectangle(img, (x, y + k), (x + w, y + k + pitch // 2), a, -1)
        else:
            cv2.rectangle(img, (x + k, y), (x + k + pitch // 2, y + h), a, -1)
    if rng.random() < 0.5:
        cv2.rectangle(img, (x, y), (x + w, y + h), b, rng.randint(1, 4))


def _blank(rng: random.Random, img: np.ndarray) -> None:
    """A plate-shaped patch with no characters: a lamp, a sticker, a window, a reflector."""
    w = rng.randint(20, 140)
    h = max(int(w / rng.uniform(1.5, 5.0)), 6)
    x, y = rng.randint(-10, PATCH - 10), rng.randint(-5, PATCH - 5)
    cv2.rectangle(img, (x, y), (x + w, y + h), rng.randint(0, 255), -1)
    if rng.random() < 0.5:
        cv2.rectangle(img, (x, y), (x + w, y + h), rng.randint(0, 255), rng.randint(1, 3))


def _paste_plate(rng: random.Random, img: np.ndarray, mask: np.ndarray) -> None:
    """A rendered plate (often in a frame) pasted under a random perspective; its outline
    drawn into ``mask`` (full resolution)."""
    from training.render import _framed, render_cn, render_us

    if rng.random() < 0.35:
        from training.render import CN_KINDS

        kind = rng.choices(CN_KINDS, weights=[40, 14, 8, 14, 5, 7, 5])[0]
        plate = render_cn(rng, kind)
    else:
        plate = render_us(rng, california=0.2)
    image = cv2.cvtColor(plate.image, cv2.COLOR_BGR2GRAY)
    ph, pw = image.shape[:2]
    ox = oy = 0
    if rng.random() < 0.4:
        framed, ox, oy = _framed(rng, plate.image)
        image = cv2.cvtColor(framed, cv2.COLOR_BGR2GRAY)
    # plates 20-230 px wide at the working scale, small ones the most often (the US dev
    # scenes' are 50-330 px wide, most under 140)
    width = float(np.exp(rng.uniform(np.log(PLATE_WIDTHS[0]), np.log(PLATE_WIDTHS[1]))))
    s = width / pw
    cx, cy = rng.uniform(0, PATCH), rng.uniform(0, PATCH)
    ang = np.deg2rad(rng.uniform(-12, 12))
    skew = rng.uniform(-0.25, 0.25)  # seen from the side: one end shorter
    hw, hh = pw * s / 2, ph * s / 2
    left, right = hh * (1 + skew), hh * (1 - skew)
    corners = np.float32([[-hw, -left], [hw, -right], [hw, right], [-hw, left]])
    rot = np.float32([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = corners @ rot.T + np.float32([cx, cy])
    dst += np.float32([[rng.uniform(-0.04, 0.04) * width for _ in range(2)] for _ in range(4)])
    src = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]])
    M = cv2.getPerspectiveTransform(src, dst)
    M = M @ np.array([[1, 0, -ox], [0, 1, -oy], [0, 0, 1]], np.float64)
    fh, fw = image.shape[:2]
    warped = cv2.warpPerspective(image, M, (PATCH, PATCH), flags=cv2.INTER_AREA)
    inside = cv2.warpPerspective(np.full((fh, fw), 255, np.uint8), M, (PATCH, PATCH))
    gain, bias = rng.uniform(0.5, 1.2), rng.uniform(-30, 20)
    warped = np.clip(warped.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
    np.copyto(img, warped, where=inside > 127)
    cv2.fillConvexPoly(mask, dst.astype(np.int32), 255)


def scene(rng: random.Random, frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One training patch (256 × 256 uint8 gray) and its target (64 × 64 uint8, 255 on
    plates)."""
    img = _backdrop(rng, frames).copy()
    mask = np.zeros((PATCH, PATCH), np.uint8)
    for _ in range(rng.randint(0, 3)):
        rng.choice((_lettering, _lettering, _grille, _blank))(rng, img)
    for _ in range(rng.choice((0, 1, 1, 1, 2))):
        _paste_plate(rng, img, mask)
    f = img.astype(np.float32)
    if rng.random() < 0.5:
        k = rng.choice((3, 5))
        f = cv2.GaussianBlur(f, (k, k), rng.uniform(0.4, 1.5))
    if rng.random() < 0.3:  # lower resolution, brought back up
        s = rng.uniform(0.4, 0.8)
        f = cv2.resize(cv2.resize(f, None, fx=s, fy=s), (PATCH, PATCH))
    if rng.random() < 0.5:
        f += np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(2, 10), f.shape)
    img = np.clip(f, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(30, 90)])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    cells = PATCH // FIND_STRIDE
    small = cv2.resize(mask, (cells, cells), interpolation=cv2.INTER_AREA)
    return img, small


_FRAMES: list[np.ndarray] = []


def _init(shared: str) -> None:
    global _FRAMES
    _FRAMES = video_frames(Path(shared) if shared else None)


def _render_chunk(job: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    seed, chunk, n = job
    rng = random.Random(seed * 1_000_003 + chunk)
    xs = np.zeros((n, PATCH, PATCH), np.uint8)
    ys = np.zeros((n, PATCH // FIND_STRIDE, PATCH // FIND_STRIDE), np.uint8)
    for i in range(n):
        xs[i], ys[i] = scene(rng, _FRAMES)
    return xs, ys


def render_dataset(
    seed: int, n: int, workers: int, shared: Path | None, chunk: int = 500
) -> tuple[np.ndarray, np.ndarray]:
    jobs = [(seed, c, min(chunk, n - c * chunk)) for c in range((n + chunk - 1) // chunk)]
    with mp.Pool(workers, initializer=_init, initargs=(str(shared or ""),)) as pool:
        parts = pool.map(_render_chunk, jobs)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def build_model(width: float = 1.0):  # type: ignore[no-untyped-def]
    """Stride 2, 4, 8 separable convolutions, dilated context at stride 8 (a plate is 3 to
    18 cells wide there), back up to stride 4 (depth to space) beside the stride-4
    features; one sigmoid map. Builtin TFLite ops only."""
    import tensorflow as tf
    from tensorflow.keras import layers

    def c(n: int) -> int:
        return max(int(n * width), 8)

    def sep(x, n, stride=1, dilation=1):  # type: ignore[no-untyped-def]
        x = layers.SeparableConv2D(
            n, 3, strides=stride, dilation_rate=dilation, padding="same", use_bias=False
        )(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU(6.0)(x)

    inp = layers.Input((None, None, 1))
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    x = layers.Conv2D(c(16), 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    x = sep(x, c(32), 2)
    s4 = sep(x, c(32))
    x = sep(s4, c(48), 2)
    x = sep(x, c(48))
    x = sep(x, c(64), dilation=2)
    x = sep(x, c(64), dilation=4)
    x = sep(x, c(64), dilation=8)
    # up to stride 4 by depth-to-space (dynamic sizes: UpSampling2D does not export so)
    x = layers.Conv2D(4 * c(32), 1, use_bias=False)(x)
    x = layers.Lambda(lambda t: tf.nn.depth_to_space(t, 2))(x)
    x = layers.Concatenate()([x, s4])
    x = sep(x, c(32))
    out = layers.Conv2D(1, 1, activation="sigmoid")(x)
    return tf.keras.Model(inp, out)


def train(args: argparse.Namespace) -> None:
    from training.plates import configured_tensorflow

    # seeded, deterministic ops, oneDNN on: as the OCR trainer runs
    tf = configured_tensorflow(args.seed, args.threads)
    t0 = time.time()
    shared = Path(args.shared) if args.shared and Path(args.shared).is_dir() else None
    log.info("rendering %d scenes (backgrounds: %s)", args.samples + args.val_samples, shared)
    xs, ys = render_dataset(args.seed, args.samples + args.val_samples, args.workers, shared)
    xv, yv = xs[args.samples :], ys[args.samples :]
    xs, ys = xs[: args.samples], ys[: args.samples]
    log.info("rendered in %.0f s", time.time() - t0)
    model = build_model(args.width)
    model.summary(print_fn=log.info)
    sched = tf.keras.optimizers.schedules.CosineDecay(args.lr, args.steps, alpha=0.02)
    opt = tf.keras.optimizers.Adam(sched)

    def loss_fn(y, p):  # type: ignore[no-untyped-def]
        # plates are a few per cent of the pixels: their pixels weigh more, plus a soft Dice
        bce = tf.keras.losses.binary_crossentropy(y, p)[..., None]
        w = 1.0 + 4.0 * y
        inter = tf.reduce_sum(y * p)
        dice = 1.0 - (2 * inter + 1.0) / (tf.reduce_sum(y) + tf.reduce_sum(p) + 1.0)
        return tf.reduce_mean(w * bce) + 0.5 * dice

    model.compile(optimizer=opt, loss=loss_fn)
    rng = np.random.default_rng(args.seed)

    def batches():  # type: ignore[no-untyped-def]
        while True:
            idx = rng.integers(0, len(xs), args.batch)
            x = xs[idx].astype(np.float32)[..., None]
            y = (ys[idx].astype(np.float32) / 255.0)[..., None]
            yield x, y

    ds = tf.data.Dataset.from_generator(
        batches,
        output_signature=(
            tf.TensorSpec((None, PATCH, PATCH, 1), tf.float32),
            tf.TensorSpec((None, PATCH // FIND_STRIDE, PATCH // FIND_STRIDE, 1), tf.float32),
        ),
    ).prefetch(2)
    t1 = time.time()
    model.fit(ds, steps_per_epoch=args.steps // 10, epochs=10, verbose=2)
    log.info("trained in %.0f s", time.time() - t1)
    pv = model.predict(xv.astype(np.float32)[..., None], verbose=0)[..., 0]
    iou = _mask_iou(pv > 0.5, yv > 127)
    log.info("synthetic val: plate-pixel IoU %.3f", iou)
    export(model, args, xs, iou, time.time() - t0)


def _mask_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    inter = float(np.logical_and(pred, truth).sum())
    union = float(np.logical_or(pred, truth).sum())
    return inter / union if union else 1.0


def export(model, args, xs, val_iou: float, wall: float) -> None:  # type: ignore[no-untyped-def]
    from training.plates import int8_tflite, merge_manifest

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    saved = out / ".savedmodel-finder"
    model.export(str(saved), format="tf_saved_model", verbose=False)
    data = int8_tflite(saved, xs, 300)
    shutil.rmtree(saved, ignore_errors=True)
    name = args.name
    f = out / f"{name}.tflite"
    f.write_bytes(data)
    entry = {
        "name": name,
        "file": f.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "task": "plate-find",
        "input": {
            "shape": [1, -1, -1, 1],
            "dtype": "uint8",
            "colour": "gray",
            "range": "0-255",
            "resize": "the region scaled to the working width (any size; resize the input)",
        },
        "outputs": [{"name": "plate", "stride": FIND_STRIDE, "range": "0-1"}],
        "licence": "Apache-2.0 (trained by Outpost on synthetic scenes: rendered plates, "
        "frames of the MIT-licensed traffic videos in ../shared/data/video as backgrounds)",
        "command": "python -m training.finder " + " ".join(args.argv),
        "seed": args.seed,
        "synthetic_val_iou": round(val_iou, 4),
        "wall_time_s": round(wall),
    }
    merge_manifest(out, [entry])
    log.info("wrote %s (%d bytes)", f, len(data))


def parser() -> argparse.ArgumentParser:
    p = trainer_parser(
        "python -m training.finder",
        __doc__,
        samples=16000,
        val_samples=500,
        steps=4000,
        batch=16,
    )
    p.add_argument("--shared", default="../shared", help="folder with data/video (backgrounds)")
    p.add_argument("--name", default="outpost-plate-find-int8")
    add_worker_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
