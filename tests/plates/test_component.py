"""Watchlist push and persistence, plate.hit priority, privacy, and the missing-model fault."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.errors import CommandError
from agent.events import Priority, default_priority
from agent.plates.component import PlateComponent
from agent.plates.config import PlatesConfig, PrivacyConfig
from agent.plates.voting import PlateRead, VotedPlate
from agent.plates.watchlist import Watchlist, keyed_hash, parse_entries

MODELS = Path(__file__).resolve().parents[2] / "models"


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], Priority]] = []

    def emit(self, type: str, data: Any = None, *, priority: Priority | None = None) -> Any:
        self.events.append((type, dict(data or {}), priority or default_priority(type)))
        return None

    def types(self) -> list[str]:
        return [t for t, _, _ in self.events]


def _component(tmp_path: Path, **cfg: Any) -> tuple[PlateComponent, RecordingSink]:
    sink = RecordingSink()
    config = PlatesConfig(model_dir=tmp_path / "no-models", **cfg)
    comp = PlateComponent(config, sink, tmp_path)
    return comp, sink


def test_missing_model_gives_one_fault_and_the_rest_still_works(tmp_path: Path) -> None:
    comp, sink = _component(tmp_path)
    comp.start()
    try:
        assert sink.types() == ["device.fault"]
        _, data, prio = sink.events[0]
        assert data["component"] == "plates" and "manifest" in data["detail"]
        assert prio == Priority.PATROL
        assert comp.status()["enabled"] is False
        # Frames are ignored, the watchlist command still works.
        assert comp.read_frame(np.zeros((72, 128, 3), np.uint8)) == []
        reply = comp.watchlist_command({"op": "set", "entries": [{"plate": "ABC123"}]})
        assert reply["count"] == 1
    finally:
        comp.stop()
    assert sink.types() == ["device.fault"]


def test_a_missing_finder_model_is_a_fault_naming_it(tmp_path: Path) -> None:
    """The OCR models are there, the plate finder's file is not: plates are off with one
    fault that names the finder; with ``finder = "classical"`` nothing is missing."""
    models = tmp_path / "models"
    models.mkdir()
    manifest = json.loads((MODELS / "manifest.json").read_text())
    kept = [m for m in manifest["models"] if m["name"] != PlatesConfig().finder_model]
    for m in kept:
        (models / m["file"]).symlink_to(MODELS / m["file"])
    (models / "manifest.json").write_text(json.dumps({"models": kept}))
    for finder, faults in (("both", 1), ("classical", 0)):
        sink = RecordingSink()
        comp = PlateComponent(PlatesConfig(model_dir=models, finder=finder), sink, tmp_path)
        comp.start()
        comp.stop()
        assert sink.types().count("device.fault") == faults
        if faults:
            assert "outpost-plate-find-int8" in sink.events[0][1]["detail"]
            assert comp.status()["enabled"] is False


def test_watchlist_push_survives_restart_and_hit_is_an_alarm(tmp_path: Path) -> None:
    comp, sink = _component(tmp_path)
    comp.watchlist_command(
        {
            "op": "set",
            "entries": [{"plate": "京A·12345", "reason": "stolen", "id": "w1"}, "8PQR123"],
        }
    )
    comp2, sink2 = _component(tmp_path)  # a restart: a new component reads the stored list
    assert {e.plate for e in comp2.watchlist.entries} == {"京A12345", "8PQR123"}
    comp2.submit("京A1234S")  # 5/S confusion on the last character
    assert sink2.types() == ["plate.read", "plate.hit"]
    _, hit, prio = sink2.events[1]
    assert prio == Priority.ALARM
    assert hit["watch"] == {"plate": "京A12345", "reason": "stolen", "id": "w1"}
    assert hit["distance"] == pytest.approx(0.25)
    comp2.submit("ZZZ999")
    assert sink2.types()[-1] == "plate.read"
    comp2.submit("豫A12345")  # the province misread, the rest right: still the stolen car
    assert sink2.types()[-2:] == ["plate.read", "plate.hit"]
    assert sink2.events[-1][1]["distance"] == pytest.approx(0.5)
    comp2.submit("豫A1234S")  # the province and one more character: not a match
    assert sink2.types()[-1] == "plate.read"
    listed = comp2.watchlist_command({"op": "list"})
    assert len(listed["entries"]) == 2
    assert comp2.watchlist_command({"op": "remove", "plates": ["8PQR123"]})["removed"] == 1
    del comp, sink


@pytest.mark.parametrize(
    "payload",
    [
        {"op": "set", "entries": "ABC123"},
        {"op": "set", "entries": [{"plate": "A"}]},
        {"op": "set", "entries": [{"plate": "ABC123", "colour": "blue"}]},
        {"op": "explode"},
        {"op": "remove", "plates": "ABC"},
    ],
)
def test_bad_watchlist_pushes_are_rejected(tmp_path: Path, payload: dict[str, Any]) -> None:
    comp, _ = _component(tmp_path)
    with pytest.raises(CommandError):
        comp.watchlist_command(payload)


def test_privacy_hash_replaces_text_of_non_hits(tmp_path: Path) -> None:
    comp, sink = _component(tmp_path, privacy=PrivacyConfig(hash_non_hits=True))
    comp.watchlist.replace(parse_entries(["HIT123"]))
    comp.start()
    try:
        comp.submit("ABC123")
        comp.submit("HIT123")
    finally:
        comp.stop()
    reads = [d for t, d, _ in sink.events if t == "plate.read"]
    key = (tmp_path / "plates-hash.key").read_bytes()
    assert "text" not in reads[0] and reads[0]["text_hash"] == keyed_hash("ABC123", key)
    assert reads[1]["text"] == "HIT123"  # hits are published in clear
    assert sink.types()[-1] == "plate.hit"


def test_a_hashed_non_hit_carries_no_crop_and_its_crop_goes_at_once(tmp_path: Path) -> None:
    comp, sink = _component(tmp_path, privacy=PrivacyConfig(hash_non_hits=True))
    limited: list[tuple[str, float]] = []
    comp.set_media_limiter(lambda media_id, keep: limited.append((media_id, keep)) or True)
    comp.watchlist.replace(parse_entries(["HIT123"]))
    comp.start()
    try:
        for text in ("ABC123", "HIT123"):
            media = {"id": f"m-{text}", "bytes": 900}
            read = PlateRead(text, 0.99, [0.99] * 6, extra={"camera": "gate", "media": media})
            comp.publish(f"gate:{text}", VotedPlate(text, 0.99, read.char_confidences, 2, 2, read))
    finally:
        comp.stop()
    reads = [d for t, d, _ in sink.events if t == "plate.read"]
    assert "media" not in reads[0] and "text" not in reads[0]
    assert reads[1]["media"]["id"] == "m-HIT123"
    assert limited == [("m-ABC123", 0.0)]


@pytest.mark.parametrize("publish_non_hits", [True, False])
def test_a_non_hits_crop_is_kept_no_longer_than_the_privacy_setting(
    tmp_path: Path, publish_non_hits: bool
) -> None:
    privacy = PrivacyConfig(non_hit_retention_s=600, publish_non_hits=publish_non_hits)
    comp, sink = _component(tmp_path, privacy=privacy)
    limited: list[tuple[str, float]] = []
    comp.set_media_limiter(lambda media_id, keep: limited.append((media_id, keep)) or True)
    comp.watchlist.replace(parse_entries(["HIT123"]))
    for text, media_id in (("ABC123", "m-read"), ("HIT123", "m-hit"), ("XYZ789", None)):
        media = {"id": media_id} if media_id else None
        read = PlateRead(text, 0.99, [0.99] * 6, extra={"camera": "gate", "media": media})
        comp.publish(f"gate:{text}", VotedPlate(text, 0.99, read.char_confidences, 2, 2, read))
    # the hit's crop keeps the store's own retention; a non-hit's goes at once where its
    # text is not published (the crop would show it)
    assert limited == [("m-read", 600 if publish_non_hits else 0.0)]
    assert sink.types().count("plate.hit") == 1
    # without the setting nothing is limited
    comp2, _ = _component(tmp_path / "b")
    calls: list[str] = []
    comp2.set_media_limiter(lambda media_id, keep: calls.append(media_id) or True)
    read = PlateRead("ABC123", 0.99, [0.99] * 6, extra={"media": {"id": "m"}})
    comp2.publish("gate:1", VotedPlate("ABC123", 0.99, read.char_confidences, 2, 2, read))
    assert calls == []


@pytest.mark.parametrize("max_distance", [0.25, 0.5, 1.0])
def test_the_plate_index_finds_what_measuring_every_plate_finds(max_distance: float) -> None:
    """``PlateIndex`` (every frame's reading is matched, against up to 100,000 plates)
    files plates under their parts; it must find the same closest plate as measuring each."""
    import random

    from agent.plates.formats import CN_PROVINCES, match_distance
    from agent.plates.watchlist import PlateIndex

    rng = random.Random(7)
    chars = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    plates = [
        (rng.choice(CN_PROVINCES) if rng.random() < 0.5 else "")
        + "".join(rng.choice(chars) for _ in range(rng.randint(4, 6)))
        for _ in range(300)
    ]
    index = PlateIndex(plates, max_distance)
    swaps = {"0": "O", "8": "B", "M": "H", "2": "Z"}
    for _ in range(150):
        text = list(rng.choice(plates))
        for _ in range(rng.randint(0, 2)):
            i = rng.randrange(len(text))
            text[i] = swaps.get(text[i], rng.choice(chars))
        if rng.random() < 0.2:
            del text[rng.randrange(len(text))]
        if text[0] in CN_PROVINCES and rng.random() < 0.3:
            text[0] = rng.choice(CN_PROVINCES)
        reading = "".join(text)
        best = min(match_distance(reading, p) for p in plates)
        found = index.closest(reading)
        if best > max_distance:
            assert found is None, reading
        else:
            assert found is not None and found[1] == pytest.approx(best), reading
            assert match_distance(reading, plates[found[0]]) == pytest.approx(best)


def test_watchlist_file_is_replaced_atomically(tmp_path: Path) -> None:
    wl = Watchlist(tmp_path / "wl.json")
    wl.replace(parse_entries(["ABC123", "ABC123", "XYZ789"]))
    data = json.loads((tmp_path / "wl.json").read_text())
    assert [e["plate"] for e in data["entries"]] == ["ABC123", "XYZ789"]
    assert not (tmp_path / "wl.tmp").exists()
    assert wl.match("ABC1Z3") is not None  # 2/Z
    assert wl.match("ABD124") is None


def test_simulator_publishes_through_the_same_path(tmp_path: Path) -> None:
    comp, sink = _component(tmp_path)
    comp.watchlist.replace(parse_entries(["SIM001"]))
    reply = comp.simulate({"argv": ["SIM00I", "--camera", "gate"]})
    assert reply["hit"] is True
    assert sink.types() == ["plate.read", "plate.hit"]
    with pytest.raises(CommandError):
        comp.simulate({"argv": []})


class _FakeReader:
    """Stands in for PlateReader: returns scripted readings per call."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.ocr = type("O", (), {"name": "fake"})()

    def read_image(self, image: Any, regions: Any = None, finder: bool = True) -> list[Any]:
        from agent.plates.voting import PlateRead

        text = self.texts.pop(0)
        return [PlateRead(text, 0.9, [0.9] * len(text), box=(10, 20, 100, 30))] if text else []


def test_read_frame_votes_per_track_and_emits_once(tmp_path: Path) -> None:
    sink = RecordingSink()
    reader = _FakeReader(["ABC123", "A8C123", "", "ABC123"])
    cfg = PlatesConfig(early_hit=False)
    comp = PlateComponent(cfg, sink, tmp_path, reader=reader)  # type: ignore[arg-type]
    comp.watchlist.replace(parse_entries(["ABC123"]))
    frame = np.zeros((720, 1280, 3), np.uint8)
    for _ in range(4):
        comp.read_frame(frame, [("t1", (0, 0, 640, 720))], camera="gate", media="m/1.jpg")
    comp.tap.tick()  # type: ignore[union-attr]
    assert sink.events == []  # nothing until the track ends
    comp.end_track("t1")
    assert sink.types() == ["plate.read", "plate.hit"]
    read = sink.events[0][1]
    assert read["text"] == "ABC123" and read["frames"] == 3 and read["votes"] == 2
    assert read["camera"] == "gate" and read["track"] == "t1" and read["media"] == "m/1.jpg"
    assert read["box"] == [10, 20, 100, 30]
    comp.end_track("t1")
    assert len(sink.events) == 2


def test_a_watched_plate_is_decided_and_hit_while_its_track_is_open(tmp_path: Path) -> None:
    """``early_hit`` (the default): once two frames (``EARLY_VOTES``) have read a watched
    plate, the track is decided at the next tick, not when it ends; its later frames raise
    nothing more, and a plate not watched still waits for its track's end."""
    sink = RecordingSink()
    reader = _FakeReader(["XYZ789", "ABC123", "ABC123", "A8C123", "ABC123", "XYZ789"])
    comp = PlateComponent(PlatesConfig(), sink, tmp_path, reader=reader)  # type: ignore[arg-type]
    comp.watchlist.replace(parse_entries(["ABC123"]))
    tap = comp.tap
    assert tap is not None
    frame = np.zeros((720, 1280, 3), np.uint8)
    comp.read_frame(frame, [("other", (0, 0, 640, 720))], camera="gate")
    comp.read_frame(frame, [("t1", (0, 0, 640, 720))], camera="gate")
    tap.tick()
    assert sink.events == []  # one frame is not enough (EARLY_VOTES), even at min_reads 1
    comp.read_frame(frame, [("t1", (0, 0, 640, 720))], camera="gate")
    assert sink.events == []  # told at the next tick: the caller first adds its picture
    tap.tick()
    assert sink.types() == ["plate.read", "plate.hit"]
    assert sink.events[0][1]["frames"] == 2 and sink.events[1][2] == Priority.ALARM
    for _ in range(2):
        comp.read_frame(frame, [("t1", (0, 0, 640, 720))], camera="gate")
    tap.tick()
    comp.end_track("t1")
    assert len(sink.events) == 2  # the rest of the watched car's frames: nothing more
    comp.read_frame(frame, [("other", (0, 0, 640, 720))], camera="gate")
    tap.tick()
    assert len(sink.events) == 2
    comp.end_track("other")
    assert sink.types()[2:] == ["plate.read"] and sink.events[2][1]["text"] == "XYZ789"


def test_build_registers_the_watchlist_command_and_simulator(tmp_path: Path) -> None:
    from agent.config import DeviceConfig, Settings
    from agent.plates import build
    from agent.runtime import AgentContext

    sink = RecordingSink()
    settings = Settings(device=DeviceConfig(state_dir=tmp_path))
    ctx = AgentContext(settings=settings, sink=sink)  # type: ignore[arg-type]
    [comp] = build(ctx)
    assert comp.name == "plates"
    reply = ctx.commands.dispatch("watchlist", {"op": "add", "entries": ["XYZ789"]})
    assert reply["ok"] is True
    assert (tmp_path / "plates-watchlist.json").is_file()
    bad = ctx.commands.dispatch("watchlist", {"op": "add", "entries": [{"plate": "!"}]})
    assert bad["ok"] is False
    assert ctx.simulators.dispatch("plate", {"argv": ["XYZ789"]})["ok"] is True
    assert sink.types() == ["plate.read", "plate.hit"]


def test_corrupt_watchlist_file_is_a_fault_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "plates-watchlist.json").write_text("{not json")
    comp, sink = _component(tmp_path)
    comp.start()
    comp.stop()
    faults = [d["fault"] for t, d, _ in sink.events if t == "device.fault"]
    assert faults == ["model", "watchlist"]
    assert comp.watchlist.entries == []


def test_the_daemon_gives_plate_readings_the_privacy_ttl_in_its_outbox(tmp_path: Path) -> None:
    from agent import daemon
    from agent.config import Settings

    def outbox_ttls(privacy: dict[str, Any]) -> dict[str, float]:
        settings = Settings(
            device={"id": "box-ttl", "state_dir": tmp_path / "state"},
            mqtt={"urls": ["mqtt://127.0.0.1:1"]},
            control={"socket": tmp_path / "control.sock"},
            plates={"privacy": privacy},
        )
        agent = daemon.Agent(settings)
        try:
            return agent.outbox.ttl_types
        finally:
            agent.outbox.close()

    assert outbox_ttls({"non_hit_retention_s": 3600}) == {"plate.read": 3600.0}
    assert outbox_ttls({}) == {}
