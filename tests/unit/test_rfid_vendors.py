"""What Impinj R700 and Zebra FX readers publish themselves, decoded as hazwatch's RFID reads.

Never invent a field: every payload here is built from the vendors' own definitions (quoted
beside it) or copied from what the readers are publicly seen to send, and says which.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from hazwatch.alerts.model import ListSink
from hazwatch.base.errors import ConfigError, PayloadError
from hazwatch.devices import rfid, rfid_vendors
from hazwatch.devices.decode import Decoded, decode
from hazwatch.devices.family import NoRegistry
from hazwatch.devices.registry import RegistryContext, parse_registry
from hazwatch.devices.rfid import ReaderReport, RfidRead, reads_of
from hazwatch.devices.schema import point_time
from hazwatch.devices.timeparse import NS_PER_S, parse_ts
from hazwatch.streams.custody.processor import to_inputs
from hazwatch.streams.video.processor import VideoProcessor

NOW_NS = 1_796_000_000 * NS_PER_S  # 2026-11-30T00:53:20Z
SITE = "jy-0012"
DOC = (Path(__file__).resolve().parents[2] / "docs" / "payloads.md").read_text(encoding="utf-8")


class Speaks(NoRegistry):
    """Every reader speaks `payload` and stands at a storage-in door."""

    def __init__(self, payload: str, location: str | None = "storage_in") -> None:
        self.payload, self.location = payload, location

    def reader_payload(self, site: str, reader: str) -> str:
        return self.payload

    def reader_location(self, site: str, reader: str) -> str | None:
        return self.location


def topic(reader: str = "gate-03") -> str:
    return f"hw/{SITE}/rfid/{reader}/read"


def decoded(payload: str, body: Any, reader: str = "gate-03") -> Decoded:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return decode(topic(reader), raw, Speaks(payload), now_ns=NOW_NS)


def refused(payload: str, body: Any) -> PayloadError:
    with pytest.raises(PayloadError) as info:
        decoded(payload, body)
    assert len(str(info.value)) < 600
    return info.value


def ns(text: str) -> int:
    return parse_ts(text)


# ---------------------------------------------------------------------------------------------
# Impinj R700, Impinj Reader Configuration REST API (OpenAPI 1.5.0, 1.7.0):
#   ReaderEvent: "Contains information that is reported with all events such as timestamp.
#     Also contains exactly one specific event detail object"; `timestamp` (date-time,
#     required) "The UTC time at which the event was processed and queued for delivery";
#     `hostname` "The hostname of the reader that generated this event"; (1.7) `eventType`
#     "should be the same as the name of the property that contains the event with the string
#     "Event" stripped off".
#   TagInventoryEvent: `epc` (Epc: "The base64url-encoded EPC of the tag"), `epcHex` (EpcHex:
#     "The hex-encoded EPC of the tag", ^[0-9A-F]*$), `antennaPort` (AntennaPort, minimum 1),
#     `peakRssiCdbm` (integer, "The peak received power of the EPC backscatter in cdBm"),
#     `lastSeenTime` (date-time, "The UTC time at which the tag was last seen").
#   TagInventoryEventConfiguration: epc "enabled", epcHex "disabled" by default.

IMPINJ_TAG = {
    "timestamp": "2026-11-30T00:50:00.123456789Z",
    "hostname": "impinj-14-4a-8b",
    "eventType": "tagInventory",
    "tagInventoryEvent": {
        "epcHex": "E280463A24409395FCE848ED",
        "antennaPort": 2,
        "antennaName": "door_in",
        "peakRssiCdbm": -6150,
        "frequency": 920625,
        "transmitPowerCdbm": 3000,
    },
}
# An R700's output as integrators publish it (two events of its HTTP stream, ns timestamps):
# README of an R700 integration, "Resultado del ejemplo del impinj (r700.js)".
IMPINJ_OBSERVED = [
    {
        "timestamp": "2021-02-02T18:39:33.886617Z",
        "hostname": "impinj-14-4a-8b",
        "eventType": "tagInventory",
        "tagInventoryEvent": {
            "epcHex": "329CCCC05E2C02C9D8081562301FD644",
            "antennaPort": 1,
            "antennaName": "Antena_1",
            "peakRssiCdbm": -4050,
        },
    },
    {
        "timestamp": "2021-02-02T18:39:34.385793625Z",
        "hostname": "impinj-14-4a-8b",
        "eventType": "tagInventory",
        "tagInventoryEvent": {
            "epcHex": "8170EF0EEDC002E4F7C03616166AF532",
            "antennaPort": 1,
            "antennaName": "Antena_1",
            "peakRssiCdbm": -4350,
        },
    },
]


def test_impinj_tag_inventory_event_is_one_read_in_dbm_and_utc_ns() -> None:
    result = decoded("impinj-r700", IMPINJ_TAG)
    assert isinstance(result.record, ReaderReport)
    assert result.record.payload == "impinj-r700"
    (read,) = reads_of(result.record)
    assert read == RfidRead.model_construct(
        ts=ns("2026-11-30T00:50:00.123456789Z"), epc="E280463A24409395FCE848ED", rssi=-61.5,
        antenna=2,
    )  # fmt: skip
    assert read.ts % NS_PER_S == 123_456_789  # all nine digits the reader writes
    (point,) = result.points
    assert point.measurement == "waste_read"
    # the topic's reader, never the event's hostname
    assert point.tags == {
        "site": SITE,
        "reader": "gate-03",
        "location_kind": "storage_in",
    }
    assert point.fields == {"epc": "E280463A24409395FCE848ED", "rssi": -61.5, "antenna": 2}
    assert point.ts_ns == point_time(read.ts, read.epc)  # in the read's millisecond


def test_impinj_default_configuration_sends_the_epc_in_base64url() -> None:
    b64 = "4oBGOiRAk5X86EjtAAAAAQ"  # base64url of E280463A24409395FCE848ED00000001, unpadded
    body = {"timestamp": "2026-11-30T00:50:00Z", "tagInventoryEvent": {"epc": b64}}
    (read,) = reads_of(decoded("impinj-r700", body).record)
    assert read.epc == "E280463A24409395FCE848ED00000001"
    assert (read.rssi, read.antenna) == (None, None)
    both = {
        "timestamp": "2026-11-30T00:50:00Z",
        "tagInventoryEvent": {"epc": b64 + "==", "epcHex": "e280463a24409395fce848ed00000001"},
    }
    assert reads_of(decoded("impinj-r700", both).record)[0].epc == read.epc


def test_impinj_last_seen_time_is_the_reads_time_when_the_reader_sends_it() -> None:
    body = json.loads(json.dumps(IMPINJ_TAG))
    body["tagInventoryEvent"]["lastSeenTime"] = "2026-11-30T00:49:59.998Z"
    (read,) = reads_of(decoded("impinj-r700", body).record)
    assert read.ts == ns("2026-11-30T00:49:59.998Z")


def test_impinj_array_of_events_is_one_record_of_its_reads_in_order() -> None:
    status = {"timestamp": "2021-02-02T18:39:35Z", "eventType": "inventoryStatus",
              "inventoryStatusEvent": {"status": "running"}}  # fmt: skip
    result = decode(topic(), json.dumps([*IMPINJ_OBSERVED, status]).encode(),
                    Speaks("impinj-r700"), now_ns=NOW_NS)  # fmt: skip
    assert isinstance(result.record, ReaderReport)
    assert [(r.epc, r.rssi) for r in reads_of(result.record)] == [
        ("329CCCC05E2C02C9D8081562301FD644", -40.5),
        ("8170EF0EEDC002E4F7C03616166AF532", -43.5),
    ]
    assert result.record.skipped == ("inventoryStatus",)
    assert [p.ts_ns for p in result.points] == [
        point_time(1612291173886617000, "329CCCC05E2C02C9D8081562301FD644"),
        point_time(1612291174385793625, "8170EF0EEDC002E4F7C03616166AF532"),
    ]
    assert [p.ts_ns // 1_000_000 for p in result.points] == [1612291173886, 1612291174385]


@pytest.mark.parametrize(
    ("event", "skipped"),
    [
        ({"eventType": "inventoryStatus", "inventoryStatusEvent": {"status": "idle"}},
         "inventoryStatus"),
        ({"inventoryStatusEvent": {"status": "running"}}, "inventoryStatus"),  # 1.5: no eventType
        ({"antennaConnectedEvent": {"antennaPort": 2}}, "antennaConnected"),
        ({"eventType": "overflow", "overflowEvent": {"eventsPurged": 12, "eventsRemaining": 0}},
         "overflow"),
        ({"eventType": "gpiTransition", "gpiTransitionEvent": {"gpi": 1,
                                                               "transition": "low-to-high"}},
         "gpiTransition"),
        ({"inventoryTerminatedEvent": {}}, "inventoryTerminated"),
    ],
)  # fmt: skip
def test_impinj_events_that_are_not_reads_are_skipped_without_points(
    event: dict[str, Any], skipped: str
) -> None:
    result = decoded("impinj-r700", {"timestamp": "2026-11-30T00:50:00Z", **event})
    assert isinstance(result.record, ReaderReport)
    assert reads_of(result.record) == ()
    assert result.record.skipped == (skipped,)
    assert result.points == []


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ({"tagInventoryEvent": {"antennaPort": 1}}, "missing_field", "tagInventoryEvent.epcHex"),
        ({"tagInventoryEvent": {"epcHex": "E2", "antennaPort": 1}}, "bad_value",
         "tagInventoryEvent.epcHex"),
        ({"tagInventoryEvent": {"epc": "not base64!"}}, "bad_value", "tagInventoryEvent.epc"),
        ({"tagInventoryEvent": {"epc": "4oBGOiRAk5X86Ejt", "epcHex": "E280463A24409395FCE848EE"}},
         "bad_value", "tagInventoryEvent.epc"),
        ({"tagInventoryEvent": {"epcHex": "E280463A24409395FCE848ED", "peakRssiCdbm": -15001}},
         "out_of_range", "tagInventoryEvent.peakRssiCdbm"),
        ({"tagInventoryEvent": {"epcHex": "E280463A24409395FCE848ED", "peakRssiCdbm": -61.5}},
         "bad_type", "tagInventoryEvent.peakRssiCdbm"),
        ({"tagInventoryEvent": {"epcHex": "E280463A24409395FCE848ED", "antennaPort": 0}},
         "out_of_range", "tagInventoryEvent.antennaPort"),
        ({"timestamp": None}, "missing_field", "timestamp"),
        ({"timestamp": 1795999800000}, "bad_ts", "timestamp"),
        ({"timestamp": "2026-11-30T00:50:00"}, "bad_ts", "timestamp"),
        ({"eventType": "inventoryStatus"}, "bad_value", "eventType"),
    ],
)  # fmt: skip
def test_impinj_bad_events_are_refused_naming_the_vendors_field(
    change: dict[str, Any], reason: str, field: str
) -> None:
    error = refused("impinj-r700", {**IMPINJ_TAG, **change})
    assert (error.reason, error.field) == (reason, field), error


def test_impinj_a_bad_event_of_an_array_is_named_by_its_index() -> None:
    bad = {**IMPINJ_TAG, "timestamp": "yesterday"}
    error = refused("impinj-r700", [IMPINJ_TAG, bad])
    assert (error.reason, error.field) == ("bad_ts", "[1].timestamp")
    assert str(error).startswith("event [1]: timestamp")
    assert refused("impinj-r700", [IMPINJ_TAG, 7]).reason == "bad_json"
    assert refused("impinj-r700", {"timestamp": "2026-11-30T00:50:00Z"}).reason == "missing_field"
    assert refused("impinj-r700", "tagInventory").reason == "bad_json"


# ---------------------------------------------------------------------------------------------
# Zebra FX, Zebra IoT Connector (zebradevs.github.io/rfid-ziotc-docs): "ANTENNA will report the
# antenna port upon which the tag was inventoried", "RSSI will report the rssi (in dbm) of the
# inventoried tag … the peak rssi since the last reported read" (TagStorage Settings); batching
# "enables reader to group multiple tag data events into single event … disabled for MQTT
# Endpoint" by default (Tag Data Batching). Zebra's MQTT sample (ZebraDevs/RFID-IoTConnector-
# MQTT-dotnet-DockDoorSample): TagDataEvent {data, timestamp, type}, Data {CRC, PC, antenna,
# channel, eventNum, format, idHex, peakRssi, phase, reads}; its parser takes an object or an
# array.

# An FX reader's INVENTORY-mode tag data as observed and published by an integrator (a batch).
ZEBRA_OBSERVED = [
    {
        "data": {
            "CRC": "518e", "PC": "3000", "antenna": 1, "channel": 927.25, "eventNum": 194,
            "format": "epc", "idHex": "ad99160040aac99525000025", "peakRssi": -54,
            "phase": 0.0, "reads": 9,
        },
        "timestamp": "2023-02-24T10:14:42.851+0000",
        "type": "INVENTORY",
    }
]  # fmt: skip
# A CUSTOM-mode event with no metadata, as an FXR90 sends it (an integrator's parser comment).
ZEBRA_CUSTOM = {
    "data": {"eventNum": 5938, "format": "epc", "idHex": "000000000000000000000343"},
    "timestamp": "2024-09-05T01:07:01.785-0600",
    "type": "CUSTOM",
}
ZEBRA_HEARTBEAT = {"type": "heartbeat", "timestamp": "2024-09-05T01:07:02.000-0600",
                   "component": "RG", "eventNum": 77, "data": {"system": {"cpu": {}}}}  # fmt: skip
ZEBRA_GPI = {"type": "gpi", "timestamp": "2024-09-05T01:07:02.000-0600",
             "data": {"pin": 1, "state": "HIGH"}}  # fmt: skip


def test_zebra_tag_data_event_is_a_read_with_the_epc_upper_case_and_the_offset_applied() -> None:
    result = decoded("zebra-fx", ZEBRA_OBSERVED)
    (read,) = reads_of(result.record)
    assert read == RfidRead.model_construct(
        ts=ns("2023-02-24T10:14:42.851Z"), epc="AD99160040AAC99525000025", rssi=-54.0, antenna=1
    )
    assert result.points[0].fields == {"epc": read.epc, "rssi": -54.0, "antenna": 1}
    (bare,) = reads_of(decoded("zebra-fx", ZEBRA_CUSTOM).record)
    assert bare.ts == ns("2024-09-05T07:07:01.785Z")  # -0600: seven in the morning in UTC
    assert (bare.epc, bare.rssi, bare.antenna) == ("000000000000000000000343", None, None)
    assert decoded("zebra-fx", ZEBRA_CUSTOM).points[0].fields == {"epc": bare.epc}


def test_zebra_batch_is_one_record_and_management_events_on_the_data_topic_are_skipped() -> None:
    second = {**ZEBRA_CUSTOM, "data": {**ZEBRA_CUSTOM["data"], "idHex": "e2000000000000000000aa01"}}
    result = decoded("zebra-fx", [ZEBRA_CUSTOM, ZEBRA_HEARTBEAT, second, ZEBRA_GPI])
    assert isinstance(result.record, ReaderReport)
    assert [r.epc for r in reads_of(result.record)] == [
        "000000000000000000000343", "E2000000000000000000AA01",
    ]  # fmt: skip
    assert result.record.skipped == ("heartbeat", "gpi")
    assert len(result.points) == 2
    alone = decoded("zebra-fx", ZEBRA_HEARTBEAT)
    assert alone.points == [] and alone.record.skipped == ("heartbeat",)


@pytest.mark.parametrize(
    ("body", "reason", "field"),
    [
        ({**ZEBRA_CUSTOM, "data": {"idHex": "e2003412012345678900", "format": "tid"}},
         "bad_value", "data.format"),
        ({**ZEBRA_CUSTOM, "data": {"eventNum": 1}}, "missing_field", "data.idHex"),
        ({"timestamp": "2024-09-05T01:07:01.785-0600", "data": {"pin": 1}}, "missing_field",
         "data.idHex"),
        ({**ZEBRA_CUSTOM, "data": {"idHex": "zz"}}, "bad_value", "data.idHex"),
        ({**ZEBRA_CUSTOM, "data": {"idHex": "e2003412012345678900", "peakRssi": 31}},
         "out_of_range", "data.peakRssi"),
        ({**ZEBRA_CUSTOM, "data": {"idHex": "e2003412012345678900", "antenna": -1}},
         "out_of_range", "data.antenna"),
        ({**ZEBRA_CUSTOM, "timestamp": None}, "missing_field", "timestamp"),
        ({**ZEBRA_CUSTOM, "timestamp": 1725520021785}, "bad_ts", "timestamp"),
        ({**ZEBRA_CUSTOM, "timestamp": "2024-09-05T01:07:01.785"}, "bad_ts", "timestamp"),
        ({"type": "SIMPLE", "timestamp": "2024-09-05T01:07:01.785-0600"}, "missing_field",
         "data"),
    ],
)  # fmt: skip
def test_zebra_bad_events_are_refused_naming_the_vendors_field(
    body: dict[str, Any], reason: str, field: str
) -> None:
    error = refused("zebra-fx", body)
    assert (error.reason, error.field) == (reason, field), error


# ---------------------------------------------------------------------------------------------
# The registry says which payload a reader speaks; a mismatch is refused with a hint


REGISTRY = {
    "site": [{"id": SITE}],
    "reader": [
        {"id": "gate-03", "site": SITE, "location": "storage_in", "payload": "impinj-r700"},
        {"id": "gate-04", "site": SITE, "location": "storage_out", "payload": "zebra-fx"},
        {"id": "gen-1", "site": SITE, "location": "generation"},
    ],
}


def test_the_registry_selects_each_readers_payload_and_refuses_unknown_ones() -> None:
    ctx = RegistryContext(None, parse_registry(REGISTRY))
    assert [ctx.reader_payload(SITE, r) for r in ("gate-03", "gate-04", "gen-1", "nope")] == [
        "impinj-r700", "zebra-fx", "hazwatch", "hazwatch",
    ]  # fmt: skip
    assert parse_registry(REGISTRY).to_document()["reader"][2]["payload"] == "hazwatch"
    impinj = decode(topic("gate-03"), json.dumps(IMPINJ_TAG).encode(), ctx, now_ns=NOW_NS)
    zebra = decode(topic("gate-04"), json.dumps(ZEBRA_CUSTOM).encode(), ctx, now_ns=NOW_NS)
    own = decode(
        topic("gen-1"), b'{"ts": 1795999800000, "epc": "E280463A24409395FCE848ED"}', ctx,
        now_ns=NOW_NS,
    )  # fmt: skip
    assert [type(d.record) for d in (impinj, zebra, own)] == [ReaderReport, ReaderReport, RfidRead]
    bad = {**REGISTRY, "reader": [{**REGISTRY["reader"][0], "payload": "impinj"}]}
    with pytest.raises(ConfigError, match="field 'payload' must be one of hazwatch, impinj-r700"):
        parse_registry(bad)
    assert rfid_vendors.READER_PAYLOADS == ("hazwatch", "impinj-r700", "zebra-fx")


@pytest.mark.parametrize(
    ("payload", "body", "hint"),
    [
        ("hazwatch", IMPINJ_TAG, 'registered with payload = "impinj-r700"?'),
        ("hazwatch", ZEBRA_CUSTOM, 'registered with payload = "zebra-fx"?'),
        ("zebra-fx", IMPINJ_TAG, 'registered with payload = "impinj-r700"?'),
        ("impinj-r700", ZEBRA_CUSTOM, 'registered with payload = "zebra-fx"?'),
        ("zebra-fx", {"ts": 1795999800000, "epc": "E280463A24409395FCE848ED"},
         "looks like hazwatch's own read payload"),
    ],
)  # fmt: skip
def test_a_message_that_is_not_what_the_registry_says_is_refused_with_a_hint(
    payload: str, body: dict[str, Any], hint: str
) -> None:
    assert hint in str(refused(payload, body))


def test_hazwatchs_own_payload_is_unchanged() -> None:
    body = b'{"ts": 1795999800000, "epc": "e280463a24409395fce848ed", "rssi": -43.4, "antenna": 3}'
    result = decode(topic(), body, NoRegistry(), now_ns=NOW_NS)
    assert isinstance(result.record, RfidRead)
    assert reads_of(result.record) == (result.record,)
    assert [p.to_line() for p in result.points] == [
        "waste_read,location_kind=unknown,reader=gate-03,site=jy-0012 "
        'epc="E280463A24409395FCE848ED",rssi=-43.4,antenna=3i,unknown_reader=true '
        f"{point_time(1795999800000000000, 'E280463A24409395FCE848ED')}"
    ]


# ---------------------------------------------------------------------------------------------
# Every consumer of rfid reads takes all of a record's reads


def test_custody_takes_one_read_per_tag_read_of_a_vendor_message() -> None:
    ctx = RegistryContext(None, parse_registry(REGISTRY))
    second = {**ZEBRA_CUSTOM, "data": {"idHex": "e2000000000000000000aa01"},
              "timestamp": "2024-09-05T01:07:01.900-0600"}  # fmt: skip
    message = decode(topic("gate-04"), json.dumps([ZEBRA_CUSTOM, ZEBRA_HEARTBEAT, second]).encode(),
                     ctx, now_ns=NOW_NS)  # fmt: skip
    reads = to_inputs([message], ctx)
    assert [(r.epc, r.device, r.location, r.ts_ns) for r in reads] == [  # type: ignore[union-attr]
        ("000000000000000000000343", "gate-04", "storage_out", ns("2024-09-05T07:07:01.785Z")),
        ("E2000000000000000000AA01", "gate-04", "storage_out", ns("2024-09-05T07:07:01.900Z")),
    ]
    assert len({r.event_id for r in reads}) == 2  # type: ignore[union-attr]
    assert to_inputs([decode(topic("gate-04"), json.dumps(ZEBRA_GPI).encode(), ctx,
                             now_ns=NOW_NS)], ctx) == []  # fmt: skip


def test_the_door_rule_sees_every_read_of_a_vendor_message() -> None:
    proc = VideoProcessor(ListSink(), watched_readers=lambda site, cam: ["gate-03"])
    times = [f"2026-11-30T00:50:0{i}.000Z" for i in range(3)]
    events = [{**IMPINJ_TAG, "timestamp": t} for t in times]
    proc.process([decoded("impinj-r700", events), decoded("impinj-r700", ZEBRA_GPI_AS_IMPINJ)],
                 NOW_NS)  # fmt: skip
    assert proc.rules.read_times[(SITE, "gate-03")] == [ns(t) for t in times]


ZEBRA_GPI_AS_IMPINJ = {"timestamp": "2026-11-30T00:50:05Z", "eventType": "gpiTransition",
                       "gpiTransitionEvent": {"gpi": 1, "transition": "high-to-low"}}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# docs/payloads.md's examples decode to what the page says


def _example(vendor: str) -> Any:
    start = DOC.index(f'(`payload = "{vendor}"`)')
    blocks = re.findall(r"```json\n(.*?)```", DOC[start:], re.S)
    return json.loads(blocks[1] if vendor == "impinj-r700" else blocks[0])


def test_the_pages_examples_decode_as_the_page_says() -> None:
    (read,) = reads_of(decoded("impinj-r700", _example("impinj-r700")).record)
    assert read == RfidRead.model_construct(
        ts=1795996800120000000, epc="E280463A24409395FCE848ED", rssi=-43.5, antenna=1
    )
    zebra = decoded("zebra-fx", _example("zebra-fx")).record
    assert isinstance(zebra, ReaderReport)
    assert zebra.reads == (
        RfidRead.model_construct(
            ts=1795996800851000000, epc="E280463A24409395FCE848ED", rssi=-54.0, antenna=1
        ),
    )
    assert zebra.skipped == ("heartbeat",)
    assert rfid.FAMILY_SPEC.kinds["read"].parse is rfid.parse
