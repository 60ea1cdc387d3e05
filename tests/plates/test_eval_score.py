"""bench/plates_eval.py's scoring: Chinese plates' province and the rest counted apart."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def plates_eval() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "plates_eval.py"
    spec = importlib.util.spec_from_file_location("plates_eval", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def test_province_and_rest_are_counted_apart(plates_eval: ModuleType) -> None:
    s = plates_eval.Score()
    s.add("皖A12345", "皖A12345", 1.0)  # both right
    s.add("皖A12345", "琼A12345", 1.0)  # province wrong, the rest right
    s.add("皖A12345", "A12345", 1.0)  # province dropped, the rest right
    s.add("皖A12345", "皖A12845", 1.0)  # province right, a serial character wrong
    s.add("皖A12345", "", 1.0)  # nothing read
    s.add("ABC1234", "ABC1234", 1.0)  # not a Chinese plate: not counted
    assert (s.chinese, s.province, s.rest) == (5, 2, 3)
    assert s.exact == 2
    assert s.misreads["皖→琼"] == 1 and s.misreads["one short"] == 1
    assert s.positions == {0: 1, 4: 1}  # the province, and the serial's 8 for 3


def test_rows_print_the_split_for_chinese_sets_only(
    plates_eval: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    cn, us = plates_eval.Score(), plates_eval.Score()
    cn.add("皖A12345", "琼A12345", 2.0)
    cn.add("皖A12345", "皖A12345", 2.0)
    us.add("ABC1234", "ABC1234", 2.0)
    plates_eval._row("cn", "m", cn)
    assert "province right 50.0 %, the rest right 100.0 %" in capsys.readouterr().out
    plates_eval._row("us", "m", us)
    assert "province" not in capsys.readouterr().out
    plates_eval._misreads(cn)
    assert "by position (readings of the right length): 1: 1" in capsys.readouterr().out
