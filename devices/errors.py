"""The one exception hierarchy of hazwatch, with messages a person can act on.

Never raise a bare Exception for bad input: raise PayloadError with the field and value.
"""

from __future__ import annotations


class HazwatchError(Exception):
    """Base of every error hazwatch raises on purpose."""


class PayloadError(HazwatchError):
    """A message that cannot be accepted; `reason` is the short machine key."""

    def __init__(self, message: str, *, reason: str = "invalid", field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field

    @property
    def message(self) -> str:
        return str(self.args[0])


class TopicError(PayloadError):
    """The topic does not follow hw/{site}/{family}/{device_id}/{kind}."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="bad_topic")


class ConfigError(HazwatchError):
    """A setting or registry entry that cannot work; reported as one line at start."""


class StoreUnavailable(HazwatchError):
    """A store (InfluxDB, state database) cannot be reached right now; retry later."""


class CustodyViolation(HazwatchError):
    """A batch's chain of custody breaks a rule."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
