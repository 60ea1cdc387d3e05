"""The ``outpost run`` daemon: builds the outbox, link, control socket and components from
config, runs until SIGTERM/SIGINT, then flushes and exits cleanly.

Component builders are listed in ``BUILDERS``; one that fails to build becomes a
``device.fault`` event and the rest of the agent keeps working.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Mapping
from types import FrameType
from typing import Any, ClassVar

from agent import __version__, sdnotify
from agent.commands import CommandRegistry
from agent.config import Settings
from agent.control import ControlServer
from agent.errors import CommandError
from agent.events import Event, Priority, uuid7
from agent.health import HealthReporter, platform_figures
from agent.link import Link, Reply
from agent.outbox import Outbox, Pending
from agent.runtime import AgentContext, Component, LocalBus

log = logging.getLogger("outpost")

# "module:function" builders, each returning the components for one concern.
BUILDERS = [
    "drivers.sim:build",
    "drivers.gpio:build",
    "agent.patrol:build",
    "agent.vision:build",
    "agent.plates:build",
]


class AgentSink:
    """The ``EventSink`` drivers get: the outbox, plus 'last event per source' for status."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self.last: dict[str, dict[str, Any]] = {}

    def emit(
        self,
        type: str,
        data: Mapping[str, Any] | None = None,
        *,
        priority: Priority | None = None,
    ) -> Event:
        event = self._outbox.put(type, data, priority=priority)
        self.last[type.split(".")[0]] = {"type": type, "id": event.id, "seq": event.seq,
                                         "ts": event.ts}
        return event

    def emit_many(
        self, type: str, data: Mapping[str, Any], count: int, priority: Priority | None = None,
    ) -> list[Event]:
        """``count`` copies of one event, committed in groups; returns once all are on disk.

        Returns every event, or only the first and the last past 1,000 (a load test must not
        hold a million events in memory).
        """
        kept: list[Event] = []
        first: Event | None = None
        last: Event | None = None
        for start in range(0, count, 256):  # a few hundred in flight: memory stays flat
            futures = [self._outbox.submit(type, data, priority=priority)
                       for _ in range(min(256, count - start))]
            batch = [f.result() for f in futures]
            first, last = first or batch[0], batch[-1]
            if count <= 1000:
                kept.extend(batch)
        if first is None or last is None:
            return []
        self.last[type.split(".")[0]] = {"type": type, "id": last.id, "seq": last.seq,
                                         "ts": last.ts}
        return kept if count <= 1000 else [first, last]

