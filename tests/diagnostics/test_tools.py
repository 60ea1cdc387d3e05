"""test-publish, support-bundle, tail --type, outbox stats|list|purge and status --json,
each run as the field tech runs them: the ``outpost`` CLI against a running agent."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from agent.diagnostics import REDACTED, redact, toml_dump
from tests.diagnostics.test_doctor import config, outpost
from tests.fixtures.agent import AgentProcess
from tests.fixtures.broker import Mosquitto, free_port


@pytest.fixture
def agent(tmp_path: Path, mosquitto: Mosquitto) -> AgentProcess:
    cfg = config(tmp_path, mosquitto.url)
    proc = AgentProcess(cfg, tmp_path / "state")
    proc.start(wait_connected=True)
    yield proc  # type: ignore[misc]
    if proc.proc is not None:
        proc.terminate()


def test_redact_secrets_and_urls() -> None:
    cfg = {
        "mqtt": {
            "username": "box1",
            "password": "hunter2",
            "urls": ["mqtts://box1:s3cret@broker:8883"],
            "tls": {"key_file": "/etc/outpost/device.key", "ca_file": "/etc/outpost/ca.crt"},
        },
        "plates": {"privacy": {"hash_key_file": "/x"}},
        "provision": {"enrol_token": "abc", "api_key": "k"},
    }
    out = redact(cfg)
    assert out["mqtt"]["password"] == REDACTED and out["mqtt"]["username"] == "box1"
    assert out["mqtt"]["urls"] == [f"mqtts://box1:{REDACTED}@broker:8883"]
    assert out["mqtt"]["tls"]["key_file"] == "/etc/outpost/device.key"  # a path, not a key
    assert out["provision"] == {"enrol_token": REDACTED, "api_key": REDACTED}
    dumped = toml_dump(out)
    assert "hunter2" not in dumped and "s3cret" not in dumped and "[mqtt.tls]" in dumped


def test_test_publish_round_trip(agent: AgentProcess) -> None:
    r = outpost(agent.config, "test-publish", "--json")
    res = json.loads(r.stdout)
    assert r.returncode == 0 and res["ok"], res
    assert res["topic"].startswith("outpost/t/city/county/test-box/diag/echo/")
    # The echo may overtake the PUBACK: mosquitto forwards before it acknowledges.
    assert 0 < res["puback_ms"] < 5000 and 0 < res["roundtrip_ms"] < 5000
    text = outpost(agent.config, "test-publish")
    assert text.stdout.startswith("ok:") and "round trip" in text.stdout


def test_test_publish_broker_down(tmp_path: Path) -> None:
    cfg = config(tmp_path, f"mqtt://127.0.0.1:{free_port()}")
    r = outpost(cfg, "test-publish")
    assert r.returncode == 1
    assert "broker down or unreachable" in r.stderr and "Traceback" not in r.stderr


def test_test_publish_not_authorised(tmp_path: Path) -> None:
    pw = tmp_path / "passwd"
    pw.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "box", "right"], check=True)
    pw.chmod(0o600)
    broker = Mosquitto(tmp_path / "broker", extra=f"allow_anonymous false\npassword_file {pw}\n")
    broker.start()
    try:
        cfg = config(tmp_path, broker.url, mqtt_extra='username = "box"\npassword = "wrong"')
        r = outpost(cfg, "test-publish", "--json")
        res = json.loads(r.stdout)
        assert r.returncode == 1 and "not authorised" in res["error"], res
        cfg.write_text(cfg.read_text().replace('"wrong"', '"right"'))
        r = outpost(cfg, "test-publish", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["ok"]
    finally:
        broker.stop()


def test_support_bundle(tmp_path: Path, mosquitto: Mosquitto) -> None:
    key = tmp_path / "device.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIGHAgEAsecretsecret\n-----END PRIVATE KEY-----\n")
    cfg = config(
        tmp_path,
        mosquitto.url,
        mqtt_extra=f'username = "box"\npassword = "hunter2-pass"\n[mqtt.tls]\nkey_file = "{key}"',
    )
    agent = AgentProcess(cfg, tmp_path / "state")
    agent.start()
    try:
        out = tmp_path / "bundle.tar.gz"
        r = outpost(cfg, "support-bundle", "--out", str(out))
        assert r.returncode == 0 and str(out) in r.stdout, r.stderr
    finally:
        agent.terminate()
    with tarfile.open(out) as tar:
        files = {Path(m.name).name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert set(files) == {"config.toml", "logs.txt", "status.json", "doctor.json", "versions.json"}
    everything = b"".join(files.values())
    assert b"hunter2-pass" not in everything
    assert b"PRIVATE KEY" not in everything and b"secretsecret" not in everything
    assert REDACTED.encode() in files["config.toml"]
    assert b"agent" in files["logs.txt"]  # the daemon's log file (no journal here)
    assert json.loads(files["status.json"])["device_id"] == "test-box"
    assert any(c["name"] == "agent running" for c in json.loads(files["doctor.json"]))
    versions = json.loads(files["versions.json"])
    assert {"outpost", "python", "paho-mqtt", "pydantic", "os"} <= set(versions)


def test_tail_filters_by_type(agent: AgentProcess) -> None:
    tail = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "--config",
            str(agent.config),
            "tail",
            "--json",
            "--type",
            "alarm",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[dict[str, object]] = []
    got_alarm = threading.Event()

    def read() -> None:
        assert tail.stdout is not None
        for line in tail.stdout:
            lines.append(json.loads(line))
            if str(lines[-1].get("type", "")).startswith("alarm"):
                got_alarm.set()

    threading.Thread(target=read, name="tail-reader", daemon=True).start()
    try:
        # the tail needs a moment to start and subscribe on the control socket (longer on a
        # loaded machine): offer a sample and an alarm each second until an alarm comes out
        deadline = time.monotonic() + 30
        while not got_alarm.is_set() and time.monotonic() < deadline:
            assert agent.simulate("event", "device.sample")["ok"]
            assert agent.simulate("event", "alarm.panic")["ok"]
            got_alarm.wait(1.0)
        assert got_alarm.is_set(), lines
        assert agent.simulate("event", "device.sample")["ok"]
        time.sleep(0.5)
    finally:
        tail.terminate()
        tail.wait(10)
    types = [e["type"] for e in lines]
    assert types and set(types) == {"alarm.panic"}, types


def test_outbox_stats_list_purge(tmp_path: Path, agent: AgentProcess, mosquitto: Mosquitto) -> None:
    # the first device.health report comes about 5 s after start; let it go out first, or
    # on a slow machine it lands in the outbox mid-test as a fourth telemetry event
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if agent.status()["last_events"].get("device", {}).get("type") == "device.health":
            break
        time.sleep(0.1)
    mosquitto.stop()
    deadline = time.monotonic() + 10
    while agent.status()["link"]["connected"] and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(3):
        agent.simulate("event", "alarm.panic")
        agent.simulate("event", "device.sample")
    stats = json.loads(outpost(agent.config, "outbox", "stats", "--json").stdout)
    assert stats["classes"]["alarm"]["depth"] == 3
    assert stats["classes"]["telemetry"]["depth"] == 3
    listed = json.loads(
        outpost(agent.config, "outbox", "list", "--class", "alarm", "--json").stdout
    )
    assert [e["type"] for e in listed] == ["alarm.panic"] * 3

    refused = outpost(agent.config, "outbox", "purge", "--class", "alarm", "--yes")
    assert refused.returncode == 2 and "--include-alarms" in refused.stderr
    no_tty = outpost(agent.config, "outbox", "purge", "--class", "telemetry")
    assert no_tty.returncode == 2 and "--yes" in no_tty.stderr
    assert agent.status()["outbox"]["telemetry"]["depth"] == 3
    ok = outpost(agent.config, "outbox", "purge", "--class", "telemetry", "--yes")
    assert ok.returncode == 0, ok.stderr
    st = agent.status()["outbox"]
    assert st["telemetry"]["depth"] == 0 and st["alarm"]["depth"] == 3


def test_status_json(agent: AgentProcess) -> None:
    r = outpost(agent.config, "status", "--json")
    st = json.loads(r.stdout)
    assert r.returncode == 0
    assert st["device_id"] == "test-box" and st["link"]["connected"] is True
    assert set(st["outbox"]) >= {"alarm", "telemetry"}


def test_status_lines_put_the_counters_before_long_text() -> None:
    """``outpost status`` prints a component on one line, cut at 200 characters: the plate
    component's six model names (about 170 characters) had pushed its reads, hits and
    watchlist past the cut."""
    from agent.cli import component_line

    ocr = "+".join(f"outpost-plate-ocr-{n}-int8" for n in ("latin", "latin-b", "latin-c", "d", "e"))
    plates = {"enabled": True, "fault": None, "ocr": ocr, "frames": 12, "reads": 3, "hits": 1,
              "open_tracks": 0, "watchlist": 2}  # fmt: skip
    line = component_line("plates", plates)
    assert len(line) == 200 and line.endswith("…")
    for counter in ('"reads": 3', '"hits": 1', '"watchlist": 2', '"fault": null'):
        assert counter in line
    assert line.index('"watchlist"') < line.index('"ocr"')
    short = component_line("sim", {"scripts": 1, "emitted": 4})
    assert short == 'sim       {"scripts": 1, "emitted": 4}'


def test_status_without_agent_is_one_clear_line(tmp_path: Path) -> None:
    cfg = config(tmp_path, f"mqtt://127.0.0.1:{free_port()}")
    r = outpost(cfg, "status", "--json")
    assert r.returncode == 69 and "Traceback" not in r.stderr and r.stderr.strip()
