"""Reference signer for the central side: a dev CA, one-time tokens, and the CSR responder.

For labs, tests and small fleets; a production PKI replaces the CA and keeps the topic
contract (see provisioning/enrol.py). The responder signs a CSR only for a device with an
unused, unexpired token, then revokes that token in mosquitto (password file + ACL
rewritten, SIGHUP) and grants the device its own topics instead.

Run ``python -m provisioning.signer --help``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import queue
import secrets
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.enums import CallbackAPIVersion

from agent.errors import ProvisioningError
from provisioning.bundle import BrokerSettings, CertBundle
from provisioning.enrol import (
    DEFAULT_TOPIC_PREFIX,
    EnrolmentTicket,
    cert_topic,
    csr_topic,
    parse_broker_url,
)
from provisioning.identity import (
    check_device_id,
    common_name,
    generate_key,
    key_pem,
    load_key,
    write_private,
    write_public,
)

log = logging.getLogger(__name__)
SIGNER_USER = "outpost-signer"


# Dev CA --------------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Outpost"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


class DevCA:
    """A file-backed CA: ``ca.key`` (0600) and ``ca.crt`` in one directory."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def create(cls, directory: Path, name: str = "Outpost dev CA", days: int = 3650) -> DevCA:
        if (directory / "ca.key").exists():
            raise ProvisioningError(f"{directory} already holds a CA; refusing to overwrite it")
        key = generate_key()
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        write_private(directory / "ca.key", key_pem(key))
        write_public(directory / "ca.crt", cert.public_bytes(serialization.Encoding.PEM))
        return cls(key, cert)

    @classmethod
    def load(cls, directory: Path) -> DevCA:
        try:
            key = load_key((directory / "ca.key").read_bytes())
            cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
        except OSError as exc:
            raise ProvisioningError(f"cannot load CA from {directory}: {exc.strerror}") from None
        return cls(key, cert)

    def _issue(
        self,
        subject: x509.Name,
        public_key: Any,
        days: int,
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName] | None = None,
    ) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def sign_device_csr(
        self, csr: x509.CertificateSigningRequest, device_id: str, days: int = 397
    ) -> x509.Certificate:
        """A client certificate for ``device_id``; refuses a CSR for any other name."""
        if not csr.is_signature_valid:
            raise ProvisioningError("CSR signature is invalid")
        cn = common_name(csr.subject)
        if cn != device_id:
            raise ProvisioningError(f"CSR is for {cn!r}, expected {device_id!r}")
        pub = csr.public_key()
        if isinstance(pub, rsa.RSAPublicKey) and pub.key_size < 2048:
            raise ProvisioningError("CSR key too weak (RSA < 2048)")
        if not isinstance(pub, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise ProvisioningError("CSR key must be EC or RSA")
        # Only the CN is copied from the request: nothing else the device asks for is trusted.
        return self._issue(_name(device_id), pub, days, ExtendedKeyUsageOID.CLIENT_AUTH)

    def issue_server_cert(
        self, directory: Path, hosts: Sequence[str], days: int = 825
    ) -> tuple[Path, Path]:
        """Broker key + certificate for ``hosts`` (names or IPs); returns (cert, key) paths."""
        key = generate_key()
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        cert = self._issue(
            _name(hosts[0]), key.public_key(), days, ExtendedKeyUsageOID.SERVER_AUTH, sans
        )
        write_private(directory / "server.key", key_pem(key))
        write_public(directory / "server.crt", cert.public_bytes(serialization.Encoding.PEM))
        return directory / "server.crt", directory / "server.key"

    def issue_client_cert(self, directory: Path, cn: str, days: int = 825) -> tuple[Path, Path]:
        """A client key + certificate (the signer's own broker login); returns (cert, key)."""
        key = generate_key()
        cert = self._issue(_name(cn), key.public_key(), days, ExtendedKeyUsageOID.CLIENT_AUTH)
        write_private(directory / f"{cn}.key", key_pem(key))
        write_public(directory / f"{cn}.crt", cert.public_bytes(serialization.Encoding.PEM))
        return directory / f"{cn}.crt", directory / f"{cn}.key"

    def bundle_for_csr(
        self, csr_pem: bytes, device_id: str, broker: BrokerSettings, site: str | None = None
    ) -> CertBundle:
        """The offline path: a bundle for a CSR brought on a stick (and the online reply)."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise ProvisioningError(f"not a PEM CSR: {exc}") from None
        cert = self.sign_device_csr(csr, device_id)
        return CertBundle(
            device_id=device_id,
            cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            ca_pem=self.cert_pem.decode(),
            mqtt=broker,
            site=site,
        )


# One-time tokens -------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Pending and spent enrolments in one JSON file: the source of truth for the broker ACLs.

    Only a hash of each token is kept; the token itself goes into the enrolment ticket and
    the broker's (hashed) password file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, dict[str, Any]]) -> None:
        write_private(self.path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    def records(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return self._read()

    def issue(self, device_id: str, site: str, ttl_s: float = 7 * 86400) -> str:
        check_device_id(device_id)
        token = secrets.token_urlsafe(24)
        now = dt.datetime.now(dt.UTC)
        with self._lock:
            data = self._read()
            if data.get(device_id, {}).get("enrolled_at"):
                raise ProvisioningError(f"{device_id!r} is already enrolled; revoke it first")
            data[device_id] = {
                "token_sha256": _token_hash(token),
                "site": site,
                "issued_at": now.isoformat(),
                "expires_at": (now + dt.timedelta(seconds=ttl_s)).isoformat(),
            }
            self._write(data)
        return token

    def claim(self, device_id: str, token: str | None = None) -> dict[str, Any]:
        """Mark ``device_id``'s token spent and return its record; raise if it cannot be."""
        with self._lock:
            data = self._read()
            rec = data.get(device_id)
            if rec is None:
                raise ProvisioningError(f"no enrolment pending for {device_id!r}")
            if rec.get("enrolled_at"):
                raise ProvisioningError(f"enrolment token for {device_id!r} was already used")
            if dt.datetime.fromisoformat(rec["expires_at"]) < dt.datetime.now(dt.UTC):
                raise ProvisioningError(f"enrolment token for {device_id!r} has expired")
            if token is not None and not hmac.compare_digest(
                rec["token_sha256"], _token_hash(token)
            ):
                raise ProvisioningError(f"wrong enrolment token for {device_id!r}")
            rec["enrolled_at"] = dt.datetime.now(dt.UTC).isoformat()
            self._write(data)
            return dict(rec)


# Broker authorisation (mosquitto) --------------------------------------------------------------


@dataclass
class MosquittoAuth:
    """The mosquitto files the signer owns, and the SIGHUP that makes mosquitto reload them.

    * ``password_file``: enrolment users (device id / one-time token), enrolment listener.
    * ``enrol_acl``: each pending device may write its ``csr`` and read its ``cert`` topic.
    * ``device_acl``: each enrolled device (cert CN = username) gets ``<topic_base>/#``;
      the signer gets the provisioning topics.
    """

    password_file: Path
    enrol_acl: Path
    device_acl: Path
    pid_file: Path | None = None
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    topic_root: str = "outpost"
    mosquitto_passwd: str = "mosquitto_passwd"

    def add_enrolment_user(self, device_id: str, token: str) -> None:
        if not self.password_file.exists():
            write_private(self.password_file, b"")
        self._passwd(["-b", str(self.password_file), device_id, token])

    def remove_enrolment_user(self, device_id: str) -> None:
        if self.password_file.exists():
            self._passwd(["-D", str(self.password_file), device_id])

    def _passwd(self, args: list[str]) -> None:
        proc = subprocess.run(
            [self.mosquitto_passwd, *args], capture_output=True, text=True, timeout=30
        )
        if proc.returncode != 0:
            raise ProvisioningError(f"mosquitto_passwd failed: {proc.stderr.strip()}")

    def render(self, store: TokenStore) -> None:
        """Rewrite both ACL files from the token store."""
        enrol = ["# written by provisioning.signer; do not edit"]
        device = [
            "# written by provisioning.signer; do not edit",
            f"user {SIGNER_USER}",
            f"topic read {self.topic_prefix}/+/csr",
            f"topic write {self.topic_prefix}/+/cert",
            "",
        ]
        for device_id, rec in sorted(store.records().items()):
            if rec.get("enrolled_at"):
                device += [
                    f"user {device_id}",
                    f"topic readwrite {self.topic_root}/{rec['site']}/{device_id}/#",
                    "",
                ]
            else:
                enrol += [
                    f"user {device_id}",
                    f"topic write {csr_topic(self.topic_prefix, device_id)}",
                    f"topic read {cert_topic(self.topic_prefix, device_id)}",
                    "",
                ]
        write_public(self.enrol_acl, ("\n".join(enrol) + "\n").encode(), mode=0o640)
        write_public(self.device_acl, ("\n".join(device) + "\n").encode(), mode=0o640)

    def reload(self) -> None:
        """SIGHUP mosquitto so it re-reads the password and ACL files."""
        if self.pid_file is None:
            return
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError) as exc:
            raise ProvisioningError(
                f"cannot read mosquitto pid from {self.pid_file}: {exc}"
            ) from None
        os.kill(pid, signal.SIGHUP)


