"""Licence-plate reading on the device: localisation, OCR, format rules, voting, watchlist.

Importing this package is cheap (the trainer imports ``agent.plates.formats`` without the
daemon's dependencies); ``build`` imports the component lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.runtime import AgentContext, Component


def build(ctx: AgentContext) -> list[Component]:
    """Component builder for the daemon: the plate reader and its watchlist command."""
    from agent.plates.component import build as _build

    return _build(ctx)
