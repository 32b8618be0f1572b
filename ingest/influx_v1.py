"""InfluxDB 1.x's v1 HTTP API: the PointWriter on `/write` (the reader is hazwatch.ingest.influxql).

Never drop a line silently: a refused line is returned as RejectedLine, an outage raised.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence

import httpx

from hazwatch.base.errors import StoreUnavailable
from hazwatch.base.retry import RetryPolicy
from hazwatch.ingest.influx_http import (
    SPLIT_STATUSES,
    PolicyRoutes,
    Replaced,
    TryAgain,
    error_text,
    retrying,
    v1_credentials,
    write_failure,
    write_replacing,
    write_splitting,
)
from hazwatch.ingest.influxql import quote_ident, quote_string
from hazwatch.ingest.interfaces import RejectedLine


class InfluxV1Writer:
    """PointWriter for InfluxDB 1.x: `POST /write?db=&precision=ns` on one kept-alive connection.

    A batch goes in one request (gzip-compressed from `gzip_min_bytes`). 5xx, timeouts and
    refused connections are retried with exponential backoff for at most `retry.max_s`, then
    StoreUnavailable. A 400/413/422 bisects the batch: each line the server still refuses alone
    is returned as RejectedLine with InfluxDB's own error text, every other line is written.
    A missing database is created when /write answers 404 (CREATE DATABASE is idempotent;
    a write-only user may lack the right, then StoreUnavailable says so).
    A line that replaces its point (base.points.REPLACE_MARK) deletes it first: one
    `DELETE FROM m WHERE tag = 'v' AND … AND time = t` per point, all in one `/query` request
    (a DELETE reaches every retention policy of the database).
    `policies` (measurement -> retention policy, ingest/retention.py): each point goes to its
    measurement's policy (`/write?rp=`) once the database has it (PolicyRoutes), else to the
    default policy.
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
        policies: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.db = db
        self.retry = retry or RetryPolicy()
        self.gzip_min_bytes = gzip_min_bytes
        self.create_database = create_database
        self._auth, token_header = v1_credentials(username, password, token)
        self._params = {"db": db, "precision": "ns", **self._auth}
        self._client = httpx.Client(
            base_url=self.url,
            headers={"Content-Type": "text/plain; charset=utf-8", **token_header},
            timeout=timeout_s,
            limits=httpx.Limits(max_keepalive_connections=4, keepalive_expiry=60),
        )
        self.routes = (
            PolicyRoutes(policies, self._existing_policies, f"InfluxDB at {self.url}")
            if policies
            else None
        )

    def write(self, lines: Sequence[str]) -> list[RejectedLine]:
        if self.routes is None:
            return write_replacing(self._write, self._delete, lines)
        return self.routes.write(lines, self._write_to)

    def _write_to(self, policy: str, lines: Sequence[str]) -> list[RejectedLine]:
        params = {**self._params, "rp": policy} if policy else self._params

        def write(part: Sequence[str]) -> list[RejectedLine]:
            send = lambda chunk: self._send(chunk, params)  # noqa: E731
            return write_splitting(send, part, self.retry, f"InfluxDB at {self.url}")

        return write_replacing(write, self._delete, lines)

    def _write(self, lines: Sequence[str]) -> list[RejectedLine]:
        return write_splitting(self._send, lines, self.retry, f"InfluxDB at {self.url}")

    def _existing_policies(self) -> set[str]:
        """The database's retention policies (none while it does not exist)."""
        found: set[str] = set()

        def ask() -> None:
            query = {**self._auth, "q": f"SHOW RETENTION POLICIES ON {quote_ident(self.db)}"}
            response = self._post("/query", query)
            if response.status_code >= 300:
                raise self._refused(response)
            found.clear()
            found.update(policy_names(response.json()))

        retrying(ask, self.retry, f"InfluxDB at {self.url}")
        return found

    def _delete(self, points: list[Replaced]) -> dict[int, str]:
        """Delete each point (its series: measurement and tags, at its time); position → the
        server's reason for a statement it refused. A database that does not exist yet holds
        nothing to delete (the write creates it)."""
        statements = [
            f"DELETE FROM {quote_ident(measurement)} WHERE "
            + " AND ".join(f"{quote_ident(k)} = {quote_string(v)}" for k, v in sorted(tags.items()))
            + (" AND " if tags else "")
            + f"time = {ts_ns}"
            for _, measurement, tags, ts_ns in points
        ]
        results: list[object] = []

        def send() -> None:
            query = {**self._auth, "db": self.db, "q": ";\n".join(statements)}
            response = self._post("/query", query)
            if response.status_code in SPLIT_STATUSES:  # statements built here: said, not spooled
                results[:] = [{"error": error_text(response)}] * len(statements)
            elif response.status_code >= 300:
                raise self._refused(response)
            else:
                results[:] = response.json().get("results", [])

        retrying(send, self.retry, f"InfluxDB at {self.url}")
        refused: dict[int, str] = {}
        for position, (index, *_) in enumerate(points):
            # InfluxDB stops at a statement that fails: those after it did not run
            result = results[position] if position < len(results) else {}
            error = result.get("error") if isinstance(result, dict) else None
            if position >= len(results):
                refused[index] = "not run: an earlier DELETE of the batch failed"
            elif isinstance(error, str) and not error.startswith("database not found"):
                refused[index] = error
        return refused

    def _send(self, chunk: Sequence[str], params: dict[str, str] | None = None) -> None:
        params = params or self._params
        body = "\n".join(chunk).encode()
        headers = None
        if self.gzip_min_bytes is not None and len(body) >= self.gzip_min_bytes:
            body = gzip.compress(body, compresslevel=1)
            headers = {"Content-Encoding": "gzip"}
        response = self._post("/write", params, body, headers)
        if response.status_code == 404 and self.create_database:
            self._create_database()
            response = self._post("/write", params, body, headers)
        if response.status_code >= 300:
            raise self._refused(response)

    def _refused(self, response: httpx.Response) -> Exception:
        """The failure a non-2xx answer of this server is (its status, words and Retry-After),
        as every request here raises it."""
        return write_failure(
            response.status_code,
            error_text(response),
            response.headers.get("Retry-After"),
            f"InfluxDB at {self.url}",
        )

    def _post(
        self,
        path: str,
        params: dict[str, str],
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        try:
            return self._client.post(path, params=params, content=body, headers=headers)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise TryAgain(f"{type(exc).__name__}: {exc}") from None

    def _create_database(self) -> None:
        query = {"q": f"CREATE DATABASE {quote_ident(self.db)}"}
        response = self._post("/query", {**self._auth, **query})
        if response.status_code >= 300:
            raise StoreUnavailable(
                f"InfluxDB at {self.url}: database {self.db!r} does not exist and creating it"
                f" failed: HTTP {response.status_code}: {error_text(response)}"
            )

    def ping(self) -> None:
        """GET /ping (InfluxDB 1.x and 2.x answer 204); StoreUnavailable with the reason if not."""
        try:
            response = self._client.get("/ping")
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"InfluxDB at {self.url} is not reachable: {exc}") from None
        if response.status_code >= 300:
            raise StoreUnavailable(
                f"InfluxDB at {self.url} /ping answered HTTP {response.status_code}:"
                f" {error_text(response)}"
            )

    def close(self) -> None:
        self._client.close()


def policy_names(answer: object) -> set[str]:
    """The names of a `SHOW RETENTION POLICIES` answer (an error, e.g. no such database: none)."""
    results = answer.get("results") if isinstance(answer, dict) else None
    names: set[str] = set()
    for result in results or []:
        for series in result.get("series") or []:
            columns = series.get("columns") or []
            at = columns.index("name") if "name" in columns else 0
            names.update(str(row[at]) for row in series.get("values") or [])
    return names
