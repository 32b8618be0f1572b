"""The custody StreamProcessor: decoded reads, weighings, batches, manifests → custody events.

Never keep state the store has not committed: when saving fails, the tracker is rebuilt from it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence

from hazwatch.alerts.model import AlertSignal, AlertSink, Severity
from hazwatch.alerts.rules import severities
from hazwatch.base.points import Point
from hazwatch.devices.clock_offset import UNCLOCKED, DeviceClocks, Retime
from hazwatch.devices.decode import Decoded
from hazwatch.devices.registry import Registry, RegistryContext
from hazwatch.devices.rfid import RfidRead, reads_of
from hazwatch.devices.schema import point_time
from hazwatch.streams.custody.rules import (
    RULE_SPECS,
    Changes,
    Geography,
    Input,
    Judgement,
    ManifestInfo,
    Pass,
    Read,
    Reads,
    Registration,
    SeenPass,
    SiteLimits,
    TagRead,
    Tracker,
    Violation,
    Weighing,
)
from hazwatch.streams.custody.settings import CustodyLimits
from hazwatch.streams.custody.store import Checkpoint, CustodyStore

log = logging.getLogger(__name__)

# the severity each custody rule raises with, as declared (rules.py RULE_SPECS)
SEVERITY = severities(RULE_SPECS)
# A checkpoint (the passes written whole, their reads' log rows no longer needed for replay)
# at each tick, and after this many reads taken since the last: a second of issue #18's
# door burst, so that a restart replays at most about that many reads beside the passes.
CHECKPOINT_READS = 20_000


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


def to_inputs(
    messages: Sequence[Decoded], registry: RegistryContext, *, grouped: bool = False
) -> list[Input]:
    """The custody inputs among decoded messages (readers/scales the registry knows).

    `grouped`: a reader's reads become one `Reads` per clock reading (the processor's hot
    path: no object per read), not a `Read` each.
    """
    inputs: list[Input] = []
    groups: dict[tuple[str, str, str, int, int, str], list[TagRead]] = {}
    locations: dict[tuple[str, str], str | None] = {}
    for decoded in messages:
        topic, record = decoded.topic, decoded.record
        family, kind = topic.family, topic.kind
        # its device's clock as the ingest pipeline measured it: each time below is corrected
        # by it, and the input keeps how (event ids stay those of the device's own times)
        clock = decoded.clock or UNCLOCKED
        offset, error, basis = clock.offset_ns, clock.error_ns, clock.basis
        if family == "rfid" and kind == "read" and grouped:
            reader = (topic.site, topic.device)
            if reader in locations:
                location = locations[reader]
            else:
                location = locations[reader] = registry.reader_location(*reader)
            if location is None:
                continue  # kept in InfluxDB with unknown_reader; never a custody event
            key = (topic.site, topic.device, location, offset, error, basis)
            bucket = groups.get(key)
            if bucket is None:
                bucket = groups[key] = []
            if type(record) is RfidRead:
                bucket.append((record.epc, record.ts, record.rssi, record.antenna))
            else:
                bucket.extend((r.epc, r.ts, r.rssi, r.antenna) for r in reads_of(record))
        elif family == "rfid" and kind == "read":
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
                    device=topic.device,
                )
            )
    inputs.extend(Reads(*key[:3], reads, *key[3:]) for key, reads in groups.items())
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
        clocks: DeviceClocks | None = None,
        defer_load: bool = False,
    ) -> None:
        """`limits`: the custody settings' tolerances (hazwatch.settings `custody`), the
        defaults without them. `clocks`: the devices' clocks the ingest pipeline measures
        (the clocks part's): when one's offset is taken over (first known, or new after a
        step), what custody took from that device before is read again by it. `defer_load`:
        the tracker is rebuilt from the store by `load` (the service's start-up thread), not
        here; until then batches with no custody input pass at once (`ready`)."""
        self.tracker = tracker
        self.clocks = clocks
        # offsets taken over, applied with the next commit (kept until one succeeds)
        self._retimes: list[Retime] = []
        self.registry = registry
        self.limits = limits if limits is not None else CustodyLimits()
        self.alerts = alerts
        self.store = store
        self.seen_seq = 0  # the store's seq this tracker has applied everything up to
        # batch → ids of its events and diagnostics whose stored rows lag the tracker: a pass
        # going on only grows them, written at the next checkpoint or when the batch changes
        self._behind: dict[str, set[str]] = {}
        self._unsaved_reads = 0  # reads taken since the last checkpoint
        # pass rows to write and delete at the next checkpoint, from the last reload
        self._carried: tuple[
            list[tuple[str, Pass]],
            list[tuple[str, str, str, str, int]],
            list[tuple[str, str, str, str]],
        ] = ([], [], [])
        self._geo_version = -1
        # the pipeline calls tick() from its periodic thread while process() runs
        self._lock = threading.Lock()
        self._sync_geography()
        self._rederive = False
        self.ready = threading.Event()  # the tracker holds the stored open work
        if not defer_load:
            self.load()

    def load(self) -> None:
        """Rebuild the tracker from the store, once, and be `ready` (whoever calls it first:
        the start-up thread, or the first batch with a custody input, which waits for it)."""
        with self._lock:
            if self.ready.is_set():
                return
            if self.store is not None:
                self.reload()
                # a store written before reads became passes (v3): derive its events again
                self._rederive = self.store.rederive_pending()
            self.ready.set()

    def reload(self) -> None:
        """Rebuild the tracker from the store (at start, and after a failed save)."""
        assert self.store is not None
        fresh = Tracker(self.tracker.geo)
        # the clock first: whatever is stored after it is caught up again (a no-op), and
        # nothing stored before it can be missed
        seen_seq = self.store.clock()
        # open work only: what is closed and older than closed_keep_h is loaded back when an
        # input needs it (start-up does not grow with history, issue #19 item 7)
        keep_ns = int(self.tracker.geo.limits.closed_keep_h * 3600 * 1_000_000_000)
        items, arrived, cutoff = self.store.live_inputs(keep_ns)
        fresh.stays_from = cutoff
        held, after, newest = self.store.read_logs()
        now_ns = max(max(arrived.values(), default=0), newest) or fresh_now(items)
        readers = self.store.readers()
        fresh.restore_readers(readers)  # the horizons passes were placed by
        # verdicts do not depend on arrival order: one call replays everything stored whole
        # (inputs, passes), one the reads logged after the last checkpoint; every violation
        # found now was alerted on before
        fresh.apply(items, now_ns)
        # stored as they are; but passes that merge as replayed (a longer gap set since) are
        # written whole, and the rows merged away deleted, at the next checkpoint
        made, gone, legacy = fresh.take_passes()
        self._carried = ([], [], []) if not gone else (made, gone, legacy)
        fresh.remember(held)
        self._load_back(after, now_ns, fresh)  # reads logged since for work not loaded
        replayed = fresh.apply(after, now_ns)
        fresh.restore_readers(readers)  # when each was heard, not when replayed
        fresh.take_readers()
        fresh.alert_all_orphans()
        # the stored events of what the logged reads changed may lag (the worker that took
        # them wrote what only grew at its next checkpoint, CustodyProcessor._exchange):
        # those that do are written at the next one
        touched = replayed.batches.keys() | replayed.grown.keys()
        stored = self.store.figures(touched)
        self._behind = {}
        for b in touched:
            judgement = fresh.judgement(b)
            if judgement is None:
                continue
            figures = [
                (e.event_id, (e.last_ns, e.reads, e.peak_rssi, e.antenna, ""))
                for e in judgement.events
                if e.last_ns is not None
            ]
            figures += [
                (d.pass_id, (d.last_ns, d.reads, d.peak_rssi, d.antenna, d.note))
                for d in judgement.diagnostics
            ]
            lagging = {i for i, now in figures if stored.get(i) != now}
            if lagging:
                self._behind[b] = lagging
        self._unsaved_reads = sum(len(g.reads) for g in after)
        # keep the one epc → batch dict object: the decode context holds it
        shared = self.tracker.epc_batch
        shared.clear()
        shared.update(fresh.epc_batch)
        fresh.epc_batch = shared
        if not self.store.rederive_pending():
            fresh.evict()  # closed work stays in the store, loaded back when an input needs it
        self.tracker.__dict__.update(vars(fresh))
        self.seen_seq = seen_seq

    def _sync_geography(self) -> None:
        self.registry.refresh()
        if self.registry.version != self._geo_version:
            self._geo_version = self.registry.version
            self.tracker.geo = geography(self.registry.current, self.limits)

    def process(self, messages: Sequence[Decoded], now_ns: int) -> list[Point]:
        if not self.ready.is_set():
            if not to_inputs(messages, self.registry, grouped=True):
                return []  # nothing for custody: the other families go on while it loads
            self.load()
        with self._lock:
            self._sync_geography()
            if self._rederive:
                self.rederive(now_ns)
            inputs = to_inputs(messages, self.registry, grouped=True)
            retimes = self._take_retimes()
            if not inputs and not retimes:
                return []
            found = self._exchange(
                inputs, lambda: self.tracker.apply(inputs, now_ns, retimes), now_ns
            )
            self._retimes = []
            return found

    def take(self, inputs: Sequence[Input], now_ns: int) -> list[Point]:
        """`process` of inputs made already (benches, tests): applied, saved, alerted."""
        self.load()
        with self._lock:
            self._sync_geography()
            return self._exchange(inputs, lambda: self.tracker.apply(inputs, now_ns), now_ns)

    def tick(self, now_ns: int) -> list[Point]:
        if not self.ready.is_set():
            return []  # (its time-based rules are judged at the first tick after)
        with self._lock:
            self._sync_geography()
            if self._rederive:
                self.rederive(now_ns)
            retimes = self._take_retimes()

            def own() -> Changes:
                changes = self.tracker.apply([], now_ns, retimes) if retimes else Changes()
                changes.merge(self.tracker.check(now_ns))
                return changes

            found = self._exchange([], own, now_ns, tick=True)
            self._retimes = []
            return found

    def _take_retimes(self) -> list[Retime]:
        """The offsets taken over since the last commit, of the devices custody takes inputs
        from (the others' are no business of custody's)."""
        if self.clocks is not None:
            self._retimes += [
                r for r in self.clocks.take_retimes() if r.key[1] in ("rfid", "terminal", "scale")
            ]
        return list(self._retimes)

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
        self,
        inputs: Sequence[Input],
        own: Callable[[], Changes],
        now_ns: int,
        *,
        tick: bool = False,
    ) -> list[Point]:
        """Catch up, apply `own`, save and commit under the store's lock; then alert.

        What a pass going on changes (its events' and diagnostics' last read, reads, peak)
        is kept in the tracker and written at the next checkpoint (each tick, and after
        CHECKPOINT_READS reads) or with the batch's next change, not at every batch: the
        reads themselves are saved with every batch (custody_read_log), so nothing is lost.
        """
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
        written = Changes()
        try:
            with store.locked() as clock:
                caught = self._catch_up(clock, now_ns)
                changes = self._load_back(inputs, now_ns)
                changes.merge(own())
                changes.merge(self._load_back((), now_ns))  # those a stay since changed
                self._unsaved_reads += sum(len(g.reads) for g in changes.reads)
                self._defer(caught)
                self._defer(changes)
                # The stored verdicts are what every worker alerted against: raise and clear
                # the difference this commit makes, whoever's input made it. (A batch whose
                # reads only went on with a pass keeps its stored verdict row.)
                judged = [b for b in changes.batches if b not in changes.events_only]
                caught_judged = [b for b in caught.batches if b not in caught.events_only]
                final = {b: self._judgement(b) for b in (*caught_judged, *judged)}
                written = self._rows(changes)
                checkpoint = None
                # inputs a clock retimed: written whole now (the passes too: the reads logged
                # before are no longer at their times), and every other worker rebuilds
                if tick or self._unsaved_reads >= CHECKPOINT_READS or changes.retimed:
                    self._catch_rows_up(written)
                    made, gone, legacy = self.tracker.take_passes()
                    was_made, was_gone, was_legacy = self._carried
                    checkpoint = Checkpoint(
                        was_made + made, was_gone + gone, now_ns, was_legacy + legacy,
                        rebuild=changes.retimed,
                    )  # fmt: skip
                    self._unsaved_reads = 0
                others = [i for i in inputs if not isinstance(i, Reads)]
                if (
                    final
                    or others
                    or changes.reads
                    or changes.retimed
                    or written.events
                    or written.notes
                    or (checkpoint is not None and (checkpoint.passes or checkpoint.gone))
                ):
                    before = store.alerted(final)
                    # the events and diagnostics to store now (the caught-up ones are stored
                    # already), the verdicts of every batch it judged, the reads it took
                    written.batches = final
                    written.reads = changes.reads
                    written.moved = changes.moved
                    written.readers = self.tracker.take_readers()
                    store.write(others, written, now_ns, clock + 1, checkpoint)
                    self.seen_seq = clock + 1
                    if checkpoint is not None:
                        self._carried = ([], [], [])
                if checkpoint is not None and not self._rederive:
                    self.tracker.evict()  # what they changed is stored: loaded back if need be
                if under_lock:
                    self._alert(final, before, changes, now_ns)
        except Exception:
            # the messages will be redelivered: forget what was applied but not stored
            self.reload()
            raise
        if not under_lock:
            self._alert(final, before, changes, now_ns)
        batches = self.tracker.batches
        return points(
            written, {e.batch: batches[e.batch].info.waste_code for e in written.events.values()}
        )

    def _defer(self, changes: Changes) -> None:
        """Keep the ids of what only a pass going on changed, to write it later."""
        behind = self._behind
        for batch, ids in changes.grown.items():
            if batch in behind:
                behind[batch] |= ids
            else:
                behind[batch] = set(ids)

    def _judgement(self, batch: str) -> Judgement:
        judgement = self.tracker.judgement(batch)
        assert judgement is not None
        return judgement

    def _rows(self, changes: Changes) -> Changes:
        """The events and diagnostics to write now: those of the batches judged whole (and
        of those, what lagged before), none of a pass only going on."""
        rows = Changes(
            dict(changes.events),
            dropped=changes.dropped,
            notes=dict(changes.notes),
            dropped_notes=changes.dropped_notes,
        )
        for batch in changes.batches:
            if batch in self._behind:
                self._lagging(batch, self._behind.pop(batch), rows)
        return rows

    def _catch_rows_up(self, rows: Changes) -> None:
        """A checkpoint: every lagging event and diagnostic joins the rows to write."""
        behind, self._behind = self._behind, {}
        for batch, ids in behind.items():
            self._lagging(batch, ids, rows)

    def _lagging(self, batch: str, ids: set[str], rows: Changes) -> None:
        judgement = self.tracker.judgement(batch)
        if judgement is None or not ids:
            return
        for event in judgement.events:
            if event.event_id in ids and event.event_id not in rows.events:
                rows.events[event.event_id] = event
        for note in judgement.diagnostics:
            if note.pass_id in ids and note.pass_id not in rows.notes:
                rows.notes[note.pass_id] = note

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
        stored = self.store.inputs_since(self.seen_seq)
        if stored is None:
            # reads this worker missed are in the stored passes only now: start again from them
            self.reload()
            return Changes()
        seen = self.tracker.seen
        caught = [
            item
            for item in stored
            if isinstance(item, Reads | SeenPass)
            or (f"manifest:{item.manifest}" if isinstance(item, ManifestInfo) else item.event_id)
            not in seen
        ]
        changes = self._load_back(caught, now_ns)
        changes.merge(self.tracker.apply(caught, now_ns))
        changes.merge(self._load_back((), now_ns))
        # An unknown tag is alerted by the worker that stored its read, after the grace.
        orphans = self.tracker.orphans
        for item in caught:
            if (isinstance(item, Read) and item.epc in orphans) or (
                isinstance(item, Reads) and orphans
            ):
                self.tracker.orphan_alerted(item)
        self.seen_seq = clock
        return changes

    def _load_back(
        self, inputs: Iterable[Input], now_ns: int, tracker: Tracker | None = None
    ) -> Changes:
        """Load back from the store the evicted batches (Tracker.evict) these inputs are for
        (an EPC, a batch or a manifest's batch the tracker does not hold) and those a stay
        changed (Tracker.wanted), before the inputs are applied. What it changes is written
        again as it was stored, and alerted only where it differs from the stored verdicts."""
        tracker = tracker or self.tracker
        inputs = list(inputs)
        if self.store is None:
            tracker.wanted.clear()
            return Changes()
        found = Changes()
        stays_from = tracker.stays_from
        if stays_from is not None and any(_time_of(item) < stays_from for item in inputs):
            # older than what a restart loaded: every stored stay counts from now on
            found = tracker.restore_stays(self.store.closed_stays(tracker.batches), now_ns)
        known, held = tracker.epc_batch, tracker.batches
        epcs: set[str] = set()
        batches = set(tracker.wanted)
        tracker.wanted.clear()
        for item in inputs:
            if isinstance(item, Reads):
                epcs.update(epc for epc, *_ in item.reads if epc not in known)
            elif isinstance(item, ManifestInfo):
                batches.update(b for b in item.batches if b not in held)
            elif isinstance(item, Registration):
                if item.batch not in held:
                    batches.add(item.batch)
                    epcs.add(item.epc)  # its reads before it, if they were left in the store
            elif item.epc not in known:
                epcs.add(item.epc)
        epcs -= known.keys()
        if not epcs and not batches:
            return found
        before = set(held)
        loaded = self.store.evicted_inputs(epcs, batches, held, tracker.orphans)
        if loaded:
            found.merge(self._as_stored(tracker.load_back(loaded, now_ns), held.keys() - before))
        return found

    def _as_stored(self, changes: Changes, back: set[str]) -> Changes:
        """Leave out of a load-back's changes the events and diagnostics of the batches loaded
        `back` that are as stored: they are in the store and InfluxDB already, so a redelivery
        for an evicted batch writes no point again (its verdict is compared with the stored
        one by the alerts, and an event or diagnostic that did change is still written)."""
        assert self.store is not None
        for batch in back:
            for event in self.store.events(batch):
                if changes.events.get(event.event_id) == event:
                    del changes.events[event.event_id]
            for note in self.store.diagnostics(batch):
                if changes.notes.get(note.pass_id) == note:
                    del changes.notes[note.pass_id]
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
                # the sentence's values, for streams/custody/text.py and the alert API
                details={"event_id": violation.event_id, "params": dict(violation.params)},
                evidence=violation.event_id,
            )
        )


def _time_of(item: Input) -> int:
    """The oldest device time an input brings (a `Reads`' first read's, a pass's first)."""
    if isinstance(item, Reads):
        return min((ts for _, ts, *_ in item.reads), default=0) + item.clock_offset_ns
    if isinstance(item, SeenPass):
        return item.seen.first_ns
    return item.ts_ns


def fresh_now(items: Sequence[Input]) -> int:
    """The newest device time among stored inputs (the replay's notion of now)."""
    return max((item.ts_ns for item in items), default=0)


def points(changes: Changes, codes: dict[str, str] | None = None) -> list[Point]:
    """`custody` points (docs/payloads.md, InfluxDB schema) of new or updated custody events,
    their waste codes from `codes` (batch → code) or else `changes.batches`."""
    if codes is None:
        codes = {b: j.waste_code for b, j in changes.batches.items()}
    out = []
    for event in changes.events.values():
        fields: dict[str, float | int | bool | str] = {
            "batch": event.batch,
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
        }
        # the batch is a field (series per site, stage and code): the time, moved within its
        # millisecond by the event id, keeps two batches' events of one instant two points,
        # and an event written again (a checkpoint, a redelivery) on its own point
        out.append(Point("custody", tags, fields, point_time(event.ts_ns, event.event_id)))
    return out
