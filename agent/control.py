"""The local control socket: a Unix socket (owner-only) for ``outpost status``, ``simulate``,
``tail`` and the other field commands.

Protocol: one JSON request per line, one JSON reply per line; ``tail`` keeps the connection
open and streams one event per line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent.errors import ControlError

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlServer:
    """Serves requests ``{"op": NAME, ...}`` with registered handlers, one thread per client."""

    name = "control"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ops: dict[str, Handler] = {}
        self._tails: list[tuple[queue.Queue[bytes | None], set[str]]] = []
        self._tails_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def register(self, op: str, handler: Handler) -> None:
        self._ops[op] = handler

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(8)
        sock.settimeout(0.5)
        self._sock = sock
        self._thread = threading.Thread(target=self._accept, name="control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._tails_lock:
            for q, _ in self._tails:
                q.put(None)
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def status(self) -> dict[str, Any]:
        return {"socket": str(self.path), "tails": len(self._tails)}

    def publish_tail(self, obj: dict[str, Any]) -> None:
        """Send one published event to every ``tail`` client whose filter matches."""
        if not self._tails:
            return
        line = (json.dumps(obj, ensure_ascii=False) + "\n").encode()
        etype = str(obj.get("type", ""))
        with self._tails_lock:
            for q, prefixes in self._tails:
                if not prefixes or any(etype.startswith(p) for p in prefixes):
                    with contextlib.suppress(queue.Full):
                        q.put_nowait(line)

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            threading.Thread(target=self._serve, args=(conn,), name="control-client",
                             daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as fh:
            for raw in fh:
                try:
                    req = json.loads(raw)
                    if not isinstance(req, dict):
                        raise ValueError("request must be a JSON object")
                except ValueError as exc:
                    reply: dict[str, Any] = {"ok": False, "error": f"bad request: {exc}"}
                else:
                    if req.get("op") == "tail":
                        self._stream_tail(fh, req)
                        return
                    reply = self._handle(req)
                try:
                    fh.write((json.dumps(reply, ensure_ascii=False, default=str) + "\n").encode())
                    fh.flush()
                except OSError:
                    return

    def _handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        handler = self._ops.get(op) if isinstance(op, str) else None
        if handler is None:
            known = ", ".join(sorted(self._ops))
            return {"ok": False, "error": f"unknown op {op!r}; known: {known}"}
        try:
            return handler(req)
        except Exception as exc:
            log.exception("control op %s failed", op)
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    def _stream_tail(self, fh: Any, req: dict[str, Any]) -> None:
        q: queue.Queue[bytes | None] = queue.Queue(maxsize=10000)
        types = req.get("types") or []
        entry = (q, {str(t) for t in types})
        with self._tails_lock:
            self._tails.append(entry)
        try:
            fh.write(b'{"ok": true, "tail": true}\n')
            fh.flush()
            while (line := q.get()) is not None:
                fh.write(line)
                fh.flush()
        except OSError:
            pass
        finally:
            with self._tails_lock:
                self._tails.remove(entry)


def request(path: Path, req: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to a running agent and return its reply."""
    with _connect(path, timeout) as sock, sock.makefile("rwb") as fh:
        fh.write((json.dumps(req) + "\n").encode())
        fh.flush()
        line = fh.readline()
    if not line:
        raise ControlError("the agent closed the control socket without answering")
    reply: dict[str, Any] = json.loads(line)
    return reply


def stream(path: Path, req: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield the lines a streaming request (``tail``) sends, until the agent stops."""
    with _connect(path, None) as sock, sock.makefile("rb") as fh:
        sock.sendall((json.dumps(req) + "\n").encode())
        for line in fh:
            yield json.loads(line)


@contextlib.contextmanager
def _connect(path: Path, timeout: float | None) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except FileNotFoundError:
        sock.close()
        raise ControlError(
            f"no agent control socket at {path}: is `outpost run` running?"
        ) from None
    except PermissionError:
        sock.close()
        raise ControlError(
            f"permission denied on {path}: run as the agent's user or root"
        ) from None
    except ConnectionRefusedError:
        sock.close()
        raise ControlError(f"the agent is not answering on {path} (stale socket?)") from None
    try:
        yield sock
    finally:
        sock.close()
