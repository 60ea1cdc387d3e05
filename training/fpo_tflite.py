"""Convert a fast-plate-ocr ONNX model to TFLite, offline, and check it reads as the original.

A box then runs the drop-in on the TFLite runtime it already has, without onnxruntime.
Run it on a workstation with the ``convert`` extra (onnx2tf and TensorFlow; never needed at
run time)::

    pip install -e ".[convert,onnx]"
    python -m training.fpo_tflite MODEL.onnx OUT_DIR [--check FOLDER_OF_CROPS]

It writes ``OUT_DIR/<stem>.tflite`` (float32) with the plate config copied beside it as
``<stem>.plate_config.yaml``, where ``[plates.ocr] path`` finds it. The model keeps its
uint8 NHWC input (onnx2tf's ``-kt``). onnx2tf fetches sample images from the internet for
its trial run unless a file of them lies in its working folder; this writes one (plain
noise), so the conversion needs no network.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SAMPLES = "calibration_image_sample_data_20x128x128x3_float32.npy"
"""The file name onnx2tf looks for in its working folder before it downloads one."""


def convert(onnx_path: Path, out_dir: Path, height: int, width: int) -> Path:
    """Run onnx2tf on ``onnx_path``; return the float32 ``.tflite`` it wrote in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx2tf = shutil.which("onnx2tf") or str(Path(sys.executable).with_name("onnx2tf"))
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        np.save(Path(tmp) / SAMPLES, rng.random((20, 128, 128, 3), dtype=np.float32))
        work = Path(tmp) / "out"
        name = _input_name(onnx_path)
        cmd = [onnx2tf, "-i", str(onnx_path.resolve()), "-o", str(work)]
        cmd += ["-ois", f"{name}:1,{height},{width},3", "-kt", name]  # keep uint8 NHWC input
        env = dict(os.environ)  # onnx2tf runs onnxsim by name: the venv's bin must be on PATH
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
        done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=env, check=False)
        made = work / f"{onnx_path.stem}_float32.tflite"
        if done.returncode != 0 or not made.is_file():
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
            raise SystemExit(f"onnx2tf could not convert {onnx_path}")
        target = out_dir / f"{onnx_path.stem}.tflite"
        shutil.copyfile(made, target)
    return target


def _input_name(onnx_path: Path) -> str:
    import onnx

    return str(onnx.load(str(onnx_path)).graph.input[0].name)


def compare(onnx_path: Path, tflite_path: Path, crops: list[Path]) -> tuple[int, float]:
    """Read ``crops`` with both files; return how many read the same and the largest
    confidence gap."""
    import cv2

    from agent.plates.ocr import FastPlateOcr

    config = tflite_path.with_suffix(".plate_config.yaml")
    a, b = FastPlateOcr(onnx_path, config), FastPlateOcr(tflite_path, config)
    same, gap = 0, 0.0
    for path in crops:
        img = cv2.imread(str(path))
        if img is None:
            continue
        ra, rb = a.read(img), b.read(img)
        same += ra.text == rb.text
        gap = max(gap, abs(ra.confidence - rb.confidence))
    return same, gap


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.fpo_tflite", description=__doc__)
    p.add_argument("onnx", type=Path, help="the fast-plate-ocr .onnx model")
    p.add_argument("out", type=Path, help="folder for the .tflite and its plate config")
    p.add_argument("--config", type=Path, default=None, help="plate config (default: beside)")
    p.add_argument("--check", type=Path, default=None, help="a folder of plate crops to compare")
    args = p.parse_args(argv)

    from agent.plates.ocr import parse_plate_config, plate_config_beside

    config = args.config or plate_config_beside(args.onnx)
    if config is None:
        p.error(f"no plate config beside {args.onnx}: name it with --config")
    cfg = parse_plate_config(config.read_text(encoding="utf-8"))
    tflite = convert(args.onnx, args.out, int(cfg["img_height"]), int(cfg["img_width"]))
    shutil.copyfile(config, tflite.with_suffix(".plate_config.yaml"))
    print(f"wrote {tflite} ({tflite.stat().st_size} bytes)")
    if args.check:
        crops = sorted(f for f in args.check.iterdir() if f.suffix.lower() in {".png", ".jpg"})
        same, gap = compare(args.onnx, tflite, crops)
        print(f"{same} of {len(crops)} crops read the same; largest confidence gap {gap:.4f}")
        if same != len(crops):
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
