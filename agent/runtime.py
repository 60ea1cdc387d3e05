"""What a component of the daemon is given and what it must offer.

The daemon builds an ``AgentContext`` once and hands it to every component builder; a
component reports through ``ctx.sink`` and never sees the MQTT link.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agent.commands import CommandRegistry
from agent.events import Event, EventSink

if TYPE_CHECKING:
    from agent.config import Settings

log = logging.getLogger(__name__)


class Component(Protocol):
    """A long-lived part of the daemon (a driver, the vision worker, the health reporter)."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def status(self) -> dict[str, Any]: ...


EventListener = Callable[[Event], None]
LinkListener = Callable[[bool], None]


class LocalBus:
    """In-process fan-out of persisted events and link changes to other components.

    Listeners run on the bus's own thread, never on the producer's, so a slow listener
    (vision attaching snapshots to an alarm) cannot delay an alarm's ``put()``.
    """

    def __init__(self) -> None:
        self._event_listeners: list[tuple[str, EventListener]] = []
        self._link_listeners: list[LinkListener] = []
        self._queue: queue.SimpleQueue[tuple[str, Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.link_up = False

    def on_event(self, listener: EventListener, prefix: str = "") -> None:
        """Call ``listener`` for every persisted event whose type starts with ``prefix``."""
        self._event_listeners.append((prefix, listener))

    def on_link(self, listener: LinkListener) -> None:
        """Call ``listener(up)`` whenever the broker link goes up or down."""
        self._link_listeners.append(listener)

    def publish_event(self, event: Event) -> None:
        if self._event_listeners:
            self._queue.put(("event", event))

    def publish_link(self, up: bool) -> None:
        self.link_up = up
        self._queue.put(("link", up))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="local-bus", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            kind, value = item
            try:
                if kind == "event":
                    for prefix, fn in list(self._event_listeners):
                        if value.type.startswith(prefix):
                            fn(value)
                else:
                    for link_fn in list(self._link_listeners):
                        link_fn(value)
            except Exception:
                log.exception("local bus listener failed on %s", kind)


@dataclass
class AgentContext:
    """Everything a component builder may use."""

    settings: Settings
    sink: EventSink
    commands: CommandRegistry = field(default_factory=lambda: CommandRegistry("command"))
    simulators: CommandRegistry = field(default_factory=lambda: CommandRegistry("simulator"))
    bus: LocalBus = field(default_factory=LocalBus)

    @property
    def state_dir(self) -> Path:
        return self.settings.device.state_dir


ComponentBuilder = Callable[[AgentContext], list[Component]]
