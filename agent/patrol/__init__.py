"""Electronic patrol (guard tour): readers at checkpoints, the centre's roster and routes,
and on-box evaluation into ``patrol.tap`` / ``patrol.missed``. See docs/patrol.md.

``build(ctx)`` returns the ``PatrolService`` when ``[patrol]`` lists readers, and registers
the ``patrol-config`` command and the ``tap`` simulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.runtime import AgentContext, Component


def build(ctx: AgentContext) -> list[Component]:
    """The patrol component for the daemon, or nothing when no reader is configured."""
    # Imported here so that loading the configuration never imports pyserial or gpiozero.
    from agent.patrol.service import PatrolService

    cfg = ctx.settings.patrol
    if not cfg.enabled:
        return []
    service = PatrolService(cfg, ctx.sink, ctx.state_dir)
    ctx.commands.register(
        "patrol-config",
        service.configure,
        description='replace the patrol plan: {"roster": [...], "checkpoints": {...}, '
        '"routes": [...]}',
    )
    ctx.simulators.register(
        "tap",
        service.simulate_tap,
        description="tap <reader> <tag>: present a card to a reader (em4100:…, uid:…, w26:…)",
    )
    return [service]
