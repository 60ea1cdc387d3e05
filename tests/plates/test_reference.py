"""The self-test's reference plates (``agent/plates/reference``): the default models read
them right, each country's with its own models, and a missing file is a fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import DriverFault
from agent.plates import reference
from agent.plates.config import PlatesConfig
from agent.plates.reader import PlateReader
from agent.plates.reference import REFERENCE_PLATES, read_references


@pytest.mark.parametrize("countries", [["us"], ["cn"], ["cn", "us"]])
def test_the_default_models_read_the_reference_plates(countries: list[str]) -> None:
    reader = PlateReader.from_config(PlatesConfig(countries=countries))  # type: ignore[arg-type]
    reads = read_references(reader, countries)
    assert sorted(r.plate.country for r in reads) == sorted(countries)
    for r in reads:
        assert r.right, (r.plate.text, r.text, r.confidence)
        assert r.confidence >= 0.9


def test_a_missing_reference_file_is_a_fault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reference, "REFERENCE_DIR", tmp_path)
    reader = PlateReader.from_config(PlatesConfig(countries=["us"]))
    with pytest.raises(DriverFault, match=REFERENCE_PLATES[0].file):
        read_references(reader, ["us"])

