"""A real mosquitto with two TLS listeners, wired the way the reference signer expects.

* enrolment listener: username = device id, password = one-time token (password file),
  per-device ACL (``enrol.acl``);
* device listener: client certificate required, CN = username, per-device ACL
  (``device.acl``).

Certificates come from the signer's own dev CA, in a temp dir. Started on free ports.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from provisioning.signer import SIGNER_USER, DevCA, MosquittoAuth, TokenStore

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TlsBroker:
    workdir: Path
    ca: DevCA
    auth: MosquittoAuth
    store: TokenStore
    enrol_port: int
    device_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.crt"

    @property
    def enrol_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.enrol_port}"

    @property
    def device_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.device_port}"

    @property
    def signer_cert(self) -> tuple[Path, Path]:
        return self.workdir / f"{SIGNER_USER}.crt", self.workdir / f"{SIGNER_USER}.key"

    def log(self) -> str:
        try:
            return (self.workdir / "mosquitto.log").read_text()
        except OSError:
            return ""

    def start(self) -> None:
        conf = self.workdir / "mosquitto.conf"
        tls = (
            f"cafile {self.ca_file}\n"
            f"certfile {self.workdir / 'server.crt'}\n"
            f"keyfile {self.workdir / 'server.key'}\n"
            "tls_version tlsv1.2\n"
        )
        conf.write_text(
            "per_listener_settings true\n"
            "persistence false\n"
            f"pid_file {self.workdir / 'mosquitto.pid'}\n"
            f"user {getpass.getuser()}\n"
            f"log_dest file {self.workdir / 'mosquitto.log'}\n"
            "log_type all\n"
            f"\nlistener {self.enrol_port} 127.0.0.1\n{tls}"
            "allow_anonymous false\n"
            f"password_file {self.auth.password_file}\n"
            f"acl_file {self.auth.enrol_acl}\n"
            f"\nlistener {self.device_port} 127.0.0.1\n{tls}"
            "require_certificate true\n"
            "use_identity_as_username true\n"
            "allow_anonymous false\n"
            f"acl_file {self.auth.device_acl}\n"
        )
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        for port in (self.enrol_port, self.device_port):
            while True:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"mosquitto exited: {err}\n{self.log()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"mosquitto did not listen:\n{self.log()}") from None
                    time.sleep(0.05)
        deadline = time.monotonic() + 5
        while not (self.workdir / "mosquitto.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def make_tls_broker(workdir: Path) -> TlsBroker:
    if not os.path.exists(MOSQUITTO):
        pytest.skip("mosquitto is not installed")
    if not shutil.which("mosquitto_passwd"):
        pytest.skip("mosquitto_passwd is not installed")
    ca = DevCA.create(workdir)
    ca.issue_server_cert(workdir, ["localhost", "127.0.0.1"])
    ca.issue_client_cert(workdir, SIGNER_USER)
    auth = MosquittoAuth(
        password_file=workdir / "enrol.passwd",
        enrol_acl=workdir / "enrol.acl",
        device_acl=workdir / "device.acl",
        pid_file=workdir / "mosquitto.pid",
    )
    store = TokenStore(workdir / "tokens.json")
    auth.add_enrolment_user("placeholder-never-used", "x" * 32)
    auth.render(store)
    return TlsBroker(workdir, ca, auth, store, free_port(), free_port())
