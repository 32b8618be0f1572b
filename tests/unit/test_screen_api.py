"""The screen's JSON endpoints (hazwatch.parts.screen) over a state store and a point store
filled as the service fills them, and its pages: answers, bad parameters, nothing off the host.

Never mock a store here: the custody processor, the air processor, the alert store, the
dead-letter store and the embedded point store are the real ones, on files in a temp folder.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hazwatch.alerts.model import AlertSignal, Severity
from hazwatch.alerts.store import AlertStore
from hazwatch.api.app import create_app, static_dir
from hazwatch.api.deps import ApiContext
from hazwatch.api.routes import screen
from hazwatch.api.routes.feed import Cursor
from hazwatch.base.statedb import StateDB
from hazwatch.devices import camera as camera_contract
from hazwatch.devices import hj212, registry
from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.ingest.deadletters import DeadLetter, DeadLetterStore
from hazwatch.ingest.pointstore import PointStore
from hazwatch.parts import air as wiring_air
from hazwatch.parts import alerts as wiring_alerts
from hazwatch.parts import custody as wiring_custody
from hazwatch.parts import screen as wiring_screen
from hazwatch.parts import video as wiring_video
from hazwatch.simulators.custody import Plan, plan
from hazwatch.streams.air.aqi import LEVELS
from hazwatch.streams.air.processor import AirProcessor
from hazwatch.streams.air.store import AirStore
from hazwatch.streams.custody.processor import CustodyProcessor
from hazwatch.streams.custody.rules import STAGES, Tracker, Violation
from hazwatch.streams.custody.store import CustodyStore
from hazwatch.streams.labels.processor import LabelProcessor
from hazwatch.streams.labels.store import LabelStore
from hazwatch.streams.video.store import EvidenceStore, snapshot_dir
from tests.samples import REGISTRY_FILE, custody_limits

NS_S = 1_000_000_000
NS_MIN = 60 * NS_S
NS_H = 60 * NS_MIN
LABEL_ID = "91410100MA46X0XX0X0000000000000000001"  # 37 characters, as HJ 1276-2022's code


class World:
    """A state store and a point store as a running service leaves them, and the app."""

    def __init__(self, folder: Path) -> None:
        self.now = time.time_ns()
        self.db = StateDB(f"sqlite:///{folder / 'state.db'}")
        registry.save(self.db, registry.load_file(REGISTRY_FILE), "test", self.now)
        tracker = Tracker()
        self.decode_ctx = registry.RegistryContext(self.db, batches=tracker.epc_batch)
        self.custody = CustodyStore(self.db)
        self.alerts = AlertStore(self.db)
        self.processor = CustodyProcessor(
            tracker, self.decode_ctx, self.alerts, self.custody, limits=custody_limits()
        )
        self.labels = LabelStore(self.db)
        self.label_processor = LabelProcessor(self.labels)
        self.plan: Plan = plan(12, 3, seed=3)
        self.process(self.plan.messages)
        self.points = PointStore(folder / "points.db")
        self.air = AirStore(self.db)
        hour0 = (self.now // NS_H - 4) * NS_H  # three closed hours of minute data
        packets = [
            hj212.build(
                hj212.data_packet("MN1", "2051", hour0 + m * NS_MIN, {"pm25": 60.0 + m % 50})
            )
            for m in range(200)
        ]
        decoded = [
            decode("hw/s1/air/aq-1/hj212", p, NoRegistry(), now_ns=self.now) for p in packets
        ]
        AirProcessor(self.air).process(decoded, self.now)
        self.write_points(decoded)
        self.deadletters = DeadLetterStore(self.db)
        self.evidence = EvidenceStore(snapshot_dir(folder))
        self.ctx = ApiContext(
            db=self.db,
            reader=self.points,
            alerts=self.alerts,
            data_dir=folder,
            health_checks={"state_store": self.db.ping},
            ingest_health=lambda: {
                "reasons": [],
                "messages": 1234,
                "messages_per_s": 12.5,
                "deadletters_per_min": 0.0,
                "spool_segments": 0,
                "deadletter_store": {"full": False},
            },
            api_token="t0ken",
            custody=self.custody,
            air=self.air,
            evidence=self.evidence,
            deadletters=self.deadletters,
            labels=self.labels,
        )
        modules = (wiring_alerts, wiring_custody, wiring_air, wiring_video, wiring_screen)
        self.app: FastAPI = create_app(self.ctx, [r for m in modules for r in m.routers()])
        self.client = TestClient(self.app)

    def process(self, messages: Any) -> None:
        decoded = [decode(m.topic, m.payload, self.decode_ctx, now_ns=self.now) for m in messages]
        self.processor.process(decoded, self.now)
        self.label_processor.process(decoded, self.now)

    def write_points(self, decoded: Any) -> None:
        lines = [p.to_line() for d in decoded for p in d.points]
        assert not self.points.write(lines)

    def write_lines(self, *lines: str) -> None:
        assert not self.points.write(list(lines))


class _Message:
    def __init__(self, topic: str, payload: bytes) -> None:
        self.topic, self.payload = topic, payload


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("screen"))


def _get(world: World, url: str, status: int = 200, **params: Any) -> Any:
    answer = world.client.get(url, params=params)
    assert answer.status_code == status, answer.text
    return answer.json()


# ---------------------------------------------------------------- labels


def test_every_rule_of_every_part_has_a_name_in_both_languages(world: World) -> None:
    labels = _get(world, "/api/screen/labels")
    assert set(labels["rules"]) == {spec.id for spec in screen.RULE_SPECS}
    assert {"weight_mismatch", "air_exceedance", "tamper_occlusion", "clock_skew"} <= set(
        labels["rules"]
    )
    for rule_id, rule in labels["rules"].items():
        spec = next(s for s in screen.RULE_SPECS if s.id == rule_id)
        assert rule["name"]["zh"] == spec.description_zh.split("：")[0]
        assert rule["name"]["en"] and re.fullmatch(r"[A-Za-z0-9 ]+", rule["name"]["en"])
        assert rule["description"] == {"zh": spec.description_zh, "en": spec.description_en}
    assert labels["rules"]["weight_mismatch"]["name"] == {"zh": "称重不符", "en": "Weight mismatch"}
    assert list(labels["stages"]) == list(STAGES)
    assert all(s["zh"] and s["en"] for s in labels["stages"].values())
    assert labels["stages"]["STORED"] == {"zh": "贮存", "en": "stored"}


def test_aqi_levels_carry_hj_633_names_and_colours(world: World) -> None:
    levels = _get(world, "/api/screen/labels")["aqi_levels"]
    assert [lv["name"]["zh"] for lv in levels] == [
        "优", "良", "轻度污染", "中度污染", "重度污染", "严重污染",
    ]  # fmt: skip
    assert [lv["rgb"] for lv in levels] == [
        "#00e400", "#ffff00", "#ff7e00", "#ff0000", "#99004c", "#7e0023",
    ]  # fmt: skip
    assert [lv.rgb for lv in LEVELS] == [lv["rgb"] for lv in levels]
    assert levels[-1]["high"] == 500


# ---------------------------------------------------------------- overview


def test_overview_adds_up_per_site_and_in_total(world: World) -> None:
    ov = _get(world, "/api/overview")
    total = ov["total"]
    broken = len(world.plan.broken())
    assert total["batches"]["total"] == len(world.plan.batches)
    assert total["batches"]["by_verdict"]["broken"] == broken
    assert sum(total["batches"]["by_stage"].values()) == total["batches"]["total"]
    crossed = total["batches"]["by_stage_verdict"]
    assert sum(n for by in crossed.values() for n in by.values()) == total["batches"]["total"]
    for key in ("total",):
        assert sum(s["batches"][key] for s in ov["sites"]) == total["batches"][key]
    assert {s["id"] for s in ov["sites"]} >= {"jy-0012", "tr-01", "dp-01"}
    for site in ov["sites"]:
        assert site["state"] in ("ok", "warning", "alarm")
        if site["batches"]["by_verdict"]["broken"]:
            assert site["state"] == "alarm"
    producer = next(s for s in ov["sites"] if s["id"] == "jy-0012")
    assert producer["storage"]["limit_kg"] == 3000
    assert producer["name"] and producer["lat"] is not None
    assert ov["ingest"]["messages_per_s"] == 12.5 and ov["ingest"]["status"] == "up"
    assert ov["now_ms"] == pytest.approx(time.time() * 1000, abs=60_000)


def test_overview_counts_open_alerts_by_severity_and_recent_ones(world: World) -> None:
    before = _get(world, "/api/overview")["total"]["alerts"]
    world.alerts.raise_alert(
        AlertSignal("sensor_spike", "s1/aq-1/pm25", Severity.WARNING, "spike", "s1", world.now)
    )
    after = _get(world, "/api/overview")
    assert after["total"]["alerts"]["by_severity"]["warning"] == (
        before["by_severity"]["warning"] + 1
    )
    assert any(a["rule"] == "sensor_spike" for a in after["recent_alerts"])
    site = next(s for s in after["sites"] if s["id"] == "s1")  # not in the registry: listed
    assert site["registered"] is False and site["alerts"]["by_severity"]["warning"] >= 1


def test_overview_air_has_the_aqi_level_colour_and_the_newest_reading(world: World) -> None:
    (station,) = _get(world, "/api/overview")["air"]
    assert station["station"] == "aq-1" and isinstance(station["aqi"], int)
    level = next(lv for lv in LEVELS if station["aqi"] <= lv.high)
    assert station["rgb"] == level.rgb and station["level_name"]["zh"] == level.category_zh
    assert "pm25" in station["latest"] and station["latest"]["ts"].endswith("Z")


def test_overview_counts_devices_online_and_offline_from_their_status(world: World) -> None:
    ts = world.now - 10 * NS_S
    world.write_lines(
        "device_status,device=gate-03,family=rfid,site=jy-0012 "
        f"online=true,battery=40.5,rssi=-41.0 {ts}",
        f"device_status,device=gate-04,family=rfid,site=jy-0012 online=false {ts}",
    )
    rfid = next(s for s in _get(world, "/api/overview")["sites"] if s["id"] == "jy-0012")[
        "devices"
    ]["rfid"]
    assert rfid["online"] >= 1 and rfid["offline"] >= 1


# ---------------------------------------------------------------- feed


def test_feed_pages_after_a_cursor_and_sees_each_kind(world: World) -> None:
    first = _get(world, "/api/feed", limit=500)
    assert Cursor.parse(first["cursor"]) is not None
    assert any(e["kind"] == "custody" for e in first["events"])
    assert first["events"] == sorted(first["events"], key=lambda e: (e["ts_ms"], e["key"]))
    again = _get(world, "/api/feed", after=first["cursor"])
    assert again["events"] == [] and again["cursor"] == first["cursor"]
    registration = {
        "ts": world.now // 1_000_000,
        "epc": "E280FEED0000000000000001",
        "batch": "FEED-001",
        "waste_code": "900-249-08",
        "waste_name": "废矿物油",
        "waste_category": "HW08",
    }
    world.process([_Message("hw/jy-0012/terminal/t1/batch", orjson.dumps(registration))])
    world.deadletters.add_many(
        [DeadLetter(world.now, "hw/jy-0012/rfid/gate-03/read", "bad_json", "not JSON", b"{")]
    )
    world.alerts.raise_alert(
        AlertSignal("camera_offline", "jy-0012/cam-9", Severity.MAJOR, "off", "jy-0012", world.now)
    )
    new = _get(world, "/api/feed", after=first["cursor"])
    kinds = {e["kind"] for e in new["events"]}
    assert kinds == {"custody", "deadletter", "alert"}
    assert all(e["batch"].startswith("FEED-") for e in new["events"] if e["kind"] == "custody")
    alert = next(e for e in new["events"] if e["kind"] == "alert")
    assert alert["rule"] == "camera_offline" and alert["change"] == "opened"
    letter = next(e for e in new["events"] if e["kind"] == "deadletter")
    assert letter["reason"] == "bad_json"
    assert _get(world, "/api/feed", after=new["cursor"])["events"] == []


@pytest.mark.parametrize(
    "params",
    [{"after": "c1-d1"}, {"after": "x"}, {"limit": 0}, {"limit": 501}, {"max_s": 0}],
)
def test_feed_refuses_bad_parameters(world: World, params: dict[str, Any]) -> None:
    answer = world.client.get("/api/feed", params=params)
    assert answer.status_code == 422 and answer.json()["detail"][0]["msg"]


def test_feed_refuses_a_last_event_id_that_is_no_cursor(world: World) -> None:
    answer = world.client.get("/api/feed", headers={"Last-Event-ID": "nonsense"})
    assert answer.status_code == 422
    assert "cursor" in answer.json()["detail"][0]["msg"]


def test_feed_streams_server_sent_events_and_ends_after_max_s(world: World) -> None:
    head = _get(world, "/api/feed")["cursor"]
    started = time.monotonic()
    with world.client.stream(
        "GET",
        "/api/feed",
        params={"max_s": 1},
        headers={"Accept": "text/event-stream", "Last-Event-ID": head},
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        text = "".join(answer.iter_text())
    assert time.monotonic() - started < 10
    frames = [f for f in text.split("\n\n") if f.strip()]
    assert frames[0] == "retry: 3000"
    events = [dict(line.split(": ", 1) for line in f.splitlines()) for f in frames[1:]]
    assert events[0]["event"] == "feed" and events[0]["id"] == head
    assert orjson.loads(events[0]["data"])["events"] == []
    assert events[-1]["event"] == "bye"


def test_feed_streams_end_when_the_service_stops(world: World) -> None:
    """A screen left open must not hold the server's graceful shutdown: its stream says bye."""
    timer = threading.Timer(1.5, world.ctx.stopping.set)
    timer.start()
    started = time.monotonic()
    try:
        with world.client.stream(
            "GET", "/api/feed", params={"max_s": 600}, headers={"Accept": "text/event-stream"}
        ) as answer:
            text = "".join(answer.iter_text())
    finally:
        timer.cancel()
        world.ctx.stopping.clear()
    assert time.monotonic() - started < 6
    assert text.rstrip().split("\n\n")[-1].startswith("id: ") and "event: bye" in text


