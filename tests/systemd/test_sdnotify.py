"""sd_notify client and the watchdog pinger, against a real unix datagram socket."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import sdnotify


class NotifyListener:
    """Plays systemd: a bound datagram socket that records every message with its time."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-systemd", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def pings_between(self, start: float, end: float) -> int:
        return sum(1 for t, m in self.messages if m == "WATCHDOG=1" and start <= t < end)


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyListener]:
    path = tmp_path / "notify.sock"
    lst = NotifyListener(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield lst
    lst.close()


def _wait_for(pred, timeout: float = 2.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_messages_reach_the_socket(listener: NotifyListener) -> None:
    assert sdnotify.ready("starting\nup")
    assert sdnotify.status("online; queue=0")
    assert sdnotify.watchdog()
    assert sdnotify.stopping()
    assert _wait_for(lambda: len(listener.messages) == 4)
    assert [m for _, m in listener.messages] == [
        "READY=1\nSTATUS=starting up",
        "STATUS=online; queue=0",
        "WATCHDOG=1",
        "STOPPING=1",
    ]


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"outpost-test-{os.getpid()}-{time.monotonic_ns()}"
    lst = NotifyListener(b"\0" + name.encode())
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.ready()
        assert _wait_for(lambda: [m for _, m in lst.messages] == ["READY=1"])
    finally:
        lst.close()


def test_noop_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready() is False
    assert sdnotify.watchdog() is False
    # A socket path that nobody listens on soft-fails too.
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/notify.sock")
    assert sdnotify.watchdog() is False


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert sdnotify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    assert sdnotify.watchdog_interval() == 20.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_interval() == 20.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert sdnotify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    monkeypatch.setenv("WATCHDOG_USEC", "0")
    assert sdnotify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "soon")
    assert sdnotify.watchdog_interval() is None


def test_watchdog_pings_while_loop_runs_and_stops_when_it_hangs(
    listener: NotifyListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    # WatchdogSec=0.4s → a ping every 0.2 s; the loop counts as alive for 0.15 s after a tick.
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    heartbeat = sdnotify.Heartbeat(max_age_s=0.15)
    hang = threading.Event()
    quit_loop = threading.Event()

    def main_loop() -> None:
        while not quit_loop.is_set():
            if hang.is_set():
                quit_loop.wait()  # stuck: never beats again
                return
            heartbeat.beat()
            time.sleep(0.02)

    loop = threading.Thread(target=main_loop, name="fake-main-loop", daemon=True)
    loop.start()
    dog = sdnotify.Watchdog(is_alive=heartbeat.fresh)
    assert dog.period_s == pytest.approx(0.2)
    t0 = time.monotonic()
    dog.start()
    try:
        time.sleep(1.0)
        t_hang = time.monotonic()
        hang.set()
        time.sleep(1.2)
        t_end = time.monotonic()
    finally:
        dog.stop()
        quit_loop.set()
        loop.join()

    alive_pings = listener.pings_between(t0, t_hang)
    # 1.0 s at one ping per 0.2 s: about 5; allow scheduling slack on a busy CI box.
    assert alive_pings >= 3, listener.messages
    # Once the heartbeat is older than 0.15 s, at most one in-flight ping can still land.
    settle = t_hang + 0.15 + 0.2
    assert listener.pings_between(settle, t_end) == 0, listener.messages
    assert dog.skipped >= 3


def test_watchdog_disabled_without_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    dog = sdnotify.Watchdog(is_alive=lambda: True)
    assert not dog.enabled
    dog.start()  # no thread, no error
    dog.stop()
    assert dog.pings == 0


def test_crashing_liveness_check_withholds_pings(listener: NotifyListener) -> None:
    def broken() -> bool:
        raise RuntimeError("liveness probe broke")

    dog = sdnotify.Watchdog(is_alive=broken, interval_s=0.1)
    dog.start()
    time.sleep(0.3)
    dog.stop()
    assert dog.pings == 0
    assert dog.skipped >= 2
    assert listener.pings_between(0, time.monotonic()) == 0
