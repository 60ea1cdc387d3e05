"""GPIO side of the box: panic buttons, tamper loop, mains input, status LED and buzzer.

``build(ctx)`` returns the ``AlarmPanel`` component when ``[gpio]`` configures anything, and
registers the ``alarm-ack`` command and the ``press`` simulator. See docs/gpio.md for wiring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.runtime import AgentContext, Component


def build(ctx: AgentContext) -> list[Component]:
    """The GPIO component for the daemon, or nothing when no pin is configured."""
    # Imported here so that loading the configuration never imports gpiozero.
    from drivers.gpio.panel import AlarmPanel

    cfg = ctx.settings.gpio
    if cfg.empty:
        return []
    panel = AlarmPanel(cfg, ctx.sink, link_up=ctx.bus.link_up, state_dir=ctx.state_dir)
    ctx.commands.register(
        "alarm-ack",
        panel.acknowledge,
        description='the centre acknowledges an alarm: {"alarm_id": "...", "by": "..."}',
    )
    ctx.simulators.register(
        "press",
        panel.simulate_press,
        description="press <button> [--hold S]: press a panic button through its pin path",
    )
    if cfg.tamper is not None:
        ctx.simulators.register(
            "enclosure",
            panel.simulate_enclosure,
            description="enclosure open|close: open or close the tamper loop",
        )
    if cfg.power is not None:
        ctx.simulators.register(
            "mains", panel.simulate_mains, description="mains lost|restored: the mains/UPS line"
        )
    ctx.bus.on_link(panel.on_link)
    return [panel]
