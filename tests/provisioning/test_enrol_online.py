"""Online enrolment end to end: real mosquitto (TLS, per-device ACLs), reference signer, device."""

from __future__ import annotations

import queue
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import load_settings
from agent.errors import ProvisioningError
from provisioning.bundle import BrokerSettings
from provisioning.enrol import EnrolmentTicket, enrol_online, request_certificate
from provisioning.identity import DeviceIdentity, IdentityPaths
from provisioning.signer import Responder, SignerSettings, issue_ticket

sys.path.insert(0, str(Path(__file__).parent))
from tls_broker import TlsBroker, make_tls_broker

DEVICE_ID = "op-e2e-01"
SITE = "north/harbour/post7"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TlsBroker]:
    workdir = tmp_path / "central"
    workdir.mkdir()
    b = make_tls_broker(workdir)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def signer(broker: TlsBroker) -> Iterator[Responder]:
    cert, key = broker.signer_cert
    settings = SignerSettings(
        broker_url=broker.device_url,
        ca_dir=broker.workdir,
        client_cert=cert,
        client_key=key,
        device_broker=BrokerSettings(urls=[broker.device_url]),
    )
    responder = Responder(settings, broker.ca, broker.store, broker.auth)
    responder.start()
    yield responder
    responder.stop()


def _connect(
    url_port: int,
    ca_file: Path,
    *,
    username: str | None = None,
    password: str | None = None,
    cert: tuple[Path, Path] | None = None,
    protocol: int = mqtt.MQTTv311,
    client_id: str = "",
) -> tuple[mqtt.Client, queue.SimpleQueue[tuple[str, object]]]:
    events: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    ctx = ssl.create_default_context(cafile=str(ca_file))
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    client.tls_set_context(ctx)
    if username:
        client.username_pw_set(username, password)
    client.on_connect = lambda c, u, f, rc, p=None: events.put(("connack", rc))
    client.on_message = lambda c, u, m: events.put(("message", (m.topic, m.payload)))
    client.on_subscribe = lambda c, u, mid, rcs, p=None: events.put(("suback", rcs))
    client.on_publish = lambda c, u, mid, rc, p=None: events.put(("puback", rc))
    client.connect("127.0.0.1", url_port, keepalive=10)
    client.loop_start()
    return client, events


def _next(events: queue.SimpleQueue[tuple[str, object]], kind: str, timeout: float = 5) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got, value = events.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if got == kind:
            return value
    raise AssertionError(f"no {kind} within {timeout}s")


def _token_refused(broker: TlsBroker, ticket: EnrolmentTicket) -> bool:
    client, events = _connect(
        broker.enrol_port, broker.ca_file, username=ticket.device_id, password=ticket.token
    )
    try:
        rc = _next(events, "connack")
        return bool(rc.is_failure)  # type: ignore[attr-defined]
    finally:
        client.disconnect()
        client.loop_stop()


