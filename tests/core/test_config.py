"""Config loading: TOML + environment, and errors that name the key and exit 78."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_settings
from agent.errors import ConfigError


def _run(config: Path, *args: str, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "--config", str(config), *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )


def test_valid_file_and_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "o.toml"
    cfg.write_text('[device]\nid = "box-7"\nsite = "nm/chifeng/yuanbaoshan"\n')
    monkeypatch.setenv("OUTPOST_MQTT__WINDOW", "12")
    monkeypatch.setenv("OUTPOST_DEVICE__SITE", "nm/chifeng/songshan")
    s = load_settings(cfg)
    assert s.mqtt.window == 12
    assert s.topic_base == "outpost/nm/chifeng/songshan/box-7"


@pytest.mark.parametrize(
    ("body", "key", "value"),
    [
        ('[mqtt]\nwindow = 0\n', "mqtt.window", "0"),
        ('[mqtt]\nurls = ["http://broker"]\n', "mqtt.urls", "http://broker"),
        ('[device]\nid = "a/b"\n', "device.id", "a/b"),
        ('[device]\nsite = "nm/+/x"\n', "device.site", "nm/+/x"),
        ('[outbox]\nmax_bytes = "lots"\n', "outbox.max_bytes", "lots"),
        ('[mqtt]\nprotocol = "4"\n', "mqtt.protocol", "4"),
        ('[mqtt]\nbrokr = 1\n', "mqtt.brokr", "unknown key"),
        ('[plates]\nhome_provinces = ["AH"]\n', "plates.home_provinces", "AH"),
        ('[plates.ocr]\ntype = "paddle"\n', "plates.ocr", "paddle"),
    ],
)
def test_invalid_value_names_key_and_value(tmp_path: Path, body: str, key: str,
                                           value: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert key in str(err.value)
    assert value in str(err.value)


def test_plate_models_are_named_without_the_sections_type(tmp_path: Path) -> None:
    """``[plates.ocr] model = [...]`` alone names Outpost's models (``type`` defaults, as the
    whole section does); the drop-in needs its ``type``."""
    cfg = tmp_path / "o.toml"
    cfg.write_text('[plates.ocr]\nmodel = ["outpost-plate-ocr-latin-int8"]\n')
    ocr = load_settings(cfg).plates.ocr
    assert ocr.type == "outpost" and ocr.model == ["outpost-plate-ocr-latin-int8"]
    cfg.write_text('[plates.ocr]\ntype = "fast-plate-ocr"\npath = "/m/x.onnx"\n')
    assert load_settings(cfg).plates.ocr.type == "fast-plate-ocr"


def test_an_unreadable_config_file_is_a_config_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a box the file is root:outpost 0640; a field tech outside the group cannot read it
    (the tests run as root, who can, so the refusal is the open's)."""
    from agent import cli

    cfg = tmp_path / "o.toml"
    cfg.write_text('[device]\nid = "box-7"\n')
    real_open = Path.open

    def refuse(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if self == cfg:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(ConfigError, match="cannot be read: Permission denied"):
        load_settings(cfg)
    assert cli.main(["--config", str(cfg), "check-config"]) == 78
    assert "outpost group" in capsys.readouterr().err


def test_daemon_refuses_bad_config_exit_78_nothing_started(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f'[device]\nstate_dir = "{state}"\n[mqtt]\nkeepalive_s = -3\n')
    proc = _run(cfg, "run")
    assert proc.returncode == 78
    assert "mqtt.keepalive_s" in proc.stderr and "-3" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not state.exists(), "nothing may start (no state dir, no outbox) on a bad config"


def test_bad_env_value_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "ok.toml"
    cfg.write_text(f'[device]\nstate_dir = "{tmp_path / "s"}"\n')
    proc = _run(cfg, "check-config", env={"OUTPOST_MQTT__WINDOW": "many"})
    assert proc.returncode == 78
    assert "mqtt.window" in proc.stderr and "many" in proc.stderr


def test_toml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    cfg = tmp_path / "broken.toml"
    cfg.write_text("[device\nid=1")
    proc = _run(cfg, "check-config")
    assert proc.returncode == 78 and "TOML" in proc.stderr
    proc = _run(tmp_path / "absent.toml", "run")
    assert proc.returncode == 78 and "not found" in proc.stderr


def test_shipped_examples_are_valid() -> None:
    examples = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.toml"))
    assert examples, "examples/ must ship at least the simulated profile"
    for path in examples:
        load_settings(path)