# ---------------------------------------------------------------- devices and cameras


def test_devices_lists_the_registry_with_status_and_pages(world: World) -> None:
    page = _get(world, "/api/devices", limit=10000)
    assert page["total"] == len(page["devices"])
    keyed = {(d["site"], d["family"], d["device"]): d for d in page["devices"]}
    gate = keyed[("jy-0012", "rfid", "gate-03")]
    assert gate["registered"] and gate["location"] == "storage_in"
    assert gate["state"] == "online" and gate["battery_pct"] == 40.5 and gate["rssi_dbm"] == -41
    assert keyed[("jy-0012", "rfid", "gate-04")]["state"] == "offline"
    assert keyed[("jy-0012", "camera", "cam-2")]["watches"] == ["gate-03"]
    assert keyed[("jy-0012", "air", "aq-07")]["state"] == "unknown"
    rfid = _get(world, "/api/devices", family="rfid", limit=2, offset=1)
    assert len(rfid["devices"]) == 2 and all(d["family"] == "rfid" for d in rfid["devices"])
    assert rfid["total"] == sum(1 for d in page["devices"] if d["family"] == "rfid")


@pytest.mark.parametrize(
    "params", [{"family": "drone"}, {"site": "a b"}, {"limit": 0}, {"offset": -1}]
)
def test_devices_refuses_bad_parameters(world: World, params: dict[str, Any]) -> None:
    assert world.client.get("/api/devices", params=params).status_code == 422


