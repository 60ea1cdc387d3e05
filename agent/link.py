"""The MQTT link: one thread that owns the broker connection and publishes the outbox.

It runs its own select loop over paho's socket (paho's external-loop API), so connecting,
reconnecting with jittered backoff, publishing and reading acknowledgements all happen on
the ``mqtt-link`` thread; other threads only wake it through a pipe.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import select
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers, writeUTF

from agent import __version__
from agent.config import Settings
from agent.events import Event, Priority
from agent.outbox import Outbox, Pending

log = logging.getLogger(__name__)

# Slots beyond the backlog window that only alarms may use, so a live alarm is sent at
# once even while the backlog fills the window.
ALARM_RESERVE = 16
_FETCH_BATCH = 512

CommandHandler = Callable[[str, bytes, "Reply"], None]
_RECV_CHUNK = 65536


class _CoalescingSocket:
    """A plain TCP socket that reads in large chunks and, while held, writes in one go.

    paho reads each packet in three ``recv`` calls (command byte, length, body) and sends
    each packet with its own ``send``: during a backlog drain the link thread spent about
    40 % of its time in those system calls (py-spy on bench/drain.py). Reads here fill a
    64 KiB buffer that later reads are served from; ``pending()`` tells paho's ``loop()``
    and the link's own select loop that bytes are waiting there. Between ``hold()`` and
    ``flush()`` sends are appended to one buffer and leave in a single ``send``.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._rbuf = bytearray()
        self._wbuf = bytearray()
        self._holding = False

    def recv(self, bufsize: int) -> bytes:
        if not self._rbuf:
            data = self._sock.recv(max(bufsize, _RECV_CHUNK))
            if len(data) <= bufsize:
                return data  # also the b"" that means the peer closed
            self._rbuf += data
        out = bytes(self._rbuf[:bufsize])
        del self._rbuf[:bufsize]
        return out

    def pending(self) -> int:
        return len(self._rbuf)

    def send(self, data: bytes | bytearray) -> int:
        if self._holding or self._wbuf:
            self._wbuf += data
            if not self._holding:
                self.flush()
            return len(data)
        return int(self._sock.send(data))

    def hold(self) -> None:
        self._holding = True

    def unsent(self) -> int:
        return len(self._wbuf)

    def flush(self) -> None:
        """Send what was held; what the kernel does not take now waits for writability.

        Raises OSError when the connection is gone (BlockingIOError is not raised).
        """
        self._holding = False
        while self._wbuf:
            try:
                sent = self._sock.send(self._wbuf)
            except BlockingIOError:
                return
            del self._wbuf[:sent]

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def close(self) -> None:
        self._rbuf.clear()
        self._wbuf.clear()
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Client(mqtt.Client):
    """paho's client over a `_CoalescingSocket` on plain TCP; TLS and WebSocket as paho has them."""

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        if self._ssl or self._transport == "websockets":
            return sock
        return _CoalescingSocket(sock)


class _EventIdProperties(Properties):
    """PUBLISH properties carrying only the ``event_id`` user property, serialised once.

    paho's ``Properties`` rebuilds its name tables in ``__init__`` and rescans them on every
    attribute set and ``pack()``: at backlog rates that costs more than the socket I/O
    (bench/drain.py). Instances are copied from one template and pack to precomputed bytes;
    they remain ordinary ``Properties`` for anything that inspects them.
    """

    _packed: bytes

    @classmethod
    def for_event(cls, event_id: str) -> _EventIdProperties:
        props = cls.__new__(cls)
        props.__dict__.update(_EVENT_ID_TEMPLATE.__dict__)
        body = b"\x26" + writeUTF("event_id") + writeUTF(event_id)  # 0x26: User Property
        props.__dict__["UserProperty"] = [("event_id", event_id)]
        props.__dict__["_packed"] = VariableByteIntegers.encode(len(body)) + body
        return props

    def pack(self) -> bytes:
        return self._packed


_EVENT_ID_TEMPLATE = Properties(PacketTypes.PUBLISH)


@dataclass(frozen=True, slots=True)
class Reply:
    """Where and how to answer one inbound command."""

    topic: str
    correlation: bytes | None


@dataclass(frozen=True, slots=True)
class Broker:
    url: str
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Broker:
        parts = urlsplit(url)
        tls = parts.scheme in ("mqtts", "ssl")
        return cls(url, parts.hostname or "", parts.port or (8883 if tls else 1883), tls)


