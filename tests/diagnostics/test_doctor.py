"""``outpost doctor`` against a running agent and real mosquitto brokers, healthy and broken."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.diagnostics import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_WARN,
    FAIL,
    OK,
    WARN,
    Check,
    cert_days_left,
    exit_code,
    headroom_result,
)
from tests.fixtures.agent import AgentProcess, base_config
from tests.fixtures.broker import Mosquitto, free_port

pytest.importorskip("cryptography", reason="cryptography (provision extra)")
from tests.fixtures.pki import make_pki


def outpost(cfg: Path, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "--config", str(cfg), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def doctor(cfg: Path) -> tuple[int, dict[str, Check]]:
    r = outpost(cfg, "doctor", "--json")
    assert "Traceback" not in r.stderr, r.stderr
    out = json.loads(r.stdout)
    assert out["exit"] == r.returncode
    return r.returncode, {c["name"]: Check(**c) for c in out["checks"]}


def config(
    tmp_path: Path,
    url: str,
    *,
    extra: str = "",
    mqtt_extra: str = "",
    plates: str = "[plates]\nenabled = false",
    vision: str = "[vision]\nenabled = false",
) -> Path:
    body = base_config(tmp_path / "state", url, extra=extra, mqtt_extra=mqtt_extra)
    body = body.replace("[plates]\nenabled = false", plates)
    body = body.replace("[vision]\nenabled = false", vision)
    cfg = tmp_path / "agent.toml"
    cfg.write_text(body)
    return cfg


def test_exit_code_and_thresholds() -> None:
    import datetime as dt

    assert exit_code([Check("a", "x", OK, "")]) == EXIT_OK
    assert exit_code([Check("a", "x", OK, ""), Check("a", "y", WARN, "")]) == EXIT_WARN
    assert exit_code([Check("a", "x", WARN, ""), Check("a", "y", FAIL, "")]) == EXIT_FAIL
    now = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
    assert cert_days_left(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), now) == -9
    assert cert_days_left(dt.datetime(2026, 2, 9, 12, tzinfo=dt.UTC), now) == 30
    assert headroom_result(10, 100) == OK
    assert headroom_result(85, 100) == WARN
    assert headroom_result(99, 100) == FAIL


def test_healthy_agent(tmp_path: Path, mosquitto: Mosquitto) -> None:
    cfg = config(tmp_path, mosquitto.url)
    agent = AgentProcess(cfg, tmp_path / "state")
    agent.start(wait_connected=True)
    try:
        rc, checks = doctor(cfg)
        for name in (
            "config valid",
            f"reach 127.0.0.1:{mosquitto.port}",
            "outbox headroom",
            "agent running",
            "link",
            "disk free",
        ):
            assert checks[name].result == OK, checks[name]
        assert "from running agent" in checks["outbox headroom"].detail
        # clock and systemd may be unknown in a container: warnings at most.
        assert rc in (EXIT_OK, EXIT_WARN)
        text = outpost(cfg, "doctor")
        assert "✓ agent running" in text.stdout and "Traceback" not in text.stderr
    finally:
        agent.terminate()


def test_broker_down(tmp_path: Path, mosquitto: Mosquitto) -> None:
    cfg = config(tmp_path, mosquitto.url)
    agent = AgentProcess(cfg, tmp_path / "state")
    agent.start(wait_connected=True)
    try:
        mosquitto.stop()
        rc, checks = doctor(cfg)
        assert rc == EXIT_FAIL
        reach = checks[f"reach 127.0.0.1:{mosquitto.port}"]
        assert reach.result == FAIL and "refused" in reach.detail.lower() and reach.hint
        assert checks["link"].result == FAIL
        assert checks["agent running"].result == OK
    finally:
        agent.terminate()


def test_invalid_config_is_a_cross_not_a_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[mqtt]\nurls = ["http://x"]\n')
    rc, checks = doctor(cfg)
    assert rc == EXIT_FAIL
    assert checks["config valid"].result == FAIL and "mqtt.urls" in checks["config valid"].detail


def _tls_broker(tmp_path: Path, pki: Path) -> Mosquitto:
    broker = Mosquitto(
        tmp_path / "broker",
        port=free_port(),
        extra=(
            f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\n"
            f"keyfile {pki / 'server.key'}\n"
            "require_certificate true\nuse_identity_as_username true\n"
        ),
    )
    broker.start()
    return broker


def _tls_extra(pki: Path) -> str:
    return (
        f'[mqtt.tls]\nca_file = "{pki / "ca.crt"}"\ncert_file = "{pki / "test-box.crt"}"\n'
        f'key_file = "{pki / "test-box.key"}"\n'
    )


def test_tls_valid_certificates_days(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", server_days=400, client_days=20)
    broker = _tls_broker(tmp_path, pki)
    try:
        cfg = config(tmp_path, f"mqtts://127.0.0.1:{broker.port}", extra=_tls_extra(pki))
        _, checks = doctor(cfg)
        assert checks[f"TLS 127.0.0.1:{broker.port}"].result == OK
        server = checks["server certificate"]
        assert server.result == OK and "expires in 399 days" in server.detail
        client = checks["client certificate"]
        # Under 30 days left: a warning with the renew hint.
        assert client.result == WARN and "expires in 19 days" in client.detail and client.hint
        r = outpost(cfg, "test-publish", "--json")
        res = json.loads(r.stdout)
        assert r.returncode == 0 and res["ok"], res
        assert res["connect_ms"] > 0 and res["puback_ms"] > 0 and res["roundtrip_ms"] > 0
    finally:
        broker.stop()


def test_tls_expired_certificates(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", server_days=-10, client_days=-3)
    broker = _tls_broker(tmp_path, pki)
    try:
        cfg = config(tmp_path, f"mqtts://127.0.0.1:{broker.port}", extra=_tls_extra(pki))
        rc, checks = doctor(cfg)
        assert rc == EXIT_FAIL
        tls = checks[f"TLS 127.0.0.1:{broker.port}"]
        assert tls.result == FAIL and "expired" in tls.detail
        server = checks["server certificate"]
        assert server.result == FAIL and "expired 11 days ago" in server.detail
        client = checks["client certificate"]
        assert client.result == FAIL and "expired 4 days ago" in client.detail
        r = outpost(cfg, "test-publish")
        assert r.returncode == 1 and "TLS failure" in r.stderr and "Traceback" not in r.stderr
    finally:
        broker.stop()


def test_missing_serial_device_and_present_pty(tmp_path: Path, mosquitto: Mosquitto) -> None:
    master, slave = os.openpty()
    try:
        pty_path = os.ttyname(slave)
        readers = (
            '[[patrol.readers]]\nname = "gate"\ntype = "rdm6300"\nport = "/dev/ttyX-outpost-none"\n'
            f'\n[[patrol.readers]]\nname = "yard"\ntype = "rdm6300"\nport = "{pty_path}"\n'
        )
        cfg = config(tmp_path, mosquitto.url, extra=readers)
        rc, checks = doctor(cfg)
        assert rc == EXIT_FAIL
        gate = checks["reader gate"]
        assert gate.result == FAIL and "does not exist" in gate.detail and gate.hint
        assert checks["reader yard"].result == OK
    finally:
        os.close(master)
        os.close(slave)


def _models(d: Path, *, corrupt: bool) -> Path:
    d.mkdir()
    blob = b"not really a tflite model" * 100
    (d / "m.tflite").write_bytes(blob)
    digest = hashlib.sha256(blob + (b"x" if corrupt else b"")).hexdigest()
    manifest: dict[str, Any] = {
        "models": [{"name": "plate-test", "file": "m.tflite", "sha256": digest}]
    }
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


@pytest.mark.parametrize("corrupt", [False, True])
def test_model_hash(tmp_path: Path, mosquitto: Mosquitto, corrupt: bool) -> None:
    models = _models(tmp_path / "models", corrupt=corrupt)
    plates = (
        f'[plates]\nenabled = true\nmodel_dir = "{models}"\n'
        '[plates.ocr]\ntype = "outpost"\nmodel = "plate-test"\n'
    )
    cfg = config(tmp_path, mosquitto.url, plates=plates)
    _, checks = doctor(cfg)
    check = checks["plates model plate-test"]
    if corrupt:
        assert check.result == FAIL and "corrupt" in check.detail and check.hint
    else:
        assert check.result == OK and "sha256 ok" in check.detail
        # a file that passes its hash but is no model: the reader cannot be built
        reading = checks["plates reading (reference plates)"]
        assert reading.result == FAIL and reading.hint
    # the plate finder ([plates] finder = "both" by default) is a model of its own
    finder = checks["plates model outpost-plate-find-int8"]
    assert finder.result == FAIL and "not in" in finder.detail and finder.hint


def _latin_models(d: Path, *, misread: bool) -> Path:
    """The three Latin models and the finder in ``d``, each file as committed (its sha256
    passes); with ``misread`` the manifest gives the OCR models their alphabet backwards,
    as a model the runtime does not run as trained reads: right shape, wrong characters."""
    repo = Path(__file__).resolve().parents[2] / "models"
    manifest = json.loads((repo / "manifest.json").read_text())
    keep = {*LATIN_MODELS, "outpost-plate-find-int8"}
    entries = [m for m in manifest["models"] if m["name"] in keep]
    d.mkdir()
    for m in entries:
        (d / m["file"]).write_bytes((repo / m["file"]).read_bytes())
        if misread and "alphabet" in m:
            m["alphabet"] = m["alphabet"][::-1]
    (d / "manifest.json").write_text(json.dumps({"models": entries}, ensure_ascii=False))
    return d


LATIN_MODELS = (
    "outpost-plate-ocr-latin-int8",
    "outpost-plate-ocr-latin-b-int8",
    "outpost-plate-ocr-latin-c-int8",
)


@pytest.mark.parametrize("misread", [False, True])
def test_the_models_must_read_the_reference_plate(
    tmp_path: Path, mosquitto: Mosquitto, misread: bool
) -> None:
    """A model file can pass its sha256 check and still read wrong; the doctor reads the
    reference plate (``agent/plates/reference``) with the box's settings."""
    models = _latin_models(tmp_path / "models", misread=misread)
    plates = (
        f'[plates]\nenabled = true\ncountries = ["us"]\nmodel_dir = "{models}"\n'
        f"[plates.ocr]\nmodel = {json.dumps(list(LATIN_MODELS))}\n"
    )
    rc, checks = doctor(config(tmp_path, mosquitto.url, plates=plates))
    assert all(checks[f"plates model {m}"].result == OK for m in LATIN_MODELS)
    check = checks["plates reading (reference plates)"]
    if misread:
        assert check.result == FAIL and "7ABC123 read as" in check.detail and check.hint
        assert rc == EXIT_FAIL
    else:
        assert check.result == OK and "7ABC123" in check.detail, check
        assert "皖" not in check.detail  # countries = ["us"]: the Chinese plate is not read


