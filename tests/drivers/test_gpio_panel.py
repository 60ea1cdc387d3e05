"""AlarmPanel through real gpiozero devices on MockFactory pins, driven with drive_low/high.

Events go to a small in-memory recording sink: these are logic tests of the GPIO side; the
delivery claims (broker down, backlog) are tested against a real mosquitto elsewhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from gpiozero.pins.mock import MockPin

from agent.commands import CommandRegistry
from agent.config import Settings
from agent.events import Event, Priority, default_priority, utc_now_rfc3339, uuid7
from agent.runtime import AgentContext
from drivers.gpio import build
from drivers.gpio.config import GpioConfig
from drivers.gpio.outputs import LedPattern
from drivers.gpio.panel import AlarmPanel

BUTTON, DURESS_BUTTON, HOLD_BUTTON, TAMPER, POWER, LED, BUZZER = 17, 27, 22, 23, 24, 5, 6


class RecordingSink:
    """EventSink that keeps events in memory (durable enough for logic tests)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def emit(
        self, type: str, data: Mapping[str, Any] | None = None, *, priority: Priority | None = None
    ) -> Event:
        with self._lock:
            event = Event(
                uuid7(),
                "test-box",
                type,
                len(self.events) + 1,
                utc_now_rfc3339(),
                priority if priority is not None else default_priority(type),
                dict(data or {}),
            )
            self.events.append(event)
        return event

    def of(self, prefix: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.type.startswith(prefix)]


def wait_for(pred: Callable[[], bool], timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.005)
    return pred()


def gpio_config(**over: Any) -> GpioConfig:
    raw: dict[str, Any] = {
        "mock": True,
        "buttons": [
            {
                "name": "front",
                "pin": BUTTON,
                "min_press_ms": 20,
                "release_ms": 20,
                "cancel_window_s": 1.0,
                "stuck_s": 0.6,
            },
            {
                "name": "silent",
                "pin": DURESS_BUTTON,
                "mode": "duress",
                "min_press_ms": 20,
                "release_ms": 20,
            },
            {
                "name": "desk",
                "pin": HOLD_BUTTON,
                "mode": "hold",
                "hold_s": 0.25,
                "min_press_ms": 20,
                "release_ms": 20,
            },
        ],
        "tamper": {"pin": TAMPER, "settle_ms": 20},
        "power": {"pin": POWER, "pull": "up", "settle_ms": 20},
        "led": {"pin": LED},
        "buzzer": {"pin": BUZZER},
        "ack_timeout_s": 30,
        "ack_display_s": 0.4,
    }
    raw.update(over)
    return GpioConfig.model_validate(raw)


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def make_panel(sink: RecordingSink) -> Iterator[Callable[..., AlarmPanel]]:
    panels: list[AlarmPanel] = []

    def make(clock: Callable[[], float] = time.monotonic, **over: Any) -> AlarmPanel:
        panel = AlarmPanel(gpio_config(**over), sink, link_up=True, clock=clock)
        panel.start()
        panels.append(panel)
        return panel

    yield make
    for panel in panels:
        panel.stop()


class ManualClock:
    """A clock that moves only when the test says so: pulse lengths do not depend on how
    promptly this thread is scheduled (a 5 ms sleep can last 30 ms on a loaded machine)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def pin(panel: AlarmPanel, number: int) -> MockPin:
    assert panel.pin_factory is not None
    p = panel.pin_factory.pin(number)
    assert isinstance(p, MockPin)
    return p


def press(panel: AlarmPanel, number: int, hold: float) -> None:
    """A person's press on a pull-up button: pin low for ``hold`` seconds, then released."""
    p = pin(panel, number)
    p.drive_low()
    time.sleep(hold)
    p.drive_high()
    time.sleep(0.05)
    assert panel.sync()


def test_bounce_burst_gives_one_alarm(
    make_panel: Callable[..., AlarmPanel], sink: RecordingSink
) -> None:
    clock = ManualClock()
    panel = make_panel(clock=clock)
    p = pin(panel, BUTTON)
    for _ in range(8):  # contact chatter on closing, each level far shorter than 20 ms
        p.drive_low()
        clock.advance(0.001)
        p.drive_high()
        clock.advance(0.001)
    p.drive_low()
    clock.advance(0.15)
    assert panel.sync()
    for _ in range(8):  # and on opening
        p.drive_high()
        clock.advance(0.001)
        p.drive_low()
        clock.advance(0.001)
    p.drive_high()
    clock.advance(0.08)
    assert panel.sync()
    alarms = sink.of("alarm.")
    assert [e.type for e in alarms] == ["alarm.panic"]
    data = alarms[0].data
    assert data["button"] == "front" and data["silent"] is False
    assert data["contact_id"]["code"] == 120 and data["contact_id"]["event"] == "E"
    assert alarms[0].priority is Priority.ALARM


