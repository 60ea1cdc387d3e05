"""Configuration of plate reading: ``[plates]`` in the agent's TOML.

Every field has a default that works in the simulated profile; unknown keys are errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from agent.plates.formats import CN_PROVINCES

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "models"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


DEFAULT_OCR_MODELS = (
    "outpost-plate-ocr-latin-int8",
    "outpost-plate-ocr-latin-b-int8",
    "outpost-plate-ocr-latin-c-int8",
    "outpost-plate-ocr-int8",
    "outpost-plate-ocr-d-int8",
    "outpost-plate-ocr-e-int8",
)
"""The three Latin models read Latin plates together (their readings fused); the three joint
models, listed after them, read the Chinese ones together, and the first of them judges
which script a crop is in."""


class OutpostOcrConfig(_Section):
    """Outpost's own CTC models from ``models/manifest.json``.

    Each manifest entry says which scripts it reads (``countries``: ``cn``, ``latin``); a
    script goes to the first listed model that reads it, models listed later for exactly
    the same scripts read beside it (their readings fused), and only the models that the
    configured countries need are loaded.
    """

    type: Literal["outpost"] = "outpost"
    model: str | list[str] = Field(
        default_factory=lambda: list(DEFAULT_OCR_MODELS),
        description="manifest name(s) of the model(s)",
    )

    @property
    def names(self) -> list[str]:
        return [self.model] if isinstance(self.model, str) else list(self.model)

    @field_validator("model")
    @classmethod
    def _check_model(cls, v: str | list[str]) -> str | list[str]:
        if not v:
            raise ValueError("name at least one model")
        return v


class FastPlateOcrConfig(_Section):
    """A fast-plate-ocr model: ONNX (needs the optional onnxruntime package) or its TFLite
    export (runs on the TFLite runtime Outpost already has)."""

    type: Literal["fast-plate-ocr"]
    path: Path = Field(description="the .onnx file, or the model's TFLite export (.tflite)")
    config: Path | None = Field(None, description="its plate_config.yaml; default: beside it")


def _ocr_type(value: Any) -> str:
    """``[plates.ocr]``'s kind: its ``type``, ``"outpost"`` where the section leaves it out
    (``model = [...]`` alone names Outpost's models, as the section's default does)."""
    if isinstance(value, dict):
        return str(value.get("type", "outpost"))
    return str(getattr(value, "type", "outpost"))


class FormatConfig(_Section):
    """An extra plate format, as a position template (character classes with {n})."""

    name: str
    pattern: str = Field(description="e.g. '[A-Z]{3}[0-9]{4}'")
    kind: str = "ordinary"


class PrivacyConfig(_Section):
    hash_non_hits: bool = Field(
        False, description="publish a keyed hash instead of the text for plates not on the list"
    )
    hash_key_file: Path | None = Field(
        None, description="secret key for the hash; default <state_dir>/plates-hash.key"
    )
    publish_non_hits: bool = Field(True, description="False: only watchlist hits are published")
    non_hit_retention_s: float | None = Field(
        None,
        gt=0,
        description="keep a plate not on the watchlist no longer than this on the box: its "
        "crop in the media store, and its plate.read while undelivered; default: the media "
        "store's retention and the outbox's vision TTL",
    )


class PlatesConfig(_Section):
    enabled: bool = True
    model_dir: Path = Field(DEFAULT_MODEL_DIR, description="folder with manifest.json")
    ocr: Annotated[
        Annotated[OutpostOcrConfig, Tag("outpost")]
        | Annotated[FastPlateOcrConfig, Tag("fast-plate-ocr")],
        Discriminator(_ocr_type),
    ] = Field(default_factory=OutpostOcrConfig)
    threads: int = Field(1, ge=1, le=8)
    countries: list[Literal["cn", "us"]] = Field(default_factory=lambda: ["cn", "us"])  # type: ignore[arg-type]
    formats: list[FormatConfig] = Field(default_factory=list)
    strict_formats: bool = Field(
        False, description="drop readings that fit no format (instead of reporting them)"
    )
    roi: tuple[int, int, int, int] | None = Field(
        None, description="x, y, w, h searched when no vehicle box is given"
    )
    dim_search: bool = Field(
        True,
        description="also search for dim plates: a second localiser pass scaled by each "
        "neighbourhood's strongest edge, run when the first finds no plate it is sure of "
        "(more plates found; a few ms more per frame)",
    )
    finder: Literal["both", "model", "classical"] = Field(
        "both",
        description="where plates are looked for: the trained finder's boxes and the "
        "classical localiser's (both), the finder's alone (model), or the localiser's alone "
        "(classical; no finder model needed)",
    )
    finder_model: str = Field(
        "outpost-plate-find-int8", description="manifest name of the trained plate finder"
    )
    early_hit: bool = Field(
        True,
        description="a reading that matches the watchlist decides its track at once: "
        "plate.read and plate.hit are sent while the car is in view, not when its track "
        "ends (false: every track is decided when it ends)",
    )
    finder_every: int = Field(
        3,
        ge=1,
        le=100,
        description="in video, beside the classical search, the finder is run on every Nth "
        "frame of a camera (1: every frame); a still image is always searched with it",
    )
    home_provinces: list[str] = Field(
        default_factory=list,
        description="province characters of the checkpoint's own area, e.g. ['皖']: on a "
        "Chinese plate another province must be 1/home_weight times as probable to be read",
    )
    home_weight: float = Field(
        0.2, gt=0, le=1, description="weight of the other provinces when home_provinces is set"
    )
    min_confidence: float = Field(0.8, ge=0, le=1)
    min_chars: int = Field(
        4, ge=1, le=10, description="shorter readings in frames are ignored (signs, stripes)"
    )
    min_reads: int = Field(1, ge=1, description="frames that must agree before a plate.read")
    track_timeout_s: float = Field(2.0, gt=0, description="a track ends after this much silence")
    match_distance: float = Field(
        0.5, ge=0, le=3, description="watchlist edit distance (confusable swap = 0.25)"
    )
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    watchlist_file: Path | None = Field(
        None, description="default <state_dir>/plates-watchlist.json"
    )

    def watchlist_path(self, state_dir: Path) -> Path:
        """The watchlist's file: ``watchlist_file``, else ``<state_dir>/plates-watchlist.json``."""
        return self.watchlist_file or state_dir / "plates-watchlist.json"

    @field_validator("home_provinces")
    @classmethod
    def _check_home(cls, v: list[str]) -> list[str]:
        bad = [p for p in v if len(p) != 1 or p not in CN_PROVINCES]
        if bad:
            raise ValueError(f"{bad}: not province characters (one of {CN_PROVINCES})")
        return v

    def province_weights(self) -> dict[str, float]:
        """Class weights for the OCR: the provinces outside ``home_provinces`` (if any)."""
        if not self.home_provinces:
            return {}
        return {p: self.home_weight for p in CN_PROVINCES if p not in self.home_provinces}

    @field_validator("roi")
    @classmethod
    def _check_roi(cls, v: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
        if v is not None and (v[2] <= 0 or v[3] <= 0 or v[0] < 0 or v[1] < 0):
            raise ValueError(f"roi {v}: x, y must be >= 0 and w, h > 0")
        return v
