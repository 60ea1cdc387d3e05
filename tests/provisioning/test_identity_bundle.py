"""Device identity on disk and the offline certificate-bundle import."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.config import load_settings
from agent.errors import ProvisioningError
from provisioning.bundle import BrokerSettings, CertBundle, install_bundle
from provisioning.identity import (
    DeviceIdentity,
    IdentityPaths,
    check_device_id,
    common_name,
    default_device_id,
    verify_device_cert,
)
from provisioning.signer import DevCA

DEVICE = "op-unit-01"
BROKER = BrokerSettings(urls=["mqtts://broker.example:8883"])


def test_identity_files_and_modes(tmp_path: Path) -> None:
    paths = IdentityPaths(tmp_path / "pki")
    old_umask = os.umask(0)  # even with a permissive umask the key is 0600 from the start
    try:
        ident = DeviceIdentity.ensure(paths, DEVICE, owner=None)
    finally:
        os.umask(old_umask)
    assert paths.key.stat().st_mode & 0o777 == 0o600
    assert paths.csr.stat().st_mode & 0o777 == 0o644
    csr = x509.load_pem_x509_csr(paths.csr.read_bytes())
    assert csr.is_signature_valid
    assert common_name(csr.subject) == DEVICE
    assert paths.device_id_file.read_text().strip() == DEVICE
    assert b"PRIVATE KEY" not in paths.csr.read_bytes()
    assert ident.key.curve.name == "secp256r1"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_key_is_owned_by_the_service_user(tmp_path: Path) -> None:
    nobody = (65534, 65534)
    paths = IdentityPaths(tmp_path / "pki")
    DeviceIdentity.ensure(paths, DEVICE, owner=nobody)
    st = paths.key.stat()
    assert (st.st_uid, st.st_gid) == nobody
    # A loosened key (e.g. restored from a backup) is tightened again on the next run.
    paths.key.chmod(0o644)
    os.chown(paths.key, 0, 0)
    DeviceIdentity.ensure(paths, DEVICE, owner=nobody)
    st = paths.key.stat()
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o600, *nobody)


def test_rerun_keeps_the_key_and_refuses_another_id(tmp_path: Path) -> None:
    paths = IdentityPaths(tmp_path / "pki")
    first = DeviceIdentity.ensure(paths, DEVICE, owner=None)
    key_bytes = paths.key.read_bytes()
    again = DeviceIdentity.ensure(paths, owner=None)  # id read back from pki_dir
    assert again.device_id == DEVICE
    assert paths.key.read_bytes() == key_bytes
    assert again.csr_pem == first.csr_pem
    with pytest.raises(ProvisioningError, match="already holds the identity"):
        DeviceIdentity.ensure(paths, "op-other", owner=None)
    fresh = DeviceIdentity.ensure(paths, "op-other", owner=None, regenerate=True)
    assert fresh.device_id == "op-other"
    assert paths.key.read_bytes() != key_bytes


def test_device_id_rules_and_default(tmp_path: Path) -> None:
    assert check_device_id("op-1a.b_c") == "op-1a.b_c"
    for bad in ("", "a/b", "-x", "has space", "plus+", "x" * 65):
        with pytest.raises(ProvisioningError):
            check_device_id(bad)
    serial = tmp_path / "serial"
    serial.write_bytes(b"10000000abcdef12\0")
    assert default_device_id(serial, tmp_path / "none") == "op-10000000abcdef12"
    mid = tmp_path / "machine-id"
    mid.write_text("0123456789abcdef0123456789abcdef\n")
    assert default_device_id(tmp_path / "none", mid) == "op-0123456789ab"


def _bundle_for(ca: DevCA, ident: DeviceIdentity, **changes: object) -> CertBundle:
    bundle = ca.bundle_for_csr(ident.csr_pem, ident.device_id, BROKER, site="south/town/gate")
    return bundle.model_copy(update=changes)


def test_offline_bundle_import(tmp_path: Path) -> None:
    ca = DevCA.create(tmp_path / "ca")
    paths = IdentityPaths(tmp_path / "pki")
    ident = DeviceIdentity.ensure(paths, DEVICE, owner=None)
    bundle_file = tmp_path / "bundle.json"
    bundle_file.write_text(_bundle_for(ca, ident).to_json())
    config = tmp_path / "outpost.toml"

    bundle = CertBundle.parse(bundle_file.read_bytes(), str(bundle_file))
    installed = install_bundle(bundle, paths, config, trusted_ca_pem=ca.cert_pem)

    assert installed.device_id == DEVICE
    assert installed.config.written
    assert paths.cert.read_text() == bundle.cert_pem
    assert paths.ca.read_bytes() == ca.cert_pem
    settings = load_settings(config)
    assert settings.mqtt.urls == BROKER.urls
    assert settings.device.site == "south/town/gate"
    assert settings.mqtt.tls.key_file == paths.key
    # Importing the same bundle again changes nothing.
    again = install_bundle(bundle, paths, config, trusted_ca_pem=ca.cert_pem)
    assert not again.config.changed


def test_bundle_for_another_key_is_refused(tmp_path: Path) -> None:
    ca = DevCA.create(tmp_path / "ca")
    paths = IdentityPaths(tmp_path / "pki")
    DeviceIdentity.ensure(paths, DEVICE, owner=None)
    # Same device id, but the CSR came from another box (another key).
    other = DeviceIdentity.ensure(IdentityPaths(tmp_path / "other"), DEVICE, owner=None)
    bundle = _bundle_for(ca, other)
    config = tmp_path / "outpost.toml"
    with pytest.raises(ProvisioningError, match="does not match this device's private key"):
        install_bundle(bundle, paths, config)
    assert not paths.cert.exists()
    assert not config.exists()


def test_bundle_with_wrong_ca_is_refused(tmp_path: Path) -> None:
    real = DevCA.create(tmp_path / "real-ca")
    rogue = DevCA.create(tmp_path / "rogue-ca", name="Outpost dev CA")  # same name, other key
    paths = IdentityPaths(tmp_path / "pki")
    ident = DeviceIdentity.ensure(paths, DEVICE, owner=None)
    config = tmp_path / "outpost.toml"
    # Cert from the rogue CA, bundle claiming the real CA chain.
    forged = _bundle_for(rogue, ident, ca_pem=real.cert_pem.decode())
    with pytest.raises(ProvisioningError, match="not signed by"):
        install_bundle(forged, paths, config)
    # A self-consistent bundle from the rogue CA fails against the pinned site CA.
    rogue_bundle = _bundle_for(rogue, ident)
    with pytest.raises(ProvisioningError, match="wrong CA"):
        install_bundle(rogue_bundle, paths, config, trusted_ca_pem=real.cert_pem)
    # An unrelated CA name is reported as "not in the chain".
    other = DevCA.create(tmp_path / "other-ca", name="Another CA")
    with pytest.raises(ProvisioningError, match="not in the CA chain"):
        install_bundle(_bundle_for(real, ident, ca_pem=other.cert_pem.decode()), paths, config)
    assert not paths.cert.exists() and not config.exists()


def test_bundle_for_another_device_and_expired_cert(tmp_path: Path) -> None:
    ca = DevCA.create(tmp_path / "ca")
    paths = IdentityPaths(tmp_path / "pki")
    ident = DeviceIdentity.ensure(paths, DEVICE, owner=None)
    with pytest.raises(ProvisioningError, match="bundle is for device"):
        install_bundle(_bundle_for(ca, ident, device_id="op-other"), paths, tmp_path / "c.toml")
    cert = x509.load_pem_x509_certificate(_bundle_for(ca, ident).cert_pem.encode())
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    with pytest.raises(ProvisioningError, match="expired"):
        verify_device_cert(cert, ident.key, [ca.cert], DEVICE, now=later)


def test_signer_refuses_csr_for_another_name(tmp_path: Path) -> None:
    ca = DevCA.create(tmp_path / "ca")
    ident = DeviceIdentity.ensure(IdentityPaths(tmp_path / "pki"), DEVICE, owner=None)
    with pytest.raises(ProvisioningError, match="CSR is for"):
        ca.bundle_for_csr(ident.csr_pem, "op-impostor", BROKER)
    cert_pem = _bundle_for(ca, ident).cert_pem.encode()
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert common_name(cert.subject) == DEVICE
    assert cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == ident.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