def test_camera_frames_oldest_first_with_the_latest_snapshot(world: World) -> None:
    lines = []
    for n in range(5):
        ts = world.now - (5 - n) * 10 * NS_S
        occlusion = 0.1 * n
        lines.append(
            f"video_frame,camera=cam-2,site=jy-0012 seq={n}i,brightness={100 + n}.0,"
            f"sharpness=50.0,motion=0.2,occlusion={occlusion},scene_change=0.0 {ts}"
        )
    world.write_lines(*lines)
    name = camera_contract.snapshot_name("jy-0012", "cam-2", world.now, 4, "occlusion")
    world.evidence.put(name, b"\xff\xd8\xff\xe0" + bytes(64))
    doc = _get(world, "/api/cameras/jy-0012/cam-2/frames", minutes=5)
    assert [f["seq"] for f in doc["frames"]] == [0, 1, 2, 3, 4]
    assert doc["frames"][-1]["brightness"] == 104.0
    assert doc["snapshots"][0] == name
    assert world.client.get(f"/api/snapshots/{name}").status_code == 200


def test_camera_frames_of_an_unknown_camera_is_404(world: World) -> None:
    answer = world.client.get("/api/cameras/jy-0012/cam-77/frames")
    assert answer.status_code == 404 and "cam-77" in answer.json()["detail"]
    assert world.client.get("/api/cameras/jy-0012/cam-2/frames?minutes=0").status_code == 422


