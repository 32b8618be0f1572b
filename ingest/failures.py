"""Which failures are transient (retry the batch, spool) and which are the message's (dead letter).

Never call a failure transient unless waiting can cure it: a batch retried for a failure that
is the data's own stalls every message behind it, for good (issue #21).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from hazwatch.base.errors import HazwatchError, StoreUnavailable

try:  # PostgreSQL is optional at run time (SQLite is the default state store)
    import psycopg
except ImportError:  # pragma: no cover - psycopg is a dependency
    psycopg = None  # type: ignore[assignment]

# SQLite says these when another writer holds the database, or the disk cannot take more now.
_SQLITE_TRANSIENT = (
    "database is locked",
    "database table is locked",
    "database is busy",
    "disk i/o error",
    "database or disk is full",
    "unable to open database",
)

# PostgreSQL SQLSTATE classes that waiting can cure: 08 connection exception, 40 transaction
# rollback (serialization failure, deadlock), 53 insufficient resources, 57 operator
# intervention (shutdown, query cancelled), 58 system error (I/O).
_PG_TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")
# 55P03 lock not available
_PG_TRANSIENT_STATES = ("55P03",)


class RetryLater(HazwatchError):
    """Not the store's failure and not the message's: only waiting cures it (a batch waiting
    for the one before it, the spool full while InfluxDB is down)."""


def is_transient(exc: BaseException) -> bool:
    """True when the same work may succeed later unchanged: the store is down, busy or locked.

    Everything else — a row the database refuses (integrity, data, a value its driver cannot
    convert), a bug in hazwatch met by this message — is the message's, and retrying it
    would only stall the line.
    """
    if isinstance(exc, StoreUnavailable | RetryLater | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return any(marker in text for marker in _SQLITE_TRANSIENT)
    if isinstance(exc, sqlite3.Error):
        return False  # IntegrityError, DataError, InterfaceError (binding), ProgrammingError
    if psycopg is not None and isinstance(exc, psycopg.Error):
        state = getattr(exc, "sqlstate", None) or ""
        if state:
            return state.startswith(_PG_TRANSIENT_CLASSES) or state in _PG_TRANSIENT_STATES
        # no SQLSTATE: the client side (connection lost, closed, pool): an outage
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    if isinstance(exc, OSError):
        return True  # sockets, files: the environment, not the message
    return isinstance(exc, MemoryError)


def reason_of(exc: BaseException) -> str:
    """The dead-letter reason of a failure that is the message's."""
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError):
        return "store_rejected"
    if psycopg is not None and isinstance(exc, psycopg.IntegrityError | psycopg.DataError):
        return "store_rejected"
    return "internal_error"


def describe(exc: BaseException, limit: int = 500) -> str:
    """`Type: message`, bounded (an exception may quote a whole payload)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def isolate(
    positions: Sequence[int],
    attempt: Callable[[Sequence[int]], None],
    *,
    splits: type[Exception] | tuple[type[Exception], ...] = Exception,
    named: Callable[[Sequence[int], Exception], dict[int, Exception]] | None = None,
) -> dict[int, Exception]:
    """Run `attempt` over `positions`; when it fails for a reason that is not transient, over
    each half again, in order, until the positions that fail alone are found.

    Returns position → its failure; a transient failure, or one that is not a `splits`, is
    raised (the caller retries the whole). `named(part, exc)` may give the positions of `part`
    that `exc` names beyond doubt: those fail at once and the rest is tried again together,
    not halved. `attempt` must be safe to run again over positions a failed call covered (a
    processor keeps nothing of a call that raised; a write is idempotent).
    """
    failures: dict[int, Exception] = {}
    stack: list[Sequence[int]] = [positions]
    while stack:
        part = stack.pop()
        if not part:
            continue
        try:
            attempt(part)
            continue
        except Exception as exc:
            if is_transient(exc) or not isinstance(exc, splits):
                raise
            if len(part) == 1:
                failures[part[0]] = exc
                continue
            known = named(part, exc) if named is not None else None
            if known:
                failures.update(known)
                stack.append([position for position in part if position not in known])
                continue
        mid = len(part) // 2
        stack.append(part[mid:])
        stack.append(part[:mid])
    return failures
