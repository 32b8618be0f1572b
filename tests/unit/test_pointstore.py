"""The embedded point store keeps what InfluxDB keeps; line protocol round-trips awkward strings.

Never reach for a server here: the store is a SQLite file in tmp_path.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hazwatch.base.errors import ConfigError
from hazwatch.base.points import Point, parse_line, to_line
from hazwatch.ingest.influx_v1 import InfluxV1Writer
from hazwatch.ingest.pointstore import PointStore
from hazwatch.ingest.writers import check_influx_settings, make_reader, make_writer
from hazwatch.settings import Settings

T0 = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z in ns


@pytest.fixture()
def store(tmp_path: Path) -> PointStore:
    points = PointStore(tmp_path / "points.db")
    yield points
    points.close()


def air(station: str, ts_ns: int, **fields: float | int | str | bool) -> str:
    return to_line("air", {"site": "jy-0012", "station": station, "interval": "rtd"}, fields, ts_ns)


def test_same_identity_twice_is_one_point(store: PointStore) -> None:
    batch = [air("aq-07", T0 + i, pm25=10.0 + i) for i in range(100)]
    assert store.write(batch) == []
    assert store.write(batch) == []
    assert store.count("air") == 100


def test_redelivered_point_overwrites_and_merges_fields(store: PointStore) -> None:
    store.write([air("aq-07", T0, pm25=10.0, pm10=20.0)])
    store.write([air("aq-07", T0, pm25=11.5, flag="N")])
    (row,) = store.select("air")
    assert row == {
        "time": T0,
        "site": "jy-0012",
        "station": "aq-07",
        "interval": "rtd",
        "pm25": 11.5,
        "pm10": 20.0,
        "flag": "N",
    }


def test_tag_order_does_not_change_identity(store: PointStore) -> None:
    store.write([f"air,station=aq-07,site=jy-0012 pm25=1.0 {T0}"])
    store.write([f"air,site=jy-0012,station=aq-07 pm25=2.0 {T0}"])
    assert [row["pm25"] for row in store.select("air")] == [2.0]


def test_other_tags_or_times_are_other_points(store: PointStore) -> None:
    store.write(
        [air("aq-07", T0, pm25=1.0), air("aq-08", T0, pm25=2.0), air("aq-07", T0 + 1, pm25=3.0)]
    )
    assert store.count("air") == 3


def test_field_type_conflict_rejects_that_line_only(store: PointStore) -> None:
    store.write([air("aq-07", T0, pm25=10.0)])
    batch = [
        air("aq-07", T0 + 1, pm25=11.0),
        air("aq-07", T0 + 2, pm25=12),
        air("aq-08", T0 + 3, pm25=13.0),
    ]
    rejected = store.write(batch)
    assert [r.index for r in rejected] == [1]
    assert rejected[0].reason == (
        'field type conflict: input field "pm25" on measurement "air" is type integer,'
        " already exists as type float"
    )
    assert store.count("air") == 3
    # A conflicting point leaves no trace: not even its other, new fields.
    assert "pm10" not in store.select("air", fields=None)[1]


def test_conflict_inside_one_batch_keeps_the_first_type(store: PointStore) -> None:
    rejected = store.write([air("aq-07", T0, co=1), air("aq-07", T0 + 1, co=1.5)])
    assert [r.index for r in rejected] == [1]
    assert "already exists as type integer" in rejected[0].reason


def test_field_types_survive_reopening(tmp_path: Path) -> None:
    first = PointStore(tmp_path / "p.db")
    first.write([air("aq-07", T0, pm25=1.0)])
    first.close()
    again = PointStore(tmp_path / "p.db")
    assert len(again.write([air("aq-07", T0 + 1, pm25="high")])) == 1
    assert again.count("air") == 1
    again.close()


def test_unparsable_lines_are_rejected_with_the_line(store: PointStore) -> None:
    rejected = store.write(
        ["garbage", f"air,site= pm25=1.0 {T0}", f"air pm25=nan {T0}", air("aq-07", T0, pm25=1.0)]
    )
    assert [r.index for r in rejected] == [0, 1, 2]
    assert all(r.reason.startswith("unable to parse") for r in rejected)
    assert store.count("air") == 1


def test_select_filters_by_tags_time_fields_and_limit(store: PointStore) -> None:
    batch = [air(f"aq-{i % 3}", T0 + i, pm25=float(i), pm10=float(2 * i)) for i in range(30)]
    batch.append(air("aq-0", T0 + 100, o3=5.0))
    store.write(batch)
    rows = store.select("air", tags={"station": "aq-1"})
    assert [row["time"] for row in rows] == [T0 + i for i in range(1, 30, 3)]
    rows = store.select(
        "air", tags={"station": "aq-1", "site": "jy-0012"}, start_ns=T0 + 4, end_ns=T0 + 10
    )
    assert [row["time"] for row in rows] == [T0 + 4, T0 + 7]
    rows = store.select("air", fields=["pm10"], limit=2, newest_first=True)
    assert rows == [
        {"time": T0 + 29, "site": "jy-0012", "station": "aq-2", "interval": "rtd", "pm10": 58.0},
        {"time": T0 + 28, "site": "jy-0012", "station": "aq-1", "interval": "rtd", "pm10": 56.0},
    ]
    # Rows that have none of the requested fields are left out, as InfluxDB does.
    assert [row["time"] for row in store.select("air", fields=["o3"])] == [T0 + 100]
    assert store.select("air", tags={"station": "nowhere"}) == []
    assert store.select("waste_read") == []


def test_tag_values(store: PointStore) -> None:
    store.write(
        [air("aq-2", T0, pm25=1.0), air("aq-1", T0, pm25=1.0), air("aq-2", T0 + 1, pm25=1.0)]
    )
    assert store.tag_values("air", "station") == ["aq-1", "aq-2"]
    assert store.tag_values("air", "nope") == []


def test_awkward_strings_are_stored_and_read_back(store: PointStore) -> None:
    tags = {"site": "危废 暂存间,1号", "station": 'a=b"c\\d'}
    fields = {"note": 'he said "ok", then\\left', "value": -1.5e-7, "count": 3, "ok": True}
    assert store.write([to_line("air", tags, fields, T0)]) == []
    (row,) = store.select("air", tags={"station": 'a=b"c\\d'})
    assert row == {"time": T0, **tags, **fields}


def test_a_reader_sees_what_another_connection_wrote(tmp_path: Path) -> None:
    writer, reader = PointStore(tmp_path / "p.db"), PointStore(tmp_path / "p.db")
    reader.select("air")
    writer.write([air("aq-07", T0, pm25=1.0)])
    assert reader.count("air") == 1
    assert reader.tag_values("air", "station") == ["aq-07"]
    writer.close()
    reader.close()


def test_threads_share_one_store(store: PointStore) -> None:
    def write(worker: int) -> None:
        for k in range(20):
            store.write([air(f"w{worker}", T0 + k * 100 + i, pm25=1.0) for i in range(50)])

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.count("air") == 4 * 20 * 50


def test_a_batch_of_5000_is_fast(store: PointStore) -> None:
    import time

    batch = [
        to_line(
            "waste_read",
            {"site": "s", "reader": "g", "epc": f"E{i:024d}"},
            {"rssi": -40, "batch": f"B{i}"},
            T0 + i,
        )
        for i in range(5000)
    ]
    store.write(batch[:10])
    started = time.perf_counter()
    assert store.write(batch) == []
    assert time.perf_counter() - started < 2.0  # measured ~0.05 s; thousands of points/s at least


# -- make_writer / make_reader ---------------------------------------------------------------


def test_no_influx_url_means_the_embedded_store(tmp_path: Path) -> None:
    conf = Settings(data_dir=tmp_path)
    writer, reader = make_writer(conf), make_reader(conf)
    assert isinstance(writer, PointStore) and isinstance(reader, PointStore)
    assert writer.path == conf.points_path
    writer.close()
    reader.close()


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"influx_api": "v2"}, "needs HAZWATCH_INFLUX_TOKEN"),
        ({"influx_api": "v2", "influx_token": "t", "influx_bucket": ""}, "HAZWATCH_INFLUX_BUCKET"),
        (
            {"influx_api": "v2", "influx_token": "t", "influx_user": "u"},
            "are for HAZWATCH_INFLUX_API=v1",
        ),
        ({"influx_db": ""}, "needs HAZWATCH_INFLUX_DB"),
        ({"influx_user": "u"}, "both HAZWATCH_INFLUX_USER and HAZWATCH_INFLUX_PASSWORD"),
        ({"influx_user": "u", "influx_password": "p", "influx_token": "t"}, "not both"),
        ({"influx_url": "", "influx_token": "t"}, "HAZWATCH_INFLUX_URL is empty"),
    ],
)
def test_wrong_combinations_fail_with_one_line(
    tmp_path: Path, values: dict[str, str], needle: str
) -> None:
    conf = Settings(data_dir=tmp_path, **{"influx_url": "http://127.0.0.1:1", **values})
    with pytest.raises(ConfigError, match=needle) as caught:
        check_influx_settings(conf)
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError):
        make_writer(conf)


def test_right_combinations_build_without_a_server(tmp_path: Path) -> None:
    for values in (
        {"influx_api": "v1"},
        {"influx_api": "v1", "influx_user": "u", "influx_password": "p"},
        {"influx_api": "v2", "influx_token": "t"},
    ):
        conf = Settings(data_dir=tmp_path, influx_url="http://127.0.0.1:1", **values)
        make_writer(conf).close()
        make_reader(conf)


@pytest.mark.parametrize(
    ("url", "compressed"),
    [
        ("http://127.0.0.1:8086", False),
        ("http://localhost:8086", False),
        ("http://[::1]:8086", False),
        ("http://127.0.0.53:8086", False),
        ("https://influx.example.org", True),
        ("http://10.0.0.5:8086", True),
    ],
)
def test_v1_writer_compresses_only_over_a_network(
    tmp_path: Path, url: str, compressed: bool
) -> None:
    writer = make_writer(Settings(data_dir=tmp_path, influx_url=url, influx_api="v1"))
    assert isinstance(writer, InfluxV1Writer)
    assert (writer.gzip_min_bytes is not None) is compressed
    writer.close()


# -- line protocol round trip (base/points.py) ------------------------------------------

AWKWARD = list("危废暂存间 ,=\"'\\\n\tn")
awkward_chars = st.sampled_from(AWKWARD) | st.characters(codec="utf-8")


def _writable(text: str) -> bool:
    """What line protocol can carry in a name or tag: a trailing backslash would escape the
    separator after it, and to_line writes a newline as backslash-n (InfluxDB's limits too)."""
    return not text.endswith("\\") and "\\n" not in text


names = st.text(awkward_chars, min_size=1, max_size=12).filter(_writable)
tag_keys = names.filter(lambda s: s != "time")
field_keys = names.filter(lambda s: s != "time" and not s.startswith("_"))
field_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.text(awkward_chars, max_size=20),  # string fields carry anything
)


