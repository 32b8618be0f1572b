"""The small interfaces the ingest path is wired through: point writers, readers, processors.

Never put an implementation here; adapters live in their own modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hazwatch.base.points import Point
from hazwatch.devices.decode import Decoded


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """A line the store refused for what it is (a 4xx), not for the store being down."""

    index: int  # position in the batch passed to write()
    reason: str  # the store's own words, e.g. 'field type conflict: ...'


class PointWriter(Protocol):
    """Writes line-protocol lines durably (InfluxDB v1, v2, or the embedded store).

    `write` returns only when every line is stored, except those it returns as rejected.
    It raises StoreUnavailable when the store cannot take the batch now (down, 5xx, timeout
    after its retries); then nothing of the batch may be assumed written.
    Writing the same line twice must leave one point (same measurement, tags and time).
    """

    name: str

    def write(self, lines: Sequence[str]) -> list[RejectedLine]: ...

    def ping(self) -> None:
        """Raise StoreUnavailable with the reason when the store is not reachable."""
        ...

    def close(self) -> None: ...


class PointReader(Protocol):
    """Reads points back for the API and screen (InfluxQL on /query, or the embedded store)."""

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
        """Rows as dicts: `time` (ns), every tag and the requested fields (all when None)."""
        ...

    def tag_values(self, measurement: str, tag: str) -> list[str]: ...


class StreamProcessor(Protocol):
    """A stateful processor fed every batch of decoded messages before they are acked.

    `process` runs inside the durable step: the messages are acked only after it returns and
    its state is committed. A redelivered message must not change state twice (idempotent).
    It returns extra points to write (e.g. `custody`, `air_hourly`).
    `tick` runs periodically (time-based rules such as overdue transit) and may return points.
    """

    name: str

    def process(self, batch: Sequence[Decoded], now_ns: int) -> list[Point]: ...

    def tick(self, now_ns: int) -> list[Point]: ...
