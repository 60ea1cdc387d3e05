"""Field diagnostics over SSH: ``outpost doctor``, ``outpost test-publish``, ``support-bundle``.

Every check is read-only and safe while the daemon runs: serial devices are only stat'ed and
opened read-only without taking them over, GPIO pins are never claimed, the outbox is read
through the control socket or a read-only SQLite connection.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import io
import json
import os
import platform
import re
import shutil
import socket
import sqlite3
import ssl
import subprocess
import sys
import tarfile
import threading
import time
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent import __version__
from agent.config import Settings, load_settings
from agent.control import request
from agent.errors import ConfigError, ControlError, DriverFault
from agent.plates.models import verify_plate_model
from agent.vision.config import CameraConfig
from agent.vision.models import verify_model

OK, WARN, FAIL = "ok", "warn", "fail"
MARK = {OK: "✓", WARN: "!", FAIL: "✗"}
# Exit codes of doctor: 0 all ✓, 1 any ✗, 3 warnings only.
EXIT_OK, EXIT_FAIL, EXIT_WARN = 0, 1, 3
CERT_WARN_DAYS = 30
OUTBOX_WARN, OUTBOX_FAIL = 0.80, 0.95
DISK_WARN_BYTES = 200 * 1024 * 1024


@dataclass
class Check:
    """One doctor line: group, name, result, detail and a fix hint when it is not ✓."""

    group: str
    name: str
    result: str
    detail: str
    hint: str = ""


# ---------------------------------------------------------------------------------------------
# Pure helpers


def worst(results: list[str]) -> str:
    if FAIL in results:
        return FAIL
    if WARN in results:
        return WARN
    return OK


def exit_code(checks: list[Check]) -> int:
    return {OK: EXIT_OK, WARN: EXIT_WARN, FAIL: EXIT_FAIL}[worst([c.result for c in checks])]


def cert_days_left(not_after: dt.datetime, now: dt.datetime | None = None) -> int:
    now = now or dt.datetime.now(dt.UTC)
    return int((not_after - now).total_seconds() // 86400)


def cert_result(days: int) -> str:
    if days < 0:
        return FAIL
    return WARN if days < CERT_WARN_DAYS else OK


def headroom_result(used: int, max_bytes: int) -> str:
    ratio = used / max_bytes if max_bytes else 1.0
    if ratio >= OUTBOX_FAIL:
        return FAIL
    return WARN if ratio >= OUTBOX_WARN else OK


_SECRET_KEY = re.compile(r"(password|passwd|secret|token|key|psk|credential)", re.IGNORECASE)
REDACTED = "<redacted>"


def redact(obj: Any, key: str = "") -> Any:
    """A copy of a parsed config with every secret-looking value replaced.

    Key *paths* (``key_file``) are kept as paths but the file itself never goes in a bundle.
    """
    if isinstance(obj, dict):
        return {k: redact(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v, key) for v in obj]
    if key and _SECRET_KEY.search(key) and not key.endswith(("_file", "_dir", "_path")):
        return REDACTED
    if isinstance(obj, str) and "://" in obj:
        # user:password@host in a URL
        return re.sub(r"(://[^/:@]*):[^@/]*@", r"\1:" + REDACTED + "@", obj)
    return obj


def toml_dump(obj: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for the redacted config (tables, arrays of tables, scalars)."""
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for k, v in obj.items():
        if isinstance(v, dict) or (
            isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
        ):
            tables.append((k, v))
        else:
            lines.append(f"{k} = {json.dumps(v, default=str)}")
    out = "\n".join(lines)
    for k, v in tables:
        name = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out += f"\n\n[{name}]\n" + toml_dump(v, name)
        else:
            for item in v:
                out += f"\n\n[[{name}]]\n" + toml_dump(item, name)
    return out.strip("\n")


# ---------------------------------------------------------------------------------------------
# Checks


def _load(path: str) -> tuple[Settings | None, Check]:
    try:
        s = load_settings(path)
    except ConfigError as exc:
        first = str(exc).splitlines()
        detail = " ".join(x.strip() for x in first[:4])
        return None, Check(
            "config",
            "config valid",
            FAIL,
            detail,
            "fix the named key, then run: outpost check-config",
        )
    return s, Check("config", "config valid", OK, f"{path}: device {s.device.id}")


