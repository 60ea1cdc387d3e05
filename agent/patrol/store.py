"""Patrol files under the state directory: the last accepted plan and the evaluator state
(with a journal of events not yet handed to the outbox). Written atomically (temp file,
fsync, rename), so a power cut leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def write_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_json(path: Path) -> Any | None:
    """The file's JSON, or None when missing; a corrupt file is set aside, not fatal."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        bad = path.with_name(path.name + ".corrupt")
        os.replace(path, bad)
        log.error("patrol: %s is corrupt, moved to %s", path, bad)
        return None


class PatrolStore:
    """``<state_dir>/patrol/plan.json`` and ``state.json``."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "patrol"
        self.plan_path = self.dir / "plan.json"
        self.state_path = self.dir / "state.json"

    def load_plan(self) -> dict[str, Any] | None:
        obj = read_json(self.plan_path)
        return obj if isinstance(obj, dict) else None

    def save_plan(self, plan: dict[str, Any]) -> None:
        write_atomic(self.plan_path, plan)

    def load_state(self) -> dict[str, Any] | None:
        obj = read_json(self.state_path)
        return obj if isinstance(obj, dict) else None

    def save_state(self, state: dict[str, Any]) -> None:
        write_atomic(self.state_path, state)
