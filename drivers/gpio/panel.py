"""The GPIO alarm panel component: buttons, tamper, mains, LED and buzzer under one worker.

``AlarmPanel`` owns the pin factory, the input and output devices, the ``gpio-panel`` worker
thread that turns edges and timers into events, the ledger of unacknowledged alarms, the
``alarm-ack`` command and the ``press`` simulator. Events leave only through the sink.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from gpiozero import Factory
from gpiozero.pins.mock import MockFactory

from agent.commands import require
from agent.errors import CommandError, DriverFault
from agent.events import Event, EventSink, Priority
from drivers.gpio import contact_id as cid
from drivers.gpio.alarms import AlarmLedger, AlarmRecord, UnknownAlarm
from drivers.gpio.config import GpioConfig
from drivers.gpio.inputs import GpioInput, PanicButton, PowerInput, TamperLoop
from drivers.gpio.outputs import (
    ACK_TONE,
    ALARM_TONE,
    CANCEL_TONE,
    TAP_ACCEPTED,
    TAP_REJECTED,
    Buzzer,
    LedPattern,
    StatusLed,
    led_pattern,
)
from drivers.gpio.press import (
    Action,
    Alarm,
    AlarmKind,
    CancelRequest,
    ShortPress,
    Stuck,
    StuckCleared,
)

log = logging.getLogger(__name__)

MAX_SIM_HOLD_S = 120.0
EMIT_ATTEMPTS = 5


def make_pin_factory(cfg: GpioConfig) -> Factory | None:
    """MockFactory when configured; lgpio on a Pi 5; otherwise None (gpiozero's own choice).

    ``GPIOZERO_PIN_FACTORY`` in the environment always wins over the Pi 5 rule.
    """
    if cfg.mock:
        return MockFactory()
    if os.environ.get("GPIOZERO_PIN_FACTORY"):
        return None
    if _is_pi5():
        try:
            from gpiozero.pins.lgpio import LGPIOFactory

            return LGPIOFactory(chip=cfg.lgpio_chip)
        except Exception as exc:
            raise DriverFault(f"gpio: cannot open the lgpio pin factory on a Pi 5: {exc}") from exc
    return None


def _is_pi5() -> bool:
    try:
        model = Path("/proc/device-tree/model").read_bytes()
    except OSError:
        return False
    return b"Raspberry Pi 5" in model


class _ArgvParser(argparse.ArgumentParser):
    """argparse that rejects bad simulator arguments with a CommandError instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{self.prog}: {message}")


# Worker queue items.
_Edge = tuple[str, GpioInput, bool, float]


class TapFeedback:
    """Local feedback for patrol taps (duck-types the patrol ``Feedback`` protocol)."""

    def __init__(self, post: Callable[[tuple[Any, ...]], None]) -> None:
        self._post = post

    def accepted(self) -> None:
        self._post(("tap", True))

    def rejected(self) -> None:
        self._post(("tap", False))


class AlarmPanel:
    """The component the daemon runs for ``[gpio]``: see the module docstring."""

    name = "gpio"

    def __init__(
        self,
        cfg: GpioConfig,
        sink: EventSink,
        *,
        link_up: bool = False,
        state_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self._sink = sink
        self._clock = clock
        self._link_up = link_up
        # Unacknowledged alarms survive a restart when there is a state directory.
        ledger_path = state_dir / "gpio-alarms.json" if state_dir is not None else None
        self.ledger = AlarmLedger(cfg.ack_timeout_s, path=ledger_path)
        self.pin_factory: Factory | None = None
        self.buttons: dict[str, PanicButton] = {}
        self.tamper: TamperLoop | None = None
        self.power: PowerInput | None = None
        self.led: StatusLed | None = None
        self.buzzer: Buzzer | None = None
        self.led_state = LedPattern.OFF
        self._ack_until: float | None = None
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._emitted: deque[tuple[int, str, Event]] = deque(maxlen=256)
        self._emit_count = 0
        self._emitted_lock = threading.Lock()  # the simulator reads what the worker appends
        self.counts = dict.fromkeys(
            (
                "alarms",
                "duress",
                "cancel_requests",
                "short_presses",
                "faults",
                "tamper",
                "power",
                "escalations",
                "emit_failures",
            ),
            0,
        )
        self.feedback = TapFeedback(self._queue.put)
        self.started = False

    # Component ------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            self._open_devices()
        except DriverFault:
            self._close_devices()
            raise
        except Exception as exc:  # gpiozero raises its own hierarchy (BadPinFactory, PinInUse...)
            self._close_devices()
            raise DriverFault(f"gpio: cannot open pins: {type(exc).__name__}: {exc}") from exc
        now = self._clock()
        restored = self.ledger.load(now)
        if restored:
            log.warning("gpio: %d alarm(s) still unacknowledged from before the restart", restored)
        for button in self.buttons.values():
            button.reset(now)
        if self.tamper is not None:
            self.tamper.reset(now)
            if self.tamper.is_open:
                self._tamper_changed(self.tamper, True, at_start=True)
        if self.power is not None:
            self.power.reset(now)
            if self.power.mains_lost:
                self._power_changed(self.power, True, at_start=True)
        self._refresh_outputs(now)
        self._thread = threading.Thread(target=self._run, name="gpio-panel", daemon=True)
        self._thread.start()
        self.started = True

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None
        self.started = False
        self._close_devices()

    def status(self) -> dict[str, Any]:
        now = self._clock()
        out: dict[str, Any] = {
            "started": self.started,
            "pin_factory": type(self.pin_factory).__name__ if self.pin_factory else None,
            "link_up": self._link_up,
            "led": self.led_state.value,
            "buttons": {
                b.name: {
                    "pin": b.cfg.pin,
                    "mode": b.mode,
                    "pressed": b.tracker.pressed,
                    "stuck": b.tracker.stuck,
                    "alarms": b.alarms,
                }
                for b in self.buttons.values()
            },
            "unacknowledged": [r.to_dict(now) for r in self.ledger.unacknowledged()],
            "counts": dict(self.counts),
        }
        if self.tamper is not None:
            out["tamper"] = {"name": self.tamper.name, "open": self.tamper.is_open}
        if self.power is not None:
            out["power"] = {"name": self.power.name, "mains_lost": self.power.mains_lost}
        return out

    # Hooks for the daemon -------------------------------------------------------------------
    def on_link(self, up: bool) -> None:
        """LocalBus link listener; hands off to the worker."""
        self._queue.put(("link", up))

    def sync(self, timeout: float = 5.0) -> bool:
        """Wait until the worker has handled everything queued before this call."""
        done = threading.Event()
        self._queue.put(("sync", done))
        return done.wait(timeout)

    def acknowledge(self, args: dict[str, Any]) -> dict[str, Any]:
        """``cmd/alarm-ack`` {"alarm_id": "...", "by": "..."}: the centre has the alarm."""
        alarm_id = require(args, "alarm_id", str).strip()
        by = require(args, "by", str).strip()
        if not alarm_id:
            raise CommandError("field 'alarm_id' must not be empty")
        if not by or len(by) > 128:
            raise CommandError("field 'by' must be 1 to 128 characters (who acknowledged)")
        try:
            record, already = self.ledger.acknowledge(alarm_id, by, self._clock())
        except UnknownAlarm:
            raise CommandError(
                f"unknown alarm id {alarm_id!r}: not raised by this box, or long forgotten"
            ) from None
        if not already:
            self.ledger.save()
            self._queue.put(("acked", record))
            log.info("alarm %s (%s) acknowledged by %s", alarm_id, record.type, by)
        assert record.acked_at is not None
        return {
            "alarm_id": record.alarm_id,
            "type": record.type,
            "acked_by": record.acked_by,
            "ack_after_s": round(record.acked_at - record.raised_at, 3),
            "already_acknowledged": already,
        }

    def simulate_press(self, args: dict[str, Any]) -> dict[str, Any]:
        """``outpost simulate press <button> [--hold S]``, through the same path as a pin edge.

        With mock pins the pin itself is driven; on real hardware the edges are queued exactly
        as the gpiozero callback would queue them. Blocks for the hold, then reports the
        events the press produced.
        """
        argv = args.get("argv", [])
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise CommandError("argv must be a list of strings")
        parser = _ArgvParser(prog="press", add_help=False, exit_on_error=False)
        parser.add_argument("button")
        parser.add_argument("--hold", type=float, default=None)
        ns = parser.parse_args(argv)
        if not self.started:
            raise CommandError("the GPIO panel is not started yet; try again in a moment")
        button = self.buttons.get(ns.button)
        if button is None:
            known = ", ".join(self.buttons) or "none configured"
            raise CommandError(f"unknown button {ns.button!r}; known: {known}")
        rules = button.tracker.rules
        hold = ns.hold
        if hold is None:  # long enough for what this button needs to raise its alarm
            hold = max(rules.min_press_s, rules.hold_s) + 0.2
        if not 0 < hold <= MAX_SIM_HOLD_S:
            raise CommandError(f"--hold must be in (0, {MAX_SIM_HOLD_S}] seconds")
        mark = self._emit_count
        self._drive(button, True)
        time.sleep(hold)
        self._drive(button, False)
        time.sleep(rules.release_s + 0.02)
        self.sync()
        with self._emitted_lock:
            emitted = list(self._emitted)
        events = [
            {"type": e.type, "id": e.id}
            for n, src, e in emitted
            if n >= mark and src == button.name
        ]
        return {
            "button": button.name,
            "held_s": hold,
            "mock_pin": isinstance(self.pin_factory, MockFactory),
            "events": events,
        }

    def simulate_enclosure(self, args: dict[str, Any]) -> dict[str, Any]:
        """``outpost simulate enclosure open|close``: open or close the tamper loop."""
        if self.tamper is None:
            raise CommandError("no tamper loop configured ([gpio.tamper])")
        state = self._one_word(args, "enclosure", ("open", "close"))
        return self._simulate_level(self.tamper, state == "close")

    def simulate_mains(self, args: dict[str, Any]) -> dict[str, Any]:
        """``outpost simulate mains lost|restored``: drive the mains/UPS line."""
        if self.power is None:
            raise CommandError("no mains input configured ([gpio.power])")
        state = self._one_word(args, "mains", ("lost", "restored"))
        return self._simulate_level(self.power, state == "lost")

    @staticmethod
    def _one_word(args: dict[str, Any], prog: str, choices: tuple[str, ...]) -> str:
        argv = args.get("argv", [])
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise CommandError("argv must be a list of strings")
        parser = _ArgvParser(prog=prog, add_help=False, exit_on_error=False)
        parser.add_argument("state", choices=choices)
        return str(parser.parse_args(argv).state)

    def _simulate_level(self, device: TamperLoop | PowerInput, active: bool) -> dict[str, Any]:
        mark = self._emit_count
        self._drive(device, active)
        time.sleep(device.filter.settle_s + 0.02)
        self.sync()
        with self._emitted_lock:
            emitted = list(self._emitted)
        events = [
            {"type": e.type, "id": e.id, "state": e.data.get("state")}
            for n, src, e in emitted
            if n >= mark and src == device.name
        ]
        return {"input": device.name, "events": events}

    def _drive(self, device: GpioInput, active: bool, *, queue_edge: bool = True) -> None:
        """Make ``device`` read ``active``: the mock pin itself, or (real pins) a queued edge."""
        if isinstance(self.pin_factory, MockFactory):
            pin = self.pin_factory.pin(device.cfg.pin)
            if active == device.active_level_high:
                pin.drive_high()
            else:
                pin.drive_low()
        elif queue_edge:
            self._edge(device, active)

    # Devices --------------------------------------------------------------------------------
    def _open_devices(self) -> None:
        cfg = self.cfg
        self.pin_factory = make_pin_factory(cfg)
        for bcfg in cfg.buttons:
            self.buttons[bcfg.name] = PanicButton(bcfg, self.pin_factory, self._edge)
        if cfg.tamper is not None:
            self.tamper = TamperLoop(cfg.tamper, self.pin_factory, self._edge)
        if cfg.power is not None:
            self.power = PowerInput(cfg.power, self.pin_factory, self._edge)
        if cfg.led is not None:
            self.led = StatusLed(cfg.led, self.pin_factory)
        if cfg.buzzer is not None:
            self.buzzer = Buzzer(cfg.buzzer, self.pin_factory)
        if isinstance(self.pin_factory, MockFactory):
            # Mock pins rest at their pull; put every input in its quiet state instead, as
            # real wiring would be: buttons released, tamper loop closed, mains present.
            for button in self.buttons.values():
                self._drive(button, False, queue_edge=False)
            if self.tamper is not None:
                self._drive(self.tamper, True, queue_edge=False)
            if self.power is not None:
                self._drive(self.power, False, queue_edge=False)
        if self.pin_factory is None:
            for dev in (*self.buttons.values(), self.tamper, self.power):
                if dev is not None:
                    self.pin_factory = dev.device.pin_factory
                    break

    def _close_devices(self) -> None:
        closables: list[Any] = [*self.buttons.values(), self.tamper, self.power]
        closables += [self.led, self.buzzer]
        for dev in closables:
            if dev is not None:
                try:
                    dev.close()
                except Exception:
                    log.exception("gpio: closing %r failed", dev)

    def _edge(self, device: GpioInput, active: bool) -> None:
        """Runs in gpiozero's callback thread: timestamp with the panel's clock, hand off.

        The edge's time comes from the same clock as the worker's timers, so an injected
        clock (tests) governs both; it is taken here, not when the worker gets to the edge.
        """
        self._queue.put(("edge", device, active, self._clock()))

    # Worker ---------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            deadline = self._deadline()
            timeout = None if deadline is None else max(0.001, deadline - self._clock())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = ("tick",)
            items = [item]
            # Edges already queued are older than "now": handle them before the timers.
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for it in items:
                if it is None:
                    return
                try:
                    self._handle(it)
                except Exception:
                    log.exception("gpio: handling %s failed", it[0])
            try:
                self._poll(self._clock())
            except Exception:
                log.exception("gpio: timer poll failed")

    def _deadline(self) -> float | None:
        times = [d.deadline() for d in self._inputs()]
        times += [self.ledger.deadline(), self._ack_until]
        if self.led is not None:
            times.append(self.led.deadline())
        present = [t for t in times if t is not None]
        return min(present) if present else None

    def _inputs(self) -> list[GpioInput]:
        out: list[GpioInput] = list(self.buttons.values())
        out += [d for d in (self.tamper, self.power) if d is not None]
        return out

    def _handle(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        now = self._clock()
        if kind == "edge":
            _, device, active, t = item
            self._dispatch(device, device.feed(active, t))
        elif kind == "link":
            self._link_up = bool(item[1])
        elif kind == "acked":
            record: AlarmRecord = item[1]
            if not record.silent:
                self._ack_until = now + self.cfg.ack_display_s
                if self.buzzer is not None:
                    self.buzzer.sound(ACK_TONE)
        elif kind == "tap":
            if self.buzzer is not None:
                self.buzzer.sound(TAP_ACCEPTED if item[1] else TAP_REJECTED)
            if self.led is not None:
                self.led.flash(1 if item[1] else 3, now)
        elif kind == "sync":
            self._poll(now)
            item[1].set()
        self._refresh_outputs(now)

    def _poll(self, now: float) -> None:
        for device in self._inputs():
            self._dispatch(device, device.poll(now))
        overdue = self.ledger.overdue(now)
        for record in overdue:
            self._escalate(record, now)
        if overdue:
            self.ledger.save()
        if self._ack_until is not None and now >= self._ack_until:
            self._ack_until = None
        if self.led is not None:
            self.led.poll(now)
        self._refresh_outputs(now)

    def _refresh_outputs(self, now: float) -> None:
        self.led_state = led_pattern(
            awaiting=self.ledger.awaiting_audible(),
            acknowledged=self._ack_until is not None and now < self._ack_until,
            link_up=self._link_up,
        )
        if self.led is not None:
            self.led.show(self.led_state, now)

    # Decisions into events ------------------------------------------------------------------
    def _dispatch(self, device: GpioInput, results: list[Any]) -> None:
        for result in results:
            if isinstance(device, PanicButton):
                self._button_action(device, result)
            elif isinstance(device, TamperLoop):
                self._tamper_changed(device, bool(result))
            elif isinstance(device, PowerInput):
                self._power_changed(device, bool(result))

    def _button_action(self, button: PanicButton, action: Action) -> None:
        group = self.cfg.group
        base: dict[str, Any] = {"button": button.name, "mode": button.mode, "pin": button.cfg.pin}
        data: dict[str, Any]
        if isinstance(action, Alarm):
            silent = action.kind is AlarmKind.DURESS
            code = cid.DURESS if silent else cid.PANIC
            etype = f"alarm.{action.kind.value}"
            data = {
                **base,
                "held_ms": round(action.held_s * 1000, 1),
                "silent": silent,
                "contact_id": cid.ContactId(code, cid.NEW, group, button.zone).to_dict(),
            }
            # The alarm is stored before anything else happens: starting the buzzer's
            # thread would only add to its latency.
            event = self._emit(button.name, etype, data, Priority.ALARM)
            if not silent and self.buzzer is not None:
                self.buzzer.sound(ALARM_TONE)
            button.alarms += 1
            self.counts["duress" if silent else "alarms"] += 1
            if event is not None:
                button.last_alarm_id = event.id
                self.ledger.add(
                    AlarmRecord(
                        event.id,
                        etype,
                        button.name,
                        silent,
                        self._clock(),
                        event.ts,
                        raised_wall=time.time(),
                    )
                )
                self.ledger.save()
            log.warning("gpio: %s from button %s", etype, button.name)
        elif isinstance(action, CancelRequest):
            ref = button.last_alarm_id
            data = {
                **base,
                "alarm_id": ref,
                "since_alarm_s": round(action.since_alarm_s, 3),
                "contact_id": cid.ContactId(cid.CANCEL, cid.NEW, group, button.zone).to_dict(),
            }
            self._emit(button.name, "alarm.cancel_request", data, Priority.ALARM)
            self.counts["cancel_requests"] += 1
            if ref is not None:
                self.ledger.mark_cancel_requested(ref)
                self.ledger.save()
            if self.buzzer is not None:
                self.buzzer.sound(CANCEL_TONE)
        elif isinstance(action, ShortPress):
            self.counts["short_presses"] += 1
            log.info(
                "gpio: button %s released after %.2f s, before confirm", button.name, action.held_s
            )
        elif isinstance(action, Stuck):
            self.counts["faults"] += 1
            data = {
                "component": "gpio",
                "input": button.name,
                "fault": "button_stuck",
                "state": "active",
                "held_s": round(action.held_s, 1),
                "at_startup": action.at_startup,
                "contact_id": cid.ContactId(cid.TROUBLE, cid.NEW, group, button.zone).to_dict(),
            }
            self._emit(button.name, "device.fault", data, None)
        elif isinstance(action, StuckCleared):
            data = {
                "component": "gpio",
                "input": button.name,
                "fault": "button_stuck",
                "state": "cleared",
                "held_s": round(action.held_s, 1),
                "contact_id": cid.ContactId(cid.TROUBLE, cid.RESTORE, group, button.zone).to_dict(),
            }
            self._emit(button.name, "device.fault", data, None)

    def _tamper_changed(self, loop: TamperLoop, is_open: bool, at_start: bool = False) -> None:
        code = cid.TAMPER if loop.kind == "enclosure" else cid.SENSOR_TAMPER
        qualifier = cid.NEW if is_open else cid.RESTORE
        data = {
            "input": loop.name,
            "kind": loop.kind,
            "state": "open" if is_open else "closed",
            "restore": not is_open,
            "at_start": at_start,
            "contact_id": cid.ContactId(code, qualifier, self.cfg.group, loop.zone).to_dict(),
        }
        self.counts["tamper"] += 1
        self._emit(loop.name, "device.tamper", data, None)

    def _power_changed(self, line: PowerInput, lost: bool, at_start: bool = False) -> None:
        qualifier = cid.NEW if lost else cid.RESTORE
        data = {
            "input": line.name,
            "state": "mains_lost" if lost else "mains_restored",
            "restore": not lost,
            "at_start": at_start,
            "contact_id": cid.ContactId(
                cid.AC_LOSS, qualifier, self.cfg.group, line.zone
            ).to_dict(),
        }
        self.counts["power"] += 1
        self._emit(line.name, "device.power", data, Priority.PATROL)

    def _escalate(self, record: AlarmRecord, now: float) -> None:
        data = {
            "alarm_id": record.alarm_id,
            "alarm_type": record.type,
            "source": record.source,
            "unacknowledged_s": round(now - record.raised_at, 1),
            "ack_timeout_s": self.cfg.ack_timeout_s,
        }
        self.counts["escalations"] += 1
        log.error(
            "gpio: alarm %s not acknowledged after %.0f s",
            record.alarm_id,
            data["unacknowledged_s"],
        )
        self._emit(record.source, "alarm.escalation", data, Priority.ALARM)

    def _emit(
        self, source: str, etype: str, data: Mapping[str, Any], priority: Priority | None
    ) -> Event | None:
        """Hand one event to the sink, retrying briefly: an alarm is never dropped quietly."""
        for attempt in range(1, EMIT_ATTEMPTS + 1):
            try:
                event = self._sink.emit(etype, data, priority=priority)
            except Exception:
                log.exception("gpio: emitting %s failed (attempt %d)", etype, attempt)
                time.sleep(0.05 * attempt)
                continue
            with self._emitted_lock:
                self._emitted.append((self._emit_count, source, event))
                self._emit_count += 1
            return event
        self.counts["emit_failures"] += 1
        log.critical("gpio: %s from %s could NOT be stored: %s", etype, source, dict(data))
        return None
