"""Online enrolment: trade a one-time credential for a device certificate over MQTT/TLS.

Provisioning topics (documented in docs/operations.md):

* device → signer ``<prefix>/<device_id>/csr``  ``{"request_id", "device_id", "csr_pem"}``
* signer → device ``<prefix>/<device_id>/cert`` ``{"request_id", "status": "ok", "bundle": {…}}``
  or ``{"request_id", "status": "error", "reason": "…"}``

``<prefix>`` defaults to ``outpost/provision``. The broker lets the enrolment user (the
device id, password = one-time token) write only its ``csr`` topic and read only its
``cert`` topic; the signer invalidates the token once it has signed.
"""

from __future__ import annotations

import json
import queue
import ssl
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.config import DEFAULT_CONFIG_PATH
from agent.errors import ProvisioningError
from provisioning.bundle import CertBundle, InstalledBundle, install_bundle
from provisioning.identity import DeviceIdentity, IdentityPaths, check_device_id

DEFAULT_TOPIC_PREFIX = "outpost/provision"
DEFAULT_ENROLMENT_FILE = Path("/etc/outpost/enrol.json")


def csr_topic(prefix: str, device_id: str) -> str:
    return f"{prefix.strip('/')}/{device_id}/csr"


def cert_topic(prefix: str, device_id: str) -> str:
    return f"{prefix.strip('/')}/{device_id}/cert"


class EnrolmentTicket(BaseModel):
    """The one-time enrolment material an installer puts on a box (``enrol.json``)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["outpost-enrol/1"] = "outpost-enrol/1"
    device_id: str
    token: str = Field(min_length=16, description="One-time password of the enrolment user")
    broker_url: str = Field(description="mqtts://host:port of the enrolment listener")
    ca_pem: str = Field(description="CA that signed the broker's server certificate")
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    check_hostname: bool = True
    site: str | None = None

    @classmethod
    def load(cls, path: Path) -> EnrolmentTicket:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ProvisioningError(f"cannot read enrolment file {path}: {exc.strerror}") from None
        try:
            ticket = cls.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "<root>"
            raise ProvisioningError(f"{path}: {where}: {first.get('msg')}") from None
        check_device_id(ticket.device_id)
        return ticket

    def to_json(self) -> str:
        return json.dumps(self.model_dump(exclude_none=True), indent=2) + "\n"


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool


def parse_broker_url(url: str) -> BrokerAddress:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtts", "ssl", "mqtt", "tcp") or not parts.hostname:
        raise ProvisioningError(f"{url!r}: expected mqtts://host:port")
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerAddress(parts.hostname, parts.port or (8883 if tls else 1883), tls)


def _tls_context(ca_pem: str, check_hostname: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = check_hostname
    return ctx


def request_certificate(
    ticket: EnrolmentTicket, csr_pem: bytes, timeout_s: float = 60.0
) -> CertBundle:
    """Connect with the one-time credential, send the CSR, wait for the signer's bundle."""
    address = parse_broker_url(ticket.broker_url)
    if not address.tls:
        raise ProvisioningError(
            f"{ticket.broker_url}: enrolment sends a one-time credential; it needs mqtts://"
        )
    request_id = str(uuid.uuid4())
    inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"enrol-{ticket.device_id}",
        protocol=mqtt.MQTTv311,
    )
    client.username_pw_set(ticket.device_id, ticket.token)
    client.tls_set_context(_tls_context(ticket.ca_pem, ticket.check_hostname))
    reply_topic = cert_topic(ticket.topic_prefix, ticket.device_id)
    request = json.dumps(
        {
            "request_id": request_id,
            "device_id": ticket.device_id,
            "csr_pem": csr_pem.decode(),
        }
    )

    # Callbacks only hand off to the waiting thread; the decisions are made below.
    def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            inbox.put(("refused", str(rc)))
            return
        c.subscribe(reply_topic, qos=1)

    def on_subscribe(c: mqtt.Client, _u: Any, _mid: int, rcs: Any, _p: Any = None) -> None:
        if any(rc.is_failure for rc in rcs):
            inbox.put(("refused", "subscription to the reply topic was denied"))
            return
        c.publish(csr_topic(ticket.topic_prefix, ticket.device_id), request, qos=1)

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        inbox.put(("message", msg.payload))

    def on_disconnect(_c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        inbox.put(("disconnected", str(rc)))

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.on_disconnect = on_disconnect
    try:
        client.connect(address.host, address.port, keepalive=30)
    except ssl.SSLError as exc:
        raise ProvisioningError(f"TLS handshake with {ticket.broker_url} failed: {exc}") from None
    except OSError as exc:
        raise ProvisioningError(f"cannot reach {ticket.broker_url}: {exc}") from None
    client.loop_start()
    try:
        return _await_bundle(inbox, request_id, ticket, timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()


def _await_bundle(
    inbox: queue.SimpleQueue[tuple[str, Any]],
    request_id: str,
    ticket: EnrolmentTicket,
    timeout_s: float,
) -> CertBundle:
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProvisioningError(
                f"no answer from the signer within {timeout_s:.0f} s "
                f"(is the signer running and subscribed to {ticket.topic_prefix}/+/csr?)"
            )
        try:
            kind, value = inbox.get(timeout=remaining)
        except queue.Empty:
            continue
        if kind == "refused":
            raise ProvisioningError(
                f"broker refused the enrolment credential for {ticket.device_id!r} ({value}); "
                "it may already have been used"
            )
        if kind == "disconnected":
            raise ProvisioningError(f"broker closed the enrolment connection ({value})")
        try:
            reply = json.loads(value)
        except (ValueError, UnicodeDecodeError):
            continue
        if not isinstance(reply, dict) or reply.get("request_id") != request_id:
            continue  # a stale reply to an earlier attempt
        if reply.get("status") != "ok":
            raise ProvisioningError(f"signer refused the CSR: {reply.get('reason', 'no reason')}")
        return CertBundle.parse(json.dumps(reply.get("bundle")), "signer reply")


def enrol_online(
    ticket: EnrolmentTicket,
    paths: IdentityPaths,
    config_path: Path = DEFAULT_CONFIG_PATH,
    timeout_s: float = 60.0,
    enrolment_file: Path | None = None,
) -> InstalledBundle:
    """The whole online flow; on success the spent enrolment file is deleted."""
    identity = DeviceIdentity.ensure(paths, ticket.device_id)
    bundle = request_certificate(ticket, identity.csr_pem, timeout_s)
    if ticket.site and not bundle.site:
        bundle = bundle.model_copy(update={"site": ticket.site})
    installed = install_bundle(bundle, paths, config_path)
    if enrolment_file is not None:
        # The token is spent (the signer revoked it); don't leave it lying around.
        enrolment_file.unlink(missing_ok=True)
    return installed
