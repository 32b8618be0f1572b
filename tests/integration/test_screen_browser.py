"""The monitoring screen in a real browser: Debian's chromium, driven by Playwright through
`executable_path` (never a browser Playwright downloads), against `hazwatch serve` on
Mosquitto and InfluxDB 1.x with simulated devices publishing through the broker.

Every page is opened in both languages and saved as a screenshot under tests/artifacts/screens/
(look at them: they are what the center's staff will see); every test fails on a request to
any host but 127.0.0.1 (intercepted and aborted) and on a console error. The wall display is
last: it rotates, and the server is killed and started again under it.

Never wait blindly: each effect is waited for with a deadline (Playwright's, or wait_for).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from hazwatch.devices import hj212
from hazwatch.devices.camera import snapshot_name
from hazwatch.devices.topics import build_topic
from hazwatch.simulators.custody import Plan, plan
from hazwatch.simulators.fleet import Fleet, FleetConfig
from hazwatch.simulators.hj212_station import StationSpec, diurnal
from tests.hazwatch_proc import HazwatchProcess
from tests.samples import REGISTRY_FILE
from tests.services import Influxd, Mosquitto, wait_for

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts" / "screens"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "screen-browser-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SITE = "jy-0012"
NS_S = 1_000_000_000
NS_MIN = 60 * NS_S
NS_H = 60 * NS_MIN
# aq-07's SM4 key in tests/data/station-secrets.example.toml (HJ 212-2025 A.2's example key)
SM4_KEY = bytes.fromhex("30303030303030303030303030303030")
# (page, what must be on it once it has its data)
PAGES = {
    "overview": "#stations .station",
    "batch": "#summary",
    "alerts": "#list tr[data-alert]",
    "air": "#hours table",
    "devices": "#table tbody tr",
    "ledger": "#records",
    "wall": ".view.shown",
}


@dataclass
class Screen:
    hazwatch: HazwatchProcess
    broker: Mosquitto
    plan: Plan
    broken: str  # a broken batch of the plan, with a door snapshot near its storage
    rule: str
    fleet: Fleet
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.hazwatch.api

    def get(self, path: str, **params: Any) -> Any:
        answer = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()


async def _publish(port: int, messages: list[tuple[str, bytes, bool]]) -> None:
    name = f"screen-test-{uuid.uuid4().hex[:6]}"
    async with aiomqtt.Client("127.0.0.1", port, identifier=name) as client:
        for topic, payload, retain in messages:
            await client.publish(topic, payload, qos=1, retain=retain)


def publish(broker: Mosquitto, *messages: tuple[str, Any]) -> None:
    """QoS 1, every PUBACK awaited; a status is retained, as devices set their last will. In a
    thread of its own: Playwright's sync API keeps an event loop running in this one."""
    batch = [
        (t, p if isinstance(p, bytes) else json.dumps(p).encode(), t.endswith("/status"))
        for t, p in messages
    ]
    failed: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_publish(broker.port, batch))
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert not failed, failed


def _jpeg(scene: str, index: int) -> bytes:
    import cv2

    from hazwatch.simulators.video_scenes import Scene

    ok, data = cv2.imencode(".jpg", Scene(scene, 480, 360, seed=3).frame(index))
    assert ok
    return bytes(data)


def upload_snapshot(hazwatch: HazwatchProcess, name: str, jpeg: bytes) -> None:
    answer = httpx.post(
        f"{hazwatch.api}/api/snapshots",
        params={"name": name, "sha256": hashlib.sha256(jpeg).hexdigest()},
        content=jpeg,
        headers={**AUTH, "Content-Type": "image/jpeg"},
        timeout=10,
    )
    assert answer.status_code in (200, 201), answer.text