# parse_line reads back what the devices write: anything in tag values and string fields,
# names without quotes or backslashes here (the awkward-name cases are listed below).
plain_names = st.text(
    st.sampled_from([c for c in AWKWARD if c not in '"\\']) | st.characters(codec="utf-8"),
    min_size=1,
    max_size=12,
).filter(lambda s: s != "time" and not s.startswith("_") and '"' not in s and "\\" not in s)
tag_values = st.text(awkward_chars, min_size=1, max_size=12).filter(
    lambda s: _writable(s) and '"' not in s and "\\" not in s
)


@settings(max_examples=300, deadline=None)
@given(
    measurement=plain_names,
    tags=st.dictionaries(plain_names, tag_values, max_size=4),
    fields=st.dictionaries(plain_names, field_values, min_size=1, max_size=4),
    ts_ns=st.integers(min_value=0, max_value=2**62),
)
def test_line_protocol_round_trip(
    measurement: str, tags: dict[str, str], fields: dict[str, float | int | bool | str], ts_ns: int
) -> None:
    point = parse_line(to_line(measurement, tags, fields, ts_ns))
    assert point == Point(measurement, tags, fields, ts_ns)


@pytest.mark.parametrize(
    ("measurement", "tags", "fields"),
    [
        ("m", {}, {'"': 0.0}),  # a quote in a field key is not the start of a string
        ("m", {"site": 'a"b'}, {"x": 1.0}),  # nor in a tag value
        ("\\0", {}, {"x": 1.0}),  # a backslash that escapes nothing is kept
        ("m", {"site": "C:\\data"}, {"x": 1.0}),  # likewise in a tag value
    ],
)
def test_line_protocol_round_trip_awkward_keys_and_backslashes(
    measurement: str, tags: dict[str, str], fields: dict[str, float]
) -> None:
    """Quotes outside strings and lone backslashes come back as they were written."""
    assert parse_line(to_line(measurement, tags, fields, T0)) == Point(
        measurement, tags, fields, T0
    )


