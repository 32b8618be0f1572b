"""The on-disk spool: line protocol kept while the point store is down, replayed in order.

Never acknowledge a message whose points are only in memory: append() returns after fsync.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from prometheus_client import Gauge

from hazwatch.ingest.failures import RetryLater

SPOOL_BYTES = Gauge("hazwatch_spool_bytes", "Bytes of line protocol waiting in the spool")


class SpoolFull(RetryLater):
    """The spool reached its size limit: stop reading from MQTT until it drains."""


class Spool:
    """A directory of segment files `{seq:012d}.lp`, one per batch, written atomically."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        for stale in directory.glob("*.tmp"):  # a crash between write and rename
            stale.unlink()
        self._segments = sorted(directory.glob("*.lp"))
        self._bytes = sum(p.stat().st_size for p in self._segments)
        self._seq = int(self._segments[-1].stem) + 1 if self._segments else 1
        SPOOL_BYTES.set(self._bytes)

    def __len__(self) -> int:
        return len(self._segments)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def append(self, lines: list[str]) -> None:
        data = ("\n".join(lines) + "\n").encode()
        with self._lock:
            if self._bytes + len(data) > self.max_bytes:
                raise SpoolFull(
                    f"spool {self.directory} holds {self._bytes} bytes, limit {self.max_bytes}"
                )
            path = self.directory / f"{self._seq:012d}.lp"
            tmp = path.with_suffix(".tmp")
            with tmp.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.rename(path)
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self._seq += 1
            self._segments.append(path)
            self._bytes += len(data)
            SPOOL_BYTES.set(self._bytes)

    def oldest(self) -> tuple[Path, list[str]] | None:
        with self._lock:
            if not self._segments:
                return None
            path = self._segments[0]
        return path, path.read_text().splitlines()

    def remove(self, path: Path) -> None:
        with self._lock:
            size = path.stat().st_size
            path.unlink()
            self._segments.remove(path)
            self._bytes -= size
            SPOOL_BYTES.set(self._bytes)
