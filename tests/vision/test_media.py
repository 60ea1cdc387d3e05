"""The bounded media store: cap, retention, free-space floor, restart."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from agent.errors import DriverFault
from agent.vision.media import MediaStore


def test_cap_evicts_oldest_first(tmp_path: Path) -> None:
    store = MediaStore(tmp_path, max_bytes=10_000, retention_s=3600)
    refs = [store.put(bytes([i]) * 3000) for i in range(5)]
    assert store.total_bytes <= 10_000
    assert store.evicted == 2
    for ref in refs[:2]:
        with pytest.raises(KeyError):
            store.get(ref.id)
    ref, data = store.get(refs[-1].id)
    assert data == bytes([4]) * 3000
    assert ref.sha256 == hashlib.sha256(data).hexdigest() == refs[-1].sha256
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 10_000


def test_retention_and_restart_keep_order(tmp_path: Path) -> None:
    store = MediaStore(tmp_path, max_bytes=1 << 20, retention_s=60)
    old = store.put(b"old" * 100)
    new = store.put(b"new" * 100, ".mp4")
    past = time.time() - 120
    os.utime(tmp_path / f"{old.id}.jpg", (past, past))
    (tmp_path / "junk.jpg.part").write_bytes(b"half written")
    reopened = MediaStore(tmp_path, max_bytes=1 << 20, retention_s=60)
    assert not (tmp_path / "junk.jpg.part").exists()
    assert reopened.status()["items"] == 2
    assert reopened.prune() == 1
    assert reopened.get(new.id)[0].content_type == "video/mp4"


def test_never_fills_the_disk(tmp_path: Path) -> None:
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    store = MediaStore(tmp_path, max_bytes=1 << 30, retention_s=3600, min_free_bytes=free * 2)
    with pytest.raises(DriverFault, match="free space"):
        store.put(b"x" * 1000)
    assert store.rejected == 1 and list(tmp_path.iterdir()) == []


def test_item_larger_than_cap_is_refused(tmp_path: Path) -> None:
    store = MediaStore(tmp_path, max_bytes=1 << 20, retention_s=3600)
    kept = store.put(b"k" * 1000)
    with pytest.raises(DriverFault, match="exceeds"):
        store.put(b"x" * (2 << 20))
    assert store.get(kept.id)[1] == b"k" * 1000


def test_limit_removes_an_item_at_its_deadline_and_holds_across_restart(tmp_path: Path) -> None:
    # A crop of a plate not on the watchlist ([plates.privacy] non_hit_retention_s).
    store = MediaStore(tmp_path, max_bytes=1 << 20, retention_s=3600)
    older = store.put(b"older" * 100)
    crop = store.put(b"crop" * 100)
    later = store.put(b"later" * 100)
    assert store.limit(crop.id, 0.5)
    assert not store.limit("0190f5c0-0000-7000-8000-000000000000", 0.5)  # not stored
    assert store.prune() == 0  # not yet
    reopened = MediaStore(tmp_path, max_bytes=1 << 20, retention_s=3600)
    time.sleep(0.6)
    # every item's deadline is looked at, not only the oldest's
    assert reopened.prune() == 1
    with pytest.raises(KeyError):
        reopened.get(crop.id)
    assert not (tmp_path / f"{crop.id}.jpg").exists()
    assert reopened.get(older.id)[1] == b"older" * 100
    assert reopened.get(later.id)[1] == b"later" * 100


def test_limit_never_lengthens_an_items_life(tmp_path: Path) -> None:
    store = MediaStore(tmp_path, max_bytes=1 << 20, retention_s=60)
    ref = store.put(b"x" * 100)
    before = (tmp_path / f"{ref.id}.jpg").stat().st_mtime
    assert store.limit(ref.id, 3600)  # longer than the retention: unchanged
    assert (tmp_path / f"{ref.id}.jpg").stat().st_mtime == before