def test_drop_in_model_is_loaded_not_only_found(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A fast-plate-ocr ``.tflite`` whose shape is not its plate config's fails the check
    with both shapes named; the shared ONNX model passes where onnxruntime is installed."""
    repo = Path(__file__).resolve().parents[2]
    wrong = tmp_path / "fpo.tflite"  # a real TFLite file of another kind: our CTC model
    wrong.write_bytes((repo / "models" / "outpost-plate-ocr-latin-int8.tflite").read_bytes())

    def check(model: Path) -> Check:
        plates = (
            '[plates]\nenabled = true\nfinder = "classical"\n'
            f'[plates.ocr]\ntype = "fast-plate-ocr"\npath = "{model}"\n'
        )
        _, checks = doctor(config(tmp_path, mosquitto.url, plates=plates))
        return checks["plates model (fast-plate-ocr)"]

    bad = check(wrong)
    assert bad.result == FAIL and "takes input [1, 32, 128, 1]" in bad.detail and bad.hint
    missing = check(tmp_path / "none.onnx")
    assert missing.result == FAIL and "missing" in missing.detail
    onnx = repo.parent / "shared" / "models" / "fast_plate_ocr_cct_xs_v1_global.onnx"
    if onnx.is_file():
        pytest.importorskip("onnxruntime", reason="onnxruntime (the onnx extra)")
        good = check(onnx)
        assert good.result == OK and "loads" in good.detail


def test_outbox_nearly_full(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A small max_bytes stands in for a full disk: the broker is down and events pile up."""
    mosquitto.stop()
    cfg = config(tmp_path, mosquitto.url, extra="[outbox]\nmax_bytes = 65536\n")
    agent = AgentProcess(cfg, tmp_path / "state")
    agent.start()
    try:
        big = json.dumps({"blob": "x" * 3000})
        for _ in range(24):
            assert agent.simulate("event", "patrol.sample", "--data", big)["ok"]
        rc, checks = doctor(cfg)
        head = checks["outbox headroom"]
        assert head.result in (WARN, FAIL), head
        assert "of 65536 bytes" in head.detail and head.hint
        assert rc == EXIT_FAIL  # the broker is down too
    finally:
        agent.terminate()
    # Agent stopped: doctor reads the SQLite file read-only and still sees it.
    _, checks = doctor(cfg)
    head = checks["outbox headroom"]
    assert head.result in (WARN, FAIL) and "from outbox file" in head.detail
    assert checks["agent running"].result == FAIL


def test_cameras_and_vision_model(tmp_path: Path, mosquitto: Mosquitto) -> None:
    models = tmp_path / "vmodels"
    models.mkdir()
    (models / "det.tflite").write_bytes(b"detector bytes")
    (models / "labels.txt").write_text("person\ncar\n")
    entry = {
        "name": "det",
        "file": "det.tflite",
        "sha256": hashlib.sha256(b"other bytes").hexdigest(),
        "input": {"width": 300, "height": 300},
        "outputs": "ssd_postprocess",
        "labels": "labels.txt",
        "licence": "test",
    }
    (models / "manifest.json").write_text(json.dumps({"models": [entry]}))
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0")
    vision = (
        f'[vision]\nenabled = true\n[vision.detector]\nmodel_dir = "{models}"\nmodel = "det"\n'
        f'[[vision.cameras]]\nname = "gate"\nkind = "rtsp"\nurl = "rtsp://127.0.0.1:{free_port()}/s"\n'
        f'[[vision.cameras]]\nname = "yard"\nkind = "file"\npath = "{clip}"\n'
        f'[[vision.cameras]]\nname = "lane"\nkind = "file"\npath = "{tmp_path / "none.mp4"}"\n'
    )
    cfg = config(tmp_path, mosquitto.url, vision=vision)
    rc, checks = doctor(cfg)
    assert rc == EXIT_FAIL
    assert checks["camera gate"].result == FAIL and "rtsp 127.0.0.1" in checks["camera gate"].detail
    assert checks["camera yard"].result == OK
    assert checks["camera lane"].result == FAIL and "missing" in checks["camera lane"].detail
    det = checks["vision model det"]
    assert det.result == FAIL and "corrupt" in det.detail
