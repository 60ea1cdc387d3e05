"""The plate watchlist pushed from the centre: validation, local storage, fuzzy matching.

The list is a JSON file under the state directory, replaced atomically, so a restart (or a
power cut mid-write) keeps the last complete list and matching works offline.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import CommandError
from agent.plates.formats import (
    CONFUSABLE_SWAP,
    LOOKALIKE_SWAP,
    PROVINCE_SWAP,
    match_distance,
    normalise,
)

log = logging.getLogger(__name__)
MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class WatchEntry:
    plate: str
    reason: str = ""
    id: str = ""


@dataclass(frozen=True)
class WatchHit:
    entry: WatchEntry
    distance: float


def parse_entries(raw: Any) -> list[WatchEntry]:
    """Validate a pushed list: ``[{"plate": "京A12345", "reason": "...", "id": "..."}, ...]``."""
    if not isinstance(raw, list):
        raise CommandError("entries must be a list of {plate, reason?, id?}")
    if len(raw) > MAX_ENTRIES:
        raise CommandError(f"entries: at most {MAX_ENTRIES} plates")
    out: list[WatchEntry] = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            item = {"plate": item}
        if not isinstance(item, dict) or not isinstance(item.get("plate"), str):
            raise CommandError(f"entries[{i}]: needs a 'plate' string")
        unknown = set(item) - {"plate", "reason", "id"}
        if unknown:
            raise CommandError(f"entries[{i}]: unknown keys {sorted(unknown)}")
        plate = normalise(item["plate"])
        if not 2 <= len(plate) <= 10:
            raise CommandError(f"entries[{i}].plate {item['plate']!r}: 2-10 letters or digits")
        out.append(WatchEntry(plate, str(item.get("reason", "")), str(item.get("id", ""))))
    return out


class Watchlist:
    """Plates to raise ``plate.hit`` for, stored in ``path`` and matched confusion-aware."""

    def __init__(self, path: Path, max_distance: float = 0.5) -> None:
        self.path = path
        self.max_distance = max_distance
        self._lock = threading.Lock()
        self._entries: list[WatchEntry] = []
        self._index: tuple[list[WatchEntry], PlateIndex] | None = None
        """``match``'s index and the entries it was built from."""
        self.updated: str = ""
        self.load_error: str | None = None
        self._load()

    def _load(self) -> None:
        if not self.path.is_file():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self._entries = parse_entries(data.get("entries", []))
            self.updated = str(data.get("updated", ""))
        except (OSError, ValueError, AttributeError, CommandError) as exc:
            # Writes are atomic, so this is a hand-edited or foreign file: keep it for
            # inspection, start empty, and let the centre push the list again.
            self.load_error = f"{self.path}: {exc}"
            log.error("watchlist not loaded: %s", self.load_error)

    def replace(self, entries: list[WatchEntry]) -> None:
        with self._lock:
            self._entries = list({e.plate: e for e in entries}.values())
            self.updated = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self._save()

    def add(self, entries: list[WatchEntry]) -> None:
        with self._lock:
            merged = {e.plate: e for e in self._entries}
            merged.update({e.plate: e for e in entries})
            self._entries = list(merged.values())
            self.updated = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self._save()

    def remove(self, plates: list[str]) -> int:
        drop = {normalise(p) for p in plates}
        with self._lock:
            before = len(self._entries)
            self._entries = [e for e in self._entries if e.plate not in drop]
            self.updated = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self._save()
            return before - len(self._entries)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        payload = {
            "updated": self.updated,
            "entries": [{"plate": e.plate, "reason": e.reason, "id": e.id} for e in self._entries],
        }
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(payload, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    @property
    def entries(self) -> list[WatchEntry]:
        with self._lock:
            return list(self._entries)

    def match(self, text: str) -> WatchHit | None:
        """The closest entry within ``max_distance`` (confusable swaps are cheap), or None."""
        with self._lock:
            entries = self._entries
            if self._index is None or self._index[0] is not entries:  # changed since built
                plates = [e.plate for e in entries]
                self._index = (entries, PlateIndex(plates, self.max_distance))
            index = self._index[1]
        found = index.closest(text)
        return None if found is None else WatchHit(entries[found[0]], found[1])


CHEAPEST_SWAP = min(CONFUSABLE_SWAP, PROVINCE_SWAP, LOOKALIKE_SWAP)
"""The least one character read for another costs in ``match_distance`` (a confusable
swap, 0.25): under a distance of 1 (one character added or dropped) a plate can only be as close
as ``max_distance`` with at most ``max_distance / CHEAPEST_SWAP`` characters swapped."""


class PlateIndex:
    """Watched plates, looked up by a reading: ``closest`` gives the nearest within
    ``max_distance`` (``match_distance``).

    With ``early_hit`` every frame's reading is matched, against lists of up to
    ``MAX_ENTRIES``. Under a distance of 1 a match has the reading's length and at most k
    characters swapped (``CHEAPEST_SWAP``), so of the plate cut into k + 1 parts one part
    is the reading's own: each plate is filed under its parts, and a reading is measured
    only against the plates that share one of its parts. From a distance of 1 on, every
    plate of a near length is measured."""

    def __init__(self, plates: Sequence[str], max_distance: float) -> None:
        self.plates = [normalise(p) for p in plates]
        self.max_distance = max_distance
        self._parts = int(max_distance / CHEAPEST_SWAP) + 1 if max_distance < 1 else 0
        self._filed: dict[tuple[int, int, str], list[int]] = {}
        for i, plate in enumerate(self.plates):
            for key in self._keys(plate):
                self._filed.setdefault(key, []).append(i)

    def _keys(self, plate: str) -> list[tuple[int, int, str]]:
        n, k = len(plate), self._parts
        return [(n, j, plate[j * n // k : (j + 1) * n // k]) for j in range(k)]

    def closest(self, text: str) -> tuple[int, float] | None:
        """The index (in the plates given) of the closest plate and its distance, or None."""
        text = normalise(text)
        if not text:
            return None
        if self._parts:
            found = {i for key in self._keys(text) for i in self._filed.get(key, ())}
            candidates: Iterable[int] = sorted(found)
        else:
            candidates = range(len(self.plates))
        best: tuple[int, float] | None = None
        for i in candidates:
            plate = self.plates[i]
            if abs(len(plate) - len(text)) > self.max_distance:
                continue
            d = match_distance(text, plate)
            if d <= self.max_distance and (best is None or d < best[1]):
                best = (i, d)
                if d == 0:
                    break
        return best


def keyed_hash(text: str, key: bytes) -> str:
    """HMAC-SHA256 of the normalised plate, hex, for publishing non-hits without the text."""
    return hmac.new(key, normalise(text).encode("utf-8"), hashlib.sha256).hexdigest()


def load_or_create_key(path: Path) -> bytes:
    """The privacy hash key; created (32 random bytes, mode 0600) when missing."""
    if path.is_file():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key
