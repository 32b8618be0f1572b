"""Notifications from `hazwatch serve` (a child process, real Mosquitto, SQLite) to real HTTP
servers started here: a signed webhook, one answering like a DingTalk robot (checks timestamp
and sign as DingTalk documents them, answers errcode, throttles past 20 a minute with 130101),
one like a WeCom robot (key, markdown, 45009 past 20 a minute), one failing for 30 s.

Alerts are raised into the service's state store by an AlertStore of the test's own (the
store is shared by every worker of a deployment, so the outbox is the interface) and one by a
camera's last will over MQTT; another camera's connection drops and comes back within its
rule's pending period, and nobody is told of it. "Accepted" below is a delivery a receiver
answered with success: a receiver that refused an attempt (503, errcode -1) sees its key
again, as it should.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.publish as mqtt_publish
import pytest

from hazwatch.alerts.delivery import DELIVERED, DIGESTED, SUPPRESSED, DeliveryStore
from hazwatch.alerts.model import AlertSignal, Severity
from hazwatch.alerts.store import AlertStore
from hazwatch.base.statedb import StateDB
from tests.hazwatch_proc import HazwatchProcess
from tests.services import Mosquitto, free_port, wait_for

pytestmark = pytest.mark.integration

WEBHOOK_SECRET = "whsec-9f2c"
DING_TOKEN, DING_SECRET = "ding-token-01", "SEC7d1f0c9e8b"
WECOM_KEY = "633a31f6-7f9c-4bc4-97a0-0ec1eefa5898"


# the site and its camera, with the names messages show
REGISTRY = """
[[site]]
id = "jy-0012"
name = "城东危废贮存点"

[[camera]]
id = "cam-07"
site = "jy-0012"
name = "贮存间北门"

