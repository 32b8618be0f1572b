"""Hostile payloads per decoder: storable points or a PayloadError come out, nothing else.

Never loosen an assertion here to make an input pass: a failure is a decoder bug to fix.
A short derandomized run in CI; HAZWATCH_FUZZ_FULL=1 runs ≥ 10,000 inputs per decoder.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hazwatch.base.errors import PayloadError
from hazwatch.base.points import Point, parse_line
from hazwatch.devices import air as air_family
from hazwatch.devices import camera, hj212, rfid, rfid_vendors, scale, status, terminal
from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.devices.timeparse import EARLIEST_NS, NS_PER_MS, NS_PER_S, format_ts, parse_ts
from hazwatch.simulators.hj212_station import AirSimConfig, StationSim, stations
from hazwatch.simulators.payloads import DeviceGenerator, device_ids

NOW_NS = 1_764_050_000_000_000_000  # 2025-11-25T05:53:20Z
MAX_FUTURE_NS = 300 * NS_PER_S
LATEST_NS = NOW_NS + MAX_FUTURE_NS
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
CTX = NoRegistry()
SITE = "jy-0012"

settings.register_profile(
    "hostile-ci",
    max_examples=250,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "hostile-full",
    max_examples=10_000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile(
    "hostile-full" if os.environ.get("HAZWATCH_FUZZ_FULL") == "1" else "hostile-ci"
)

# ---------------------------------------------------------------------------------------------
# The good traffic every strategy starts from


def _generators() -> list[DeviceGenerator]:
    return [
        DeviceGenerator(SITE, family, device, seed=11, clock_ns=lambda: NOW_NS - 3600 * NS_PER_S)
        for family in ("rfid", "scale", "terminal", "air", "camera")
        for device in device_ids(family, 2)
    ]


def good_json() -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Simulator messages by kind: (topic, body), a few dozen of each."""
    by_kind: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for gen in _generators():
        for _ in range(12):
            message = gen.next()
            by_kind.setdefault(message.kind, []).append((message.topic, message.body))
        for online in (True, False):
            message = gen.status(online)
            by_kind.setdefault("status", []).append((message.topic, message.body))
    return by_kind


def good_hj212() -> list[hj212.Packet]:
    """Station packets of every data CN, as simulators/hj212_station.py sends them."""
    packets: list[hj212.Packet] = []
    start_ns = (NOW_NS - 86_400 * NS_PER_S) // (60 * NS_PER_S) * (60 * NS_PER_S)
    for cn in (hj212.CN_RTD, hj212.CN_MINUTE, hj212.CN_HOUR, hj212.CN_DAY):
        config = AirSimConfig(start_ns=start_ns, minutes=6, cn=cn)
        for spec in stations(2, SITE, seed=3):
            packets += [
                hj212.parse_frame(raw) for _, raw in StationSim(spec, config).packets("mqtt")
            ]
    return packets


GOOD_JSON = good_json()
GOOD_HJ212 = good_hj212()
HJ212_TOPIC = f"hw/{SITE}/air/aq-01/hj212"
MODELS: dict[str, type[Any]] = {
    "read": rfid.RfidRead,
    "weight": scale.Weighing,
    "batch": terminal.BatchRegistration,
    "manifest": terminal.Manifest,
    "reading": air_family.AirReading,
    "frame": camera.Frame,
    "status": status.DeviceStatus,
}
JSON_KINDS = sorted(MODELS)


def good_messages() -> Iterator[tuple[str, bytes]]:
    for kind in JSON_KINDS:
        for topic, body in GOOD_JSON[kind]:
            yield topic, json.dumps(body, ensure_ascii=False).encode()
    for packet in GOOD_HJ212:
        yield HJ212_TOPIC, hj212.build(packet)
    for packet in GOOD_HJ212[::6]:  # split ones travel as one payload of all their parts
        yield HJ212_TOPIC, b"".join(hj212.build(p) for p in hj212.split(packet, 160))


# ---------------------------------------------------------------------------------------------
# What "storable" means


_UNSTORABLE_TEXT = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def assert_storable(point: Point) -> None:
    assert EARLIEST_NS <= point.ts_ns <= LATEST_NS, f"ts {point.ts_ns} outside the window"
    assert point.fields, "a point needs a field"
    for key, value in point.fields.items():
        if type(value) is int:
            assert INT64_MIN <= value <= INT64_MAX, f"{key}={value} does not fit int64"
        elif type(value) is float:
            assert math.isfinite(value), f"{key}={value} is not finite"
        elif type(value) is str:
            assert not _UNSTORABLE_TEXT.search(value), f"{key}={value!r} holds a control char"
            assert len(value.encode()) <= 64 * 1024, f"{key} is over InfluxDB's 64 KB string"
        else:
            assert type(value) is bool, f"{key} has type {type(value).__name__}"
    for key, value in point.tags.items():
        assert not _UNSTORABLE_TEXT.search(key + value), f"tag {key}={value!r}"
    line = point.to_line()
    line.encode("utf-8")  # strict: no lone surrogate reaches the writer
    back = parse_line(line)
    assert back.ts_ns == point.ts_ns
    assert back.fields == point.fields
    try:
        from hazwatch.ingest.pointstore import line_fields
    except ImportError:  # another part of the tree; the round trip above stands on its own
        return
    assert line_fields(line)[1] == point.fields