# Responder -------------------------------------------------------------------------------------


@dataclass
class SignerSettings:
    broker_url: str
    ca_dir: Path
    client_cert: Path
    client_key: Path
    device_broker: BrokerSettings
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    check_hostname: bool = True


class Responder:
    """Subscribed to ``<prefix>/+/csr``; signs for pending devices, then revokes their token.

    The paho callback only queues the request; the ``signer-worker`` thread does the work.
    """

    def __init__(
        self, settings: SignerSettings, ca: DevCA, store: TokenStore, auth: MosquittoAuth
    ) -> None:
        self.settings = settings
        self.ca = ca
        self.store = store
        self.auth = auth
        self.signed: list[str] = []
        self.refused: list[tuple[str, str]] = []
        self._requests: queue.SimpleQueue[tuple[str, bytes] | None] = queue.SimpleQueue()
        self._subscribed = threading.Event()
        self._worker: threading.Thread | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=SIGNER_USER, protocol=mqtt.MQTTv311
        )
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_path(settings)))
        ctx.check_hostname = settings.check_hostname
        ctx.load_cert_chain(str(settings.client_cert), str(settings.client_key))
        self._client.tls_set_context(ctx)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(self, c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            log.error("signer could not log in to the broker: %s", rc)
            return
        c.subscribe(f"{self.settings.topic_prefix}/+/csr", qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _m: int, rcs: Any, _p: Any = None) -> None:
        if not any(rc.is_failure for rc in rcs):
            self._subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._requests.put((msg.topic, bytes(msg.payload)))

    def start(self, timeout_s: float = 10.0) -> None:
        address = parse_broker_url(self.settings.broker_url)
        self._worker = threading.Thread(target=self._work, name="signer-worker", daemon=True)
        self._worker.start()
        self._client.connect(address.host, address.port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise ProvisioningError("signer could not subscribe to the provisioning topic")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._requests.put(None)
        if self._worker is not None:
            self._worker.join(timeout=10)

    def _work(self) -> None:
        while (item := self._requests.get()) is not None:
            topic, payload = item
            try:
                self.handle(topic, payload)
            except Exception:  # one bad request must not stop the signer
                log.exception("signer failed on %s", topic)

    def handle(self, topic: str, payload: bytes) -> None:
        device_id = topic.removeprefix(self.settings.topic_prefix + "/").removesuffix("/csr")
        try:
            request = json.loads(payload)
            request_id = str(request["request_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed CSR request on %s", topic)
            return
        reply: dict[str, Any] = {"request_id": request_id}
        try:
            if request.get("device_id") != device_id:
                raise ProvisioningError("device_id in the request does not match the topic")
            # Check the CSR before spending the token (a malformed CSR can be retried), and
            # spend it before replying, so a replayed request never gets a second certificate.
            # Requests are handled one at a time on this thread, so the two steps cannot race.
            bundle = self.ca.bundle_for_csr(
                str(request["csr_pem"]).encode(), device_id, self.settings.device_broker
            )
            rec = self.store.claim(device_id)
            bundle = bundle.model_copy(update={"site": rec["site"]})
            reply.update(status="ok", bundle=bundle.model_dump(exclude_none=True))
        except (ProvisioningError, KeyError) as exc:
            reply.update(status="error", reason=str(exc))
            self.refused.append((device_id, str(exc)))
            topic = cert_topic(self.settings.topic_prefix, device_id)
            self._client.publish(topic, json.dumps(reply), qos=1)
            return
        info = self._client.publish(
            cert_topic(self.settings.topic_prefix, device_id), json.dumps(reply), qos=1
        )
        info.wait_for_publish(timeout=10)
        # Invalidate the one-time credential and grant the device its own topics.
        self.auth.remove_enrolment_user(device_id)
        self.auth.render(self.store)
        self.auth.reload()
        self.signed.append(device_id)
        log.info("signed certificate for %s; enrolment credential revoked", device_id)


def ca_path(settings: SignerSettings) -> Path:
    return settings.ca_dir / "ca.crt"


def issue_ticket(
    store: TokenStore,
    auth: MosquittoAuth,
    ca: DevCA,
    device_id: str,
    site: str,
    enrol_broker_url: str,
    check_hostname: bool = True,
    ttl_s: float = 7 * 86400,
) -> EnrolmentTicket:
    """Create a one-time token for ``device_id``, allow it in mosquitto, return the ticket."""
    token = store.issue(device_id, site, ttl_s)
    auth.add_enrolment_user(device_id, token)
    auth.render(store)
    auth.reload()
    return EnrolmentTicket(
        device_id=device_id,
        token=token,
        broker_url=enrol_broker_url,
        ca_pem=ca.cert_pem.decode(),
        topic_prefix=auth.topic_prefix,
        check_hostname=check_hostname,
        site=site,
    )


# CLI -------------------------------------------------------------------------------------------


def _auth_from_args(args: argparse.Namespace) -> MosquittoAuth:
    d = Path(args.auth_dir)
    return MosquittoAuth(
        password_file=d / "enrol.passwd",
        enrol_acl=d / "enrol.acl",
        device_acl=d / "device.acl",
        pid_file=Path(args.mosquitto_pid_file) if args.mosquitto_pid_file else None,
        topic_prefix=args.topic_prefix,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m provisioning.signer",
        description="Reference signer for Outpost enrolment (dev CA, tokens, CSR responder).",
    )
    parser.add_argument("--ca-dir", required=True, help="directory with ca.key and ca.crt")
    parser.add_argument("--auth-dir", default=".", help="mosquitto password/ACL files here")
    parser.add_argument("--mosquitto-pid-file", help="SIGHUP this mosquitto after changes")
    parser.add_argument("--topic-prefix", default=DEFAULT_TOPIC_PREFIX)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("init-ca", help="create a dev CA, a broker cert and the signer's cert")
    p.add_argument("--broker-host", action="append", default=[], help="broker name or IP")
    p = sub.add_parser("issue", help="one-time enrolment ticket (enrol.json) for a device")
    p.add_argument("--device-id", required=True)
    p.add_argument("--site", required=True)
    p.add_argument("--enrol-url", required=True, help="mqtts://host:port of the enrol listener")
    p.add_argument("--out", required=True, help="write the ticket here (mode 0600)")
    p = sub.add_parser("sign-csr", help="offline: bundle for a CSR brought from the box")
    p.add_argument("--device-id", required=True)
    p.add_argument("--csr", required=True)
    p.add_argument("--broker-url", action="append", required=True)
    p.add_argument("--site")
    p.add_argument("--out", required=True)
    p = sub.add_parser("serve", help="answer CSRs on the provisioning topic")
    p.add_argument("--broker-url", required=True, help="listener the signer logs in to")
    p.add_argument("--device-broker-url", action="append", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    ca_dir = Path(args.ca_dir)
    try:
        if args.cmd == "init-ca":
            ca = DevCA.create(ca_dir)
            ca.issue_server_cert(ca_dir, args.broker_host or ["localhost", "127.0.0.1"])
            ca.issue_client_cert(ca_dir, SIGNER_USER)
            print(f"CA, broker and signer certificates written to {ca_dir}")
        elif args.cmd == "issue":
            ca = DevCA.load(ca_dir)
            auth = _auth_from_args(args)
            store = TokenStore(Path(args.auth_dir) / "tokens.json")
            ticket = issue_ticket(store, auth, ca, args.device_id, args.site, args.enrol_url)
            write_private(Path(args.out), ticket.to_json().encode())
            print(f"enrolment ticket for {args.device_id} written to {args.out}")
        elif args.cmd == "sign-csr":
            ca = DevCA.load(ca_dir)
            bundle = ca.bundle_for_csr(
                Path(args.csr).read_bytes(),
                args.device_id,
                BrokerSettings(urls=args.broker_url),
                site=args.site,
            )
            write_public(Path(args.out), bundle.to_json().encode())
            print(f"certificate bundle for {args.device_id} written to {args.out}")
        else:
            ca = DevCA.load(ca_dir)
            auth = _auth_from_args(args)
            store = TokenStore(Path(args.auth_dir) / "tokens.json")
            settings = SignerSettings(
                broker_url=args.broker_url,
                ca_dir=ca_dir,
                client_cert=ca_dir / f"{SIGNER_USER}.crt",
                client_key=ca_dir / f"{SIGNER_USER}.key",
                device_broker=BrokerSettings(urls=args.device_broker_url),
                topic_prefix=args.topic_prefix,
            )
            responder = Responder(settings, ca, store, auth)
            responder.start()
            print(f"signer listening on {args.topic_prefix}/+/csr; Ctrl-C to stop")
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                responder.stop()
    except ProvisioningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
