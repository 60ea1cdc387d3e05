"""The plate-reading component of the daemon: per-track voting, watchlist, events.

The camera pipeline (agent/vision) calls ``PlateComponent.read_frame`` for each analysed
frame with the vehicle boxes and track ids it has; this component emits one ``plate.read``
per track (after voting) and a ``plate.hit`` alarm when the plate is on the watchlist.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import CommandError, DriverFault
from agent.events import EventSink, Priority
from agent.plates.config import FastPlateOcrConfig, PlatesConfig
from agent.plates.models import verify_plate_model
from agent.plates.tap import PlateTap
from agent.plates.voting import PlateRead, VotedPlate, from_message
from agent.plates.watchlist import Watchlist, keyed_hash, load_or_create_key, parse_entries
from agent.runtime import AgentContext, Component

if TYPE_CHECKING:
    import numpy.typing as npt

    from agent.plates.localise import Box
    from agent.plates.reader import PlateReader

log = logging.getLogger(__name__)


class PlateComponent:
    """Reads plates for the vision pipeline and owns the watchlist.

    A missing or broken model disables reading with one ``device.fault``; the watchlist
    command, the simulator and the rest of the daemon keep working.
    """

    name = "plates"

    def __init__(
        self,
        cfg: PlatesConfig,
        sink: EventSink,
        state_dir: Path,
        reader: PlateReader | None = None,
    ) -> None:
        self.cfg = cfg
        self.sink = sink
        self.state_dir = state_dir
        self.watchlist = Watchlist(cfg.watchlist_path(state_dir), cfg.match_distance)
        self.tap = self._new_tap(reader) if reader is not None else None
        self._watch_sink: Callable[[list[str], float], None] | None = None
        self._media_limiter: Callable[[str, float], bool] | None = None
        self.fault: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._key: bytes | None = None
        self.reads = 0
        self.hits = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        # The model is checked here (manifest, file, hash) but loaded only when this process
        # first reads a frame: cameras read plates in the vision worker, so the agent process
        # normally never pays for the TFLite runtime, OpenCV and numpy.
        if self.cfg.enabled and self.tap is None:
            try:
                check_model(self.cfg)
            except DriverFault as exc:
                self._disable(exc)
        if self.watchlist.load_error:
            self.sink.emit(
                "device.fault",
                {"component": "plates", "fault": "watchlist", "detail": self.watchlist.load_error},
            )
        if self.cfg.privacy.hash_non_hits:
            key_file = self.cfg.privacy.hash_key_file or self.state_dir / "plates-hash.key"
            self._key = load_or_create_key(key_file)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="plates-voter", daemon=True)
        self._thread.start()

    def _disable(self, exc: DriverFault) -> None:
        self.fault = str(exc)
        log.error("plate reading disabled: %s", exc)
        self.sink.emit(
            "device.fault", {"component": "plates", "fault": "model", "detail": str(exc)}
        )

    def _tap(self) -> PlateTap | None:
        if self.tap is None and self.cfg.enabled and self.fault is None:
            from agent.plates.reader import PlateReader

            try:
                reader = PlateReader.from_config(self.cfg)
            except DriverFault as exc:
                self._disable(exc)
                return None
            self.tap = self._new_tap(reader)
        return self.tap

    def _new_tap(self, reader: PlateReader) -> PlateTap:
        tap = PlateTap.from_config(reader, self.cfg, self.publish)
        tap.set_watch(lambda text: self.watchlist.match(text) is not None)
        return tap

    def set_media_limiter(self, limiter: Callable[[str, float], bool]) -> None:
        """``limiter(media_id, keep_s)`` shortens a stored crop's life
        (``VisionService.limit_media``). A crop of a plate not on the watchlist is kept no
        longer than ``privacy.non_hit_retention_s``, and not at all where the plate's text
        is not published (``hash_non_hits``, ``publish_non_hits = false``): a crop shows
        what the hash hides."""
        self._media_limiter = limiter

    def _limit_crop(self, media: dict[str, Any] | None, keep_s: float | None) -> None:
        if keep_s is not None and media and self._media_limiter is not None:
            self._media_limiter(str(media["id"]), keep_s)

    def set_watch_sink(self, sink: Callable[[list[str], float], None]) -> None:
        """``sink(plates, max_distance)`` is given the watchlist now and after each change:
        the vision worker reads plates where the frames are, and decides a watched car's
        track at once (``early_hit``)."""
        self._watch_sink = sink
        self._push_watchlist()

    def _push_watchlist(self) -> None:
        if self._watch_sink is not None:
            self._watch_sink([e.plate for e in self.watchlist.entries], self.cfg.match_distance)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.tap is not None:
            self.tap.flush()

    def status(self) -> dict[str, Any]:
        return {
            "enabled": self.cfg.enabled and self.fault is None,
            "fault": self.fault,
            "ocr": ocr_name(self.cfg),
            "frames": self.tap.frames if self.tap else 0,
            "reads": self.reads,
            "hits": self.hits,
            "open_tracks": self.tap.open_tracks if self.tap else 0,
            "watchlist": len(self.watchlist.entries),
        }

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            if self.tap is not None:
                try:
                    self.tap.tick()
                except Exception:
                    log.exception("plate voting failed")

    # ------------------------------------------------------------------ in-process reading

    def read_frame(
        self,
        frame: npt.NDArray[Any],
        vehicles: Sequence[tuple[str, Box]] | None = None,
        camera: str = "",
        media: str | None = None,
    ) -> list[PlateRead]:
        """Read plates in one frame in this process (see ``PlateTap.read_frame``).

        Cameras read plates in the vision worker, which sends decided tracks to
        ``handle_message``; this is for in-process use and tests.
        """
        tap = self._tap()
        return tap.read_frame(frame, vehicles, camera, media) if tap is not None else []

    def end_track(self, track_id: str) -> None:
        """The tracker lost this vehicle: vote now instead of waiting for the timeout."""
        if self.tap is not None:
            self.tap.end_track(track_id)

    # ------------------------------------------------------------------ events

    def handle_message(self, msg: dict[str, Any]) -> None:
        """A ``{"kind": "plate", ...}`` message from a vision worker (``voting.to_message``)."""
        track, voted = from_message(msg)
        self.publish(track, voted)

    def publish(self, track: str, voted: VotedPlate) -> None:
        """Emit ``plate.read`` for a decided track, and ``plate.hit`` when it is watched."""
        best = voted.best
        hit = self.watchlist.match(voted.text)
        data: dict[str, Any] = {
            "text": voted.text,
            "confidence": round(voted.confidence, 3),
            "char_confidences": [round(c, 3) for c in voted.char_confidences],
            "colour": best.colour or None,
            "type": best.plate_type or None,
            "format": best.format,
            "box": list(best.box),
            "camera": best.extra.get("camera", ""),
            "track": track,
            "media": best.extra.get("media"),
            "votes": voted.votes,
            "frames": voted.frames,
        }
        self.reads += 1
        if hit is None:
            # a crop shows the plate: kept only where the text itself is published
            if not self.cfg.privacy.publish_non_hits:
                self._limit_crop(data["media"], 0.0)
                return
            if self._key is not None:
                self._limit_crop(data.pop("media"), 0.0)
                data["text_hash"] = keyed_hash(data.pop("text"), self._key)
            else:
                self._limit_crop(data["media"], self.cfg.privacy.non_hit_retention_s)
            self.sink.emit("plate.read", data)
            return
        self.sink.emit("plate.read", data)
        self.hits += 1
        self.sink.emit(
            "plate.hit",
            {
                **data,
                "watch": {"plate": hit.entry.plate, "reason": hit.entry.reason, "id": hit.entry.id},
                "distance": round(hit.distance, 3),
            },
            priority=Priority.ALARM,
        )

    def submit(self, text: str, confidence: float = 0.99, camera: str = "sim") -> None:
        """Publish one reading as a finished track (the simulator and tests use this)."""
        read = PlateRead(text, confidence, [confidence] * len(text), extra={"camera": camera})
        self.publish(
            f"{camera}:sim-{time.monotonic_ns()}",
            VotedPlate(text, confidence, read.char_confidences, 1, 1, read),
        )

    # ------------------------------------------------------------------ commands

    def watchlist_command(self, args: dict[str, Any]) -> dict[str, Any]:
        """``watchlist`` command: ``{"op": "set"|"add"|"remove"|"list", "entries": [...]}``."""
        op = args.get("op", "set")
        if op == "list":
            return {
                "updated": self.watchlist.updated,
                "entries": [
                    {"plate": e.plate, "reason": e.reason, "id": e.id}
                    for e in self.watchlist.entries
                ],
            }
        if op in ("set", "add"):
            entries = parse_entries(args.get("entries"))
            (self.watchlist.replace if op == "set" else self.watchlist.add)(entries)
            self._push_watchlist()
            return {"count": len(self.watchlist.entries), "updated": self.watchlist.updated}
        if op == "remove":
            plates = args.get("plates")
            if not isinstance(plates, list) or not all(isinstance(p, str) for p in plates):
                raise CommandError("remove needs 'plates': a list of strings")
            removed = self.watchlist.remove(plates)
            self._push_watchlist()
            return {"removed": removed, "count": len(self.watchlist.entries)}
        raise CommandError(f"op {op!r}: use set, add, remove or list")

    def simulate(self, args: dict[str, Any]) -> dict[str, Any]:
        """``outpost simulate plate TEXT [--camera NAME] [--confidence C]``."""
        p = argparse.ArgumentParser(prog="simulate plate", exit_on_error=False, add_help=False)
        p.add_argument("text")
        p.add_argument("--camera", default="sim")
        p.add_argument("--confidence", type=float, default=0.99)
        try:
            ns = p.parse_args([str(a) for a in args.get("argv", [])])
        except (argparse.ArgumentError, SystemExit) as exc:
            raise CommandError(f"usage: simulate plate TEXT [--camera NAME]: {exc}") from None
        self.submit(ns.text, ns.confidence, ns.camera)
        return {"text": ns.text, "hit": self.watchlist.match(ns.text) is not None}


def ocr_name(cfg: PlatesConfig) -> str:
    return "fast-plate-ocr" if isinstance(cfg.ocr, FastPlateOcrConfig) else "+".join(cfg.ocr.names)


def check_model(cfg: PlatesConfig) -> None:
    """Raise ``DriverFault`` unless the configured OCR models, and the plate finder where
    ``finder`` uses it, are present and intact."""
    if cfg.finder != "classical":
        verify_plate_model(Path(cfg.model_dir), cfg.finder_model)
    if isinstance(cfg.ocr, FastPlateOcrConfig):
        if not Path(cfg.ocr.path).is_file():
            raise DriverFault(f"fast-plate-ocr model {cfg.ocr.path} not found")
        return
    for name in cfg.ocr.names:
        verify_plate_model(Path(cfg.model_dir), name)


def build(ctx: AgentContext) -> list[Component]:
    cfg = getattr(ctx.settings, "plates", None) or PlatesConfig()
    comp = PlateComponent(cfg, ctx.sink, ctx.state_dir)
    ctx.commands.register(
        "watchlist", comp.watchlist_command, description="set/add/remove/list watched plates"
    )
    ctx.simulators.register("plate", comp.simulate, description="simulate a plate reading")
    return [comp]
