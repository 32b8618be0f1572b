"""The management ledger from a scenario: rows and monthly totals equal what the simulator did."""

from __future__ import annotations

import csv
import io
import json
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from openpyxl import load_workbook

from hazwatch.alerts.model import ListSink
from hazwatch.base.statedb import StateDB
from hazwatch.devices.decode import decode
from hazwatch.devices.registry import RegistryContext, load_file
from hazwatch.simulators.custody import ONE_READ, Plan, plan
from hazwatch.streams.custody import ledger
from hazwatch.streams.custody.processor import CustodyProcessor
from hazwatch.streams.custody.rules import Tracker
from hazwatch.streams.custody.store import CustodyStore
from tests.samples import custody_limits

REGISTRY = load_file(Path(__file__).parents[1] / "data" / "registry.toml")
CHINA = timezone(timedelta(hours=8))


def month(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, CHINA).strftime("%Y-%m")


def day(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, CHINA).strftime("%Y-%m-%d")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[Plan, CustodyStore]:
    the_plan = plan(60, 10, seed=3, reads=ONE_READ)
    db = StateDB(f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'state.db'}")
    tracker = Tracker()
    ctx = RegistryContext(None, REGISTRY, batches=tracker.epc_batch)
    store = CustodyStore(db)
    processor = CustodyProcessor(tracker, ctx, ListSink(), store, limits=custody_limits())
    now = time.time_ns()
    decoded = [decode(m.topic, m.payload, ctx, now_ns=now) for m in the_plan.messages]
    for start in range(0, len(decoded), 50):
        processor.process(decoded[start : start + 50], now)
    return the_plan, store


def expected(
    the_plan: Plan, site: str
) -> tuple[dict[str, int], dict[tuple[str, str], dict[str, float]]]:
    """Row counts per kind and monthly totals, straight from the simulator's ground truth."""
    counts: dict[str, int] = defaultdict(int)
    totals: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    first = datetime.fromtimestamp((the_plan.start_ns - 86_400 * 10**9) / 1e9, CHINA)
    months, y, mo = [], first.year, first.month
    while f"{y:04d}-{mo:02d}" <= month(time.time_ns()):
        months.append(f"{y:04d}-{mo:02d}")
        y, mo = y + (mo == 12), mo % 12 + 1
    for truth in the_plan.batches.values():
        code = truth.waste_code
        for stage, ts, at, _ in truth.stages:
            if at != site:
                continue
            key = (month(ts), code)
            if stage == "GENERATED":
                counts["产生"] += 1
                totals[key]["generated_kg"] += truth.gen_kg
            elif stage == "STORED":
                counts["入库"] += 1
            elif stage == "DISPATCHED":
                counts["出库"] += 1
                counts["委外利用处置(转移)"] += 1
                totals[key]["transferred_kg"] += truth.gen_kg
            elif stage == "DISPOSED":
                counts["自行利用处置"] += 1
                totals[key]["disposed_kg"] += truth.recv_kg
        stored = [s for s in truth.stages if s[0] == "STORED"]
        if stored and stored[0][2] == site:
            in_ns = stored[0][1]
            later = [
                s[1] for s in truth.stages if s[1] > in_ns and s[0] not in ("GENERATED", "STORED")
            ]
            out_ns = later[0] if later else None
            for m in months:
                y, mo = (int(x) for x in m.split("-"))
                end = int(datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=CHINA).timestamp() * 1e9)
                if in_ns < end and (out_ns is None or out_ns >= end):
                    totals[(m, code)]["stored_month_end_kg"] += truth.gen_kg
    return dict(counts), {k: dict(v) for k, v in totals.items()}


def _nonzero(
    totals: dict[tuple[str, str], dict[str, float]],
) -> dict[tuple[str, str], dict[str, float]]:
    return {
        k: {f: round(v, 3) for f, v in fields.items() if round(v, 3)}
        for k, fields in totals.items()
        if any(round(v, 3) for v in fields.values())
    }


@pytest.mark.parametrize("site", ["jy-0012", "dp-01"])
def test_csv_rows_and_monthly_totals_equal_the_scenario(
    scenario: tuple[Plan, CustodyStore], site: str
) -> None:
    the_plan, store = scenario
    start = ledger.parse_date_ns(day(the_plan.start_ns - 86_400 * 10**9))
    end = ledger.parse_date_ns(day(time.time_ns()), end=True)
    built = ledger.ledger_for(store, site, start, end, None)
    text = ledger.render(built, "csv").decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(text)))
    blank = lines.index([])
    head, records, summary_head, summary = (
        lines[0],
        lines[1:blank],
        lines[blank + 1],
        lines[blank + 2 :],
    )
    assert head[:4] == ["记录类型", "记录编号", "批次编码", "时间"]
    assert summary_head[0] == "月份"
    assert {r[-1] for r in records} <= {"进行中", "已完成", "断链"}  # the verdict in Chinese
    want_counts, want_totals = expected(the_plan, site)
    got_counts: dict[str, int] = defaultdict(int)
    for row in records:
        got_counts[row[0]] += 1
    assert dict(got_counts) == want_counts
    got_totals = {
        (r[0], r[1]): {
            "generated_kg": float(r[2]),
            "stored_month_end_kg": float(r[3]),
            "transferred_kg": float(r[4]),
            "disposed_kg": float(r[5]),
        }
        for r in summary
    }
    assert _nonzero(got_totals) == _nonzero(want_totals)


def test_records_link_up_and_carry_verdict_and_manifest(
    scenario: tuple[Plan, CustodyStore],
) -> None:
    the_plan, store = scenario
    start = ledger.parse_date_ns(day(the_plan.start_ns - 86_400 * 10**9))
    end = ledger.parse_date_ns(day(time.time_ns()), end=True)
    rows = ledger.ledger_for(store, "jy-0012", start, end, None).rows
    for row in rows:
        truth = the_plan.batches[row["batch"]]
        assert row["verdict"] == ("broken" if truth.violation else "complete")
        if row["record_type"] == "出库":
            assert row["manifest"] == truth.manifest and row["destination"] == "dp-01"
            chain = [e.event_id for e in store.events(row["batch"])]
            assert chain.index(row["previous_record"]) == chain.index(row["record_id"]) - 1
        if row["record_type"] == "产生":
            assert row["previous_record"] == "" and row["quantity"] == truth.gen_kg
            assert row["category"] == truth.category and row["waste_code"] == truth.waste_code


def test_kind_filter_english_xlsx_and_json(
    scenario: tuple[Plan, CustodyStore], tmp_path: Path
) -> None:
    the_plan, store = scenario
    start = ledger.parse_date_ns(day(the_plan.start_ns - 86_400 * 10**9))
    end = ledger.parse_date_ns(day(time.time_ns()), end=True)
    built = ledger.ledger_for(store, "jy-0012", start, end, "generation")
    assert len(built.rows) == len(the_plan.batches)
    assert {r["record_type"] for r in built.rows} == {"产生"}
    path = tmp_path / "l.xlsx"
    path.write_bytes(ledger.render(built, "xlsx", "en"))
    book = load_workbook(path)
    sheet = book["ledger"]
    assert next(sheet.iter_rows(values_only=True))[:3] == ("record type", "record id", "batch code")
    assert sheet.max_row == len(built.rows) + 1
    assert {row[0] for row in sheet.iter_rows(min_row=2, values_only=True)} == {"generation"}
    doc = json.loads(ledger.render(built, "json"))
    assert len(doc["records"]) == len(built.rows) and doc["monthly"]
    with pytest.raises(ValueError, match="kind must be one of"):
        ledger.ledger_for(store, "jy-0012", start, end, "burial")
