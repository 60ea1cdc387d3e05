"""The models directory and its manifest: which model files exist and whether they are intact.

``manifest.json`` lists each model (name, file, sha256, input, outputs, labels, licence). A
model is used only if its file hashes to the manifest's sha256; anything else is a
``DriverFault`` whose message says what is wrong, so the agent can report it and carry on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import DriverFault

MANIFEST_NAME = "manifest.json"


class ModelInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    dtype: Literal["uint8", "int8", "float32"] = "uint8"
    colour: Literal["rgb", "bgr"] = "rgb"
    # For float and int8 inputs the tensor gets (pixel - mean) / std (before quantisation).
    mean: float = 0.0
    std: float = 255.0


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input: ModelInput
    outputs: Literal["ssd_postprocess", "yolo_raw"]
    labels: str = Field(description="labels file, one label per line")
    label_offset: int = Field(
        0, description="class index k is line k + label_offset (1 for COCO SSD with '???')"
    )
    licence: str


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[ModelEntry]


@dataclass(frozen=True, slots=True)
class VerifiedModel:
    """A model whose file and labels were found and whose hash matched."""

    entry: ModelEntry
    path: Path
    labels: tuple[str, ...]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(model_dir: Path) -> Manifest:
    path = model_dir / MANIFEST_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DriverFault(f"model manifest {path} not found") from None
    try:
        return Manifest.model_validate(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise DriverFault(f"model manifest {path} is invalid: {exc}") from None


def verify_model(model_dir: Path, name: str) -> VerifiedModel:
    """Find ``name`` in the manifest of ``model_dir`` and check its file and labels."""
    manifest = read_manifest(model_dir)
    entry = next((m for m in manifest.models if m.name == name), None)
    if entry is None:
        known = ", ".join(m.name for m in manifest.models) or "none"
        raise DriverFault(f"model {name!r} is not in {model_dir / MANIFEST_NAME} (has: {known})")
    path = model_dir / entry.file
    if not path.is_file():
        raise DriverFault(f"model {name!r}: file {path} is missing")
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise DriverFault(
            f"model {name!r}: {path} is corrupt "
            f"(sha256 {actual[:12]}…, manifest says {entry.sha256[:12]}…)"
        )
    labels_path = model_dir / entry.labels
    try:
        labels = tuple(line.strip() for line in labels_path.read_text().splitlines())
    except (FileNotFoundError, UnicodeDecodeError) as exc:
        raise DriverFault(f"model {name!r}: labels file {labels_path}: {exc}") from None
    return VerifiedModel(entry, path, labels)
