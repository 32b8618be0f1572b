"""InfluxDB 1.x over the v1 HTTP API: PointWriter on /write, PointReader on /query (InfluxQL).

Never drop a line silently: a refused line is returned as RejectedLine, an outage raised.
"""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import orjson

from hazwatch.base.errors import StoreUnavailable
from hazwatch.base.retry import Backoff, RetryPolicy, parse_retry_after
from hazwatch.ingest.interfaces import RejectedLine

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
    rejected: list[RejectedLine] = []
    if not lines:
        return rejected
    # One budget for the whole write: it runs from the first failure until a send succeeds.
    backoff = Backoff(retry)
    # An explicit stack (first part on top) keeps the lines in order and the depth flat.
    stack: list[Sequence[int]] = [range(len(lines))]
    while stack:
        indices = stack.pop()
        if isinstance(indices, range):
            chunk: Sequence[str] = lines[indices.start : indices.stop]
        else:
            chunk = [lines[i] for i in indices]
        try:
            _send_retrying(send, chunk, backoff, store, sleep)
        except LinesRefused as exc:
            if len(indices) == 1:
                rejected.append(RejectedLine(indices[0], exc.reason))
                continue
            named = refused_by_reason(exc.reason, chunk)
            if named:
                reasons = {pos: reason for pos, reason in named}
                rejected += [RejectedLine(indices[pos], r) for pos, r in reasons.items()]
                rest = [i for pos, i in enumerate(indices) if pos not in reasons]
                if rest:
                    stack.append(rest)
            else:
                mid = len(indices) // 2
                stack.append(indices[mid:])
                stack.append(indices[:mid])
    rejected.sort(key=lambda line: line.index)
    return rejected


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


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes, with backslash and quote escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def quote_string(value: str) -> str:
    """An InfluxQL string literal in single quotes, with backslash and quote escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


class InfluxV1Writer:
    """PointWriter for InfluxDB 1.x: `POST /write?db=&precision=ns` on one kept-alive connection.

    A batch goes in one request (gzip-compressed from `gzip_min_bytes`). 5xx, timeouts and
    refused connections are retried with exponential backoff for at most `retry.max_s`, then
    StoreUnavailable. A 400/413/422 bisects the batch: each line the server still refuses alone
    is returned as RejectedLine with InfluxDB's own error text, every other line is written.
    A missing database is created when /write answers 404 (CREATE DATABASE is idempotent;
    a write-only user may lack the right, then StoreUnavailable says so).
    """

    name = "influxdb-v1"

    def __init__(
        self,
        url: str,
        db: str,
        *,
        username: str = "",
        password: str = "",
        token: str = "",
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        gzip_min_bytes: int | None = 64 * 1024,
        create_database: bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.db = db
        self.retry = retry or RetryPolicy()
        self.gzip_min_bytes = gzip_min_bytes
        self.create_database = create_database
        self._params = {"db": db, "precision": "ns"}
        if username:
            self._params.update(u=username, p=password)
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if token:  # InfluxDB 1.8+ and 2.x's v1-compatible API
            headers["Authorization"] = f"Token {token}"
        self._client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=timeout_s,
            limits=httpx.Limits(max_keepalive_connections=4, keepalive_expiry=60),
        )

    def write(self, lines: Sequence[str]) -> list[RejectedLine]:
        return write_splitting(self._send, lines, self.retry, f"InfluxDB at {self.url}")

    def _send(self, chunk: Sequence[str]) -> None:
        body = "\n".join(chunk).encode()
        headers = None
        if self.gzip_min_bytes is not None and len(body) >= self.gzip_min_bytes:
            body = gzip.compress(body, compresslevel=1)
            headers = {"Content-Encoding": "gzip"}
        response = self._post("/write", body, headers)
        if response.status_code == 404 and self.create_database:
            self._create_database()
            response = self._post("/write", body, headers)
        self._check(response)

    def _post(self, path: str, body: bytes, headers: dict[str, str] | None) -> httpx.Response:
        try:
            return self._client.post(path, params=self._params, content=body, headers=headers)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise TryAgain(f"{type(exc).__name__}: {exc}") from None

    def _check(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 300:
            return
        reason = error_text(response)
        if status in SPLIT_STATUSES:
            raise LinesRefused(reason)
        if status in RETRY_STATUSES:
            raise TryAgain(
                f"HTTP {status}: {reason}", parse_retry_after(response.headers.get("Retry-After"))
            )
        # 401/403/404 and the like: the batch is fine, the configuration is not.
        raise StoreUnavailable(f"InfluxDB at {self.url} answered HTTP {status}: {reason}")

    def _create_database(self) -> None:
        query = {"q": f"CREATE DATABASE {quote_ident(self.db)}"}
        auth = {k: v for k, v in self._params.items() if k in ("u", "p")}
        try:
            response = self._client.post("/query", params={**auth, **query})
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise TryAgain(f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 300:
            raise StoreUnavailable(
                f"InfluxDB at {self.url}: database {self.db!r} does not exist and creating it"
                f" failed: HTTP {response.status_code}: {error_text(response)}"
            )

    def ping(self) -> None:
        ping(self._client, self.url)

    def close(self) -> None:
        self._client.close()


def ping(client: httpx.Client, url: str) -> None:
    """GET /ping (InfluxDB 1.x and 2.x answer 204); StoreUnavailable with the reason if not."""
    try:
        response = client.get("/ping")
    except httpx.HTTPError as exc:
        raise StoreUnavailable(f"InfluxDB at {url} is not reachable: {exc}") from None
    if response.status_code >= 300:
        raise StoreUnavailable(
            f"InfluxDB at {url} /ping answered HTTP {response.status_code}: {error_text(response)}"
        )


class InfluxQLReader:
    """PointReader over InfluxQL on `/query` (epoch=ns), for InfluxDB 1.x, 2.x and 3.x.

    Time range is [start_ns, end_ns). A row holds `time`, the point's tags and the requested
    fields it has (fields it lacks are left out, not None).
    """

    def __init__(
        self,
        url: str,
        db: str,
        *,
        username: str = "",
        password: str = "",
        token: str = "",
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.db = db
        self._params = {"db": db, "epoch": "ns"}
        if username:
            self._params.update(u=username, p=password)
        headers = {"Authorization": f"Token {token}"} if token else {}
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)
        self._tag_keys: dict[str, list[str]] = {}

    def query(self, influxql: str) -> list[dict[str, Any]]:
        """The series of the first statement's result; StoreUnavailable or ValueError on errors."""
        try:
            response = self._client.post("/query", params={**self._params, "q": influxql})
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"InfluxDB at {self.url} is not reachable: {exc}") from None
        if response.status_code >= 500 or response.status_code in (401, 403, 404):
            raise StoreUnavailable(
                f"InfluxDB at {self.url} /query answered HTTP {response.status_code}:"
                f" {error_text(response)}"
            )
        if response.status_code >= 300:
            raise ValueError(f"InfluxQL {influxql!r} refused: {error_text(response)}")
        results = orjson.loads(response.content).get("results") or [{}]
        first = results[0]
        if "error" in first:
            raise ValueError(f"InfluxQL {influxql!r} failed: {first['error']}")
        return list(first.get("series") or [])

    def tag_keys(self, measurement: str) -> list[str]:
        keys = self._tag_keys.get(measurement)
        if keys is None:
            series = self.query(f"SHOW TAG KEYS FROM {quote_ident(measurement)}")
            keys = [row[0] for s in series for row in s.get("values") or []]
            if keys:  # a measurement without points yet may get tags later
                self._tag_keys[measurement] = keys
        return keys

    def select(
        self,
        measurement: str,
        *,
        tags: dict[str, str] | None = None,
        fields: Sequence[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        if fields:
            tag_keys = self.tag_keys(measurement)
            # Listing the tag keys returns them as columns (SELECT of fields alone would not).
            columns = ",".join(quote_ident(name) for name in [*fields, *tag_keys])
        else:
            tag_keys, columns = [], "*"
        where = [
            f"{quote_ident(key)} = {quote_string(value)}" for key, value in (tags or {}).items()
        ]
        if start_ns is not None:
            where.append(f"time >= {int(start_ns)}")
        if end_ns is not None:
            where.append(f"time < {int(end_ns)}")
        text = f"SELECT {columns} FROM {quote_ident(measurement)}"
        if where:
            text += " WHERE " + " AND ".join(where)
        if newest_first:
            text += " ORDER BY time DESC"
        text += f" LIMIT {int(limit)}"
        rows: list[dict[str, Any]] = []
        requested = set(fields or ())
        for series in self.query(text):
            names = series["columns"]
            for values in series.get("values") or []:
                row = {name: value for name, value in zip(names, values, strict=True)}
                if requested and not any(row.get(name) is not None for name in requested):
                    continue
                rows.append({k: v for k, v in row.items() if v is not None})
        return rows

    def tag_values(self, measurement: str, tag: str) -> list[str]:
        series = self.query(
            f"SHOW TAG VALUES FROM {quote_ident(measurement)} WITH KEY = {quote_ident(tag)}"
        )
        return sorted({row[1] for s in series for row in s.get("values") or []})

    def close(self) -> None:
        self._client.close()