class Agent:
    """One running agent. ``run()`` blocks until ``stop()`` or a signal."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started = time.time()
        self._stop = threading.Event()
        settings.device.state_dir.mkdir(parents=True, exist_ok=True)
        ttl = {
            Priority.PATROL: settings.outbox.ttl_patrol_s,
            Priority.VISION: settings.outbox.ttl_vision_s,
            Priority.TELEMETRY: settings.outbox.ttl_telemetry_s,
        }
        plates = getattr(settings, "plates", None)
        keep_reads = plates.privacy.non_hit_retention_s if plates is not None else None
        self.outbox = Outbox(
            settings.outbox_path,
            settings.device.id,
            max_bytes=settings.outbox.max_bytes,
            ttl_s=ttl,
            ttl_types={"plate.read": keep_reads} if keep_reads else None,
            group_commit_s=settings.outbox.group_commit_ms / 1000.0,
        )
        self.boot_id = uuid7()
        self.boot_count = self.outbox.bump_meta("boot_count")
        self.sink = AgentSink(self.outbox)
        self.bus = LocalBus()
        self.ctx = AgentContext(settings=settings, sink=self.sink, bus=self.bus)
        self.control = ControlServer(settings.control_socket)
        self.link = Link(
            settings,
            self.outbox,
            boot_id=self.boot_id,
            boot_count=self.boot_count,
            on_command=self._command_received,
            on_link_change=self.bus.publish_link,
            on_published=self._published,
        )
        self.outbox.add_listener(self.bus.publish_event)
        self.health = HealthReporter(self.sink, self.health_snapshot, settings.health.interval_s)
        self.components: list[Component] = []
        self._commands: queue.Queue[tuple[str, bytes, Reply] | None] = queue.Queue(maxsize=1000)
        self.commands_dropped = 0
        self.heartbeat = sdnotify.Heartbeat(max_age_s=10.0)
        self.watchdog = sdnotify.Watchdog(is_alive=self.heartbeat.fresh)
        self._register_core_ops()

    # -- lifecycle ----------------------------------------------------------------------
    def run(self) -> int:
        self.start()
        sdnotify.ready(f"outpost {__version__} running as {self.settings.device.id}")
        try:
            while not self._stop.wait(1.0):
                self.heartbeat.beat()
        finally:
            self.shutdown()
        return 0

    def start(self) -> None:
        self.heartbeat.beat()
        self.bus.start()
        self.link.start()
        self.control.start()
        for spec in BUILDERS:
            self.components.extend(self._build(spec))
        self._connect_tap_feedback()
        self._connect_plates()
        for comp in self.components:
            try:
                comp.start()
            except Exception as exc:
                log.exception("component %s failed to start", comp.name)
                self._fault(comp.name, f"failed to start: {exc}")
        # Commands received since the link connected (retained config pushes arrive at once)
        # waited in the queue until every component had registered its commands.
        threading.Thread(target=self._command_worker, name="commands", daemon=True).start()
        self.health.start()
        self.watchdog.start()
        log.info("outpost %s started: device %s, topics under %s, boot %d",
                 __version__, self.settings.device.id, self.settings.topic_base, self.boot_count)

    def stop(self) -> None:
        self._stop.set()

    def _connect_tap_feedback(self) -> None:
        """Patrol taps beep and blink through the GPIO panel's buzzer and LED, when both exist."""
        feedback = next((getattr(c, "feedback", None) for c in self.components
                         if hasattr(c, "feedback")), None)
        if feedback is None:
            return
        for comp in self.components:
            set_feedback = getattr(comp, "set_feedback", None)
            if callable(set_feedback):
                set_feedback(feedback)

    def _connect_plates(self) -> None:
        """Plate tracks decided in the vision worker become events in the plates component."""
        plates = next((c for c in self.components if c.name == "plates"), None)
        handler = getattr(plates, "handle_message", None)
        set_sink = getattr(plates, "set_watch_sink", None)
        set_limiter = getattr(plates, "set_media_limiter", None)
        for comp in self.components:
            set_handler = getattr(comp, "set_plate_handler", None)
            if handler is not None and callable(set_handler):
                set_handler(handler)
            set_watchlist = getattr(comp, "set_watchlist", None)
            if callable(set_watchlist) and callable(set_sink):
                set_sink(set_watchlist)  # the worker decides a watched car's track at once
            limit_media = getattr(comp, "limit_media", None)
            if callable(limit_media) and callable(set_limiter):
                set_limiter(limit_media)  # a non-hit's crop is kept no longer than its read

    def shutdown(self) -> None:
        sdnotify.stopping("flushing outbox")
        log.info("stopping: flushing the outbox")
        self.watchdog.stop()
        self.health.stop()
        for comp in reversed(self.components):
            try:
                comp.stop()
            except Exception:
                log.exception("component %s failed to stop", comp.name)
        self._commands.put(None)
        self.link.stop(flush_timeout=5.0)
        self.control.stop()
        self.bus.stop()
        self.outbox.close()
        log.info("stopped")

    def _build(self, spec: str) -> list[Component]:
        module_name, func_name = spec.split(":")
        try:
            builder = getattr(importlib.import_module(module_name), func_name)
            comps: list[Component] = builder(self.ctx)
            return comps
        except Exception as exc:
            log.exception("could not build %s", module_name)
            self._fault(module_name, f"could not start: {type(exc).__name__}: {exc}")
            return []

    def _fault(self, source: str, reason: str) -> None:
        try:
            self.sink.emit("device.fault", {"source": source, "reason": reason})
        except Exception:
            log.exception("could not record fault of %s", source)

    # -- status ---------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        stats = self.outbox.stats()
        comps: dict[str, Any] = {}
        for comp in self.components:
            try:
                comps[comp.name] = comp.status()
            except Exception as exc:
                comps[comp.name] = {"error": str(exc)}
        return {
            "device_id": self.settings.device.id,
            "version": __version__,
            "boot_id": self.boot_id,
            "boot_count": self.boot_count,
            "uptime_s": round(time.time() - self.started, 1),
            "topic_base": self.settings.topic_base,
            "link": self.link.status(),
            "outbox": {
                p.label: {"depth": s.depth, "bytes": s.bytes,
                          "oldest_age_s": None if s.oldest_age_s is None
                          else round(s.oldest_age_s, 1)}
                for p, s in stats.items()
            },
            "outbox_counters": self.outbox.counters(),
            "outbox_max_bytes": self.outbox.max_bytes,
            "last_seq": self.outbox.last_seq,
            "last_events": dict(self.sink.last),
            "commands": {"accepted": self.ctx.commands.accepted,
                         "rejected": self.ctx.commands.rejected,
                         "dropped": self.commands_dropped},
            "components": comps,
        }

    def health_snapshot(self) -> dict[str, Any]:
        st = self.status()
        oldest = [c["oldest_age_s"] for c in st["outbox"].values() if c["oldest_age_s"]]
        return {
            "uptime_s": st["uptime_s"],
            "boot_count": self.boot_count,
            "link": {"connected": st["link"]["connected"], "broker": st["link"]["broker"],
                     "connects": st["link"]["connects"]},
            "outbox": {k: v["depth"] for k, v in st["outbox"].items()},
            "oldest_unsent_s": max(oldest) if oldest else None,
            "evictions": {k: v for k, v in st["outbox_counters"].items()
                          if k.startswith(("evicted", "expired", "dropped"))},
            "components": st["components"],
            **platform_figures(self.settings.device.state_dir),
        }

    # -- commands -----------------------------------------------------------------------
    def _command_received(self, name: str, payload: bytes, reply: Reply) -> None:
        # Runs on the link thread: hand off and return at once.
        try:
            self._commands.put_nowait((name, payload, reply))
        except queue.Full:
            self.commands_dropped += 1
            log.warning("command queue full; %s dropped", name)

    def _command_worker(self) -> None:
        while (item := self._commands.get()) is not None:
            name, payload, reply = item
            answer = self.ctx.commands.dispatch(name, payload)
            if not reply.topic:
                continue  # a retained config push: nobody waits for an answer
            answer["command"] = name
            if reply.correlation is not None:
                # Also in the payload, for 3.1.1 consumers that cannot see the property.
                answer["correlation_id"] = reply.correlation.decode("utf-8", "replace")
            self.link.send(reply.topic, json.dumps(answer, default=str).encode(),
                           correlation=reply.correlation)

    def _published(self, item: Pending) -> None:
        if self.control._tails:
            try:
                obj = json.loads(item.payload)
            except ValueError:
                return
            self.control.publish_tail(obj)

    def _register_core_ops(self) -> None:
        c = self.control
        c.register("ping", lambda req: {"ok": True, "pong": True})
        c.register("status", lambda req: {"ok": True, "status": self.status()})
        c.register("simulate", self._op_simulate)
        c.register("cmd", self._op_cmd)
        c.register("outbox-stats", lambda req: {"ok": True, "status": self.status()})
        c.register("outbox-list", self._op_outbox_list)
        c.register("outbox-purge", self._op_outbox_purge)
        self.ctx.commands.register(
            "ping", lambda args: {"pong": True, "device_id": self.settings.device.id,
                                  "uptime_s": round(time.time() - self.started, 1)},
            description="liveness check from the centre",
        )
        self.ctx.commands.register("status", lambda args: self.status(),
                                   description="the same report as `outpost status --json`")
        self.ctx.simulators.register("event", _simulate_event(self.sink),
                                     description="event TYPE [--data JSON] [--priority CLASS]")

    def _op_simulate(self, req: dict[str, Any]) -> dict[str, Any]:
        name = str(req.get("source", ""))
        argv = req.get("argv") or []
        return self.ctx.simulators.dispatch(name, {"argv": [str(a) for a in argv]})

    def _op_cmd(self, req: dict[str, Any]) -> dict[str, Any]:
        return self.ctx.commands.dispatch(str(req.get("name", "")), req.get("args") or {})

    def _op_outbox_list(self, req: dict[str, Any]) -> dict[str, Any]:
        cls = Priority.parse(req["class"]) if req.get("class") else None
        return {"ok": True, "events": self.outbox.peek(cls, int(req.get("limit", 50)))}

    def _op_outbox_purge(self, req: dict[str, Any]) -> dict[str, Any]:
        cls = Priority.parse(str(req.get("class")))
        if cls is Priority.ALARM and not req.get("include_alarms"):
            return {"ok": False, "error": "refusing to purge alarms without --include-alarms"}
        return {"ok": True, "purged": self.outbox.purge(cls)}


