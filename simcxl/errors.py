"""Errors a user can fix.

Everything the simulator rejects because of its input (a config key, a unit, a trace row, a model that
does not fit) raises a :class:`SimcxlError`. The CLI prints its message, never a traceback, and exits 2.
"""


class SimcxlError(Exception):
    """Bad input: the message names the file, the key path (or line) and what was expected."""


class ConfigError(SimcxlError):
    """A scenario or profile YAML is malformed, has an unknown key, a bad value or a bad unit."""


class WorkloadError(SimcxlError):
    """A trace file is missing or has a malformed row."""