def test_online_enrolment_end_to_end(tmp_path: Path, broker: TlsBroker, signer: Responder) -> None:
    ticket = issue_ticket(broker.store, broker.auth, broker.ca, DEVICE_ID, SITE, broker.enrol_url)
    device = tmp_path / "device"
    paths = IdentityPaths(device / "pki")
    config = device / "outpost.toml"
    enrol_file = device / "enrol.json"
    device.mkdir()
    enrol_file.write_text(ticket.to_json())

    t0 = time.monotonic()
    installed = enrol_online(
        EnrolmentTicket.load(enrol_file), paths, config, timeout_s=20, enrolment_file=enrol_file
    )
    elapsed = time.monotonic() - t0

    assert installed.device_id == DEVICE_ID
    # The signer revokes the token after its reply went out; give it a moment to finish.
    deadline = time.monotonic() + 5
    while signer.signed != [DEVICE_ID]:
        assert time.monotonic() < deadline, signer.refused
        time.sleep(0.02)
    assert not enrol_file.exists(), "spent enrolment file must be removed"
    assert paths.key.stat().st_mode & 0o777 == 0o600
    settings = load_settings(config)
    assert settings.device.id == DEVICE_ID
    assert settings.device.site == SITE
    assert settings.mqtt.urls == [broker.device_url]
    assert settings.mqtt.username is None and settings.mqtt.password is None
    assert settings.mqtt.tls.cert_file == paths.cert
    assert settings.mqtt.tls.key_file == paths.key
    assert settings.mqtt.tls.ca_file == paths.ca
    assert elapsed < 15

    # The new identity works on the device listener, inside its own topics only (MQTT 5
    # so the broker can say "not authorised" in the PUBACK).
    client, events = _connect(
        broker.device_port,
        paths.ca,
        cert=(paths.cert, paths.key),
        protocol=mqtt.MQTTv5,
        client_id=DEVICE_ID,
    )
    try:
        assert not _next(events, "connack").is_failure  # type: ignore[attr-defined]
        own = f"{settings.topic_base}/evt/test"
        client.subscribe(own, qos=1)
        assert not any(rc.is_failure for rc in _next(events, "suback"))  # type: ignore[attr-defined]
        client.publish(own, b"hello", qos=1)
        assert _next(events, "message") == (own, b"hello")
        client.publish(f"outpost/{SITE}/op-someone-else/evt/test", b"x", qos=1)
        rc = _next(events, "puback")
        while not rc.is_failure:  # type: ignore[attr-defined]
            rc = _next(events, "puback")  # the first PUBACK was for our own publish
        assert rc.is_failure  # type: ignore[attr-defined]
    finally:
        client.disconnect()
        client.loop_stop()

    # The one-time credential is dead: mosquitto reloaded the password file on SIGHUP.
    deadline = time.monotonic() + 5
    while not _token_refused(broker, ticket):
        assert time.monotonic() < deadline, broker.log()[-2000:]
        time.sleep(0.1)
    with pytest.raises(ProvisioningError, match="refused the enrolment credential"):
        request_certificate(ticket, DeviceIdentity.ensure(paths).csr_pem, timeout_s=5)


def test_enrolment_without_signer_times_out_clearly(tmp_path: Path, broker: TlsBroker) -> None:
    ticket = issue_ticket(broker.store, broker.auth, broker.ca, "op-e2e-02", SITE, broker.enrol_url)
    paths = IdentityPaths(tmp_path / "pki")
    with pytest.raises(ProvisioningError, match="no answer from the signer"):
        enrol_online(ticket, paths, tmp_path / "outpost.toml", timeout_s=1.5)
    assert not (tmp_path / "outpost.toml").exists()
    assert not paths.cert.exists()


def test_wrong_broker_ca_is_rejected(tmp_path: Path, broker: TlsBroker) -> None:
    from provisioning.signer import DevCA

    other = DevCA.create(tmp_path / "other-ca")
    ticket = issue_ticket(
        broker.store, broker.auth, broker.ca, "op-e2e-03", SITE, broker.enrol_url
    ).model_copy(update={"ca_pem": other.cert_pem.decode()})
    with pytest.raises(ProvisioningError, match="TLS handshake"):
        enrol_online(ticket, IdentityPaths(tmp_path / "pki"), tmp_path / "o.toml", timeout_s=3)


def test_enrol_command_as_the_first_boot_unit_runs_it(
    tmp_path: Path, broker: TlsBroker, signer: Responder, capsys: pytest.CaptureFixture[str]
) -> None:
    from provisioning.cli import main

    ticket = issue_ticket(broker.store, broker.auth, broker.ca, "op-e2e-04", SITE, broker.enrol_url)
    enrol_file = tmp_path / "enrol.json"
    enrol_file.write_text(ticket.to_json())
    enrol_file.chmod(0o600)
    config = tmp_path / "outpost.toml"
    argv = ["enrol", "--enrolment-file", str(enrol_file), "--pki-dir", str(tmp_path / "pki"),
            "--config", str(config), "--timeout", "20"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert "certificate installed" in capsys.readouterr().out
    assert not enrol_file.exists()
    assert load_settings(config).mqtt.urls == [broker.device_url]
    # The unit restarts on failure; a re-run without the spent file fails with a sentence.
    assert main(argv) == 1
    assert "cannot read enrolment file" in capsys.readouterr().err
