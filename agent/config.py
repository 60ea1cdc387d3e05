"""Typed configuration: a TOML file overridden by ``OUTPOST_…`` environment variables.

One pydantic model per component. ``load_settings`` turns every validation problem into a
``ConfigError`` whose message names the key path and the offending value.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agent.errors import ConfigError
from agent.patrol.config import PatrolConfig
from agent.plates.config import PlatesConfig
from agent.vision.config import VisionConfig
from drivers.gpio.config import GpioConfig

DEFAULT_CONFIG_PATH = Path("/etc/outpost/outpost.toml")
_TOPIC_FORBIDDEN = set("+#\x00")


class Section(BaseModel):
    """Base for config sections: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


def _topic_levels(value: str, what: str) -> str:
    value = value.strip("/")
    if not value:
        raise ValueError(f"{what} must not be empty")
    for level in value.split("/"):
        if not level:
            raise ValueError(f"{what} {value!r} has an empty level")
        if _TOPIC_FORBIDDEN & set(level) or level.startswith("$"):
            raise ValueError(f"{what} {value!r}: level {level!r} contains + # $ or NUL")
    return value


class DeviceConfig(Section):
    id: str = Field("outpost-sim-01", description="Unique device id; one MQTT topic level.")
    site: str = Field(
        "demo/city/county", description="Site path, region/city/county; each level a topic level."
    )
    topic_root: str = "outpost"
    state_dir: Path = Path("/var/lib/outpost")

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str) -> str:
        if "/" in v:
            raise ValueError(f"device id {v!r} must be a single topic level (no '/')")
        return _topic_levels(v, "device id")

    @field_validator("site")
    @classmethod
    def _check_site(cls, v: str) -> str:
        return _topic_levels(v, "site path")

    @field_validator("topic_root")
    @classmethod
    def _check_root(cls, v: str) -> str:
        return _topic_levels(v, "topic root")


class TlsConfig(Section):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # Only for bench tests with self-made certificates whose name does not match.
    check_hostname: bool = True


class MqttConfig(Section):
    urls: list[str] = Field(default_factory=lambda: ["mqtt://127.0.0.1:1883"], min_length=1)
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    keepalive_s: int = Field(30, ge=5, le=3600)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    # In-flight QoS 1 messages the backlog may use; a live alarm gets a slot beyond these.
    window: int = Field(64, ge=1, le=1000)
    backoff_min_s: float = Field(0.5, gt=0, le=60)
    backoff_max_s: float = Field(60.0, gt=0, le=3600)
    connect_timeout_s: float = Field(10.0, gt=0, le=120)

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
                raise ValueError(f"{url!r}: scheme must be mqtt:// or mqtts://")
            if not parts.hostname:
                raise ValueError(f"{url!r}: no host")
            try:
                parts.port  # noqa: B018 - raises ValueError on a bad port
            except ValueError:
                raise ValueError(f"{url!r}: bad port") from None
        return urls


class OutboxConfig(Section):
    path: Path | None = Field(None, description="SQLite file; default <state_dir>/outbox.db")
    max_bytes: int = Field(256 * 1024 * 1024, ge=64 * 1024)
    # Seconds an unsent event of each class is kept; 0 keeps it until delivered.
    # Alarms never expire, so they have no key here.
    ttl_patrol_s: int = Field(0, ge=0)
    ttl_vision_s: int = Field(7 * 86400, ge=0)
    ttl_telemetry_s: int = Field(2 * 86400, ge=0)
    group_commit_ms: float = Field(2.0, ge=0, le=1000)


class HealthConfig(Section):
    interval_s: float = Field(60.0, ge=1, le=86400)


class ControlConfig(Section):
    socket: Path | None = Field(None, description="Unix socket; default <state_dir>/control.sock")


class LogConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


class SimScript(Section):
    """One scripted event source of the simulated profile."""

    type: str
    every_s: float = Field(gt=0)
    data: dict[str, Any] = Field(default_factory=dict)
    priority: Literal["alarm", "patrol", "vision", "telemetry"] | None = None


class SimConfig(Section):
    enabled: bool = False
    scripts: list[SimScript] = Field(default_factory=list)


class Settings(BaseSettings):
    """The whole agent configuration."""

    model_config = SettingsConfigDict(
        env_prefix="OUTPOST_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    device: DeviceConfig = Field(default_factory=DeviceConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    sim: SimConfig = Field(default_factory=SimConfig)
    gpio: GpioConfig = Field(default_factory=GpioConfig)
    vision: VisionConfig = Field(default_factory=VisionConfig)
    plates: PlatesConfig = Field(default_factory=PlatesConfig)
    patrol: PatrolConfig = Field(default_factory=PatrolConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get("_OUTPOST_TOML_PATH")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    # Derived paths -----------------------------------------------------------------
    @property
    def outbox_path(self) -> Path:
        return self.outbox.path or self.device.state_dir / "outbox.db"

    @property
    def control_socket(self) -> Path:
        return self.control.socket or self.device.state_dir / "control.sock"

    @property
    def topic_base(self) -> str:
        """``<topic_root>/<site>/<device_id>``: the prefix of every topic this box uses."""
        return f"{self.device.topic_root}/{self.device.site}/{self.device.id}"


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors():
        key = _key_path(err.get("loc", ()))
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "unknown key"
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"  {key}: {msg}{shown}")
    return "\n".join(lines)


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Read the TOML file at ``path`` (and the environment); raise ``ConfigError`` if invalid."""
    toml_path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    source = str(toml_path)
    if not toml_path.is_file():
        raise ConfigError(f"config file {source} not found (use --config PATH)")
    try:
        with toml_path.open("rb") as fh:
            tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid configuration in {source}: TOML syntax: {exc}") from None
    except OSError as exc:  # e.g. 0640 root:outpost, read by a user outside the group
        raise ConfigError(
            f"config file {source} cannot be read: {exc.strerror or exc} "
            "(run as root or as a member of the outpost group)"
        ) from None
    previous = os.environ.get("_OUTPOST_TOML_PATH")
    os.environ["_OUTPOST_TOML_PATH"] = str(toml_path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None
    finally:
        if previous is None:
            os.environ.pop("_OUTPOST_TOML_PATH", None)
        else:
            os.environ["_OUTPOST_TOML_PATH"] = previous