def test_camera_frames_of_a_camera_that_only_announced_itself_is_empty(world: World) -> None:
    # a camera /api/devices lists because it sent its status: the devices page asks for its
    # frames, and "none yet" is the answer, not 404 (a console error on the screen)
    world.write_lines(
        f"device_status,device=cam-9,family=camera,site=jy-0044 online=true {world.now}"
    )
    listed = {
        (d["site"], d["device"]) for d in _get(world, "/api/devices", family="camera")["devices"]
    }
    assert ("jy-0044", "cam-9") in listed
    doc = _get(world, "/api/cameras/jy-0044/cam-9/frames")
    assert doc["frames"] == [] and doc["snapshots"] == []
    assert world.client.get("/api/cameras/jy-0044/cam-8/frames").status_code == 404


# ---------------------------------------------------------------- batch page


def test_find_a_batch_by_code_epc_manifest_and_label_id(world: World) -> None:
    batch, truth = sorted(world.plan.batches.items())[0]
    assert _get(world, "/api/batches/find", q=batch)["matches"][0] == {
        **_get(world, "/api/batches/find", q=batch)["matches"][0],
        "batch": batch,
        "matched": "batch",
    }
    by_epc = _get(world, "/api/batches/find", q=truth.epc.lower())["matches"]
    assert [(m["batch"], m["matched"]) for m in by_epc] == [(batch, "epc")]
    listed = _get(world, "/api/batches/find", q=truth.manifest)["matches"]
    assert batch in {m["batch"] for m in listed} and {m["matched"] for m in listed} == {"manifest"}
    # the terminal's registration with its HJ 1276 label id, as the service decodes it: the
    # labels processor keeps it in the state store, where the search finds it (once, however
    # often the registration is delivered)
    sent = next(
        m for m in world.plan.messages if m.topic.endswith("/batch") and batch.encode() in m.payload
    )
    labelled_payload = orjson.dumps({**orjson.loads(sent.payload), "label_id": LABEL_ID})
    world.label_processor.process(
        [decode(sent.topic, labelled_payload, world.decode_ctx, now_ns=world.now)] * 2, world.now
    )
    labelled = _get(world, "/api/batches/find", q=LABEL_ID)["matches"]
    assert [(m["batch"], m["matched"]) for m in labelled] == [(batch, "label_id")]
    assert world.labels.batches(LABEL_ID) == [batch]
    other = LABEL_ID[:-1] + "9"
    assert _get(world, "/api/batches/find", q=other)["matches"] == []
    assert _get(world, "/api/batches/find", q="NO-SUCH-BATCH")["matches"] == []


