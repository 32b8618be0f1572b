"""InfluxDB 2.x/3.x/1.8+ through influxdb-client's v2 write API (its reader: ingest/influxql.py).

Never drop a line silently: a refused line is returned as RejectedLine, an outage raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException
from influxdb_client.service.ping_service import PingService

from hazwatch.base.errors import StoreUnavailable
from hazwatch.base.retry import RetryPolicy
from hazwatch.ingest.influx_http import TryAgain, write_failure, write_splitting
from hazwatch.ingest.interfaces import RejectedLine

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

    def write(self, lines: Sequence[str]) -> list[RejectedLine]:
        return write_splitting(self._send, lines, self.retry, f"InfluxDB at {self.url}")

    def _send(self, chunk: Sequence[str]) -> None:
        body = "\n".join(chunk).encode()
        try:
            self._write_api.write(self.bucket, self.org, record=body, write_precision=_NS)
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


def _message(exc: ApiException) -> str:
    message = getattr(exc, "message", None)
    if isinstance(message, bytes):
        message = message.decode(errors="replace")
    if message:
        return str(message).strip()
    return str(exc.reason or "")
