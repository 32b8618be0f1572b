"""Bounds of the API's query and path parameters, shared by the routers: ids, days, instants.

Never let a value through that a store cannot hold (an integer past 64 bits, a year past 9999):
refuse it here as 422, in FastAPI's error shape, naming the parameter and the reason.
"""

from __future__ import annotations

from typing import Any

from fastapi import Query
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel

from hazwatch.base.errors import PayloadError
from hazwatch.devices.timeparse import parse_ts
from hazwatch.streams.custody.ledger import FIRST_DAY, LAST_DAY, parse_date_ns

# A site or device id is one MQTT topic segment (devices/topics.py _SEGMENT), ASCII only.
SEGMENT = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
SEGMENT_MAX = 64
# A batch or manifest id as the terminal sends it (devices/terminal.py Ident).
IDENT = r"^[A-Za-z0-9_.:\-]{1,64}$"
IDENT_MAX = 64
DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# RFC 3339 with a zone, or epoch milliseconds; [0-9], not \d, which matches other scripts' digits.
INSTANT = (
    r"^([0-9]{1,15}|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,9})?([Zz]|[+\-][0-9]{2}:[0-9]{2}))$"
)
INSTANT_MAX = 40
# Who signs a write (acknowledges, resolves, marks data): a person's name or id as they sign
# (Chinese welcome); no control characters (a CLI table, a chat message, a log line carry it).
BY = r"^[^\x00-\x1f\x7f]{1,64}$"
NS_PER_DAY = 86_400 * 1_000_000_000
# [2000-01-01T00:00Z, 2101-01-01T00:00Z): the instants a query may name (well inside int64 ns).
EARLIEST_NS = (FIRST_DAY.toordinal() - 719_163) * NS_PER_DAY
END_NS = (LAST_DAY.toordinal() + 1 - 719_163) * NS_PER_DAY
RANGE_TEXT = f"{FIRST_DAY.isoformat()}…{LAST_DAY.isoformat()}"


class Detail(BaseModel):
    """The body of a 4xx that is not a validation error: what was not found or refused."""

    detail: str


def signer(value: str, reserved: str, meaning: str) -> str:
    """A write's `by`, stripped: someone, and not the name the service itself signs with
    (`reserved`, which `meaning` explains)."""
    if not value.strip():
        raise ValueError("by must name someone")
    if value.strip() == reserved:
        raise ValueError(f"by {reserved!r} is {meaning}")
    return value.strip()


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route that answers these statuses with a `Detail`."""
    return {code: {"model": Detail} for code in codes}


def invalid(location: str, name: str, value: object, message: str) -> RequestValidationError:
    """A 422 in FastAPI's own shape, for a check that needs more than one parameter."""
    return RequestValidationError(
        [{"type": "value_error", "loc": (location, name), "msg": message, "input": value}]
    )


def day(text: str) -> str:
    """A YYYY-MM-DD that is a calendar day in range (AfterValidator: ValueError → 422)."""
    parse_date_ns(text)
    return text


def instant_ns(text: str, name: str) -> int:
    """RFC 3339 or epoch ms as UTC ns inside [2000-01-01, 2101-01-01); ValueError if not."""
    value: str | int = int(text) if text.isascii() and text.isdigit() else text
    try:
        ts_ns = parse_ts(value, field=name)
    except PayloadError:
        ts_ns = None
    if ts_ns is None or not EARLIEST_NS <= ts_ns < END_NS:
        raise ValueError(
            f"{name} must be a time within {RANGE_TEXT} (RFC 3339 with a zone, or epoch ms), "
            f"got {text!r}"
        )
    return ts_ns


# A route names each such parameter's type once, as a static alias mypy takes for a type:
#   From: TypeAlias = Annotated[str | None, instant_query("from"), instant_check("from")]
#   DateFrom: TypeAlias = Annotated[str, day_query("from"), DAY_CHECK]


def instant_query(name: str) -> Any:
    """The `Query` of an optional query parameter naming an instant (beside `instant_check`)."""
    doc = f"RFC 3339 with a zone, or epoch ms; within {RANGE_TEXT}"
    return Query(alias=name, pattern=INSTANT, max_length=INSTANT_MAX, description=doc)


def instant_check(name: str) -> AfterValidator:
    """The check of that parameter as it is parsed: an instant in range, else a 422 naming it."""

    def check(text: str | None) -> str | None:
        if text is not None:
            instant_ns(text, name)
        return text

    return AfterValidator(check)


def day_query(name: str) -> Any:
    """The `Query` of a required query parameter naming a day (China time) of a ledger."""
    doc = f"a day YYYY-MM-DD (China time) within {RANGE_TEXT}"
    return Query(alias=name, pattern=DAY, max_length=10, description=doc)


# The check of a day_query parameter as it is parsed: a calendar day in range.
DAY_CHECK = AfterValidator(day)
