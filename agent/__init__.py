"""Outpost edge agent: the daemon core (config, events, outbox, link, commands, control).

Drivers live in ``drivers/``; installer tools in ``provisioning/``.
"""

__version__ = "0.1.0"
