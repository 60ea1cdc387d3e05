"""Cameras: capture, tamper checks, motion-gated detection, tracking and media evidence.

``build(ctx)`` returns the vision component; the heavy work runs in a separate worker
process (see ``worker.py``). This package file stays light because ``agent.config``
imports ``agent.vision.config``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.runtime import AgentContext, Component


def build(ctx: AgentContext) -> list[Component]:
    """The vision component, or nothing when vision is off or no camera is configured."""
    from agent.vision.service import VisionService

    cfg = getattr(ctx.settings, "vision", None)
    if cfg is None or not cfg.enabled or not cfg.cameras:
        return []
    return [VisionService(ctx, cfg)]
