"""PN532 over UART/HSU (115200 8N1, 13.56 MHz ISO14443A / MIFARE): frame codec and poller.

The codec (``encode_frame``, ``Pn532FrameParser``, ``parse_passive_target``) is pure. The
``Pn532Session`` drives a port (anything with ``write``/``read``/``in_waiting``/
``reset_input_buffer``): wake-up, SAMConfiguration, bounded activation retries, then one
InListPassiveTarget per ``poll()``. Frames per NXP UM0701 §6.2.1; see docs/patrol.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

from agent.errors import DriverFault
from drivers.rfid.tags import Tag, Tech

BAUD = 115200
TFI_HOST = 0xD4
TFI_PN532 = 0xD5
START = b"\x00\xff"
ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"
# HSU wake-up: the PN532 sleeps until it sees 0x55 and then enough idle bytes.
WAKEUP = b"\x55\x55" + b"\x00" * 15

CMD_GET_FIRMWARE_VERSION = 0x02
CMD_SAM_CONFIGURATION = 0x14
CMD_RF_CONFIGURATION = 0x32
CMD_IN_LIST_PASSIVE_TARGET = 0x4A
APP_ERROR = 0x7F  # the syntax-error frame's single data byte


def encode_frame(data: bytes) -> bytes:
    """A normal information frame around ``data`` (TFI + PD0..PDn), at most 254 bytes."""
    n = len(data)
    if not 1 <= n <= 254:
        raise ValueError("a normal PN532 frame carries 1..254 bytes")
    return bytes([0x00, 0x00, 0xFF, n, (-n) & 0xFF, *data, (-sum(data)) & 0xFF, 0x00])


def command_frame(cmd: int, params: bytes = b"") -> bytes:
    return encode_frame(bytes([TFI_HOST, cmd]) + params)


def sam_configuration() -> bytes:
    """Normal mode, timeout 20 × 50 ms, use IRQ: ``D4 14 01 14 01``."""
    return command_frame(CMD_SAM_CONFIGURATION, b"\x01\x14\x01")


def rf_retries(passive_activation: int) -> bytes:
    """RFConfiguration item 5: MxRtyATR FF, MxRtyPSL 01, MxRtyPassiveActivation as given.

    The chip's default (0xFF) retries forever, so InListPassiveTarget would block until a
    card arrives; a small count makes each poll answer "no target" in bounded time."""
    return command_frame(CMD_RF_CONFIGURATION, bytes([0x05, 0xFF, 0x01, passive_activation]))


def in_list_passive_target() -> bytes:
    """One target, 106 kbps type A: ``D4 4A 01 00``."""
    return command_frame(CMD_IN_LIST_PASSIVE_TARGET, b"\x01\x00")


@dataclass(frozen=True, slots=True)
class Ack:
    pass


@dataclass(frozen=True, slots=True)
class Nack:
    pass


@dataclass(frozen=True, slots=True)
class Response:
    """A checksummed information frame; ``data`` is TFI + PD0..PDn."""

    data: bytes

    @property
    def is_error(self) -> bool:
        return self.data == bytes([APP_ERROR])


Frame = Ack | Nack | Response


@dataclass
class Pn532Stats:
    frames: int = 0
    bad_checksum: int = 0  # LCS or DCS wrong
    noise_bytes: int = 0
    timeouts: int = 0
    errors: int = 0  # syntax-error frames, NACKs, unexpected responses

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class Pn532FrameParser:
    """Stream parser: feed bytes, get whole validated frames; resyncs on the ``00 FF`` start."""

    def __init__(self, stats: Pn532Stats | None = None) -> None:
        self.stats = stats or Pn532Stats()
        self._buf = bytearray()

    def reset(self) -> None:
        self._buf.clear()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        buf = self._buf
        while True:
            start = buf.find(START)
            if start < 0:
                # Keep a trailing 0x00: it may be the first half of the next start code.
                keep = 1 if buf[-1:] == b"\x00" else 0
                self.stats.noise_bytes += _noise(buf[: len(buf) - keep])
                del buf[: len(buf) - keep]
                return out
            self.stats.noise_bytes += _noise(buf[:start])
            del buf[:start]
            if len(buf) < 4:
                return out
            length, lcs = buf[2], buf[3]
            if length == 0x00 and lcs == 0xFF:
                out.append(Ack())
                del buf[:4]
                continue
            if length == 0xFF and lcs == 0x00:
                out.append(Nack())
                del buf[:4]
                continue
            if length == 0xFF and lcs == 0xFF:
                # Extended frame: 00 FF FF FF LENM LENL LCS TFI ... DCS
                if len(buf) < 7:
                    return out
                length = (buf[4] << 8) | buf[5]
                if (buf[4] + buf[5] + buf[6]) & 0xFF or length == 0:
                    self._reject(buf)
                    continue
                head = 7
            else:
                if (length + lcs) & 0xFF or length == 0:
                    self._reject(buf)
                    continue
                head = 4
            if len(buf) < head + length + 1:
                return out
            body = bytes(buf[head : head + length])
            dcs = buf[head + length]
            if (sum(body) + dcs) & 0xFF:
                self._reject(buf)
                continue
            del buf[: head + length + 1]
            if body[0] == TFI_PN532 or body == bytes([APP_ERROR]):
                self.stats.frames += 1
                out.append(Response(body))
            else:
                # Our own command echoed back, or a frame from another host: not an answer.
                self.stats.errors += 1

    def _reject(self, buf: bytearray) -> None:
        self.stats.bad_checksum += 1
        del buf[:2]  # skip this start code and look for the next one


def _noise(chunk: bytes | bytearray) -> int:
    # Preamble/postamble zeros are part of the protocol, not noise.
    return len(chunk) - chunk.count(0)


def parse_passive_target(data: bytes) -> Tag | None:
    """``D5 4B NbTg Tg SENS_RES(2) SEL_RES NFCIDLength NFCID1…`` → the UID, or None.

    None means no target. A malformed answer raises ``ValueError``."""
    if len(data) < 3 or data[0] != TFI_PN532 or data[1] != CMD_IN_LIST_PASSIVE_TARGET + 1:
        raise ValueError("not an InListPassiveTarget response")
    count = data[2]
    if count == 0:
        return None
    if count != 1 or len(data) < 8:
        raise ValueError(f"expected one target, got {count} in {len(data)} bytes")
    uid_len = data[7]
    uid = data[8 : 8 + uid_len]
    if uid_len not in (4, 7, 10) or len(uid) != uid_len:
        raise ValueError(f"bad NFCID1 length {uid_len}")
    return Tag(Tech.MIFARE, uid.hex().upper())


def target_response(uid: bytes, sens_res: bytes = b"\x00\x04", sel_res: int = 0x08) -> bytes:
    """The response frame a PN532 sends for one type A target (tests, simulators, bench)."""
    data = bytes([TFI_PN532, 0x4B, 1, 1]) + sens_res + bytes([sel_res, len(uid)]) + uid
    return encode_frame(data)


def no_target_response() -> bytes:
    return encode_frame(bytes([TFI_PN532, 0x4B, 0]))


class Port(Protocol):
    """The part of ``serial.Serial`` the session uses."""

    @property
    def in_waiting(self) -> int: ...

    def write(self, data: bytes, /) -> int | None: ...

    def read(self, size: int = 1, /) -> bytes: ...

    def reset_input_buffer(self) -> None: ...


class Pn532Session:
    """One PN532 on one port: ``setup()`` once per open, then ``poll()`` repeatedly.

    Every command waits for the ACK and then its response, each within ``timeout_s``; a
    missing answer is retried ``retries`` times (aborting the pending command with an ACK
    frame first). When all tries fail, ``DriverFault`` tells the transport to reopen.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 0.5,
        retries: int = 2,
        passive_activation_retries: int = 0x10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self.retries = retries
        self.passive_activation_retries = passive_activation_retries
        self.stats = Pn532Stats()
        self.parser = Pn532FrameParser(self.stats)
        self.firmware: bytes | None = None
        self._clock = clock

    def setup(self, port: Port) -> None:
        self.parser.reset()
        port.write(WAKEUP)
        self.command(port, sam_configuration(), CMD_SAM_CONFIGURATION)
        self.command(port, rf_retries(self.passive_activation_retries), CMD_RF_CONFIGURATION)
        fw = self.command(port, command_frame(CMD_GET_FIRMWARE_VERSION), CMD_GET_FIRMWARE_VERSION)
        self.firmware = fw[2:]

    def poll(self, port: Port) -> list[Tag]:
        data = self.command(port, in_list_passive_target(), CMD_IN_LIST_PASSIVE_TARGET)
        try:
            tag = parse_passive_target(data)
        except ValueError:
            self.stats.errors += 1
            return []
        return [tag] if tag is not None else []

    def command(self, port: Port, frame: bytes, cmd: int) -> bytes:
        """Send one command frame; return the matching response's data (TFI + PD)."""
        last = "no answer"
        for attempt in range(self.retries + 1):
            if attempt:
                port.write(ACK)  # abort whatever the chip is still doing
            port.reset_input_buffer()
            self.parser.reset()
            port.write(frame)
            try:
                return self._await(port, cmd)
            except TimeoutError as exc:
                self.stats.timeouts += 1
                last = str(exc)
            except _Rejected as exc:
                self.stats.errors += 1
                last = str(exc)
        tries = self.retries + 1
        raise DriverFault(f"pn532: command 0x{cmd:02X} failed after {tries} tries: {last}")

    def _await(self, port: Port, cmd: int) -> bytes:
        deadline = self._clock() + self.timeout_s
        acked = False
        while True:
            if self._clock() >= deadline:
                raise TimeoutError("no ACK" if not acked else "no response")
            chunk = port.read(max(1, port.in_waiting))
            for frame in self.parser.feed(chunk):
                if isinstance(frame, Ack):
                    acked = True
                elif isinstance(frame, Nack):
                    raise _Rejected("NACK")
                elif frame.is_error:
                    raise _Rejected("syntax error frame")
                elif len(frame.data) >= 2 and frame.data[1] == cmd + 1:
                    return frame.data
                else:
                    self.stats.errors += 1  # a stale answer to an earlier command


class _Rejected(Exception):
    pass
