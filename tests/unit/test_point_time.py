"""Points whose identifier is a field, not a tag (#19): each keeps its own time within the
device's millisecond, so reads of one instant stay apart and a redelivery overwrites."""

from __future__ import annotations

import orjson

from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.devices.schema import point_time, spread

MS = 1_000_000
T0 = 1_796_000_000_000 * MS  # a whole millisecond
# two EPCs whose offsets are the same (crc32 % 10^6 = 652941): found by search, kept as a case
TWINS = ("E2801100000000000000063A", "E28011000000000000000879")
NOW_NS = T0 + 60 * 1_000_000_000


def test_the_time_stays_in_its_millisecond_and_one_identifiers_times_keep_their_order() -> None:
    for epc in ("E1", "E280463A24409395FCE848ED", *TWINS):
        times = [point_time(T0 + sub, epc) for sub in (0, 1, 999, 500_000, MS - 1)]
        assert all(t // MS == T0 // MS for t in times)
        assert len(set(times)) == 5  # one EPC at five instants: five times
        assert point_time(T0 + 7, epc) == point_time(T0 + 7, epc)  # deterministic


def test_twenty_containers_read_in_one_millisecond_have_twenty_times() -> None:
    epcs = [f"E280116{n:017X}" for n in range(20)]
    assert len({point_time(T0, epc) for epc in epcs}) == 20


def test_spread_parts_the_twins_of_one_message_and_is_the_same_again() -> None:
    twins = [point_time(T0, epc) for epc in TWINS]
    assert twins[0] == twins[1]
    parted = spread(twins)
    assert parted == [twins[0], twins[0] + 1] and spread(twins) == parted
    last = T0 + MS - 1
    assert spread([last, last]) == [last, T0]  # it wraps within the millisecond


def test_a_vendor_message_reading_the_twins_at_once_makes_two_points() -> None:
    events = [
        {
            "timestamp": "2026-11-30T00:50:00.123Z",
            "eventType": "tagInventory",
            "tagInventoryEvent": {"epcHex": epc, "antennaPort": 1},
        }
        for epc in TWINS
    ]

    class Impinj(NoRegistry):
        def reader_payload(self, site: str, reader: str) -> str:
            return "impinj-r700"

    topic = "hw/jy-0012/rfid/gate-03/read"
    points = decode(topic, orjson.dumps(events), Impinj(), now_ns=NOW_NS).points
    assert [p.fields["epc"] for p in points] == list(TWINS)
    assert len({p.identity() for p in points}) == 2
    again = decode(topic, orjson.dumps(events), Impinj(), now_ns=NOW_NS).points
    assert [p.identity() for p in again] == [p.identity() for p in points]


def test_reads_at_different_microseconds_never_share_a_time() -> None:
    """A microsecond clock (LLRP, six-digit RFC 3339) keeps its microsecond: a busy reader's
    reads of different tags in one millisecond cannot meet, whatever their offsets (a fleet
    at full speed once merged two of 1,500 reads when all 10⁶ ns of the millisecond were
    shared)."""
    instants = [T0 + us * 1_000 for us in range(1, 1000)]
    epcs = [f"E280116{n:017X}" for n in range(len(instants))]
    times = [point_time(ts, epc) for ts, epc in zip(instants, epcs, strict=True)]
    assert [t // 1_000 for t in times] == [ts // 1_000 for ts in instants]  # its microsecond
    assert len(set(times)) == len(instants)
    same_epc = [point_time(ts, TWINS[0]) for ts in instants]
    assert same_epc == sorted(same_epc) and len(set(same_epc)) == len(instants)
