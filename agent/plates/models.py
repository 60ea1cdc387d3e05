"""Plate models (the OCR models and the plate finder) listed in ``model_dir/manifest.json``:
find one and check its file.

Standard library only (plus the shared hash helper), so the agent process can check the
model at start without loading OpenCV, numpy or the TFLite runtime. The reader, the plates
component and ``outpost doctor`` all go through ``verify_plate_model``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.errors import DriverFault
from agent.vision.models import MANIFEST_NAME, sha256_file


def verify_plate_model(model_dir: Path, name: str) -> tuple[Path, dict[str, Any]]:
    """The model file and its manifest entry; ``DriverFault`` says what is missing or corrupt."""
    manifest = model_dir / MANIFEST_NAME
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        entries = {m["name"]: m for m in data.get("models", [])}
    except FileNotFoundError:
        raise DriverFault(f"model manifest {manifest} not found") from None
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as exc:
        raise DriverFault(f"model manifest {manifest} is invalid: {exc}") from None
    entry = entries.get(name)
    if entry is None:
        raise DriverFault(f"model {name!r} is not in {manifest}")
    path = model_dir / str(entry.get("file", ""))
    if not path.is_file():
        raise DriverFault(f"model {name!r}: file {path} is missing")
    actual, expected = sha256_file(path), str(entry.get("sha256"))
    if actual != expected:
        raise DriverFault(
            f"model {name!r}: {path.name} is corrupt "
            f"(sha256 {actual[:12]}…, manifest says {expected[:12]}…)"
        )
    return path, entry
