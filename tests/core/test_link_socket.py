"""The link's coalescing socket: fewer system calls, same bytes, same order."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import load_settings
from agent.link import Link, _CoalescingSocket
from agent.outbox import Outbox
from tests.fixtures.agent import base_config
from tests.fixtures.broker import Mosquitto
from tests.fixtures.subscriber import Subscriber


@pytest.fixture
def pair() -> Iterator[tuple[_CoalescingSocket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield _CoalescingSocket(a), b
    a.close()
    b.close()


def test_reads_are_served_from_one_chunk(pair: tuple[_CoalescingSocket, socket.socket]) -> None:
    wrapped, peer = pair
    pubacks = b"".join(bytes([0x40, 0x02, 0x00, mid]) for mid in range(1, 11))
    peer.sendall(pubacks)
    assert wrapped.recv(1) == b"\x40"
    assert wrapped.pending() == len(pubacks) - 1
    got = bytearray(b"\x40")
    while wrapped.pending():
        got += wrapped.recv(3)
    assert bytes(got) == pubacks
    with pytest.raises(BlockingIOError):
        wrapped.recv(1)  # nothing buffered, nothing in the kernel


def test_peer_close_reads_as_empty(pair: tuple[_CoalescingSocket, socket.socket]) -> None:
    wrapped, peer = pair
    peer.sendall(b"\x40\x02\x00\x01")
    peer.shutdown(socket.SHUT_WR)
    assert wrapped.recv(4) == b"\x40\x02\x00\x01"
    assert wrapped.recv(1) == b""


def test_held_sends_leave_in_order_on_flush(
    pair: tuple[_CoalescingSocket, socket.socket],
) -> None:
    wrapped, peer = pair
    wrapped.hold()
    for i in range(100):
        assert wrapped.send(b"%03d;" % i) == 4
    with pytest.raises(BlockingIOError):
        peer.recv(4096)  # nothing left the process while held
    wrapped.flush()
    assert wrapped.unsent() == 0
    assert peer.recv(4096) == b"".join(b"%03d;" % i for i in range(100))
    # Not held: a send goes straight out.
    wrapped.send(b"now")
    assert peer.recv(16) == b"now"


def test_what_the_kernel_refuses_waits_and_keeps_order(
    pair: tuple[_CoalescingSocket, socket.socket],
) -> None:
    wrapped, peer = pair
    block = bytes(range(256)) * 64  # 16 KiB
    wrapped.hold()
    for _ in range(64):  # 1 MiB: more than a socketpair buffers
        wrapped.send(block)
    wrapped.flush()
    assert wrapped.unsent() > 0
    wrapped.send(b"tail")  # queued behind what is still unsent
    received = bytearray()
    while wrapped.unsent():
        try:
            received += peer.recv(1 << 20)
        except BlockingIOError:
            pass
        wrapped.flush()
    while len(received) < 64 * len(block) + 4:
        received += peer.recv(1 << 20)
    assert bytes(received) == block * 64 + b"tail"


def test_flush_on_a_dead_connection_raises(
    pair: tuple[_CoalescingSocket, socket.socket],
) -> None:
    wrapped, peer = pair
    peer.close()
    wrapped.hold()
    wrapped.send(b"x" * 10)
    with pytest.raises(OSError):
        for _ in range(3):  # the first send may still be accepted by the kernel
            wrapped.send(b"x" * 10)
            wrapped.flush()


def test_link_uses_it_and_delivers_in_order(tmp_path: Path, mosquitto: Mosquitto) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(base_config(tmp_path / "state", mosquitto.url))
    settings = load_settings(cfg)
    outbox = Outbox(settings.outbox_path, settings.device.id)
    for f in [outbox.submit("device.sample", {"i": i}) for i in range(3000)]:
        f.result()
    sub = Subscriber(mosquitto.host, mosquitto.port, f"{settings.topic_base}/event/#",
                     client_id=f"sub-{uuid.uuid4().hex[:8]}")
    link = Link(settings, outbox, boot_id="b", boot_count=1)
    link.start()
    try:
        assert sub.wait_for(lambda s: len(s.payloads()) >= 3000, 30)
        client = link._client
        assert client is not None
        assert isinstance(client.socket(), _CoalescingSocket)
    finally:
        link.stop(flush_timeout=0)
        outbox.close()
        sub.close()
    assert [p["data"]["i"] for p in sub.payloads()] == list(range(3000))
