"""InfluxQL over `/query`: the PointReader of InfluxDB 1.x, 2.x and 3.x, and InfluxQL quoting.

The video processor confirms gaps with it; the monitoring screen's charts read through it.
Never build a statement from a name or value unquoted: quote_ident and quote_string escape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from hazwatch.base.errors import StoreUnavailable
from hazwatch.ingest.influx_http import PolicyRoutes, error_text, v1_credentials


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes, with backslash and quote escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def quote_string(value: str) -> str:
    """An InfluxQL string literal in single quotes, with backslash and quote escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


class InfluxQLReader:
    """PointReader over InfluxQL on `/query` (epoch=ns), for InfluxDB 1.x, 2.x and 3.x.

    Time range is [start_ns, end_ns). A row holds `time`, the point's tags and the requested
    fields it has (fields it lacks are left out, not None).
    `policies` (measurement -> retention policy, ingest/retention.py): a measurement is read
    from its policy (`FROM "policy"."m"`) once the database has it, as the writers write it.
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
        policies: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.db = db
        auth, headers = v1_credentials(username, password, token)
        self._params = {"db": db, "epoch": "ns", **auth}
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)
        self._tag_keys: dict[str, list[str]] = {}
        self.routes = (
            PolicyRoutes(policies, self._existing_policies, f"InfluxDB at {self.url}")
            if policies
            else None
        )

    def _existing_policies(self) -> set[str]:
        try:
            series = self.query(f"SHOW RETENTION POLICIES ON {quote_ident(self.db)}")
        except ValueError:  # no such database yet: nothing to read from any policy
            return set()
        except StoreUnavailable as exc:
            if "not reachable" in str(exc):
                raise
            return set()  # a server that answers no SHOW (VictoriaMetrics): the default
        return {str(row[0]) for s in series for row in s.get("values") or []}

    def source(self, measurement: str) -> str:
        """The FROM of a measurement: `"policy"."m"`, or `"m"` in the default policy."""
        policy = self.routes.current().get(measurement) if self.routes is not None else None
        if policy:
            return f"{quote_ident(policy)}.{quote_ident(measurement)}"
        return quote_ident(measurement)

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
        text = f"SELECT {columns} FROM {self.source(measurement)}"
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


def v2_reader(
    url: str,
    token: str,
    bucket: str,
    *,
    timeout_s: float = 10.0,
    policies: Mapping[str, str] | None = None,
) -> InfluxQLReader:
    """PointReader for a v2 server: InfluxQL on its v1-compatible `/query` with the token.

    InfluxDB 2.x and 3.x answer `/query?db=` only for a database name that has a DBRP mapping
    to the bucket (`influx v1 dbrp create --db BUCKET --rp autogen --bucket-id ...`; 3.x maps
    a database of the same name by itself). Here `db` is the bucket name; a policy's bucket
    `<bucket>_<policy>` is read as `"policy"."m"` through the DBRP mapping (database
    `<bucket>`, retention policy `<policy>`) `hazwatch migrate retention` makes beside it.
    """
    return InfluxQLReader(url, bucket, token=token, timeout_s=timeout_s, policies=policies)