def backoff_delay(attempt: int, low: float, high: float, rng: random.Random) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, so a fleet that
    lost its broker together does not come back in lockstep."""
    base = min(high, low * (2 ** min(attempt, 30)))
    return base / 2 + rng.uniform(0, base / 2)


class Topics:
    """The topic tree of one box: ``<root>/<site>/<device>/…``."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.state = f"{base}/state"
        self.health = f"{base}/health"
        self.cmd_filter = f"{base}/cmd/+"
        self.config_filter = f"{base}/config/+"
        self._cache: dict[str, str] = {}

    def for_event(self, event_type: str) -> str:
        topic = self._cache.get(event_type)
        if topic is None:
            if event_type == "device.health":
                topic = self.health
            else:
                topic = f"{self.base}/event/{event_type.replace('.', '/')}"
            self._cache[event_type] = topic
        return topic

    def reply(self, name: str) -> str:
        return f"{self.base}/reply/{name}"


class Link:
    """Delivers the outbox to the broker and hands inbound commands to a handler."""

    def __init__(
        self,
        settings: Settings,
        outbox: Outbox,
        *,
        boot_id: str,
        boot_count: int,
        on_command: CommandHandler | None = None,
        on_link_change: Callable[[bool], None] | None = None,
        on_published: Callable[[Pending], None] | None = None,
    ) -> None:
        self.settings = settings
        self.cfg = settings.mqtt
        self.outbox = outbox
        self.topics = Topics(settings.topic_base)
        self.boot_id = boot_id
        self.boot_count = boot_count
        self.brokers = [Broker.parse(u) for u in self.cfg.urls]
        self.v5 = self.cfg.protocol == "5"
        self._on_command = on_command
        self._on_link_change = on_link_change
        self._on_published = on_published
        self._rng = random.Random()

        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._woken = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

        self._client: mqtt.Client | None = None
        self._connected = False
        self._broker_index = 0
        self._bdseq = 0
        self._dirty = {p: True for p in Priority}
        self._buffers: dict[Priority, deque[Pending]] = {p: deque() for p in Priority}
        self._cursor = {p: 0 for p in Priority}
        self._inflight: dict[int, Pending] = {}
        self._backlog_inflight = 0
        self._acked: list[int] = []
        self._direct: queue.SimpleQueue[tuple[str, bytes, bool, Properties | None]] = (
            queue.SimpleQueue()
        )
        self.stats: dict[str, Any] = {
            "connects": 0,
            "disconnects": 0,
            "published": 0,
            "acked": 0,
            "rejected_by_broker": 0,
            "last_error": None,
            "broker": None,
            "since": None,
        }

    # -- other threads ---------------------------------------------------------------
    def start(self) -> None:
        self.outbox.add_listener(self._on_stored)
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self._thread.start()

    def stop(self, flush_timeout: float = 5.0) -> None:
        """Publish what can be published within ``flush_timeout``, say offline, disconnect."""
        deadline = time.monotonic() + flush_timeout
        while time.monotonic() < deadline and self._connected and (
            self._inflight or self.outbox.depth() > 0
        ):
            time.sleep(0.05)
        self._stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout=flush_timeout + 5)
        os.close(self._wake_r)
        os.close(self._wake_w)

    @property
    def connected(self) -> bool:
        return self._connected

    def wake(self) -> None:
        if not self._woken:
            self._woken = True
            try:
                os.write(self._wake_w, b"!")
            except (BlockingIOError, OSError):
                pass

    def send(self, topic: str, payload: bytes, *, retain: bool = False,
             correlation: bytes | None = None) -> None:
        """Queue a message outside the outbox (command replies): QoS 1, sent next."""
        props = None
        if self.v5 and correlation is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = correlation
        self._direct.put((topic, payload, retain, props))
        self.wake()

    def status(self) -> dict[str, Any]:
        out = dict(self.stats)
        out["connected"] = self._connected
        out["inflight"] = len(self._inflight)
        out["protocol"] = self.cfg.protocol
        return out

    def _on_stored(self, event: Event) -> None:
        # Runs on the outbox writer thread after each commit.
        self._dirty[event.priority] = True
        self.wake()

    # -- the link thread ---------------------------------------------------------------
    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            broker = self.brokers[self._broker_index % len(self.brokers)]
            try:
                if self._session(broker):
                    attempt = 0
                    continue
            except OSError as exc:  # refused, unreachable, TLS handshake failed
                log.warning("cannot connect to %s: %s", broker.url, exc)
                self.stats["last_error"] = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # nothing may kill the link thread
                log.exception("link session with %s failed", broker.url)
                self.stats["last_error"] = f"{type(exc).__name__}: {exc}"
            self._drop()
            if self._stop.is_set():
                break
            self._broker_index += 1  # fail over to the next URL
            delay = backoff_delay(attempt, self.cfg.backoff_min_s, self.cfg.backoff_max_s,
                                  self._rng)
            attempt += 1
            log.info("reconnecting in %.2fs (attempt %d)", delay, attempt)
            self._stop.wait(delay)
        self._shutdown()

    def _new_client(self) -> mqtt.Client:
        self._bdseq += 1
        client_id = self.cfg.client_id or self.settings.device.id
        proto = mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311
        kwargs: dict[str, Any] = {"client_id": client_id, "protocol": proto}
        if not self.v5:
            kwargs["clean_session"] = True
        client = _Client(CallbackAPIVersion.VERSION2, **kwargs)
        client.suppress_exceptions = True
        client.max_inflight_messages_set(self.cfg.window + ALARM_RESERVE)
        client.max_queued_messages_set(0)
        client.connect_timeout = self.cfg.connect_timeout_s
        if self.cfg.username:
            client.username_pw_set(self.cfg.username, self.cfg.password)
        will = json.dumps(self._state_payload("offline")).encode()
        client.will_set(self.topics.state, will, qos=1, retain=True)
        client.on_connect = self._cb_connect
        client.on_disconnect = self._cb_disconnect
        client.on_publish = self._cb_publish
        client.on_message = self._cb_message
        return client

    def _configure_tls(self, client: mqtt.Client) -> None:
        tls = self.cfg.tls
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(not tls.check_hostname)

    def _session(self, broker: Broker) -> bool:
        """One connection from connect to loss. True if it got as far as CONNACK."""
        client = self._new_client()
        if broker.tls:
            self._configure_tls(client)
        self._client = client
        log.info("connecting to %s", broker.url)
        props = None
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0
        client.connect(broker.host, broker.port, keepalive=self.cfg.keepalive_s,
                       clean_start=True if self.v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                       properties=props)
        connect_deadline = time.monotonic() + self.cfg.connect_timeout_s
        self._session_ok = False
        self._lost = False
        while not self._stop.is_set() and not self._lost:
            if not self._connected and time.monotonic() > connect_deadline:
                self.stats["last_error"] = "no CONNACK in time"
                break
            sock = client.socket()
            if sock is None:
                break
            held = sock if isinstance(sock, _CoalescingSocket) else None
            if self._connected:
                # While an alarm is being committed, stand aside: the backlog must not hold
                # the GIL the outbox writer needs. The alarm goes out first right after.
                self.outbox.wait_alarm_idle(0.05)
                if held is not None:
                    held.hold()
                try:
                    self._pump()
                finally:
                    if held is not None:
                        held.flush()  # OSError: the connection is gone; _run handles it
            unsent = held is not None and held.unsent() > 0
            buffered = held is not None and held.pending() > 0
            rlist: list[Any] = [sock, self._wake_r]
            wlist = [sock] if unsent or client.want_write() else []
            readable, writable, _ = select.select(rlist, wlist, [], 0.0 if buffered else 1.0)
            if buffered and sock not in readable:
                readable.append(sock)
            if self._wake_r in readable:
                self._woken = False
                try:
                    os.read(self._wake_r, 4096)
                except BlockingIOError:
                    pass
            if sock in readable and client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                break
            if sock in writable:
                if held is not None and unsent:
                    held.flush()
                if client.loop_write() != mqtt.MQTT_ERR_SUCCESS:
                    break
            if client.loop_misc() != mqtt.MQTT_ERR_SUCCESS:
                break
        return self._session_ok

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                if client.socket() is not None:
                    client.disconnect()
            except Exception:
                log.debug("disconnect failed", exc_info=True)
        if self._connected:
            self._connected = False
            self.stats["disconnects"] += 1
            self._notify_link(False)
        self._reset_inflight()

    def _reset_inflight(self) -> None:
        """Forget what was in flight: it is still in the outbox and is sent again, in order."""
        self._flush_acks()
        self.outbox.sync()  # the acked rows are gone before we re-read
        self._inflight.clear()
        self._backlog_inflight = 0
        for p in Priority:
            self._buffers[p].clear()
            self._cursor[p] = 0
            self._dirty[p] = True

    def _shutdown(self) -> None:
        client = self._client
        if client is not None and self._connected:
            try:
                info = client.publish(self.topics.state,
                                      json.dumps(self._state_payload("offline")).encode(),
                                      qos=1, retain=True)
                deadline = time.monotonic() + 2.0
                while not info.is_published() and time.monotonic() < deadline:
                    client.loop(timeout=0.1)
                client.disconnect()
                client.loop(timeout=0.1)
            except Exception:
                log.debug("clean shutdown publish failed", exc_info=True)
        self._flush_acks()
        self._client = None
        if self._connected:
            self._connected = False
            self._notify_link(False)

    # -- publishing ------------------------------------------------------------------
    def _pump(self) -> None:
        client = self._client
        assert client is not None
        while True:
            try:
                topic, payload, retain, props = self._direct.get_nowait()
            except queue.Empty:
                break
            client.publish(topic, payload, qos=1, retain=retain, properties=props)
        window = self.cfg.window
        for cls in Priority:
            buf = self._buffers[cls]
            limit = window + ALARM_RESERVE if cls is Priority.ALARM else window
            while len(self._inflight) < limit:
                if not buf and not self._refill(cls):
                    break
                if cls is not Priority.ALARM and self._backlog_inflight >= window:
                    break
                if not self._publish(client, buf.popleft()):
                    return  # the connection is gone; the session loop notices and ends
        # Batch deletes while the backlog drains; flush at once when the link goes idle.
        if len(self._acked) >= 256 or (self._acked and not self._inflight):
            self._flush_acks()

    def _refill(self, cls: Priority) -> bool:
        if not self._dirty[cls]:
            return False
        rows = self.outbox.fetch(cls, self._cursor[cls], _FETCH_BATCH)
        if not rows:
            self._dirty[cls] = False
            return False
        self._cursor[cls] = rows[-1].rowid
        self._buffers[cls].extend(rows)
        return True

    def _publish(self, client: mqtt.Client, item: Pending) -> bool:
        props = None
        if self.v5:
            props = _EventIdProperties.for_event(item.id)
        info = client.publish(self.topics.for_event(item.type), item.payload, qos=1,
                              properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            # Not sent; put it back so order holds and it goes out after reconnect.
            self._buffers[item.cls].appendleft(item)
            self._lost = True
            return False
        self._inflight[info.mid] = item
        if item.cls is not Priority.ALARM:
            self._backlog_inflight += 1
        self.stats["published"] += 1
        return True

    def _flush_acks(self) -> None:
        if self._acked:
            self.outbox.ack(self._acked)
            self._acked = []

    def _state_payload(self, state: str) -> dict[str, Any]:
        return {
            "state": state,
            "device_id": self.settings.device.id,
            "boot_id": self.boot_id,
            "boot_count": self.boot_count,
            "bdseq": self._bdseq,
            "version": __version__,
        }

    def _notify_link(self, up: bool) -> None:
        if self._on_link_change is not None:
            try:
                self._on_link_change(up)
            except Exception:
                log.exception("link listener failed")

    # -- paho callbacks (on the link thread, inside loop_read/loop_misc) ------------------
    def _cb_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self.stats["last_error"] = f"CONNACK refused: {reason}"
            log.warning("broker refused connection: %s", reason)
            self._lost = True
            return
        self._connected = True
        self._session_ok = True
        self.stats["connects"] += 1
        broker = self.brokers[self._broker_index % len(self.brokers)]
        self.stats["broker"] = broker.url
        self.stats["since"] = time.time()
        log.info("connected to %s (bdseq %d)", broker.url, self._bdseq)
        birth = dict(self._state_payload("online"))
        birth["site"] = self.settings.device.site
        client.publish(self.topics.state, json.dumps(birth).encode(), qos=1, retain=True)
        client.subscribe([(self.topics.cmd_filter, 1), (self.topics.config_filter, 1)])
        self._notify_link(True)

    def _cb_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        log.warning("disconnected from broker: %s", reason)
        self.stats["last_error"] = f"disconnected: {reason}"
        self._lost = True

    def _cb_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        item = self._inflight.pop(mid, None)
        if item is None:
            return  # a direct message (birth, reply)
        if item.cls is not Priority.ALARM:
            self._backlog_inflight -= 1
        if reason is not None and getattr(reason, "is_failure", False):
            # The broker refused this message (e.g. not authorised): keep it for a retry.
            self.stats["rejected_by_broker"] += 1
            self.stats["last_error"] = f"PUBACK {reason} for {item.type}"
            return
        self.stats["acked"] += 1
        self._acked.append(item.rowid)
        if self._on_published is not None:
            self._on_published(item)

    def _cb_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._on_command is None:
            return
        levels = msg.topic.rsplit("/", 2)
        if len(levels) != 3:
            return
        _, kind, name = levels
        if kind == "config":
            if msg.payload:
                self._on_command(name, bytes(msg.payload), Reply("", None))
            return
        props = getattr(msg, "properties", None)
        reply_topic = getattr(props, "ResponseTopic", None) if props else None
        correlation = getattr(props, "CorrelationData", None) if props else None
        if not reply_topic:
            # MQTT 3.1.1 fallback: the request may name them in its JSON payload.
            reply_topic, correlation = _fallback_reply(bytes(msg.payload),
                                                       self.topics.reply(name))
        self._on_command(name, bytes(msg.payload), Reply(reply_topic, correlation))


def _fallback_reply(payload: bytes, default_topic: str) -> tuple[str, bytes | None]:
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return default_topic, None
    if not isinstance(obj, dict):
        return default_topic, None
    topic = obj.get("reply_to")
    corr = obj.get("correlation_id")
    return (
        topic if isinstance(topic, str) and topic else default_topic,
        str(corr).encode() if corr is not None else None,
    )
