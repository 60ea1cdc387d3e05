"""The scripted event source of the simulated profile: fixed events on fixed intervals.

Used by the README demo and field checks to show events flowing without any hardware;
real simulated hardware (mock pins, pty readers, video files) lives in each driver.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from agent.config import SimScript
from agent.events import EventSink, Priority
from agent.runtime import AgentContext, Component

log = logging.getLogger(__name__)


class ScriptedSource:
    """Emits each configured script's event every ``every_s`` seconds, with a counter."""

    name = "sim"

    def __init__(self, sink: EventSink, scripts: list[SimScript]) -> None:
        self._sink = sink
        self._scripts = scripts
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.emitted = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sim-scripts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def status(self) -> dict[str, Any]:
        return {"scripts": len(self._scripts), "emitted": self.emitted}

    def _run(self) -> None:
        now = time.monotonic()
        due = [now + s.every_s for s in self._scripts]
        counts = [0] * len(self._scripts)
        while self._scripts:
            i = min(range(len(due)), key=due.__getitem__)
            if self._stop.wait(max(0.0, due[i] - time.monotonic())):
                return
            script = self._scripts[i]
            counts[i] += 1
            due[i] += script.every_s
            data = {**script.data, "sim_count": counts[i]}
            prio = Priority.parse(script.priority) if script.priority else None
            try:
                self._sink.emit(script.type, data, priority=prio)
                self.emitted += 1
            except Exception:
                log.exception("sim script %s failed", script.type)


def build(ctx: AgentContext) -> list[Component]:
    sim = ctx.settings.sim
    if not sim.enabled or not sim.scripts:
        return []
    return [ScriptedSource(ctx.sink, list(sim.scripts))]
