"""Benchmark: outbox ingest rate and per-alarm durability cost, against raw sqlite3.

Figures: events/s with one batched producer (submit() many, wait all), events/s with several
threads calling put(), and alarms made durable one by one (put() with ALARM priority, each
fsynced). Same-run baselines: raw sqlite3 inserts of the same payloads in one transaction,
and one commit per row with journal_mode=WAL, synchronous=FULL.

    .venv/bin/python bench/outbox_ingest.py [--events 20000] [--alarms 200] [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.events import Priority
from agent.outbox import Outbox


def sample_data(i: int) -> dict[str, object]:
    return {
        "cpu_temp_c": 48.5 + (i % 10) / 10,
        "load": [0.42, 0.38, 0.31],
        "mem_free_mb": 612,
        "disk_free_mb": 10240,
        "uptime_s": 86400 + i,
        "note": "periodic sample",
    }


def raw_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE events (rowid INTEGER PRIMARY KEY AUTOINCREMENT, cls INTEGER, "
        "id TEXT, type TEXT, created REAL, size INTEGER, payload BLOB)"
    )
    db.execute("CREATE INDEX events_cls ON events (cls, rowid)")
    return db


def row(i: int) -> tuple[int, str, str, float, int, bytes]:
    payload = json.dumps(
        {
            "id": f"0190{i:028x}",
            "device_id": "bench-01",
            "type": "device.sample",
            "seq": i,
            "ts": "2026-11-24T17:00:00.000Z",
            "priority": "telemetry",
            "data": sample_data(i),
        }
    ).encode()
    return (1, f"0190{i:028x}", "device.sample", time.time(), len(payload), payload)


SQL = "INSERT INTO events (cls, id, type, created, size, payload) VALUES (?, ?, ?, ?, ?, ?)"


def raw_one_tx(path: Path, n: int) -> float:
    db = raw_db(path)
    t0 = time.perf_counter()
    db.execute("BEGIN")
    for i in range(n):
        db.execute(SQL, row(i))  # payload built inside the timing, as the outbox does
    db.execute("COMMIT")
    dt = time.perf_counter() - t0
    db.close()
    return dt


def raw_per_row(path: Path, n: int) -> float:
    db = raw_db(path)
    t0 = time.perf_counter()
    for i in range(n):
        db.execute("BEGIN")
        db.execute(SQL, row(i))
        db.execute("COMMIT")
    dt = time.perf_counter() - t0
    db.close()
    return dt


def outbox_batch(path: Path, n: int) -> float:
    ob = Outbox(path, "bench-01", max_bytes=2 * 1024**3)
    t0 = time.perf_counter()
    futs = [
        ob.submit("device.sample", sample_data(i), priority=Priority.TELEMETRY) for i in range(n)
    ]
    for f in futs:
        f.result()
    dt = time.perf_counter() - t0
    ob.close()
    return dt


def outbox_threads(path: Path, n: int, threads: int) -> float:
    ob = Outbox(path, "bench-01", max_bytes=2 * 1024**3)
    per = n // threads

    def produce() -> None:
        for i in range(per):
            ob.put("device.sample", sample_data(i), priority=Priority.TELEMETRY)

    ts = [threading.Thread(target=produce, name=f"bench-producer-{k}") for k in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
    ob.close()
    return dt


def outbox_alarms(path: Path, n: int) -> list[float]:
    ob = Outbox(path, "bench-01", max_bytes=2 * 1024**3)
    lat = []
    for i in range(n):
        t0 = time.perf_counter()
        ob.put("alarm.panic", {"button": "bench", "n": i}, priority=Priority.ALARM)
        lat.append(time.perf_counter() - t0)
    ob.close()
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--alarms", type=int, default=200)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    n, a = args.events, args.alarms
    with tempfile.TemporaryDirectory(prefix="outpost-bench-") as d:
        tmp = Path(d)
        base_tx = n / raw_one_tx(tmp / "raw1.db", n)
        base_row = a / raw_per_row(tmp / "raw2.db", a)
        batch = n / outbox_batch(tmp / "ob1.db", n)
        thr = n / outbox_threads(tmp / "ob2.db", n, args.threads)
        lat = sorted(outbox_alarms(tmp / "ob3.db", a))
    alarm_rate = a / sum(lat)
    print(f"raw sqlite3, one transaction:           {base_tx:10,.0f} rows/s  (baseline)")
    print(
        f"outbox submit() batch, wait all:        {batch:10,.0f} ev/s    "
        f"= {batch / base_tx:.2f}x raw one-tx"
    )
    print(
        f"outbox put() from {args.threads} threads:             {thr:10,.0f} ev/s    "
        f"= {thr / base_tx:.2f}x raw one-tx"
    )
    print(f"raw sqlite3, commit per row (sync FULL): {base_row:10,.0f} rows/s  (baseline)")
    print(
        f"outbox alarm put() one by one (fsync):  {alarm_rate:10,.0f} ev/s    "
        f"= {alarm_rate / base_row:.2f}x raw per-row commit; put() p50 "
        f"{lat[len(lat) // 2] * 1000:.2f} ms, p99 {lat[int(len(lat) * 0.99)] * 1000:.2f} ms"
    )


if __name__ == "__main__":
    main()