def test_glitch_shorter_than_min_press_raises_nothing(
    make_panel: Callable[..., AlarmPanel], sink: RecordingSink
) -> None:
    clock = ManualClock()
    panel = make_panel(clock=clock)
    p = pin(panel, BUTTON)
    p.drive_low()
    clock.advance(0.005)
    p.drive_high()
    clock.advance(1.0)
    assert panel.sync()
    assert sink.of("alarm.") == []
    # The same button, held past min_press_ms (20) on the same clock, does raise.
    p.drive_low()
    clock.advance(0.025)
    assert panel.sync()
    p.drive_high()
    clock.advance(0.1)
    assert panel.sync()
    assert [e.type for e in sink.of("alarm.")] == ["alarm.panic"]


def test_hold_to_confirm_below_and_above_threshold(
    make_panel: Callable[..., AlarmPanel], sink: RecordingSink
) -> None:
    panel = make_panel()
    press(panel, HOLD_BUTTON, 0.1)
    assert sink.of("alarm.") == []
    assert panel.counts["short_presses"] == 1
    press(panel, HOLD_BUTTON, 0.4)
    alarms = sink.of("alarm.")
    assert [e.type for e in alarms] == ["alarm.panic"]
    assert alarms[0].data["button"] == "desk"
    assert alarms[0].data["held_ms"] >= 250


def test_duress_is_silent(make_panel: Callable[..., AlarmPanel], sink: RecordingSink) -> None:
    panel = make_panel()
    buzzer = pin(panel, BUZZER)
    press(panel, DURESS_BUTTON, 0.1)
    alarms = sink.of("alarm.")
    assert [e.type for e in alarms] == ["alarm.duress"]
    assert alarms[0].data["silent"] is True
    assert alarms[0].data["contact_id"]["code"] == 121
    # The centre's ack of a duress alarm must not sound or show either.
    reply = panel.acknowledge({"alarm_id": alarms[0].id, "by": "centre-7"})
    assert reply["already_acknowledged"] is False
    time.sleep(0.3)
    assert panel.sync()
    assert not any(state.state for state in buzzer.states), buzzer.states
    assert panel.led_state is LedPattern.IDLE


def test_audible_panic_sounds_the_buzzer(
    make_panel: Callable[..., AlarmPanel], sink: RecordingSink
) -> None:
    panel = make_panel()
    buzzer = pin(panel, BUZZER)
    press(panel, BUTTON, 0.1)
    assert sink.of("alarm.panic")
    assert wait_for(lambda: any(state.state for state in buzzer.states))


def test_second_press_is_a_cancel_request_referencing_the_original(
    make_panel: Callable[..., AlarmPanel], sink: RecordingSink
) -> None:
    panel = make_panel()
    press(panel, BUTTON, 0.08)
    press(panel, BUTTON, 0.08)
    panic, cancel = sink.of("alarm.")
    assert panic.type == "alarm.panic"
    assert cancel.type == "alarm.cancel_request"
    assert cancel.data["alarm_id"] == panic.id
    assert cancel.data["contact_id"]["code"] == 406
    # The alarm itself stands: still unacknowledged, now flagged.
    unacked = panel.status()["unacknowledged"]
    assert [u["alarm_id"] for u in unacked] == [panic.id]
    assert unacked[0]["cancel_requested"] is True


def test_stuck_button_gives_one_fault_not_a_stream(
    make_panel: Callable[..., AlarmPanel], sink: RecordingSink
) -> None:
    panel = make_panel()
    p = pin(panel, BUTTON)
    p.drive_low()
    assert wait_for(lambda: bool(sink.of("device.fault")), timeout=3)
    time.sleep(0.5)  # well past stuck_s again: still one alarm and one fault
    assert panel.sync()
    assert [e.type for e in sink.of("alarm.")] == ["alarm.panic"]
    faults = sink.of("device.fault")
    assert len(faults) == 1
    assert faults[0].data["fault"] == "button_stuck" and faults[0].data["state"] == "active"
    assert panel.status()["buttons"]["front"]["stuck"] is True
    p.drive_high()
    assert wait_for(lambda: len(sink.of("device.fault")) == 2)
    assert sink.of("device.fault")[1].data["state"] == "cleared"