@pytest.mark.parametrize("q", ["", "a b", "x" * 65, "批次"])
def test_find_refuses_what_cannot_name_a_batch(world: World, q: str) -> None:
    assert world.client.get("/api/batches/find", params={"q": q}).status_code == 422


def test_timeline_of_a_broken_batch_points_at_the_rule_and_its_event(world: World) -> None:
    batch, rule = sorted(world.plan.broken().items())[0]
    doc = _get(world, f"/api/batches/{batch}/timeline")
    assert doc["verdict"] == "broken" and doc["violations"]
    assert rule in {v["rule"] for v in doc["violations"]}
    marked = {e["event_id"]: e["broken_rule"] for e in doc["events"] if e["broken_rule"]}
    for violation in doc["violations"]:
        if violation["event_id"] in {e["event_id"] for e in doc["events"]}:
            assert marked[violation["event_id"]] == violation["rule"]
    assert [s["stage"] for s in doc["stages"]] == list(STAGES)
    assert doc["registration"]["waste_name"]
    assert doc["events"][0]["stage"] == "GENERATED" and doc["events"][0]["site_name"]
    assert {a["rule"] for a in doc["alerts"]} >= {v["rule"] for v in doc["violations"]} & {
        a["rule"] for a in doc["alerts"]
    }


