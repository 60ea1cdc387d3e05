"""The agent's exception hierarchy, in one place.

Callers catch the narrowest class they can act on; the CLI maps them to exit codes.
"""


class OutpostError(Exception):
    """Base class of every error Outpost raises on purpose."""


class ConfigError(OutpostError):
    """The configuration is invalid; the message names the key and the value."""


class OutboxError(OutpostError):
    """The durable outbox could not persist or read an event."""


class OutboxFull(OutboxError):
    """A non-alarm event could not be stored because the disk cap is reached."""


class CommandError(OutpostError):
    """A command was rejected; the message is the reason sent back in the reply."""


class ControlError(OutpostError):
    """The local control socket could not be reached or answered an error."""


class DriverFault(OutpostError):
    """A hardware driver could not open or read its device."""


class ProvisioningError(OutpostError):
    """Identity, enrolment, config writing or image preparation failed; the message says why."""