def test_tamper_open_restore_and_cut_wire(
    make_panel: Callable[..., AlarmPanel], sink: RecordingSink
) -> None:
    panel = make_panel()
    assert sink.of("device.tamper") == []  # the loop rests closed
    loop = pin(panel, TAMPER)
    loop.drive_high()  # lid opened: the NC switch opens, the pull-up wins
    assert wait_for(lambda: len(sink.of("device.tamper")) == 1)
    loop.drive_low()  # closed again
    assert wait_for(lambda: len(sink.of("device.tamper")) == 2)
    opened, restored = sink.of("device.tamper")
    assert opened.data["state"] == "open" and opened.data["contact_id"]["code"] == 137
    assert opened.data["contact_id"]["qualifier"] == 1 and opened.priority is Priority.ALARM
    assert restored.data["state"] == "closed" and restored.data["contact_id"]["qualifier"] == 3
    assert restored.data["contact_id"]["event"] == "R"
    # A cut wire reads exactly like an open lid: the loop floats up to the pull-up.
    loop.drive_high()
    assert wait_for(lambda: len(sink.of("device.tamper")) == 3)
    assert sink.of("device.tamper")[2].data["state"] == "open"
    assert panel.status()["tamper"]["open"] is True


def test_tamper_chatter_gives_one_event(
    make_panel: Callable[..., AlarmPanel], sink: RecordingSink
) -> None:
    clock = ManualClock()
    panel = make_panel(clock=clock)
    loop = pin(panel, TAMPER)
    for _ in range(10):  # each level 1 ms, far under settle_ms (20)
        loop.drive_high()
        clock.advance(0.001)
        loop.drive_low()
        clock.advance(0.001)
    clock.advance(0.1)
    assert panel.sync()
    assert sink.of("device.tamper") == []
    # Chatter that ends with the loop open: one event once the level has settled.
    for _ in range(5):
        loop.drive_high()
        clock.advance(0.001)
        loop.drive_low()
        clock.advance(0.001)
    loop.drive_high()
    clock.advance(0.025)
    assert panel.sync()
    clock.advance(0.5)
    assert panel.sync()
    events = sink.of("device.tamper")
    assert len(events) == 1, events
    assert events[0].data["state"] == "open"


def test_mains_loss_and_restore(make_panel: Callable[..., AlarmPanel], sink: RecordingSink) -> None:
    panel = make_panel()
    line = pin(panel, POWER)
    line.drive_low()  # pull = up: active (mains lost) when low
    assert wait_for(lambda: len(sink.of("device.power")) == 1)
    line.drive_high()
    assert wait_for(lambda: len(sink.of("device.power")) == 2)
    lost, back = sink.of("device.power")
    assert lost.data["state"] == "mains_lost" and lost.data["contact_id"]["code"] == 301
    assert back.data["contact_id"]["event"] == "R"
    assert panel.simulate_mains({"argv": ["lost"]})["events"][0]["state"] == "mains_lost"


def test_ack_command_changes_led_state(
    make_panel: Callable[..., AlarmPanel], sink: RecordingSink
) -> None:
    panel = make_panel()
    led = pin(panel, LED)
    assert panel.led_state is LedPattern.IDLE
    press(panel, BUTTON, 0.08)
    (alarm,) = sink.of("alarm.panic")
    assert panel.led_state is LedPattern.AWAITING
    assert panel.status()["unacknowledged"][0]["alarm_id"] == alarm.id
    # Fast blink: the LED pin toggles several times within half a second.
    led.clear_states()
    time.sleep(0.5)
    assert len(led.states) >= 4

    registry = CommandRegistry()
    registry.register("alarm-ack", panel.acknowledge)
    reply = registry.dispatch("alarm-ack", f'{{"alarm_id": "{alarm.id}", "by": "duty officer"}}')
    assert reply["ok"] is True and reply["result"]["acked_by"] == "duty officer"
    assert panel.sync()
    assert panel.led_state is LedPattern.ACKNOWLEDGED
    assert panel.status()["unacknowledged"] == []
    time.sleep(0.05)
    assert led.state is True  # solid
    assert wait_for(lambda: panel.sync() and panel.led_state is LedPattern.IDLE, timeout=2)
    again = registry.dispatch("alarm-ack", {"alarm_id": alarm.id, "by": "duty officer"})
    assert again["ok"] is True and again["result"]["already_acknowledged"] is True


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "missing field 'alarm_id'"),
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"alarm_id": 5, "by": "x"}', "must be str"),
        (b'{"alarm_id": "abc"}', "missing field 'by'"),
        (b'{"alarm_id": "  ", "by": "x"}', "must not be empty"),
        (b'{"alarm_id": "0190-nope", "by": "x"}', "unknown alarm id"),
        (b'{"alarm_id": "abc", "by": ""}', "'by' must be"),
    ],
)
def test_malformed_or_unknown_ack_is_rejected_with_a_reason(
    make_panel: Callable[..., AlarmPanel], payload: bytes, reason: str
) -> None:
    panel = make_panel()
    registry = CommandRegistry()
    registry.register("alarm-ack", panel.acknowledge)
    reply = registry.dispatch("alarm-ack", payload)
    assert reply["ok"] is False
    assert reason in reply["error"]
    assert panel.status()["counts"]["emit_failures"] == 0


