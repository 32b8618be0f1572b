"""InfluxV1Writer and InfluxQLReader against a real InfluxDB 1.x (Debian's influxd).

Never fake the server: every write here goes over HTTP to influxd on a free port.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hazwatch.base.errors import StoreUnavailable
from hazwatch.base.points import Point, to_line
from hazwatch.base.retry import RetryPolicy
from hazwatch.base.statedb import StateDB
from hazwatch.devices.family import NoRegistry
from hazwatch.ingest.deadletters import DeadLetterStore
from hazwatch.ingest.influx_v1 import InfluxV1Writer
from hazwatch.ingest.influxql import InfluxQLReader, quote_string
from hazwatch.ingest.pipeline import IngestPipeline
from hazwatch.ingest.spool import Spool
from tests.services import IN_CI, Influxd, ServiceMissing, free_port, wait_for

pytestmark = pytest.mark.integration

T0 = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z in ns
QUICK = RetryPolicy(max_s=1.5, first_delay_s=0.05, max_delay_s=0.5)
QUICKEST = RetryPolicy(max_s=0.2, first_delay_s=0.05)


@pytest.fixture()
def db(influxd: Influxd) -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


@pytest.fixture()
def writer(influxd: Influxd, db: str) -> Iterator[InfluxV1Writer]:
    points = InfluxV1Writer(influxd.url, db, retry=QUICK)
    yield points
    points.close()


@pytest.fixture()
def own_influxd(tmp_path: Path) -> Iterator[Influxd]:
    """A server of this test's own, to kill without disturbing the session one."""
    server = Influxd(tmp_path / "influxd")
    try:
        server.start()
    except ServiceMissing as exc:
        if IN_CI:
            pytest.fail(f"influxd is required in CI: {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()


def readings(n: int, start: int = T0) -> list[str]:
    return [
        to_line(
            "air",
            {"site": "jy-0012", "station": f"aq-{i % 7}", "interval": "rtd"},
            {"pm25": 10.0 + i, "rh": 40 + i % 50, "flag": "N"},
            start + i * 1_000_000,
        )
        for i in range(n)
    ]


def test_batch_is_written_with_tags_fields_and_timestamps(
    influxd: Influxd, writer: InfluxV1Writer, db: str
) -> None:
    assert writer.write(readings(500)) == []  # the database is created on the way
    assert influxd.count(db, "air") == 500
    (series,) = influxd.query(db, "SELECT * FROM air WHERE station = 'aq-3' ORDER BY time LIMIT 1")
    row = dict(zip(series["columns"], series["values"][0], strict=True))
    assert row == {
        "time": T0 + 3_000_000,
        "site": "jy-0012",
        "station": "aq-3",
        "interval": "rtd",
        "pm25": 13.0,
        "rh": 43,
        "flag": "N",
    }


def test_same_batch_twice_leaves_the_same_points(
    influxd: Influxd, writer: InfluxV1Writer, db: str
) -> None:
    batch = readings(300)
    writer.write(batch)
    writer.write(batch)
    assert influxd.count(db, "air") == 300


def test_field_type_conflict_rejects_exactly_that_line(
    influxd: Influxd, writer: InfluxV1Writer, db: str
) -> None:
    writer.write(readings(1))  # pm25 is a float from now on
    batch = readings(1000, start=T0 + 10**12)
    bad = to_line("air", {"site": "jy-0012", "station": "aq-9"}, {"pm25": 7}, T0 + 5)
    batch.insert(613, bad)
    rejected = writer.write(batch)
    assert [r.index for r in rejected] == [613]
    assert "field type conflict" in rejected[0].reason
    assert 'input field "pm25" on measurement "air" is type integer' in rejected[0].reason
    assert influxd.count(db, "air") == 1 + 1000
    assert influxd.count(db, "air", "station = 'aq-9'") == 0


def test_unparsable_lines_are_rejected_with_influxdbs_words(
    influxd: Influxd, writer: InfluxV1Writer, db: str
) -> None:
    batch = [*readings(20), "air,site=x pm25=", "garbage"]
    rejected = writer.write(batch)
    assert [r.index for r in rejected] == [20, 21]
    assert all("unable to parse" in r.reason for r in rejected)
    assert influxd.count(db, "air") == 20


def test_values_influxdb_cannot_hold_are_rejected_alone(
    influxd: Influxd, writer: InfluxV1Writer, db: str
) -> None:
    """Beyond int64, a time beyond its range: refused for what they are (#21, item 2), the
    batch around them written."""
    batch = readings(30)
    batch[5] = "air,site=jy-0012,station=big count=9223372036854775808i " + str(T0)
    batch[17] = "air,site=jy-0012,station=late pm25=1 99999999999999999999"
    rejected = writer.write(batch)
    assert [r.index for r in rejected] == [5, 17]
    assert all(r.reason for r in rejected)
    assert influxd.count(db, "air") == 28


def test_many_bad_lines_are_found_quickly(
    influxd: Influxd, writer: InfluxV1Writer, db: str
) -> None:
    """A device gone wrong (every reading an integer) must not cost one request per line."""
    writer.write([to_line("air", {"site": "x"}, {"pm25": 1.5, "flag": "N"}, T0 - 1)])
    batch = readings(5000)
    bad = set(range(0, 5000, 7)) | set(range(3, 5000, 101))
    for i in bad:
        fields = {"pm25": i} if i % 7 == 0 else {"flag": i}
        batch[i] = to_line("air", {"site": "bad", "station": f"b{i}"}, fields, T0 + i)
    batch[4999] = "air,site=bad pm25=oops 1"
    started = time.perf_counter()
    rejected = writer.write(batch)
    elapsed = time.perf_counter() - started
    assert [r.index for r in rejected] == sorted(bad | {4999})
    assert rejected[0].reason.endswith("is type integer, already exists as type float")
    assert rejected[1].reason.endswith("is type integer, already exists as type string")
    assert rejected[-1].reason.startswith("unable to parse 'air,site=bad pm25=oops 1'")
    assert influxd.count(db, "air") == 1 + 5000 - len(bad) - 1
    assert elapsed < 3.0  # measured here: ~0.3 s; one request per bad line would take ~15 s


def test_refusals_without_a_named_line_are_found_by_bisection(influxd: Influxd, db: str) -> None:
    """'points beyond retention policy' names no line: the batch is split until it does."""
    r = httpx.post(f"{influxd.url}/query", params={"q": f'CREATE DATABASE "{db}" WITH DURATION 1h'})
    r.raise_for_status()
    now = time.time_ns()
    batch = readings(64, start=now - 60 * 10**9)
    for i in (5, 6, 40):
        batch[i] = to_line("air", {"site": "old", "station": "aq-1"}, {"pm25": 1.0}, T0 + i)
    writer = InfluxV1Writer(influxd.url, db, retry=QUICK)
    try:
        rejected = writer.write(batch)
    finally:
        writer.close()
    assert [r.index for r in rejected] == [5, 6, 40]
    assert all("beyond retention policy" in r.reason for r in rejected)
    assert influxd.count(db, "air") == 61


def test_a_batch_of_5000_goes_in_one_request(
    influxd: Influxd, writer: InfluxV1Writer, db: str
) -> None:
    batch = readings(5000)
    writer.write(batch[:10])
    requests: list[int] = []
    original = writer._send
    writer._send = lambda chunk: (requests.append(len(chunk)), original(chunk))[1]  # type: ignore[method-assign]
    started = time.perf_counter()
    assert writer.write(batch) == []
    elapsed = time.perf_counter() - started
    assert requests == [5000]
    assert influxd.count(db, "air") == 5000
    assert elapsed < 2.0  # measured here: ~0.015 s (gzip on, 330 kB)


def test_reader_selects_and_lists_tag_values(
    influxd: Influxd, writer: InfluxV1Writer, db: str
) -> None:
    awkward = {"site": "危废 暂存间,1号", "station": 'it\'s \\ "odd"'}
    writer.write([*readings(70), to_line("air", awkward, {"pm25": 1.5, "note": 'a "b"'}, T0 - 1)])
    reader = InfluxQLReader(influxd.url, db)
    try:
        rows = reader.select("air", tags={"station": "aq-2"}, start_ns=T0, end_ns=T0 + 30_000_000)
        assert [row["time"] for row in rows] == [T0 + i * 1_000_000 for i in (2, 9, 16, 23)]
        assert rows[0]["station"] == "aq-2" and rows[0]["pm25"] == 12.0
        newest = reader.select("air", fields=["pm25"], limit=2, newest_first=True)
        assert [row["time"] for row in newest] == [T0 + 69_000_000, T0 + 68_000_000]
        assert set(newest[0]) == {"time", "site", "station", "interval", "pm25"}
        (odd,) = reader.select("air", tags=awkward)
        assert odd == {"time": T0 - 1, **awkward, "pm25": 1.5, "note": 'a "b"'}
        assert reader.tag_values("air", "station") == sorted(
            [f"aq-{i}" for i in range(7)] + [awkward["station"]]
        )
        assert reader.select("nothing_here") == []
    finally:
        reader.close()


def test_a_replacing_line_leaves_exactly_the_new_point(
    influxd: Influxd, writer: InfluxV1Writer, db: str
) -> None:
    """InfluxDB merges a point written again; a replacing line (an air hour an audit took
    back) deletes it first, so no old field is left: its series' other times, other series
    of the measurement and other measurements stay."""
    awkward = {"site": "危废 暂存间,1号", "station": 'it\'s \\ "odd"'}
    hour: dict[str, float | int | str] = {
        "aqi": 243,
        "level": 5,
        "primary": "pm25",
        "pm25": 193.0,
        "pm25_minutes": 60,
    }
    first = [
        to_line("air_hourly", tags, hour, ts)
        for tags in (
            {"site": "s1", "station": "aq-10"},
            {"site": "s1", "station": "aq-11"},
            awkward,
        )
        for ts in (T0, T0 + 3_600 * 10**9)
    ]
    assert writer.write([*first, *readings(3, start=T0)]) == []
    reader = InfluxQLReader(influxd.url, db)
    try:
        for tags in ({"site": "s1", "station": "aq-10"}, awkward):
            again = Point("air_hourly", tags, {"pm25_minutes": 0, "over": ""}, T0, replaces=True)
            for _ in range(2):  # retried or replayed from the spool: the same point
                assert writer.write([again.to_line()]) == []
                rows = reader.select("air_hourly", tags=tags, end_ns=T0 + 1)
                assert rows == [{"time": T0, **tags, "pm25_minutes": 0, "over": ""}]
            (later,) = reader.select("air_hourly", tags=tags, start_ns=T0 + 1)
            assert later["aqi"] == 243  # the series' next hour is not touched
        (other,) = reader.select("air_hourly", tags={"station": "aq-11"}, end_ns=T0 + 1)
        assert other["aqi"] == 243 and other["pm25"] == 193.0
        assert influxd.count(db, "air") == 3
        # in one batch as written line by line: what comes before the replacing line of its
        # point is superseded, what comes after merges into it
        tags = {"site": "s1", "station": "aq-11"}
        batch = [
            to_line("air_hourly", tags, {"aqi": 300}, T0),
            Point("air_hourly", tags, {"pm25_minutes": 40}, T0, replaces=True).to_line(),
            to_line("air_hourly", tags, {"no2_minutes": 60}, T0),
        ]
        assert writer.write(batch) == []
        assert reader.select("air_hourly", tags=tags, end_ns=T0 + 1) == [
            {"time": T0, **tags, "pm25_minutes": 40, "no2_minutes": 60}
        ]
    finally:
        reader.close()


def test_a_replacing_line_into_a_database_not_made_yet_is_written(
    influxd: Influxd, writer: InfluxV1Writer, db: str
) -> None:
    line = Point("air_daily", {"site": "s1", "station": "aq-1"}, {"aqi": 12}, T0, replaces=True)
    assert writer.write([line.to_line()]) == []  # nothing to delete; the write makes the db
    assert influxd.count(db, "air_daily") == 1


def test_quote_string_escapes_for_influxql() -> None:
    assert quote_string("it's \\ x") == "'it\\'s \\\\ x'"


def test_outage_raises_store_unavailable_then_recovers(own_influxd: Influxd) -> None:
    writer = InfluxV1Writer(own_influxd.url, "outage", retry=QUICK)
    try:
        assert writer.write(readings(10)) == []
        writer.ping()
        own_influxd.kill()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="gave up after"):
            writer.write(readings(10, start=T0 + 10**12))
        assert time.monotonic() - started < QUICK.max_s + 1.0
        with pytest.raises(StoreUnavailable, match="not reachable"):
            writer.ping()
        own_influxd.start()
        wait_for(lambda: writer.write(readings(10, start=T0 + 10**12)) == [], 20, "writes again")
        assert own_influxd.count("outage", "air") == 20
    finally:
        writer.close()


