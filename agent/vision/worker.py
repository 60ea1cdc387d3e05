"""The vision worker process: all cameras, the detector and the recording windows.

It runs apart from the agent process (multiprocessing, spawn) so decoding and inference can
never hold the agent's GIL while an alarm is being stored and sent. It talks to the agent
only through two queues: requests in, small result messages (events, JPEG bytes, status) out.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

from agent.errors import DriverFault
from agent.plates.voting import VotedPlate, to_message
from agent.vision.config import VisionConfig
from agent.vision.detector import Detector
from agent.vision.models import ModelEntry, VerifiedModel
from agent.vision.pipeline import CameraPipeline, Message
from agent.vision.recording import frames_to_clip
from agent.vision.synthetic import make_synthetic_video

if TYPE_CHECKING:
    from agent.plates.tap import PlateTap

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 2.0
SEND_TIMEOUT_S = 2.0


def run_worker(
    vision_json: str,
    model: dict[str, Any] | None,
    synthetic_path: str,
    tmp_dir: str,
    plates_json: str | None,
    requests: multiprocessing.Queue[Message],
    results: multiprocessing.Queue[Message],
) -> None:
    """Process entry point (must stay importable and picklable for spawn)."""
    logging.basicConfig(level=logging.INFO, format="vision-worker %(levelname)s %(message)s")
    vision = VisionConfig.model_validate_json(vision_json)
    if vision.worker_nice:
        os.nice(vision.worker_nice)
    # One OpenCV thread: the detector has its own threads, and on a 4-core box decode,
    # inference and the agent process must not be starved by OpenCV's pool.
    cv2.setNumThreads(1)
    Worker(
        vision_json, model, Path(synthetic_path), Path(tmp_dir), requests, results, plates_json
    ).run()


class Worker:
    def __init__(
        self,
        vision_json: str,
        model: dict[str, Any] | None,
        synthetic_path: Path,
        tmp_dir: Path,
        requests: multiprocessing.Queue[Message],
        results: multiprocessing.Queue[Message],
        plates_json: str | None = None,
    ) -> None:
        self.vision = VisionConfig.model_validate_json(vision_json)
        self._requests = requests
        self._results = results
        self._tmp_dir = tmp_dir
        self.dropped = 0
        self.detector: Detector | None = None
        if model is not None:
            try:
                verified = VerifiedModel(
                    ModelEntry.model_validate(model["entry"]),
                    Path(model["path"]),
                    tuple(model["labels"]),
                )
                self.detector = Detector(verified, self.vision.detector)
            except DriverFault as exc:
                reason = f"object detection disabled: {exc}"
                self.send({"kind": "fault", "part": "detector", "reason": reason})
        self.plates = self._plate_tap(plates_json) if plates_json else None
        self._watched = 0
        """Plates in the watchlist the agent last sent (``early_hit``)."""
        synthetic: Path | None = None
        if any(c.kind == "file" and c.path is None for c in self.vision.cameras):
            try:
                synthetic = make_synthetic_video(synthetic_path)
            except DriverFault as exc:
                self.send({"kind": "fault", "part": "synthetic-video", "reason": str(exc)})
        self.pipelines = {
            cam.name: CameraPipeline(
                cam,
                self.vision,
                self.detector,
                self.send,
                synthetic if cam.kind == "file" and cam.path is None else None,
                self.plates if cam.plates else None,
            )
            for cam in self.vision.cameras
        }

    def _plate_tap(self, plates_json: str) -> PlateTap | None:
        """The plate reader for the cameras that read plates; None (and a fault) without it."""
        from agent.plates.config import PlatesConfig
        from agent.plates.reader import PlateReader
        from agent.plates.tap import PlateTap

        cfg = PlatesConfig.model_validate_json(plates_json)
        try:
            reader = PlateReader.from_config(cfg)
        except DriverFault as exc:
            reason = f"plate reading disabled: {exc}"
            self.send({"kind": "fault", "part": "plates", "reason": reason})
            return None
        return PlateTap.from_config(reader, cfg, self._plate_decided)

    def _plate_decided(self, track: str, voted: VotedPlate) -> None:
        crop = voted.best.extra.pop("crop", None)
        msg = to_message(track, voted)
        if crop is not None:
            msg["jpeg"] = crop
        self.send(msg)

    def send(self, msg: Message) -> None:
        """Hand a result to the agent process; if it has stopped reading, drop it."""
        try:
            self._results.put(msg, timeout=SEND_TIMEOUT_S)
        except queue.Full:
            self.dropped += 1

    def run(self) -> None:
        for p in self.pipelines.values():
            p.start()
        self.send({"kind": "ready", "detector": self.detector is not None})
        parent = multiprocessing.parent_process()
        next_status = time.monotonic()
        try:
            while True:
                if parent is not None and not parent.is_alive():
                    break
                try:
                    req = self._requests.get(timeout=0.5)
                except queue.Empty:
                    req = None
                if req is not None:
                    if req.get("op") == "stop":
                        break
                    self.handle(req)
                if time.monotonic() >= next_status:
                    next_status = time.monotonic() + STATUS_INTERVAL_S
                    self.send({"kind": "status", **self.status()})
        finally:
            for p in self.pipelines.values():
                p.stop()

    def status(self) -> dict[str, Any]:
        return {
            "cameras": {name: p.status() for name, p in self.pipelines.items()},
            "detector": self.detector.stats() if self.detector else None,
            "plates": {"frames": self.plates.frames, "reads": self.plates.reads,
                       "open_tracks": self.plates.open_tracks,
                       "rejected_tracks": self.plates.rejected,
                       "watchlist": self._watched} if self.plates else None,
            "dropped_results": self.dropped,
        }

    # requests ---------------------------------------------------------------------
    def handle(self, req: Message) -> None:
        op = req.get("op")
        try:
            if op == "snapshot":
                ts, jpeg = self._pipeline(req["camera"]).snapshot()
                self.reply(req, {"ts": ts}, jpeg=jpeg)
            elif op == "clip":
                threading.Thread(
                    target=self._clip, args=(req,), name=f"clip-{req['req_id']}", daemon=True
                ).start()
            elif op == "alarm":
                self._alarm_pictures(req)
            elif op == "watchlist":
                self._watchlist(req)
            elif op == "effect":
                p = self._pipeline(req["camera"])
                p.effect = req.get("effect")
                self.reply(req, {"camera": p.cam.name, "effect": p.effect})
            else:
                raise DriverFault(f"unknown request {op!r}")
        except (DriverFault, KeyError) as exc:
            self.reply(req, error=str(exc) if isinstance(exc, DriverFault) else f"bad {exc}")

    def reply(
        self,
        req: Message,
        result: dict[str, Any] | None = None,
        *,
        error: str | None = None,
        jpeg: bytes | None = None,
        clip: bytes | None = None,
    ) -> None:
        msg: Message = {"kind": "reply", "req_id": req.get("req_id"), "ok": error is None}
        msg["result"] = result or {}
        if error is not None:
            msg["error"] = error
        if jpeg is not None:
            msg["jpeg"] = jpeg
        if clip is not None:
            msg["clip"] = clip
        self.send(msg)

    def _pipeline(self, name: str) -> CameraPipeline:
        p = self.pipelines.get(name)
        if p is None:
            raise DriverFault(f"unknown camera {name!r}; known: {', '.join(self.pipelines)}")
        return p

    def _clip(self, req: Message) -> None:
        try:
            p = self._pipeline(req["camera"])
            start, end = float(req["start"]), float(req["end"])
            span = p.window.span()
            if span is None or end < span[0] or start > span[1]:
                raise DriverFault(
                    f"camera {p.cam.name}: range is outside the recording window {_span_text(span)}"
                )
            frames = p.window.between(start, end)
            clip = frames_to_clip(frames, self.vision.buffer.fps, self._tmp_dir)
            result = {"start": frames[0].ts, "end": frames[-1].ts, "frames": len(frames)}
            self.reply(req, result, clip=clip)
        except DriverFault as exc:
            self.reply(req, error=str(exc))

    def _watchlist(self, req: Message) -> None:
        """The agent's watchlist (its plates), for ``early_hit``: a track whose readings
        are on it is decided at once, here where the frames are."""
        if self.plates is None:
            return
        from agent.plates.watchlist import PlateIndex

        index = PlateIndex([str(p) for p in req["plates"]], float(req["max_distance"]))
        self.plates.set_watch(lambda text: index.closest(text) is not None)
        self._watched = len(index.plates)

    def _alarm_pictures(self, req: Message) -> None:
        cfg = self.vision.alarm_pictures
        alarm_ts = float(req["alarm_ts"])
        for name in req["cameras"]:
            p = self.pipelines.get(name)
            if p is None:
                continue
            for frame in p.window.pick(alarm_ts - cfg.pre_s, alarm_ts, cfg.pre_count):
                self._alarm_picture(req, name, "pre", frame.ts, frame.jpeg)
            if cfg.post_count:
                threading.Thread(
                    target=self._post_pictures,
                    args=(req, p, alarm_ts),
                    name=f"alarm-post-{name}",
                    daemon=True,
                ).start()

    def _post_pictures(self, req: Message, p: CameraPipeline, alarm_ts: float) -> None:
        cfg = self.vision.alarm_pictures
        for i in range(1, cfg.post_count + 1):
            due = alarm_ts + cfg.post_s * i / cfg.post_count
            time.sleep(max(0.0, due - time.time()))
            try:
                ts, jpeg = p.snapshot()
            except DriverFault:
                continue
            self._alarm_picture(req, p.cam.name, "post", ts, jpeg)

    def _alarm_picture(self, req: Message, camera: str, phase: str, ts: float, jpeg: bytes) -> None:
        self.send(
            {
                "kind": "alarm_picture",
                "alarm_id": req["alarm_id"],
                "alarm_type": req.get("alarm_type"),
                "button": req.get("button"),
                "camera": camera,
                "phase": phase,
                "ts": ts,
                "jpeg": jpeg,
            }
        )


def _span_text(span: tuple[float, float] | None) -> str:
    if span is None:
        return "(empty)"
    return f"{span[0]:.1f}..{span[1]:.1f}"
