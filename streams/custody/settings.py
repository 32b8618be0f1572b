"""The custody rules' tolerances, in one frozen dataclass: its defaults are the defaults, its
constraints are checked where settings are read (hazwatch.settings composes it as `custody`:
the settings file's [custody] table, env HAZWATCH_CUSTODY__<NAME>).

Never read the environment or a file here: the composition root builds one and hands it in.
A site's storage_limit_kg / storage_limit_days are facts about a storage point, not
tolerances: they stay in the device registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

HOURS_PER_YEAR = 24 * 365


@dataclass(frozen=True, slots=True)
class CustodyLimits:
    """Tolerances of the custody rules (the rule declarations in rules.py take their defaults
    from here)."""

    # a reweighing differs by more than the larger of these: weight_mismatch
    weight_tolerance_pct: Annotated[float, Field(ge=0, le=100)] = 5.0
    weight_tolerance_kg: Annotated[float, Field(ge=0, le=1e6)] = 2.0
    # not received this long after dispatch, when the manifest names no limit: transit_overdue
    transit_limit_h: Annotated[float, Field(ge=0.01, le=HOURS_PER_YEAR)] = 24.0
    # two fixed readers too far apart to travel between at this speed: cloned_tag
    max_speed_kmh: Annotated[float, Field(ge=1, le=2000)] = 120.0
    # ... beyond this much distance, which a site's extent and its coordinates' error explain
    clone_slack_km: Annotated[float, Field(ge=0, le=100)] = 5.0
    # a manifest's batches leave within this of its first: manifest_split
    manifest_window_h: Annotated[float, Field(ge=0, le=HOURS_PER_YEAR)] = 2.0
    # a tag of no registered batch, still none after this: unknown_tag
    unknown_tag_grace_s: Annotated[float, Field(ge=0, le=86400 * 30)] = 300.0

    # Reads become passes (rules.py `passes`, docs/payloads.md "Passes"): the reads of one
    # EPC at one reader belong to one pass until the tag is unseen there for longer than the
    # gap of the reader's location kind; a pass shorter than the kind's minimum dwell
    # (last seen - first seen) is no custody event, only a diagnostic.
    #
    # Doors (storage_in, storage_out). The gap must outlast the reader's own reporting
    # period and a few missed rounds: an Impinj R700 on its IoT device interface reports
    # every singulation unless tagReporting.reportingIntervalSeconds is set ("the duration
    # after which a tag persisting in the field of view is reported again", 0 = off); a
    # Zebra FX7500/FX9600 in the IoT Connector's INVENTORY mode reports each tag once per
    # interval, 1 s by default. 3 s is three of Zebra's intervals, or some 75 inventory
    # rounds at the 25 reads/s the issue cites (10-50 a second for a moving drum). The
    # minimum dwell: a drum carried through a door's read zone (1-2 m at walking pace) is in
    # the field for one to several seconds (8 s in issue #18's example); a glimpse shorter
    # than half a second, a dozen rounds at 25/s, is a tag passing by outside the door.
    # A reader that reports a tag once per pass (Zebra's SIMPLE mode, a reporting interval
    # longer than a pass) gives passes of one read, dwell 0: set door_min_dwell_s = 0 then.
    door_gap_s: Annotated[float, Field(ge=0.1, le=3600)] = 3.0
    door_min_dwell_s: Annotated[float, Field(ge=0, le=600)] = 0.5
    # Vehicles: the load is in the field for the whole trip, read in bursts as it shifts and
    # the reader cycles its antennas; one trip is one pass, a dwell says nothing there.
    vehicle_gap_s: Annotated[float, Field(ge=0.1, le=86400)] = 60.0
    vehicle_min_dwell_s: Annotated[float, Field(ge=0, le=3600)] = 0.0
    # A receiver's gate: a truck drives through at a walking to driving pace, so a real pass
    # may be short; the gate's weighing confirms the receipt. The gap as at a door.
    receiver_gate_gap_s: Annotated[float, Field(ge=0.1, le=3600)] = 3.0
    receiver_gate_min_dwell_s: Annotated[float, Field(ge=0, le=600)] = 0.0
    # A disposal line: the container stops at the feed point and is read while it waits.
    disposal_gap_s: Annotated[float, Field(ge=0.1, le=86400)] = 10.0
    disposal_min_dwell_s: Annotated[float, Field(ge=0, le=3600)] = 0.0
    # Cross-reads: passes of one EPC at two readers the registry declares overlapping
    # (`overlaps`), closer in time than this, are one presence: the stronger pass places it
    # (peak RSSI, then reads, then reader id), the weaker is a diagnostic. 2 s covers two
    # readers' clocks on NTP and their report buffering (Zebra's 1 s interval).
    cross_read_window_s: Annotated[float, Field(ge=0, le=3600)] = 2.0
    # Which of two overlapping passes is stronger can change while both go on, so a pass at
    # a reader with overlapping readers is placed once settled (rules.py `classify`): its
    # reader has reported something later than its last read + the gap, or been silent that
    # long since (hazwatch's time), and each overlapping reader is past it by the window. A
    # read older than this when it arrives is a backlog's (a reader's buffered upload, a
    # replay of old messages): its pass is settled by its age and placed as it comes. 10 min
    # covers a reader whose clock offset is not measured yet by the minutes issue #18 cites
    # (the offset is measured within its first minute, devices/clock_offset.py).
    late_read_s: Annotated[float, Field(ge=0, le=86400)] = 600.0
    # A batch closed (complete, or disposed and broken) leaves the tracker's memory this long
    # (device time) after its last event, and is loaded back from the store when an input for
    # it comes later (Tracker.evict, CustodyProcessor): memory is bounded by open work, not by
    # history. No window bounds what a late input may change (a tag read after disposal is
    # disposed_tag whenever it comes), so this is no rule's limit, only what is kept at hand:
    # a day covers a gateway back after a day's outage and a receiver's late weighing at
    # memory speed; later ones cost one indexed look-up in the store each.
    closed_keep_h: Annotated[float, Field(ge=0, le=HOURS_PER_YEAR)] = 24.0

    def pass_gap_ns(self, location: str) -> int:
        """The gap that closes a pass at a reader of this location kind, in ns."""
        return int(getattr(self, f"{_KIND.get(location, 'door')}_gap_s") * NS_PER_S)

    def min_dwell_ns(self, location: str) -> int:
        """The shortest pass that is custody at a reader of this location kind, in ns."""
        return int(getattr(self, f"{_KIND.get(location, 'door')}_min_dwell_s") * NS_PER_S)


NS_PER_S = 1_000_000_000
# a reader's location kind → the settings' prefix for it (doors share theirs)
_KIND = {
    "storage_in": "door",
    "storage_out": "door",
    "vehicle": "vehicle",
    "receiver_gate": "receiver_gate",
    "disposal": "disposal",
}
