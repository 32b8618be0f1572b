"""The labels StreamProcessor: each terminal registration that carries an HJ 1276-2022 label
id → (label id, batch) in the labels store, before the batch of messages is acked.

Never judge or refuse a registration here (the terminal contract validated it, custody judges
it); a redelivered one changes nothing (the store keeps a pair once).
"""

from __future__ import annotations

from collections.abc import Sequence

from hazwatch.base.points import Point
from hazwatch.devices.decode import Decoded
from hazwatch.streams.labels.store import LabelStore


class LabelProcessor:
    name = "labels"

    def __init__(self, store: LabelStore) -> None:
        self.store = store

    def process(self, batch: Sequence[Decoded], now_ns: int) -> list[Point]:
        del now_ns  # a label is kept with its registration's own time
        rows = [
            (str(label), str(d.record.batch), int(d.record.ts))
            for d in batch
            if d.family == "terminal"
            and d.kind == "batch"
            and (label := getattr(d.record, "label_id", None))
        ]
        self.store.save(rows)
        return []

    def tick(self, now_ns: int) -> list[Point]:
        del now_ns
        return []
