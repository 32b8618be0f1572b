"""What the InfluxDB adapters share: an answer's failure class, the server's error text, and a
batch written with retries and split where the server refuses lines.

Never call a refusal an outage or an outage a refusal: a 4xx names lines to reject, a 5xx or a
lost connection is waited out, a wrong configuration (401, 403, 404) is StoreUnavailable.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence

import httpx
import orjson

from hazwatch.base.errors import StoreUnavailable
from hazwatch.base.points import escape_measurement, parse_escaped, replacing, unmarked
from hazwatch.base.retry import Backoff, RetryPolicy, parse_retry_after
from hazwatch.ingest.failures import isolate
from hazwatch.ingest.interfaces import RejectedLine
from hazwatch.ingest.retention import route

log = logging.getLogger("hazwatch.influx")

# Status codes that say "this batch holds lines the server will never accept": split it.
SPLIT_STATUSES = frozenset({400, 413, 422})
# Status codes worth another try after a pause (the server is busy, restarting or overloaded).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class LinesRefused(Exception):
    """The server refused the lines sent (4xx): split the batch to find the bad ones."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TryAgain(Exception):
    """A transient failure (5xx, connection refused, timeout): retry after a pause."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


def write_failure(status: int, reason: str, retry_after: object, store: str) -> Exception:
    """The failure a write answered with HTTP `status` (not 2xx) is, to raise.

    LinesRefused for 400/413/422; TryAgain for 408/429/5xx, or no status at all, pausing at
    least as long as the `Retry-After` value asks; StoreUnavailable for the rest (401/403/404
    and the like: the batch is fine, the configuration is not).
    """
    if status in SPLIT_STATUSES:
        return LinesRefused(reason)
    if status in RETRY_STATUSES or status == 0:
        return TryAgain(f"HTTP {status}: {reason}", parse_retry_after(retry_after))
    return StoreUnavailable(f"{store} answered HTTP {status}: {reason}")


def error_text(response: httpx.Response) -> str:
    """The server's own error message: the `error` (1.x) or `message` (2.x) of its JSON body."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text.strip() or response.reason_phrase
    if isinstance(body, dict):
        for key in ("error", "message"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return response.text.strip()


def v1_credentials(
    username: str, password: str, token: str
) -> tuple[dict[str, str], dict[str, str]]:
    """The v1 API's two ways to log in: query parameters `u`/`p`, or a `Token` header (1.8+
    and 2.x's v1-compatible API); (params, headers), each empty when not used."""
    params = {"u": username, "p": password} if username else {}
    headers = {"Authorization": f"Token {token}"} if token else {}
    return params, headers


def write_splitting(
    send: Callable[[Sequence[str]], None],
    lines: Sequence[str],
    retry: RetryPolicy,
    store: str,
    sleep: Callable[[float], None] = time.sleep,
) -> list[RejectedLine]:
    """Send `lines` with retries; on LinesRefused find the refused lines and send the rest.

    `send` raises LinesRefused (the lines are wrong), TryAgain (the store is not well now) or
    StoreUnavailable (give up at once). Every line not returned as rejected has been accepted.
    The lines an error names for certain (a field type conflict names measurement, field and
    type; a parse error quotes the line) are rejected at once and the rest resent; otherwise
    the chunk is bisected. Resending accepted lines is harmless: writes are idempotent.
    """
    # One budget for the whole write: it runs from the first failure until a send succeeds.
    backoff = Backoff(retry)

    def chunk_of(part: Sequence[int]) -> Sequence[str]:
        if isinstance(part, range):
            return lines[part.start : part.stop]
        return [lines[i] for i in part]

    def attempt(part: Sequence[int]) -> None:
        _send_retrying(send, chunk_of(part), backoff, store, sleep)

    def named(part: Sequence[int], exc: Exception) -> dict[int, Exception]:
        assert isinstance(exc, LinesRefused)
        found = refused_by_reason(exc.reason, chunk_of(part))
        return {part[pos]: LinesRefused(reason) for pos, reason in found}

    failures = isolate(range(len(lines)), attempt, splits=LinesRefused, named=named)
    # Only LinesRefused are isolated (anything else is raised): its text is the server's reason.
    return [RejectedLine(index, str(exc)) for index, exc in sorted(failures.items())]


# (position in the batch, measurement, tags, time) of a point a replacing line deletes first
Replaced = tuple[int, str, dict[str, str], int]


def write_replacing(
    write: Callable[[Sequence[str]], list[RejectedLine]],
    delete: Callable[[list[Replaced]], dict[int, str]],
    lines: Sequence[str],
) -> list[RejectedLine]:
    """`write` the lines, first `delete`-ing the stored point of each line that replaces its
    point (base.points.REPLACE_MARK), so the store holds exactly the new one.

    As if the batch ran line by line: a line of the same point before a replacing one is
    superseded by it (not written; an hour computed twice in one batch is its last result),
    one after it is merged into it. `delete` returns position → the server's reason for the
    points it refused to delete; those lines are rejected (written, the store would merge
    them into the old point) and the rest written. It raises StoreUnavailable for an outage:
    then nothing is written and the batch, marks and all, is spooled and replayed (a delete
    again is harmless).
    """
    marked = replacing(lines)
    if not marked:
        return write(lines)
    plain = list(lines)
    rejected: list[RejectedLine] = []
    last: dict[tuple[str, tuple[tuple[str, str], ...], int], int] = {}  # point → its last mark
    targets: dict[int, Replaced] = {}
    for index in marked:
        plain[index] = unmarked(plain[index])
        try:
            measurement, tags, _, ts_ns = parse_escaped(plain[index])
        except ValueError as exc:
            rejected.append(RejectedLine(index, f"unable to parse '{plain[index]}': {exc}"))
            continue
        identity = (measurement, tuple(sorted(tags.items())), ts_ns)
        targets.pop(last.get(identity, -1), None)  # one delete per point, at its last mark
        last[identity] = index
        targets[index] = (index, measurement, tags, ts_ns)
    skip = {r.index for r in rejected} | _superseded(plain, last)
    refused = delete(list(targets.values())) if targets else {}
    rejected += [
        RejectedLine(index, f"the point it replaces could not be deleted: {why}")
        for index, why in refused.items()
    ]
    skip |= refused.keys()
    if not skip:
        return write(plain)
    keep = [i for i in range(len(plain)) if i not in skip]
    rejected += [RejectedLine(keep[r.index], r.reason) for r in write([plain[i] for i in keep])]
    return sorted(rejected, key=lambda r: r.index)


def _superseded(
    lines: Sequence[str], last: dict[tuple[str, tuple[tuple[str, str], ...], int], int]
) -> set[int]:
    """The positions of lines of a replaced point that come before its last replacing line."""
    prefixes = tuple({escape_measurement(m) + sep for m, _, _ in last for sep in ", "})
    before = max(last.values(), default=0)
    found: set[int] = set()
    for index in range(before):
        line = lines[index]
        if not line.startswith(prefixes):  # cheap: most lines are of other measurements
            continue
        try:
            measurement, tags, _, ts_ns = parse_escaped(line)
        except ValueError:
            continue  # the write says why
        if last.get((measurement, tuple(sorted(tags.items())), ts_ns), -1) > index:
            found.add(index)
    return found


def retrying(
    call: Callable[[], None],
    retry: RetryPolicy,
    store: str,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """`call` until it does not raise TryAgain, for at most the policy's budget; then
    StoreUnavailable naming the last failure."""
    _send_retrying(lambda _: call(), (), Backoff(retry), store, sleep)


# InfluxDB 1.x and 2.x word it alike, names in plain double quotes (not escaped).
_CONFLICT = re.compile(
    r'field type conflict: input field "(.*?)" on measurement "(.*?)"'
    r" is type (\w+), already exists as type (\w+)"
)
_DROPPED = re.compile(r"\s*dropped=\d+\s*$")
_TYPE_NAMES = {float: "float", int: "integer", str: "string", bool: "boolean"}


def refused_by_reason(reason: str, chunk: Sequence[str]) -> list[tuple[int, str]]:
    """(position, reason) of the lines in `chunk` the server's error names beyond doubt."""
    from hazwatch.ingest.pointstore import (
        line_fields,  # the one line-protocol reader of this package
    )

    found: list[tuple[int, str]] = []
    conflict = _CONFLICT.search(reason)
    if conflict is not None:
        field, measurement, kind, _ = conflict.groups()
        line_reason = _DROPPED.sub("", reason)
        for pos, line in enumerate(chunk):
            if field not in line:  # cheap: most lines cannot be it
                continue
            try:
                line_measurement, fields = line_fields(line)
            except ValueError:
                continue
            value = fields.get(field)
            if (
                line_measurement == measurement
                and value is not None
                and _TYPE_NAMES[type(value)] == kind
            ):
                found.append((pos, line_reason))
        return found
    if "unable to parse '" in reason:
        for pos, line in enumerate(chunk):
            start = reason.find(f"unable to parse '{line}'")
            if start >= 0:
                end = reason.find("\n", start)
                found.append((pos, reason[start : end if end >= 0 else None].strip()))
    return found


def _send_retrying(
    send: Callable[[Sequence[str]], None],
    chunk: Sequence[str],
    backoff: Backoff,
    store: str,
    sleep: Callable[[float], None],
) -> None:
    backoff.restart_delay()  # a new chunk's pauses start short; the budget runs on
    while True:
        try:
            send(chunk)
            backoff.succeeded()
            return
        except TryAgain as exc:
            pause = backoff.failed(exc.retry_after_s)
            if backoff.exhausted:
                raise StoreUnavailable(
                    f"{store}: {exc.reason} (gave up after {backoff.failing_s:.1f} s of retries)"
                ) from None
            sleep(pause)


class PolicyRoutes:
    """Which retention policy (1.x) or bucket (2.x) each measurement's points go to and are
    read from, of the ones the server has (docs/retention.md).

    `wanted`: measurement -> policy (ingest/retention.py POLICY_OF). `existing()` lists the
    policies the server has; it is asked on first use and again every `refresh_s`, so a
    policy `hazwatch migrate retention` creates is used within minutes, without a restart.
    A measurement whose policy is missing goes to the database's default policy (the bucket
    itself on 2.x), as before retention existed, and the writer says so once: never a write
    refused for want of a policy.
    """

    def __init__(
        self,
        wanted: Mapping[str, str],
        existing: Callable[[], set[str]],
        store: str,
        *,
        refresh_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.wanted = dict(wanted)
        self._existing = existing
        self.store = store
        self.refresh_s = refresh_s
        self._clock = clock
        self._routes: dict[str, str] | None = None
        self._asked_at = 0.0
        self._missing: frozenset[str] = frozenset()

    def current(self) -> dict[str, str]:
        """measurement -> policy for the policies that exist now (asked when due)."""
        now = self._clock()
        if self._routes is None or now - self._asked_at >= self.refresh_s:
            have = self._existing()
            self._asked_at = now
            self._routes = {m: p for m, p in self.wanted.items() if p in have}
            missing = frozenset(set(self.wanted.values()) - have)
            if missing and missing != self._missing:
                measurements = sorted(m for m, p in self.wanted.items() if p in missing)
                log.warning(
                    "%s has no retention policy %s: %s are written to and read from the"
                    " database's default policy until `hazwatch migrate retention` creates"
                    " them (docs/retention.md)",
                    self.store,
                    ", ".join(sorted(missing)),
                    ", ".join(measurements),
                )
            self._missing = missing
        return self._routes

    @property
    def missing(self) -> frozenset[str]:
        """The policies the server lacked when last asked."""
        return self._missing

    def write(
        self,
        lines: Sequence[str],
        write_to: Callable[[str, Sequence[str]], list[RejectedLine]],
    ) -> list[RejectedLine]:
        """`write_to(policy, lines)` per policy ("" the default), rejected lines renumbered to
        the batch's positions. A point's lines all share its measurement, so REPLACE_MARK's
        line-by-line order holds within each policy's lines."""
        routes = self.current()
        if not routes:  # no policy made yet: the default, as before retention
            return write_to("", lines)
        groups = route(lines, routes)
        if len(groups) == 1:
            ((policy, _),) = groups.items()
            return write_to(policy, lines)
        rejected: list[RejectedLine] = []
        for policy, positions in groups.items():
            part = [lines[i] for i in positions]
            rejected += [RejectedLine(positions[r.index], r.reason) for r in write_to(policy, part)]
        return sorted(rejected, key=lambda r: r.index)