def _load_cert(path: Path) -> Any:
    from cryptography import x509

    data = path.read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def _cert_check(group: str, name: str, not_after: dt.datetime, subject: str) -> Check:
    days = cert_days_left(not_after)
    res = cert_result(days)
    detail = (
        f"{subject}: expired {-days} days ago"
        if days < 0
        else f"{subject}: expires in {days} days ({not_after.date()})"
    )
    if res == OK:
        hint = ""
    elif name == "server certificate":
        hint = "the broker's certificate: ask the centre to renew it"
    else:
        hint = "renew it: outpost provision enrol (online) or import-bundle (offline)"
    return Check(group, name, res, detail, hint)


def check_broker(s: Settings) -> list[Check]:
    out: list[Check] = []
    tls = s.mqtt.tls
    for url in s.mqtt.urls:
        parts = urlsplit(url)
        use_tls = parts.scheme in ("mqtts", "ssl")
        host = parts.hostname or ""
        port = parts.port or (8883 if use_tls else 1883)
        timeout = min(s.mqtt.connect_timeout_s, 5.0)
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            out.append(
                Check(
                    "broker",
                    f"reach {host}:{port}",
                    FAIL,
                    f"cannot connect: {exc.strerror or exc}",
                    "check the network and that the broker runs; ping the host",
                )
            )
            continue
        out.append(Check("broker", f"reach {host}:{port}", OK, "TCP connect ok"))
        if not use_tls:
            sock.close()
            continue
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        ctx.check_hostname = tls.check_hostname
        if tls.cert_file and tls.key_file:
            try:
                ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
            except (OSError, ssl.SSLError) as exc:
                out.append(
                    Check(
                        "broker",
                        "client certificate",
                        FAIL,
                        f"cannot load: {exc}",
                        "re-provision the device certificate",
                    )
                )
        try:
            with ctx.wrap_socket(sock, server_hostname=host) as tsock:
                der = tsock.getpeercert(binary_form=True)
                version = tsock.version()
        except ssl.SSLCertVerificationError as exc:
            # Fetch the certificate anyway to say how stale it is.
            detail = f"server certificate rejected: {exc.verify_message}"
            out.append(
                Check(
                    "broker",
                    f"TLS {host}:{port}",
                    FAIL,
                    detail,
                    "the broker certificate is expired or from another CA",
                )
            )
            der = _peer_cert_unverified(host, port, timeout)
            version = None
        except (OSError, ssl.SSLError) as exc:
            out.append(
                Check(
                    "broker",
                    f"TLS {host}:{port}",
                    FAIL,
                    f"TLS handshake failed: {exc}",
                    "check ca_file and the broker's TLS listener",
                )
            )
            continue
        else:
            out.append(Check("broker", f"TLS {host}:{port}", OK, f"handshake ok ({version})"))
        if der:
            from cryptography import x509

            cert = x509.load_der_x509_certificate(der)
            out.append(
                _cert_check(
                    "broker",
                    "server certificate",
                    cert.not_valid_after_utc,
                    cert.subject.rfc4514_string(),
                )
            )
    if tls.cert_file:
        try:
            cert = _load_cert(Path(tls.cert_file))
        except (OSError, ValueError) as exc:
            out.append(
                Check(
                    "broker",
                    "client certificate",
                    FAIL,
                    f"{tls.cert_file}: {exc}",
                    "re-provision the device certificate",
                )
            )
        else:
            out.append(
                _cert_check(
                    "broker",
                    "client certificate",
                    cert.not_valid_after_utc,
                    cert.subject.rfc4514_string(),
                )
            )
    return out


def _peer_cert_unverified(host: str, port: int, timeout: float) -> bytes | None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tsock,
        ):
            return tsock.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None


def check_clock() -> Check:
    if Path("/run/systemd/timesync/synchronized").exists():
        return Check("clock", "clock synchronised", OK, "systemd-timesyncd synchronised")
    if shutil.which("timedatectl"):
        r = _run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
        if r is not None and r.strip() in ("yes", "no"):
            if r.strip() == "yes":
                return Check("clock", "clock synchronised", OK, "NTP synchronised")
            return Check(
                "clock",
                "clock synchronised",
                FAIL,
                "NTP not synchronised",
                "check NTP: timedatectl timesync-status; events will carry a wrong time",
            )
    if shutil.which("chronyc"):
        r = _run(["chronyc", "tracking"])
        if r is not None:
            if "Not synchronised" in r or "Leap status     : Not" in r:
                return Check(
                    "clock",
                    "clock synchronised",
                    FAIL,
                    "chrony not synchronised",
                    "check NTP servers: chronyc sources",
                )
            return Check("clock", "clock synchronised", OK, "chrony tracking")
    return Check(
        "clock",
        "clock synchronised",
        WARN,
        "unknown (no timedatectl or chronyc)",
        "install systemd-timesyncd or chrony",
    )