def check(topic: str, payload: bytes, ctx: NoRegistry = CTX) -> list[Point]:
    """The property: storable points, or a PayloadError a person can read; nothing else."""
    try:
        decoded = decode(topic, payload, ctx, now_ns=NOW_NS)
    except PayloadError as exc:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", exc.reason), exc.reason
        assert str(exc).strip(), "empty message"
        assert len(str(exc)) < 2000, "a message a person can read is not a payload dump"
        return []
    for point in decoded.points:
        assert_storable(point)
    return decoded.points


# ---------------------------------------------------------------------------------------------
# Hostile JSON, written as text (numbers past double range, NaN, depth are not Python values)


@dataclass(frozen=True, slots=True)
class Raw:
    """JSON text written as is."""

    text: str


def dump(value: object) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return json.dumps(value)


def _boundaries_ns() -> list[int]:
    out = []
    for base in (EARLIEST_NS, LATEST_NS, INT64_MAX, 0, NOW_NS):
        for delta in (-NS_PER_MS, -1, 0, 1, NS_PER_MS):
            out.append(base + delta)
    return out


BOUNDARIES_NS = _boundaries_ns()
BIG_INTS = [
    INT64_MAX,
    INT64_MAX + 1,
    INT64_MIN,
    INT64_MIN - 1,
    2**64,
    -(2**64),
    10**19,
    10**30,
    -1,
    0,
]
NUMBER_TEXTS = [
    "1e308",
    "-1e308",
    "1e19",
    "1e400",
    "-1e400",
    "1e-400",
    "1E+999",
    "NaN",
    "Infinity",
    "-Infinity",
    "-0",
    "-0.0",
    "9" * 20,
    "9" * 400,
    "9" * 4300,
    "9" * 4301,
    "-" + "9" * 4300,
    "0." + "0" * 400 + "1",
    "1" + "0" * 400 + ".5",
    "1.5e3",
    "1e3",
    "17640500000e2",
]


def rfc3339_text(dt: datetime, offset_min: int, digits: int, sep: str, zulu: str) -> str:
    frac = f".{dt.microsecond:06d}{'123'}"[: digits + 1] if digits else ""
    if offset_min == 0 and zulu:
        zone = zulu
    else:
        sign = "+" if offset_min >= 0 else "-"
        zone = f"{sign}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}"
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}{sep}"
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}{frac}{zone}"
    )