def test_a_replacement_the_store_cannot_take_is_spooled_and_replayed_whole(
    own_influxd: Influxd, tmp_path: Path
) -> None:
    """The delete and the write go together: with InfluxDB down neither is done (the old
    point stays whole), the pipeline spools the marked line, and its replay replaces."""
    tags = {"site": "s1", "station": "aq-10"}
    writer = InfluxV1Writer(own_influxd.url, "replay", retry=QUICK)
    pipe = IngestPipeline(
        ctx=NoRegistry(),
        writer=writer,
        spool=Spool(tmp_path / "spool", 1 << 20),
        deadletters=DeadLetterStore(StateDB(f"sqlite:///{tmp_path / 'd.db'}")),
    )
    try:
        assert writer.write([to_line("air_hourly", tags, {"aqi": 243, "pm25": 193.0}, T0)]) == []
        own_influxd.kill()
        replacing = Point("air_hourly", tags, {"pm25_minutes": 0}, T0, replaces=True)
        pipe.add_points([replacing])
        pipe.tick()  # the side point's write fails: spooled, marks and all
        assert len(pipe.spool) == 1 and pipe.points_spooled == 1
        own_influxd.start()
        (old,) = own_influxd.query("replay", "SELECT * FROM air_hourly")
        assert old["values"][0][1] == 243  # nothing of the replacement was half done
        wait_for(lambda: pipe.replay_spool() == 1, 20, "the spool replayed")
        (series,) = own_influxd.query("replay", "SELECT * FROM air_hourly")
        row = zip(series["columns"], series["values"][0], strict=True)
        assert {k: v for k, v in row if v is not None} == {
            "time": T0,
            **tags,
            "pm25_minutes": 0,
        }
    finally:
        writer.close()


