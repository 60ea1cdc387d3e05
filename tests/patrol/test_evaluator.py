"""TourEvaluator on a scheduled route: on time, early, late, out of order, duplicate,
unknown card, missed windows, and a restart in the middle of a tour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.errors import CommandError
from agent.patrol.evaluator import EvaluatorState, TapStatus, TourEvaluator
from agent.patrol.plan import PatrolPlan, parse_plan
from drivers.rfid.tags import parse_tag

from .scenario import MIN, PLAN, T0


@pytest.fixture
def plan() -> PatrolPlan:
    return parse_plan(PLAN)


def officer(plan: PatrolPlan, tag: str):  # type: ignore[no-untyped-def]
    return plan.officer_for(parse_tag(tag))


def test_route_scenario_statuses_and_missed(plan: PatrolPlan) -> None:
    ev = TourEvaluator(plan, EvaluatorState(since=T0 - 3600))
    li = officer(plan, "em4100:62E3086CED")
    assert li is not None and li.id == "o-17"
    assert ev.advance(T0) == []

    a = ev.tap("A", li, T0 + 1 * MIN)
    assert a.status is TapStatus.ON_TIME
    assert a.window is not None and a.window.tour_id == "night@2026-11-24T22:00:00Z"
    # The same card again at A within A's window: a duplicate, not a second visit.
    assert ev.tap("A", li, T0 + 3 * MIN).status is TapStatus.DUPLICATE
    # C while B is still open: B was skipped (for now) → out of order, and early for C.
    c = ev.tap("C", li, T0 + 13 * MIN)
    assert (c.status, c.timing) == (TapStatus.OUT_OF_ORDER, TapStatus.EARLY)
    assert c.lateness_s == pytest.approx(-7 * MIN)
    # Then B: a later stop is already done → out of order, and late.
    b = ev.tap("B", li, T0 + 15 * MIN)
    assert (b.status, b.timing) == (TapStatus.OUT_OF_ORDER, TapStatus.LATE)
    assert ev.advance(T0 + 20 * MIN) == []
    d = ev.tap("D", li, T0 + 33 * MIN)
    assert (d.status, d.timing) == (TapStatus.LATE, TapStatus.LATE)
    assert d.lateness_s == pytest.approx(3 * MIN)
    assert not d.tour_complete
    # E is never tapped: missed when its window closes (40 + 8 min), reported once.
    assert ev.advance(T0 + 47 * MIN) == []
    [missed] = ev.advance(T0 + 49 * MIN)
    assert (missed.checkpoint, missed.index, missed.closes) == ("E", 4, T0 + 48 * MIN)
    assert missed.describe()["window_end"] == "2026-11-24T22:48:00Z"
    assert ev.advance(T0 + 50 * MIN) == []
    # After the window: a known card with nothing due here.
    assert ev.tap("E", li, T0 + 50 * MIN).status is TapStatus.UNSCHEDULED


def test_unknown_card_never_satisfies_a_stop(plan: PatrolPlan) -> None:
    ev = TourEvaluator(plan, EvaluatorState(since=T0))
    stranger = officer(plan, "em4100:0102030405")
    assert stranger is None
    assert ev.tap("A", stranger, T0).status is TapStatus.UNKNOWN_CARD
    assert [w.checkpoint for w in ev.advance(T0 + 9 * MIN)] == ["A"]


def test_card_forms_match_across_reader_types(plan: PatrolPlan) -> None:
    assert officer(plan, "dec32:3808980205").id == "o-17"  # keyboard reader typing decimal
    assert officer(plan, "w26:008,27885").id == "o-17"  # a Wiegand reader on the same fob
    assert officer(plan, "w26:090,00324").id == "o-18"
    assert officer(plan, "uid:04A1B2C3D4E5F6").id == "o-18"


def test_restart_mid_route_reports_downtime_misses_once(plan: PatrolPlan) -> None:
    li = officer(plan, "em4100:62E3086CED")
    ev = TourEvaluator(plan, EvaluatorState(since=T0 - 60))
    assert ev.tap("A", li, T0 + 0.5 * MIN).status is TapStatus.ON_TIME
    assert ev.tap("B", li, T0 + 10 * MIN).status is TapStatus.ON_TIME
    ev.advance(T0 + 12 * MIN)
    saved = json.loads(json.dumps(ev.state.to_dict()))  # what the store writes

    # The box is down from 22:12 to 22:39; C and D closed meanwhile, E is still open.
    ev2 = TourEvaluator(plan, EvaluatorState.from_dict(saved))
    missed = ev2.advance(T0 + 39 * MIN)
    assert [(w.checkpoint, w.index) for w in missed] == [("C", 2), ("D", 3)]
    e = ev2.tap("E", li, T0 + 41 * MIN)
    assert (e.status, e.timing) == (TapStatus.ON_TIME, TapStatus.ON_TIME)
    # A and B were visited before the restart: never reported missed.
    assert ev2.advance(T0 + 120 * MIN) == []
    # Had the box come back at 22:13 instead, B's visit would still be known: a duplicate.
    ev3 = TourEvaluator(plan, EvaluatorState.from_dict(saved))
    assert ev3.tap("B", li, T0 + 13 * MIN).status is TapStatus.DUPLICATE
    # A tap stamped long before the horizon (clock stepped back) matches nothing.
    assert ev2.tap("B", li, T0 + 13 * MIN).status is TapStatus.UNSCHEDULED


def test_tour_complete_and_unordered_route() -> None:
    plan = parse_plan(
        {
            "roster": [{"id": "o1", "tags": ["uid:DEADBEEF"]}],
            "routes": [
                {
                    "id": "yard",
                    "ordered": False,
                    "stops": [{"checkpoint": "X", "at_min": 0}, {"checkpoint": "Y", "at_min": 10}],
                    "schedule": {"times": ["22:00"]},
                }
            ],
        }
    )
    o = plan.officer_for(parse_tag("uid:DEADBEEF"))
    ev = TourEvaluator(plan, EvaluatorState(since=T0))
    y = ev.tap("Y", o, T0 + 1 * MIN)
    assert (y.status, y.timing) == (TapStatus.EARLY, TapStatus.EARLY)  # unordered: no penalty
    x = ev.tap("X", o, T0 + 2 * MIN)
    assert x.status is TapStatus.ON_TIME and x.tour_complete


def test_schedule_in_local_time_and_weekdays() -> None:
    plan = parse_plan(
        {
            "roster": [{"id": "o1", "tags": ["uid:DEADBEEF"]}],
            "routes": [
                {
                    "id": "dawn",
                    "stops": [{"checkpoint": "X", "at_min": 0}],
                    "schedule": {"times": ["06:00"], "days": ["wed"], "tz": "Asia/Shanghai"},
                }
            ],
        }
    )
    ev = TourEvaluator(plan, EvaluatorState(since=T0 - 86400 * 3))
    # Wednesday 06:00 in Shanghai is Tuesday 22:00 UTC; only Wednesdays, so one tour a week.
    starts = list(ev.tour_starts(plan.routes[0], T0 - 86400 * 3, T0 + 86400 * 8))
    assert starts == [T0, T0 + 7 * 86400]
    assert [w.tour_id for w in ev.advance(T0 + 3600)] == ["dawn@2026-11-24T22:00:00Z"]


def test_catchup_is_bounded() -> None:
    plan = parse_plan(
        {
            "routes": [
                {
                    "id": "r",
                    "stops": [{"checkpoint": "X", "at_min": 0}],
                    "schedule": {"times": ["00:00", "12:00"]},
                }
            ]
        }
    )
    ev = TourEvaluator(plan, EvaluatorState(since=T0 - 30 * 86400), catchup_s=86400)
    assert len(ev.advance(T0)) == 2  # only the last day's two tours


def test_invalid_plans_name_the_key() -> None:
    bad = json.loads(json.dumps(PLAN))
    bad["routes"][0]["stops"][1]["early_min"] = 30
    with pytest.raises(CommandError, match=r"routes\[0\]"):
        parse_plan(bad)
    bad = json.loads(json.dumps(PLAN))
    bad["roster"][1]["tags"].append("dec32:3808980205")  # o-17's fob
    with pytest.raises(CommandError, match="also 'o-17'"):
        parse_plan(bad)
    with pytest.raises(CommandError, match="HH:MM"):
        parse_plan({"routes": [{"id": "r", "stops": [{"checkpoint": "X", "at_min": 0}],
                                "schedule": {"times": ["25:00"]}}]})  # fmt: skip
    with pytest.raises(CommandError, match="unknown key"):
        parse_plan({"roster": [], "rotues": []})


def test_example_plan_is_valid() -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "patrol-plan.json"
    plan = parse_plan(json.loads(path.read_text()))
    assert plan.officer_for(parse_tag("em4100:62E3086CED")) is not None
    assert len(plan.routes[0].schedule.times) == 48


def test_each_box_judges_only_its_own_stops(plan: PatrolPlan) -> None:
    li = officer(plan, "em4100:62E3086CED")
    # This box is checkpoints B and D of the site-wide round.
    ev = TourEvaluator(plan, EvaluatorState(since=T0 - 60), local=frozenset({"B", "D"}))
    # A (another box) is still open, but this box cannot know it was skipped: not out of order.
    assert ev.tap("B", li, T0 + 10 * MIN).status is TapStatus.ON_TIME
    d = ev.tap("D", li, T0 + 30 * MIN)
    assert d.status is TapStatus.ON_TIME and d.tour_complete  # all *local* stops done
    # Only local stops can be missed; here none was.
    assert ev.advance(T0 + 120 * MIN) == []
    ev2 = TourEvaluator(plan, EvaluatorState(since=T0 - 60), local=frozenset({"B", "D"}))
    assert [w.checkpoint for w in ev2.advance(T0 + 120 * MIN)] == ["B", "D"]
