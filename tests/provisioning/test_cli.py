"""outpost-provision and the signer CLI, the way an installer types them."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_settings
from provisioning import signer
from provisioning.cli import main


def test_offline_round_trip_through_both_clis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki, config = tmp_path / "pki", tmp_path / "outpost.toml"
    csr = tmp_path / "stick" / "op-cli-01.csr"
    # On the box: identity + CSR onto a USB stick.
    assert main(["identity", "--device-id", "op-cli-01", "--pki-dir", str(pki),
                 "--export-csr", str(csr)]) == 0  # fmt: skip
    assert "op-cli-01" in capsys.readouterr().out
    assert (pki / "device.key").stat().st_mode & 0o777 == 0o600
    # At the PKI: dev CA, then a bundle for that CSR.
    ca_dir = tmp_path / "ca"
    assert signer.main(["--ca-dir", str(ca_dir), "init-ca", "--broker-host", "broker.lan"]) == 0
    bundle = tmp_path / "stick" / "bundle.json"
    assert signer.main(["--ca-dir", str(ca_dir), "sign-csr", "--device-id", "op-cli-01",
                        "--csr", str(csr), "--broker-url", "mqtts://broker.lan:8883",
                        "--site", "x/y/z", "--out", str(bundle)]) == 0  # fmt: skip
    # Back on the box: dry run first, then for real, pinned to the site CA.
    common = [
        "--pki-dir",
        str(pki),
        "--config",
        str(config),
        "--trusted-ca",
        str(ca_dir / "ca.crt"),
    ]
    assert main(["import-bundle", str(bundle), *common, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert '+urls = ["mqtts://broker.lan:8883"]' in out
    assert not config.exists()
    assert main(["import-bundle", str(bundle), *common]) == 0
    assert "certificate installed" in capsys.readouterr().out
    assert load_settings(config).device.site == "x/y/z"
    # A bundle for another box is refused with a sentence, not a traceback.
    other_pki = tmp_path / "other"
    assert main(["identity", "--device-id", "op-cli-01", "--pki-dir", str(other_pki)]) == 0
    capsys.readouterr()
    assert main(["import-bundle", str(bundle), "--pki-dir", str(other_pki),
                 "--config", str(tmp_path / "o.toml")]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("error: certificate does not match this device's private key")
    assert "Traceback" not in err


def test_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "outpost.toml"
    argv = ["config", "--config", str(config), "--device-id", "op-cli-02", "--site", "a/b/c",
            "--broker-url", "mqtts://b:8883", "--set", "mqtt.keepalive_s=20"]  # fmt: skip
    assert main([*argv, "--dry-run"]) == 0
    assert '+id = "op-cli-02"' in capsys.readouterr().out
    assert not config.exists()
    assert main(argv) == 0
    assert "written and valid" in capsys.readouterr().out
    assert main(argv) == 0
    assert "already up to date" in capsys.readouterr().out
    assert main(["config", "--config", str(config), "--set", "mqtt.keepalive_s=2"]) == 1
    err = capsys.readouterr().err
    assert "mqtt.keepalive_s" in err and "greater than or equal to 5" in err
    assert load_settings(config).mqtt.keepalive_s == 20
