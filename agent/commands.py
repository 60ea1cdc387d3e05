"""Command dispatch: named handlers for remote commands (`…/cmd/<name>`) and local simulators.

Handlers take a JSON object and return a JSON object; a rejected command raises
``CommandError`` with the reason, which goes back to the caller. Nothing a caller sends can
crash the dispatcher: malformed input is counted and answered with an error.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.errors import CommandError

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    handler: Handler
    description: str


class CommandRegistry:
    """A name → handler table with counters; thread-safe."""

    def __init__(self, kind: str = "command") -> None:
        self._kind = kind
        self._specs: dict[str, CommandSpec] = {}
        self._lock = threading.Lock()
        self.accepted = 0
        self.rejected = 0

    def register(self, name: str, handler: Handler, *, description: str = "") -> None:
        if not name or "/" in name or "+" in name or "#" in name:
            raise ValueError(f"{self._kind} name {name!r} must be one topic level")
        with self._lock:
            if name in self._specs:
                raise ValueError(f"{self._kind} {name!r} registered twice")
            self._specs[name] = CommandSpec(name, handler, description)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._specs)

    def describe(self) -> dict[str, str]:
        with self._lock:
            return {n: s.description for n, s in sorted(self._specs.items())}

    def dispatch(self, name: str, payload: bytes | str | dict[str, Any] | None) -> dict[str, Any]:
        """Run one command; always returns a reply object with ``ok`` true or false."""
        with self._lock:
            spec = self._specs.get(name)
        try:
            if spec is None:
                known = ", ".join(self.names())
                raise CommandError(f"unknown {self._kind} {name!r}; known: {known}")
            args = parse_payload(payload)
            result = spec.handler(args)
        except CommandError as exc:
            self.rejected += 1
            log.warning("%s %s rejected: %s", self._kind, name, exc)
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a handler bug must not take the dispatcher down
            self.rejected += 1
            log.exception("%s %s failed", self._kind, name)
            return {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}
        self.accepted += 1
        return {"ok": True, "result": result}


def parse_payload(payload: bytes | str | dict[str, Any] | None) -> dict[str, Any]:
    """Empty payload means no arguments; anything else must be a JSON object."""
    if payload is None:
        return {}
    if isinstance(payload, dict):
        return payload
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandError("payload is not UTF-8") from None
    if not payload.strip():
        return {}
    try:
        obj = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise CommandError(f"payload is not JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(obj, dict):
        raise CommandError("payload must be a JSON object")
    return obj


def require(args: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    """Fetch a required argument of a given type, or reject the command naming it."""
    if key not in args:
        raise CommandError(f"missing field {key!r}")
    value = args[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise CommandError(f"field {key!r} must be {names}, got {type(value).__name__}")
    return value
