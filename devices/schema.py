"""Shared pieces of the payload schemas: the base model, timestamps, EPCs, error translation.

Never let a pydantic ValidationError escape: callers get a PayloadError with a readable reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from devices.errors import PayloadError
from devices.timeparse import parse_ts


def _ts(value: object) -> int:
    return parse_ts(value)


# A device time, validated and converted to UTC nanoseconds.
TimestampNs = Annotated[int, BeforeValidator(_ts)]

_EPC = re.compile(r"^[0-9A-F]{8,64}$")


def _epc(value: object) -> str:
    if not isinstance(value, str):
        raise PayloadError(
            f"epc must be a hex string, got {type(value).__name__}", reason="bad_type", field="epc"
        )
    epc = value.strip().upper()
    if not _EPC.match(epc):
        raise PayloadError(
            f"epc must be 8–64 hex digits (EPC-96 is 24), got {value!r}",
            reason="bad_value",
            field="epc",
        )
    return epc


Epc = Annotated[str, BeforeValidator(_epc)]


class Payload(BaseModel):
    """Base of every JSON payload: unknown keys are ignored (never written), values immutable."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


M = TypeVar("M", bound=BaseModel)

_REASONS = {
    "missing": "missing_field",
    "json_invalid": "bad_json",
    "json_type": "bad_json",
    "model_type": "bad_json",
    "model_attributes_type": "bad_json",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
    "finite_number": "out_of_range",
    "too_short": "bad_value",
    "too_long": "bad_value",
    "string_too_short": "bad_value",
    "string_too_long": "bad_value",
    "string_pattern_mismatch": "bad_value",
    "literal_error": "bad_value",
    "enum": "bad_value",
    "value_error": "bad_value",
    "assertion_error": "bad_value",
}


def payload_error(exc: ValidationError) -> PayloadError:
    """The first problem of a ValidationError, as one sentence a person can act on."""
    err = exc.errors(include_url=False)[0]
    etype = err["type"]
    loc = ".".join(str(p) for p in err["loc"]) if err["loc"] else ""
    reason = _REASONS.get(etype, "bad_type")
    if etype == "json_invalid":
        return PayloadError(f"payload is not valid JSON: {err['msg']}", reason="bad_json")
    if etype in ("model_type", "model_attributes_type"):
        got = type(err.get("input")).__name__
        return PayloadError(f"payload must be a JSON object, got {got}", reason="bad_json")
    if etype == "missing":
        return PayloadError(f"required field {loc!r} is missing", reason=reason, field=loc)
    msg = str(err["msg"]).removeprefix("Value error, ")
    if not loc:
        return PayloadError(msg, reason=reason)
    got = err.get("input")
    return PayloadError(f"{loc}: {msg}, got {got!r}", reason=reason, field=loc)


def validator(model: type[M]) -> Callable[[bytes], M]:
    """A function that turns raw JSON bytes into `model` or raises PayloadError."""
    # the core validator itself: model_validate_json is a Python frame around it, per message
    validate: Callable[[bytes], M] = model.__pydantic_validator__.validate_json

    def parse(raw: bytes) -> M:
        try:
            return validate(raw)
        except ValidationError as exc:
            raise payload_error(exc) from None

    return parse


def clean_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Drop unset (None) values; InfluxDB has no null."""
    return {k: v for k, v in values.items() if v is not None}