def test_unacknowledged_alarm_escalates_once(
    make_panel: Callable[..., AlarmPanel], sink: RecordingSink
) -> None:
    panel = make_panel(ack_timeout_s=0.3)
    press(panel, BUTTON, 0.05)
    (alarm,) = sink.of("alarm.panic")
    assert wait_for(lambda: bool(sink.of("alarm.escalation")), timeout=3)
    time.sleep(0.4)
    (esc,) = sink.of("alarm.escalation")
    assert esc.data["alarm_id"] == alarm.id and esc.priority is Priority.ALARM
    assert panel.status()["unacknowledged"][0]["escalated"] is True


def test_link_down_pattern(make_panel: Callable[..., AlarmPanel]) -> None:
    panel = make_panel()
    panel.on_link(False)
    assert panel.sync()
    assert panel.led_state is LedPattern.LINK_DOWN
    panel.on_link(True)
    assert panel.sync()
    assert panel.led_state is LedPattern.IDLE


def test_simulate_press_drives_the_mock_pin(
    make_panel: Callable[..., AlarmPanel], sink: RecordingSink
) -> None:
    panel = make_panel()
    short = panel.simulate_press({"argv": ["desk", "--hold", "0.05"]})
    assert short["mock_pin"] is True
    assert short["events"] == []  # below the 0.25 s hold: not confirmed
    result = panel.simulate_press({"argv": ["desk"]})  # default hold satisfies hold_s
    assert [e["type"] for e in result["events"]] == ["alarm.panic"]
    assert result["events"][0]["id"] == sink.of("alarm.panic")[0].id


def test_simulate_press_rejects_bad_arguments(make_panel: Callable[..., AlarmPanel]) -> None:
    panel = make_panel()
    sims = CommandRegistry("simulator")
    sims.register("press", panel.simulate_press)
    assert "unknown button" in sims.dispatch("press", {"argv": ["nope"]})["error"]
    assert "--hold" in sims.dispatch("press", {"argv": ["front", "--hold", "-1"]})["error"]
    assert sims.dispatch("press", {"argv": []})["ok"] is False
    assert sims.dispatch("press", {"argv": ["front", "--bogus"]})["ok"] is False


def test_patrol_feedback_beeps(make_panel: Callable[..., AlarmPanel]) -> None:
    from agent.patrol.feedback import Feedback

    panel = make_panel()
    buzzer = pin(panel, BUZZER)
    feedback: Feedback = panel.feedback  # what PatrolService.set_feedback takes
    feedback.accepted()
    feedback.rejected()
    assert panel.sync()
    assert wait_for(lambda: sum(1 for s in buzzer.states if s.state) >= 2)


def test_build_registers_command_simulator_and_link_listener(
    sink: RecordingSink, tmp_path: Any
) -> None:
    settings = Settings(gpio=gpio_config().model_dump(), device={"state_dir": tmp_path})
    ctx = AgentContext(settings=settings, sink=sink)
    components = build(ctx)
    assert [c.name for c in components] == ["gpio"]
    assert "alarm-ack" in ctx.commands.names()
    assert "press" in ctx.simulators.names()
    assert build(AgentContext(settings=Settings(), sink=sink)) == []