def _run(cmd: list[str], timeout: float = 5.0) -> str | None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout if r.returncode == 0 else None


def agent_status(s: Settings, sock: Path | None) -> dict[str, Any] | None:
    try:
        reply = request(sock or s.control_socket, {"op": "status"}, timeout=5)
    except (ControlError, OSError):
        return None
    st = reply.get("status")
    return st if isinstance(st, dict) else None


def check_storage(s: Settings, status: dict[str, Any] | None) -> list[Check]:
    out: list[Check] = []
    state = s.device.state_dir
    probe = state if state.exists() else state.parent
    try:
        du = shutil.disk_usage(probe)
    except OSError as exc:
        out.append(
            Check(
                "storage",
                "disk free",
                FAIL,
                f"{state}: {exc}",
                "create the state directory (the installer does it)",
            )
        )
    else:
        free_mb = du.free // (1024 * 1024)
        res = (
            FAIL
            if du.free < s.outbox.max_bytes // 4
            else (WARN if du.free < DISK_WARN_BYTES else OK)
        )
        out.append(
            Check(
                "storage",
                "disk free",
                res,
                f"{free_mb} MiB free under {probe}",
                "" if res == OK else "free space on the SD card (old logs, media)",
            )
        )
    used: int | None = None
    max_bytes = s.outbox.max_bytes
    source = "running agent"
    if status is not None:
        used = sum(int(c.get("bytes", 0)) for c in status.get("outbox", {}).values())
        max_bytes = int(status.get("outbox_max_bytes", max_bytes))
    elif s.outbox_path.exists():
        source = "outbox file"
        try:
            db = sqlite3.connect(f"file:{s.outbox_path}?mode=ro", uri=True, timeout=2)
            try:
                used = int(db.execute("SELECT coalesce(sum(size),0) FROM events").fetchone()[0])
            finally:
                db.close()
        except sqlite3.Error as exc:
            out.append(
                Check(
                    "storage",
                    "outbox headroom",
                    FAIL,
                    f"{s.outbox_path}: {exc}",
                    "the outbox file is unreadable; keep it for the vendor",
                )
            )
            return out
    if used is None:
        out.append(Check("storage", "outbox headroom", OK, "no outbox yet (agent never ran)"))
        return out
    res = headroom_result(used, max_bytes)
    pct = 100.0 * used / max_bytes if max_bytes else 100.0
    out.append(
        Check(
            "storage",
            "outbox headroom",
            res,
            f"{used} of {max_bytes} bytes used ({pct:.0f}%, from {source})",
            ""
            if res == OK
            else "the broker is not taking events: run "
            "outpost test-publish; older low-priority events are being evicted",
        )
    )
    return out


def check_hardware(s: Settings) -> list[Check]:
    out: list[Check] = []
    if s.gpio.buttons:
        if s.gpio.mock:
            out.append(
                Check(
                    "hardware",
                    "buttons",
                    OK,
                    f"{len(s.gpio.buttons)} button(s), gpio.mock: not checked",
                )
            )
        else:
            chips = sorted(Path("/dev").glob("gpiochip*"))
            for b in s.gpio.buttons:
                res = OK if chips else FAIL
                out.append(
                    Check(
                        "hardware",
                        f"button {b.name}",
                        res,
                        f"pin {b.pin}: " + ("gpio chip present" if chips else "no /dev/gpiochip*"),
                        "" if chips else "this is not a Pi GPIO board, or set gpio.mock",
                    )
                )
    for r in s.patrol.readers:
        dev = getattr(r, "port", None) or getattr(r, "path", None)
        if dev is None:
            out.append(Check("hardware", f"reader {r.name}", OK, f"type {r.type}: not a device"))
            continue
        out.append(_device_check(f"reader {r.name}", str(dev)))
    if s.vision.enabled:
        for cam in s.vision.cameras:
            out.append(_camera_check(cam))
    return out


