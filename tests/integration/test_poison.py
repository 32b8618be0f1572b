"""One bad message never stops the line (issue #21), through `hazwatch serve`, real Mosquitto
and real InfluxDB: the poison of the report, a redelivered poison after kill -9, a stalled
state store that health must call degraded, `hazwatch status` and `deadletters replay`.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hazwatch.base.statedb import StateDB
from hazwatch.ingest.deadletters import DeadLetter, DeadLetterStore
from tests.hazwatch_proc import HazwatchProcess
from tests.services import Influxd, Mosquitto, wait_for

pytestmark = pytest.mark.integration


def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex[:6]}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()


def good_readings(site: str, n: int, start_ms: int | None = None) -> list[tuple[str, bytes]]:
    """n air readings of distinct stations and times: each identifiable once stored."""
    start = start_ms if start_ms is not None else int(time.time() * 1000) - 60_000
    return [
        (
            f"hw/{site}/air/st{i % 7}/reading",
            orjson.dumps({"ts": start + i * 10, "pm25": 10.0 + i % 50}),
        )
        for i in range(n)
    ]


def stored_air(influxd: Influxd, db: str, site: str) -> int:
    return influxd.count(db, "air", f"site = '{site}'")


def dead_letters(service: HazwatchProcess, site: str) -> list[dict[str, object]]:
    out = service.cli("deadletters", "--json", "--limit", "100000")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    return [r for r in rows if str(r["topic"]).startswith(f"hw/{site}/")]


@pytest.fixture()
def db(influxd: Influxd) -> str:
    name = f"p_{uuid.uuid4().hex[:8]}"
    influxd.create_db(name)
    return name


def make_service(tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, db: str, **extra: str):  # type: ignore[no-untyped-def]
    return HazwatchProcess.on_influx_v1(
        tmp_path / "hazwatch",
        mosquitto.url,
        influxd.url,
        db,
        **extra,
    )


POISONS = [
    b'{"ts": 1e308, "pm25": 10}',  # the report's: a whole float far past 2000
    b'{"ts": 1e19, "pm25": 10}',
    b'{"ts": 99999999999999999999999999, "pm25": 10}',
    b'{"ts": "9999-12-31T23:59:59.999999+00:00", "pm25": 10}',
    b'{"ts": "0001-01-01T00:00:00-23:59", "pm25": 10}',
    b'{"ts": 1700000000000, "pm25": 1e400}',
    b'{"ts": 1700000000000, "pm25": 10, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'{"ts": 1700000000000, "pm25": "\xff\xfe"}',
    b"\x00\x01\x02",
]


def test_the_reported_poison_and_its_family_stop_nothing(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, db: str
) -> None:
    service = make_service(tmp_path, mosquitto, influxd, db)
    service.start()
    try:
        site = "poison1"
        stream = [(f"hw/{site}/air/bad{i}/reading", p) for i, p in enumerate(POISONS)]
        stream += good_readings(site, 100)
        publish(mosquitto.port, stream)
        wait_for(lambda: stored_air(influxd, db, site) == 100, 60, "every good reading stored")
        wait_for(lambda: len(dead_letters(service, site)) == len(POISONS), 30, "poisons dead")
        letters = dead_letters(service, site)
        assert all(r["reason"] and r["message"] for r in letters)
        assert not [r for r in letters if r["reason"] == "internal_error"], letters
        health = service.health()
        assert health["status"] == "up", health
        assert "hazwatch_deadletters_total{" in service.metrics()
    finally:
        service.stop()


def test_a_redelivered_poison_after_kill_9_stalls_nothing(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, db: str
) -> None:
    """The report's second failure: with the persistent session the broker redelivers the
    poison after a restart. Queued while hazwatch is down, killed mid-drain, restarted."""
    service = make_service(tmp_path, mosquitto, influxd, db)
    service.start()
    site = "poison2"
    try:
        service.stop()
        stream: list[tuple[str, bytes]] = []
        goods = good_readings(site, 3000)
        for i in range(0, 3000, 100):  # a poison every 100 good readings
            stream.append((f"hw/{site}/air/bad{i}/reading", POISONS[(i // 100) % len(POISONS)]))
            stream += goods[i : i + 100]
        publish(mosquitto.port, stream)
        service.start(wait_connected=False)
        wait_for(lambda: stored_air(influxd, db, site) > 100, 60, "draining started")
        service.kill()
        service.start()
        wait_for(lambda: stored_air(influxd, db, site) == 3000, 90, "all good stored once")
        # a poison redelivered after the kill may be dead-lettered twice; it never stalls
        wait_for(lambda: len(dead_letters(service, site)) >= 30, 30, "every poison dead")
        assert {r["topic"] for r in dead_letters(service, site)} == {
            topic for topic, _ in stream if "/bad" in topic
        }
        publish(mosquitto.port, good_readings(site, 20, start_ms=int(time.time() * 1000) - 5000))
        wait_for(lambda: stored_air(influxd, db, site) == 3020, 30, "a batch after it goes too")
    finally:
        service.stop()


def test_health_calls_a_stalled_line_degraded_and_status_says_so(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, db: str
) -> None:
    """Every dependency answers its ping, but the line does not move: another process holds
    the state store's write lock, so the batch's air rows cannot be committed."""
    service = make_service(
        tmp_path, mosquitto, influxd, db, health_max_unacked_age_s="2", health_max_batch_retries="1"
    )
    service.start()
    site = "stall"
    try:
        assert service.cli("status").returncode == 0
        publish(mosquitto.port, good_readings(site, 5))
        wait_for(lambda: stored_air(influxd, db, site) == 5, 30, "the line moves")
        locker = sqlite3.connect(service.workdir / "data" / "state.db", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            publish(mosquitto.port, good_readings(site, 5, start_ms=int(time.time() * 1000)))

            def degraded() -> bool:
                return service.health()["status"] == "degraded"

            wait_for(degraded, 60, "health degraded by the stall")
            reasons = service.health()["reasons"]
            assert any("未确认" in str(r) for r in reasons), reasons  # type: ignore[union-attr]
            status = service.cli("status")
            assert status.returncode == 1, status.stdout + status.stderr
            assert "降级" in status.stdout
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        wait_for(lambda: stored_air(influxd, db, site) == 10, 90, "the line moves again")
        wait_for(lambda: service.health()["status"] == "up", 30, "health up again")
        assert service.cli("status", "--json").returncode == 0
    finally:
        service.stop()
    down = service.cli("status", "--url", "http://127.0.0.1:9")
    assert down.returncode == 2


def test_replay_feeds_dead_letters_back_and_removes_those_that_pass(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, db: str
) -> None:
    service = make_service(tmp_path, mosquitto, influxd, db)
    service.start()
    site = "replay"
    try:
        (topic, good), (topic2, good2) = good_readings(site, 2)
        state = StateDB(f"sqlite:///{service.workdir / 'data' / 'state.db'}")
        store = DeadLetterStore(state)
        now = time.time_ns()
        store.add_many(
            [  # as an earlier, buggy hazwatch left them
                DeadLetter(now, topic, "internal_error", "TypeError: fixed since", good),
                DeadLetter(now, topic2, "internal_error", "TypeError: fixed since", good2),
                DeadLetter(now, f"hw/{site}/air/x/reading", "bad_json", "still bad", b"{"),
                DeadLetter(
                    now, f"hw/{site}/air/y/reading", "too_large", "cut", b"{", raw_len=10**6
                ),
            ]
        )
        dry = service.cli("deadletters", "replay", "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        kinds = sorted(json.loads(line)["outcome"] for line in dry.stdout.splitlines())
        assert kinds == ["failing", "unreplayable", "would", "would"]
        assert len(dead_letters(service, site)) == 4  # a dry run changes nothing

        done = service.cli("deadletters", "replay", "--reason", "internal_error")
        assert done.returncode == 0, done.stderr
        assert "已重放 2" in done.stderr
        wait_for(lambda: stored_air(influxd, db, site) == 2, 30, "replayed readings stored")
        left = sorted(str(r["reason"]) for r in dead_letters(service, site))
        assert left == ["bad_json", "too_large"]
        state.close()
    finally:
        service.stop()
