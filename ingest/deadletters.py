"""Dead letters: every message hazwatch could not accept, kept with raw bytes, topic, time, reason.

Never drop one: a dead letter is stored (state store) before its message is acknowledged.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from prometheus_client import Counter

from devices.statedb import StateDB
from devices.timeparse import format_ts
from devices.topics import DEADLETTER_ROOT

DEADLETTERS = Counter("hazwatch_deadletters_total", "Messages dead-lettered", ["reason"])

MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS deadletters (
        id {id},
        received_ns BIGINT NOT NULL,
        topic TEXT NOT NULL,
        reason TEXT NOT NULL,
        message TEXT NOT NULL,
        raw {blob} NOT NULL
    );
    CREATE INDEX IF NOT EXISTS deadletters_received ON deadletters (received_ns)
    """
]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received_ns: int
    topic: str
    reason: str  # short key: bad_json, missing_field, out_of_range, influx_rejected ...
    message: str  # the sentence a person reads
    raw: bytes
    id: int | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "time": format_ts(self.received_ns),
            "topic": self.topic,
            "reason": self.reason,
            "message": self.message,
            "raw_base64": base64.b64encode(self.raw).decode(),
        }

    def mqtt_topic(self) -> str:
        """hw/deadletter/{reason}/{original topic without hw/}."""
        original = self.topic.removeprefix("hw/") if self.topic.startswith("hw/") else "unknown"
        return f"{DEADLETTER_ROOT}/{self.reason}/{original}"[:1024]

    def mqtt_payload(self) -> bytes:
        return orjson.dumps(self.to_json())


class DeadLetterStore:
    def __init__(self, db: StateDB) -> None:
        self.db = db
        db.migrate("deadletters", MIGRATIONS)

    def add_many(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        with self.db.transaction():
            self.db.executemany(
                "INSERT INTO deadletters (received_ns, topic, reason, message, raw) "
                "VALUES (?, ?, ?, ?, ?)",
                [(d.received_ns, d.topic, d.reason, d.message, d.raw) for d in letters],
            )
        for letter in letters:
            DEADLETTERS.labels(letter.reason).inc()

    def latest(self, limit: int = 50, reason: str | None = None) -> list[DeadLetter]:
        where = "WHERE reason = ? " if reason else ""
        params: tuple[object, ...] = (reason, limit) if reason else (limit,)
        rows = self.db.query(
            "SELECT id, received_ns, topic, reason, message, raw FROM deadletters "
            f"{where}ORDER BY received_ns DESC, id DESC LIMIT ?",
            params,
        )
        return [DeadLetter(int(r[1]), r[2], r[3], r[4], bytes(r[5]), id=int(r[0])) for r in rows]

    def count_by_reason(self) -> dict[str, int]:
        rows = self.db.query("SELECT reason, COUNT(*) FROM deadletters GROUP BY reason")
        return {str(r[0]): int(r[1]) for r in rows}
