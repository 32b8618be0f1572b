"""InfluxV2Writer (influxdb-client, /api/v2/write) against a real v2-compatible VictoriaMetrics.

Never expect overwrites or string fields here: VictoriaMetrics keeps neither (docs/payloads.md).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hazwatch.base.errors import StoreUnavailable
from hazwatch.base.points import Point, to_line
from hazwatch.base.retry import RetryPolicy
from hazwatch.ingest.influx_v1 import InfluxV1Writer
from hazwatch.ingest.influx_v2 import InfluxV2Writer, predicate, rfc3339_ns
from hazwatch.ingest.influxql import v2_reader
from hazwatch.ingest.writers import make_reader, make_writer
from hazwatch.settings import Settings
from tests.services import IN_CI, Influxd, ServiceMissing, VictoriaMetrics, free_port, wait_for

pytestmark = pytest.mark.integration

T0 = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z in ns
QUICK = RetryPolicy(max_s=1.5, first_delay_s=0.05, max_delay_s=0.5)
QUICKEST = RetryPolicy(max_s=0.2, first_delay_s=0.05)


@pytest.fixture()
def own_victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A server of this test's own, to kill without disturbing the session one."""
    server = VictoriaMetrics(tmp_path / "vm")
    try:
        server.start()
    except ServiceMissing as exc:
        if IN_CI:
            pytest.fail(f"victoria-metrics is required in CI: {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()


def readings(site: str, n: int, start: int = T0) -> list[str]:
    return [
        to_line(
            "air",
            {"site": site, "station": f"aq-{i % 4}", "interval": "rtd"},
            {"pm25": 10.0 + i, "rh": 40 + i},
            start + i * 1_000_000,  # VictoriaMetrics keeps milliseconds
        )
        for i in range(n)
    ]


def exported(victoria: VictoriaMetrics, site: str, name: str = "air_pm25") -> dict[str, list]:
    """station -> [(ms, value), ...] of one series family, as VictoriaMetrics exports it."""
    by_station: dict[str, list] = {}
    for series in victoria.export(f'{{__name__="{name}",site="{site}"}}'):
        pairs = zip(series["timestamps"], series["values"], strict=True)
        by_station.setdefault(series["metric"]["station"], []).extend(pairs)
    return {station: sorted(values) for station, values in by_station.items()}


def test_points_arrive_with_tags_fields_and_timestamps(victoria: VictoriaMetrics) -> None:
    site = f"s-{uuid.uuid4().hex[:8]}"
    writer = InfluxV2Writer(victoria.url, "token", "hazwatch", "hazwatch", retry=QUICK)
    try:
        writer.ping()
        assert writer.write(readings(site, 200)) == []
    finally:
        writer.close()
    found = wait_for(
        lambda: (e := exported(victoria, site)) and sum(map(len, e.values())) == 200 and e,
        20,
        "200 air_pm25 samples",
    )
    assert sorted(found) == ["aq-0", "aq-1", "aq-2", "aq-3"]
    assert found["aq-1"][0] == (T0 // 1_000_000 + 1, 11.0)
    (series,) = victoria.export(f'{{__name__="air_rh",site="{site}",station="aq-2"}}')
    assert series["metric"]["interval"] == "rtd"
    assert series["values"][:2] == [42, 46]


def test_a_batch_of_5000_in_one_request(victoria: VictoriaMetrics) -> None:
    site = f"s-{uuid.uuid4().hex[:8]}"
    writer = InfluxV2Writer(victoria.url, "token", "hazwatch", "hazwatch", retry=QUICK)
    batch = readings(site, 5000)
    try:
        writer.write(readings("warm-up", 10))  # a connection in the pool, and series known
        started = time.perf_counter()
        assert writer.write(batch) == []
        assert time.perf_counter() - started < 2.0  # measured here: ~0.01 s
    finally:
        writer.close()
    wait_for(lambda: sum(map(len, exported(victoria, site).values())) == 5000, 20, "5000 samples")


def test_make_writer_builds_the_v2_writer(victoria: VictoriaMetrics, tmp_path: Path) -> None:
    site = f"s-{uuid.uuid4().hex[:8]}"
    conf = Settings(
        data_dir=tmp_path, influx_url=victoria.url, influx_api="v2", influx_token="token"
    )
    writer = make_writer(conf)
    assert isinstance(writer, InfluxV2Writer)
    assert writer.write(readings(site, 3)) == []
    writer.close()
    wait_for(lambda: len(exported(victoria, site)) == 3, 20, "3 series")


def test_a_replacing_line_on_a_server_without_the_delete_api_is_written(
    victoria: VictoriaMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    """VictoriaMetrics has no /api/v2/delete (it answers 400 "unsupported path"), and keeps
    no single point per identity anyway: the replacing line is written, the server's lack
    said once in the log, and the delete not asked for again."""
    site = f"s-{uuid.uuid4().hex[:8]}"
    writer = InfluxV2Writer(victoria.url, "token", "hazwatch", "hazwatch", retry=QUICK)
    tags = {"site": site, "station": "aq-10"}
    try:
        with caplog.at_level(logging.WARNING, logger="hazwatch.influx"):
            for minutes in (0, 40):
                line = Point("air_hourly", tags, {"pm25_minutes": minutes}, T0, replaces=True)
                assert writer.write([line.to_line()]) == []
    finally:
        writer.close()
    said = [r.getMessage() for r in caplog.records if "/api/v2/delete" in r.getMessage()]
    assert len(said) == 1 and "keeps the fields the new one lacks" in said[0]
    found = wait_for(
        lambda: exported(victoria, site, "air_hourly_pm25_minutes").get("aq-10"),
        20,
        "the replacing point",
    )
    assert {t for t, _ in found} == {T0 // 1_000_000}


def test_delete_predicate_and_time_for_the_v2_api() -> None:
    """What /api/v2/delete is asked (InfluxDB 2.x's delete predicate syntax: values and
    awkward keys in double quotes, backslash-escaped; start = stop = the point's time)."""
    assert predicate("air_hourly", {"station": 'a"b', "site": "s 1"}) == (
        '_measurement="air_hourly" AND "site"="s 1" AND "station"="a\\"b"'
    )
    assert rfc3339_ns(T0 + 5) == "2025-11-24T16:00:00.000000005Z"


def test_server_down_is_store_unavailable_then_recovers(own_victoria: VictoriaMetrics) -> None:
    site = f"s-{uuid.uuid4().hex[:8]}"
    writer = InfluxV2Writer(own_victoria.url, "token", "hazwatch", "hazwatch", retry=QUICK)
    try:
        assert writer.write(readings(site, 4)) == []
        own_victoria.kill()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="gave up after"):
            writer.write(readings(site, 4, start=T0 + 10**12))
        assert time.monotonic() - started < QUICK.max_s + 1.0
        with pytest.raises(StoreUnavailable, match="not reachable"):
            writer.ping()
        own_victoria.start()
        assert writer.write(readings(site, 4, start=T0 + 10**12)) == []
    finally:
        writer.close()
    # Only what was written after the restart: VictoriaMetrics answers 204 before its data is
    # on disk (even after /internal/force_flush), so a SIGKILL loses the first points.
    after_ms = (T0 + 10**12) // 1_000_000

    def written_after_restart() -> list[int]:
        return sorted(
            t for v in exported(own_victoria, site).values() for t, _ in v if t >= after_ms
        )

    wait_for(
        lambda: written_after_restart() == [after_ms + i for i in range(4)],
        20,
        "the points written after the restart",
    )


def test_nothing_listening_is_store_unavailable() -> None:
    writer = InfluxV2Writer(f"http://127.0.0.1:{free_port()}", "t", "o", "b", retry=QUICKEST)
    with pytest.raises(StoreUnavailable):
        writer.write(readings("x", 1))
    with pytest.raises(StoreUnavailable):
        writer.ping()
    writer.close()


def test_v2_reader_speaks_influxql_on_query_with_the_token(
    influxd: Influxd, tmp_path: Path
) -> None:
    """The reader a v2 server gets; InfluxDB 1.x answers the same /query, so it stands in."""
    bucket = f"b_{uuid.uuid4().hex[:8]}"
    InfluxV1Writer(influxd.url, bucket).write(readings("jy-0012", 8))
    reader = v2_reader(influxd.url, "token", bucket)
    rows = reader.select("air", tags={"station": "aq-1"}, fields=["pm25"])
    assert [(row["time"], row["pm25"]) for row in rows] == [
        (T0 + 1_000_000, 11.0),
        (T0 + 5_000_000, 15.0),
    ]
    assert reader.tag_values("air", "station") == ["aq-0", "aq-1", "aq-2", "aq-3"]
    conf = Settings(
        data_dir=tmp_path,
        influx_url=influxd.url,
        influx_api="v2",
        influx_token="token",
        influx_bucket=bucket,
    )
    assert make_reader(conf).tag_values("air", "site") == ["jy-0012"]
