"""The errors the pipeline tells apart: transient ones are retried, the rest are reported."""


class TriageError(Exception):
    """A problem the user can act on; its message is one line naming it."""


class TransientError(TriageError):
    """A service hiccup (broker or store unreachable, a timed-out write): retry, then replay."""


class ConfigError(TriageError):
    """Settings or arguments that cannot work."""
