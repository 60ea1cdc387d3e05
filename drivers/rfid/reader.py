"""Reader transports: one named thread per reader that opens its device, feeds the bytes to
the pure parser, survives the device vanishing, and turns reads into taps.

Every reader, real or simulated, ends in ``RfidReader.deliver``: the presence filter, then
``TapSink.tap``. A lost device is reported once through ``TapSink.fault(active=True)`` and
once more when it is back (``active=False``); in between the thread retries with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import serial

from agent.errors import DriverFault
from drivers.rfid.config import (
    HidReaderConfig,
    Id12Config,
    Pn532Config,
    Rdm6300Config,
    ReaderConfig,
    WiegandReaderConfig,
)
from drivers.rfid.hid import HidTransport, KeystrokeDecoder
from drivers.rfid.id12 import Id12Parser
from drivers.rfid.pn532 import Pn532Session
from drivers.rfid.presence import PresenceFilter
from drivers.rfid.rdm6300 import Em4100AsciiParser, Rdm6300Parser
from drivers.rfid.tags import Tag
from drivers.rfid.wiegand import WiegandCard, WiegandReader

log = logging.getLogger(__name__)

# A connection that lasted this long resets the reconnect backoff.
STABLE_S = 30.0


class TapSink(Protocol):
    """Where readers report. Called on the reader's own thread: must hand off quickly."""

    def tap(self, reader: str, tag: Tag, *, simulated: bool = False) -> None: ...

    def fault(self, reader: str, *, active: bool, detail: str) -> None: ...


class RfidReader:
    """The part every reader shares: the presence filter and the counters."""

    kind = "sim"

    def __init__(
        self,
        name: str,
        sink: TapSink,
        *,
        presence_gap_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.sink = sink
        self.presence = PresenceFilter(presence_gap_s)
        self.clock = clock
        self.reads = 0
        self.taps = 0

    def deliver(self, tags: list[Tag], *, simulated: bool = False) -> int:
        """Pass each read through the presence filter; return how many became taps."""
        now = self.clock()
        n = 0
        for tag in tags:
            self.reads += 1
            if self.presence.seen(tag, now):
                self.taps += 1
                n += 1
                self.sink.tap(self.name, tag, simulated=simulated)
        return n

    def inject(self, tag: Tag) -> bool:
        """The simulator's entry: the same path a read from the device takes."""
        return self.deliver([tag], simulated=True) == 1

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "reads": self.reads,
            "taps": self.taps,
            "repeats": self.presence.repeats,
        }


class _ReconnectingReader(RfidReader):
    """A reader with a device that can be missing: open, read, and on any I/O error close,
    report, and retry with exponential backoff. Subclasses supply ``_open``/``_read``/``_close``."""

    def __init__(
        self,
        name: str,
        sink: TapSink,
        *,
        presence_gap_s: float = 0.5,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name, sink, presence_gap_s=presence_gap_s, clock=clock)
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.faulted = False
        self.connected = False
        self.opens = 0
        self.losses = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"rfid-{self.kind}-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        backoff = self.backoff_min_s
        while not self._stop.is_set():
            try:
                self._open()
            except Exception as exc:  # missing device, no permission, odd tty: never fatal
                self._safe_close()
                self._lost(f"open failed: {exc}")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            self.opens += 1
            self.connected = True
            opened_at = time.monotonic()
            if self.faulted:
                self.faulted = False
                self._report(active=False, detail="reader is back")
            try:
                while not self._stop.is_set():
                    tags = self._read()
                    if tags:
                        self.deliver(tags)
            except (OSError, DriverFault, ValueError) as exc:
                self._lost(f"read failed: {exc}")
            except Exception as exc:  # a parser bug must not end the thread
                log.exception("rfid %s: unexpected error", self.name)
                self._lost(f"internal error: {type(exc).__name__}: {exc}")
            finally:
                self.connected = False
                self._safe_close()
            # A reader that opens and fails again at once (flaky cable, a PN532 that
            # answers setup but not polls) keeps backing off instead of flapping each second.
            if time.monotonic() - opened_at > STABLE_S:
                backoff = self.backoff_min_s
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.backoff_max_s)

    def _lost(self, detail: str) -> None:
        self.last_error = detail
        if not self.faulted:
            self.faulted = True
            self.losses += 1
            log.warning("rfid %s: %s", self.name, detail)
            self._report(active=True, detail=detail)

    def _report(self, *, active: bool, detail: str) -> None:
        try:
            self.sink.fault(self.name, active=active, detail=detail)
        except Exception:
            log.exception("rfid %s: fault report failed", self.name)

    def _safe_close(self) -> None:
        with contextlib.suppress(OSError, DriverFault):
            self._close()

    def _open(self) -> None:
        raise NotImplementedError

    def _read(self) -> list[Tag]:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "connected": self.connected,
            "faulted": self.faulted,
            "opens": self.opens,
            "losses": self.losses,
            "last_error": self.last_error,
        }


class SerialAsciiReader(_ReconnectingReader):
    """RDM6300 or ID-12LA on a serial port (``/dev/serial0``, a USB-serial by-id path)."""

    def __init__(
        self,
        name: str,
        sink: TapSink,
        port: str,
        parser: Em4100AsciiParser,
        *,
        kind: str = "rdm6300",
        baud: int = 9600,
        read_timeout_s: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, sink, **kwargs)
        self.kind = kind
        self.port = port
        self.baud = baud
        self.parser = parser
        self.read_timeout_s = read_timeout_s
        self._serial: serial.Serial | None = None

    def _open(self) -> None:
        self.parser.reset()  # never glue a frame across a reconnect
        self._serial = serial.Serial(self.port, self.baud, timeout=self.read_timeout_s)

    def _read(self) -> list[Tag]:
        port = self._serial
        assert port is not None
        return self.parser.feed(port.read(max(1, port.in_waiting)))

    def _close(self) -> None:
        if self._serial is not None:
            port, self._serial = self._serial, None
            port.close()

    def status(self) -> dict[str, Any]:
        return {**super().status(), "port": self.port, **self.parser.stats.to_dict()}