def _every_custody_finding() -> list[tuple[str, str]]:
    """(rule, sentence) of every custody rule, each from its smallest story as the custody
    rules' own tests tell it (tests/unit/test_custody_rules.py), judged by the real Tracker."""
    return [(v.rule, v.message) for v in _every_custody_violation()]


def _every_custody_violation() -> list[Violation]:
    """The violations `_every_custody_finding` says: each with its sentence and its params."""
    from hazwatch.devices.registry import load_file
    from hazwatch.streams.custody.processor import geography
    from hazwatch.streams.custody.rules import NS_PER_DAY, Read
    from tests.unit import test_custody_rules as told

    # (inputs, judged this long after T0, then checked this long after T0 or not)
    stories: list[tuple[list[Any], int, int | None]] = []
    honest = told.HONEST
    late = 800 * NS_PER_DAY
    for steps, kwargs, check in [
        ((honest[1], *honest[2:]), {}, None),  # skipped_stage
        ((*honest[:4], ("tr-01", "veh-01", 750), honest[4]), {}, None),  # backward_stage
        ((*honest, ("jy-0012", "gate-03", 2000)), {}, None),  # disposed_tag
        (honest, {"recv_kg": 90.0}, None),  # weight_mismatch
        ((*honest[:3], ("dp-02", "rg-2", 700), ("dp-02", "line-2", 800)), {}, None),
        ((honest[0], ("kf-99", "in-9", 70), *honest[1:]), {}, None),  # cloned_tag
        ((*honest[:3], ("dp-01", "rg-1", 2100), ("dp-01", "line-1", 2160)), {}, None),
        ((honest[0], ("jy-0012", "gate-04", 366 * 1440)), {}, None),  # left storage late
        (honest, {"gen_kg": 3100.0, "recv_kg": 3100.0}, None),  # storage_over_capacity
        (honest[:1], {}, late),  # still in storage
        (honest[:3], {}, late),  # never received
    ]:
        stories.append((told.story(steps=steps, **kwargs), late, check))
    late_b = tuple((s, r, m + 24 * 60) if m >= 600 else (s, r, m) for s, r, m in honest)
    first = told.story("A", "E20000000000000000000A01", manifest=("A", "B"))
    second = "B", "E20000000000000000000B01"
    stories += [
        (first + told.story(*second, manifest=("A", "B"), steps=late_b), 5 * NS_PER_DAY, None),
        (
            first + told.story(*second, manifest=("A", "B"), steps=honest[:1]),
            11 * told.NS_PER_H,
            14 * told.NS_PER_H,
        ),
        ([Read("x1", "AAAABBBBCCCC", "jy-0012", "gate-03", "storage_in", told.T0)], 0, late),
    ]
    registry_file = Path(told.__file__).parents[1] / "data" / "registry.toml"
    geo = geography(load_file(registry_file), told.LIMITS)
    found: list[Violation] = []
    for items, judged_ns, check_ns in stories:
        tracker = Tracker(geo)
        found += tracker.apply(items, told.T0 + judged_ns).raised
        if check_ns is not None:
            found += tracker.check(told.T0 + check_ns).raised
    return found


