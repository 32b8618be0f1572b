"""device_offline, the presence part's rule, with time passed in: a device's last will, its
silence past its family's limit, its return, a restart, two workers on one store.

Never sleep: every time is an argument. Messages are decoded from the bytes devices send
(devices/decode.py), so the rule sees what the pipeline hands it.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from hazwatch.alerts.model import AlertSignal, ListSink
from hazwatch.base.statedb import StateDB
from hazwatch.devices import hj212
from hazwatch.devices.decode import Decoded, decode
from hazwatch.devices.registry import RegistryContext, parse_registry
from hazwatch.streams.presence.processor import PresenceProcessor
from hazwatch.streams.presence.rules import (
    ANNOUNCED,
    DEVICE_OFFLINE,
    HOUR,
    LAST_WILL,
    MINUTE,
    SILENCE,
    is_silent,
    silent_limit_ns,
)
from hazwatch.streams.presence.settings import PresenceSettings
from hazwatch.streams.presence.store import PresenceStore

S = 1_000_000_000
T0 = 1_795_996_800 * S  # 2026-12-01 00:00 UTC
SITE = "jy-0012"
MN = "41900100000007"
REGISTRY = parse_registry(
    {
        "site": [{"id": SITE, "name": "某化工企业 危废暂存间"}],
        "reader": [{"id": "gate-03", "site": SITE, "location": "storage_in"}],
        "scale": [{"id": "s1", "site": SITE, "location": "generation"}],
        "terminal": [{"id": "t1", "site": SITE}],
        "station": [{"id": "aq-07", "site": SITE, "mn": MN, "open": True}],
        "camera": [{"id": "cam-2", "site": SITE, "watches": ["gate-03"]}],
    }
)
DEVICES = {
    "rfid": "gate-03",
    "scale": "s1",
    "terminal": "t1",
    "air": "aq-07",
    "camera": "cam-2",
}
CTX = RegistryContext(None, REGISTRY)


def message(family: str, device: str, kind: str, body: object, now_ns: int) -> Decoded:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return decode(f"hw/{SITE}/{family}/{device}/{kind}", raw, CTX, now_ns=now_ns)


def will(family: str, now_ns: int) -> Decoded:
    """The retained last will the broker publishes for a device gone: no time of its own."""
    return message(family, DEVICES[family], "status", {"online": False}, now_ns)


def sample(family: str, now_ns: int) -> Decoded:
    """One ordinary message of the family, as its devices send it."""
    ms = now_ns // 1_000_000
    epc = "E2801160600002040000ABCD"
    device = DEVICES[family]
    if family == "rfid":
        return message(family, device, "read", {"ts": ms, "epc": epc, "rssi": -50.0}, now_ns)
    if family == "scale":
        return message(family, device, "weight", {"ts": ms, "epc": epc, "net_kg": 12.5}, now_ns)
    if family == "terminal":
        body = {"ts": ms, "epc": epc, "batch": "B-1", "waste_code": "900-249-08"}
        return message(family, device, "batch", body, now_ns)
    if family == "air":
        return message(family, device, "reading", {"ts": ms, "pm25": 35.0}, now_ns)
    return message(family, device, "frame", {"ts": ms, "seq": now_ns // S}, now_ns)


def hourly(now_ns: int) -> Decoded:
    """An HJ 212 station's hourly data (CN 2061) for the hour before `now_ns`."""
    hour_ns = now_ns // (3600 * S) * 3600 * S - 3600 * S
    packet = hj212.data_packet(MN, hj212.CN_HOUR, hour_ns, {"pm25": 40.0}, qn_ts_ns=now_ns)
    return message("air", "aq-07", "hj212", hj212.build(packet), now_ns)


def subject(family: str) -> str:
    return f"{SITE}/{family}/{DEVICES[family]}"


def raised(sink: ListSink) -> list[tuple[str, str]]:
    return [(s.subject, str(s.details["reason"])) for s in sink.raised]


def cleared(sink: ListSink) -> list[str]:
    return [subj for rule, subj, _ in sink.cleared if rule == DEVICE_OFFLINE]


def processor(
    sink: ListSink, store: PresenceStore | None = None, **settings: float
) -> PresenceProcessor:
    return PresenceProcessor(sink, CTX, store, settings=PresenceSettings(**settings))


@pytest.fixture()
def store(tmp_path: Path) -> PresenceStore:
    return PresenceStore(StateDB(f"sqlite:///{tmp_path / 'state.db'}"))


