"""Writing outpost.toml: validation with the agent's loader, idempotency, dry-run diff."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from agent.config import load_settings
from agent.errors import ProvisioningError
from provisioning.config_writer import (
    ConfigChanges,
    changes_from_flags,
    dump_toml,
    parse_entry,
    parse_value,
    prompt_changes,
    write_config,
)


def _flags() -> ConfigChanges:
    return changes_from_flags(
        device_id="op-cfg-01",
        site="west/valley/checkpoint-3",
        broker_urls=["mqtts://broker-a.example:8883", "mqtts://broker-b.example:8883"],
        assignments=["mqtt.keepalive_s=45", "log.level=debug"],
        additions=[
            ("sim.scripts", "type=device.heartbeat,every_s=5"),
            ("sim.scripts", 'type=alarm.panic,every_s=60,priority=alarm,data={button="gate"}'),
        ],
    )


def test_write_is_valid_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "outpost.toml"
    first = write_config(_flags(), path)
    assert first.written and first.changed
    assert path.stat().st_mode & 0o777 == 0o640
    settings = load_settings(path)
    assert settings.device.id == "op-cfg-01"
    assert settings.mqtt.urls[1] == "mqtts://broker-b.example:8883"
    assert settings.mqtt.keepalive_s == 45
    assert [s.type for s in settings.sim.scripts] == ["device.heartbeat", "alarm.panic"]
    assert settings.sim.scripts[1].data == {"button": "gate"}
    text, mtime = path.read_text(), path.stat().st_mtime_ns

    again = write_config(_flags(), path)
    assert not again.changed and not again.written and again.diff == ""
    assert path.read_text() == text
    assert path.stat().st_mtime_ns == mtime


def test_dry_run_shows_a_diff_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "outpost.toml"
    write_config(_flags(), path)
    before = path.read_text()
    result = write_config(ConfigChanges().set("mqtt.keepalive_s", 90), path, dry_run=True)
    assert result.changed and not result.written
    assert path.read_text() == before
    assert "-keepalive_s = 45" in result.diff
    assert "+keepalive_s = 90" in result.diff
    assert result.diff.startswith(f"--- {path} (current)")


def test_invalid_values_are_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "outpost.toml"
    write_config(_flags(), path)
    before = path.read_text()
    cases = [
        (ConfigChanges().set("mqtt.urls", ["http://x"]), "mqtt.urls"),
        (ConfigChanges().set("device.site", "a//b"), "device.site"),
        (ConfigChanges().set("mqtt.keepalive_s", 1), "mqtt.keepalive_s"),
        (ConfigChanges().set("mqtt.keepalive", 30), "unknown key"),
        (ConfigChanges().set("device.id", "a/b"), "single topic level"),
    ]
    for changes, reason in cases:
        with pytest.raises(ProvisioningError, match=reason) as info:
            write_config(changes, path)
        assert str(tmp_path) not in str(info.value)  # names "the new configuration"
        assert path.read_text() == before


def test_same_named_entry_is_replaced_not_duplicated() -> None:
    doc: dict[str, object] = {}
    ConfigChanges().add("cameras", parse_entry("name=gate,fps=5")).apply(doc)
    ConfigChanges().add("cameras", parse_entry("name=gate,fps=10")).apply(doc)
    ConfigChanges().add("cameras", parse_entry("name=yard,fps=5")).apply(doc)
    assert doc["cameras"] == [{"name": "gate", "fps": 10}, {"name": "yard", "fps": 5}]


def test_toml_round_trip() -> None:
    doc = {
        "top": "x",
        "device": {"id": 'quo"te\\', "n": 3, "f": 1.5, "on": True, "none": None},
        "mqtt": {"urls": ["a", "b"], "tls": {"ca_file": "/etc/outpost/pki/ca.crt"}},
        "cameras": [{"name": "gate", "roi": {"x": 1}}, {"name": "yard", "tags": ["a,b"]}],
        "empty": {},
    }
    text = dump_toml(doc)
    back = tomllib.loads(text)
    del doc["device"]["none"]  # type: ignore[attr-defined]
    assert back == doc
    assert dump_toml(back) == text


def test_value_parsing() -> None:
    assert parse_value("17") == 17
    assert parse_value("true") is True
    assert parse_value('["a", "b"]') == ["a", "b"]
    assert parse_value("mqtts://host:8883") == "mqtts://host:8883"
    assert parse_entry('name=gate,urls=["a","b"],pin=17') == {
        "name": "gate",
        "urls": ["a", "b"],
        "pin": 17,
    }
    with pytest.raises(ProvisioningError):
        parse_entry("no-equals-sign")


def test_interactive_prompts_reask_on_invalid_answers(tmp_path: Path) -> None:
    answers = iter(
        [
            "op-int-01",  # device id
            "bad//site",  # refused, asked again
            "east/port/pier-2",
            "ftp://nope",  # refused
            "mqtts://b1:8883, mqtts://b2:8883",
            "name=panic-1,pin=17",  # one button
            "",
            "",  # no readers
            "",  # no cameras
        ]
    )
    said: list[str] = []
    changes = prompt_changes(None, ask=lambda _q: next(answers), say=said.append)
    assert len(said) == 2 and all("not accepted" in s for s in said)
    assert ("device.site", "east/port/pier-2") in changes.assignments
    assert ("mqtt.urls", ["mqtts://b1:8883", "mqtts://b2:8883"]) in changes.assignments
    assert changes.entries == [("gpio.buttons", {"name": "panic-1", "pin": 17})]


def test_buttons_and_cameras_are_checked_by_their_driver_models(tmp_path: Path) -> None:
    path = tmp_path / "outpost.toml"
    changes = changes_from_flags(
        buttons=["name=panic-desk,pin=17,mode=hold,hold_s=2"],
        cameras=["name=gate,kind=rtsp,url=rtsp://10.0.0.5/stream1"],
    )
    write_config(changes, path)
    settings = load_settings(path)
    assert [b.name for b in settings.gpio.buttons] == ["panic-desk"]
    assert settings.vision.cameras[0].url == "rtsp://10.0.0.5/stream1"
    with pytest.raises(ProvisioningError, match="kind rtsp needs url"):
        write_config(changes_from_flags(cameras=["name=yard,kind=rtsp"]), path)
    with pytest.raises(ProvisioningError, match=r"gpio\.buttons\[1\]"):
        write_config(changes_from_flags(buttons=["name=panic-2,pin=17,mode=sideways"]), path)
    assert len(load_settings(path).gpio.buttons) == 1
