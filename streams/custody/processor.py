"""The custody StreamProcessor: decoded reads, weighings, batches, manifests → custody events.

Never keep state the store has not committed: when saving fails, the tracker is rebuilt from it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence

from hazwatch.alerts.model import AlertSignal, AlertSink, Severity
from hazwatch.alerts.rules import severities
from hazwatch.base.points import Point
from hazwatch.devices.clock_offset import UNCLOCKED
from hazwatch.devices.decode import Decoded
from hazwatch.devices.registry import Registry, RegistryContext
from hazwatch.devices.rfid import reads_of
from hazwatch.streams.custody.rules import (
    RULE_SPECS,
    Changes,
    Geography,
    Input,
    Judgement,
    ManifestInfo,
    Read,
    Registration,
    SiteLimits,
    Tracker,
    Violation,
    Weighing,
)
from hazwatch.streams.custody.settings import CustodyLimits
from hazwatch.streams.custody.store import CustodyStore

log = logging.getLogger(__name__)

# the severity each custody rule raises with, as declared (rules.py RULE_SPECS)
SEVERITY = severities(RULE_SPECS)


def event_id(topic: str, ts_ns: int, key: str) -> str:
    """An id derived from the source message: a redelivery gets the same id."""
    digest = hashlib.blake2b(f"{topic}|{ts_ns}|{key}".encode(), digest_size=10).hexdigest()
    return digest


def geography(registry: Registry, limits: CustodyLimits | None = None) -> Geography:
    """What the rules need: the custody settings' tolerances (the defaults without them) and
    the registry's sites, distances and readers whose fields overlap."""
    return Geography(
        limits if limits is not None else CustodyLimits(),
        {
            site.id: SiteLimits(site.storage_limit_kg, site.storage_limit_days)
            for site in registry.sites.values()
        },
        registry.distance_km,
        registry.overlapping(),
    )


def to_inputs(messages: Sequence[Decoded], registry: RegistryContext) -> list[Input]:
    """The custody inputs among decoded messages (readers/scales the registry knows)."""
    inputs: list[Input] = []
    for decoded in messages:
        topic, record = decoded.topic, decoded.record
        family, kind = topic.family, topic.kind
        # its device's clock as the ingest pipeline measured it: each time below is corrected
        # by it, and the input keeps how (event ids stay those of the device's own times)
        clock = decoded.clock or UNCLOCKED
        offset, error, basis = clock.offset_ns, clock.error_ns, clock.basis
        if family == "rfid" and kind == "read":
            location = registry.reader_location(topic.site, topic.device)
            if location is None:
                continue  # kept in InfluxDB with unknown_reader; never a custody event
            for read in reads_of(record):  # a reader's own event message may hold several
                inputs.append(
                    Read(
                        event_id=event_id(str(topic), read.ts, read.epc),
                        epc=read.epc,
                        site=topic.site,
                        device=topic.device,
                        location=location,
                        ts_ns=read.ts + offset,
                        rssi=read.rssi,
                        antenna=read.antenna,
                        clock_offset_ns=offset,
                        clock_error_ns=error,
                        clock_basis=basis,
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
                    record.ts + offset,
                    clock_offset_ns=offset,
                    clock_error_ns=error,
                    clock_basis=basis,
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
                    record.ts + offset,
                    record.waste_name,
                    record.category,
                    record.container_type,
                    record.handler,
                    record.producer,
                    clock_offset_ns=offset,
                    clock_error_ns=error,
                    clock_basis=basis,
                )
            )
        elif family == "terminal" and kind == "manifest":
            inputs.append(
                ManifestInfo(
                    record.manifest,
                    tuple(record.batches),
                    record.receiver,
                    topic.site,
                    record.ts + offset,
                    record.transit_limit_h,
                    record.transporter,
                    record.vehicle,
                    clock_offset_ns=offset,
                    clock_error_ns=error,
                    clock_basis=basis,
                )
            )
    return inputs