def _station_day(start_ns: int, minutes: int) -> list[tuple[str, bytes, bool]]:
    """The registry's station aq-07 as it is set up there: HJ 212-2025 with its CP SM4-encrypted
    (its PW and key in the registry's secrets), PM2.5 sent in ng/m³ and CO in µg/m³; the
    simulator's diurnal curves of a dirty site, one CN 2051 record a minute."""
    spec = StationSpec(SITE, "aq-07", "41900100000007", pollution=2.4, seed=5)
    rng = random.Random(spec.seed)
    topic = build_topic(SITE, "air", "aq-07", hj212.KIND)
    out: list[tuple[str, bytes, bool]] = []
    for minute in range(minutes):
        ts_ns = start_ns + minute * NS_MIN
        values = diurnal(spec, (ts_ns // NS_S / 3600 + 8) % 24, rng)
        values = {**values, "pm25": values["pm25"] * 1000, "co": values["co"] * 1000}
        packet = hj212.data_packet(spec.mn, hj212.CN_MINUTE, ts_ns, values, edition="2025")
        out.append((topic, hj212.build(packet, SM4_KEY), False))
    return out


def _run_fleet(fleet: Fleet, url: str) -> None:
    asyncio.run(fleet.run(url))


@pytest.fixture(scope="module")
def screen(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Screen]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it)")
    folder = tmp_path_factory.mktemp("screen")
    db = f"screen_{uuid.uuid4().hex[:8]}"
    influxd.create_db(db)
    hazwatch = HazwatchProcess.on_influx_v1(
        folder / "hazwatch",
        mosquitto.url,
        influxd.url,
        db,
        state_url=f"sqlite:///{folder / 'state.db'}",
        api_token=TOKEN,
    )
    loaded = hazwatch.cli("registry", "load", str(REGISTRY_FILE))
    assert loaded.returncode == 0, loaded.stderr
    hazwatch.start()
    now = time.time_ns()
    # custody: 16 batches of the last days, four broken on purpose, all in the past
    the_plan = plan(16, 4, seed=11, start_ns=now - 80 * NS_H)
    asyncio.run(_publish(mosquitto.port, [(m.topic, m.payload, False) for m in the_plan.messages]))
    # air: a day of HJ 212 minute data of the registry's station, hours closing as it comes
    start = now - now % NS_MIN - 25 * 60 * NS_MIN
    asyncio.run(_publish(mosquitto.port, _station_day(start, 25 * 60)))
    # the registered devices' statuses, as their last wills and returns set them
    statuses = [
        (f"hw/{SITE}/rfid/gate-03/status", {"online": True, "battery": 76.0, "rssi": -48.0}),
        (f"hw/{SITE}/rfid/gate-04/status", {"online": True, "battery": 18.0, "rssi": -61.0}),
        (f"hw/{SITE}/camera/cam-2/status", {"online": True, "fw": "agent-0.1"}),
        ("hw/tr-01/rfid/veh-01/status", {"online": False}),
    ]
    publish(mosquitto, *[(t, {**p, "ts": now // 1_000_000}) for t, p in statuses])
    # a broken batch read at the storage door, and the door camera's snapshot of it
    broken, rule = next(
        (b, v)
        for b, v in sorted(the_plan.broken().items())
        if any(s[3] == "gate-03" for s in the_plan.batches[b].stages)
    )
    stored_ns = next(s[1] for s in the_plan.batches[broken].stages if s[3] == "gate-03")
    upload_snapshot(
        hazwatch,
        snapshot_name(SITE, "cam-2", stored_ns + 20 * NS_S, 1, "motion"),
        _jpeg("person", 40),
    )
    # the door camera covered: frames over the occlusion threshold, the evidence uploaded
    covered = _jpeg("covered", 60)
    name = snapshot_name(SITE, "cam-2", now, 12, "occlusion")
    upload_snapshot(hazwatch, name, covered)
    frames = []
    for seq in range(1, 13):
        ts = now - (13 - seq) * 5 * NS_S
        frame: dict[str, Any] = {
            "ts": ts // 1_000_000,
            "seq": seq,
            "brightness": 110.0 - 6 * max(0, seq - 8),
            "sharpness": 140.0 - 25 * max(0, seq - 8),
            "motion": 0.05,
            "occlusion": 0.02 if seq < 9 else 0.85,
            "scene_change": 0.01,
        }
        if seq >= 9:  # the agent keeps its evidence with each covered frame
            frame["snapshot"] = {"name": name, "sha256": hashlib.sha256(covered).hexdigest()}
            frame["event"] = "occlusion"
        frames.append((f"hw/{SITE}/camera/cam-2/frame", frame))
    publish(mosquitto, *frames)
    # a fleet of simulated devices keeps publishing while the browser looks
    fleet = Fleet(
        FleetConfig(
            site=SITE,
            devices=1,
            families=("air", "camera"),
            rate=6.0,
            duration_s=1800.0,
            keep_messages=False,
            seed=4,
        )
    )
    thread = threading.Thread(target=_run_fleet, args=(fleet, mosquitto.url), daemon=True)
    thread.start()
    result = Screen(hazwatch, mosquitto, the_plan, broken, rule, fleet, [thread])
    wait_for(
        lambda: result.get(f"/api/batches/{broken}/trace")["verdict"] == "broken",
        30,
        "the broken batch judged",
    )
    wait_for(
        lambda: len(result.get("/api/air/aq-07/hourly", **{"from": start // 10**6})) >= 20,
        60,
        "air hours",
    )
    wait_for(
        lambda: result.get("/api/alerts", rule="tamper_occlusion")["total"] >= 1, 30, "occlusion"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield result
    finally:
        fleet.stop()
        thread.join(15)
        hazwatch.stop()


@dataclass
class Watch:
    """What a page did that a test must not let pass: requests off the host, console errors."""

    off_host: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    allow_network_errors: bool = False

    def check(self) -> None:
        assert not self.off_host, f"requests left 127.0.0.1: {self.off_host}"
        assert not self.errors, f"console errors: {self.errors}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--enable-precise-memory-info", "--js-flags=--expose-gc"],
        )
        yield chromium
        chromium.close()


def _off_host(url: str) -> bool:
    return not url.startswith(("http://127.0.0.1:", "data:", "blob:", "about:"))


@pytest.fixture()
def open_page(browser: Any) -> Iterator[Any]:
    made: list[tuple[Any, Watch]] = []

    def opener(width: int = 1600, height: int = 1000) -> tuple[Any, Watch]:
        context = browser.new_context(
            viewport={"width": width, "height": height}, locale="zh-CN", timezone_id="Europe/Berlin"
        )
        watch = Watch()

        def refuse(route: Any) -> None:
            watch.off_host.append(route.request.url)
            route.abort()

        context.route(_off_host, refuse)
        page = context.new_page()

        def on_console(message: Any) -> None:
            if message.type != "error":
                return
            text = message.text
            if watch.allow_network_errors and (
                "ERR_CONNECTION_REFUSED" in text or "Failed to load" in text
            ):
                return
            where = (message.location or {}).get("url", "")
            watch.errors.append(f"{text} ({where})" if where else text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: watch.errors.append(f"page error: {exc}"))
        made.append((context, watch))
        return page, watch

    yield opener
    for context, watch in made:
        context.close()
        watch.check()


def _shot(page: Any, name: str, full: bool = True) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full)
    return path


def _chart_points(page: Any, element_id: str, series: int = 0) -> int:
    return int(
        page.evaluate(
            """([id, n]) => {
                const chart = echarts.getInstanceByDom(document.getElementById(id));
                if (!chart) return 0;
                const s = chart.getOption().series[n];
                return s && s.data ? s.data.length : 0;
            }""",
            [element_id, series],
        )
    )


def _series_points(page: Any, element_id: str, kind: str) -> int:
    """The points of the chart's (first) series of that type: the exceedances' scatter."""
    return int(
        page.evaluate(
            """([id, kind]) => {
                const chart = echarts.getInstanceByDom(document.getElementById(id));
                const s = chart && chart.getOption().series.find((x) => x.type === kind);
                return s && s.data ? s.data.length : -1;
            }""",
            [element_id, kind],
        )
    )


def _attrs(page: Any, selector: str, name: str) -> list[str]:
    return list(
        page.eval_on_selector_all(selector, f"els => els.map(e => e.getAttribute('{name}'))")
    )


def _map_boxes(page: Any, element_id: str) -> list[dict[str, Any]]:
    """The boxes the site map drew, in px of the chart: each site's symbol and label, and the
    note, read from what ECharts' renderer holds (zrender's display list, after layout)."""
    return list(
        page.evaluate(
            """(id) => {
                const el = document.getElementById(id);
                const chart = echarts.getInstanceByDom(el);
                if (!chart) return [];
                const boxes = [];
                for (const shape of chart.getZr().storage.getDisplayList(true)) {
                    if (shape.invisible || shape.ignore) continue;
                    const r = shape.getBoundingRect().clone();
                    if (shape.transform) r.applyTransform(shape.transform);
                    if (!r.width || !r.height) continue;
                    // text is drawn as tspans (a line, or a rich-text run of one)
                    const text = shape.type === 'tspan' ? String(shape.style.text || '') : '';
                    const kind = shape.type === 'tspan' ? 'text' : shape.type;
                    boxes.push({kind, text, x: r.x, y: r.y, w: r.width, h: r.height});
                }
                return boxes;
            }""",
            element_id,
        )
    )


def _assert_map_clear(page: Any, element_id: str, sites: list[dict[str, Any]]) -> None:
    """Every site's label on the map, no line of it touching another's or another site's
    symbol, all inside the map."""
    boxes = _map_boxes(page, element_id)
    width, height = page.evaluate(
        f"[document.getElementById('{element_id}').clientWidth, "
        f"document.getElementById('{element_id}').clientHeight]"
    )
    labels = [b for b in boxes if b["kind"] == "text"]
    drawn = {b["text"] for b in labels}
    for site in sites:
        assert (site["name"] or site["id"]) in drawn, (site, drawn)
    assert len([b for b in boxes if b["kind"] == "path"]) >= len(sites), boxes
    for box in labels:
        assert box["x"] >= 0 and box["y"] >= 0, box
        assert box["x"] + box["w"] <= width + 1 and box["y"] + box["h"] <= height + 1, box
    drawn_boxes = [b for b in boxes if b["kind"] in ("text", "path")]  # not rich text's frame
    for i, a in enumerate(drawn_boxes):
        for b in drawn_boxes[i + 1 :]:
            if a["kind"] != "text" and b["kind"] != "text":
                continue  # two symbols: their labels are what must not meet
            apart = (
                a["x"] + a["w"] <= b["x"]
                or b["x"] + b["w"] <= a["x"]
                or a["y"] + a["h"] <= b["y"]
                or b["y"] + b["h"] <= a["y"]
            )
            assert apart, (a, b)


# ---------------------------------------------------------------- every page, both languages


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("name", [p for p in PAGES if p != "wall"])
def test_every_page_shows_the_demo_data_in_both_languages(
    screen: Screen, open_page: Any, name: str, lang: str
) -> None:
    page, _ = open_page()
    query = {"batch": f"batch=%s&lang={lang}" % screen.broken}.get(name, f"lang={lang}")
    path = "/screen/" if name == "overview" else f"/screen/{name}"
    page.goto(f"{screen.url}{path}?{query}")
    page.wait_for_selector(PAGES[name], timeout=20_000)
    page.wait_for_function(
        "document.getElementById('live').dataset.state === 'live'", timeout=20_000
    )
    page.wait_for_timeout(800)  # charts drawn
    if name == "overview":
        sites = [s for s in screen.get("/api/overview")["sites"] if s["lat"] is not None]
        _assert_map_clear(page, "map", sites)
    if name in ("overview", "air"):  # where an AQI is shown, it is said to be indicative
        assert page.locator("[data-indicative]").first.inner_text() == (
            "指示性数据，非官方发布"
            if lang == "zh"
            else "indicative data, not officially published"
        )
    nav = page.locator("nav a[data-page=overview]").inner_text()
    assert nav == ("总览" if lang == "zh" else "Overview")
    assert ("北京时间 UTC+8" if lang == "zh" else "China time UTC+8") in page.locator(
        "#clock"
    ).inner_text()
    _shot(page, f"{name}-{lang}")


# ---------------------------------------------------------------- what each page must do


def test_overview_numbers_change_live(screen: Screen, open_page: Any) -> None:
    page, _ = open_page()
    page.goto(f"{screen.url}/screen/")
    tile = page.locator("[data-kpi=batches] .value")
    page.wait_for_function(
        "(document.querySelector('[data-kpi=batches] .value')?.textContent ?? '—').trim() !== '—'"
    )
    page.wait_for_function("document.getElementById('live').dataset.state === 'live'")
    before = int(tile.inner_text().split("批")[0].replace(",", "").strip())
    loaded_at = page.evaluate("performance.timeOrigin")
    batch = f"LIVE-{uuid.uuid4().hex[:6].upper()}"
    publish(
        screen.broker,
        (
            f"hw/{SITE}/terminal/t1/batch",
            {
                "ts": time.time_ns() // 1_000_000,
                "epc": f"E280{uuid.uuid4().hex[:20].upper()}",
                "batch": batch,
                "waste_code": "900-249-08",
                "waste_name": "废矿物油",
                "waste_category": "HW08",
            },
        ),
    )
    page.wait_for_selector(f"#feed li[data-kind=custody] >> text={batch}", timeout=20_000)
    count = "document.querySelector('[data-kpi=batches] .value').textContent.replace(/,/g, '')"
    page.wait_for_function(f"parseInt({count}) > {before}", timeout=20_000)
    assert page.evaluate("performance.timeOrigin") == loaded_at  # no reload


def test_a_broken_batch_shows_the_rule_and_the_event_it_broke_at(
    screen: Screen, open_page: Any
) -> None:
    page, _ = open_page()
    page.goto(f"{screen.url}/screen/batch")
    page.fill("#q", screen.plan.batches[screen.broken].epc)  # found by its EPC
    page.click("#search button[type=submit]")
    page.wait_for_selector("#summary[data-verdict=broken]")
    trace = screen.get(f"/api/batches/{screen.broken}/trace")
    labels = screen.get("/api/screen/labels")
    timeline = screen.get(f"/api/batches/{screen.broken}/timeline")
    for violation in timeline["violations"]:
        name = labels["rules"][violation["rule"]]["name"]["zh"]
        assert name in page.locator("#violations").inner_text()
        # what the rule found, in Chinese: the rules' English sentence read, not shown as it is
        assert violation["detail"]["read"], violation
        assert violation["detail"]["zh"] in page.locator("#violations").inner_text()
        assert violation["message"] not in page.locator("#result").inner_text()
        if violation["event_id"] in {e["event_id"] for e in trace["events"]}:
            marked = page.locator(f"#ev-{violation['event_id']}.broken .rule")
            assert marked.get_attribute("data-rule") == violation["rule"]
    assert screen.rule in {v["rule"] for v in trace["violations"]}
    assert page.locator(".timeline li").count() == len(trace["events"])
    snapshot = page.locator(".timeline img")
    assert snapshot.count() >= 1
    assert page.evaluate(
        "img => img.complete && img.naturalWidth > 0", snapshot.first.element_handle()
    )
    _shot(page, "batch-broken-zh")
    page.click("#lang")
    for violation in timeline["violations"]:
        assert violation["detail"]["en"] in page.locator("#violations").inner_text()
    _shot(page, "batch-broken-en")


def test_a_custody_alert_says_its_finding_in_the_pages_language(
    screen: Screen, open_page: Any
) -> None:
    timeline = screen.get(f"/api/batches/{screen.broken}/timeline")
    alert = timeline["alerts"][0]
    assert alert["detail"]["read"], alert
    page, _ = open_page()
    page.goto(f"{screen.url}/screen/alerts?state=&alert={alert['alert_id']}")
    page.wait_for_function(
        "text => document.getElementById('detailMessage')?.textContent === text",
        arg=alert["detail"]["zh"],
    )
    page.click("#lang")
    assert page.locator("#detailMessage").inner_text() == alert["detail"]["en"]


def test_a_batch_is_found_by_its_hj_1276_label_id(screen: Screen, open_page: Any) -> None:
    """The terminal's registration through the broker, its label id kept by the service in
    the state store, and the batch page finding the batch by it."""
    batch = f"LBL-{uuid.uuid4().hex[:6].upper()}"
    label = f"91410100MA46X0XX0X{uuid.uuid4().hex[:19].upper()}"  # 37 characters
    publish(
        screen.broker,
        (
            f"hw/{SITE}/terminal/t1/batch",
            {
                "ts": time.time_ns() // 1_000_000,
                "epc": f"E280{uuid.uuid4().hex[:20].upper()}",
                "batch": batch,
                "waste_code": "900-249-08",
                "waste_name": "废矿物油",
                "waste_category": "HW08",
                "form": "liquid",
                "label_id": label,
            },
        ),
    )
    wait_for(
        lambda: screen.get("/api/batches/find", q=label)["matches"],
        20,
        "the batch found by its label id",
    )
    page, _ = open_page()
    page.goto(f"{screen.url}/screen/batch")
    page.fill("#q", label)
    page.click("#search button[type=submit]")
    page.wait_for_selector(f"#summary[data-batch={batch}]")
    assert "液态" in page.locator("#result").inner_text()  # its form, in HJ 1276's words


def test_acknowledging_an_alert_in_the_page_changes_its_state_in_the_api(
    screen: Screen, open_page: Any
) -> None:
    alert = screen.get("/api/alerts", state="open", rule="tamper_occlusion")["alerts"][0]
    page, _ = open_page()
    page.goto(f"{screen.url}/screen/alerts?alert={alert['alert_id']}")
    page.wait_for_selector("#detail #ack:not([disabled])")
    assert page.locator(".evidence img").count() == 1  # the covered lens, as the camera saw it
    page.click("#ack")
    page.fill("#decision input[name=by]", "张工")
    page.fill("#decision textarea[name=comment]", "已到现场，镜头被纸箱挡住，已移开")
    page.fill("#decision input[name=token]", TOKEN)  # asked once: no token kept yet
    page.click("#decision button[type=submit]")
    page.wait_for_selector("#detailState[data-state=acknowledged]")
    doc = screen.get(f"/api/alerts/{alert['alert_id']}")
    assert doc["state"] == "acknowledged" and doc["acknowledged_by"] == "张工"
    assert doc["history"][-1]["comment"] == "已到现场，镜头被纸箱挡住，已移开"
    _shot(page, "alerts-acknowledged-zh")
    # resolving: the token is kept for the session, not asked again
    page.click("#resolve")
    assert page.locator("#decision input[name=token]").count() == 0
    page.fill("#decision textarea[name=comment]", "已恢复")
    page.click("#decision button[type=submit]")
    page.wait_for_selector("#detailState[data-state=resolved]")
    assert screen.get(f"/api/alerts/{alert['alert_id']}")["state"] == "resolved"


def test_a_new_alert_appears_on_the_alerts_page_live(screen: Screen, open_page: Any) -> None:
    """A reader's last will (offline) through the broker: device_offline opens, and the open
    list on the page shows it without a reload."""
    page, _ = open_page()
    page.goto(f"{screen.url}/screen/alerts?state=open")
    page.wait_for_selector("#list tr[data-alert]")
    page.wait_for_function("document.getElementById('live').dataset.state === 'live'")
    loaded_at = page.evaluate("performance.timeOrigin")
    subject = f"{SITE}/rfid/gate-04"
    assert subject not in page.locator("#list").inner_text()
    publish(
        screen.broker,
        (f"hw/{SITE}/rfid/gate-04/status", {"online": False, "ts": time.time_ns() // 10**6}),
    )
    page.wait_for_selector(f"#list tr[data-alert] >> text={subject}", timeout=30_000)
    row = page.locator("#list tr[data-alert]", has_text=subject).first
    assert "设备离线" in row.inner_text()
    alert = screen.get(f"/api/alerts/{row.get_attribute('data-alert')}")
    assert (alert["rule"], alert["state"]) == ("device_offline", "open")
    assert page.evaluate("performance.timeOrigin") == loaded_at  # no reload
    publish(  # back, for the tests after this one
        screen.broker,
        (f"hw/{SITE}/rfid/gate-04/status", {"online": True, "ts": time.time_ns() // 10**6}),
    )


def test_the_ledger_on_screen_is_hazwatch_ledger(screen: Screen, open_page: Any) -> None:
    """The ledger page's rows, and its CSV download, are what `hazwatch ledger` prints."""
    page, _ = open_page()
    page.goto(f"{screen.url}/screen/ledger")
    page.wait_for_selector("#records table")
    href = page.locator("#csv").get_attribute("href")
    assert href
    query = dict(httpx.URL(f"{screen.url}{href}").params)
    with page.expect_download() as download:
        page.click("#csv")
    downloaded = Path(download.value.path()).read_bytes()
    printed = screen.hazwatch.cli(
        "ledger", "--site", query["site"], "--from", query["from"], "--to", query["to"],
        "--format", "csv", "--lang", query["lang"],
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    assert (
        downloaded.decode("utf-8-sig").splitlines() == printed.stdout.lstrip("\ufeff").splitlines()
    )
    rows = page.locator("#records tbody tr").count()
    assert rows > 0 and f"{rows:,}" in page.locator("#count").inner_text().replace(" ", "")


def test_the_air_chart_has_points_and_marks_exceedances(screen: Screen, open_page: Any) -> None:
    page, _ = open_page()
    page.goto(f"{screen.url}/screen/air?station=aq-07")
    page.wait_for_selector("#hours table")
    page.wait_for_function("echarts.getInstanceByDom(document.getElementById('aqi'))")
    hours = screen.get("/api/air/aq-07/hourly")
    assert _chart_points(page, "aqi") == len([h for h in hours if h.get("aqi") is not None]) > 0
    assert _chart_points(page, "means") > 0
    wait_for(lambda: _chart_points(page, "raw") > 0, 20, "raw readings' trend")
    # the editions that rated what is shown: December 2026, HJ 633-2026 and the transition limits
    assert {h["aqi_standard"] for h in hours} == {"HJ 633-2026"}
    assert page.locator("#standard").inner_text() == "HJ 633-2026 / GB 3095-2026 过渡期限值（二级）"
    # micro-station AQI is indicative wherever an AQI is shown
    for where in ("#aqiNote", "#dailyNote", "#hoursNote"):
        assert page.locator(f"{where} [data-indicative]").inner_text() == "指示性数据，非官方发布"
    # each exceedance marked by the limit in force at its hour (PM10 24-h 120, O3 1-h 200):
    # the hours the service judged over, each in the chart and the table
    for pollutant, keys in (("pm10", {"pm10_24h"}), ("o3", {"o3_1h", "o3_8h"})):
        page.click(f"#pollutant button[data-p={pollutant}]")
        over = [
            (h["hour"], key)
            for h in hours
            for key in (item.split(":")[0] for item in (h.get("over") or "").split(",") if item)
            if key in keys
        ]
        assert over, (pollutant, [h.get("over") for h in hours])
        assert _series_points(page, "means", "scatter") == len(over)
        assert page.locator("#over tr[data-exceed]").count() == len(over)
        limits = {int(float(x)) for x in _attrs(page, "#over tr[data-exceed]", "data-limit")}
        assert limits <= {120, 200, 160}, limits
        if pollutant == "pm10":
            assert limits == {120}  # GB 3095-2026 transition, grade II (2012's was 150)
            _shot(page, "air-pm10-zh")
    # the daily report: each day, its AQI, the limits it exceeds marked, heavy days counted
    report = screen.get("/api/air/aq-07/daily")
    assert page.locator("#days tr[data-day]").count() == len(report["days"]) > 0
    for day in report["days"]:
        row = page.locator(f'#days tr[data-day="{day["day"]}"]')
        marked = set(_attrs(page, f'#days tr[data-day="{day["day"]}"] td[data-over]', "data-over"))
        assert marked == set(filter(None, (day.get("over") or "").split(","))), day
        assert row.get_attribute("data-heavy") == (
            str(day["heavy_days"]) if day.get("heavy") else None
        )
        if day.get("aqi") is not None:
            assert str(day["aqi"]) in row.inner_text()
    heavy_now = page.locator("#heavy [data-heavy-now]").get_attribute("data-heavy-now")
    assert heavy_now == str(report["heavy_days_now"])
    # in English with the switch
    page.click("#lang")
    assert page.locator("#standard").inner_text() == (
        "HJ 633-2026 / GB 3095-2026 transition limits (grade II)"
    )
    assert page.locator("#aqiNote [data-indicative]").inner_text() == (
        "indicative data, not officially published"
    )
    _shot(page, "air-o3-en")


def _mark_areas(page: Any, element_id: str) -> list[tuple[int, int]]:
    """The [from, to] ms of every grey band (markArea) of the chart's series."""
    return [
        (int(a), int(b))
        for a, b in page.evaluate(
            """(id) => {
                const chart = echarts.getInstanceByDom(document.getElementById(id));
                return chart.getOption().series.flatMap((s) =>
                    ((s.markArea && s.markArea.data) || []).map(([a, b]) => [a.xAxis, b.xAxis]));
            }""",
            element_id,
        )
    ]


def _china_span(start_ns: int, end_ns: int) -> str:
    """The air page's words for a span within a day: "MM-DD HH:MM–HH:MM", China time."""
    a, b = (time.gmtime(ns // NS_S + 8 * 3600) for ns in (start_ns, end_ns))
    day = f"{a.tm_mon:02d}-{a.tm_mday:02d}"
    end = "24:00" if b.tm_mday != a.tm_mday else f"{b.tm_hour:02d}:{b.tm_min:02d}"  # the day's end
    return f"{day} {a.tm_hour:02d}:{a.tm_min:02d}–{end}"


def test_the_air_page_shows_the_audit_marks_and_maintenance_beside_the_data(
    screen: Screen, open_page: Any
) -> None:
    """An officer marks an hour of aq-07 invalid and records a calibration of its NO2
    analyser: both are listed beside the data (what, which hours, why, who, automatic or by
    hand; the record's kind and window), and the marked hours are grey bands on the charts,
    left out of the AQI bars, the raw line and the table's valid data, in both languages."""
    now = time.time_ns()
    hour = now - now % NS_H - 5 * NS_H  # an hour of aq-07's day, closed long ago
    api = screen.url
    marked = httpx.post(
        f"{api}/api/air/marks/add",
        json={
            "site": SITE,
            "station": "aq-07",
            "pollutant": "*",
            "start": str(hour // 10**6),
            "end": str((hour + NS_H) // 10**6),
            "reason": "fault",
            "note": "PM 采样泵故障，数据无效",
            "by": "审核员 张工",
        },
        headers=AUTH,
        timeout=10,
    )
    assert marked.status_code == 200, marked.text
    mark_id = marked.json()["mark"]["id"]
    calibration = (hour + 2 * NS_H, hour + 2 * NS_H + 30 * NS_MIN)
    recorded = httpx.post(
        f"{api}/api/air/maintenance/add",
        json={
            "site": SITE,
            "station": "aq-07",
            "kind": "calibration",
            "start": str(calibration[0] // 10**6),
            "end": str(calibration[1] // 10**6),
            "pollutant": "no2",
            "note": "NO2 分析仪零点、跨度校准",
            "by": "运维 李工",
        },
        headers=AUTH,
        timeout=10,
    )
    assert recorded.status_code == 200, recorded.text
    record_id = recorded.json()["record"]["id"]

    def the_hour() -> dict[str, Any]:
        rows = screen.get("/api/air/aq-07/hourly", **{"from": str(hour // 10**6)})
        return next(r for r in rows if r["time"] == hour)

    wait_for(lambda: the_hour().get("aqi") is None, 60, "the marked hour computed again")
    assert the_hour()["pm25_minutes"] == 0
    page, _ = open_page(1600, 1000)
    page.goto(f"{screen.url}/screen/air?station=aq-07")
    page.wait_for_selector(f'#marks tr[data-mark="{mark_id}"]')
    page.wait_for_function("echarts.getInstanceByDom(document.getElementById('raw'))")
    # the marks in force of the range shown, each a row: ours, the calibration's window, and
    # whatever the automatic audit found in aq-07's day
    in_force = screen.get(
        "/api/air/marks",
        station="aq-07",
        revoked="false",
        **{"from": str((now - 23 * NS_H) // 10**6)},
    )["marks"]
    shown = {int(x) for x in _attrs(page, "#marks tr[data-mark]", "data-mark")}
    assert {m["id"] for m in in_force} <= shown
    ours = page.locator(f'#marks tr[data-mark="{mark_id}"]')
    assert ours.get_attribute("data-origin") == "manual"
    cells = ours.locator("td").all_inner_texts()
    assert cells == [
        "全部污染物",
        _china_span(hour, hour + NS_H),
        "仪器故障",
        "PM 采样泵故障，数据无效",
        "审核员 张工",
        "人工",
    ]
    (window,) = [m for m in in_force if m["maintenance_id"] == record_id]
    cells = page.locator(f'#marks tr[data-mark="{window["id"]}"] td').all_inner_texts()
    assert cells[:3] == ["NO₂", _china_span(*calibration), "维护（校准）"]
    assert cells[4:] == ["运维 李工", "运维"]
    record = page.locator(f'#maintenance tr[data-record="{record_id}"]')
    assert record.get_attribute("data-kind") == "calibration"
    assert record.get_attribute("data-window") is not None
    assert record.locator("td").all_inner_texts()[:2] == ["校准", _china_span(*calibration)]
    assert "运维 李工" in record.inner_text()
    # the marked hour on the charts: a grey band, no AQI bar, the raw readings drawn apart
    hour_ms, end_ms = hour // 10**6, (hour + NS_H) // 10**6
    assert (hour_ms, end_ms) in _mark_areas(page, "aqi")
    assert (hour_ms, end_ms) in _mark_areas(page, "means")  # PM2.5: the mark of all
    bars = page.evaluate(
        "() => echarts.getInstanceByDom(document.getElementById('aqi')).getOption().series[0]"
        ".data.map((d) => d.value[0])"
    )
    assert hour_ms + 1_800_000 not in bars
    assert int(page.locator("#raw").get_attribute("data-marked") or 0) > 0
    valid_inside = page.evaluate(
        """([a, b]) => echarts.getInstanceByDom(document.getElementById('raw')).getOption()
            .series[0].data.filter(([ms, v]) => ms >= a && ms < b && v !== null).length""",
        [hour_ms, end_ms],
    )
    assert valid_inside == 0
    # NO2: the calibration window is a band of its own
    page.click("#pollutant button[data-p=no2]")
    bands = _mark_areas(page, "means")
    assert (hour_ms, end_ms) in bands
    assert (calibration[0] // 10**6, calibration[1] // 10**6) in bands
    page.click("#pollutant button[data-p=pm25]")
    # the hourly table says which hours the audit left out, and why
    hour_row = page.locator("#hours tr[data-marked]").filter(has_text="仪器故障")
    assert hour_row.count() == 1 and "全部污染物" in hour_row.inner_text()
    _shot(page, "air-audit-zh")
    page.click("#lang")
    cells = page.locator(f'#marks tr[data-mark="{mark_id}"] td').all_inner_texts()
    assert cells[0] == "all pollutants" and cells[2] == "instrument fault"
    assert cells[5] == "by hand"
    assert page.locator(f'#maintenance tr[data-record="{record_id}"] td').first.inner_text() == (
        "calibration"
    )
    assert page.locator("#hours tr[data-marked]").filter(has_text="instrument fault").count() == 1
    _shot(page, "air-audit-en")


def test_the_language_switch_changes_the_labels(screen: Screen, open_page: Any) -> None:
    page, _ = open_page()
    page.goto(f"{screen.url}/screen/")
    page.wait_for_selector("#recent table")
    label = page.locator("[data-kpi=batches] .label")
    assert label.inner_text() == "在管批次"
    rule = screen.get("/api/alerts", state="open")["alerts"]
    zh_rules = page.locator("#recent").inner_text()
    page.click("#lang")
    assert label.inner_text() == "Batches"
    assert page.locator("nav a[data-page=batch]").inner_text() == "Batch trace"
    assert page.locator("html").get_attribute("lang") == "en"
    en_rules = page.locator("#recent").inner_text()
    assert zh_rules != en_rules and rule
    page.click("#lang")
    assert label.inner_text() == "在管批次"


def test_the_api_docs_load_their_assets_from_the_host(screen: Screen, open_page: Any) -> None:
    page, _ = open_page()
    page.goto(f"{screen.url}/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=20_000)
    assert page.locator(".swagger-ui .opblock").count() > 20
    _shot(page, "docs", full=False)


# ---------------------------------------------------------------- the wall display, last


def _footprint(page: Any) -> dict[str, int]:
    """The page's JS heap after a full collection, its elements and its chart instances."""
    return dict(
        page.evaluate(
            """() => {
                window.gc();
                return {
                    heap: performance.memory.usedJSHeapSize,
                    nodes: document.getElementsByTagName('*').length,
                    charts: document.querySelectorAll('[_echarts_instance_]').length,
                };
            }"""
        )
    )


def test_the_wall_does_not_grow_as_it_rotates(screen: Screen, open_page: Any) -> None:
    page, _ = open_page(1920, 1080)
    page.goto(f"{screen.url}/screen/wall?rotate=5")
    page.wait_for_function("document.getElementById('live').dataset.state === 'live'")
    page.wait_for_timeout(16_000)  # every view shown once: each chart made
    first = _footprint(page)
    page.wait_for_timeout(45_000)  # nine more rotations, four refreshes, the live feed
    later = _footprint(page)
    assert later["charts"] == first["charts"] == 4  # map, stages, AQI, PM2.5: made once
    assert later["nodes"] < first["nodes"] * 1.3 + 100, (first, later)
    assert later["heap"] < first["heap"] * 1.3 + 2_000_000, (first, later)


def test_the_wall_rotates_and_comes_back_after_the_server_restarts(
    screen: Screen, open_page: Any
) -> None:
    page, watch = open_page(1920, 1080)
    page.goto(f"{screen.url}/screen/wall?rotate=5")
    page.wait_for_selector(".view.shown[data-view=overview]")
    page.wait_for_function("document.getElementById('live').dataset.state === 'live'")
    page.wait_for_timeout(1000)
    sites = [s for s in screen.get("/api/overview")["sites"] if s["lat"] is not None]
    _assert_map_clear(page, "wMap", sites)
    every = screen.get("/api/overview")["sites"]
    rows = page.locator("#wSites tbody tr:not(.more)").count()
    assert rows == min(3, len(every))  # the worst three, and how many more there are
    if len(every) > 3:
        more = page.locator("#wSites tr.more").inner_text()
        assert more == f"另有 {len(every) - 3} 个站点，详见总览页"
    _shot(page, "wall-zh", full=False)
    seen = {page.evaluate("document.body.dataset.view")}
    deadline = time.monotonic() + 20
    while len(seen) < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(500)
        view = page.evaluate("document.body.dataset.view")
        if view not in seen:
            seen.add(view)
            page.wait_for_timeout(800)
            _shot(page, f"wall-{view}-zh", full=False)
            if view == "air":  # its AQI is said to be indicative, as everywhere one is shown
                chip = page.locator(".view.shown[data-view=air] small[data-indicative]")
                assert chip.inner_text() == "指示性数据，非官方发布"
    assert seen == {"overview", "alerts", "air"}
    nodes = page.evaluate("document.getElementsByTagName('*').length")
    loaded_at = page.evaluate("performance.timeOrigin")

    watch.allow_network_errors = True  # the outage is on purpose: the browser logs it
    screen.hazwatch.kill()
    page.wait_for_function(
        "['reconnecting', 'stale'].includes(document.getElementById('live').dataset.state)",
        timeout=30_000,
    )
    page.wait_for_selector("#banner.show", timeout=30_000)
    _shot(page, "wall-reconnecting-zh", full=False)
    screen.hazwatch.start()
    page.wait_for_function(
        "document.getElementById('live').dataset.state === 'live'", timeout=40_000
    )
    restarted = time.time() * 1000
    page.wait_for_function(
        f"window.hazwatchWall.lastOk[window.hazwatchWall.view] > {restarted} || "
        f"window.hazwatchWall.lastOk.overview > {restarted}",
        timeout=30_000,
    )
    page.wait_for_function(
        "!document.getElementById('banner').classList.contains('show')", timeout=30_000
    )
    watch.allow_network_errors = False
    assert page.evaluate("performance.timeOrigin") == loaded_at  # no reload
    # a few more rotations: the page does not grow
    page.wait_for_timeout(11_000)
    after = page.evaluate("document.getElementsByTagName('*').length")
    assert after < nodes * 1.5 + 200, (nodes, after)
    page.click("#lang")
    page.wait_for_timeout(600)
    _shot(page, "wall-en", full=False)
