"""The durable outbox: every event is on disk before its producer is told it was accepted.

SQLite in WAL mode, one writer thread (group commit; an alarm's commit is fsynced before its
``put()`` returns), a separate read connection for the link. Rows leave only when the broker
acknowledged that exact message, or by the documented eviction and TTL policies.
"""

from __future__ import annotations

import ctypes
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import OutboxError, OutboxFull
from agent.events import Event, Priority, default_priority, utc_now_rfc3339, uuid7, validate_type

log = logging.getLogger(__name__)

# Per-row bytes SQLite spends beyond the payload (row header, index entry), for the disk cap.
ROW_OVERHEAD = 64

# Classes evicted when the disk cap is reached, in this order. Alarms and patrol records are
# never evicted: an over-cap box keeps them and reports the overrun instead.
EVICTION_ORDER = (Priority.TELEMETRY, Priority.VISION)

# SQLite page cache per connection, KiB.
CACHE_KIB = 256

# After this many deliveries, an empty outbox returns the heap the backlog used.
TRIM_AFTER = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    -- AUTOINCREMENT: a rowid is never reused, even when the table empties, so the
    -- link's per-class cursor can never skip a new event.
    rowid     INTEGER PRIMARY KEY AUTOINCREMENT,
    cls       INTEGER NOT NULL,
    id        TEXT NOT NULL,
    type      TEXT NOT NULL,
    created   REAL NOT NULL,
    size      INTEGER NOT NULL,
    payload   BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_cls ON events (cls, rowid);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Pending:
    """One stored, not yet acknowledged event as the link reads it."""

    rowid: int
    cls: Priority
    id: str
    type: str
    payload: bytes


@dataclass(slots=True)
class _Request:
    type: str
    data: Mapping[str, Any]
    priority: Priority
    ts: str
    id: str
    future: Future[Event]


@dataclass(slots=True)
class _Job:
    """Work that must run inside the writer's transaction (purge, meta counters)."""

    run: Any  # Callable[[], int]
    future: Future[int]


# Lengths of the ``rowid IN (?, …)`` lists. Each distinct SQL text is a prepared statement
# in sqlite3's per-connection cache; padding every list to one of a few lengths keeps that
# cache (and the agent's memory) from filling with one statement per batch size.
_IN_SIZES = (1, 4, 16, 64, 256, 512)


def _padded(rowids: list[int]) -> list[int]:
    """``rowids`` (at most ``_IN_SIZES[-1]``) padded by repeating the last one."""
    size = next(n for n in _IN_SIZES if n >= len(rowids))
    return rowids + rowids[-1:] * (size - len(rowids))


def _in_lists(rowids: list[int]) -> Iterator[tuple[str, list[int]]]:
    """``rowids`` in padded chunks: the ``?,?,…`` placeholders and their parameters."""
    step = _IN_SIZES[-1]
    for at in range(0, len(rowids), step):
        chunk = _padded(rowids[at : at + step])
        yield ",".join("?" * len(chunk)), chunk


