"""Self-made test certificates (a CA, a broker certificate, a client certificate) with a chosen
expiry, so doctor can be shown an expired certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey | None,
    *,
    days: int,
    ca: bool = False,
    ip: str | None = None,
) -> x509.Certificate:
    """A certificate valid until ``days`` from now (negative: already expired)."""
    now = dt.datetime.now(dt.UTC)
    after = now + dt.timedelta(days=days)
    before = min(now, after) - dt.timedelta(days=60)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer or _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(before)
        .not_valid_after(after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        b = b.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
    return b.sign(issuer_key or key, hashes.SHA256())


def write_pair(base: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    base.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    base.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    base.with_suffix(".key").chmod(0o600)


def make_pki(d: Path, *, server_days: int = 365, client_days: int = 365) -> Path:
    """ca.crt, server.crt/key (for 127.0.0.1), test-box.crt/key under ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make_cert("outpost diag test CA", ca_key, None, None, days=3650, ca=True)
    write_pair(d / "ca", ca, ca_key)
    for cn, days, ip in (("server", server_days, "127.0.0.1"), ("test-box", client_days, None)):
        key = ec.generate_private_key(ec.SECP256R1())
        write_pair(d / cn, make_cert(cn, key, ca.subject, ca_key, days=days, ip=ip), key)
    return d