[[camera]]
id = "cam-08"
site = "jy-0012"
name = "贮存间南门"
"""


class Receiver:
    """An HTTP server on a free port in a thread of its own, answering like one kind of
    receiver; it keeps every request and the keys it accepted."""

    def __init__(self, kind: str, *, fail_for_s: float = 0.0, delay_s: float = 0.0) -> None:
        self.kind = kind
        self.delay_s = delay_s
        self.port = free_port()
        self.requests: list[dict[str, object]] = []
        self.accepted: list[str] = []  # idempotency keys, in the order accepted
        self.bodies: list[dict[str, object]] = []  # the accepted bodies
        self.refused = Counter[str]()
        self.failing = False  # answer every request as a failure (503 / errcode -1)
        self.fail_until = time.monotonic() + fail_for_s if fail_for_s else 0.0
        self.accepted_at: list[float] = []
        self.release = threading.Event()  # a slow receiver answers once set (or after delay_s)
        self.waiting = 0  # requests a slow receiver holds unanswered
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = receiver.answer(self.path, dict(self.headers.items()), body)
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender's timeout came first (the slow receiver)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        base = f"http://127.0.0.1:{self.port}"
        if self.kind == "dingtalk":
            return f"{base}/robot/send?access_token={DING_TOKEN}"
        if self.kind == "wecom":
            return f"{base}/cgi-bin/webhook/send?key={WECOM_KEY}"
        return f"{base}/hazwatch"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- answers ---------------------------------------------------------------------------

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, object]:
        lower = {k.lower(): v for k, v in headers.items()}
        key = lower.get("idempotency-key", "").strip('"')
        if self.kind == "slow":  # slow to answer, outside the lock: requests pile up
            with self._lock:
                self.waiting += 1
            self.release.wait(self.delay_s)
            with self._lock:
                self.waiting -= 1
        with self._lock:
            self.requests.append({"path": path, "headers": lower, "body": body, "key": key})
            failing = self.failing or time.monotonic() < self.fail_until
            handler = (
                self._webhook if self.kind in ("flaky", "slow") else getattr(self, f"_{self.kind}")
            )
            status, answer, ok = handler(path, lower, body, failing)
            if ok:
                self.accepted.append(key)
                self.accepted_at.append(time.monotonic())
                self.bodies.append(json.loads(body))
            else:
                self.refused[str(answer)] += 1
        return status, answer

    def _in_last_minute(self) -> int:
        now = time.monotonic()
        return sum(1 for t in self.accepted_at if now - t < 60)

    def _webhook(
        self, path: str, headers: dict[str, str], body: bytes, failing: bool
    ) -> tuple[int, object, bool]:
        if failing:
            return 503, {"error": "down"}, False
        ts = headers.get("x-hazwatch-timestamp", "")
        mac = hmac.new(WEBHOOK_SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256)
        good = hmac.compare_digest(
            "sha256=" + mac.hexdigest(), headers.get("x-hazwatch-signature", "")
        )
        if not good or not ts.isdigit() or abs(time.time() - int(ts)) > 300:
            return 401, {"error": "bad signature"}, False
        if json.loads(body)["idempotency_key"] != headers["x-hazwatch-key"]:
            return 400, {"error": "key differs"}, False
        return 200, {"ok": True}, True

    def _dingtalk(
        self, path: str, headers: dict[str, str], body: bytes, failing: bool
    ) -> tuple[int, object, bool]:
        """As DingTalk's custom robot: HTTP 200, the verdict in errcode."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        ts = query.get("timestamp", [""])[0]
        string_to_sign = f"{ts}\n{DING_SECRET}".encode()
        digest = hmac.new(DING_SECRET.encode(), string_to_sign, hashlib.sha256).digest()
        expected = base64.b64encode(digest).decode()  # parse_qs has URL-decoded the sign
        if query.get("access_token") != [DING_TOKEN]:
            return 200, {"errcode": 300001, "errmsg": "token is not exist"}, False
        if not ts.isdigit() or abs(time.time() * 1000 - int(ts)) > 3600_000:
            return 200, {"errcode": 310000, "errmsg": "invalid timestamp"}, False
        if query.get("sign") != [expected]:
            return 200, {"errcode": 310000, "errmsg": "sign not match"}, False
        message = json.loads(body)
        if message.get("msgtype") != "markdown" or not message["markdown"].get("title"):
            return 200, {"errcode": 40035, "errmsg": "缺少参数 markdown"}, False
        if failing:
            return 200, {"errcode": -1, "errmsg": "系统繁忙"}, False
        if self._in_last_minute() >= 20:
            return (
                200,
                {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"},
                False,
            )
        return 200, {"errcode": 0, "errmsg": "ok"}, True

    def _wecom(
        self, path: str, headers: dict[str, str], body: bytes, failing: bool
    ) -> tuple[int, object, bool]:
        """As WeCom's group robot: HTTP 200, the verdict in errcode."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        if query.get("key") != [WECOM_KEY]:
            return 200, {"errcode": 93000, "errmsg": "invalid webhook url"}, False
        message = json.loads(body)
        content = message.get("markdown", {}).get("content", "")
        if message.get("msgtype") != "markdown" or len(content.encode()) > 4096:
            return 200, {"errcode": 40058, "errmsg": "markdown.content exceed max length"}, False
        if failing:
            return 200, {"errcode": -1, "errmsg": "system busy"}, False
        if self._in_last_minute() >= 20:
            return 200, {"errcode": 45009, "errmsg": "api freq out of limit"}, False
        return 200, {"errcode": 0, "errmsg": "ok"}, True

    # -- what arrived ----------------------------------------------------------------------

    def keys_received(self) -> set[str]:
        """Every change this receiver accepted, alone or in a digest."""
        with self._lock:
            keys = set()
            for key, body in zip(self.accepted, self.bodies, strict=True):
                if self.kind in ("webhook", "flaky", "slow") and body.get("type") == "digest":
                    keys |= set(body["keys"])  # type: ignore[arg-type]
                else:
                    keys.add(key)
            return keys


@pytest.fixture()
def receivers() -> Iterator[dict[str, Receiver]]:
    found = {
        "hook": Receiver("webhook"),
        "ding": Receiver("dingtalk"),
        "wx": Receiver("wecom"),
    }
    yield found
    for r in found.values():
        r.close()


def settings_file(
    path: Path, receivers: dict[str, Receiver], extra: str = "", **alerts: object
) -> Path:
    lines = ["[alerts]", "retry_first_s = 1", "retry_max_delay_s = 8", "poll_s = 0.2"]
    for k, v in alerts.items():  # a dict as a TOML inline table
        if isinstance(v, dict):
            lines.append(f"{k} = {{ {', '.join(f'{a} = {json.dumps(b)}' for a, b in v.items())} }}")
        else:
            lines.append(f"{k} = {json.dumps(v)}")
    for name, r in receivers.items():
        kind = "webhook" if r.kind == "flaky" else r.kind
        lines += ["", "[[alerts.targets]]", f'name = "{name}"', f'kind = "{kind}"']
        lines += [f'url = "{r.url}"', 'min_severity = "info"']
        if kind == "webhook":
            lines.append(f'secret = "{WEBHOOK_SECRET}"')
        if kind == "dingtalk":
            lines.append(f'secret = "{DING_SECRET}"')
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def service(tmp_path: Path, mosquitto: Mosquitto, config: Path) -> HazwatchProcess:
    return HazwatchProcess(
        tmp_path / "hw", config=config, mqtt_url=mosquitto.url,
        mqtt_client_id=f"hazwatch-{uuid.uuid4().hex[:6]}",
    )  # fmt: skip


def state_store(proc: HazwatchProcess) -> tuple[AlertStore, DeliveryStore]:
    db = StateDB(f"sqlite:///{proc.workdir / 'data' / 'state.db'}")
    return AlertStore(db), DeliveryStore(db)


def raise_alerts(store: AlertStore, n: int, *, prefix: str = "aq", site: str = "jy-0012") -> None:
    severities = (Severity.INFO, Severity.WARNING, Severity.MAJOR, Severity.CRITICAL)
    for i in range(n):
        store.raise_alert(
            AlertSignal("air_exceedance", f"{site}/{prefix}-{i:03d}/pm25_1h", severities[i % 4],
                        "PM2.5 1-h mean 180 µg/m³", site, time.time_ns())
        )  # fmt: skip


def expected_keys(store: AlertStore) -> set[str]:
    return {item.key for item in store.outbox_after(0, 100_000)}


def test_every_delivery_arrives_signed_and_verifiable_through_a_30_s_outage(
    tmp_path: Path, mosquitto: Mosquitto, receivers: dict[str, Receiver]
) -> None:
    receivers["flaky"] = Receiver("flaky", fail_for_s=30)
    # device_offline's pending period shortened from its 90 s, so the test waits less for it;
    # a camera back from its blip and silent after is not offline again during the test
    config = settings_file(
        tmp_path / "hazwatch.toml", receivers, "\n[presence]\ncamera_silent_s = 3600\n",
        pending_s={"device_offline": 15},
    )  # fmt: skip
    proc = service(tmp_path, mosquitto, config)
    registry = tmp_path / "registry.toml"
    registry.write_text(REGISTRY, encoding="utf-8")
    loaded = proc.cli("registry", "load", str(registry))
    assert loaded.returncode == 0, loaded.stderr
    proc.start()
    try:
        store, deliveries = state_store(proc)
        raise_alerts(store, 8)
        first = store.list(limit=1)[0]
        store.acknowledge(first.alert_id, at_ns=time.time_ns(), by="officer-li", comment="去现场")
        # a camera's last will, through the broker: the service raises its offline alert
        mqtt_publish.single(
            "hw/jy-0012/camera/cam-07/status", json.dumps({"online": False}), qos=1,
            hostname="127.0.0.1", port=mosquitto.port,
        )  # fmt: skip
        wait_for(lambda: any("cam-07" in a.subject for a in store.list()), 30, "the camera offline")
        # another camera's connection drops and comes back at once: offline, then back
        mqtt_publish.single("hw/jy-0012/camera/cam-08/status", json.dumps({"online": False}),
                            qos=1, hostname="127.0.0.1", port=mosquitto.port)  # fmt: skip
        wait_for(lambda: any("cam-08" in a.subject for a in store.list()), 30, "cam-08 offline")
        mqtt_publish.single("hw/jy-0012/camera/cam-08/status", json.dumps({"online": True}),
                            qos=1, hostname="127.0.0.1", port=mosquitto.port)  # fmt: skip
        blip = next(a for a in store.list() if "cam-08" in a.subject)
        wait_for(lambda: store.get(blip.alert_id).state == "resolved", 30, "cam-08 back")
        wait_for(lambda: any(h.change == "suppressed" for h in store.history(blip.alert_id)),
                 30, f"cam-08's alert suppressed\n{proc.log_tail()}")  # fmt: skip
        blip_keys = {item.key for item in store.outbox_after(0, 100_000)
                     if item.alert_id == blip.alert_id}  # fmt: skip
        wanted = expected_keys(store) - blip_keys
        assert len(wanted) == 10 and len(blip_keys) == 2
        for name, r in receivers.items():
            wait_for(lambda r=r: r.keys_received() >= wanted, 90,
                     f"{name} received {len(r.keys_received())}/10\n{proc.log_tail()}")  # fmt: skip
    finally:
        proc.stop()
    for name, r in receivers.items():
        assert len(r.accepted) == len(set(r.accepted)), f"{name} accepted a key twice"
        assert r.keys_received() == wanted, name
    flaky = receivers["flaky"]
    assert flaky.refused and all("down" in k for k in flaky.refused)  # 503s, then delivered
    assert min(flaky.accepted_at) >= flaky.fail_until
    assert not receivers["hook"].refused  # every signature verified
    assert not receivers["ding"].refused and not receivers["wx"].refused  # sign, key, limits
    ding = [b["markdown"]["text"] for b in receivers["ding"].bodies]
    assert any("离线" in t and "贮存间北门（cam-07）" in t for t in ding)  # names from the registry
    assert all("城东危废贮存点（jy-0012）" in t for t in ding)
    assert any("（已确认）" in t and "officer-li" in t for t in ding)
    counts = deliveries.counts()
    assert all(state in (DELIVERED, SUPPRESSED) for (_, state) in counts), counts
    # the camera back within the period: no receiver got anything of it, its history says why
    for name, r in receivers.items():
        assert not r.keys_received() & blip_keys, name
    assert not any("cam-08" in b for r in receivers.values() for b in map(str, r.bodies))
    history = store.history(blip.alert_id)
    assert [h.change for h in history] == ["opened", "auto_resolved", "suppressed"]
    assert history[-1].comment == "在待定期内自动解除，未发送通知"
    assert {d.state for d in deliveries.for_alert(blip.alert_id)} == {SUPPRESSED}


def test_killed_with_sigkill_while_deliveries_are_pending_delivers_them_after_restart(
    tmp_path: Path, mosquitto: Mosquitto, receivers: dict[str, Receiver]
) -> None:
    """Three changes delivered, then the receivers fail and three more wait, backing off;
    SIGKILL; the receivers recover and hazwatch starts again: the three pending go out, the
    three delivered do not go again, and no receiver accepts a key twice."""
    proc = service(tmp_path, mosquitto, settings_file(tmp_path / "hazwatch.toml", receivers))
    proc.start()
    store, deliveries = state_store(proc)
    raise_alerts(store, 3, prefix="before")
    before = expected_keys(store)
    for name, r in receivers.items():
        wait_for(lambda r=r: r.keys_received() >= before, 30, f"{name} before the kill")
    for r in receivers.values():
        r.failing = True
    raise_alerts(store, 3, prefix="pending")
    wanted = expected_keys(store)
    pending = wanted - before

    def pending_and_failing() -> bool:
        """Every delivery recorded, and each target refused (then it backs off as a whole)."""
        records = {name: deliveries.for_target(name) for name in receivers}
        return all(
            len(found) == 6
            and any(d.attempts for d in found if d.state == "pending")
            and receivers[name].refused
            for name, found in records.items()
        )

    wait_for(pending_and_failing, 30, "each target failing with its deliveries pending")
    proc.kill()  # SIGKILL: three delivered, three pending, per target
    for name in receivers:
        states = Counter(d.state for d in deliveries.for_target(name))
        assert states == {"delivered": 3, "pending": 3}, (name, states)
    for r in receivers.values():
        r.failing = False
    proc.start()
    try:
        for name, r in receivers.items():
            wait_for(lambda r=r: r.keys_received() >= wanted, 60,
                     f"{name} after the restart\n{proc.log_tail()}")  # fmt: skip
    finally:
        proc.stop()
    for name, r in receivers.items():
        assert len(r.accepted) == len(set(r.accepted)) == 6, f"{name}: {r.accepted}"
        assert set(r.accepted[:3]) == before and set(r.accepted[3:]) == pending, name
        assert r.refused, name  # it did refuse attempts before the kill
    assert {state for (_, state) in deliveries.counts()} == {DELIVERED}


def test_a_storm_of_500_alerts_gives_a_bounded_number_of_messages_per_target(
    tmp_path: Path, mosquitto: Mosquitto, receivers: dict[str, Receiver]
) -> None:
    """The bound: in any minute a target gets at most its per-minute limit (20 for the
    robots, as both document, 60 for a webhook); a storm beyond it becomes one digest per
    digest interval (10 s here, 300 s by default). The receivers themselves refuse a 21st
    message within a minute (130101, 45009), so a broken limit fails the test."""
    config = settings_file(tmp_path / "hazwatch.toml", receivers, digest_every_s=10)
    proc = service(tmp_path, mosquitto, config)
    proc.start()
    try:
        store, deliveries = state_store(proc)
        started = time.monotonic()
        for burst in range(10):  # 500 alerts at 5 sites within a few seconds
            raise_alerts(store, 50, prefix=f"b{burst}", site=f"jy-00{10 + burst % 5}")
        raised_s = time.monotonic() - started

        def settled() -> bool:
            counts = deliveries.counts()
            return all(
                counts.get((name, DELIVERED), 0) + counts.get((name, DIGESTED), 0) == 500
                for name in receivers
            )

        wait_for(settled, 120, f"the storm delivered\n{proc.log_tail()}")
        took_s = time.monotonic() - started
    finally:
        proc.stop()
    messages = {name: len(r.accepted) for name, r in receivers.items()}
    print(f"500 alerts raised in {raised_s:.1f} s, settled in {took_s:.1f} s: {messages}")
    for name, r in receivers.items():
        assert not r.refused, f"{name} refused {dict(r.refused)}"
        minutes = max(1, int(took_s // 60) + 1)
        limit = 60 if r.kind == "webhook" else 20
        assert 1 <= messages[name] <= limit * minutes, name
        assert len(r.accepted) == len(set(r.accepted)), name
    assert receivers["hook"].keys_received() == expected_keys(store)  # every key, in digests
    for name in ("ding", "wx"):  # the digests' counts add up to the storm
        texts = [
            b["markdown"]["text" if name == "ding" else "content"] for b in receivers[name].bodies
        ]
        singles = sum(1 for t in texts if "告警汇总" not in t)
        counted = sum(int(t.split(" 分钟 ")[1].split(" 条")[0]) for t in texts if "告警汇总" in t)
        assert singles + counted == 500, name


def test_two_workers_on_one_state_store_deliver_each_change_once(
    state_url: str, receivers: dict[str, Receiver]
) -> None:
    """Several workers share one state store (PostgreSQL in production): one sender holds the
    lease and sends; when it stops, another takes over, and nothing goes twice."""
    from hazwatch.alerts.settings import AlertSettings, TargetSettings
    from hazwatch.notify.sender import Sender
    from hazwatch.streams.catalog import rule_specs

    hook = receivers["hook"]
    settings = AlertSettings(
        targets=(TargetSettings("hook", "webhook", hook.url, WEBHOOK_SECRET, "info"),),
        poll_s=0.1,
    )
    db = StateDB(state_url)
    store = AlertStore(db)

    def worker(name: str) -> Sender:
        return Sender(settings, AlertStore(StateDB(state_url)), DeliveryStore(StateDB(state_url)),
                      rules=rule_specs(), base_url="http://hw:8080", holder=name)  # fmt: skip

    first, second = worker("w1"), worker("w2")
    first.start()
    wait_for(lambda: first.leader, 10, "the first worker's sender leads")
    second.start()
    try:
        raise_alerts(store, 10)
        wait_for(lambda: len(hook.accepted) == 10, 30, "the first ten")
        assert (first.leader, second.leader) == (True, False)
        first.stop()
        raise_alerts(store, 10, prefix="more")
        wait_for(lambda: len(hook.accepted) == 20, 30, "ten more, from the other worker")
        assert second.leader
    finally:
        first.stop()
        second.stop()
    assert sorted(hook.accepted) == sorted(expected_keys(store))
    assert not hook.refused


def test_a_slow_target_holds_back_only_its_own_messages(
    state_url: str, receivers: dict[str, Receiver]
) -> None:
    """A receiver that holds every request unanswered (its timeout is 60 s): while it holds
    its first, the other targets get every change; once it answers, it gets them all too."""
    from hazwatch.alerts.settings import AlertSettings, TargetSettings
    from hazwatch.notify.sender import Sender
    from hazwatch.streams.catalog import rule_specs

    slow = Receiver("slow", delay_s=300)
    try:
        settings = AlertSettings(
            targets=(
                TargetSettings("slow", "webhook", slow.url, WEBHOOK_SECRET, "info", timeout_s=60),
                TargetSettings("hook", "webhook", receivers["hook"].url, WEBHOOK_SECRET, "info"),
                TargetSettings("wx", "wecom", receivers["wx"].url, min_severity="info"),
            ),
            poll_s=0.1,
            retry_first_s=1,
        )
        db = StateDB(state_url)
        store, deliveries = AlertStore(db), DeliveryStore(db)
        sender = Sender(settings, store, deliveries, rules=rule_specs(), base_url="http://hw",
                        holder="w1")  # fmt: skip
        sender.start()
        try:
            raise_alerts(store, 8)
            wanted = expected_keys(store)
            wait_for(lambda: slow.waiting >= 1, 10, "the slow target holding a request")
            for name in ("hook", "wx"):
                wait_for(lambda n=name: receivers[n].keys_received() >= wanted, 30, name)
            # the others are done while the slow one still holds its first request
            assert slow.waiting >= 1 and not slow.accepted
            assert all(r.state == "pending" for r in deliveries.for_target("slow"))
            slow.release.set()
            wait_for(lambda: slow.keys_received() >= wanted, 30, "the slow target, once it answers")
        finally:
            sender.stop()
    finally:
        slow.release.set()
        slow.close()
    assert len(slow.accepted) == len(set(slow.accepted))