def release_heap() -> bool:
    """``malloc_trim(0)``: return freed heap pages to the OS. False off glibc."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim(0)
    return True


def _is_alarm(req: _Request | _Job) -> bool:
    return isinstance(req, _Request) and req.priority is Priority.ALARM


@dataclass(frozen=True, slots=True)
class ClassStats:
    depth: int
    bytes: int
    oldest_age_s: float | None


class Outbox:
    """Durable, prioritised, bounded event store.

    ``put()`` may be called from any thread. ``fetch()`` and ``ack()`` are for the link's
    single publisher thread.
    """

    def __init__(
        self,
        path: Path | str,
        device_id: str,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        ttl_s: Mapping[Priority, float] | None = None,
        ttl_types: Mapping[str, float] | None = None,
        group_commit_s: float = 0.002,
    ) -> None:
        self.path = Path(path)
        self.device_id = device_id
        self.max_bytes = max_bytes
        self.ttl_s = {p: float(s) for p, s in (ttl_s or {}).items() if p is not Priority.ALARM}
        self.ttl_types = {t: float(s) for t, s in (ttl_types or {}).items() if s > 0}
        """Seconds an unsent event of these types is kept, where that is sooner than its
        class's TTL (a plate reading, ``[plates.privacy] non_hit_retention_s``). Only events
        of the type's own class (``default_priority``) expire so; alarms never do."""
        self.group_commit_s = group_commit_s
        self.path.parent.mkdir(parents=True, exist_ok=True)

        self._db = self._connect()
        self._db.executescript(_SCHEMA)
        self._seq = self._meta_get("seq", 0)
        self._counters: dict[str, int] = dict(self._db.execute("SELECT name, value FROM counters"))
        self._depth: dict[Priority, int] = {p: 0 for p in Priority}
        self._bytes: dict[Priority, int] = {p: 0 for p in Priority}
        for cls, n, size in self._db.execute(
            "SELECT cls, count(*), coalesce(sum(size), 0) FROM events GROUP BY cls"
        ):
            self._depth[Priority(cls)] = n
            self._bytes[Priority(cls)] = size
        self._db.commit()

        self._reader = self._connect(readonly=True)  # the link's, on its thread only
        # status, health and `outbox list` read through their own connection, so a field
        # tech's query never holds the connection the link needs for an alarm.
        self._inspector = self._connect(readonly=True)
        self._inspect_lock = threading.Lock()
        self._lock = threading.Lock()  # guards counters, depth, queues below
        self._wake = threading.Condition(self._lock)
        self._requests: deque[_Request | _Job] = deque()
        self._urgent = False
        # Clear while an alarm is queued or being committed; the link waits on it instead
        # of competing with the writer for the GIL (see Link._session).
        self._alarm_idle = threading.Event()
        self._alarm_idle.set()
        self._dirty_counters = False
        self._checkpoint_stop = threading.Event()
        self._acks: list[int] = []
        self._delivered_since_trim = 0
        self._listeners: list[Any] = []
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="outbox-writer", daemon=True)
        self._writer.start()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop,
                                              name="outbox-checkpoint", daemon=True)
        self._checkpointer.start()

    # -- producer side ----------------------------------------------------------------
    def put(
        self,
        type: str,
        data: Mapping[str, Any] | None = None,
        *,
        priority: Priority | None = None,
    ) -> Event:
        """Persist one event and return it with its ``seq``; blocks until it is on disk."""
        return self.submit(type, data, priority=priority).result()

    def submit(
        self,
        type: str,
        data: Mapping[str, Any] | None = None,
        *,
        priority: Priority | None = None,
    ) -> Future[Event]:
        """Queue one event for the next group commit; the future resolves once it is on disk.

        Producers that batch (many events, then wait for all) use this.
        """
        validate_type(type)
        cls = priority if priority is not None else default_priority(type)
        fut: Future[Event] = Future()
        req = _Request(type, dict(data or {}), cls, utc_now_rfc3339(), uuid7(), fut)
        with self._lock:
            if self._closed:
                raise OutboxError("outbox is closed")
            self._requests.append(req)
            if cls is Priority.ALARM:
                self._urgent = True
                self._alarm_idle.clear()
            self._wake.notify_all()
        return fut

    def wait_alarm_idle(self, timeout: float) -> bool:
        """Block while an alarm is being made durable (at most ``timeout`` seconds)."""
        return self._alarm_idle.wait(timeout)

    # Make an Outbox usable directly as an EventSink.
    emit = put

    def add_listener(self, fn: Any) -> None:
        """``fn(event)`` is called (on the writer thread, keep it cheap) after each commit."""
        self._listeners.append(fn)

    # -- link side --------------------------------------------------------------------
    def fetch(self, cls: Priority, after_rowid: int, limit: int) -> list[Pending]:
        """Up to ``limit`` unacknowledged events of one class, oldest first, after a cursor."""
        rows = self._reader.execute(
            "SELECT rowid, id, type, payload FROM events WHERE cls = ? AND rowid > ? "
            "ORDER BY rowid LIMIT ?",
            (int(cls), after_rowid, limit),
        ).fetchall()
        return [Pending(r[0], cls, r[1], r[2], r[3]) for r in rows]

    def ack(self, rowids: Iterable[int]) -> None:
        """The broker acknowledged these rows: delete them (batched on the writer thread)."""
        with self._lock:
            self._acks.extend(rowids)
            self._wake.notify_all()

    # -- inspection -------------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        return self._seq

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)

    def stats(self) -> dict[Priority, ClassStats]:
        now = time.time()
        oldest: dict[int, float] = {}
        with self._inspect_lock:
            for p in Priority:  # the first row of each class, through the (cls, rowid) index
                row = self._inspector.execute(
                    "SELECT created FROM events WHERE cls = ? ORDER BY rowid LIMIT 1", (int(p),)
                ).fetchone()
                if row is not None:
                    oldest[int(p)] = row[0]
        with self._lock:
            return {
                p: ClassStats(
                    depth=self._depth[p],
                    bytes=self._bytes[p],
                    oldest_age_s=(now - oldest[int(p)]) if int(p) in oldest else None,
                )
                for p in Priority
            }

    def depth(self) -> int:
        with self._lock:
            return sum(self._depth.values())

    def depths(self) -> dict[Priority, int]:
        """Stored events per class (in memory; cheap enough to poll)."""
        with self._lock:
            return dict(self._depth)

    def total_bytes(self) -> int:
        with self._lock:
            return sum(self._bytes.values())

    def peek(self, cls: Priority | None = None, limit: int = 50) -> list[dict[str, Any]]:
        where, args = ("WHERE cls = ?", [int(cls)]) if cls is not None else ("", [])
        with self._inspect_lock:
            rows = self._inspector.execute(
                f"SELECT rowid, cls, id, type, created, size FROM events {where} "
                "ORDER BY cls, rowid LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [
            {"rowid": r[0], "class": Priority(r[1]).label, "id": r[2], "type": r[3],
             "created": r[4], "bytes": r[5]}
            for r in rows
        ]

    def purge(self, cls: Priority) -> int:
        """Delete every stored event of one class (a field tech's explicit decision)."""
        return self._run_job(lambda: self._purge_class(cls))

    def bump_meta(self, key: str) -> int:
        """Increment and durably store a counter kept beside the events (e.g. boot count)."""

        def bump() -> int:
            value = self._meta_get(key, 0) + 1
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
            return value

        return self._run_job(bump)

    def sync(self) -> None:
        """Return once every ``ack()`` made before this call is committed."""
        self._run_job(lambda: 0)

    def _run_job(self, fn: Any) -> int:
        job = _Job(fn, Future())
        with self._lock:
            if self._closed:
                raise OutboxError("outbox is closed")
            self._requests.append(job)
            self._urgent = True
            self._wake.notify_all()
        return job.future.result()

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued and close the database."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
        self._writer.join(timeout)
        self._checkpoint_stop.set()
        self._checkpointer.join(timeout)
        self._reader.close()
        self._inspector.close()

    # -- writer thread ----------------------------------------------------------------
    def _connect(self, readonly: bool = False) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        # The OS page cache holds the file anyway; a small SQLite cache per connection keeps
        # the agent's memory flat after a large backlog was drained (default: 2 MB each).
        db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        if not readonly:
            db.execute("PRAGMA wal_autocheckpoint=0")  # see _checkpoint()
            # A delivered or expired event's bytes are zeroed, not left in free space: the
            # outbox holds plate readings ([plates.privacy]). Debian builds SQLite with this
            # on; other builds may not.
            db.execute("PRAGMA secure_delete=ON")
        return db

    def _meta_get(self, key: str, default: int) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else default

    def _write_loop(self) -> None:
        last_expiry = 0.0
        while True:
            with self._lock:
                if not self._requests and not self._acks and not self._closed:
                    expiring = self.ttl_s or self.ttl_types
                    self._wake.wait(timeout=30.0 if not expiring else 60.0)
                if self._closed and not self._requests and not self._acks:
                    break
                if not self._urgent and not self._closed and self.group_commit_s > 0:
                    # Let a burst gather into one transaction; an alarm ends the wait.
                    self._wake.wait_for(lambda: self._urgent or self._closed, self.group_commit_s)
                batch = list(self._requests)
                self._requests.clear()
                self._urgent = False
                acks = self._acks
                self._acks = []
            urgent = [r for r in batch if _is_alarm(r)]
            if urgent and (len(urgent) < len(batch) or acks):
                # An alarm gets a small transaction of its own, ahead of the batch's bulk
                # inserts and the link's ack deletes, so its fsync is short. Jobs stay with
                # the acks: sync() must see the acks made before it.
                rest = [r for r in batch if not _is_alarm(r)]
                self._commit_or_fail(urgent, [])
                self._alarm_committed()
                self._commit_or_fail(rest, acks)
            else:
                self._commit_or_fail(batch, acks)
                self._alarm_committed()
            now = time.monotonic()
            if (self.ttl_s or self.ttl_types) and now - last_expiry > 60.0:
                last_expiry = now
                try:
                    self._expire()
                except Exception:
                    log.exception("outbox expiry failed")
        self._db.close()

    def _commit_or_fail(self, batch: list[_Request | _Job], acks: list[int]) -> None:
        if not batch and not acks:
            return
        try:
            self._commit(batch, acks)
        except Exception as exc:
            log.exception("outbox commit failed")
            for req in batch:  # nothing of this batch is on disk: every producer hears so
                if not req.future.done():
                    req.future.set_exception(OutboxError(f"could not persist event: {exc}"))

    def _alarm_committed(self) -> None:
        with self._lock:
            if not any(_is_alarm(r) for r in self._requests):
                self._alarm_idle.set()

    def _checkpoint_loop(self) -> None:
        """Fold the WAL back into the database from a connection of its own, every second.

        Automatic checkpoints are off: SQLite would run one inside whichever commit crosses
        the threshold, and that may be an alarm's. A PASSIVE checkpoint here never blocks
        the writer, and SQLite releases the GIL while it copies pages.
        """
        db = self._connect(readonly=True)
        try:
            while not self._checkpoint_stop.wait(1.0):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    log.warning("outbox checkpoint failed", exc_info=True)
                self._release_memory_after_drain()
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def _release_memory_after_drain(self) -> None:
        """Once a backlog has drained, hand the heap it used back to the OS (glibc only)."""
        with self._lock:
            if self._delivered_since_trim < TRIM_AFTER or any(self._depth.values()):
                return
            self._delivered_since_trim = 0
        release_heap()

    def _commit(self, batch: list[_Request | _Job], acks: list[int]) -> None:
        db = self._db
        events: list[tuple[Event, _Request]] = []
        results: list[tuple[_Request | _Job, Any]] = []
        durable = any(isinstance(r, _Job) or r.priority is Priority.ALARM for r in batch)
        if durable:
            db.execute("PRAGMA synchronous=FULL")
        db.execute("BEGIN IMMEDIATE")
        try:
            if acks:
                self._delete(acks)
            for req in batch:
                if isinstance(req, _Job):
                    results.append((req, req.run()))
                    continue
                seq = self._seq + 1
                event = Event(req.id, self.device_id, req.type, seq, req.ts, req.priority, req.data)
                try:
                    payload = event.to_json()
                except (TypeError, ValueError) as exc:
                    results.append((req, OutboxError(f"event data is not JSON: {exc}")))
                    continue
                size = len(payload) + ROW_OVERHEAD
                if not self._make_room(req.priority, size):
                    self._count(f"dropped_{req.priority.label}")
                    results.append((req, OutboxFull(f"outbox full; {req.type} not stored")))
                    continue
                self._seq = seq
                db.execute(
                    "INSERT INTO events (cls, id, type, created, size, payload) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (int(req.priority), req.id, req.type, time.time(), size, payload),
                )
                self._depth[req.priority] += 1
                self._bytes[req.priority] += size
                events.append((event, req))
            if events:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (self._seq,))
            self._flush_counters()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._reload_state()
            raise
        finally:
            if durable:
                db.execute("PRAGMA synchronous=NORMAL")
        for event, req in events:
            req.future.set_result(event)
            for fn in self._listeners:
                try:
                    fn(event)
                except Exception:
                    log.exception("outbox listener failed")
        for req, value in results:
            if isinstance(value, Exception):
                req.future.set_exception(value)
            else:
                req.future.set_result(value)

    def _delete(self, rowids: list[int]) -> None:
        db = self._db
        for marks, chunk in _in_lists(rowids):
            gone = db.execute(
                f"DELETE FROM events WHERE rowid IN ({marks}) RETURNING cls, size", chunk
            ).fetchall()
            for cls, size in gone:
                p = Priority(cls)
                self._depth[p] -= 1
                self._bytes[p] -= size
            self._count("delivered", len(gone))
            self._delivered_since_trim += len(gone)

    def _make_room(self, cls: Priority, size: int) -> bool:
        """Evict by class policy until ``size`` more bytes fit. False: the event must be dropped."""
        total = sum(self._bytes.values())
        if total + size <= self.max_bytes:
            return True
        for victim in EVICTION_ORDER:
            # Never evict a class more urgent than the one being stored.
            if victim < cls:
                break
            while total + size > self.max_bytes and self._depth[victim] > 0:
                need = total + size - self.max_bytes
                rows = self._db.execute(
                    "SELECT rowid, size FROM events WHERE cls = ? ORDER BY rowid LIMIT ?",
                    (int(victim), max(16, need // 256)),
                ).fetchall()
                if not rows:
                    break
                chosen: list[int] = []
                freed = 0
                for rowid, rsize in rows:
                    chosen.append(rowid)
                    freed += rsize
                    if freed >= need:
                        break
                for marks, part in _in_lists(chosen):
                    self._db.execute(f"DELETE FROM events WHERE rowid IN ({marks})", part)
                self._depth[victim] -= len(chosen)
                self._bytes[victim] -= freed
                total -= freed
                self._count(f"evicted_{victim.label}", len(chosen))
            if total + size <= self.max_bytes:
                return True
        if cls in (Priority.ALARM, Priority.PATROL):
            # Kept regardless: losing an alarm or a patrol record is worse than a full cap.
            self._count(f"over_cap_{cls.label}")
            return True
        return False

    def _purge_class(self, cls: Priority) -> int:
        n = self._db.execute("DELETE FROM events WHERE cls = ?", (int(cls),)).rowcount
        self._depth[cls] = 0
        self._bytes[cls] = 0
        self._count(f"purged_{cls.label}", n)
        return n

    def _expire(self) -> None:
        now = time.time()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for cls, ttl in self.ttl_s.items():
                if ttl > 0:
                    self._expire_rows(cls, now - ttl, f"expired_{cls.label}")
            for type_, ttl in self.ttl_types.items():
                type_cls = default_priority(type_)
                if type_cls is not Priority.ALARM:
                    # within the type's class, as the class TTL (the events_cls index)
                    self._expire_rows(type_cls, now - ttl, f"expired_{type_}", type_)
            self._flush_counters()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._reload_state()
            raise

    def _expire_rows(
        self, cls: Priority, cutoff: float, counter: str, type_: str | None = None
    ) -> None:
        """Delete ``cls``'s events created before ``cutoff`` (of ``type_`` alone, if given),
        inside ``_expire``'s transaction, and count them under ``counter``."""
        sql = "DELETE FROM events WHERE cls = ? AND created < ?"
        params: tuple[Any, ...] = (int(cls), cutoff)
        if type_ is not None:
            sql, params = sql + " AND type = ?", (*params, type_)
        gone = self._db.execute(sql + " RETURNING size", params).fetchall()
        if gone:
            self._depth[cls] -= len(gone)
            self._bytes[cls] -= sum(g[0] for g in gone)
            self._count(counter, len(gone))

    def _count(self, name: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._counters[name] = self._counters.get(name, 0) + n
            self._dirty_counters = True

    def _flush_counters(self) -> None:
        if self._dirty_counters:
            with self._lock:
                items = list(self._counters.items())
            self._db.executemany("INSERT OR REPLACE INTO counters VALUES (?, ?)", items)
            self._dirty_counters = False

    def _reload_state(self) -> None:
        self._seq = self._meta_get("seq", 0)
        self._depth = {p: 0 for p in Priority}
        self._bytes = {p: 0 for p in Priority}
        for cls, n, size in self._db.execute(
            "SELECT cls, count(*), coalesce(sum(size), 0) FROM events GROUP BY cls"
        ):
            self._depth[Priority(cls)] = n
            self._bytes[Priority(cls)] = size
