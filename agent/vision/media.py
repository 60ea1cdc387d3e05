"""The bounded local media store: JPEG snapshots and MP4 clips on disk, referenced by id.

Size cap, retention and a free-space floor are enforced on every write, oldest first, so
the store can never fill the disk. Events carry a ``MediaRef`` (id, sha256, bytes), never
the bytes themselves.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import DriverFault
from agent.events import uuid7

_CONTENT_TYPES = {".jpg": "image/jpeg", ".mp4": "video/mp4"}
_FILE = re.compile(r"^([0-9a-f-]{36})(\.jpg|\.mp4)$")


@dataclass(frozen=True, slots=True)
class MediaRef:
    id: str
    sha256: str
    bytes: int
    content_type: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "content_type": self.content_type,
        }


@dataclass(slots=True)
class _Entry:
    path: Path
    size: int
    mtime: float


class MediaStore:
    """Files named ``<uuid7>.<ext>`` in one directory; the uuid7 order is the age order."""

    def __init__(
        self, root: Path, *, max_bytes: int, retention_s: float, min_free_bytes: int = 0
    ) -> None:
        self.root = root
        self._max_bytes = max_bytes
        self._retention_s = retention_s
        self._min_free = min_free_bytes
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self.total_bytes = 0
        self.evicted = 0
        self.rejected = 0
        root.mkdir(parents=True, exist_ok=True)
        for path in root.iterdir():
            m = _FILE.match(path.name)
            if m is None:
                if path.name.endswith(".part"):
                    path.unlink(missing_ok=True)
                continue
            st = path.stat()
            self._entries[m.group(1)] = _Entry(path, st.st_size, st.st_mtime)
            self.total_bytes += st.st_size
        self._entries = dict(sorted(self._entries.items()))

    def put(self, data: bytes, ext: str = ".jpg") -> MediaRef:
        """Store ``data``; evicts the oldest items first to stay within the limits."""
        if ext not in _CONTENT_TYPES:
            raise ValueError(f"unsupported media type {ext!r}")
        size = len(data)
        with self._lock:
            if size > self._max_bytes:
                self.rejected += 1
                raise DriverFault(f"media item of {size} bytes exceeds the store cap")
            self._evict(incoming=size)
            if self._free_bytes() - size < self._min_free:
                self.rejected += 1
                raise DriverFault("media store: disk free space below the floor, item dropped")
            media_id = uuid7()
            path = self.root / f"{media_id}{ext}"
            tmp = path.with_suffix(ext + ".part")
            with tmp.open("wb") as fh:
                fh.write(data)
                # Flushed here, on the vision thread, so media never piles up as dirty pages
                # that a later outbox fsync (the alarm path) would have to wait for.
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            self._entries[media_id] = _Entry(path, size, time.time())
            self.total_bytes += size
        return MediaRef(media_id, hashlib.sha256(data).hexdigest(), size, _CONTENT_TYPES[ext])

    def get(self, media_id: str) -> tuple[MediaRef, bytes]:
        with self._lock:
            entry = self._entries.get(media_id)
        if entry is None:
            raise KeyError(media_id)
        data = entry.path.read_bytes()
        ctype = _CONTENT_TYPES[entry.path.suffix]
        return MediaRef(media_id, hashlib.sha256(data).hexdigest(), len(data), ctype), data

    def limit(self, media_id: str, keep_s: float) -> bool:
        """Remove ``media_id`` once ``keep_s`` seconds from now have passed, where that is
        sooner than the store's retention (a crop of a plate not on the watchlist,
        ``[plates.privacy] non_hit_retention_s``). The deadline is kept as the file's
        modification time moved back, so it holds across restarts; ``prune`` applies it.
        False: the item is not stored (any longer)."""
        with self._lock:
            entry = self._entries.get(media_id)
            if entry is None:
                return False
            mtime = time.time() + keep_s - self._retention_s
            if mtime >= entry.mtime:
                return True  # the retention removes it sooner
            try:
                os.utime(entry.path, (mtime, mtime))
            except FileNotFoundError:
                self._remove(media_id)
                return False
            entry.mtime = mtime
            return True

    def prune(self) -> int:
        """Apply retention (every item's, not only the oldest's: ``limit`` moves some
        forward) and the caps now; returns how many items were removed."""
        with self._lock:
            before = self.evicted
            cutoff = time.time() - self._retention_s
            for media_id in [k for k, e in self._entries.items() if e.mtime < cutoff]:
                self._remove(media_id)
            self._evict(incoming=0)
            return self.evicted - before

    def _free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def _evict(self, incoming: int) -> None:
        now = time.time()
        free = self._free_bytes() if self._min_free else 0
        while self._entries:
            oldest_id = next(iter(self._entries))
            oldest = self._entries[oldest_id]
            too_old = now - oldest.mtime > self._retention_s
            too_big = self.total_bytes + incoming > self._max_bytes
            too_full = self._min_free and free - incoming < self._min_free
            if not (too_old or too_big or too_full):
                break
            self._remove(oldest_id)
            free += oldest.size

    def _remove(self, media_id: str) -> None:
        entry = self._entries.pop(media_id)
        entry.path.unlink(missing_ok=True)
        self.total_bytes -= entry.size
        self.evicted += 1

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "items": len(self._entries),
                "bytes": self.total_bytes,
                "max_bytes": self._max_bytes,
                "evicted": self.evicted,
                "rejected": self.rejected,
            }
