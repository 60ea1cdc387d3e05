"""Periodic ``device.health``: uptime, outbox depth per class, link state, platform figures.

Platform figures (CPU temperature, throttling, disk free) are included where the platform
exposes them and left out elsewhere.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.events import EventSink

log = logging.getLogger(__name__)

_THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")
_THROTTLED = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")


def platform_figures(state_dir: Path) -> dict[str, Any]:
    """What this box can tell about itself; keys are absent where it cannot."""
    out: dict[str, Any] = {}
    try:
        out["cpu_temp_c"] = round(int(_THERMAL.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        pass
    try:
        out["throttled"] = _THROTTLED.read_text().strip()
    except OSError:
        pass
    try:
        usage = shutil.disk_usage(state_dir)
        out["disk_free_bytes"] = usage.free
        out["disk_total_bytes"] = usage.total
    except OSError:
        pass
    try:
        out["load_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return out


class HealthReporter:
    """Emits one ``device.health`` event every ``interval_s`` from a snapshot function."""

    name = "health"

    def __init__(self, sink: EventSink, snapshot: Callable[[], dict[str, Any]],
                 interval_s: float) -> None:
        self._sink = sink
        self._snapshot = snapshot
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def status(self) -> dict[str, Any]:
        return {"sent": self.sent, "interval_s": self._interval}

    def report_now(self) -> None:
        self._sink.emit("device.health", self._snapshot())
        self.sent += 1

    def _run(self) -> None:
        # First report shortly after start so the centre sees figures right after birth.
        next_at = time.monotonic() + min(5.0, self._interval)
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            next_at += self._interval
            try:
                self.report_now()
            except Exception:
                log.exception("health report failed")