class CustodyProcessor:
    """Feeds the tracker, commits its changes in one transaction, alerts, returns points.

    Several workers may share the store, each seeing part of the messages (docs/design-notes.md):
    under the store's lock a processor first applies what the others stored since it last
    looked, then its own inputs, and saves; it alerts what its commit changed in the stored
    verdicts, nothing the others already alerted.
    """

    name = "custody"

    def __init__(
        self,
        tracker: Tracker,
        registry: RegistryContext,
        alerts: AlertSink,
        store: CustodyStore | None = None,
        *,
        limits: CustodyLimits | None = None,
    ) -> None:
        """`limits`: the custody settings' tolerances (hazwatch.settings `custody`), the
        defaults without them."""
        self.tracker = tracker
        self.registry = registry
        self.limits = limits if limits is not None else CustodyLimits()
        self.alerts = alerts
        self.store = store
        self.seen_seq = 0  # the store's seq this tracker has applied everything up to
        self._geo_version = -1
        # the pipeline calls tick() from its periodic thread while process() runs
        self._lock = threading.Lock()
        self._sync_geography()
        self._rederive = False
        if store is not None:
            self.reload()
            # a store written before reads became passes (v3): derive its events again
            self._rederive = store.rederive_pending()

    def reload(self) -> None:
        """Rebuild the tracker from the store (at start, and after a failed save)."""
        assert self.store is not None
        fresh = Tracker(self.tracker.geo)
        # the clock first: whatever is stored after it is caught up again (a no-op), and
        # nothing stored before it can be missed
        seen_seq = self.store.clock()
        items, arrived = self.store.load_inputs()
        # verdicts do not depend on arrival order: one call replays everything; every
        # violation found now was alerted on before
        fresh.apply(items, max(arrived.values(), default=0) or fresh_now(items))
        fresh.alert_all_orphans()
        # keep the one epc → batch dict object: the decode context holds it
        shared = self.tracker.epc_batch
        shared.clear()
        shared.update(fresh.epc_batch)
        fresh.epc_batch = shared
        self.tracker.__dict__.update(vars(fresh))
        self.seen_seq = seen_seq

    def _sync_geography(self) -> None:
        self.registry.refresh()
        if self.registry.version != self._geo_version:
            self._geo_version = self.registry.version
            self.tracker.geo = geography(self.registry.current, self.limits)

    def process(self, messages: Sequence[Decoded], now_ns: int) -> list[Point]:
        with self._lock:
            self._sync_geography()
            if self._rederive:
                self.rederive(now_ns)
            inputs = to_inputs(messages, self.registry)
            if not inputs:
                return []
            return self._exchange(inputs, lambda: self.tracker.apply(inputs, now_ns), now_ns)

    def tick(self, now_ns: int) -> list[Point]:
        with self._lock:
            self._sync_geography()
            if self._rederive:
                self.rederive(now_ns)
            return self._exchange([], lambda: self.tracker.check(now_ns), now_ns)

    def rederive(self, now_ns: int) -> None:
        """Replace every stored event, diagnostic and verdict by what the stored inputs give
        now, and alert the difference from the stored verdicts (once, for a store written
        before reads became passes: one custody event per read, 200 for one carry)."""
        assert self.store is not None
        store = self.store
        under_lock = store.db.kind == "postgres"
        try:
            with store.locked() as clock:
                if not store.rederive_pending():  # another worker did it
                    self._rederive = False
                    return
                self._catch_up(clock, now_ns)
                final = dict(self.tracker.judged)
                before = store.alerted(final)
                store.replace_all(final.values(), clock + 1)
                self.seen_seq = clock + 1
                if under_lock:
                    self._alert(final, before, Changes(), now_ns)
        except Exception:
            self.reload()
            raise
        if not under_lock:
            self._alert(final, before, Changes(), now_ns)
        self._rederive = False
        log.info("custody: events of %d batches derived again from their reads", len(final))

    def _commit(self, inputs: Sequence[Input], changes: Changes, now_ns: int) -> list[Point]:
        """Save and alert changes the caller has applied already (bench/custody.py)."""
        return self._exchange(inputs, lambda: changes, now_ns)

    def _exchange(
        self, inputs: Sequence[Input], own: Callable[[], Changes], now_ns: int
    ) -> list[Point]:
        """Catch up, apply `own`, save and commit under the store's lock; then alert."""
        if self.store is None:
            changes = own()
            if not (inputs or changes.batches or changes.raised or changes.cleared):
                return []
            for violation in changes.cleared:
                self.alerts.clear(violation.rule, violation.subject, now_ns)
            for violation in changes.raised:
                self._raise(violation)
            return points(changes)
        store = self.store
        # Alerts must reach the alert store in commit order, or a worker's clear may land
        # before the raise it answers. On PostgreSQL they are sent under the lock (with one
        # StateDB for both, inside the transaction too); SQLite cannot nest the alert store's
        # transaction in this one, so there they follow the commit (see _alert).
        under_lock = store.db.kind == "postgres"
        final: dict[str, Judgement] = {}
        before: dict[str, list[tuple[str, str]]] = {}
        try:
            with store.locked() as clock:
                caught = self._catch_up(clock, now_ns)
                changes = own()
                if inputs or changes.batches or caught.batches:
                    # The stored verdicts are what every worker alerted against: raise and
                    # clear the difference this commit makes, whoever's input made it.
                    # (a batch whose reads only went on with a pass keeps its stored verdict
                    # row: its events are written, nothing is alerted)
                    judged = [b for b in changes.batches if b not in changes.events_only]
                    final = {b: self.tracker.judged[b] for b in (*caught.batches, *judged)}
                    before = store.alerted(final)
                    # the events and diagnostics this call changed (the caught-up ones are
                    # stored already), the verdicts of every batch it judged
                    own_changes = Changes(
                        changes.events,
                        final,
                        dropped=changes.dropped,
                        notes=changes.notes,
                        dropped_notes=changes.dropped_notes,
                    )
                    store.write(inputs, own_changes, now_ns, clock + 1)
                    self.seen_seq = clock + 1
                if under_lock:
                    self._alert(final, before, changes, now_ns)
        except Exception:
            # the messages will be redelivered: forget what was applied but not stored
            self.reload()
            raise
        if not under_lock:
            self._alert(final, before, changes, now_ns)
        return points(changes)

    def _alert(
        self,
        final: dict[str, Judgement],
        before: dict[str, list[tuple[str, str]]],
        changes: Changes,
        now_ns: int,
    ) -> None:
        """Raise and clear what changed from the stored verdicts `before` to `final`.

        Unknown tags have no stored verdict (their subject is an EPC): those are the tracker's
        own findings, and never a caught-up read's (the worker that stored it alerts it).
        """
        for batch, judgement in final.items():
            had = before.get(batch, [])
            now_rules = {v.rule for v in judgement.violations}
            for rule in dict.fromkeys(rule for rule, _ in had if rule not in now_rules):
                self.alerts.clear(rule, batch, now_ns)
            had_keys = set(had)
            for violation in judgement.violations:
                if (violation.rule, violation.event_id) not in had_keys:
                    self._raise(violation)
        for violation in changes.cleared:
            if violation.rule == "unknown_tag":
                self.alerts.clear(violation.rule, violation.subject, now_ns)
        for violation in changes.raised:
            if violation.rule == "unknown_tag":
                self._raise(violation)

    def _catch_up(self, clock: int, now_ns: int) -> Changes:
        """Apply what other workers stored since `seen_seq` (their alerts are theirs)."""
        assert self.store is not None
        if clock == self.seen_seq:
            return Changes()
        seen = self.tracker.seen
        caught = [
            item
            for item in self.store.inputs_since(self.seen_seq)
            if (f"manifest:{item.manifest}" if isinstance(item, ManifestInfo) else item.event_id)
            not in seen
        ]
        changes = self.tracker.apply(caught, now_ns)
        # An unknown tag is alerted by the worker that stored its read, after the grace.
        for item in caught:
            if isinstance(item, Read) and item.epc in self.tracker.orphans:
                self.tracker.orphan_alerted(item)
        self.seen_seq = clock
        return changes

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
    """`custody` points (docs/payloads.md, InfluxDB schema) of new or updated custody events."""
    codes = {b: j.waste_code for b, j in changes.batches.items()}
    out = []
    for event in changes.events.values():
        fields: dict[str, float | int | bool | str] = {
            "event_id": event.event_id,
            "device": event.device,
        }
        if event.net_kg is not None:
            fields["net_kg"] = float(event.net_kg)
        if event.last_ns is not None:  # the pass that entered the stage
            fields["reads"] = event.reads
            fields["last_seen_ns"] = event.last_ns
            if event.peak_rssi is not None:
                fields["peak_rssi"] = float(event.peak_rssi)
            if event.antenna is not None:
                fields["antenna"] = event.antenna
        tags = {
            "site": event.site,
            "stage": event.stage,
            "waste_code": codes.get(event.batch, ""),
            "batch": event.batch,
        }
        out.append(Point("custody", tags, fields, event.ts_ns))
    return out