def test_every_custody_finding_reads_in_chinese_and_english() -> None:
    from hazwatch.streams.custody.rules import RULES
    from hazwatch.streams.custody.text import SENTENCES, detail

    found = _every_custody_finding()
    assert {rule for rule, _ in found} == set(RULES)  # every rule, and each sentence of it:
    for sentence in SENTENCES:
        assert any(r == sentence.rule and sentence.pattern.match(m) for r, m in found), sentence
    for rule, message in found:
        said = detail(rule, message)
        assert said["read"], (rule, message)
        zh = str(said["zh"])
        assert re.search(r"[\u4e00-\u9fff]", zh), said
        # nothing of the English sentence left in the Chinese: only its ids, numbers and units
        ids = {
            w
            for token in message.split()
            if re.search(r"[0-9/-]|^[0-9A-F]{8,}$", token)
            for w in re.findall(r"[A-Za-z_]+", token)
        }
        words = set(re.findall(r"[A-Za-z_]+", message)) - ids - {"kg", "km", "h"}
        assert not words & set(re.findall(r"[A-Za-z_]+", zh)), (zh, message)
        assert said["en"] and " _" not in str(said["en"]) and "IN_TRANSIT" not in str(said["en"])
    said = detail("weight_mismatch", "a sentence the rules do not write")
    assert said == {"zh": "a sentence the rules do not write", "en": said["en"], "read": False}


def test_timeline_gives_each_finding_in_both_languages(world: World) -> None:
    batch, _ = sorted(world.plan.broken().items())[0]
    doc = _get(world, f"/api/batches/{batch}/timeline")
    for violation in doc["violations"]:
        assert violation["detail"]["read"] and violation["detail"]["zh"] != violation["message"]
        assert violation["params"], violation  # what the detail was said from
    for alert in doc["alerts"]:
        assert set(alert["detail"]) == {"zh", "en", "read"}


def test_timeline_weighs_every_weighing_against_generation(world: World) -> None:
    docs = [_get(world, f"/api/batches/{b}/timeline") for b in sorted(world.plan.batches)]
    received = [e for d in docs for e in d["events"] if e["stage"] == "RECEIVED" and e["net_kg"]]
    assert received
    for doc in docs:
        generated = next(e["net_kg"] for e in doc["events"] if e["stage"] == "GENERATED")
        for event in doc["events"]:
            if event["stage"] != "GENERATED" and event["net_kg"] is not None:
                assert event["diff_kg"] == round(event["net_kg"] - generated, 2)
    assert any(d["manifest_doc"] and d["manifest_doc"]["receiver"] for d in docs)