def test_config_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="already used"):
        gpio_config(led={"pin": BUTTON})
    with pytest.raises(ValueError, match="used twice"):
        GpioConfig.model_validate({"buttons": [{"name": "a", "pin": 5}, {"name": "a", "pin": 6}]})
    with pytest.raises(ValueError, match="required when pull"):
        GpioConfig.model_validate({"buttons": [{"name": "a", "pin": 5, "pull": "off"}]})
    with pytest.raises(ValueError, match="means active"):
        GpioConfig.model_validate({"buttons": [{"name": "a", "pin": 5, "active": "high"}]})
    with pytest.raises(ValueError, match="Extra inputs"):
        GpioConfig.model_validate({"buttons": [{"name": "a", "pin": 5, "hold": 2}]})
    cfg = GpioConfig.model_validate({"buttons": [{"name": "a", "pin": 5}, {"name": "b", "pin": 6}]})
    assert [b.zone for b in cfg.buttons] == [1, 2]


SIM_SNIPPET = """
[gpio]
mock = true

[[gpio.buttons]]
name = "front"
pin = 17
mode = "instant"

[[gpio.buttons]]
name = "duress"
pin = 27
mode = "duress"

[gpio.tamper]
pin = 22

[gpio.led]
pin = 5

[gpio.buzzer]
pin = 6
"""


def test_simulated_profile_snippet_loads_and_runs(tmp_path: Any, sink: RecordingSink) -> None:
    from agent.config import load_settings

    path = tmp_path / "sim.toml"
    path.write_text(SIM_SNIPPET)
    settings = load_settings(path, device={"state_dir": tmp_path})
    ctx = AgentContext(settings=settings, sink=sink)
    (panel,) = build(ctx)
    panel.start()
    try:
        reply = ctx.simulators.dispatch("press", {"argv": ["front"]})
        assert reply["ok"] is True, reply
        (event,) = reply["result"]["events"]
        ack = ctx.commands.dispatch("alarm-ack", {"alarm_id": event["id"], "by": "sim"})
        assert ack["ok"] is True
        duress = ctx.simulators.dispatch("press", {"argv": ["duress"]})
        assert [e["type"] for e in duress["result"]["events"]] == ["alarm.duress"]
        assert sink.of("device.tamper") == []
        opened = ctx.simulators.dispatch("enclosure", {"argv": ["open"]})
        assert [e["state"] for e in opened["result"]["events"]] == ["open"]
        closed = ctx.simulators.dispatch("enclosure", {"argv": ["close"]})
        assert [e["state"] for e in closed["result"]["events"]] == ["closed"]
        assert ctx.simulators.dispatch("enclosure", {"argv": ["ajar"]})["ok"] is False
        assert "mains" not in ctx.simulators.names()
    finally:
        panel.stop()


def test_unacknowledged_alarm_survives_a_restart(sink: RecordingSink, tmp_path: Any) -> None:
    panel = AlarmPanel(gpio_config(), sink, link_up=True, state_dir=tmp_path)
    panel.start()
    try:
        press(panel, BUTTON, 0.05)
        press(panel, DURESS_BUTTON, 0.05)
    finally:
        panel.stop()
    panic, duress = sink.of("alarm.")
    again = AlarmPanel(gpio_config(), sink, link_up=True, state_dir=tmp_path)
    again.start()
    try:
        assert again.sync()
        unacked = again.status()["unacknowledged"]
        assert [u["alarm_id"] for u in unacked] == [panic.id, duress.id]
        assert again.led_state is LedPattern.AWAITING
        assert again.acknowledge({"alarm_id": panic.id, "by": "centre"})["acked_by"] == "centre"
        assert again.sync()
        assert again.led_state is LedPattern.ACKNOWLEDGED
    finally:
        again.stop()
    third = AlarmPanel(gpio_config(), sink, link_up=True, state_dir=tmp_path)
    third.start()
    try:
        assert [u["alarm_id"] for u in third.status()["unacknowledged"]] == [duress.id]
    finally:
        third.stop()


def test_simulate_press_without_mock_pins_feeds_the_same_queue(
    make_panel: Callable[..., AlarmPanel], sink: RecordingSink
) -> None:
    panel = make_panel()
    real_factory = panel.pin_factory
    panel.pin_factory = None  # as on real pins: the edges are queued, the pin is not touched
    try:
        result = panel.simulate_press({"argv": ["front", "--hold", "0.1"]})
    finally:
        panel.pin_factory = real_factory
    assert result["mock_pin"] is False
    assert [e["type"] for e in result["events"]] == ["alarm.panic"]
    assert pin(panel, BUTTON).state is True  # the (pulled-up) pin itself never moved
