"""Retention declared once (ingest/retention.py): every measurement has a policy, the settings
are its days, lines are routed by measurement, the API's resolution fits the window; the
embedded store prunes; the per-minute video summary from an embedded store; and what
`hazwatch migrate retention` would ask of InfluxDB 1.x and 2.x (2.x is not installed here:
its requests are checked on a recording client)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from hazwatch.alerts.model import ListSink
from hazwatch.base.points import Point, to_line
from hazwatch.commands.migrate import (
    PolicyInfo,
    duration_ns,
    v1_statements,
    v2_apply,
    v2_steps,
)
from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.ingest.influx_http import PolicyRoutes
from hazwatch.ingest.interfaces import RejectedLine
from hazwatch.ingest.pointstore import PointStore
from hazwatch.ingest.retention import (
    NS_PER_DAY,
    POLICIES,
    POLICY_OF,
    RetentionSettings,
    WindowTooLong,
    choose,
    days_of,
    influx_duration,
    keep_ns,
    measurement_of,
    route,
)
from hazwatch.settings import load_settings
from hazwatch.streams.video.minutes import MEASUREMENT, NS_PER_MIN, MinuteBook, summary
from hazwatch.streams.video.processor import VideoProcessor

ROOT = Path(__file__).resolve().parents[2]
S = 1_000_000_000
H = 3600 * S
T0 = 1_764_000_000 * S  # a whole minute
assert T0 % NS_PER_MIN == 0


def test_every_measurement_of_the_schema_has_one_policy() -> None:
    documented = set(re.findall(r"^#### `(\w+)`", (ROOT / "docs/payloads.md").read_text(), re.M))
    assert documented <= set(POLICY_OF), documented - set(POLICY_OF)
    assert MEASUREMENT in POLICY_OF  # video_minute, written by the video part
    named = [m for p in POLICIES for m in p.measurements]
    assert len(named) == len(set(named))  # one policy each
    text = (ROOT / "docs/retention.md").read_text()
    for policy in POLICIES:
        assert f"`{policy.name}`" in text and policy.setting in text


def test_settings_are_the_days_and_env_sets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    assert days_of(RetentionSettings())["records"] >= 5 * 365  # HJ 1259-2022: ≥ 5 years
    assert days_of(RetentionSettings())["video_raw"] == 30
    monkeypatch.setenv("HAZWATCH_RETENTION__VIDEO_RAW_DAYS", "7")
    s = load_settings()
    assert days_of(s.retention)["video_raw"] == 7
    assert keep_ns(s.retention)["video_frame"] == 7 * NS_PER_DAY
    assert influx_duration(7) == "168h" and influx_duration(0) == "INF"
    assert "air" not in keep_ns(RetentionSettings(air_raw_days=0))  # 0: for ever


def test_lines_are_routed_by_measurement() -> None:
    lines = [
        to_line("video_frame", {"site": "s", "camera": "c"}, {"seq": 1}, 1),
        "#replace " + to_line("air_hourly", {"site": "s", "station": "a"}, {"aqi": 3}, 2),
        to_line("air", {}, {"pm25": 1.0}, 3),
        to_line("unknown_m", {"site": "s"}, {"x": 1.0}, 4),
        to_line("video_frame", {"site": "s", "camera": "d"}, {"seq": 2}, 5),
    ]
    assert [measurement_of(line) for line in lines] == [
        "video_frame",
        "air_hourly",
        "air",
        "unknown_m",
        "video_frame",
    ]
    assert route(lines, POLICY_OF) == {
        "video_raw": [0, 4],
        "air_results": [1],
        "air_raw": [2],
        "": [3],
    }


def test_routes_use_only_the_policies_the_server_has_and_renumber_rejections() -> None:
    have = {"video_raw"}
    clock = [0.0]
    routes = PolicyRoutes(POLICY_OF, lambda: set(have), "test", clock=lambda: clock[0])
    written: dict[str, list[str]] = {}

    def write_to(policy: str, lines: Any) -> list[RejectedLine]:
        written[policy] = list(lines)
        return [RejectedLine(0, "no")] if policy == "" else []

    lines = [
        to_line("air", {}, {"pm25": 1.0}, 1),
        to_line("video_frame", {}, {"seq": 1}, 2),
    ]
    assert routes.write(lines, write_to) == [RejectedLine(0, "no")]  # air: the default
    assert written == {"": [lines[0]], "video_raw": [lines[1]]}
    assert "air_raw" in routes.missing
    have.add("air_raw")
    assert "air" not in routes.current()  # not asked again before refresh_s
    clock[0] = 301.0  # asked again once due
    assert routes.current()["air"] == "air_raw"


@pytest.mark.parametrize(
    ("series", "span", "name"),
    [
        ("camera_frames", 15 * 60 * S, "raw"),
        ("camera_frames", 6 * H, "raw"),
        ("camera_frames", 6 * H + 1, "minute"),
        ("camera_frames", 31 * NS_PER_DAY, "minute"),
        ("air_trend", 24 * H, "raw"),
        ("air_trend", 7 * NS_PER_DAY, "hourly"),
        ("air_trend", 400 * NS_PER_DAY, "daily"),
    ],
)
def test_the_resolution_fits_the_window(series: str, span: int, name: str) -> None:
    assert choose(series, span).name == name


def test_a_window_past_the_coarsest_resolution_is_refused_with_its_length() -> None:
    with pytest.raises(WindowTooLong, match="31 days"):
        choose("camera_frames", 32 * NS_PER_DAY)


def test_the_embedded_store_prunes_each_measurement_by_its_days(tmp_path: Path) -> None:
    now = T0 + 100 * NS_PER_DAY
    store = PointStore(
        tmp_path / "p.db", keep_ns=keep_ns(RetentionSettings(video_raw_days=30)), clock=lambda: now
    )
    old, new = now - 31 * NS_PER_DAY, now - 29 * NS_PER_DAY
    lines = [
        to_line("video_frame", {"camera": "c"}, {"seq": i}, t) for i, t in enumerate([old, new])
    ]
    lines.append(to_line("custody", {"site": "s"}, {"batch": "B"}, old))  # 5 years
    assert store.write(lines) == []  # the write prunes once, right after it
    assert [r["time"] for r in store.select("video_frame")] == [new]
    assert store.count("custody") == 1


def frames(camera: str, start: int, n: int, step_s: float = 1.0) -> list[dict[str, Any]]:
    return [
        {
            "ts": (start + int(i * step_s * S)) // 1_000_000,
            "seq": i,
            "brightness": 100.0 + i % 7,
            "sharpness": 800.0 + (i * 13) % 50,
            "motion": (i % 10) / 100,
            "occlusion": 0.0 if i % 3 else 0.2,
        }
        for i in range(n)
    ]


def expected_minute(payloads: list[dict[str, Any]], minute: int) -> dict[str, Any]:
    inside = [p for p in payloads if minute <= p["ts"] * 1_000_000 < minute + NS_PER_MIN]
    out: dict[str, Any] = {"frames": len(inside)}
    for m in ("brightness", "sharpness", "motion", "occlusion"):
        out[f"{m}_mean"] = sum(p[m] for p in inside) / len(inside)
        out[f"{m}_max"] = max(p[m] for p in inside)
    return out


def test_summary_counts_a_frame_once_and_only_its_minute() -> None:
    rows = [{"time": T0 + i * S, "brightness": float(i)} for i in range(3)]
    rows += [rows[1], {"time": T0 + NS_PER_MIN, "brightness": 99.0}]
    point = summary("s", "c", T0, rows, replaces=True)
    assert point is not None and point.replaces
    assert point.fields == {"frames": 3, "brightness_mean": 1.0, "brightness_max": 2.0}
    assert summary("s", "c", T0 + 5 * NS_PER_MIN, rows) is None


def test_minute_book_closes_after_the_grace_and_reopens_a_late_minute() -> None:
    book = MinuteBook(grace_ns=10 * S, quiet_ns=60 * S)
    book.saw("s", "c", T0 + 5 * S, now_ns=T0)
    assert book.due(T0) == []  # only the minute before (a restart may have cut it) waits
    book.saw("s", "c", T0 + 61 * S, now_ns=T0 + 1 * S)  # past the first minute's end
    due = book.due(T0 + 11 * S)
    assert ("s", "c", T0, False) in due and ("s", "c", T0 - NS_PER_MIN, True) in due
    book.saw("s", "c", T0 + 30 * S, now_ns=T0 + 20 * S)  # a late frame of a closed minute
    assert book.due(T0 + 20 * S + 60 * S) == [
        ("s", "c", T0, True),
        ("s", "c", T0 + NS_PER_MIN, False),
    ]


def test_video_processor_writes_each_minute_from_the_stored_frames(tmp_path: Path) -> None:
    store = PointStore(tmp_path / "points.db")
    proc = VideoProcessor(ListSink(), reader=store)
    payloads = frames("cam-1", T0, 150, step_s=0.5)  # 75 s: a whole minute and a part
    now = T0 + 80 * S
    batch = [
        decode("hw/jy-0012/camera/cam-1/frame", orjson.dumps(p), NoRegistry(), now_ns=now)
        for p in payloads
    ]
    store.write([p.to_line() for d in batch for p in d.points])
    # redelivered: the same frames again change nothing
    for _ in range(2):
        proc.process(batch, now)
    assert proc.tick(now + 11 * S) == []  # the round starts on its own thread
    proc.close()  # waits for it
    points: list[Point] = proc.tick(now + 12 * S)  # its points taken
    (minute,) = [p for p in points if p.ts_ns == T0]
    assert minute.measurement == MEASUREMENT and minute.tags == {
        "site": "jy-0012",
        "camera": "cam-1",
    }
    assert minute.fields == pytest.approx(expected_minute(payloads, T0))
    assert not minute.replaces


def test_v1_statements_create_alter_or_leave_each_policy() -> None:
    days = days_of(RetentionSettings())
    fresh = v1_statements("hw", PolicyInfo({}, "autogen"), days, copy=True)
    assert fresh[0] == 'CREATE DATABASE "hw"'
    assert 'CREATE RETENTION POLICY "video_raw" ON "hw" DURATION 720h REPLICATION 1' in fresh
    copies = [q for q in fresh if q.startswith("SELECT")]
    assert (
        'SELECT * INTO "hw"."video_raw"."video_frame" FROM "hw"."autogen"."video_frame"'
        " WHERE time >= now() - 30d GROUP BY *" in copies
    )
    assert any(""""epc"::tag = ''""" in q and '"waste_read"' in q for q in copies)
    have = PolicyInfo({p: d * NS_PER_DAY for p, d in days.items()}, "autogen")
    assert v1_statements("hw", have, days, copy=True) == ['CREATE DATABASE "hw"']
    have.durations_ns["status"] = duration_ns("720h0m0s")
    assert v1_statements("hw", have, days, copy=True)[1:] == [
        'ALTER RETENTION POLICY "status" ON "hw" DURATION 2160h'
    ]


class Recorder:
    """influxdb-client's buckets API, organizations API and DBRP service, as calls made."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.api_client = self

    def buckets_api(self) -> Recorder:
        return self

    def organizations_api(self) -> Recorder:
        return self

    def find_organizations(self, org: str) -> list[Any]:
        return [SimpleNamespace(id="org1")]

    def create_bucket(self, **kwargs: Any) -> None:
        self.calls.append(("create_bucket", kwargs))

    def find_bucket_by_name(self, name: str) -> Any:
        return SimpleNamespace(id=f"id-{name}", name=name, retention_rules=[])

    def update_bucket(self, bucket: Any) -> None:
        self.calls.append(("update_bucket", {"name": bucket.name}))

    def call_api(self, path: str, method: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((f"{method} {path}", {"body": kwargs.get("body")}))

    def select_header_accept(self, *args: Any) -> str:
        return "application/json"

    def select_header_content_type(self, *args: Any) -> str:
        return "application/json"


def test_v2_steps_and_what_they_request() -> None:
    days = days_of(RetentionSettings())
    steps = v2_steps("hw", {"hw_video_raw": 30 * 86_400, "hw_status": 86_400}, {"video_raw"}, days)
    actions = {(s.action, s.bucket) for s in steps}
    assert ("create", "hw_records") in actions and ("dbrp", "hw_records") in actions
    assert ("update", "hw_status") in actions
    assert not {a for a in actions if a[1] == "hw_video_raw"}  # as it should be: nothing
    client = Recorder()
    v2_apply(client, "hazwatch", "hw", steps)
    creates = [kw for name, kw in client.calls if name == "create_bucket"]
    records = next(kw for kw in creates if kw["bucket_name"] == "hw_records")
    assert records["org_id"] == "org1"
    assert records["retention_rules"][0].every_seconds == 1827 * 86_400
    dbrps = [kw["body"] for name, kw in client.calls if name == "POST /api/v2/dbrps"]
    assert {(b.database, b.retention_policy, b.bucket_id) for b in dbrps} >= {
        ("hw", "records", "id-hw_records")
    }