def _near_boundary_text(ns: int, offset_min: int) -> str:
    """`ns` to the nanosecond as RFC 3339 at `offset_min` (clamped to what a datetime holds)."""
    seconds = max(min(ns // NS_PER_S, 253_402_300_799 - 86_400), -62_135_596_800 + 86_400)
    local = datetime(1970, 1, 1) + timedelta(seconds=seconds, minutes=offset_min)
    text = rfc3339_text(local, offset_min, 0, "T", "Z")
    return f"{text[:19]}.{ns % NS_PER_S:09d}{text[19:]}"


rfc3339_strings = st.one_of(
    st.builds(
        rfc3339_text,
        st.datetimes(),
        st.integers(-1439, 1439) | st.sampled_from([0, 480, -720, 5940]),
        st.integers(0, 12),
        st.sampled_from(["T", "t", " "]),
        st.sampled_from(["Z", "z", ""]),
    ),
    st.builds(_near_boundary_text, st.sampled_from(BOUNDARIES_NS), st.sampled_from([0, 480, -600])),
    st.sampled_from(
        [
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            "0000-01-01T00:00:00Z",
            "2262-04-11T23:47:16.854775807Z",
            "2262-04-11T23:47:16.854775808Z",
            "1999-12-31T23:59:59.999999999Z",
            "2000-01-01T00:00:00Z",
            "2000-01-01T08:00:00+08:00",
            "2025-11-25T05:58:20Z",
            "2025-11-25T05:58:20.000000001Z",
            "2025-02-30T00:00:00Z",
            "2025-11-25T24:00:00Z",
            "2025-11-25T05:53:20+24:00",
            "2025-11-25T05:53:20",
            "2025-11-25T05:53:20.1234567891234Z",
            "2025-11-25T05:53:20\x00Z",
        ]
    ),
)
times = st.one_of(
    st.sampled_from([ns // NS_PER_MS for ns in BOUNDARIES_NS]),
    st.sampled_from(BOUNDARIES_NS),  # nanoseconds sent where milliseconds belong
    st.integers(),
    st.sampled_from(BIG_INTS),
    st.floats(),
    st.sampled_from([1e308, 1e19, -1e308, 1.7640500000e12, 1.76405e12 + 0.5]),
    st.sampled_from(NUMBER_TEXTS).map(Raw),
    rfc3339_strings,
)


def _repeat(char: str, count: int) -> str:
    return char * count


def _deep(depth: int, opener: str) -> Raw:
    if opener == "{":
        return Raw('{"a":' * depth + "1" + "}" * depth)
    return Raw("[" * depth + "]" * depth)


def _siblings(depth: int, count: int) -> Raw:
    return Raw("[" + ",".join(["[" * depth + "]" * depth] * count) + "]")


strings = st.one_of(
    st.text(max_size=60),
    st.text(st.characters(max_codepoint=0x9F), max_size=20),
    st.builds(
        _repeat,
        st.sampled_from(["x", "\x00", "\n", "é", "中", "\u202e", "\U0001f4a9", "A"]),
        st.sampled_from([0, 1, 8, 24, 31, 32, 33, 37, 40, 41, 63, 64, 65, 200, 201, 5000, 70000]),
    ),
    st.sampled_from(["\\ud800", "\\udc00", "\\ud800\\udc00", "\\u0000", "a\\u0000b"]).map(
        lambda escaped: Raw(f'"{escaped}"')
    ),
)
deep = st.one_of(
    st.builds(
        _deep,
        st.sampled_from([30, 31, 32, 33, 64, 199, 200, 201, 1000, 20000]),
        st.sampled_from("[{"),
    ),
    st.builds(_siblings, st.sampled_from([31, 32, 33, 150]), st.sampled_from([2, 50, 200])),
)
numbers = st.one_of(
    st.integers(),
    st.sampled_from(BIG_INTS),
    st.floats(),
    st.sampled_from(NUMBER_TEXTS).map(Raw),
    st.builds(lambda m, e: Raw(f"{m}e{e}"), st.integers(-(10**6), 10**6), st.integers(-2000, 2000)),
)
scalars = st.one_of(numbers, times, strings, st.booleans(), st.none())
hostile_values = st.one_of(
    scalars,
    deep,
    st.lists(scalars, max_size=6),
    st.dictionaries(st.text(max_size=8), scalars, max_size=4),
)


def _paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            out += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            out += _paths(inner, (*prefix, index))
    return out


def _set(body: Any, path: tuple[object, ...], value: object) -> None:
    target = body
    for step in path[:-1]:
        target = target[step]
    last = path[-1]
    if isinstance(target, list):
        assert isinstance(last, int)
        target[last] = value
    elif isinstance(target, dict):
        target[last] = value


def _delete(body: Any, path: tuple[object, ...]) -> None:
    target = body
    for step in path[:-1]:
        target = target[step]
    if isinstance(target, dict):
        target.pop(path[-1], None)
    elif isinstance(target, list) and isinstance(path[-1], int) and path[-1] < len(target):
        del target[path[-1]]


SNAPSHOT = {"name": "cam-01-20251125.jpg", "sha256": "ab" * 32}


@st.composite
def hostile_json(draw: st.DrawFn, kind: str) -> tuple[str, bytes]:
    topic, good = draw(st.sampled_from(GOOD_JSON[kind]))
    body: Any = copy.deepcopy(good)
    if kind == "frame" and draw(st.booleans()):
        body["snapshot"] = dict(SNAPSHOT)
    names = list(MODELS[kind].model_fields)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(body) + [(name,) for name in names]
        action = draw(st.sampled_from(["set", "set", "set", "delete", "extra", "whole"]))
        if action == "whole":
            body = draw(hostile_values)
            break
        if action == "extra":
            body[draw(st.text(max_size=8))] = draw(hostile_values)
            continue
        path = draw(st.sampled_from(paths))
        if action == "delete":
            _delete(body, path)
        else:
            ts_like = path[-1] == "ts"
            _set(body, path, draw(times if ts_like and draw(st.booleans()) else hostile_values))
    text = dump(body)
    # raw surrogates (not escapes) become invalid UTF-8, as a broken device would send them
    payload = text.encode("utf-8", "surrogatepass")
    return topic, draw(mutated_bytes(payload))


@st.composite
def mutated_bytes(draw: st.DrawFn, payload: bytes) -> bytes:
    how = draw(st.sampled_from(["as is"] * 6 + ["insert", "replace", "truncate", "bom"]))
    if how == "as is" or not payload:
        return payload
    pos = draw(st.integers(0, len(payload)))
    junk = draw(
        st.sampled_from(
            [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\x00", b"\x80", b"\xf4\x90\x80\x80"]
        )
        | st.binary(min_size=1, max_size=4)
    )
    if how == "insert":
        return payload[:pos] + junk + payload[pos:]
    if how == "replace":
        return payload[:pos] + junk + payload[pos + len(junk) :]
    if how == "truncate":
        return payload[:pos]
    return b"\xef\xbb\xbf" + payload


def _with_segment(topic: str, index: int, segment: str) -> str:
    parts = topic.split("/")
    parts[index % len(parts)] = segment
    return "/".join(parts)


def hostile_topics(topics: list[str]) -> st.SearchStrategy[str]:
    good = st.sampled_from(sorted(set(topics)))
    return st.one_of(
        st.text(max_size=80),
        st.builds(_with_segment, good, st.integers(0, 4), st.text(max_size=70)),
        good.map(lambda topic: topic + "\n"),
        st.builds(_repeat, st.sampled_from(["x", "/", "hw/a/air/b/reading/"]), st.just(4000)),
        st.just("hw/alerts/air/a1/reading"),
    )


def json_inputs(kind: str) -> st.SearchStrategy[tuple[str, bytes]]:
    topics = sorted({topic for topic, _ in GOOD_JSON[kind]})
    payloads = [json.dumps(body).encode() for _, body in GOOD_JSON[kind]]
    return st.one_of(
        hostile_json(kind),
        st.tuples(hostile_topics(topics), st.sampled_from(payloads)),
        st.tuples(st.sampled_from(topics), st.binary(max_size=300)),
        st.tuples(st.sampled_from(topics), st.text(max_size=200).map(str.encode)),
    )


# ---------------------------------------------------------------------------------------------
# Hostile reader-own payloads: Impinj R700 ReaderEvents and Zebra FX tag data events, made from
# the simulator's reads (docs/payloads.md, "Readers' own payloads"), then changed as above


class Speaks(NoRegistry):
    """Every reader publishes `payload` (its registry entry's), as devices/registry.py says."""

    def __init__(self, payload: str) -> None:
        self.payload = payload

    def reader_payload(self, site: str, reader: str) -> str:
        return self.payload


def _as_impinj(body: dict[str, Any], index: int) -> dict[str, Any]:
    """A read as an R700 reports it: ReaderEvent + TagInventoryEvent (OpenAPI 1.5/1.7)."""
    ts_ns = parse_ts(body["ts"])
    tag: dict[str, Any] = {"antennaPort": body.get("antenna") or 1, "antennaName": "door"}
    if index % 2:
        tag["epcHex"] = body["epc"]
    else:
        tag["epc"] = base64.urlsafe_b64encode(bytes.fromhex(body["epc"])).decode().rstrip("=")
    if body.get("rssi") is not None:
        tag["peakRssiCdbm"] = round(body["rssi"] * 100)
    if index % 3 == 0:
        tag["lastSeenTime"] = _near_boundary_text(ts_ns, 0)
    return {
        "timestamp": _near_boundary_text(ts_ns + NS_PER_MS, 0),
        "hostname": "impinj-14-4a-8b",
        "eventType": "tagInventory",
        "tagInventoryEvent": tag,
    }


def _as_zebra(body: dict[str, Any], index: int) -> dict[str, Any]:
    """A read as a Zebra FX reports it: a tag data event of INVENTORY mode."""
    ts_ns = parse_ts(body["ts"])
    when = _near_boundary_text(ts_ns // NS_PER_MS * NS_PER_MS, 480)
    return {
        "data": {
            "eventNum": index, "format": "epc", "idHex": body["epc"].lower(),
            "antenna": body.get("antenna") or 1, "peakRssi": round(body.get("rssi") or -60),
            "reads": 3, "channel": 920.625,
        },
        "timestamp": when[:23] + when[-6:].replace(":", ""),  # +0800: the reader's own offset
        "type": "INVENTORY",
    }  # fmt: skip


_NOT_READS = {
    "impinj-r700": [
        {"timestamp": "2025-11-25T05:50:00Z", "eventType": "inventoryStatus",
         "inventoryStatusEvent": {"status": "running"}},
        {"timestamp": "2025-11-25T05:50:00Z", "antennaConnectedEvent": {"antennaPort": 2}},
    ],
    "zebra-fx": [
        {"type": "heartbeat", "timestamp": "2025-11-25T13:50:00.000+0800", "component": "RG",
         "data": {"system": {"cpu": {"system": 12}}}},
        {"type": "gpi", "timestamp": "2025-11-25T13:50:00.000+0800",
         "data": {"pin": 1, "state": "HIGH"}},
    ],
}  # fmt: skip
_AS_VENDOR = {"impinj-r700": _as_impinj, "zebra-fx": _as_zebra}
VENDOR_MODELS: dict[str, list[type[Any]]] = {
    "impinj-r700": [rfid_vendors.ImpinjReaderEvent, rfid_vendors.ImpinjTagInventoryEvent],
    "zebra-fx": [rfid_vendors.ZebraTagDataEvent, rfid_vendors.ZebraTagData],
}


def good_vendor(payload: str) -> list[tuple[str, Any]]:
    """(topic, body) of one reader speaking `payload`: single events, batches, non-reads."""
    convert = _AS_VENDOR[payload]
    events = [(t, convert(b, i)) for i, (t, b) in enumerate(GOOD_JSON["read"])]
    out: list[tuple[str, Any]] = list(events)
    for start in range(0, len(events) - 3, 4):
        group = [body for _, body in events[start : start + 4]]
        out.append((events[start][0], [*group, _NOT_READS[payload][start % 2]]))
    out += [(events[0][0], event) for event in _NOT_READS[payload]]
    return out


GOOD_VENDOR = {payload: good_vendor(payload) for payload in _AS_VENDOR}
VENDOR_PAYLOADS = sorted(GOOD_VENDOR)


@st.composite
def hostile_vendor(draw: st.DrawFn, payload: str) -> tuple[str, bytes]:
    topic, good = draw(st.sampled_from(GOOD_VENDOR[payload]))
    body: Any = copy.deepcopy(good)
    names = [name for model in VENDOR_MODELS[payload] for name in model.model_fields]
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(body)
        events = body if isinstance(body, list) else [body]
        for index, event in enumerate(events):  # the fields each event could have
            if isinstance(event, dict):
                at = (index,) if isinstance(body, list) else ()
                paths += [(*at, name) for name in names[:3]]
                for inner in ("tagInventoryEvent", "data"):
                    if isinstance(event.get(inner), dict):
                        paths += [(*at, inner, name) for name in names[3:]]
        action = draw(st.sampled_from(["set", "set", "set", "delete", "extra", "whole", "wrap"]))
        if action == "whole":
            body = draw(hostile_values)
            break
        if action == "wrap":  # one event as an array of it, an array one level deeper
            body = [body]
            continue
        if action == "extra" and isinstance(body, dict):
            body[draw(st.text(max_size=12))] = draw(hostile_values)
            continue
        if not paths:
            continue
        path = draw(st.sampled_from(paths))
        if action == "delete":
            _delete(body, path)
        else:
            ts_like = path[-1] in ("timestamp", "lastSeenTime")
            try:
                _set(body, path, draw(times if ts_like and draw(st.booleans()) else hostile_values))
            except (KeyError, IndexError, TypeError):
                continue  # the path went away with an earlier change
    payload_bytes = dump(body).encode("utf-8", "surrogatepass")
    return topic, draw(mutated_bytes(payload_bytes))


def vendor_inputs(payload: str) -> st.SearchStrategy[tuple[str, bytes]]:
    topics = sorted({topic for topic, _ in GOOD_VENDOR[payload]})
    payloads = [json.dumps(body).encode() for _, body in GOOD_VENDOR[payload]]
    return st.one_of(
        hostile_vendor(payload),
        st.tuples(st.sampled_from(topics), st.sampled_from(payloads)).map(
            lambda m: (m[0], m[1][: len(m[1]) // 2])  # cut short, as a lost TCP segment leaves it
        ),
        st.tuples(st.sampled_from(topics), st.binary(max_size=300)),
        # hazwatch's own reads, and the other vendor's events, from a reader registered as this
        st.tuples(
            st.sampled_from(topics),
            st.sampled_from(
                [json.dumps(b).encode() for _, b in GOOD_JSON["read"]]
                + [json.dumps(b).encode() for p, g in GOOD_VENDOR.items() if p != payload
                   for _, b in g]
            ),
        ),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Hostile HJ 212: field values changed, then framed with a correct length and CRC


def _datatime(ns: int, zone_h: float = 8.0) -> str:
    seconds = max(min(ns // NS_PER_S, 253_402_271_999), -62_135_596_800 + 86_400)
    local = datetime(1970, 1, 1) + timedelta(seconds=seconds + zone_h * 3600)
    return f"{local.year:04d}{local:%m%d%H%M%S}"


HJ_TEXTS = [
    "19991231235959",
    "20000101000000",
    "20000101075959",  # UTC+8: 1999-12-31T23:59:59Z
    "20000101080000",
    "99991231235959",
    "00000101000000",
    "00010101000000",
    "20250230000000",
    "20251301000000",
    "20251125246000",
    "20251125136060",
    "20251125135820",  # NOW + 300 s at UTC+8
    "20251125135821",
    "22620411234716",
    "20251125135320999",
    "20251325135320000",
    "20251125135320000\n",
    "99999999999999999",
    "00000000000000000",
]


def _cp_value_texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(NUMBER_TEXTS),
        st.sampled_from(HJ_TEXTS),
        st.sampled_from([_datatime(ns) for ns in BOUNDARIES_NS]),
        st.integers(0, 10**17 - 1).map(lambda n: f"{n:014d}"),
        st.integers(0, 10**17 - 1).map(lambda n: f"{n:017d}"),
        st.sampled_from(["9" * 5000, "1" * 9000, "+1", "-1", "1_0", " 1", "1\n", "", "0x10", "١"]),
        st.text(st.characters(max_codepoint=0x7F), max_size=30),
        st.text(max_size=10),
    )


hj_texts = _cp_value_texts()


def segment_text(packet: hj212.Packet, extra_head: str = "") -> str:
    """Like hj212.data_segment, but any field may hold any text."""
    head = [
        f"QN={packet.qn}",
        f"ST={packet.st}",
        f"CN={packet.cn}",
        f"PW={packet.pw}",
        f"MN={packet.mn}",
        f"Flag={packet.flag}",
    ]
    if packet.pnum is not None or packet.pno is not None:
        head += [f"PNUM={packet.pnum}", f"PNO={packet.pno}"]
    cp = ";".join(f"{k}={v}" for k, v in packet.cp)
    return ";".join(head) + extra_head + f";CP=&&{cp}&&"


def frame_any(segment: bytes) -> bytes:
    """Framed with a right CRC; a length past four digits is written as it is."""
    return b"##%04d%s%04X\r\n" % (len(segment), segment, hj212.crc16(segment))


@st.composite
def hostile_hj212(draw: st.DrawFn) -> tuple[str, bytes]:
    packet = draw(st.sampled_from(GOOD_HJ212))
    extra_head = ""
    for _ in range(draw(st.integers(1, 3))):
        target = draw(
            st.sampled_from(
                [
                    *("qn", "st", "cn", "pw", "mn", "flag", "split", "head"),
                    *("cp_value", "cp_value", "cp_key", "cp_add", "cp_drop"),
                ]
            )
        )
        text = draw(hj_texts)
        if target in ("qn", "st", "cn", "pw", "mn"):
            packet = replace(packet, **{target: text})
        elif target == "flag":  # segment_text writes whatever the fields hold
            packet = replace(packet, flag=draw(st.integers(-5, 300) | hj_texts))
        elif target == "split":
            packet = replace(
                packet,
                flag=packet.flag | hj212.FLAG_SPLIT if isinstance(packet.flag, int) else "7",
                pnum=draw(st.integers(-1, 10**6) | hj_texts),
                pno=draw(st.integers(-1, 10**6) | hj_texts),
            )
        elif target == "head":
            extra_head = ";" + text
        else:
            cp = list(packet.cp)
            index = draw(st.integers(0, max(len(cp) - 1, 0)))
            if target == "cp_value" and cp:
                cp[index] = (cp[index][0], text)
            elif target == "cp_key" and cp:
                cp[index] = (text, cp[index][1])
            elif target == "cp_add":
                code = draw(st.sampled_from([*hj212.FACTORS, "a99999", "DataTime"]))
                suffix = draw(st.sampled_from(["Rtd", "Avg", "Min", "Max", "Flag", "Cou", "X"]))
                key = code if code == "DataTime" else f"{code}-{suffix}"
                cp.insert(index, (key, text))
            elif cp:
                del cp[index]
            packet = replace(packet, cp=tuple(cp))
    segment = segment_text(packet, extra_head).encode("utf-8", "surrogatepass")
    raw = frame_any(segment)
    shape = draw(st.sampled_from(["one"] * 6 + ["after good", "bytes", "twice"]))
    if shape == "after good":
        raw = hj212.build(draw(st.sampled_from(GOOD_HJ212))) + raw
    elif shape == "twice":
        raw = raw + raw
    elif shape == "bytes":
        raw = draw(mutated_bytes(raw))
    return HJ212_TOPIC, raw


hj212_inputs = st.one_of(
    hostile_hj212(),
    st.tuples(st.just(HJ212_TOPIC), st.binary(max_size=300)),
    st.tuples(st.just(HJ212_TOPIC), st.binary(max_size=200).map(lambda b: b"##" + b)),
    st.tuples(st.just(HJ212_TOPIC), st.binary(max_size=200).map(lambda b: frame_any(b"QN=" + b))),
)


# ---------------------------------------------------------------------------------------------
# The properties, one per decoder


@pytest.mark.parametrize("kind", JSON_KINDS)
def test_json_decoder_only_raises_payload_error_and_returns_storable(kind: str) -> None:
    @FUZZ
    @given(json_inputs(kind))
    def run(message: tuple[str, bytes]) -> None:
        check(*message)

    run()


@pytest.mark.parametrize("payload", VENDOR_PAYLOADS)
def test_reader_own_payload_decoder_only_raises_payload_error_and_returns_storable(
    payload: str,
) -> None:
    ctx = Speaks(payload)

    @FUZZ
    @given(vendor_inputs(payload))
    def run(message: tuple[str, bytes]) -> None:
        check(*message, ctx=ctx)

    run()


@pytest.mark.parametrize("payload", VENDOR_PAYLOADS)
def test_good_reader_own_payloads_decode_to_one_point_per_read(payload: str) -> None:
    ctx, reads = Speaks(payload), 0
    for topic, body in GOOD_VENDOR[payload]:
        events = body if isinstance(body, list) else [body]
        expected = sum("tagInventoryEvent" in e or "idHex" in e.get("data", {}) for e in events)
        points = check(topic, json.dumps(body).encode(), ctx=ctx)
        assert len(points) == expected, (topic, body)
        reads += expected
    assert reads == len(GOOD_JSON["read"]) * 2 - len(GOOD_JSON["read"]) % 4


def test_hj212_decoder_only_raises_payload_error_and_returns_storable() -> None:
    @FUZZ
    @given(hj212_inputs)
    def run(message: tuple[str, bytes]) -> None:
        check(*message)

    run()


# ---------------------------------------------------------------------------------------------
# Good traffic is untouched

# sha256 of every good message's points as line protocol (each HJ 212 packet also makes its
# hj212_packet point since HJ 212-2025; EPCs, batches and manifests are fields since #19,
# a microsecond time keeps its microsecond in point_time),
# taken before the range checks went in (regenerate with `python -c "from
# tests.unit.test_hostile_payloads import *; print(good_digest())"` only when the simulators
# or the points change on purpose).
GOOD_DIGEST = "51537d435e5f1111cebdb5fb364572bb954878d08d2f39acf46c61f23a56a748"


def good_digest() -> str:
    digest = hashlib.sha256()
    for topic, payload in good_messages():
        for point in decode(topic, payload, CTX, now_ns=NOW_NS).points:
            digest.update(point.to_line().encode() + b"\n")
    return digest.hexdigest()


def test_good_traffic_decodes_to_the_same_points() -> None:
    count = 0
    for topic, payload in good_messages():
        points = check(topic, payload)
        assert points, (topic, payload)
        count += len(points)
    assert count > 150
    assert good_digest() == GOOD_DIGEST


# ---------------------------------------------------------------------------------------------
# Each input class that broke something before, as a named case

AIR = f"hw/{SITE}/air/aq-01/reading"
FRAME = f"hw/{SITE}/camera/cam-01/frame"
STATUS = f"hw/{SITE}/rfid/gate-01/status"
MANIFEST = f"hw/{SITE}/terminal/t-01/manifest"
BATCH = f"hw/{SITE}/terminal/t-01/batch"
TS = NOW_NS // NS_PER_MS - 60_000
GOOD_BATCH = dict(GOOD_JSON["batch"][0][1])
GOOD_MANIFEST = dict(GOOD_JSON["manifest"][0][1])


def _json(body: dict[str, Any]) -> bytes:
    return dump(body).encode()


def _hj(
    datatime: str = "20251125130000",
    *,
    qn: str = "20251125130000000",
    flag: str = "5",
    value: str = "35.5",
) -> bytes:
    cp = f"DataTime={datatime};a34004-Rtd={value},a34004-Flag=N"
    segment = f"QN={qn};ST=22;CN=2011;PW=123456;MN=41900100000007;Flag={flag};CP=&&{cp}&&"
    return frame_any(segment.encode())


REGRESSIONS: list[tuple[str, str, bytes, str]] = [
    # (name, topic, payload, expected reason)
    ("ts 1e308 (issue 21)", AIR, b'{"ts": 1e308, "pm25": 10}', "bad_ts"),
    (
        "LF after a site",
        f"hw/{SITE}\n/air/aq-01/reading",
        b'{"ts": %d, "pm25": 1}' % TS,
        "bad_topic",
    ),
    ("LF after a kind", AIR + "\n", b'{"ts": %d, "pm25": 1}' % TS, "bad_topic"),
    ("64 KB topic", "hw/" + "x" * 65_536, b'{"ts": %d, "pm25": 1}' % TS, "bad_topic"),
    (
        "4300-digit epc",
        f"hw/{SITE}/rfid/gate-01/read",
        b'{"ts": %d, "epc": %s}' % (TS, b"9" * 4300),
        "bad_type",
    ),
    (
        "64 KB epc",
        f"hw/{SITE}/rfid/gate-01/read",
        _json({"ts": TS, "epc": "x" * 60_000}),
        "bad_value",
    ),
    ("ts 1e19 ms", AIR, b'{"ts": 1e19, "pm25": 10}', "bad_ts"),
    ("ts int64 max ms", AIR, b'{"ts": 9223372036854775807, "pm25": 10}', "bad_ts"),
    ("ts 26 digits", AIR, b'{"ts": 99999999999999999999999999, "pm25": 10}', "bad_ts"),
    ("ts 4300 digits", AIR, b'{"ts": ' + b"9" * 4300 + b', "pm25": 10}', "bad_ts"),
    ("ts -4300 digits", AIR, b'{"ts": -' + b"9" * 4300 + b', "pm25": 10}', "bad_ts"),
    ("ts year 9999 west", AIR, b'{"ts": "9999-12-31T23:59:59-23:59", "pm25": 10}', "bad_ts"),
    ("ts past int64 ns", AIR, b'{"ts": "2262-04-11T23:47:16.854775808Z", "pm25": 1}', "bad_ts"),
    ("seq past int64", FRAME, _json({"ts": TS, "seq": 2**63}), "out_of_range"),
    ("seq 23 digits", FRAME, _json({"ts": TS, "seq": 10**22}), "out_of_range"),
    (
        "box NaN",
        FRAME,
        b'{"ts": %d, "seq": 1, "objects": [{"label": "drum", "conf": 0.5,'
        b' "box": [NaN, 0, 0.1, 0.1]}]}' % TS,
        "out_of_range",
    ),
    (
        "box 1e400",
        FRAME,
        b'{"ts": %d, "seq": 1, "objects": [{"label": "drum", "conf": 0.5,'
        b' "box": [1e400, 0, 0.1, 0.1]}]}' % TS,
        "out_of_range",
    ),
    ("NUL in event", FRAME, b'{"ts": %d, "seq": 1, "event": "a\\u0000b"}' % TS, "bad_value"),
    (
        "NUL in label",
        FRAME,
        b'{"ts": %d, "seq": 1, "objects": [{"label": "\\u0000", "conf": 0.5,'
        b' "box": [0, 0, 0.1, 0.1]}]}' % TS,
        "bad_value",
    ),
    ("NUL in fw", STATUS, b'{"online": true, "fw": "r2\\u0000"}', "bad_value"),
    ("ESC in vehicle", MANIFEST, _json({**GOOD_MANIFEST, "vehicle": "\x1b[2J"}), "bad_value"),
    ("NUL in waste_name", BATCH, _json({**GOOD_BATCH, "waste_name": "油\x00"}), "bad_value"),
    ("CR in handler", BATCH, _json({**GOOD_BATCH, "handler": "王\r工"}), "bad_value"),
    (
        "Arabic digits",
        BATCH,
        _json({**GOOD_BATCH, "waste_code": "٩٠٠-٢٤٩-٠٨", "waste_category": None}),
        "bad_value",
    ),
    (
        "deep extra key",
        AIR,
        b'{"ts": %d, "pm25": 1, "x": ' % TS + b"[" * 33 + b"]" * 33 + b"}",
        "too_deep",
    ),
    (
        "deep siblings",
        AIR,
        b'{"ts": %d, "pm25": 1, "x": [' % TS + b",".join([b"[" * 150 + b"]" * 150] * 200) + b"]}",
        "too_deep",
    ),
    ("invalid UTF-8", AIR, b'{"ts": %d, "pm25": 1, "x": "\xff"}' % TS, "bad_encoding"),
    ("UTF-8 surrogate", AIR, b'{"ts": %d, "pm25": 1, "x": "\xed\xa0\x80"}' % TS, "bad_encoding"),
    ("DataTime year 0001", HJ212_TOPIC, _hj("00010101000000"), "bad_ts"),
    ("DataTime 1999 at UTC+8", HJ212_TOPIC, _hj("20000101075959"), "bad_ts"),
    ("DataTime 2100", HJ212_TOPIC, _hj("21000101000000"), "future_ts"),
    ("DataTime year 9999", HJ212_TOPIC, _hj("99991231235959"), "bad_ts"),
    ("QN month 13", HJ212_TOPIC, _hj(qn="20251325135320000"), "bad_field"),
    ("QN with LF", HJ212_TOPIC, _hj(qn="20251125130000000\n"), "bad_field"),
    ("Flag 5000 digits", HJ212_TOPIC, _hj(flag="9" * 5000), "bad_field"),
    ("Rtd 400 digits", HJ212_TOPIC, _hj(value="9" * 400), "out_of_range"),
]


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [case[1:] for case in REGRESSIONS],
    ids=[case[0] for case in REGRESSIONS],
)
def test_regression(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        decode(topic, payload, CTX, now_ns=NOW_NS)
    assert info.value.reason == reason, info.value
    assert len(str(info.value)) < 600, str(info.value)


@pytest.mark.parametrize("ts_ns", [EARLIEST_NS, LATEST_NS, LATEST_NS // NS_PER_MS * NS_PER_MS])
def test_boundaries_inclusive(ts_ns: int) -> None:
    if ts_ns % NS_PER_MS == 0:
        (point,) = check(AIR, _json({"ts": ts_ns // NS_PER_MS, "pm25": 1.0}))
        assert point.ts_ns == ts_ns
    text = _near_boundary_text(ts_ns, 0)
    (point,) = check(AIR, _json({"ts": text, "pm25": 1.0}))
    assert point.ts_ns == ts_ns


@pytest.mark.parametrize("ts_ns", [EARLIEST_NS - 1, LATEST_NS + 1])
def test_boundaries_exclusive(ts_ns: int) -> None:
    with pytest.raises(PayloadError):
        decode(AIR, _json({"ts": _near_boundary_text(ts_ns, 0), "pm25": 1.0}), CTX, now_ns=NOW_NS)


@pytest.mark.parametrize(
    "ts_ns", [0, -1, 2**63, 2**64, -(2**70), 10**30, 10**4000, -(10**4000), EARLIEST_NS]
)
def test_format_ts_never_raises(ts_ns: int) -> None:
    text = format_ts(ts_ns)
    assert text and len(text) < 80
