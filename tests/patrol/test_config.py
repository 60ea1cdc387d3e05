"""The [patrol] section in outpost.toml: reader tables picked by ``type``, errors by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_settings
from agent.errors import ConfigError
from drivers.rfid.config import Pn532Config, SimReaderConfig, WiegandReaderConfig

GOOD = """
[patrol]
timezone = "Asia/Shanghai"

[[patrol.readers]]
type = "sim"
name = "gate"
checkpoint = "north-gate"

[[patrol.readers]]
type = "pn532"
name = "lobby"
port = "/dev/ttyUSB0"

[[patrol.readers]]
type = "wiegand"
name = "yard"
d0 = 5
d1 = "GPIO6"
"""


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "outpost.toml"
    path.write_text(text)
    return load_settings(path)


def test_reader_tables_by_type(tmp_path: Path) -> None:
    cfg = _load(tmp_path, GOOD).patrol
    assert [type(r) for r in cfg.readers] == [SimReaderConfig, Pn532Config, WiegandReaderConfig]
    assert cfg.readers[1].presence_gap_s == 1.0 and cfg.readers[1].baud == 115200
    assert cfg.enabled


@pytest.mark.parametrize(
    ("snippet", "key"),
    [
        ('type = "rdm6301"\nname = "x"', "patrol.readers[0]"),
        ('type = "rdm6300"\nname = "x"\nprot = "/dev/ttyS0"', "patrol.readers[0].rdm6300.prot"),
        ('type = "wiegand"\nname = "x"\nd0 = 5', "patrol.readers[0].wiegand.d1"),
        ('type = "sim"\nname = "Bad Name"', "patrol.readers[0].sim.name"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, snippet: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, f"[[patrol.readers]]\n{snippet}\n")
    assert key in str(err.value)


def test_duplicate_names_and_bad_timezone(tmp_path: Path) -> None:
    dup = '[[patrol.readers]]\ntype = "sim"\nname = "a"\n' * 2
    with pytest.raises(ConfigError, match="appears twice"):
        _load(tmp_path, dup)
    with pytest.raises(ConfigError, match="unknown time zone"):
        _load(tmp_path, '[patrol]\ntimezone = "Mars/Olympus"\n')
