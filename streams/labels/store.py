"""The labels part's SQL on StateDB: which batch each HJ 1276-2022 label id was registered
for, written by the labels processor and read by the batch page's search.

Never keep anything of a registration here but its label id, batch and time: the custody
store keeps the rest.
"""

from __future__ import annotations

from collections.abc import Iterable

from hazwatch.base.statedb import StateDB

MIGRATIONS = [
    "CREATE TABLE batch_label (label_id {text} NOT NULL, batch {text} NOT NULL, "
    "ts_ns BIGINT NOT NULL, PRIMARY KEY (label_id, batch))",
]
# a registration sent again (a redelivery, a terminal that retries) keeps its first time
_INSERT = (
    "INSERT INTO batch_label (label_id, batch, ts_ns) VALUES (?, ?, ?) "
    "ON CONFLICT (label_id, batch) DO NOTHING"
)


class LabelStore:
    """Label ids in the state store: `save` by the labels processor, `batches` for the API."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
        db.migrate("labels", MIGRATIONS)

    def save(self, rows: Iterable[tuple[str, str, int]]) -> None:
        """(label id, batch, registration time in ns) rows; one already kept is left as it is."""
        values = list(rows)
        if values:
            with self.db.transaction():
                self.db.executemany(_INSERT, values)

    def batches(self, label_id: str, limit: int = 20) -> list[str]:
        """The batches registered with this label id, newest registration first (a label is
        one batch's: more than one says a label was printed twice)."""
        return [
            str(batch)
            for (batch,) in self.db.query(
                "SELECT batch FROM batch_label WHERE label_id = ? ORDER BY ts_ns DESC, batch "
                "LIMIT ?",
                (label_id, limit),
            )
        ]