def _simulate_event(sink: AgentSink) -> Any:
    def handler(args: dict[str, Any]) -> dict[str, Any]:
        parser = argparse.ArgumentParser(prog="outpost simulate event", exit_on_error=False,
                                         add_help=False)
        parser.add_argument("type")
        parser.add_argument("--data", default="{}")
        parser.add_argument("--priority", default=None)
        parser.add_argument("--count", type=int, default=1)
        try:
            ns = parser.parse_args(args.get("argv", []))
            data = json.loads(ns.data)
            prio = Priority.parse(ns.priority) if ns.priority else None
        except (argparse.ArgumentError, ValueError, SystemExit) as exc:
            raise CommandError(f"usage: event TYPE [--data JSON] [--priority CLASS]: {exc}") \
                from None
        if not isinstance(data, dict):
            raise CommandError("--data must be a JSON object")
        data = {**data, "simulated": True}
        if ns.count <= 1:
            events = [sink.emit(ns.type, data, priority=prio)]
        else:
            events = sink.emit_many(ns.type, data, ns.count, priority=prio)
        if ns.count > 1000:  # a load test: the reply stays small
            return {"count": ns.count, "first_seq": events[0].seq, "last_seq": events[-1].seq}
        return {"ids": [e.id for e in events], "seq": [e.seq for e in events]}

    return handler


def setup_logging(level: str) -> None:
    """stderr, one line per record; under systemd journald adds the time, so we do not."""
    handler = logging.StreamHandler(sys.stderr)
    if "JOURNAL_STREAM" in os.environ:
        handler.setFormatter(_JournalFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class _JournalFormatter(logging.Formatter):
    """sd-daemon priority prefixes (<3> error … <7> debug) so journald keeps levels."""

    _LEVELS: ClassVar[dict[int, int]] = {
        logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
        logging.CRITICAL: 2,
    }

    def format(self, record: logging.LogRecord) -> str:
        prio = self._LEVELS.get(record.levelno, 6)
        return f"<{prio}>{record.name}: {record.getMessage()}"


def run_daemon(settings: Settings) -> int:
    setup_logging(settings.log.level)
    # Threads hand the GIL over every 1 ms instead of 5: an alarm crosses several threads
    # (driver, outbox writer, link) and must not wait 5 ms at each while a backlog drains.
    sys.setswitchinterval(0.001)
    agent = Agent(settings)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        agent.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return agent.run()


__all__ = ["BUILDERS", "Agent", "AgentSink", "CommandRegistry", "run_daemon"]
