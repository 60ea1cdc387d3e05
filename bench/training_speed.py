"""How long the plate models' training recipes would take on this machine, in about a minute.

Usage::

    .venv-train/bin/python bench/training_speed.py [--samples 300] [--steps 20]
        [--recipe "--samples 120000 --steps 16000 --cn-share 0 --context 3 --lean"]
        [--recipe "--samples 120000 --steps 12000 --cn-share 0 --context 3 --precision bfloat16"]

The recipes run for close to an hour, and this VM's speed has varied up to 2.5-fold from
day to day. This bench times the two parts of a recipe:

- the renderer: ms per sample, Latin and Chinese, in one process, as each of the
  trainer's render workers runs;
- one training step (batch 64, random inputs, the trainer's own step function) for each
  architecture that ``models/manifest.json`` names, and for each ``--recipe`` given.

It then prints what each committed recipe (its manifest ``command``) would take here. Both
parts are also given as a ratio to a baseline measured in the same run, a float32 matrix
product in numpy (1024×1024). Ratios are comparable across machines and days; the
milliseconds only within one run.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training import plates  # noqa: E402
from training.render import sample  # noqa: E402


def baseline_ms(repeat: int = 20) -> float:
    a = np.random.default_rng(0).random((1024, 1024), np.float32)
    a @ a
    t = time.perf_counter()
    for _ in range(repeat):
        a @ a
    return (time.perf_counter() - t) / repeat * 1000


def render_ms(cn_share: float, n: int) -> float:
    rng = random.Random(11)
    sample(rng, cn_share)
    t = time.perf_counter()
    for _ in range(n):
        sample(rng, cn_share)
    return (time.perf_counter() - t) / n * 1000


def step_ms(tf, r: argparse.Namespace, steps: int) -> float:  # type: ignore[no-untyped-def]
    """ms per training step of recipe ``r``'s network, in its precision."""
    plates.set_precision(r.precision)
    model = plates.build_model(r.width, r.context, r.lean)
    step = plates.train_step(model, tf.keras.optimizers.Adam(1e-3))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, plates.OCR_HEIGHT, plates.OCR_WIDTH, 1)).astype(np.float32)
    y = rng.integers(1, plates.NUM_CLASSES, (64, plates.MAX_LABEL)).astype(np.int32)
    n = np.full((64,), 7, np.int32)
    for _ in range(3):  # trace and warm up
        step(x, y, n)
    t = time.perf_counter()
    for _ in range(steps):
        loss = step(x, y, n)
    float(loss)
    plates.set_precision("float32")
    return (time.perf_counter() - t) / steps * 1000


def recipes(manifest: Path) -> dict[str, argparse.Namespace]:
    """The committed models' training commands, parsed by the trainer's own parser."""
    out = {}
    for m in json.loads(manifest.read_text())["models"]:
        words = shlex.split(m.get("command", ""))
        if m["name"].endswith("-int8") or words[:3] != ["python", "-m", "training.plates"]:
            continue
        out[m["name"]] = plates.parser().parse_args(words[3:])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--samples", type=int, default=300, help="rendered per script")
    p.add_argument("--steps", type=int, default=20, help="timed per architecture")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--manifest", type=Path, default=ROOT / "models" / "manifest.json")
    p.add_argument(
        "--recipe", action="append", default=[],
        help="also a trainer command line not in the manifest (its arguments, quoted)",
    )
    args = p.parse_args()

    base = baseline_ms()
    print(f"baseline: 1024x1024 float32 matmul {base:.2f} ms")
    render = {share: render_ms(share, args.samples) for share in (0.0, 1.0)}
    for share, ms in render.items():
        name = "Latin" if share == 0 else "Chinese"
        print(f"render {name:7s} {ms:6.2f} ms/sample  ({ms / base:.2f}x baseline)")
    tf = plates.configured_tensorflow(1, args.threads)
    steps: dict[tuple[float, int, bool, str], float] = {}
    todo = recipes(args.manifest)
    for i, words in enumerate(args.recipe):
        todo[f"recipe {i + 1}"] = plates.parser().parse_args(shlex.split(words))
    for name, r in todo.items():
        arch = (r.width, r.context, r.lean, r.precision)
        if arch not in steps:
            steps[arch] = step_ms(tf, r, args.steps)
            print(f"step width {r.width} context {r.context}{' lean' if r.lean else ''} "
                  f"{r.precision}: {steps[arch]:.0f} ms ({steps[arch] / base:.1f}x baseline)")
        per_sample = r.cn_share * render[1.0] + (1 - r.cn_share) * render[0.0]
        rendering = (r.samples + r.val_samples) * per_sample / 1000 / r.workers
        training = r.steps * steps[arch] / 1000
        print(f"{name}: {r.samples} samples, {r.steps} steps -> rendering {rendering / 60:.0f} min"
              f" + training {training / 60:.0f} min = {(rendering + training) / 60:.0f} min here")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
