"""systemd readiness and watchdog notifications (``sd_notify``), in pure Python.

Owns the datagram to ``$NOTIFY_SOCKET`` and the watchdog pinger that only pings while the
daemon's main loop proves it is alive. Without ``NOTIFY_SOCKET`` everything is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def _socket_address(raw: str) -> str | bytes | None:
    """Turn ``$NOTIFY_SOCKET`` into an address for ``sendto``; ``None`` when unusable.

    A leading ``@`` means the Linux abstract namespace (a NUL byte on the wire).
    """
    if not raw:
        return None
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    # vsock (``vsock:CID:PORT``) and other forms are not used on our boxes.
    return None


def notify(state: str) -> bool:
    """Send one ``sd_notify`` message; return True if it was handed to systemd.

    Never raises: a broken notify socket must not take the daemon down (systemd will
    restart it anyway if the watchdog pings stop arriving).
    """
    address = _socket_address(os.environ.get("NOTIFY_SOCKET", ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.debug("sd_notify %r failed: %s", state, exc)
        return False
    return True


def ready(status_text: str | None = None) -> bool:
    """``READY=1``: config validated, outbox open, link started (not necessarily connected)."""
    msg = "READY=1"
    if status_text:
        msg += "\nSTATUS=" + _one_line(status_text)
    return notify(msg)


def watchdog() -> bool:
    """``WATCHDOG=1``: one keep-alive ping."""
    return notify("WATCHDOG=1")


def stopping(status_text: str | None = None) -> bool:
    """``STOPPING=1``: shutdown has begun."""
    msg = "STOPPING=1"
    if status_text:
        msg += "\nSTATUS=" + _one_line(status_text)
    return notify(msg)


def status(text: str) -> bool:
    """``STATUS=…``: the line ``systemctl status`` shows, e.g. ``online; queue=0``."""
    return notify("STATUS=" + _one_line(text))


def watchdog_interval() -> float | None:
    """Seconds of ``WatchdogSec=`` for this process, or None when no watchdog applies.

    Follows sd_watchdog_enabled(3): ``WATCHDOG_USEC`` must be a positive integer and, when
    ``WATCHDOG_PID`` is set, it must be our pid (a child must not ping for its parent).
    """
    usec = os.environ.get("WATCHDOG_USEC", "")
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return value / 1_000_000


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Watchdog:
    """Pings systemd's watchdog at half the interval, but only while the main loop is alive.

    ``is_alive`` is the daemon's liveness check (for example "the supervision loop ticked in
    the last N seconds and every critical thread reported a heartbeat"). When it returns
    False the pings stop, systemd sees the deadline pass and restarts the service: a hung
    main loop is never hidden by a healthy pinger thread.
    """

    def __init__(
        self,
        is_alive: Callable[[], bool],
        interval_s: float | None = None,
        ping: Callable[[], bool] = watchdog,
    ) -> None:
        self._is_alive = is_alive
        self._interval_s = interval_s if interval_s is not None else watchdog_interval()
        self._ping = ping
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pings = 0
        self.skipped = 0
        self.last_ping_monotonic: float | None = None

    @property
    def enabled(self) -> bool:
        return self._interval_s is not None and self._interval_s > 0

    @property
    def period_s(self) -> float | None:
        """Seconds between pings: half of ``WatchdogSec``."""
        return self._interval_s / 2 if self._interval_s else None

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sd-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        period = self.period_s
        assert period is not None
        while not self._stop.is_set():
            try:
                alive = bool(self._is_alive())
            except Exception:  # a crashing liveness check means "not alive"
                log.exception("watchdog liveness check raised")
                alive = False
            if alive:
                self._ping()
                self.pings += 1
                self.last_ping_monotonic = time.monotonic()
            else:
                self.skipped += 1
                log.warning("main loop not alive; withholding the systemd watchdog ping")
            self._stop.wait(period)


class Heartbeat:
    """A liveness flag for the main loop: ``beat()`` each iteration, ``fresh()`` for the watchdog.

    Pass ``heartbeat.fresh`` as ``Watchdog(is_alive=...)``.
    """

    def __init__(self, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self._last = time.monotonic()

    def beat(self) -> None:
        self._last = time.monotonic()

    def age_s(self) -> float:
        return time.monotonic() - self._last

    def fresh(self) -> bool:
        return self.age_s() <= self.max_age_s