@settings(max_examples=300, deadline=None)
@given(
    measurement=names,
    tags=st.dictionaries(tag_keys, names, max_size=4),
    fields=st.dictionaries(field_keys, field_values, min_size=1, max_size=4),
)
def test_store_round_trip_of_awkward_points(
    measurement: str,
    tags: dict[str, str],
    fields: dict[str, float | int | bool | str],
) -> None:
    store = PointStore(":memory:")  # a fresh store per example, without a file to sync
    try:
        assert store.write([to_line(measurement, tags, fields, T0)]) == []
        (row,) = store.select(measurement)
        assert row == {"time": T0, **tags, **fields}
        assert store.select(measurement, tags=tags) == [row]
    finally:
        store.close()


def test_influx_retry_budget_comes_from_settings(tmp_path: Path) -> None:
    for api, extra in (("v1", {}), ("v2", {"influx_token": "t"})):
        conf = Settings(
            data_dir=tmp_path,
            influx_url="http://127.0.0.1:1",
            influx_api=api,
            influx_retry_max_s=42.0,
            **extra,
        )
        writer = make_writer(conf)
        assert writer.retry.max_s == 42.0  # type: ignore[attr-defined]
        writer.close()


def test_a_refusal_of_the_embedded_store_is_the_lines_not_an_outage(tmp_path: Path) -> None:
    """#21: an integrity error was called "store unavailable", so its batch was spooled and
    the spool replayed it for ever. Now the pipeline bisects it; a locked store is still an
    outage (spooled)."""
    import sqlite3

    from hazwatch.base.errors import StoreUnavailable
    from hazwatch.base.statedb import StateDB
    from hazwatch.devices.family import NoRegistry
    from hazwatch.ingest.deadletters import DeadLetterStore
    from hazwatch.ingest.pipeline import IngestPipeline
    from hazwatch.ingest.spool import Spool

    points = PointStore(tmp_path / "points.db")
    raw = sqlite3.connect(tmp_path / "points.db")
    raw.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON points WHEN CAST(NEW.fields AS TEXT) LIKE '%666%' "
        "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
    )
    raw.commit()
    with pytest.raises(sqlite3.IntegrityError):
        points.write([air("bad", 1, pm25=666.0)])
    pipe = IngestPipeline(
        ctx=NoRegistry(),
        writer=points,
        spool=Spool(tmp_path / "spool", 1 << 20),
        deadletters=DeadLetterStore(StateDB(f"sqlite:///{tmp_path / 'state.db'}")),
    )
    lines = [air(f"s{i}", 1_764_000_000_000_000_000 + i, pm25=float(i)) for i in range(9)]
    lines.insert(4, air("bad", 1_764_000_000_000_000_000, pm25=666.0))
    rejected = pipe._write_isolating(lines)
    assert [(r.index, "refused by a trigger" in r.reason) for r in rejected] == [(4, True)]
    assert points.count("air") == 9

    raw.execute("BEGIN EXCLUSIVE")  # another writer holds the database: an outage
    points_busy = PointStore(tmp_path / "points.db", busy_timeout_s=0.1)
    with pytest.raises(StoreUnavailable, match="locked"):
        points_busy.write([air("s0", 2, pm25=1.0)])
    raw.rollback()
    raw.close()
