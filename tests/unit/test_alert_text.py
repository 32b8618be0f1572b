"""Every rule's finding in Chinese and English: each rule of the catalog raised by its own code
(the custody Tracker, the presence, clocks, air and video processors and rules, the HJ 212
link's rules), its alert said by its part's formatter (streams/<part>/text.py) from its
fields alone (the message blanked), the Chinese checked to hold no English sentence (ids,
codes, numbers and units allowed), and an alert stored before the fields (its message only)
said the same; then the same words in a DingTalk message, in /api/alerts and in `hazwatch
alerts show`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from hazwatch.alerts.messages import alert_message, dingtalk_markdown
from hazwatch.alerts.model import Alert, AlertSignal, AlertState, ListSink
from hazwatch.alerts.text import FAMILY_WORDS, Detail, detail_of
from hazwatch.base.statedb import StateDB
from hazwatch.streams.catalog import rule_details, rule_specs
from hazwatch.streams.custody.rules import RULES as CUSTODY_RULES
from hazwatch.streams.presence.rules import DEVICE_OFFLINE

S = 1_000_000_000
# ASCII words a Chinese detail may carry: units, standards, protocols, pollutants' formulas
ALLOWED = {
    "AQI", "MQTT", "HJ", "GB", "MN", "PM", "RFID", "CO", "SO", "NO", "O", "hazwatch",
    "kg", "km", "mg", "µg", "m", "h", "s",
}  # fmt: skip


def alert_of(signal: AlertSignal) -> Alert:
    """The alert the store would open for this signal."""
    return Alert(
        alert_id="a1b2c3d4e5f60718",
        rule=signal.rule,
        subject=signal.subject,
        severity=signal.severity,
        message=signal.message,
        site=signal.site,
        state=AlertState.OPEN,
        opened_ns=signal.at_ns,
        updated_ns=signal.at_ns,
        evidence=signal.evidence,
        details=dict(signal.details),
    )


def english_words(zh: str, alert: Alert) -> set[str]:
    """ASCII words of `zh` that are neither an id, a code nor an allowed unit or name."""
    ids = {alert.site, *alert.subject.split("/"), alert.alert_id}
    ids |= {str(v) for v in alert.details.values() if isinstance(v, str)}
    for value in alert.details.values():
        if isinstance(value, dict):
            ids |= {str(k) for k in value}
        if isinstance(value, list):
            ids |= {str(v) for v in value}
    found = set()
    for token in re.findall(r"[A-Za-z0-9_.:/µ³-]+", zh):
        if token in ids or re.search(r"[0-9_/-]", token) or re.fullmatch(r"[0-9A-F]{8,}", token):
            continue  # an id, a code, a number, an address
        found |= {w for w in re.findall(r"[A-Za-zµ]+", token) if w not in ALLOWED}
    return found


# -- each part's rules, raised by their own code ---------------------------------------------


def custody_signals() -> list[AlertSignal]:
    from hazwatch.streams.custody.processor import CustodyProcessor
    from tests.unit.test_screen_api import _every_custody_violation

    sink = ListSink()
    for violation in _every_custody_violation():
        # the processor's own alert of a violation (its details: event id and params)
        CustodyProcessor._raise(SimpleNamespace(alerts=sink), violation)  # type: ignore[arg-type]
    return sink.raised


def presence_signals() -> list[AlertSignal]:
    from tests.unit import test_presence as told

    sink = ListSink()
    proc = told.processor(sink)
    for family in told.DEVICES:
        proc.process([told.sample(family, told.T0)], told.T0)
    proc.process([told.will("rfid", told.T0 + 5 * S)], told.T0 + 5 * S)  # its will
    bye = {"online": False, "ts": (told.T0 + 6 * S) // 1_000_000}
    proc.process([told.message("scale", "s1", "status", bye, told.T0 + 6 * S)], told.T0 + 6 * S)
    proc.tick(told.T0 + 31 * S)  # the camera: silent past its limit
    reasons = {str(s.details["reason"]) for s in sink.raised}
    assert reasons == {"last_will", "announced", "silence"}, reasons
    return sink.raised


def clock_signals(tmp_path: Path) -> list[AlertSignal]:
    from hazwatch.devices import registry as device_registry
    from hazwatch.devices.clock_offset import DeviceClocks
    from hazwatch.streams.clocks.processor import ClockProcessor
    from hazwatch.streams.clocks.store import ClockStore
    from tests.unit import test_clocks_processor as told

    db = StateDB(f"sqlite:///{tmp_path / 'clocks.db'}")
    device_registry.save(db, device_registry.load_file(told.REGISTRY_FILE), "test", told.T0)
    sink, clocks = ListSink(), DeviceClocks()
    processor = ClockProcessor(
        clocks, sink, device_registry.RegistryContext(db, refresh_s=0), ClockStore(db)
    )
    told.slow(clocks, told.GATE, 90)
    processor.tick(told.T0 + 90 * S)
    return sink.raised


def air_signals(tmp_path: Path) -> list[AlertSignal]:
    from hazwatch.streams.air.processor import AirProcessor
    from hazwatch.streams.air.store import AirStore
    from tests.unit import test_air_hourly as told

    found: list[AlertSignal] = []
    # a day of PM2.5 at 100 and rising O3: air_exceedance and aqi_level
    sink = ListSink()
    proc = AirProcessor(AirStore(StateDB(f"sqlite:///{tmp_path / 'air1.db'}")), sink)
    batch = [
        told.minute(
            told.HOUR0 + h * told.NS_H + m * told.NS_MIN,
            {"pm25": 100.0 + (1.0 if m % 2 else -1.0), "o3": 150.0 + h},
        )
        for h in range(24)
        for m in range(60)
    ]
    proc.process(batch, told.NOW)
    proc.tick(told.LATER)
    found += sink.raised
    # six hours of CO at one value and one absurd PM2.5 reading: the data audit's two rules
    sink = ListSink()
    proc = AirProcessor(AirStore(StateDB(f"sqlite:///{tmp_path / 'air2.db'}")), sink)
    batch = [
        told.minute(told.HOUR0 + m * told.NS_MIN, {"pm25": 30.0 + m % 5, "co": 0.8})
        for m in range(360)
    ]
    batch[330] = told.minute(told.HOUR0 + 330 * told.NS_MIN, {"pm25": 900.0, "co": 0.8})
    proc.process(batch, told.NOW)
    proc.tick(told.LATER)
    return found + sink.raised


def video_signals() -> list[AlertSignal]:
    from hazwatch.streams.video.processor import VideoProcessor
    from hazwatch.streams.video.rules import Finding, VideoRules
    from hazwatch.streams.video.settings import VideoRuleSettings
    from tests.unit import test_blind_read as blind
    from tests.unit import test_video_rules as told

    findings: list[Finding] = []
    for values in ({"occlusion": 0.97, "scene_change": 1.0}, {"scene_change": 0.8}):
        rules = told.fresh()
        findings += rules.frame(told.frame(1, 0.5, **values))
        findings += rules.frame(told.frame(2, 1.0, **values))
    for values in ({"sharpness": 50.0}, {"brightness": 5.0, "sharpness": 3.0}):
        rules = told.fresh()
        for i in range(1, 6):
            rules.frame(told.frame(i, i * 0.5))
        findings += rules.frame(told.frame(6, 3.0, **values))
        findings += rules.frame(told.frame(7, 3.5, **values))
    rules = VideoRules(VideoRuleSettings(door_window_s=60), lambda site, cam: ["gate-03"])
    findings += rules.frame(told.frame(0, 0)) + rules.frame(told.frame(1, 1, motion=0.05))
    findings += rules.tick(told.T0 + 72 * told.S)
    rules = told.fresh(VideoRuleSettings(confirm_grace_s=10))
    findings += rules.frame(told.frame(1, 0.5)) + rules.frame(told.frame(4, 1.0), told.T0 + S)
    findings += rules.tick(told.T0 + 11 * told.S)
    doors = blind.rules_for()
    for n in (1, 2):
        findings += blind.frame(doors, n, n * 0.5, **blind.BLINDING["covered"])
    findings += blind.read(doors, 1.5)
    sink = ListSink()
    VideoProcessor(sink)._emit([f for f in findings if f.active])  # the processor's own signals
    return sink.raised


def hj212_signals() -> list[AlertSignal]:
    from hazwatch.streams.hj212.rules import RefusedPeers, mean_mismatch
    from hazwatch.streams.hj212.settings import LinkSettings

    peers = RefusedPeers(LinkSettings())
    refused = [peers.refused("10.0.0.9:4021", "auth_refused", "MN1", i * S) for i in range(5)]
    mismatch = mean_mismatch(
        "jy-0012", "aq-07", "pm25", "hour", 0, 48.0, 40.0, 4.0, S, "2026-11-24 08:00"
    )
    return [s for s in (*refused, mismatch) if s is not None]


@pytest.fixture(scope="module")
def every_rule(tmp_path_factory: pytest.TempPathFactory) -> list[Alert]:
    tmp = tmp_path_factory.mktemp("rules")
    signals = [
        *custody_signals(),
        *presence_signals(),
        *clock_signals(tmp),
        *air_signals(tmp),
        *video_signals(),
        *hj212_signals(),
    ]
    return [alert_of(s) for s in signals]


def test_every_rule_of_the_catalog_is_raised_here(every_rule: list[Alert]) -> None:
    assert {a.rule for a in every_rule} == set(rule_specs())
    assert set(rule_details()) == set(rule_specs())  # and every one has a formatter


def test_every_rules_detail_is_chinese_and_english_from_its_fields(every_rule: list[Alert]) -> None:
    for alert in every_rule:
        said = detail_of(alert, rule_details())
        assert said.read, (alert.rule, alert.message)
        assert re.search(r"[\u4e00-\u9fff]", said.zh), said
        assert not english_words(said.zh, alert), (
            alert.rule,
            said.zh,
            english_words(said.zh, alert),
        )
        assert said.en and not re.search(r"[\u4e00-\u9fff]", said.en.replace(
            str(alert.details.get("standard", "")), "")), said  # fmt: skip


def test_every_rules_detail_is_said_from_its_fields_not_its_message(
    every_rule: list[Alert],
) -> None:
    for alert in every_rule:
        blank = dataclasses.replace(alert, message="")  # no sentence left to read numbers from
        assert detail_of(blank, rule_details()) == detail_of(alert, rule_details()), alert.rule


# the fields each part's alerts gained over their message: an alert stored before them had
# only its message to say these from
NEWER_FIELDS = {
    "sensor_flatline": ("value", "hours", "need_hours", "resolution"),
    "sensor_spike": ("top", "median"),
    "aqi_level": ("primary",),
    "clock_skew": ("samples", "tolerance_s"),
    "hj212_auth_refused": ("window_min",),
    "door_motion_no_read": ("window_s",),
    **{rule: ("params",) for rule in CUSTODY_RULES},
}


def test_an_alert_stored_before_its_fields_still_reads_the_same(every_rule: list[Alert]) -> None:
    for alert in every_rule:
        newer = NEWER_FIELDS.get(alert.rule)
        if newer is None:
            continue
        assert all(name in alert.details for name in newer), (alert.rule, alert.details)
        old = dataclasses.replace(
            alert, details={k: v for k, v in alert.details.items() if k not in newer}
        )
        said_old, said = detail_of(old, rule_details()), detail_of(alert, rule_details())
        assert said_old.read and said_old == said, (alert.rule, said_old, said)
    assert {a.rule for a in every_rule} >= set(NEWER_FIELDS)


def test_every_custody_violation_is_said_from_its_params_as_from_its_sentence() -> None:
    from hazwatch.streams.custody.text import SENTENCES, detail
    from tests.unit.test_screen_api import _every_custody_violation

    found = _every_custody_violation()
    said_by = set()
    for v in found:
        from_params = detail(v.rule, "", v.params)  # no sentence: the params alone
        assert from_params["read"], (v.rule, v.params)
        assert from_params == detail(v.rule, v.message), (v.rule, v.message, v.params)
        said_by.add((v.rule, str(v.params.get("variant", ""))))
        json.dumps(v.params)  # JSON-able: the custody store and the alert's details keep them
    # every template of every rule said from params, every rule has one per variant
    assert said_by == {(s.rule, s.variant) for s in SENTENCES}
    assert {s.rule for s in SENTENCES} == set(CUSTODY_RULES)


def test_a_custody_violation_stored_before_its_params_is_read_from_its_sentence() -> None:
    from hazwatch.streams.custody.text import detail

    sentence = "left storage at jy-0012 after 400 days (limit 365)"
    old = detail("storage_overdue", sentence)  # a custody_batch row without `params`
    assert old == detail("storage_overdue", sentence, None)
    assert old == {
        "zh": "在 jy-0012 贮存 400 天后才出库（贮存期限 365 天）",
        "en": "left storage at jy-0012 after 400 days (limit 365)",
        "read": True,
    }
    params = {"variant": "left", "site": "jy-0012", "days": 400.2, "limit_days": 365.0}
    assert detail("storage_overdue", "", params) == old
    # params of another version (a field missing, a number a string): the sentence still says it
    assert detail("storage_overdue", sentence, {**params, "days": None}) == old
    assert detail("storage_overdue", sentence, {"variant": "gone"}) == old
    assert detail("storage_overdue", "", {"variant": "gone"})["read"] is False


def test_details_carry_the_alerts_numbers(every_rule: list[Alert]) -> None:
    by_rule = {a.rule: detail_of(a, rule_details()) for a in every_rule}
    assert "（MQTT 遗嘱）" in next(
        detail_of(a, rule_details()).zh
        for a in every_rule
        if a.rule == DEVICE_OFFLINE and a.details["reason"] == "last_will"
    )
    assert "的时钟慢 900" in by_rule["clock_skew"].zh
    assert "PM2.5 24 小时平均浓度 100 µg/m³" in by_rule["air_exceedance"].zh
    assert by_rule["air_exceedance"].en.startswith(
        "PM2.5 24-h mean 100 µg/m³ over the grade II limit 60 of GB 3095-2026"
    )
    assert "首要污染物 PM2.5" in by_rule["aqi_level"].zh
    assert "CO 连续 6 小时的每个读数都是 0.8 mg/m³" in by_rule["sensor_flatline"].zh
    assert "PM2.5 读数突升至 900 µg/m³" in by_rule["sensor_spike"].zh
    assert "cam-2 被遮挡" in by_rule["blind_read"].zh
    assert "站点上报 48，hazwatch 计算 40 µg/m³，相差 +8" in by_rule["station_mean_mismatch"].zh
    assert "5 次发送被拒的 HJ 212 报文" in by_rule["hj212_auth_refused"].zh
    assert "访问密码错误" in by_rule["hj212_auth_refused"].zh


def test_an_alert_its_formatter_cannot_read_is_given_in_its_own_words() -> None:
    old = alert_of(AlertSignal("air_exceedance", "s/aq-1/pm25_24h", "warning",  # type: ignore[arg-type]
                               "PM2.5 over", "s", S, {"value": 120}))  # fmt: skip
    assert detail_of(old, rule_details()) == Detail("PM2.5 over", "PM2.5 over", read=False)
    unknown = alert_of(AlertSignal("no_such_rule", "x", "warning", "text", "s", S))  # type: ignore[arg-type]
    assert detail_of(unknown, rule_details()).zh == "text"


def test_the_families_are_named_as_the_screen_names_them() -> None:
    from hazwatch.api.routes.screen import FAMILY_NAMES
    from hazwatch.devices.families import FAMILIES

    assert set(FAMILY_WORDS) == set(FAMILIES)
    assert {f: w[0] for f, w in FAMILY_WORDS.items()} == {f: FAMILY_NAMES[f][0] for f in FAMILIES}


# -- one text on every surface ---------------------------------------------------------------


class Notice:
    def __init__(self, alert: Alert) -> None:
        self.alert, self.change, self.at_ns, self.key = alert, "opened", S, f"{alert.alert_id}:1"


class NoNames:
    def site(self, site: str) -> str | None:
        return None

    def device(self, site: str, device: str) -> str | None:
        return {"cam-2": "贮存间北门"}.get(device)


def test_a_message_says_the_detail_and_the_family_in_its_language(every_rule: list[Alert]) -> None:
    offline = next(a for a in every_rule if a.rule == DEVICE_OFFLINE and "camera" in a.subject)
    for lang in ("zh", "en"):
        message = alert_message(
            Notice(offline), lang=lang, rules=rule_specs(), names=NoNames(),
            base_url="http://hw", now_ns=S, details=rule_details(),
        )  # fmt: skip
        lines = dict(message.lines)
        said = detail_of(offline, rule_details()).said(lang)
        if lang == "zh":
            assert lines["详情"] == said and lines["对象"] == "摄像机 / 贮存间北门（cam-2）"
            assert f"**详情**：{said}" in dingtalk_markdown(message)
        else:
            assert lines["Detail"] == said and lines["Subject"] == "camera / 贮存间北门 (cam-2)"
        assert message.data["alert"]["detail_zh"] == detail_of(offline, rule_details()).zh  # type: ignore[index]


def test_the_api_and_the_cli_say_what_the_message_says(
    every_rule: list[Alert], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hazwatch.alerts.store import AlertStore
    from tests.unit import test_alerts_cli as cli_test

    store = AlertStore(StateDB(f"sqlite:///{tmp_path / 'state.db'}"))
    offline = next(a for a in every_rule if a.rule == DEVICE_OFFLINE and "camera" in a.subject)
    opened = store.raise_alert(
        AlertSignal(offline.rule, offline.subject, offline.severity, offline.message,
                    offline.site, offline.opened_ns, offline.details)
    )  # fmt: skip
    assert opened is not None
    said = detail_of(offline, rule_details())
    cli = cli_test.cli.__wrapped__(store, tmp_path, monkeypatch)  # type: ignore[attr-defined]
    doc = json.loads(cli_test.run(cli, "show", opened.alert_id, "--json").output)
    assert (doc["detail_zh"], doc["detail_en"]) == (said.zh, said.en)
    listed = json.loads(cli_test.run(cli, "list", "--json").output)["alerts"][0]
    assert (listed["detail_zh"], listed["detail_en"]) == (said.zh, said.en)
    assert f"说明: {said.zh}" in cli_test.run(cli, "show", opened.alert_id).output
    monkeypatch.setenv("HAZWATCH_LANG", "en")
    assert f"Message: {said.en}" in cli_test.run(cli, "show", opened.alert_id).output
