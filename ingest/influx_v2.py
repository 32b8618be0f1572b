"""InfluxDB 2.x/3.x/1.8+ through influxdb-client's v2 write API (its reader: ingest/influxql.py).

Never drop a line silently: a refused line is returned as RejectedLine, an outage raised.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import cast

import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException
from influxdb_client.service.ping_service import PingService

from hazwatch.base.errors import StoreUnavailable
from hazwatch.base.retry import RetryPolicy
from hazwatch.ingest.influx_http import (
    PolicyRoutes,
    Replaced,
    TryAgain,
    retrying,
    write_failure,
    write_replacing,
    write_splitting,
)
from hazwatch.ingest.interfaces import RejectedLine
from hazwatch.ingest.retention import bucket_name

log = logging.getLogger("hazwatch.influx")

# influxdb-client annotates write_precision as WritePrecision, whose members are plain str
# constants ("ns"): this is the value it expects, typed as it declares it.
_NS = cast(WritePrecision, WritePrecision.NS)


class InfluxV2Writer:
    """PointWriter over `/api/v2/write` (token, org, bucket, precision ns) via influxdb-client.

    One synchronous write per batch on the client's kept-alive urllib3 pool; the lines are
    joined and encoded once. Same semantics as InfluxV1Writer: retries with backoff on 5xx and
    connection errors for at most `retry.max_s` then StoreUnavailable; a 400/413/422 bisects the
    batch and returns each line the server refuses alone as RejectedLine with its message.
    `gzip` compresses every write (influxdb-client has no size threshold).
    A line that replaces its point (base.points.REPLACE_MARK) deletes it first through
    `/api/v2/delete` (its series' tags as the predicate, start = stop = its time). A server
    without that API (VictoriaMetrics, InfluxDB 1.x before 1.8) is logged and written to:
    it keeps no single point per identity anyway (docs/payloads.md).
    `policies` (measurement -> retention policy, ingest/retention.py): each point goes to the
    bucket `<bucket>_<policy>` once the org has it (PolicyRoutes), else to `bucket`.
    """

    name = "influxdb-v2"

    def __init__(
        self,
        url: str,
        token: str,
        org: str,
        bucket: str,
        *,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        gzip: bool = False,
        policies: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.org, self.bucket = org, bucket
        self.retry = retry or RetryPolicy()
        # retries=False: urllib3 must not retry on its own, the backoff here is bounded.
        self._client = InfluxDBClient(
            url=self.url,
            token=token,
            org=org,
            timeout=int(timeout_s * 1000),
            enable_gzip=gzip,
            retries=False,
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._can_delete = True  # until the server says it has no /api/v2/delete
        self.routes = (
            PolicyRoutes(policies, self._existing_buckets, f"InfluxDB at {self.url}")
            if policies
            else None
        )

    def write(self, lines: Sequence[str]) -> list[RejectedLine]:
        if self.routes is None:
            return write_replacing(self._write, self._delete, lines)
        return self.routes.write(lines, self._write_to)

    def _write_to(self, policy: str, lines: Sequence[str]) -> list[RejectedLine]:
        bucket = bucket_name(self.bucket, policy) if policy else self.bucket

        def write(part: Sequence[str]) -> list[RejectedLine]:
            send = lambda chunk: self._send(chunk, bucket)  # noqa: E731
            return write_splitting(send, part, self.retry, f"InfluxDB at {self.url}")

        return write_replacing(write, lambda points: self._delete(points, bucket), lines)

    def _write(self, lines: Sequence[str]) -> list[RejectedLine]:
        return write_splitting(self._send, lines, self.retry, f"InfluxDB at {self.url}")

    def _existing_buckets(self) -> set[str]:
        """The policies whose bucket `<bucket>_<policy>` exists (one bucket look-up each)."""
        from hazwatch.ingest.retention import POLICIES

        found: set[str] = set()

        def ask() -> None:
            buckets = self._client.buckets_api()
            found.clear()
            try:
                for policy in POLICIES:
                    if buckets.find_bucket_by_name(bucket_name(self.bucket, policy.name)):
                        found.add(policy.name)
            except ApiException as exc:
                if exc.status in (400, 404, 405):  # no buckets API (VictoriaMetrics answers
                    found.clear()  # 400 "unsupported path"): no policies, the default bucket
                    return
                if exc.status in (401, 403):  # a token that may write but not list buckets
                    log.warning(
                        "InfluxDB at %s: the token may not read buckets (%s): every point is "
                        "written to %s, the retention buckets are not used",
                        self.url,
                        exc.status,
                        self.bucket,
                    )
                    found.clear()
                    return
                raise write_failure(
                    int(exc.status or 0), _message(exc), None, f"InfluxDB at {self.url}"
                ) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise TryAgain(f"{type(exc).__name__}: {exc}") from None

        retrying(ask, self.retry, f"InfluxDB at {self.url}")
        return found

    def _delete(self, points: list[Replaced], bucket: str | None = None) -> dict[int, str]:
        """Delete each point through /api/v2/delete (one request each: a predicate has no OR);
        position → the server's reason for those it refused."""
        refused: dict[int, str] = {}
        pending = list(points) if self._can_delete else []
        delete_api = self._client.delete_api()

        def send() -> None:
            while pending:
                index, measurement, tags, ts_ns = pending[0]
                at = rfc3339_ns(ts_ns)
                try:
                    delete_api.delete(
                        at, at, predicate(measurement, tags), bucket or self.bucket, self.org
                    )
                except ApiException as exc:
                    status, message = int(exc.status or 0), _message(exc)
                    if status in (404, 405) or "unsupported path" in message:
                        log.warning(
                            "InfluxDB at %s has no /api/v2/delete (HTTP %d): a point written"
                            " again keeps the fields the new one lacks (not asked again)",
                            self.url,
                            status,
                        )
                        self._can_delete = False
                        pending.clear()
                        return
                    failure = write_failure(status, message, None, f"InfluxDB at {self.url}")
                    if isinstance(failure, TryAgain | StoreUnavailable):
                        raise failure from None
                    refused[index] = message  # a 4xx for this point's predicate
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    raise TryAgain(f"{type(exc).__name__}: {exc}") from None
                pending.pop(0)

        retrying(send, self.retry, f"InfluxDB at {self.url}")
        return refused

    def _send(self, chunk: Sequence[str], bucket: str | None = None) -> None:
        body = "\n".join(chunk).encode()
        try:
            self._write_api.write(bucket or self.bucket, self.org, record=body, write_precision=_NS)
        except ApiException as exc:
            raise write_failure(
                int(exc.status or 0),
                _message(exc),
                getattr(exc, "retry_after", None),
                f"InfluxDB at {self.url}",
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TryAgain(f"{type(exc).__name__}: {exc}") from None

    def ping(self) -> None:
        try:
            PingService(self._client.api_client).get_ping()
        except ApiException as exc:
            raise StoreUnavailable(
                f"InfluxDB at {self.url} /ping answered HTTP {exc.status}: {_message(exc)}"
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"InfluxDB at {self.url} is not reachable: {exc}") from None

    def close(self) -> None:
        self._write_api.close()
        self._client.close()


def predicate(measurement: str, tags: dict[str, str]) -> str:
    """The delete predicate of one series: `_measurement="m" AND "tag"="value" AND …`."""
    terms = [f"_measurement={_quoted(measurement)}"]
    terms += [f"{_quoted(key)}={_quoted(value)}" for key, value in sorted(tags.items())]
    return " AND ".join(terms)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rfc3339_ns(ts_ns: int) -> str:
    """UTC RFC 3339 with nanoseconds, as /api/v2/delete takes its start and stop."""
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    day = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{day}.{nanos:09d}Z"


def _message(exc: ApiException) -> str:
    message = getattr(exc, "message", None)
    if isinstance(message, bytes):
        message = message.decode(errors="replace")
    if message:
        return str(message).strip()
    return str(exc.reason or "")