def test_timeline_shows_the_door_camera_snapshot_near_an_event(world: World) -> None:
    for batch in sorted(world.plan.batches):
        doc = _get(world, f"/api/batches/{batch}/timeline")
        stored = [e for e in doc["events"] if e["device"] == "gate-03"]
        if stored:
            break
    else:
        pytest.skip("no batch of the plan was read at gate-03")
    at_ns = stored[0]["ts_ms"] * 1_000_000
    name = camera_contract.snapshot_name("jy-0012", "cam-2", at_ns + 30 * NS_S, 7, "motion")
    world.evidence.put(name, b"\xff\xd8\xff\xe0" + bytes(32))
    event = _get(world, f"/api/batches/{batch}/timeline")["events"]
    shown = next(e for e in event if e["event_id"] == stored[0]["event_id"])
    assert shown["snapshot"] == {"camera": "cam-2", "name": name, "url": f"/api/snapshots/{name}"}


def test_timeline_of_an_unknown_batch_is_404_and_a_bad_code_422(world: World) -> None:
    assert world.client.get("/api/batches/NOPE/timeline").status_code == 404
    assert world.client.get("/api/batches/a%20b/timeline").status_code == 422


# ---------------------------------------------------------------- air trend


def test_air_trend_buckets_the_raw_readings(world: World) -> None:
    doc = _get(world, "/api/air/aq-1/trend", every_s=600)
    assert doc["points"] and not doc["truncated"]
    assert all(p["time_ms"] % (600 * 1000) == 0 for p in doc["points"])
    assert sum(p["readings"] for p in doc["points"]) == 200
    assert all(60 <= p["pm25"] <= 110 for p in doc["points"])


@pytest.mark.parametrize(
    ("params", "status"),
    [({"every_s": 5}, 422), ({"from": "2100-01-01T00:00:00Z"}, 422), ({}, 404)],
)
def test_air_trend_refuses_bad_parameters(
    world: World, params: dict[str, Any], status: int
) -> None:
    station = "aq-1" if params else "aq-404"
    assert world.client.get(f"/api/air/{station}/trend", params=params).status_code == status


# ---------------------------------------------------------------- pages and static files

PAGES = ["/screen/", *(f"/screen/{p}" for p in screen.PAGES if p != "overview")]
EXTERNAL = re.compile(r"""(?:https?:)?//(?!127\.0\.0\.1|localhost)[a-z0-9.-]+\.[a-z]{2,}""", re.I)


@pytest.mark.parametrize("url", PAGES)
def test_every_page_is_served_and_names_nothing_off_the_host(world: World, url: str) -> None:
    answer = world.client.get(url)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    html = answer.text
    assert '<html lang="zh-CN">' in html and 'data-i18n="brand"' in html
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    for src in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        assert world.client.get(src).status_code == 200, src


def test_the_root_leads_to_the_overview(world: World) -> None:
    answer = world.client.get("/", follow_redirects=False)
    assert answer.status_code == 307 and answer.headers["location"] == "/screen/"


def test_swagger_ui_is_served_from_the_package(world: World) -> None:
    html = world.client.get("/docs").text
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in html
    assert "/static/vendor/swagger-ui/swagger-ui.css" in html
    assert not EXTERNAL.search(html) and '"validatorUrl": null' in html
    assert world.client.get("/redoc").status_code == 404
    js = world.client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]


def test_the_screens_own_files_fetch_nothing_off_the_host() -> None:
    folder = Path(static_dir()) / "screen"
    files = [*folder.glob("*.js"), *folder.glob("*.css")]
    assert len(files) >= 10
    for path in files:
        text = path.read_text("utf-8")
        assert not EXTERNAL.search(text), (path.name, EXTERNAL.search(text))
        assert "@import" not in text and "fonts.googleapis" not in text
    css = (folder / "screen.css").read_text("utf-8")
    assert '"Microsoft YaHei", "PingFang SC", "Noto Sans CJK SC"' in css
    imported = {
        name for path in files for name in re.findall(r'from "\./([a-z]+\.js)"', path.read_text())
    }
    assert imported <= {p.name for p in files}
