"""Serial readers on real pyserial over pseudo-terminals: frames in, taps out; a reader that
is unplugged and plugged back (the by-id symlink vanishes and returns on a new tty)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.rfid.pn532 import (
    ACK,
    TFI_PN532,
    Pn532Session,
    encode_frame,
    no_target_response,
    target_response,
)
from drivers.rfid.rdm6300 import Rdm6300Parser, encode_ascii_frame
from drivers.rfid.reader import Pn532Reader, SerialAsciiReader
from drivers.rfid.tags import Tag, Tech

RDM_EXAMPLE = bytes.fromhex("02 36 32 45 33 30 38 36 43 45 44 30 38 03")
CARD = Tag(Tech.EM4100, "62E3086CED")


class RecordingSink:
    """A TapSink that records what the reader reported."""

    def __init__(self) -> None:
        self.taps: list[tuple[str, Tag]] = []
        self.faults: list[tuple[str, bool, str]] = []
        self._cond = threading.Condition()

    def tap(self, reader: str, tag: Tag, *, simulated: bool = False) -> None:
        with self._cond:
            self.taps.append((reader, tag))
            self._cond.notify_all()

    def fault(self, reader: str, *, active: bool, detail: str) -> None:
        with self._cond:
            self.faults.append((reader, active, detail))
            self._cond.notify_all()

    def wait(self, pred: Callable[[], bool], timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(pred, timeout)


class FakeTty:
    """A pty whose slave is reached through a stable symlink, like /dev/serial/by-id/…"""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self.slave = -1
        self.plug()

    def plug(self) -> None:
        self.master, self.slave = os.openpty()
        if self.link.is_symlink():
            self.link.unlink()
        self.link.symlink_to(os.ttyname(self.slave))

    def unplug(self) -> None:
        self.link.unlink()
        os.close(self.master)
        os.close(self.slave)
        self.master = self.slave = -1

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        if self.master >= 0:
            self.unplug()


@pytest.fixture
def tty(tmp_path: Path) -> Iterator[FakeTty]:
    t = FakeTty(tmp_path / "usb-rdm6300-if00-port0")
    yield t
    t.close()


def _rdm_reader(sink: RecordingSink, tty: FakeTty, **kw: float) -> SerialAsciiReader:
    return SerialAsciiReader(
        "gate", sink, str(tty.link), Rdm6300Parser(), backoff_min_s=0.05, backoff_max_s=0.2, **kw
    )


def _connected(reader: SerialAsciiReader, timeout: float = 5.0) -> None:
    # pyserial flushes the input buffer when it opens the port: write only after that.
    deadline = time.monotonic() + timeout
    while not reader.connected:
        assert time.monotonic() < deadline, "reader never opened the port"
        time.sleep(0.01)
    time.sleep(0.05)


def test_held_card_is_one_tap_per_presence(tty: FakeTty) -> None:
    sink = RecordingSink()
    reader = _rdm_reader(sink, tty, presence_gap_s=0.5)
    reader.start()
    _connected(reader)
    try:
        # Held for ~0.5 s: the module repeats the frame every ~100 ms, split across writes.
        for _ in range(5):
            tty.write(RDM_EXAMPLE[:5])
            time.sleep(0.01)
            tty.write(RDM_EXAMPLE[5:])
            time.sleep(0.09)
        assert sink.wait(lambda: len(sink.taps) == 1)
        time.sleep(0.2)
        assert sink.taps == [("gate", CARD)]
        time.sleep(0.7)  # card away longer than the gap
        tty.write(b"\x00\xff" + RDM_EXAMPLE)
        assert sink.wait(lambda: len(sink.taps) == 2)
        assert reader.status()["frames"] == 6
        assert reader.status()["repeats"] == 4
        assert sink.faults == []
    finally:
        reader.stop()


def test_bad_checksum_and_noise_never_tap(tty: FakeTty) -> None:
    sink = RecordingSink()
    reader = _rdm_reader(sink, tty)
    reader.start()
    _connected(reader)
    try:
        bad = encode_ascii_frame(bytes.fromhex("62E3086CED"), checksum=0x00)
        tty.write(b"noise\xfe" + bad + RDM_EXAMPLE[:9] + bad)
        deadline = time.monotonic() + 3
        while reader.parser.stats.bad_checksum < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reader.parser.stats.bad_checksum == 2
        assert reader.parser.stats.bad_frame == 1
        assert sink.taps == []
    finally:
        reader.stop()


def test_unplug_and_replug_reports_once_and_no_phantom(tty: FakeTty) -> None:
    sink = RecordingSink()
    reader = _rdm_reader(sink, tty, presence_gap_s=0.2)
    reader.start()
    _connected(reader)
    try:
        tty.write(RDM_EXAMPLE)
        assert sink.wait(lambda: len(sink.taps) == 1)
        tty.write(RDM_EXAMPLE[:7])  # half a frame, then the cable is pulled
        time.sleep(0.1)
        tty.unplug()
        assert sink.wait(lambda: len(sink.faults) == 1)
        time.sleep(0.6)  # several failed reopen attempts: still one fault
        assert [(r, a) for r, a, _ in sink.faults] == [("gate", True)]
        assert reader.status()["faulted"] is True
        tty.plug()
        assert sink.wait(lambda: len(sink.faults) == 2)
        assert sink.faults[1][:2] == ("gate", False)
        _connected(reader)
        tty.write(RDM_EXAMPLE[7:])  # the rest of the old frame: must not become a tap
        time.sleep(0.3)
        assert len(sink.taps) == 1
        tty.write(RDM_EXAMPLE)
        assert sink.wait(lambda: len(sink.taps) == 2)
        st = reader.status()
        assert st["losses"] == 1 and st["opens"] == 2 and st["connected"] is True
    finally:
        reader.stop()


def test_missing_at_start_is_a_fault_then_restore(tmp_path: Path) -> None:
    sink = RecordingSink()
    link = tmp_path / "ttyUSB-missing"
    reader = SerialAsciiReader(
        "late", sink, str(link), Rdm6300Parser(), backoff_min_s=0.05, backoff_max_s=0.1
    )
    reader.start()
    tty: FakeTty | None = None
    try:
        assert sink.wait(lambda: len(sink.faults) == 1)
        assert sink.faults[0][1] is True and "open failed" in sink.faults[0][2]
        tty = FakeTty(link)
        assert sink.wait(lambda: len(sink.faults) == 2)
        _connected(reader)
        tty.write(RDM_EXAMPLE)
        assert sink.wait(lambda: len(sink.taps) == 1)
    finally:
        reader.stop()
        if tty is not None:
            tty.close()


# --- PN532 over HSU -------------------------------------------------------------------------


class FakePn532:
    """Plays the chip on the master side: ACKs each command and answers it."""

    def __init__(self, tty: FakeTty, *, drop_first_firmware: bool = True) -> None:
        self.tty = tty
        self.card: bytes | None = None
        self.commands: list[int] = []
        self.drop_first_firmware = drop_first_firmware
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-pn532", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                buf += os.read(self.tty.master, 256)
            except OSError:
                return
            while (i := buf.find(b"\x00\x00\xff")) >= 0 and len(buf) >= i + 5:
                n = buf[i + 3]
                if n == 0:  # an ACK from the host (abort)
                    buf = buf[i + 6 :]
                    continue
                if len(buf) < i + 5 + n + 2:
                    break
                data = buf[i + 5 : i + 5 + n]
                buf = buf[i + 5 + n + 2 :]
                self._answer(data[1], data[2:])

    def _answer(self, cmd: int, params: bytes) -> None:
        self.commands.append(cmd)
        if cmd == 0x02 and self.drop_first_firmware:
            self.drop_first_firmware = False  # "the first firmware_version often fails"
            return
        out = ACK
        if cmd == 0x4A:
            out += target_response(self.card) if self.card else no_target_response()
        elif cmd == 0x02:
            out += encode_frame(bytes([TFI_PN532, 0x03, 0x32, 0x01, 0x06, 0x07]))
        else:
            out += encode_frame(bytes([TFI_PN532, cmd + 1]))
        self.tty.write(out)

    def stop(self) -> None:
        self._stop.set()


def test_pn532_setup_retry_poll_and_presence(tty: FakeTty) -> None:
    chip = FakePn532(tty)
    sink = RecordingSink()
    reader = Pn532Reader(
        "lobby",
        sink,
        str(tty.link),
        poll_s=0.05,
        session=Pn532Session(timeout_s=0.5),
        presence_gap_s=0.4,
        backoff_min_s=0.05,
    )
    reader.start()
    try:
        deadline = time.monotonic() + 5
        while 0x4A not in chip.commands and time.monotonic() < deadline:
            time.sleep(0.02)
        assert chip.commands[0] == 0x14  # SAMConfiguration first
        assert chip.commands.count(0x02) >= 2  # the dropped firmware request was retried
        assert reader.status()["firmware"] == "32010607"
        chip.card = bytes.fromhex("04A1B2C3D4E5F6")
        assert sink.wait(lambda: len(sink.taps) == 1)
        time.sleep(0.5)  # still on the reader: polled again and again, still one tap
        assert sink.taps == [("lobby", Tag(Tech.MIFARE, "04A1B2C3D4E5F6"))]
        assert reader.status()["repeats"] >= 2
        chip.card = None
        time.sleep(0.6)
        chip.card = bytes.fromhex("04A1B2C3D4E5F6")
        assert sink.wait(lambda: len(sink.taps) == 2)
        assert sink.faults == []
    finally:
        reader.stop()
        chip.stop()


def test_pn532_silent_chip_is_a_fault(tty: FakeTty) -> None:
    sink = RecordingSink()
    reader = Pn532Reader(
        "dead",
        sink,
        str(tty.link),
        session=Pn532Session(timeout_s=0.05, retries=1),
        backoff_min_s=0.05,
        backoff_max_s=0.1,
    )
    reader.start()
    try:
        assert sink.wait(lambda: len(sink.faults) == 1)
        assert "0x14" in sink.faults[0][2]
        time.sleep(0.3)
        assert len(sink.faults) == 1 and sink.taps == []
    finally:
        reader.stop()
