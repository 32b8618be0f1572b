"""The custody StreamProcessor: decoded reads, weighings, batches, manifests → custody events.

Never keep state the store has not committed: when saving fails, the tracker is rebuilt from it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence

from alerts.model import AlertSignal, AlertSink, Severity
from devices.decode import Decoded
from devices.points import Point
from devices.registry import Registry, RegistryContext
from streams.custody import (
    Changes,
    Geography,
    Input,
    ManifestInfo,
    Read,
    Registration,
    SiteLimits,
    Tracker,
    Violation,
    Weighing,
)
from streams.custody_store import CustodyStore

log = logging.getLogger(__name__)

SEVERITY = {
    "skipped_stage": Severity.MAJOR,
    "backward_stage": Severity.MAJOR,
    "unknown_tag": Severity.WARNING,
    "disposed_tag": Severity.MAJOR,
    "weight_mismatch": Severity.MAJOR,
    "storage_overdue": Severity.MAJOR,
    "transit_overdue": Severity.CRITICAL,
    "wrong_receiver": Severity.CRITICAL,
    "cloned_tag": Severity.CRITICAL,
    "manifest_split": Severity.MAJOR,
    "storage_over_capacity": Severity.MAJOR,
}


def event_id(topic: str, ts_ns: int, key: str) -> str:
    """An id derived from the source message: a redelivery gets the same id."""
    digest = hashlib.blake2b(f"{topic}|{ts_ns}|{key}".encode(), digest_size=10).hexdigest()
    return digest


def geography(registry: Registry) -> Geography:
    return Geography(
        registry.custody,
        {
            site.id: SiteLimits(site.storage_limit_kg, site.storage_limit_days)
            for site in registry.sites.values()
        },
        registry.distance_km,
    )


def to_inputs(batch: Sequence[Decoded], registry: RegistryContext) -> list[Input]:
    """The custody inputs among decoded messages (readers/scales the registry knows)."""
    inputs: list[Input] = []
    for decoded in batch:
        topic, record = decoded.topic, decoded.record
        family, kind = topic.family, topic.kind
        if family == "rfid" and kind == "read":
            location = registry.reader_location(topic.site, topic.device)
            if location is None:
                continue  # kept in InfluxDB with unknown_reader; never a custody event
            inputs.append(
                Read(
                    event_id(str(topic), record.ts, record.epc),
                    record.epc,
                    topic.site,
                    topic.device,
                    location,
                    record.ts,
                )
            )
        elif family == "scale" and kind == "weight":
            location = registry.scale_location(topic.site, topic.device)
            if location is None:
                continue
            inputs.append(
                Weighing(
                    event_id(str(topic), record.ts, record.epc),
                    record.epc,
                    topic.site,
                    topic.device,
                    location,
                    float(record.net_kg),
                    record.ts,
                )
            )
        elif family == "terminal" and kind == "batch":
            inputs.append(
                Registration(
                    event_id(str(topic), record.ts, record.batch),
                    record.batch,
                    record.epc,
                    record.waste_code,
                    topic.site,
                    topic.device,
                    record.ts,
                    record.waste_name,
                    record.category,
                    record.container_type,
                    record.handler,
                    record.producer,
                )
            )
        elif family == "terminal" and kind == "manifest":
            inputs.append(
                ManifestInfo(
                    record.manifest,
                    tuple(record.batches),
                    record.receiver,
                    topic.site,
                    record.ts,
                    record.transit_limit_h,
                    record.transporter,
                    record.vehicle,
                )
            )
    return inputs


class CustodyProcessor:
    """Feeds the tracker, commits its changes in one transaction, alerts, returns points."""

    name = "custody"

    def __init__(
        self,
        tracker: Tracker,
        registry: RegistryContext,
        alerts: AlertSink,
        store: CustodyStore | None = None,
    ) -> None:
        self.tracker = tracker
        self.registry = registry
        self.alerts = alerts
        self.store = store
        self._geo_version = -1
        # the pipeline calls tick() from its periodic thread while process() runs
        self._lock = threading.Lock()
        self._sync_geography()
        if store is not None:
            self.reload()

    def reload(self) -> None:
        """Rebuild the tracker from the store (at start, and after a failed save)."""
        assert self.store is not None
        fresh = Tracker(self.tracker.geo)
        items, arrived = self.store.load_inputs()
        # verdicts do not depend on arrival order: one call replays everything; every
        # violation found now was alerted on before
        fresh.apply(items, max(arrived.values(), default=0) or fresh_now(items))
        for epc, reads in fresh.orphans.items():
            fresh.orphans[epc] = {
                event_id: (read, arrived.get(event_id, at))
                for event_id, (read, at) in reads.items()
            }
        fresh.reported_orphans = {
            read.event_id for reads in fresh.orphans.values() for read, _ in reads.values()
        }
        # keep the one epc → batch dict object: the decode context holds it
        shared = self.tracker.epc_batch
        shared.clear()
        shared.update(fresh.epc_batch)
        fresh.epc_batch = shared
        self.tracker.__dict__.update(vars(fresh))

    def _sync_geography(self) -> None:
        self.registry.refresh()
        if self.registry.version != self._geo_version:
            self._geo_version = self.registry.version
            self.tracker.geo = geography(self.registry.registry)

    def process(self, batch: Sequence[Decoded], now_ns: int) -> list[Point]:
        with self._lock:
            self._sync_geography()
            inputs = to_inputs(batch, self.registry)
            if not inputs:
                return []
            changes = self.tracker.apply(inputs, now_ns)
            return self._commit(inputs, changes, now_ns)

    def tick(self, now_ns: int) -> list[Point]:
        with self._lock:
            self._sync_geography()
            changes = self.tracker.check(now_ns)
            if not (changes.batches or changes.raised or changes.cleared):
                return []
            return self._commit([], changes, now_ns)

    def _commit(self, inputs: Sequence[Input], changes: Changes, now_ns: int) -> list[Point]:
        if self.store is not None:
            try:
                self.store.save(inputs, changes, now_ns)
            except Exception:
                # the messages will be redelivered: forget what was applied but not stored
                self.reload()
                raise
        for violation in changes.cleared:
            self.alerts.clear(violation.rule, violation.subject, now_ns)
        for violation in changes.raised:
            self._raise(violation)
        return points(changes)

    def _raise(self, violation: Violation) -> None:
        self.alerts.raise_alert(
            AlertSignal(
                rule=violation.rule,
                subject=violation.subject,
                severity=SEVERITY.get(violation.rule, Severity.MAJOR),
                message=violation.message,
                site=violation.site,
                at_ns=violation.at_ns,
                details={"event_id": violation.event_id},
                evidence=violation.event_id,
            )
        )


def fresh_now(items: Sequence[Input]) -> int:
    """The newest device time among stored inputs (the replay's notion of now)."""
    return max((item.ts_ns for item in items), default=0)


def points(changes: Changes) -> list[Point]:
    """`custody` points (DESIGN.md InfluxDB schema) of new or updated custody events."""
    codes = {b: j.waste_code for b, j in changes.batches.items()}
    out = []
    for event in changes.events.values():
        fields: dict[str, float | int | bool | str] = {
            "event_id": event.event_id,
            "device": event.device,
        }
        if event.net_kg is not None:
            fields["net_kg"] = float(event.net_kg)
        tags = {
            "site": event.site,
            "stage": event.stage,
            "waste_code": codes.get(event.batch, ""),
            "batch": event.batch,
        }
        out.append(Point("custody", tags, fields, event.ts_ns))
    return out