def _device_check(name: str, dev: str) -> Check:
    path = Path(dev)
    if not path.exists():
        return Check(
            "hardware",
            name,
            FAIL,
            f"{dev} does not exist",
            "check the cable/USB adapter; ls /dev/serial/by-id/",
        )
    # Read-only, non-blocking, no controlling tty, and closed at once: the daemon keeps its port.
    try:
        fd = os.open(dev, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        os.close(fd)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            # The daemon holds the port exclusively: present and in use is what we want.
            return Check("hardware", name, OK, f"{dev} present, in use by the agent")
        return Check(
            "hardware",
            name,
            FAIL,
            f"{dev}: {exc.strerror}",
            "add the outpost user to the dialout group",
        )
    return Check("hardware", name, OK, f"{dev} present and readable")


def _camera_check(cam: CameraConfig) -> Check:
    name = f"camera {cam.name}"
    if cam.kind == "rtsp":
        parts = urlsplit(cam.url or "")
        host, port = parts.hostname or "", parts.port or 554
        try:
            with socket.create_connection((host, port), timeout=3):
                pass
        except OSError as exc:
            return Check(
                "hardware",
                name,
                FAIL,
                f"rtsp {host}:{port}: {exc.strerror or exc}",
                "check the camera's power and network cable",
            )
        return Check("hardware", name, OK, f"rtsp {host}:{port} answers")
    if cam.kind == "usb":
        dev = str(cam.device)
        if dev.isdigit():
            dev = f"/dev/video{dev}"
        return _device_check(name, dev)
    if cam.path is None:
        return Check("hardware", name, OK, "synthetic clip (simulated camera)")
    ok = Path(cam.path).is_file()
    return Check(
        "hardware",
        name,
        OK if ok else FAIL,
        f"file {cam.path}" + ("" if ok else " missing"),
        "" if ok else "fix vision.cameras[].path",
    )


def check_models(s: Settings) -> list[Check]:
    out: list[Check] = []
    if s.vision.enabled and s.vision.detector.enabled:
        model_dir = s.vision.detector.model_folder(s.device.state_dir)
        name = s.vision.detector.model
        try:
            verified = verify_model(model_dir, name)
        except DriverFault as exc:
            out.append(
                Check(
                    "models",
                    f"vision model {name}",
                    FAIL,
                    str(exc),
                    "re-install the model files from the vendor",
                )
            )
        else:
            out.append(
                Check(
                    "models",
                    f"vision model {name}",
                    OK,
                    f"{verified.path.name} sha256 ok, {len(verified.labels)} labels",
                )
            )
    if s.plates.enabled:
        if s.plates.finder != "classical":
            out.append(_model_check(Path(s.plates.model_dir), s.plates.finder_model, "plates"))
        ocr = s.plates.ocr
        if ocr.type == "outpost":
            checks = [_model_check(Path(s.plates.model_dir), n, "plates") for n in ocr.names]
            out.extend(checks)
            if all(c.result == OK for c in checks):
                out.append(_reference_check(s))
        else:
            out.append(_drop_in_check(Path(ocr.path), ocr.config, s.plates.threads))
    if not out:
        out.append(Check("models", "models", OK, "no model in use (vision and plates off)"))
    return out


def _drop_in_check(path: Path, config: Path | None, threads: int) -> Check:
    """The fast-plate-ocr model loads: its runtime is there (onnxruntime for ``.onnx``) and
    a ``.tflite`` fits its plate config."""
    from agent.plates.ocr import FastPlateOcr

    label = "plates model (fast-plate-ocr)"
    if not path.is_file():
        hint = "install the model (.onnx or .tflite) named in plates.ocr.path"
        return Check("models", label, FAIL, f"{path} missing", hint)
    try:
        FastPlateOcr(path, config, threads=threads)
    except DriverFault as exc:
        hint = "install onnxruntime, or use the model's TFLite export (docs/plates.md, Drop-ins)"
        return Check("models", label, FAIL, str(exc), hint)
    return Check("models", label, OK, f"{path} loads")


def _reference_check(s: Settings) -> Check:
    """Outpost's OCR models read the reference plates right (``agent.plates.reference``),
    with the box's settings: the files pass their sha256 check, and this shows that the
    runtime runs them as trained."""
    from agent.plates.reader import PlateReader
    from agent.plates.reference import read_references

    label = "plates reading (reference plates)"
    hint = "reinstall the models and ai-edge-litert from the image; docs/plates.md, CLI"
    try:
        reads = read_references(PlateReader.from_config(s.plates), s.plates.countries)
    except Exception as exc:  # whatever stops the reader is this check's finding
        return Check("models", label, FAIL, f"{type(exc).__name__}: {exc}", hint)
    wrong = [r for r in reads if not r.right]
    if wrong:
        detail = "; ".join(
            f"{r.plate.text} read as {r.text or 'nothing'} ({r.confidence:.2f})" for r in wrong
        )
        return Check("models", label, FAIL, detail, hint)
    read = ", ".join(f"{r.text} ({r.confidence:.2f}, {r.ms:.0f} ms)" for r in reads)
    return Check("models", label, OK, f"read right: {read or 'none for these countries'}")


def _model_check(model_dir: Path, name: str, what: str) -> Check:
    label = f"{what} model {name}"
    hint = "re-install the model files (outpost provision or the image) from the vendor"
    try:
        path, _ = verify_plate_model(model_dir, name)
    except DriverFault as exc:
        return Check("models", label, FAIL, str(exc), hint)
    return Check("models", label, OK, f"{path.name} sha256 ok")


def check_service(s: Settings, status: dict[str, Any] | None) -> list[Check]:
    out: list[Check] = []
    if status is None:
        out.append(
            Check(
                "service",
                "agent running",
                FAIL,
                "control socket does not answer",
                "start it: sudo systemctl start outpost; then journalctl -u outpost",
            )
        )
    else:
        link = status.get("link", {})
        out.append(
            Check(
                "service",
                "agent running",
                OK,
                f"outpost {status.get('version')} up {int(status.get('uptime_s', 0))}s",
            )
        )
        if link.get("connected"):
            out.append(Check("service", "link", OK, f"connected to {link.get('broker')}"))
        else:
            out.append(
                Check(
                    "service",
                    "link",
                    FAIL,
                    f"not connected: {link.get('last_error') or 'unknown'}",
                    "events are kept in the outbox; see the broker checks above",
                )
            )
    if shutil.which("systemctl") is None:
        out.append(
            Check(
                "service",
                "systemd watchdog",
                WARN,
                "systemctl not found",
                "run the agent under systemd (systemd/outpost.service)",
            )
        )
        return out
    r = _run(["systemctl", "show", "outpost", "-p", "ActiveState,WatchdogUSec,LoadState"])
    if r is None:
        out.append(
            Check(
                "service",
                "systemd watchdog",
                WARN,
                "systemd is not running here",
                "on the box, the agent must run as outpost.service",
            )
        )
        return out
    props = dict(line.split("=", 1) for line in r.splitlines() if "=" in line)
    if props.get("LoadState") not in (None, "loaded"):
        out.append(
            Check(
                "service",
                "systemd watchdog",
                WARN,
                "outpost.service not installed",
                "install systemd/outpost.service (docs/operations.md)",
            )
        )
    elif props.get("ActiveState") != "active":
        out.append(
            Check(
                "service",
                "systemd watchdog",
                WARN,
                f"outpost.service is {props.get('ActiveState', 'unknown')}",
                "sudo systemctl enable --now outpost",
            )
        )
    elif props.get("WatchdogUSec", "0") in ("0", "infinity", ""):
        out.append(
            Check(
                "service",
                "systemd watchdog",
                WARN,
                "service runs without watchdog",
                "set WatchdogSec= in the unit",
            )
        )
    else:
        out.append(
            Check(
                "service", "systemd watchdog", OK, f"active, watchdog {props.get('WatchdogUSec')}"
            )
        )
    return out


def run_doctor(config: str, sock: Path | None) -> list[Check]:
    settings, cfg = _load(config)
    checks = [cfg]
    if settings is None:
        return checks
    status = agent_status(settings, sock)
    steps: list[Callable[[], list[Check]]] = [
        lambda: check_broker(settings),
        lambda: [check_clock()],
        lambda: check_storage(settings, status),
        lambda: check_hardware(settings),
        lambda: check_models(settings),
        lambda: check_service(settings, status),
    ]
    for step in steps:
        try:
            checks.extend(step())
        except Exception as exc:
            checks.append(
                Check(
                    "doctor",
                    "internal",
                    FAIL,
                    f"check failed: {exc!r}",
                    "send outpost support-bundle to the vendor",
                )
            )
    return checks


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = run_doctor(args.config, Path(args.socket) if args.socket else None)
    code = exit_code(checks)
    if args.json:
        print(
            json.dumps(
                {
                    "result": worst([c.result for c in checks]),
                    "exit": code,
                    "checks": [asdict(c) for c in checks],
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return code
    group = None
    for c in checks:
        if c.group != group:
            group = c.group
            print(f"{group}")
        print(f"  {MARK[c.result]} {c.name}: {c.detail}")
        if c.hint:
            print(f"      → {c.hint}")
    print({EXIT_OK: "all good", EXIT_WARN: "warnings only", EXIT_FAIL: "problems found"}[code])
    return code


# ---------------------------------------------------------------------------------------------
# test-publish


def run_test_publish(s: Settings, timeout: float = 10.0) -> dict[str, Any]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    url = s.mqtt.urls[0]
    parts = urlsplit(url)
    use_tls = parts.scheme in ("mqtts", "ssl")
    host, port = parts.hostname or "", parts.port or (8883 if use_tls else 1883)
    nonce = uuid.uuid4().hex[:12]
    topic = f"{s.topic_base}/diag/echo/{nonce}"
    v5 = s.mqtt.protocol == "5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{s.device.id}-diag-{nonce[:6]}",
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
    )
    if s.mqtt.username:
        client.username_pw_set(s.mqtt.username, s.mqtt.password)
    if use_tls:
        tls = s.mqtt.tls
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(not tls.check_hostname)
    connected, subscribed, acked, echoed = (threading.Event() for _ in range(4))
    reason: list[str] = []
    marks: dict[str, float] = {}

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
        marks["connect"] = time.monotonic()
        if rc.is_failure:
            reason.append(str(rc))
        connected.set()

    def on_subscribe(c: Any, u: Any, mid: int, rcs: Any, props: Any = None) -> None:
        subscribed.set()

    def on_publish(c: Any, u: Any, mid: int, rc: Any, props: Any = None) -> None:
        marks["puback"] = time.monotonic()
        acked.set()

    def on_message(c: Any, u: Any, msg: Any) -> None:
        if msg.topic == topic:
            marks["echo"] = time.monotonic()
            echoed.set()

    client.on_connect, client.on_subscribe = on_connect, on_subscribe
    client.on_publish, client.on_message = on_publish, on_message
    out: dict[str, Any] = {"broker": url, "topic": topic, "ok": False}
    t0 = time.monotonic()
    try:
        client.connect(host, port, keepalive=30)
    except ssl.SSLError as exc:
        out["error"] = f"TLS failure: {getattr(exc, 'verify_message', None) or exc}"
        return out
    except OSError as exc:
        out["error"] = f"broker down or unreachable: {exc.strerror or exc}"
        return out
    client.loop_start()
    try:
        if not connected.wait(timeout):
            out["error"] = "broker did not answer CONNECT (TLS or firewall problem?)"
            return out
        if reason:
            words = reason[0]
            if "authori" in words.lower() or "password" in words.lower():
                words = f"not authorised ({words}): check username/password or certificate"
            out["error"] = f"broker refused the connection: {words}"
            return out
        out["connect_ms"] = round((marks["connect"] - t0) * 1000, 1)
        client.subscribe(topic, qos=1)
        if not subscribed.wait(timeout):
            out["error"] = "no SUBACK from the broker"
            return out
        t1 = time.monotonic()
        body = json.dumps({"nonce": nonce, "ts": time.time()}).encode()
        client.publish(topic, body, qos=1)
        if not acked.wait(timeout):
            out["error"] = "no PUBACK from the broker (not authorised to publish?)"
            return out
        out["puback_ms"] = round((marks["puback"] - t1) * 1000, 1)
        if not echoed.wait(timeout):
            out["error"] = "published but never received back (ACL denies subscribe?)"
            return out
        out["roundtrip_ms"] = round((marks["echo"] - t1) * 1000, 1)
        out["ok"] = True
        return out
    finally:
        client.disconnect()
        client.loop_stop()


def cmd_test_publish(args: argparse.Namespace) -> int:
    s = load_settings(args.config)
    res = run_test_publish(s)
    if args.json:
        print(json.dumps(res, indent=2))
    elif res["ok"]:
        print(
            f"ok: {res['broker']} connect {res['connect_ms']} ms, PUBACK {res['puback_ms']} ms, "
            f"round trip {res['roundtrip_ms']} ms"
        )
    else:
        print(f"FAILED: {res['broker']}: {res['error']}", file=sys.stderr)
    return EXIT_OK if res["ok"] else EXIT_FAIL


# ---------------------------------------------------------------------------------------------
# support-bundle


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {
        "outpost": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    for dist in (
        "paho-mqtt",
        "pydantic",
        "opencv-python-headless",
        "ai-edge-litert",
        "tflite-runtime",
        "gpiozero",
        "pyserial",
        "cryptography",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    try:
        os_release = Path("/etc/os-release").read_text()
        m = re.search(r'^PRETTY_NAME="?([^"\n]*)', os_release, re.MULTILINE)
        out["os"] = m.group(1) if m else "unknown"
    except OSError:
        out["os"] = "unknown"
    return out


def redacted_config(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return f"# config {path} could not be read: {exc}\n"
    return f"# {path}, secrets replaced by {REDACTED}\n" + toml_dump(redact(data)) + "\n"


def recent_logs(s: Settings | None) -> str:
    if shutil.which("journalctl"):
        r = _run(["journalctl", "-u", "outpost", "-n", "2000", "--no-pager"], timeout=20)
        if r and "-- No entries --" not in r[:200]:
            return r
    if s is not None:
        for cand in (s.device.state_dir / "agent.log", s.device.state_dir / "outpost.log"):
            if cand.is_file():
                return cand.read_text(errors="replace")[-1_000_000:]
    return "no logs found (no journalctl, no log file in state_dir)\n"


def build_bundle(config: str, sock: Path | None, out: Path) -> Path:
    try:
        settings: Settings | None = load_settings(config)
    except ConfigError:
        settings = None
    status = agent_status(settings, sock) if settings else None
    checks = run_doctor(config, sock)
    files: dict[str, bytes] = {
        "config.toml": redacted_config(config).encode(),
        "logs.txt": recent_logs(settings).encode(),
        "status.json": json.dumps(status or {"error": "agent not running"}, indent=2).encode(),
        "doctor.json": json.dumps(
            [asdict(c) for c in checks], indent=2, ensure_ascii=False
        ).encode(),
        "versions.json": json.dumps(versions(), indent=2).encode(),
    }
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    root = f"outpost-support-{stamp}"
    with tarfile.open(out, "w:gz") as tar:
        for name, body in files.items():
            if b"PRIVATE KEY-----" in body:
                body = re.sub(
                    rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE "
                    rb"KEY-----",
                    b"<private key removed>",
                    body,
                    flags=re.DOTALL,
                )
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size = len(body)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(body))
    return out


def cmd_support_bundle(args: argparse.Namespace) -> int:
    out = (
        Path(args.out)
        if args.out
        else Path.cwd()
        / ("outpost-support-" + dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + ".tar.gz")
    )
    path = build_bundle(args.config, Path(args.socket) if args.socket else None, out)
    if args.json:
        print(json.dumps({"ok": True, "path": str(path)}))
    else:
        print(f"support bundle written: {path} (send it to the vendor)")
    return EXIT_OK


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """No traceback for a field tech: one clear line, exit 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (ConfigError, ControlError, KeyboardInterrupt):
            raise
        except Exception as exc:
            print(
                f"outpost {args.command}: unexpected error: {exc.__class__.__name__}: {exc} "
                "(run outpost support-bundle and send it to the vendor)",
                file=sys.stderr,
            )
            return EXIT_FAIL

    return run


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    add(
        "doctor",
        _guarded(cmd_doctor),
        "check config, broker, TLS, clock, disk, outbox, hardware, models and service; "
        "exit 0 all good, 3 warnings only, 1 problems",
    )
    add(
        "test-publish",
        _guarded(cmd_test_publish),
        "round trip through the broker with the agent's MQTT settings, with timing",
    )
    sp = add(
        "support-bundle",
        _guarded(cmd_support_bundle),
        "write a tar.gz for the vendor: redacted config, logs, status, doctor, versions",
    )
    sp.add_argument("--out", help="output file (default ./outpost-support-<time>.tar.gz)")
