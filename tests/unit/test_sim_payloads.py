"""Simulator payloads decode cleanly, and each injected fault gets the reason it promises.

Never talk to a broker here: these check the generators and fault injection as pure functions.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from hazwatch.base.errors import PayloadError
from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.devices.timeparse import NS_PER_MS
from hazwatch.simulators.faults import EXPECTED_REASON, FaultPlan, inject
from hazwatch.simulators.payloads import FAMILIES, DeviceGenerator, device_ids

NOW_NS = 1_764_050_000_000_000_000  # 2025-11-25T05:53:20Z
CTX = NoRegistry()


def generators(seed: int = 7, per_family: int = 3) -> list[DeviceGenerator]:
    return [
        DeviceGenerator("jy-0012", family, device, seed=seed, clock_ns=lambda: NOW_NS)
        for family in FAMILIES
        for device in device_ids(family, per_family)
    ]


def test_thousands_of_generated_messages_all_decode() -> None:
    kinds: Counter[str] = Counter()
    identities = set()
    for gen in generators():
        for _ in range(400):
            message = gen.next()
            decoded = decode(message.topic, message.payload, CTX, now_ns=NOW_NS)
            assert decoded.points, message.topic
            assert decoded.points[0].ts_ns // NS_PER_MS == message.ts_ns // NS_PER_MS
            identities.add(message.identity())
            kinds[message.kind] += 1
        status = gen.status()
        assert decode(status.topic, status.payload, CTX, now_ns=NOW_NS).record.online
    assert sum(kinds.values()) == 15 * 400 == len(identities)
    assert set(kinds) == {"read", "weight", "batch", "manifest", "reading", "frame"}


def test_generation_is_deterministic_from_the_seed() -> None:
    first = [gen.next().payload for gen in generators(seed=1)]
    again = [gen.next().payload for gen in generators(seed=1)]
    other = [gen.next().payload for gen in generators(seed=2)]
    assert first == again
    assert first != other


def test_air_readings_follow_the_day() -> None:
    hour_ns = 3600 * 1_000_000_000
    day_start = NOW_NS - (NOW_NS + 8 * hour_ns) % (24 * hour_ns)  # local midnight, UTC+8
    clock = [day_start]
    gen = DeviceGenerator("jy-0012", "air", "aq-01", seed=3, clock_ns=lambda: clock[0])
    by_hour = {}
    for hour in range(24):
        clock[0] = day_start + hour * hour_ns
        by_hour[hour] = gen.next().body
    assert by_hour[13]["o3"] > 2 * by_hour[1]["o3"]  # ozone is made by sunlight
    assert by_hour[15]["temp"] > by_hour[4]["temp"]
    assert all(body["pm10"] >= body["pm25"] for body in by_hour.values())


@pytest.mark.parametrize("kind", [k for k, reason in EXPECTED_REASON.items() if reason])
def test_each_fault_gives_its_dead_letter_reason(kind: str) -> None:
    rng = random.Random(5)
    plan = FaultPlan()
    applied = 0
    for gen in generators(per_family=1):
        for _ in range(30):
            fault = inject(kind, gen.next(), rng, plan)
            if fault.kind == "clean":
                continue
            applied += 1
            with pytest.raises(PayloadError) as caught:
                decode(fault.message.topic, fault.message.payload, CTX, now_ns=NOW_NS)
            assert caught.value.reason == fault.expected_reason == kind, fault.detail
    assert applied >= 60


@pytest.mark.parametrize("kind", [k for k, reason in EXPECTED_REASON.items() if not reason])
def test_accepted_faults_still_decode(kind: str) -> None:
    rng = random.Random(5)
    for gen in generators(per_family=1):
        message = gen.next()
        fault = inject(kind, message, rng, FaultPlan())
        decoded = decode(fault.message.topic, fault.message.payload, CTX, now_ns=NOW_NS)
        assert decoded.points[0].ts_ns // NS_PER_MS == fault.message.ts_ns // NS_PER_MS
        if fault.kind == "clock_behind":
            assert message.ts_ns is not None
            assert fault.message.ts_ns == message.ts_ns - 3600 * 1_000_000_000


def test_fault_plan_parses_and_draws_deterministically() -> None:
    plan = FaultPlan.parse("bad_json:0.1, duplicate:0.2,outage")
    assert dict(plan.rates) == {"bad_json": 0.1, "duplicate": 0.2, "outage": 0.01}
    rng = random.Random(9)
    draws = Counter(plan.choose(rng) for _ in range(10_000))
    assert 800 < draws["bad_json"] < 1200 and 1700 < draws["duplicate"] < 2300
    for bad in ("nonsense:0.1", "bad_json:x", "bad_json:1.5", "bad_json:0.6,duplicate:0.6"):
        with pytest.raises(ValueError):
            FaultPlan.parse(bad)


class _Report:
    def __init__(self, ok: bool, rows: list[tuple[str, str]]) -> None:
        self.ok, self._rows = ok, rows

    def summary(self) -> list[tuple[str, str]]:
        return self._rows


class _Step:
    def __init__(self, label: str, ok: bool = True) -> None:
        self.label, self.ok = label, ok
        self.urls: list[str] = []

    async def run(self, mqtt_url: str, progress):  # type: ignore[no-untyped-def]
        self.urls.append(mqtt_url)
        progress(0.5, "half")
        progress(1.0, "done")
        return _Report(self.ok, [("sent", "3")])


def test_scenarios_are_steps_run_in_order_behind_a_registry() -> None:
    import asyncio

    from hazwatch.simulators.fleet import Fleet
    from hazwatch.simulators.scenarios import (
        Scenario,
        get_scenario,
        register_scenario,
        scenario_names,
    )

    first, second = _Step("first"), _Step("second", ok=False)

    def factory(**options: object) -> Scenario:
        return Scenario("two-steps", [first, second])

    register_scenario("test-two-steps", factory)
    register_scenario("test-two-steps", factory)  # the same factory again is harmless
    with pytest.raises(ValueError):
        register_scenario("test-two-steps", lambda **options: factory())
    assert {"fleet", "test-two-steps"} <= set(scenario_names())
    with pytest.raises(KeyError, match=r"known: .*fleet"):
        get_scenario("no-such-scenario")

    seen: list[tuple[float, str]] = []
    report = asyncio.run(
        get_scenario("test-two-steps")().run("mqtt://h:1", lambda f, t: seen.append((f, t)))
    )
    assert first.urls == second.urls == ["mqtt://h:1"]
    assert [f for f, _ in seen] == [0.25, 0.5, 0.75, 1.0]
    assert seen[0][1] == "first: half"
    assert not report.ok
    assert report.summary() == [("first: sent", "3"), ("second: sent", "3")]

    fleet = get_scenario("fleet")(site="s", devices=3, rate=5.0, seed=2, colour="ignored")
    (step,) = fleet.steps
    assert isinstance(step, Fleet) and step.config.devices == 3 and step.config.seed == 2


def test_a_device_never_repeats_a_timestamp_even_on_a_stopped_clock() -> None:
    gen = DeviceGenerator("jy-0012", "scale", "s-01", clock_ns=lambda: NOW_NS)
    times = [gen.next().ts_ns for _ in range(50)]
    statuses = [gen.status(online=n % 2 == 0).ts_ns for n in range(5)]
    assert len(set(times)) == 50 and times == sorted(times)
    assert len(set(statuses)) == 5


def test_a_fleet_reader_reports_passes_with_cross_reads_of_the_reader_beside_it() -> None:
    from hazwatch.simulators.payloads import ReaderField

    field = ReaderField()
    gens = [
        DeviceGenerator("jy-0012", "rfid", d, seed=3, clock_ns=lambda: NOW_NS, readers=field)
        for d in ("gate-01", "gate-02")
    ]
    reads: dict[str, list[dict[str, object]]] = {g.device: [] for g in gens}
    cross: dict[str, list[dict[str, object]]] = {g.device: [] for g in gens}
    for _ in range(1500):
        for gen, other in (gens, gens[::-1]):
            beside = field.current.get(other.device)
            body = gen.next().body
            if body["epc"] == beside and body["epc"] != field.current.get(gen.device):
                cross[gen.device].append(body)  # the tag in the other reader's field
            else:
                reads[gen.device].append(body)
    for device, bodies in reads.items():
        runs: list[list[dict[str, object]]] = []  # consecutive reads of one tag
        for body in bodies:
            if runs and runs[-1][0]["epc"] == body["epc"]:
                runs[-1].append(body)
            else:
                runs.append([body])
        long = [run for run in runs if len(run) > 20]
        assert len(long) >= 3 and all(len(run) < 1000 for run in long)
        assert sum(len(run) for run in long) > 0.9 * len(bodies)
        for run in long:
            assert all(-76 <= float(b["rssi"]) <= -20 for b in run)  # type: ignore[arg-type]
        passing = [run for run in long if max(float(b["rssi"]) for b in run) > -55]  # type: ignore[arg-type]
        assert passing and all({b["antenna"] for b in run} == {1, 2} for run in passing)
        # cross-reads: the other reader's tag, weak, now and then
        assert 0.05 * len(bodies) < len(cross[device]) < 0.2 * len(bodies)
        assert all(float(b["rssi"]) <= -65 for b in cross[device])  # type: ignore[arg-type]


def test_fleet_devices_take_their_clocks_and_a_reboot_goes_back_to_2000() -> None:
    from hazwatch.devices.timeparse import EARLIEST_NS
    from hazwatch.simulators.clocks import parse_clocks
    from hazwatch.simulators.fleet import FleetConfig, _device_clock

    now = [NOW_NS]
    cfg = FleetConfig(
        clock_ns=lambda: now[0], clocks=parse_clocks(["gate-01=-900s,reboot@60", "s-01=+30ppm"])
    )
    gate = DeviceGenerator(
        "jy-0012", "rfid", "gate-01", clock_ns=_device_clock(cfg, "gate-01", NOW_NS)
    )
    scale = DeviceGenerator("jy-0012", "scale", "s-01", clock_ns=_device_clock(cfg, "s-01", NOW_NS))
    assert _device_clock(cfg, "air-01", NOW_NS) is cfg.clock_ns
    before = gate.next().ts_ns
    assert before == NOW_NS - 900 * 1_000_000_000
    now[0] = NOW_NS + 100 * 1_000_000_000
    after = gate.next()
    assert after.ts_ns == EARLIEST_NS + 40 * 1_000_000_000  # back to 2000-01-01, counting on
    after_point = decode(after.topic, after.payload, CTX, now_ns=now[0]).points[0]
    assert after_point.ts_ns // NS_PER_MS == after.ts_ns // NS_PER_MS
    assert gate.status().ts_ns == EARLIEST_NS + 40 * 1_000_000_000
    assert scale.next().ts_ns == now[0] + 3_000_000  # 30 ppm of 100 s: 3 ms
