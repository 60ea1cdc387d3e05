"""The device's identity: its id, its private key (made on the box, never leaves it) and its CSR.

Also the certificate checks every enrolment path shares: does a certificate belong to our
key, does it chain to the CA we were given, is it for our device id.
"""

from __future__ import annotations

import datetime as dt
import grp
import os
import pwd
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.errors import ProvisioningError

DEFAULT_PKI_DIR = Path("/etc/outpost/pki")
SERVICE_USER = "outpost"
_DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class IdentityPaths:
    """Where the identity files live; one directory, fixed file names."""

    pki_dir: Path = DEFAULT_PKI_DIR

    @property
    def key(self) -> Path:
        return self.pki_dir / "device.key"

    @property
    def csr(self) -> Path:
        return self.pki_dir / "device.csr"

    @property
    def cert(self) -> Path:
        return self.pki_dir / "device.crt"

    @property
    def ca(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def device_id_file(self) -> Path:
        return self.pki_dir / "device-id"


def check_device_id(device_id: str) -> str:
    """Return ``device_id`` if it can be a certificate CN, an MQTT user and one topic level."""
    if not _DEVICE_ID_RE.match(device_id):
        raise ProvisioningError(
            f"device id {device_id!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return device_id


def default_device_id(
    serial_file: Path = Path("/proc/device-tree/serial-number"),
    machine_id_file: Path = Path("/etc/machine-id"),
) -> str:
    """``op-<Pi serial>`` on a Raspberry Pi, else ``op-<first 12 of machine-id>``."""
    for path, pick in ((serial_file, slice(-16, None)), (machine_id_file, slice(0, 12))):
        try:
            raw = path.read_bytes().strip(b"\0\n ").decode("ascii", "ignore").lower()
        except OSError:
            continue
        raw = re.sub(r"[^0-9a-f]", "", raw)
        if raw:
            return f"op-{raw[pick]}"
    raise ProvisioningError("cannot derive a device id here; pass --device-id")


def service_owner(user: str = SERVICE_USER) -> tuple[int, int] | None:
    """(uid, gid) of the service user, or None when it does not exist (e.g. on a laptop)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    try:
        gid = grp.getgrnam(user).gr_gid
    except KeyError:
        gid = entry.pw_gid
    return entry.pw_uid, gid


def write_private(path: Path, data: bytes, owner: tuple[int, int] | None = None) -> None:
    """Write ``data`` atomically with mode 0600 from the first byte; chown to ``owner``.

    The temp file is created 0600 (O_EXCL) so the secret is never briefly world-readable,
    whatever the umask.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        if owner is not None and os.geteuid() == 0:
            os.fchown(fd, owner[0], owner[1])
        with os.fdopen(fd, "wb", closefd=False) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def write_public(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a non-secret file (certificate, CSR) atomically with ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, path)


# Pure certificate helpers ----------------------------------------------------------------


def generate_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ProvisioningError("device key is not an EC key")
    return key


def build_csr(key: ec.EllipticCurvePrivateKey, device_id: str) -> x509.CertificateSigningRequest:
    """A CSR with the device id as CN (and nothing else the signer must trust)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, check_device_id(device_id))])
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())


def common_name(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode()


def _public_der(obj: x509.Certificate | ec.EllipticCurvePrivateKey) -> bytes:
    pub = obj.public_key()
    return pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_certs(pem: bytes, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise ProvisioningError(f"{what}: not a PEM certificate ({exc})") from None
    if not certs:
        raise ProvisioningError(f"{what}: no certificate found")
    return certs


def verify_device_cert(
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    ca_chain: list[x509.Certificate],
    device_id: str,
    now: dt.datetime | None = None,
) -> None:
    """Raise ``ProvisioningError`` unless ``cert`` is ours and chains to the CA in ``ca_chain``.

    Checks: the public key matches our private key; CN is our device id; every link is
    signed by the next one up to a self-signed root that is in ``ca_chain``; every
    certificate on the way is within its validity window; issuers are CAs.
    """
    now = now or dt.datetime.now(dt.UTC)
    if _public_der(cert) != _public_der(key):
        raise ProvisioningError(
            "certificate does not match this device's private key "
            "(was it issued for another box's CSR?)"
        )
    cn = common_name(cert.subject)
    if cn != device_id:
        raise ProvisioningError(f"certificate is for {cn!r}, this device is {device_id!r}")
    current = cert
    for _ in range(len(ca_chain) + 1):
        _check_validity(current, now)
        issuer = next((c for c in ca_chain if c.subject == current.issuer), None)
        if issuer is None:
            raise ProvisioningError(
                f"certificate issuer {current.issuer.rfc4514_string()!r} is not in the CA "
                "chain given (wrong CA?)"
            )
        try:
            current.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise ProvisioningError(
                f"certificate {current.subject.rfc4514_string()!r} is not signed by "
                f"{issuer.subject.rfc4514_string()!r} (wrong CA?)"
            ) from None
        _check_is_ca(issuer)
        if issuer.subject == issuer.issuer:
            _check_validity(issuer, now)
            return
        current = issuer
    raise ProvisioningError("CA chain does not end in a self-signed root")


def _check_validity(cert: x509.Certificate, now: dt.datetime) -> None:
    name = cert.subject.rfc4514_string()
    if now < cert.not_valid_before_utc:
        raise ProvisioningError(
            f"certificate {name!r} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} "
            "UTC (is the clock right?)"
        )
    if now > cert.not_valid_after_utc:
        raise ProvisioningError(
            f"certificate {name!r} expired {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )


def _check_is_ca(cert: x509.Certificate) -> None:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise ProvisioningError(f"issuer {cert.subject.rfc4514_string()!r} is not a CA")


# The identity on disk ----------------------------------------------------------------------


@dataclass
class DeviceIdentity:
    """The device id, key and CSR in ``paths.pki_dir``; created once, reused on re-runs."""

    device_id: str
    paths: IdentityPaths
    key: ec.EllipticCurvePrivateKey
    csr: x509.CertificateSigningRequest

    @property
    def csr_pem(self) -> bytes:
        return self.csr.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def ensure(
        cls,
        paths: IdentityPaths,
        device_id: str | None = None,
        owner: tuple[int, int] | None = None,
        regenerate: bool = False,
    ) -> DeviceIdentity:
        """Load the identity, creating the key/CSR when missing (or when ``regenerate``).

        A device id already recorded in ``pki_dir`` wins over a different one given here
        only if they agree; a mismatch is an error, since the key belongs to that id.
        """
        recorded = _read_text(paths.device_id_file)
        if device_id and recorded and device_id != recorded and not regenerate:
            raise ProvisioningError(
                f"{paths.pki_dir} already holds the identity of {recorded!r}; "
                f"use --regenerate to replace it with {device_id!r}"
            )
        device_id = check_device_id(device_id or recorded or default_device_id())
        if owner is None:
            owner = service_owner()
        paths.pki_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        if regenerate or not paths.key.exists():
            key = generate_key()
            write_private(paths.key, key_pem(key), owner)
            for stale in (paths.cert, paths.csr):
                stale.unlink(missing_ok=True)
        else:
            key = load_key(paths.key.read_bytes())
            _fix_key_mode(paths.key, owner)
        csr = _load_csr(paths.csr)
        if (
            csr is None
            or common_name(csr.subject) != device_id
            or _public_der_csr(csr) != _public_der(key)
        ):
            csr = build_csr(key, device_id)
            write_public(paths.csr, csr.public_bytes(serialization.Encoding.PEM))
        if recorded != device_id:
            write_public(paths.device_id_file, device_id.encode() + b"\n")
        return cls(device_id=device_id, paths=paths, key=key, csr=csr)


def _public_der_csr(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _fix_key_mode(path: Path, owner: tuple[int, int] | None) -> None:
    """Re-assert 0600 and ownership on an existing key (a copy or restore may have loosened it)."""
    st = path.stat()
    if st.st_mode & 0o777 != 0o600:
        path.chmod(0o600)
    if owner is not None and os.geteuid() == 0 and (st.st_uid, st.st_gid) != owner:
        os.chown(path, owner[0], owner[1])


def _load_csr(path: Path) -> x509.CertificateSigningRequest | None:
    try:
        return x509.load_pem_x509_csr(path.read_bytes())
    except (OSError, ValueError):
        return None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