def test_nothing_listening_is_store_unavailable() -> None:
    writer = InfluxV1Writer(f"http://127.0.0.1:{free_port()}", "x", retry=QUICKEST)
    with pytest.raises(StoreUnavailable):
        writer.write(readings(1))
    writer.close()


class Flaky:
    """An HTTP hop in front of the real influxd that answers the first /write requests with
    the statuses given (503, 429 with Retry-After …), then forwards every request unchanged."""

    def __init__(self, upstream: str, statuses: list[tuple[int, dict[str, str]]]) -> None:
        import http.server
        import threading

        self.statuses = list(statuses)
        self.seen: list[tuple[float, int]] = []
        flaky = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None: ...

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("/write") and flaky.statuses:
                    status, headers = flaky.statuses.pop(0)
                    flaky.seen.append((time.monotonic(), status))
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    payload = b'{"error":"provoked"}'
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if self.path.startswith("/write"):
                    flaky.seen.append((time.monotonic(), 0))
                keep = ("Content-Type", "Content-Encoding", "Authorization")
                headers = {k: v for k, v in self.headers.items() if k in keep}
                response = httpx.request(
                    self.command, upstream + self.path, content=body, headers=headers
                )
                self.send_response(response.status_code)
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

            do_GET = do_POST = _relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_5xx_and_429_are_retried_honouring_retry_after(influxd: Influxd, db: str) -> None:
    """Transient answers (#21, item 2): retried with backoff, Retry-After honoured, nothing
    rejected, every line written once the server takes them."""
    influxd.create_db(db)
    flaky = Flaky(influxd.url, [(503, {}), (500, {}), (429, {"Retry-After": "1"}), (502, {})])
    writer = InfluxV1Writer(flaky.url, db, retry=RetryPolicy(max_s=10, first_delay_s=0.05))
    try:
        assert writer.write(readings(50)) == []
    finally:
        writer.close()
        flaky.close()
    statuses = [status for _, status in flaky.seen]
    assert statuses == [503, 500, 429, 502, 0]
    after_429 = flaky.seen[3][0] - flaky.seen[2][0]
    assert after_429 >= 0.95  # Retry-After: 1
    assert influxd.count(db, "air") == 50


def test_a_server_failing_past_the_retry_budget_is_store_unavailable(
    influxd: Influxd, db: str
) -> None:
    flaky = Flaky(influxd.url, [(503, {})] * 100)
    writer = InfluxV1Writer(flaky.url, db, retry=QUICKEST)
    try:
        with pytest.raises(StoreUnavailable, match="HTTP 503"):
            writer.write(readings(5))
    finally:
        writer.close()
        flaky.close()
