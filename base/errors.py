"""The one exception hierarchy of hazwatch, with messages a person can act on.

Never raise a bare Exception for bad input: raise PayloadError with the field and value.
"""

from __future__ import annotations

# How much of a bad value a message quotes: enough to recognise it, never a payload dump.
SHOWN_MAX_CHARS = 80
# Past this many bits repr() of an int would raise (Python's 4300-digit limit) or flood a log.
_SHOWN_MAX_INT_BITS = 256


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


def shown(value: object, limit: int = SHOWN_MAX_CHARS) -> str:
    """A bounded repr of a bad value for a message; never raises, whatever the value."""
    if isinstance(value, int) and value.bit_length() > _SHOWN_MAX_INT_BITS:
        digits = int(value.bit_length() * 0.30103) + 1  # log10(2)
        sign = "a negative" if value < 0 else "an"
        return f"{sign} integer of about {digits} digits"
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ cannot come from JSON; stay safe anyway
        return f"a {type(value).__name__}"
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text)} characters)"
