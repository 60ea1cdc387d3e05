"""Draw the reference plates of the plate reader's self-test (``agent/plates/reference``).

One command, reproducible from the seed::

    .venv/bin/python -m training.reference_plates agent/plates/reference

A US-style plate and a Chinese blue plate, drawn by the training renderer without placement
or degradation (``render.render_us``, ``render.render_cn``), one ``random.Random(0)`` for
both. ``outpost doctor`` reads them with the box's models (``agent.plates.reference``).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import cv2

from agent.plates.reference import REFERENCE_PLATES
from training.render import render_cn, render_us

SEED = 0


def draw(out: Path) -> list[Path]:
    """Write the reference plates into ``out``; their paths."""
    rng = random.Random(SEED)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for plate in REFERENCE_PLATES:
        drawn = (
            render_us(rng, text=plate.text)
            if plate.country == "us"
            else render_cn(rng, "blue", text=plate.text)
        )
        path = out / plate.file
        if not cv2.imwrite(str(path), drawn.image):
            raise OSError(f"cannot write {path}")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.reference_plates", description=__doc__)
    p.add_argument("out", type=Path, help="folder to write the PNG files to")
    for path in draw(p.parse_args(argv).out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
