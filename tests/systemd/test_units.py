"""The shipped systemd pieces: unit verification, hardening score, sysusers/tmpfiles, install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "systemd"
VENV_BIN = "/opt/outpost/venv/bin/"
MAX_EXPOSURE = 2.5

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed"
)


def _unit_with_stub_binaries(tmp_path: Path, name: str) -> Path:
    """Copy a unit, pointing ExecStart at stub executables (verify checks they exist)."""
    bindir = tmp_path / "venv-bin"
    bindir.mkdir(exist_ok=True)
    for exe in ("outpost", "outpost-provision"):
        stub = bindir / exe
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    text = (SYSTEMD / name).read_text().replace(VENV_BIN, f"{bindir}/")
    unit = tmp_path / name
    unit.write_text(text)
    return unit


def _directives(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (SYSTEMD / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key, []).append(value)
    return out


@needs_analyze
@pytest.mark.parametrize("name", ["outpost.service", "outpost-enrol.service"])
def test_systemd_analyze_verify(tmp_path: Path, name: str) -> None:
    unit = _unit_with_stub_binaries(tmp_path, name)
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


def _offline_security_supported() -> bool:
    proc = subprocess.run(
        ["systemd-analyze", "security", "--help"], capture_output=True, text=True, timeout=30
    )
    return "--offline" in proc.stdout


@needs_analyze
def test_security_exposure_is_ok(tmp_path: Path) -> None:
    if not _offline_security_supported():
        pytest.skip("systemd-analyze security has no --offline mode (systemd < 250)")
    unit = _unit_with_stub_binaries(tmp_path, "outpost.service")
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    out = proc.stdout + proc.stderr
    match = re.search(r"Overall exposure level for outpost\.service: ([0-9.]+) (\w+)", out)
    assert match, out
    score, verdict = float(match.group(1)), match.group(2)
    print(f"systemd-analyze security exposure: {score} {verdict}")
    assert score <= MAX_EXPOSURE, out
    assert verdict in ("OK", "SAFE"), out


def test_service_contract() -> None:
    d = _directives("outpost.service")
    assert d["Type"] == ["notify"]
    assert d["NotifyAccess"] == ["main"]
    assert d["Restart"] == ["always"]
    assert d["WatchdogSec"] and d["WatchdogSec"][0].endswith("s")
    assert d["User"] == ["outpost"]
    assert d["SupplementaryGroups"] == ["gpio dialout video"]
    assert d["StateDirectory"] == ["outpost"]
    assert d["RuntimeDirectory"] == ["outpost"]
    assert d["ProtectSystem"] == ["strict"]
    assert d["NoNewPrivileges"] == ["yes"]
    assert d["PrivateTmp"] == ["yes"]
    assert d["DevicePolicy"] == ["closed"]
    allowed = " ".join(d["DeviceAllow"])
    for dev in ("char-gpiochip", "char-ttyAMA", "char-ttyUSB", "char-ttyACM", "char-video4linux"):
        assert dev in allowed
    # Hardware access must survive the hardening: these would hide or block the devices.
    assert d.get("PrivateDevices", ["no"]) == ["no"]
    assert "DynamicUser" not in d
    assert int(d["StartLimitBurst"][0]) >= 3
    assert d["ExecStart"][0].startswith(VENV_BIN + "outpost run --config /etc/outpost/outpost.toml")


def _run_ok(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers missing")
def test_sysusers_and_tmpfiles_in_a_root_tree(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    _run_ok(["systemd-sysusers", f"--root={root}", str(SYSTEMD / "outpost.sysusers")])
    passwd = (root / "etc/passwd").read_text()
    group = (root / "etc/group").read_text()
    user = next(line for line in passwd.splitlines() if line.startswith("outpost:"))
    uid, gid = int(user.split(":")[2]), int(user.split(":")[3])
    assert user.endswith(":/var/lib/outpost:/usr/sbin/nologin")
    for grp in ("gpio", "dialout", "video"):
        line = next(g for g in group.splitlines() if g.startswith(grp + ":"))
        assert "outpost" in line.split(":")[3].split(",")
    if os.geteuid() != 0 or shutil.which("systemd-tmpfiles") is None:
        pytest.skip("tmpfiles ownership check needs root")
    _run_ok(["systemd-tmpfiles", f"--root={root}", "--create", str(SYSTEMD / "outpost.tmpfiles")])
    etc = (root / "etc/outpost").stat()
    state = (root / "var/lib/outpost").stat()
    assert (etc.st_mode & 0o777, etc.st_uid, etc.st_gid) == (0o750, 0, gid)
    assert (state.st_mode & 0o777, state.st_uid, state.st_gid) == (0o750, uid, gid)


def test_install_script_stages_into_destdir(tmp_path: Path) -> None:
    root = tmp_path / "stage"
    env = {**os.environ, "DESTDIR": str(root)}
    proc = subprocess.run(
        ["sh", str(SYSTEMD / "install.sh")], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    for rel, src in [
        ("etc/systemd/system/outpost.service", "outpost.service"),
        ("etc/systemd/system/outpost-enrol.service", "outpost-enrol.service"),
        ("usr/lib/sysusers.d/outpost.conf", "outpost.sysusers"),
        ("usr/lib/tmpfiles.d/outpost.conf", "outpost.tmpfiles"),
    ]:
        staged = root / rel
        assert staged.read_text() == (SYSTEMD / src).read_text()
        assert staged.stat().st_mode & 0o777 == 0o644
    assert (root / "etc/outpost").stat().st_mode & 0o777 == 0o750
