"""Voting across frames of a track: one pass, one reading."""

from __future__ import annotations

from agent.plates.voting import PlateRead, TrackVoter, vote


def _r(text: str, conf: float = 0.9) -> PlateRead:
    return PlateRead(text, conf, [conf] * len(text))


def test_per_position_vote_repairs_single_character_errors() -> None:
    reads = [_r("ABC1234"), _r("A8C1234"), _r("ABC1Z34"), _r("ABC12"), _r("ABG1234", 0.5)]
    voted = vote(reads)
    assert voted is not None
    assert voted.text == "ABC1234"
    assert voted.frames == 5 and voted.votes == 1


def test_parts_of_a_plate_back_the_whole_plate_and_an_extra_character_does_not_win() -> None:
    # a plate's groups read apart (the toll-booth car `34A-231.26` far from the camera)
    voted = vote([_r("34A231", 1.0), _r("34A23126", 0.99), _r("34A231", 1.0)])
    assert voted is not None and (voted.text, voted.agree) == ("34A23126", 3)
    # one frame read a bolt as a character: the five that did not outvote it
    voted = vote([_r("6TIX874")] * 5 + [_r("U6TIX874", 0.95)])
    assert voted is not None and (voted.text, voted.agree) == ("6TIX874", 6)
    # a reading that is neither a part nor one character off backs nothing but itself
    voted = vote([_r("ABC123"), _r("ABC123"), _r("XYZ98765", 0.99)])
    assert voted is not None and (voted.text, voted.agree) == ("ABC123", 2)


def test_voter_emits_once_per_track_after_silence() -> None:
    v = TrackVoter(timeout_s=1.0, min_reads=2)
    v.add("t1", _r("XYZ123"), 0.0)
    v.add("t1", _r("XYZ123"), 0.5)
    v.add("t2", _r("ONLY1"), 0.5)  # one frame only: below min_reads
    assert v.due(1.0) == []
    done = v.due(1.6)
    assert [(t, p.text) for t, p in done] == [("t1", "XYZ123")]
    assert v.due(5.0) == []  # t2 dropped, t1 already decided
    assert v.open_tracks == 0


def test_a_track_decided_early_is_not_decided_again_nor_counted_dropped() -> None:
    v = TrackVoter(timeout_s=1.0, min_reads=2)
    watched = {"ABC123"}

    def accept(voted: object) -> bool:
        return getattr(voted, "text", "") in watched

    v.add("t1", _r("ABC123"), 0.0)
    assert v.decide("t1", accept) is None  # one frame: below min_reads
    v.add("t1", _r("A8C123"), 0.1)
    v.add("t2", _r("XYZ999"), 0.1)
    v.add("t2", _r("XYZ999"), 0.2)
    assert v.decide("t2", accept) is None  # agreed, but not accepted: stays open
    voted = v.decide("t1", accept)
    assert voted is not None and voted.text == "ABC123" and voted.frames == 2
    assert v.decided("t1") and v.decide("t1", accept) is None
    v.add("t1", _r("ABC123"), 0.5)  # the same car, still in view
    assert [t for t, _ in v.due(2.0)] == ["t2"]  # t1 is forgotten, not decided twice
    assert v.dropped == 0 and v.open_tracks == 0 and not v.decided("t1")


def test_min_reads_counts_frames_that_agree_not_frames() -> None:
    v = TrackVoter(timeout_s=1.0, min_reads=2)
    # two readings of a tiny plate in a side lane: two frames, no two alike
    v.add("far", _r("17171", 0.94), 0.0)
    v.add("far", _r("5L1717T1", 0.84), 0.1)
    # each frame one character off: they agree with the voted plate
    v.add("near", _r("34A36837"), 0.0)
    v.add("near", _r("34A3683Z"), 0.1)
    v.add("near", _r("3AA36837"), 0.2)
    # the full plate once, and its groups apart: parts of the plate agree with it
    v.add("parts", _r("34A23126", 0.95), 0.0)
    v.add("parts", _r("34A2"), 0.1)
    v.add("parts", _r("A2312"), 0.1)
    done = dict(v.due(2.0))
    assert sorted(done) == ["near", "parts"] and v.dropped == 1
    assert done["near"].text == "34A36837" and done["near"].agree == 3 and done["near"].votes == 1
    assert done["parts"].text == "34A23126" and done["parts"].agree == 3


def test_seen_keeps_a_track_open() -> None:
    v = TrackVoter(timeout_s=1.0)
    v.add("t", _r("AAA111"), 0.0)
    v.seen("t", 0.9)
    assert v.due(1.5) == []
    assert [t for t, _ in v.due(2.0)] == ["t"]


def test_empty_vote_is_none() -> None:
    assert vote([]) is None


def test_message_round_trip_for_the_vision_worker_queue() -> None:
    import pickle

    from agent.plates.voting import from_message, to_message

    voted = vote([_r("ABC123"), _r("ABC123", 0.7)])
    assert voted is not None
    voted.best.extra = {"camera": "gate", "media": None}
    msg = pickle.loads(pickle.dumps(to_message("t9", voted)))
    track, back = from_message(msg)
    assert track == "t9" and back.text == "ABC123" and back.frames == 2 and back.agree == 2
    assert back.best.extra["camera"] == "gate"


def test_roi_readings_are_split_into_tracks_by_text() -> None:
    v = TrackVoter(timeout_s=1.0)
    for t, text in enumerate(["34A36837", "JLJL", "34A36B37", "JLJL", "34A36837"]):
        v.add(v.assign("gate:roi", text), _r(text), float(t) * 0.1)
    assert v.open_tracks == 2
    texts = sorted(p.text for _, p in v.flush())
    assert texts == ["34A36837", "JLJL"]