class Pn532Reader(_ReconnectingReader):
    """A PN532 module in HSU mode on a serial port, polled every ``poll_s``."""

    kind = "pn532"

    def __init__(
        self,
        name: str,
        sink: TapSink,
        port: str,
        *,
        baud: int = 115200,
        poll_s: float = 0.2,
        session: Pn532Session | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("presence_gap_s", 1.0)
        super().__init__(name, sink, **kwargs)
        self.port = port
        self.baud = baud
        self.poll_s = poll_s
        self.session = session or Pn532Session()
        self._serial: serial.Serial | None = None

    def _open(self) -> None:
        self._serial = serial.Serial(self.port, self.baud, timeout=0.05)
        self.session.setup(self._serial)

    def _read(self) -> list[Tag]:
        assert self._serial is not None
        tags = self.session.poll(self._serial)
        self._stop.wait(self.poll_s)
        return tags

    def _close(self) -> None:
        if self._serial is not None:
            port, self._serial = self._serial, None
            port.close()

    def status(self) -> dict[str, Any]:
        fw = self.session.firmware
        return {
            **super().status(),
            "port": self.port,
            "firmware": fw.hex() if fw else None,
            **self.session.stats.to_dict(),
        }


class HidReader(_ReconnectingReader):
    """A USB keyboard-emulation reader through evdev (grabbed)."""

    kind = "hid"

    def __init__(self, name: str, sink: TapSink, transport: HidTransport, **kwargs: Any) -> None:
        super().__init__(name, sink, **kwargs)
        self.transport = transport

    def _open(self) -> None:
        self.transport.open()

    def _read(self) -> list[Tag]:
        return self.transport.read(0.2)

    def _close(self) -> None:
        self.transport.close()

    def status(self) -> dict[str, Any]:
        stats = self.transport.decoder.stats.to_dict()
        return {**super().status(), "path": self.transport.path, **stats}


def hid_reader(name: str, sink: TapSink, path: str, fmt: Any = "auto", **kwargs: Any) -> HidReader:
    return HidReader(name, sink, HidTransport(path, KeystrokeDecoder(fmt)), **kwargs)


class WiegandRfidReader(RfidReader):
    """A Wiegand 26/34 reader on two GPIO lines (see ``drivers.rfid.wiegand``)."""

    kind = "wiegand"

    def __init__(
        self,
        name: str,
        sink: TapSink,
        d0: int | str,
        d1: int | str,
        *,
        gap_s: float = 0.025,
        pull_up: bool = True,
        pin_factory: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, sink, **kwargs)
        self.wiegand = WiegandReader(
            name, d0, d1, self._card, gap_s=gap_s, pull_up=pull_up, pin_factory=pin_factory
        )
        self.last_card: WiegandCard | None = None

    def _card(self, card: WiegandCard) -> None:
        self.last_card = card
        self.deliver([card.tag])

    def start(self) -> None:
        try:
            self.wiegand.start()
        except Exception as exc:  # a pin in use or no GPIO: a fault, not a crash
            log.error("rfid %s: cannot open the Wiegand lines: %s", self.name, exc)
            self.sink.fault(self.name, active=True, detail=f"open failed: {exc}")

    def stop(self) -> None:
        self.wiegand.stop()

    def status(self) -> dict[str, Any]:
        return {**super().status(), **self.wiegand.assembler.stats.to_dict()}


def make_reader(cfg: ReaderConfig, sink: TapSink) -> RfidReader:
    """The reader object for one ``[[patrol.readers]]`` table."""
    gap = cfg.presence_gap_s
    if isinstance(cfg, Rdm6300Config | Id12Config):
        parser = Rdm6300Parser() if isinstance(cfg, Rdm6300Config) else Id12Parser()
        return SerialAsciiReader(
            cfg.name,
            sink,
            cfg.port,
            parser,
            kind=cfg.type,
            baud=cfg.baud,
            presence_gap_s=gap,
            backoff_max_s=cfg.backoff_max_s,
        )
    if isinstance(cfg, Pn532Config):
        session = Pn532Session(
            timeout_s=cfg.timeout_s,
            retries=cfg.retries,
            passive_activation_retries=cfg.activation_retries,
        )
        return Pn532Reader(
            cfg.name,
            sink,
            cfg.port,
            baud=cfg.baud,
            poll_s=cfg.poll_s,
            session=session,
            presence_gap_s=gap,
            backoff_max_s=cfg.backoff_max_s,
        )
    if isinstance(cfg, WiegandReaderConfig):
        factory = None
        if cfg.mock:
            from gpiozero.pins.mock import MockFactory

            factory = MockFactory()
        return WiegandRfidReader(
            cfg.name,
            sink,
            cfg.d0,
            cfg.d1,
            gap_s=cfg.gap_ms / 1000,
            pull_up=cfg.pull_up,
            pin_factory=factory,
            presence_gap_s=gap,
        )
    if isinstance(cfg, HidReaderConfig):
        return hid_reader(
            cfg.name,
            sink,
            cfg.path,
            cfg.format,
            presence_gap_s=gap,
            backoff_max_s=cfg.backoff_max_s,
        )
    return RfidReader(cfg.name, sink, presence_gap_s=gap)