@pytest.mark.parametrize("family", sorted(DEVICES))
def test_the_last_will_of_every_family_is_offline_and_any_message_after_clears(
    family: str,
) -> None:
    sink = ListSink()
    proc = processor(sink)
    proc.process([sample(family, T0)], T0)
    proc.process([will(family, T0 + 5 * S)], T0 + 5 * S)
    assert raised(sink) == [(subject(family), LAST_WILL)]
    signal = sink.raised[0]
    assert signal.rule == DEVICE_OFFLINE and signal.site == SITE
    assert signal.severity == "major" and "last will" in signal.message
    proc.process([will(family, T0 + 6 * S)], T0 + 6 * S)  # retained, delivered again
    assert len(sink.raised) == 1
    assert cleared(sink) == []
    proc.process([sample(family, T0 + 9 * S)], T0 + 9 * S)  # back
    assert cleared(sink) == [subject(family)]
    assert len(sink.raised) == 1


def test_a_status_sent_before_leaving_says_so_and_an_online_status_is_a_return() -> None:
    sink = ListSink()
    proc = processor(sink)
    bye = message("scale", "s1", "status", {"online": False, "ts": T0 // 1_000_000}, T0)
    proc.process([bye], T0)
    assert raised(sink) == [(subject("scale"), ANNOUNCED)]
    hello = message("scale", "s1", "status", {"online": True, "fw": "w1.9.0"}, T0 + S)
    proc.process([hello], T0 + S)
    assert cleared(sink) == [subject("scale")]


def test_a_will_and_the_reconnect_in_one_batch_is_a_device_that_is_back() -> None:
    sink = ListSink()
    proc = processor(sink)
    proc.process([sample("rfid", T0)], T0)
    online = message("rfid", "gate-03", "status", {"online": True}, T0 + S)
    proc.process([will("rfid", T0 + S), online], T0 + S)
    assert sink.raised == [] and cleared(sink) == []


def test_silence_past_the_families_limits_on_the_receivers_clock() -> None:
    sink = ListSink()
    proc = processor(sink)
    for family in DEVICES:
        proc.process([sample(family, T0)], T0)
    proc.tick(T0 + 29 * S)
    assert sink.raised == []
    proc.tick(T0 + 31 * S)  # the camera: 30 s
    assert raised(sink) == [(subject("camera"), SILENCE)]
    assert "nothing from it for over 30 s" in sink.raised[0].message
    proc.tick(T0 + 1799 * S)
    assert len(sink.raised) == 1
    proc.tick(T0 + 1801 * S)  # the air station, which sent real-time data: 30 min
    assert raised(sink)[1:] == [(subject("air"), SILENCE)]
    proc.tick(T0 + 30 * 86400 * S)  # readers, scales, terminals: judged by their will only
    assert len(sink.raised) == 2
    proc.process([sample("camera", T0 + 30 * 86400 * S)], T0 + 30 * 86400 * S)
    assert cleared(sink) == [subject("camera")]


def test_a_device_clock_set_wrong_does_not_make_it_silent() -> None:
    sink = ListSink()
    proc = processor(sink)
    slow = message("camera", "cam-2", "frame", {"ts": (T0 - 3600 * S) // 1_000_000, "seq": 1}, T0)
    proc.process([slow], T0)  # an hour slow: its time is not when it was heard
    proc.tick(T0 + 20 * S)
    assert sink.raised == []


def test_an_hourly_only_station_waits_for_its_hourly_limit() -> None:
    settings = PresenceSettings()
    assert silent_limit_ns(settings, "air", None) == 5400 * S
    assert silent_limit_ns(settings, "air", HOUR) == 5400 * S
    assert silent_limit_ns(settings, "air", MINUTE) == 1800 * S
    assert silent_limit_ns(settings, "rfid", None) == 0
    sink = ListSink()
    proc = processor(sink)
    proc.process([hourly(T0 + 120 * S)], T0 + 120 * S)
    proc.tick(T0 + 3000 * S)
    assert sink.raised == []  # between two hourly packets
    proc.tick(T0 + 5600 * S)
    assert raised(sink) == [(subject("air"), SILENCE)]
    assert "1.5 h" in sink.raised[0].message


def test_a_limit_set_for_readers_holds_them_to_their_heartbeat() -> None:
    sink = ListSink()
    proc = processor(sink, rfid_silent_s=180)
    heartbeat = message("rfid", "gate-03", "status", {"online": True}, T0)
    proc.process([heartbeat], T0)
    proc.tick(T0 + 170 * S)
    assert sink.raised == []
    proc.tick(T0 + 181 * S)
    assert raised(sink) == [(subject("rfid"), SILENCE)]


def test_devices_the_registry_does_not_know_never_alert() -> None:
    sink = ListSink()
    proc = processor(sink, rfid_silent_s=60)
    stranger = decode("hw/jy-0012/rfid/gate-99/status", b'{"online": false}', CTX, now_ns=T0)
    frame = decode(
        "hw/xx-01/camera/cam-2/frame", orjson.dumps({"ts": T0 // 10**6, "seq": 1}), CTX, now_ns=T0
    )
    proc.process([stranger, frame], T0)
    proc.tick(T0 + 3600 * S)
    assert sink.raised == [] and proc.devices == {}


def test_no_silence_while_the_broker_is_not_heard_and_it_counts_afresh_after() -> None:
    connected = [True]
    sink = ListSink()
    proc = PresenceProcessor(sink, CTX, listening=lambda: connected[0])
    proc.process([sample("camera", T0)], T0)
    connected[0] = False
    proc.tick(T0 + 60 * S)
    assert sink.raised == []
    connected[0] = True
    proc.tick(T0 + 61 * S)  # listening again: the broker may still hold its frames
    proc.tick(T0 + 90 * S)
    assert sink.raised == []
    proc.tick(T0 + 92 * S)
    assert raised(sink) == [(subject("camera"), SILENCE)]


def test_is_silent_counts_from_the_later_of_last_seen_and_listening() -> None:
    assert not is_silent(T0, T0 + 50 * S, T0 + 60 * S, 30 * S)
    assert is_silent(T0, T0, T0 + 31 * S, 30 * S)
    assert not is_silent(T0, T0, T0 + 10**6 * S, 0)  # 0: off


def test_a_restart_keeps_last_seen_and_does_not_alert_again(store: PresenceStore) -> None:
    sink = ListSink()
    first = processor(sink, store)
    first.process([sample("camera", T0), sample("air", T0)], T0)
    first.process([will("rfid", T0 + S)], T0 + S)
    first.tick(T0 + 40 * S)
    assert raised(sink) == [(subject("rfid"), LAST_WILL), (subject("camera"), SILENCE)]

    again = ListSink()
    restarted = processor(again, store)  # a new process on the same state store
    key = (SITE, "air", "aq-07")
    assert restarted.devices[key].seen_ns == T0 and restarted.devices[key].cadence == MINUTE
    restarted.process([will("rfid", T0 + 100 * S)], T0 + 100 * S)  # the retained will again
    restarted.tick(T0 + 100 * S)
    restarted.tick(T0 + 1000 * S)
    assert again.raised == []  # offline before the restart: not opened twice
    # silence counts from the restart: the air station is 1800 s from it, not from T0
    restarted.tick(T0 + 1801 * S)
    assert again.raised == []
    restarted.tick(T0 + 1901 * S)
    assert raised(again) == [(subject("air"), SILENCE)]
    restarted.process([sample("camera", T0 + 2000 * S)], T0 + 2000 * S)
    assert cleared(again) == [subject("camera")]


def test_two_workers_on_one_store_raise_and_clear_once(store: PresenceStore) -> None:
    sinks = [ListSink(), ListSink()]
    workers = [processor(sink, PresenceStore(store.db)) for sink in sinks]
    for worker in workers:  # each sees half of the camera's frames
        worker.process([sample("camera", T0)], T0)
    workers[0].process([sample("camera", T0 + 10 * S)], T0 + 10 * S)
    workers[1].tick(T0 + 35 * S)  # 35 s after its own last frame, 25 s after the camera's
    workers[0].tick(T0 + 35 * S)
    assert sinks[0].raised == sinks[1].raised == []
    for worker in workers:
        worker.tick(T0 + 41 * S)
    assert sorted(len(s.raised) for s in sinks) == [0, 1]  # one alert, whoever raised it
    # the camera comes back on the worker that did not raise: it clears it once
    quiet = 0 if sinks[1].raised else 1
    workers[quiet].process([sample("camera", T0 + 50 * S)], T0 + 50 * S)
    for worker in workers:
        worker.tick(T0 + 55 * S)
    assert sum(len(cleared(s)) for s in sinks) == 1


def test_a_will_taken_by_one_worker_and_the_return_by_another(store: PresenceStore) -> None:
    sinks = [ListSink(), ListSink()]
    workers = [processor(sink, PresenceStore(store.db)) for sink in sinks]
    workers[0].process([will("terminal", T0)], T0)
    workers[1].process([sample("terminal", T0 + 5 * S)], T0 + 5 * S)  # unaware it was offline
    assert raised(sinks[0]) == [(subject("terminal"), LAST_WILL)] and sinks[1].raised == []
    workers[0].tick(T0 + 6 * S)  # the store says it was heard after its will
    assert cleared(sinks[0]) + cleared(sinks[1]) == [subject("terminal")]
    workers[1].tick(T0 + 7 * S)
    assert len(cleared(sinks[0]) + cleared(sinks[1])) == 1


class FailingSink(ListSink):
    def raise_alert(self, signal: AlertSignal) -> None:
        raise RuntimeError("alert store down")


def test_an_alert_that_could_not_be_raised_is_tried_again(store: PresenceStore) -> None:
    proc = processor(FailingSink(), store)
    with pytest.raises(RuntimeError):
        proc.process([will("camera", T0)], T0)
    assert store.load()[(SITE, "camera", "cam-2")].offline is None  # nothing kept
    sink = ListSink()
    proc.alerts = sink
    proc.process([will("camera", T0)], T0)  # the batch again
    assert raised(sink) == [(subject("camera"), LAST_WILL)]


def test_blind_read_asks_the_presence_part_whether_a_camera_is_offline(tmp_path: Path) -> None:
    """The service hands the video part the presence part's answer (hazwatch/app.py)."""
    from hazwatch.devices.registry import save
    from hazwatch.parts import PartContext
    from hazwatch.parts.presence import PresencePart
    from hazwatch.parts.video import VideoPart
    from hazwatch.settings import load_settings
    from hazwatch.streams.video.processor import VideoProcessor

    settings = load_settings(None, data_dir=tmp_path)
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    save(db, REGISTRY, "test", T0)
    ctx = PartContext(settings, db, ListSink())
    presence, video = PresencePart(ctx), VideoPart(ctx)
    video.see_cameras_offline(presence.camera_offline)
    (rules,) = [p.rules for p in video.processors() if isinstance(p, VideoProcessor)]
    assert rules.known_offline(SITE, "cam-2") is None
    (proc,) = presence.processors()
    proc.process([will("camera", T0)], T0)
    assert rules.known_offline(SITE, "cam-2") == T0
    assert rules.blind(SITE, "cam-2", T0) == "offline"  # never framed here, yet offline
    proc.process([sample("camera", T0 + S)], T0 + S)
    assert rules.known_offline(SITE, "cam-2") is None


def test_alerts_of_the_rules_device_offline_replaced_are_resolved_at_start(
    tmp_path: Path,
) -> None:
    from hazwatch.alerts.model import Severity
    from hazwatch.alerts.store import AlertStore
    from hazwatch.parts import PartContext
    from hazwatch.parts.presence import RETIRED_COMMENT, PresencePart, retire
    from hazwatch.settings import load_settings

    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    alerts = AlertStore(db)  # a store from before the upgrade
    for rule, subj in (("camera_offline", "jy-0012/cam-2"), ("station_stale", "jy-0012/aq-07")):
        alerts.raise_alert(AlertSignal(rule, subj, Severity.MAJOR, "old", SITE, T0))
    taken = alerts.raise_alert(
        AlertSignal("camera_offline", "jy-0012/cam-3", Severity.MAJOR, "old", SITE, T0)
    )
    assert taken is not None
    alerts.acknowledge(taken.alert_id, at_ns=T0 + S, by="张工")
    other = alerts.raise_alert(
        AlertSignal("frame_gap", "jy-0012/cam-2", Severity.WARNING, "x", SITE, T0)
    )
    assert other is not None
    PresencePart(PartContext(load_settings(None, data_dir=tmp_path), db, alerts))
    retired = [a for a in alerts.list(limit=100) if a.rule != "frame_gap"]
    assert len(retired) == 3 and all(a.state == "resolved" for a in retired)
    assert alerts.get(other.alert_id).state == "open"  # not its business
    history = alerts.history(taken.alert_id)
    assert (history[-1].change, history[-1].actor) == ("auto_resolved", "auto")
    assert history[-1].comment == RETIRED_COMMENT
    assert retire(alerts, T0 + 2 * S) == 0  # a second start: nothing left
    assert retire(ListSink(), T0) == 0
