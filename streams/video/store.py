"""The video part's evidence store: the snapshot JPEGs camera agents upload, in one folder.

Never store a file under a name devices.camera refuses, nor overwrite one; never prune the
evidence an alert still open or acknowledged cites.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hazwatch.base.errors import HazwatchError
from hazwatch.devices.camera import check_snapshot_name


def snapshot_dir(data_dir: Path | str) -> Path:
    """Where evidence snapshots live under the data directory."""
    return Path(data_dir) / "snapshots"


class EvidenceConflict(HazwatchError):
    """A snapshot of that name is already stored with other content."""


class EvidenceStore:
    """One folder of snapshots, each under its snapshot name (devices.camera.snapshot_name)."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    def path(self, name: str) -> Path:
        """Where the snapshot `name` is (or would be) stored; ValueError for a bad name."""
        return self.folder / check_snapshot_name(name)

    def find(self, name: str) -> Path | None:
        """The stored file of snapshot `name` (None when there is none); ValueError: a bad name."""
        path = self.path(name)
        return path if path.is_file() else None

    def put(self, name: str, data: bytes) -> bool:
        """Store `data` as snapshot `name`, on disk when this returns: True when written, False
        when already stored with this content (a retry); EvidenceConflict for other content."""
        target = self.path(name)
        self.folder.mkdir(parents=True, exist_ok=True)
        if target.exists():
            if target.read_bytes() == data:
                return False
            raise EvidenceConflict(f"{name} exists with other content")
        self._write_durably(name, data)
        return True

    def _write_durably(self, name: str, data: bytes) -> None:
        """The file, then its name, on disk before the agent hears 201 and drops its own copy."""
        tmp = self.folder / f".{name}.{os.getpid()}.tmp"
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.folder / name)
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def of_camera(self, site: str, camera: str, limit: int = 50) -> list[str]:
        """The names of `camera`'s snapshots at `site`, newest first (by the time in the name:
        devices.camera.snapshot_name puts it after the site and camera, sortable as text)."""
        if not self.folder.is_dir():
            return []
        # the time stamp right after the ids tells site "a", camera "b_c" from site "a_b" …
        named = re.compile(re.escape(f"{site}_{camera}_") + r"[0-9]{8}T[0-9]{9}Z_")
        names = [p.name for p in self.folder.glob(f"{site}_*.jpg") if named.match(p.name)]
        return sorted(names, reverse=True)[:limit]

    def prune(self, keep_s: float, now_s: float, keep: set[str]) -> list[str]:
        """Delete snapshots older than `keep_s` (by file time), except those named in `keep`
        (the evidence of alerts still open or acknowledged); returns the names deleted."""
        if not self.folder.is_dir():
            return []
        deleted = []
        for path in self.folder.glob("*.jpg"):
            if path.name in keep:
                continue
            try:
                if now_s - path.stat().st_mtime > keep_s:
                    path.unlink()
                    deleted.append(path.name)
            except FileNotFoundError:  # another worker pruned it first
                continue
        return sorted(deleted)
