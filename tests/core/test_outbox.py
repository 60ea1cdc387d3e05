"""The outbox on its own: persistence, seq, priorities, eviction, TTL, acks."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from agent.errors import OutboxFull
from agent.events import Event, Priority
from agent.outbox import ROW_OVERHEAD, Outbox


def test_put_persists_and_seq_survives_restart(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", "dev")
    first = [ob.put("patrol.tap", {"i": i}) for i in range(5)]
    assert [e.seq for e in first] == [1, 2, 3, 4, 5]
    ob.close()
    # What put() returned is on disk: read it back with plain sqlite.
    with sqlite3.connect(tmp_path / "o.db") as db:
        payloads = [r[0] for r in db.execute("SELECT payload FROM events ORDER BY rowid")]
    assert [Event.from_json(p) for p in payloads] == first
    ob = Outbox(tmp_path / "o.db", "dev")
    assert ob.put("patrol.tap", {}).seq == 6
    ob.close()


def test_fetch_by_class_and_ack_deletes_only_acked(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", "dev")
    ob.put("device.sample", {"n": 1})
    alarm = ob.put("alarm.panic", {"button": "front"})
    assert alarm.priority is Priority.ALARM
    rows = ob.fetch(Priority.ALARM, 0, 10)
    assert [r.id for r in rows] == [alarm.id]
    ob.ack([rows[0].rowid])
    ob.sync()
    assert ob.fetch(Priority.ALARM, 0, 10) == []
    assert len(ob.fetch(Priority.TELEMETRY, 0, 10)) == 1
    assert ob.counters()["delivered"] == 1
    ob.close()


def test_disk_cap_evicts_telemetry_oldest_first_keeps_alarms(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", "dev", max_bytes=64 * 1024)
    alarms = [ob.put("alarm.panic", {"i": i, "pad": "x" * 100}) for i in range(50)]
    tele = [ob.submit("device.sample", {"i": i, "pad": "y" * 200}) for i in range(400)]
    tele_events = [f.result() for f in tele]
    stats = ob.stats()
    assert ob.total_bytes() <= 64 * 1024
    assert stats[Priority.ALARM].depth == 50
    evicted = ob.counters()["evicted_telemetry"]
    assert evicted == 400 - stats[Priority.TELEMETRY].depth
    assert evicted > 0
    kept = [r.id for r in ob.fetch(Priority.TELEMETRY, 0, 1000)]
    # Oldest first: what is left is exactly the newest suffix.
    assert kept == [e.id for e in tele_events[-len(kept):]]
    # More alarms still go in, even past the cap, and telemetry makes room for them.
    more = [ob.put("alarm.duress", {"i": i, "pad": "z" * 300}) for i in range(200)]
    assert ob.stats()[Priority.ALARM].depth == 250
    assert {r.id for r in ob.fetch(Priority.ALARM, 0, 1000)} == {e.id for e in alarms + more}
    assert ob.stats()[Priority.TELEMETRY].depth == 0
    assert ob.counters().get("over_cap_alarm", 0) > 0
    # Telemetry that cannot fit (only alarms left) is refused loudly, and counted.
    with pytest.raises(OutboxFull):
        ob.put("device.sample", {"pad": "q" * 200})
    assert ob.counters()["dropped_telemetry"] == 1
    ob.close()


def test_vision_evicted_after_telemetry(tmp_path: Path) -> None:
    size = len(Event("0" * 36, "dev", "vision.object", 1, "2026-01-01T00:00:00.000Z",
                     Priority.VISION, {"i": 0}).to_json()) + ROW_OVERHEAD
    ob = Outbox(tmp_path / "o.db", "dev", max_bytes=max(64 * 1024, size * 100))
    for i in range(60):
        ob.put("vision.object", {"i": i})
    for i in range(40):
        ob.put("device.sample", {"i": i})
    for i in range(30):
        ob.put("patrol.tap", {"i": i, "pad": "p" * 2000})
    c = ob.counters()
    assert c.get("evicted_telemetry", 0) == 40
    assert c.get("evicted_vision", 0) > 0
    assert ob.stats()[Priority.PATROL].depth == 30
    ob.close()


def test_ttl_expires_per_class_never_alarms(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", "dev", ttl_s={Priority.TELEMETRY: 0.2,
                                                 Priority.ALARM: 0.2})
    ob.put("alarm.panic", {})
    ob.put("device.sample", {})
    time.sleep(0.3)
    ob.close()
    # Expiry runs on the writer thread, once after its first commit and then every minute.
    ob = Outbox(tmp_path / "o.db", "dev", ttl_s={Priority.TELEMETRY: 0.2,
                                                 Priority.ALARM: 0.2})
    ob.put("patrol.tap", {})  # wakes the writer, whose first pass expires
    deadline = time.monotonic() + 5
    while ob.stats()[Priority.TELEMETRY].depth and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ob.stats()[Priority.TELEMETRY].depth == 0
    assert ob.counters()["expired_telemetry"] == 1
    assert ob.stats()[Priority.ALARM].depth == 1
    ob.close()


def test_type_ttl_expires_that_type_alone_and_never_an_alarm(tmp_path: Path) -> None:
    # [plates.privacy] non_hit_retention_s: unsent plate readings go sooner than the rest
    # of their class; the hit (an alarm) never goes.
    ob = Outbox(tmp_path / "o.db", "dev", ttl_types={"plate.read": 0.2, "plate.hit": 0.2})
    ob.put("plate.read", {"text": "ABC123"})
    ob.put("plate.hit", {"text": "HIT123"})
    ob.put("vision.object", {})
    time.sleep(0.3)
    ob.close()
    # Expiry runs on the writer thread, once after its first commit and then every minute.
    ob = Outbox(tmp_path / "o.db", "dev", ttl_types={"plate.read": 0.2, "plate.hit": 0.2})
    ob.put("patrol.tap", {})
    deadline = time.monotonic() + 5
    while ob.stats()[Priority.VISION].depth > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    kinds = sorted(row["type"] for row in ob.peek())
    assert kinds == ["patrol.tap", "plate.hit", "vision.object"]
    assert ob.counters()["expired_plate.read"] == 1
    assert ob.stats()[Priority.VISION].depth == 1
    assert ob.stats()[Priority.ALARM].depth == 1
    ob.close()


def test_a_delivered_events_bytes_leave_the_file(tmp_path: Path) -> None:
    # A plate reading delivered (or expired) must not linger in the database's free space.
    ob = Outbox(tmp_path / "o.db", "dev")
    for i in range(40):
        ob.put("plate.read", {"text": f"MARK{i:03d}", "pad": "x" * 300})
    ob.put("patrol.tap", {"text": "KEEP001"})
    done = ob.fetch(Priority.VISION, 0, 100)
    assert len(done) == 40
    ob.ack(p.rowid for p in done)
    ob.sync()
    ob.close()
    db = sqlite3.connect(tmp_path / "o.db")
    assert db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    db.close()
    data = (tmp_path / "o.db").read_bytes()
    assert b"KEEP001" in data
    assert not [i for i in range(40) if f"MARK{i:03d}".encode() in data]


def test_bad_event_type_and_unserialisable_data(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", "dev")
    with pytest.raises(ValueError):
        ob.put("Alarm/Panic", {})
    with pytest.raises(Exception, match="not JSON"):
        ob.put("device.sample", {"when": object()})
    assert ob.put("device.sample", {}).seq == 1  # no seq was burnt
    ob.close()


def test_delete_lists_are_padded_to_a_few_statement_shapes() -> None:
    from agent.outbox import _IN_SIZES, _padded

    shapes = set()
    for n in range(1, _IN_SIZES[-1] + 1):
        ids = list(range(100, 100 + n))
        padded = _padded(ids)
        assert set(padded) == set(ids) and padded[:n] == ids
        shapes.add(len(padded))
    assert shapes == set(_IN_SIZES)
