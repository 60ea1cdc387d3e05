"""PressTracker and SettledLevel, fed levels and times directly (no pins, no clock)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.gpio.press import (
    Alarm,
    AlarmKind,
    CancelRequest,
    Mode,
    PressRules,
    PressTracker,
    ShortPress,
    Stuck,
    StuckCleared,
)
from drivers.gpio.settle import SettledLevel


def run(tracker: PressTracker, script: list[tuple[float, bool | None]]) -> list[object]:
    """Feed (time, level) pairs; level None means only a timer poll at that time."""
    out: list[object] = []
    for t, level in script:
        if level is None:
            out += tracker.poll(t)
        else:
            out += tracker.feed(level, t)
    return out


def fresh(**kw: object) -> PressTracker:
    tracker = PressTracker(PressRules(**kw))  # type: ignore[arg-type]
    tracker.reset(False, 0.0)
    return tracker


def test_instant_press_after_min_press_is_one_panic() -> None:
    t = fresh(min_press_s=0.05, release_s=0.05)
    assert run(t, [(1.0, True), (1.02, None)]) == []
    actions = run(t, [(1.05, None)])
    assert actions == [Alarm(AlarmKind.PANIC, 1.0, pytest.approx(0.05))]
    assert run(t, [(1.3, False), (1.4, None)]) == []


def test_contact_bounce_on_press_and_release_gives_one_alarm() -> None:
    t = fresh(min_press_s=0.03, release_s=0.03)
    script: list[tuple[float, bool | None]] = []
    now = 1.0
    for _ in range(6):  # 6 ms chatter when the contact closes
        script += [(now, True), (now + 0.001, False)]
        now += 0.002
    script += [(now, True), (now + 0.2, None)]
    now += 0.2
    for _ in range(6):  # and when it opens
        script += [(now, False), (now + 0.001, True)]
        now += 0.002
    script += [(now, False), (now + 0.1, None)]
    alarms = [a for a in run(t, script) if isinstance(a, Alarm)]
    assert len(alarms) == 1


def test_zero_min_press_fires_on_the_first_edge() -> None:
    t = fresh(min_press_s=0.0, release_s=0.05)
    assert run(t, [(2.0, True)]) == [Alarm(AlarmKind.PANIC, 2.0, 0.0)]
    # bounce right after the first edge is absorbed by the release debounce
    assert run(t, [(2.001, False), (2.002, True), (2.003, False), (2.004, True)]) == []


def test_glitch_shorter_than_min_press_is_ignored() -> None:
    t = fresh(min_press_s=0.05)
    assert run(t, [(1.0, True), (1.01, False), (2.0, None)]) == []
    assert t.deadline() is None


def test_hold_to_confirm_below_and_above_threshold() -> None:
    t = fresh(mode=Mode.HOLD, hold_s=2.0)
    short = run(t, [(1.0, True), (2.5, False), (2.6, None)])
    assert short == [ShortPress(pytest.approx(1.5))]
    assert t.deadline() is None
    assert run(t, [(10.0, True), (11.9, None)]) == []
    assert t.deadline() == pytest.approx(12.0)
    assert run(t, [(12.0, None)]) == [Alarm(AlarmKind.PANIC, 10.0, pytest.approx(2.0))]
    assert run(t, [(13.0, False), (13.1, None)]) == []


def test_dedicated_duress_button() -> None:
    t = fresh(mode=Mode.DURESS)
    assert run(t, [(1.0, True), (1.05, None)]) == [
        Alarm(AlarmKind.DURESS, 1.0, pytest.approx(0.05))
    ]


def test_long_hold_on_instant_button_is_duress_and_short_press_is_panic() -> None:
    t = fresh(duress_hold_s=3.0)
    assert run(t, [(1.0, True), (1.5, None)]) == []  # the panic waits for the release
    assert run(t, [(1.7, False), (1.8, None)]) == [Alarm(AlarmKind.PANIC, 1.0, pytest.approx(0.7))]
    t = fresh(duress_hold_s=3.0)
    assert run(t, [(1.0, True), (4.0, None)]) == [Alarm(AlarmKind.DURESS, 1.0, pytest.approx(3.0))]
    assert run(t, [(5.0, False), (5.1, None)]) == []


def test_second_press_in_window_is_a_cancel_request_then_a_new_alarm() -> None:
    t = fresh(cancel_window_s=10.0)
    first = run(t, [(1.0, True), (1.1, None), (1.3, False), (1.4, None)])
    assert [type(a) for a in first] == [Alarm]
    second = run(t, [(5.0, True), (5.1, None), (5.3, False), (5.4, None)])
    assert second == [CancelRequest(5.0, pytest.approx(3.9))]  # alarm was decided at 1.1
    third = run(t, [(6.0, True), (6.1, None)])
    assert [type(a) for a in third] == [Alarm]


def test_press_after_cancel_window_is_a_new_alarm() -> None:
    t = fresh(cancel_window_s=2.0)
    run(t, [(1.0, True), (1.1, None), (1.3, False), (1.4, None)])
    assert [type(a) for a in run(t, [(4.0, True), (4.1, None)])] == [Alarm]


def test_duress_is_never_cancelled() -> None:
    t = fresh(mode=Mode.DURESS, cancel_window_s=10.0)
    run(t, [(1.0, True), (1.1, None), (1.3, False), (1.4, None)])
    again = run(t, [(2.0, True), (2.1, None)])
    assert again == [Alarm(AlarmKind.DURESS, 2.0, pytest.approx(0.1))]


def test_stuck_button_gives_one_fault_and_one_clear() -> None:
    t = fresh(stuck_s=30.0)
    actions = run(t, [(1.0, True)] + [(1.0 + s, None) for s in range(1, 200)])
    assert [type(a) for a in actions] == [Alarm, Stuck]
    assert run(t, [(300.0, False), (300.1, None)]) == [StuckCleared(pytest.approx(299.0))]


def test_button_held_at_start_never_alarms_but_reports_stuck() -> None:
    t = PressTracker(PressRules(stuck_s=5.0))
    t.reset(True, 0.0)
    assert run(t, [(4.0, None)]) == []
    assert run(t, [(5.0, None)]) == [Stuck(5.0, True)]


def test_rules_are_validated() -> None:
    with pytest.raises(ValueError, match="hold_s"):
        PressRules(mode=Mode.HOLD)
    with pytest.raises(ValueError, match="stuck_s"):
        PressRules(mode=Mode.HOLD, hold_s=5.0, stuck_s=4.0)
    with pytest.raises(ValueError, match="duress_hold_s"):
        PressRules(mode=Mode.HOLD, hold_s=3.0, duress_hold_s=2.0)


@settings(max_examples=200, deadline=None)
@given(
    chatter=st.lists(st.floats(min_value=0.0001, max_value=0.004), min_size=1, max_size=40),
)
def test_any_chatter_shorter_than_debounce_then_held_gives_exactly_one_alarm(
    chatter: list[float],
) -> None:
    t = fresh(min_press_s=0.01, release_s=0.01)
    now, level, actions = 1.0, False, []
    for gap in chatter:
        level = not level
        actions += t.feed(level, now)
        now += gap
    actions += t.feed(True, now)
    actions += t.poll(now + 0.5)
    actions += t.feed(False, now + 0.5)
    actions += t.poll(now + 1.0)
    assert sum(isinstance(a, Alarm) for a in actions) == 1


def test_settled_level_reports_one_change_per_stable_level() -> None:
    s = SettledLevel(0.1)
    s.reset(False, 0.0)
    assert s.feed(True, 1.0) == []
    assert s.feed(False, 1.02) == []  # bounce back before it settled
    assert s.feed(True, 1.03) == []
    assert s.deadline() == pytest.approx(1.13)
    assert s.poll(1.13) == [True]
    assert s.feed(False, 2.0) == [] and s.poll(2.1) == [False]
