"""The vision component in the agent process: starts and supervises the worker process,
turns its results into events, keeps the media store, and serves the camera commands.

Nothing here decodes video or runs a model; the agent process only stores JPEG/MP4 bytes
it receives and emits events, on its own named thread, never on the alarm path.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import logging
import multiprocessing
import os
import queue
import threading
import time
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from typing import Any

from agent.commands import require
from agent.errors import CommandError, DriverFault, OutboxError
from agent.events import Event
from agent.runtime import AgentContext
from agent.vision.config import TAMPER_REASONS, VisionConfig, synthetic_clip_path
from agent.vision.media import MediaRef, MediaStore
from agent.vision.models import VerifiedModel, verify_model

log = logging.getLogger(__name__)

Message = dict[str, Any]
ALARM_TYPES = ("alarm.panic", "alarm.duress")
SNAPSHOT_TIMEOUT_S = 5.0
CLIP_TIMEOUT_S = 10.0
# Bounded, so a stalled agent process makes the worker drop results rather than grow.
RESULTS_QUEUE_SIZE = 256
PRUNE_EVERY_S = 60.0
"""How often the media store's retention is applied when nothing is written (a quiet box
would otherwise keep old items, and crops under ``limit``, until its next write)."""


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: object, what: str) -> float:
    """Epoch seconds (number) or an RFC 3339 string → epoch seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise CommandError(f"field {what!r}: not an RFC 3339 time: {value!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    raise CommandError(f"field {what!r} must be epoch seconds or an RFC 3339 string")


def _worker_main(*args: Any) -> None:
    """The worker process's entry. It lives here, and imports the worker only once inside
    the new process, so the agent process never loads OpenCV, NumPy or the TFLite runtime."""
    from agent.vision.worker import run_worker

    run_worker(*args)


class _Pending:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: Message | None = None


class VisionService:
    """The ``vision`` component: one worker process for all cameras."""

    name = "vision"

    def __init__(self, ctx: AgentContext, cfg: VisionConfig) -> None:
        self._ctx = ctx
        self._cfg = cfg
        self._state_dir = ctx.state_dir / "vision"
        media = cfg.media
        self._media_dir = media.dir or ctx.state_dir / "media"
        self.media: MediaStore | None = None
        self._mp = multiprocessing.get_context("spawn")
        self._proc: BaseProcess | None = None
        self._requests: Any = None
        self._results: Any = None
        self._reader: threading.Thread | None = None
        self._stopping = threading.Event()
        self._pending: dict[str, _Pending] = {}
        self._pending_lock = threading.Lock()
        self._req_ids = itertools.count(1)
        self._model: VerifiedModel | None = None
        self.detector_fault: str | None = None
        self._faults: list[str] = []
        self._worker_status: dict[str, Any] = {}
        self.restarts = 0
        self.counts: dict[str, int] = {}
        self._plate_handler: Any = None
        self._next_prune = 0.0  # monotonic time of the media store's next prune (the reader's)
        self._watch: Message | None = None
        ctx.commands.register(
            "snapshot", self.cmd_snapshot, description="JPEG of a camera now: {camera}"
        )
        ctx.commands.register(
            "clip",
            self.cmd_clip,
            description="MP4 from the recording window: {camera, start, end} or {camera, seconds}",
        )
        ctx.commands.register(
            "media-get", self.cmd_media_get, description="fetch stored media as base64: {id}"
        )
        ctx.simulators.register(
            "camera-tamper",
            self.sim_camera_tamper,
            description="camera-tamper CAMERA covered|blurred|moved|clear",
        )
        ctx.bus.on_event(self._on_alarm, "alarm.")

    # lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        self._state_dir.mkdir(parents=True, exist_ok=True)
        m = self._cfg.media
        self.media = MediaStore(
            self._media_dir,
            max_bytes=m.max_bytes,
            retention_s=m.retention_s,
            min_free_bytes=m.min_free_bytes,
        )
        self._model = self._check_model()
        self._stopping.clear()
        self._spawn()
        self._reader = threading.Thread(target=self._read_loop, name="vision-results", daemon=True)
        self._reader.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._requests is not None:
            self._requests.put({"op": "stop"})
        if self._proc is not None:
            self._proc.join(timeout=8)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(timeout=3)
        if self._reader is not None:
            self._reader.join(timeout=5)

    def _check_model(self) -> VerifiedModel | None:
        det = self._cfg.detector
        if not det.enabled or not any(c.detect for c in self._cfg.cameras):
            return None
        try:
            return verify_model(det.model_folder(self._ctx.state_dir), det.model)
        except DriverFault as exc:
            self.detector_fault = f"object detection disabled: {exc}"
            self._faults.append(self.detector_fault)
            log.error("%s", self.detector_fault)
            return None

    def _spawn(self) -> None:
        self._worker_status = {}  # a dead worker's last report is not the new one's
        self._requests = self._mp.Queue()
        self._results = self._mp.Queue(maxsize=RESULTS_QUEUE_SIZE)
        model = None
        if self._model is not None:
            model = {
                "entry": self._model.entry.model_dump(),
                "path": str(self._model.path),
                "labels": list(self._model.labels),
            }
        self._proc = self._mp.Process(
            target=_worker_main,
            args=(
                self._cfg.model_dump_json(),
                model,
                str(synthetic_clip_path(self._ctx.state_dir)),
                str(self._state_dir),
                self._plates_json(),
                self._requests,
                self._results,
            ),
            name="outpost-vision",
            daemon=True,
        )
        self._proc.start()
        if self._watch is not None:
            self._requests.put(self._watch)

    def _plates_json(self) -> str | None:
        """The ``[plates]`` settings for the worker, when a camera reads plates."""
        plates = getattr(self._ctx.settings, "plates", None)
        readers = [c.name for c in self._cfg.cameras if c.plates]
        if readers and (plates is None or not plates.enabled):
            log.warning("cameras %s have plates = true but [plates] is disabled: no plates "
                        "will be read", ", ".join(readers))
        if plates is None or not plates.enabled or not readers:
            return None
        return str(plates.model_dump_json())

    def set_watchlist(self, plates: list[str], max_distance: float) -> None:
        """The plates component's watchlist, for the worker's plate reader (``early_hit``);
        sent again to a restarted worker."""
        self._watch = {"op": "watchlist", "plates": list(plates), "max_distance": max_distance}
        if self._requests is not None:
            self._requests.put(self._watch)

    def set_plate_handler(self, handler: Any) -> None:
        """``handler(message)`` receives each decided plate track from the worker."""
        self._plate_handler = handler

    def limit_media(self, media_id: str, keep_s: float) -> bool:
        """Keep a stored item no longer than ``keep_s`` from now (``MediaStore.limit``);
        the store is pruned at that time, not only at the next ``PRUNE_EVERY_S``."""
        if self.media is None or not self.media.limit(media_id, keep_s):
            return False
        self._next_prune = min(self._next_prune, time.monotonic() + keep_s + 0.1)
        return True

    # results from the worker ------------------------------------------------------
    def _read_loop(self) -> None:
        # This thread writes media and emits vision events: on Linux niceness is per thread,
        # so lowering it here lets the alarm path's threads win the CPU (and, with the BFQ
        # scheduler, the disk) when both want it.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._cfg.worker_nice)
        backoff = 1.0
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        while not self._stopping.is_set():
            if time.monotonic() >= self._next_prune and self.media is not None:
                self._next_prune = time.monotonic() + PRUNE_EVERY_S
                with contextlib.suppress(OSError):
                    self.media.prune()
            while self._faults:
                self._fault(self._faults.pop(0))
            try:
                msg = self._results.get(timeout=0.5)
            except queue.Empty:
                proc = self._proc
                if proc is not None and not proc.is_alive() and not self._stopping.is_set():
                    self._fault(f"vision worker exited with code {proc.exitcode}; restarting")
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, 60.0)
                    if not self._stopping.is_set():
                        self.restarts += 1
                        self._spawn()
                continue
            except (EOFError, OSError):
                continue
            try:
                self._handle(msg)
                if msg.get("kind") == "status":
                    backoff = 1.0
            except Exception:  # a malformed message must not stop the reader
                log.exception("vision: failed to handle %s", msg.get("kind"))

    def _emit(self, type_: str, data: dict[str, Any]) -> Event | None:
        """Emit through the sink; a full outbox drops a vision event, never the reader."""
        try:
            event = self._ctx.sink.emit(type_, data)
        except OutboxError as exc:
            self.counts["dropped"] = self.counts.get("dropped", 0) + 1
            log.warning("vision: %s not stored: %s", type_, exc)
            return None
        self.counts[type_] = self.counts.get(type_, 0) + 1
        return event

    def _fault(self, reason: str) -> None:
        self._emit("device.fault", {"component": "vision", "reason": reason})

    def _store(self, data: bytes | None, ext: str = ".jpg") -> MediaRef | None:
        if not data or self.media is None:
            return None
        try:
            return self.media.put(data, ext)
        except (DriverFault, OSError) as exc:
            log.warning("vision: media not stored: %s", exc)
            return None

    def _media_event(
        self, ref: MediaRef | None, data: dict[str, Any], kind: str = "snapshot"
    ) -> None:
        if ref is not None:
            self._emit(f"media.{kind}", {"media": ref.to_dict(), **data})

    def _handle(self, msg: Message) -> None:
        kind = msg.get("kind")
        if kind == "status":
            self._worker_status = msg
        elif kind == "reply":
            with self._pending_lock:
                pending = self._pending.pop(str(msg.get("req_id")), None)
            if pending is not None:
                pending.reply = msg
                pending.done.set()
        elif kind == "fault":
            if msg.get("part") == "detector":
                self.detector_fault = str(msg.get("reason"))
            self._fault(str(msg.get("reason")))
        elif kind == "ready":
            log.info("vision worker ready (detector: %s)", msg.get("detector"))
        elif kind == "camera":
            data = {"camera": msg["camera"]}
            if msg.get("reason"):
                data["reason"] = msg["reason"]
            self._emit("camera.online" if msg["online"] else "camera.offline", data)
        elif kind == "tamper":
            ref = self._store(msg.get("jpeg"))
            data = {
                "camera": msg["camera"],
                "state": msg["state"],
                "reason": msg.get("reason"),
                "metrics": msg.get("metrics", {}),
                "snapshot": ref.to_dict() if ref else None,
            }
            ev = self._emit("camera.tamper", data)
            ids = [ev.id] if ev is not None else []
            self._media_event(
                ref, {"camera": msg["camera"], "event_ids": ids, "ts": rfc3339(msg["ts"])}
            )
        elif kind == "objects_new":
            ref = self._store(msg.get("jpeg"))
            event_ids = []
            for obj in msg["objects"]:
                data = {
                    "camera": msg["camera"],
                    "track_id": obj["track_id"],
                    "label": obj["label"],
                    "score": obj["score"],
                    "box": obj["box"],
                    "frame_size": msg.get("frame_size"),
                    "start": rfc3339(obj["start"]),
                    "snapshot": ref.to_dict() if ref else None,
                }
                event = self._emit("vision.object", data)
                if event is not None:
                    event_ids.append(event.id)
            self._media_event(
                ref, {"camera": msg["camera"], "event_ids": event_ids, "ts": rfc3339(msg["ts"])}
            )
        elif kind == "object_end":
            self._emit(
                "vision.object.end",
                {
                    "camera": msg["camera"],
                    "track_id": msg["track_id"],
                    "label": msg["label"],
                    "top_score": msg["top_score"],
                    "box": msg["box"],
                    "start": rfc3339(msg["start"]),
                    "end": rfc3339(msg["ts"]),
                    "duration_s": msg["duration_s"],
                },
            )
        elif kind == "plate":
            ref = self._store(msg.pop("jpeg", None))
            if ref is not None:
                msg["best"]["extra"]["media"] = ref.to_dict()
            if self._plate_handler is not None:
                self._plate_handler(msg)
        elif kind == "alarm_picture":
            ref = self._store(msg.get("jpeg"))
            self._media_event(
                ref,
                {
                    "camera": msg["camera"],
                    "alarm_id": msg["alarm_id"],
                    "alarm_type": msg.get("alarm_type"),
                    "button": msg.get("button"),
                    "phase": msg["phase"],
                    "ts": rfc3339(msg["ts"]),
                },
            )

    # alarms -----------------------------------------------------------------------
    def cameras_covering(self, button: str | None) -> list[str]:
        return [
            c.name
            for c in self._cfg.cameras
            if (button is not None and button in c.covers_buttons) or "*" in c.covers_buttons
        ]

    def _on_alarm(self, event: Event) -> None:
        if event.type not in ALARM_TYPES or self._requests is None:
            return
        button = event.data.get("button")
        cameras = self.cameras_covering(button if isinstance(button, str) else None)
        if not cameras:
            return
        try:
            alarm_ts = parse_time(event.ts, "ts")
        except CommandError:
            alarm_ts = time.time()
        self._requests.put(
            {
                "op": "alarm",
                "alarm_id": event.id,
                "alarm_type": event.type,
                "button": button,
                "cameras": cameras,
                "alarm_ts": alarm_ts,
            }
        )

    # commands ---------------------------------------------------------------------
    def _request(self, req: Message, timeout: float) -> Message:
        if self._proc is None or not self._proc.is_alive() or self._requests is None:
            raise CommandError("vision worker is not running")
        req_id = str(next(self._req_ids))
        pending = _Pending()
        with self._pending_lock:
            self._pending[req_id] = pending
        self._requests.put({**req, "req_id": req_id})
        if not pending.done.wait(timeout):
            with self._pending_lock:
                self._pending.pop(req_id, None)
            raise CommandError(f"vision worker did not answer within {timeout:.0f} s")
        reply = pending.reply or {}
        if not reply.get("ok"):
            raise CommandError(str(reply.get("error", "failed")))
        return reply

    def _camera_arg(self, args: dict[str, Any]) -> str:
        if "camera" not in args and len(self._cfg.cameras) == 1:
            return self._cfg.cameras[0].name
        camera = require(args, "camera", str)
        if camera not in {c.name for c in self._cfg.cameras}:
            known = ", ".join(c.name for c in self._cfg.cameras) or "none"
            raise CommandError(f"unknown camera {camera!r}; known: {known}")
        return str(camera)

    def cmd_snapshot(self, args: dict[str, Any]) -> dict[str, Any]:
        camera = self._camera_arg(args)
        reply = self._request({"op": "snapshot", "camera": camera}, SNAPSHOT_TIMEOUT_S)
        ref = self._store(reply.get("jpeg"))
        if ref is None:
            raise CommandError("snapshot could not be stored")
        ts = rfc3339(reply["result"]["ts"])
        self._media_event(ref, {"camera": camera, "ts": ts, "reason": "command"})
        return {"camera": camera, "ts": ts, "media": ref.to_dict()}

    def cmd_clip(self, args: dict[str, Any]) -> dict[str, Any]:
        camera = self._camera_arg(args)
        now = time.time()
        if "start" in args:
            start = parse_time(args["start"], "start")
            end = parse_time(args["end"], "end") if "end" in args else now
        else:
            seconds = args.get("seconds", 10)
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
                raise CommandError("field 'seconds' must be a positive number")
            start, end = now - float(seconds), now
        if end <= start:
            raise CommandError("'end' must be after 'start'")
        if end - start > self._cfg.buffer.seconds + 1:
            raise CommandError(
                f"range of {end - start:.0f} s is longer than the recording window "
                f"({self._cfg.buffer.seconds:.0f} s)"
            )
        reply = self._request(
            {"op": "clip", "camera": camera, "start": start, "end": end}, CLIP_TIMEOUT_S
        )
        ref = self._store(reply.get("clip"), ".mp4")
        if ref is None:
            raise CommandError("clip could not be stored")
        result = reply["result"]
        info = {
            "camera": camera,
            "start": rfc3339(result["start"]),
            "end": rfc3339(result["end"]),
            "frames": result["frames"],
        }
        self._media_event(ref, {**info, "reason": "command"}, kind="clip")
        return {**info, "media": ref.to_dict()}

    def cmd_media_get(self, args: dict[str, Any]) -> dict[str, Any]:
        media_id = require(args, "id", str)
        if self.media is None:
            raise CommandError("media store is not open")
        try:
            ref, data = self.media.get(media_id)
        except (KeyError, FileNotFoundError):
            raise CommandError(f"no media {media_id!r} (evicted or never stored)") from None
        return {"media": ref.to_dict(), "data_b64": base64.b64encode(data).decode("ascii")}

    def sim_camera_tamper(self, args: dict[str, Any]) -> dict[str, Any]:
        parser = argparse.ArgumentParser(prog="camera-tamper", exit_on_error=False)
        parser.add_argument("camera")
        parser.add_argument("effect", choices=[*TAMPER_REASONS, "clear"])
        try:
            ns = parser.parse_args([str(a) for a in args.get("argv", [])])
        except (argparse.ArgumentError, SystemExit) as exc:
            raise CommandError(f"usage: {parser.format_usage().strip()} ({exc})") from None
        camera = self._camera_arg({"camera": ns.camera})
        effect = None if ns.effect == "clear" else ns.effect
        reply = self._request({"op": "effect", "camera": camera, "effect": effect}, 5.0)
        hold = self._cfg.tamper.hold_s
        return {**reply["result"], "note": f"camera.tamper follows after about {hold:.0f} s"}

    # status -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        proc = self._proc
        ws = self._worker_status
        return {
            "worker": {
                "pid": proc.pid if proc else None,
                "alive": bool(proc and proc.is_alive()),
                "restarts": self.restarts,
                "dropped_results": ws.get("dropped_results", 0),
            },
            "detector": {
                "enabled": self._model is not None and self.detector_fault is None,
                "model": self._cfg.detector.model,
                "fault": self.detector_fault,
                **(ws.get("detector") or {}),
            },
            "cameras": ws.get("cameras", {c.name: {"online": False} for c in self._cfg.cameras}),
            "plates": ws.get("plates"),
            "media": self.media.status() if self.media else None,
            "events": dict(self.counts),
        }
