"""The trainers' shared command-line options (``training.plates``, ``training.finder``).

Each trainer keeps its own defaults and its own options; these are the ones they share.
"""

from __future__ import annotations

import argparse


def trainer_parser(
    prog: str, description: str | None, *, samples: int, val_samples: int, steps: int, batch: int
) -> argparse.ArgumentParser:
    """A trainer's parser with the run's options: ``--seed``, ``--out``, ``--samples``,
    ``--val-samples``, ``--steps``, ``--batch``, ``--lr`` and ``--width``, defaulting to the
    trainer's sizes. The trainer adds its own options after these, then ``--name`` and
    ``add_worker_options``'s."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="models")
    p.add_argument("--samples", type=int, default=samples)
    p.add_argument("--val-samples", type=int, default=val_samples)
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--width", type=float, default=1.0)
    return p


def add_worker_options(p: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--threads``, the last of a trainer's options."""
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
