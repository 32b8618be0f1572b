"""The hazardous-waste management ledger (管理台账, HJ 1259-2022) made from custody events.

Never invent a quantity: every row and total comes from stored custody events and batches.
"""

from __future__ import annotations

import csv
import io
import json
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter
from typing import Any

from hazwatch.devices.timeparse import CHINA
from hazwatch.streams.custody.rules import (
    DISPATCHED,
    DISPOSED,
    GENERATED,
    RECEIVED,
    STAGE_INDEX,
    STORED,
    CustodyEvent,
)
from hazwatch.streams.custody.store import LedgerEvent, ledger_chains

KINDS = {
    "generation": (GENERATED, "产生"),
    "storage_in": (STORED, "入库"),
    "storage_out": (DISPATCHED, "出库"),
    "transfer": (DISPATCHED, "委外利用处置(转移)"),
    "disposal": (DISPOSED, "自行利用处置"),
}
FORMATS = ("csv", "xlsx", "json")
# The days a ledger may start or end on: far inside what datetime and 64-bit ns can hold.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2100, 12, 31)
_NS_PER_S = 1_000_000_000
_NS_PER_DAY = 86_400 * _NS_PER_S
_CHINA_OFFSET_NS = 8 * 3600 * 1_000_000_000
_EPOCH_DAY = date(1970, 1, 1).toordinal()

# (key, 中文, English)
COLUMNS = [
    ("record_type", "记录类型", "record type"),
    ("record_id", "记录编号", "record id"),
    ("batch", "批次编码", "batch code"),
    ("time", "时间", "time"),
    ("waste_name", "废物名称", "waste name"),
    ("list_name", "国家危险废物名录名称", "National List name"),
    ("category", "废物类别", "category"),
    ("waste_code", "废物代码", "waste code"),
    ("quantity", "数量", "quantity"),
    ("unit", "单位", "unit"),
    ("container_code", "容器编码", "container code"),
    ("container_type", "容器类型", "container type"),
    ("container_count", "容器数量", "container count"),
    ("facility", "设施编码", "facility code"),
    ("handler", "经办人", "handler"),
    ("destination", "去向", "destination"),
    ("previous_record", "前一记录编号", "previous record id"),
    ("manifest", "转移联单编号", "transfer manifest no."),
    ("verdict", "追溯结论", "custody verdict"),
]
SUMMARY_COLUMNS = [
    ("month", "月份", "month"),
    ("waste_code", "废物代码", "waste code"),
    ("generated_kg", "产生量(kg)", "generated (kg)"),
    ("stored_month_end_kg", "月末贮存量(kg)", "in storage at month end (kg)"),
    ("transferred_kg", "转移量(kg)", "transferred out (kg)"),
    ("disposed_kg", "利用处置量(kg)", "disposed (kg)"),
]
# A few National List names (《国家危险废物名录》2021); others are left to the unit's own name.
LIST_NAMES = {
    "900-249-08": "其他生产、销售、使用过程中产生的废矿物油及沾染矿物油的废弃包装物",
    "900-041-49": "含有或沾染毒性、感染性危险废物的废弃包装物、容器、过滤吸附介质",
    "900-039-49": "烟气、VOCs治理过程产生的废活性炭",
    "336-064-17": "金属和塑料表面酸(碱)洗、除油、除锈、洗涤、磷化、出光、化抛工艺产生的废腐蚀液等",
    "900-404-06": "工业生产中作为清洗剂、萃取剂、溶剂或反应介质使用后废弃的其他列入名录的有机溶剂",
}


@dataclass(frozen=True, slots=True)
class Ledger:
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]


def _local(ts_ns: int) -> datetime:
    """China time of a ns instant, in integers: `ts_ns / 1e9` is a float that rounds the
    last nanosecond of 2026-12-31 up to 2027-01-01 (the month a ledger asked to end on the
    31st grew a 2027-01 row from)."""
    seconds, ns = divmod(ts_ns, _NS_PER_S)
    return datetime.fromtimestamp(seconds, CHINA).replace(microsecond=ns // 1000)


def _month_end_ns(month: str) -> int:
    """The first ns of the next month, China time (the month's end, excluded)."""
    year, mon = (int(x) for x in month.split("-"))
    nxt = date(year + (mon == 12), mon % 12 + 1, 1)
    return (nxt.toordinal() - _EPOCH_DAY) * _NS_PER_DAY - _CHINA_OFFSET_NS


def build_ledger(
    site: str,
    start_ns: int,
    end_ns: int,
    events: Iterable[CustodyEvent],
    batches: dict[str, dict[str, Any]],
    manifests: dict[str, dict[str, Any]],
    kind: str | None = None,
) -> Ledger:
    """Rows for `site` in [start, end) (all kinds, or one) and the monthly summary per code.

    A row is a stage transition of one container (its custody event: one per stage it
    entered, docs/payloads.md). The summary has one row per month of [start, end) and
    waste code seen, and each amount is the sum of distinct containers' weights: a container
    dispatched twice in a month (a return) is transferred once.
    """
    by_batch: dict[str, list[LedgerEvent]] = defaultdict(list)
    for e in events:
        by_batch[e.batch].append(
            (e.event_id, e.batch, e.epc, e.stage, e.ts_ns, e.site, e.device, e.net_kg, e.manifest)
        )
    return _build(
        site, start_ns, end_ns, ledger_chains(by_batch.values()), batches, manifests, kind
    )


def _build(
    site: str,
    start_ns: int,
    end_ns: int,
    chains: Iterable[list[LedgerEvent]],
    batches: dict[str, dict[str, Any]],
    manifests: dict[str, dict[str, Any]],
    kind: str | None,
) -> Ledger:
    """build_ledger of each batch's events sorted (CustodyStore.ledger_chains): one pass over
    each chain, an event at `site` in [start, end) making the row of each kind of its stage
    (storage out, then transfer: the order the sort by time, batch and record id keeps)."""
    rows: list[dict[str, Any]] = []
    # (month, code) → column → batch → kg: a container counts once per month and column
    summary: dict[tuple[str, str], dict[str, dict[str, float]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    column = {GENERATED: "generated_kg", DISPATCHED: "transferred_kg", DISPOSED: "disposed_kg"}
    # stage → its summary column (or None) and its kinds asked for, in KINDS' order
    plan: dict[str, tuple[str | None, list[tuple[str, str]]]] = {
        stage: (column.get(stage), []) for stage in STAGE_INDEX
    }
    for k in [kind] if kind else list(KINDS):
        stage, label = KINDS[k]
        plan[stage][1].append((k, label))
    months = _months(start_ns, end_ns)
    month_ends = [(month, _month_end_ns(month)) for month in months]
    ends = [end for _, end in month_ends]
    codes: set[str] = set()
    for chain in chains:
        batch_id = chain[0][1]
        batch = batches.get(batch_id, {})
        info = batch.get("info", {})
        gen_kg = next((e[7] for e in chain if e[3] == GENERATED), None) or 0.0
        recv_kg = next((e[7] for e in chain if e[3] == RECEIVED and e[7]), None)
        code = batch.get("waste_code", "")
        verdict = batch.get("verdict", "")
        # the row's values that are the batch's, said once per batch
        waste_name = info.get("waste_name") or ""
        list_name = LIST_NAMES.get(code, "")
        category = info.get("category") or f"HW{code[-2:]}"
        container_type = info.get("container_type") or ""
        handler = info.get("handler") or ""
        of_batch = batch.get("manifest")
        previous = ""
        for event_id, _, epc, stage, ts_ns, at, device, _, event_manifest in chain:
            before, previous = previous, event_id
            if at != site or not start_ns <= ts_ns < end_ns:
                continue
            name, made = plan[stage]
            if name is not None:
                kg = recv_kg or gen_kg if stage == DISPOSED else gen_kg
                summary[(months[bisect_right(ends, ts_ns)], code)][name][batch_id] = kg
                codes.add(code)
            if not made:
                continue
            manifest = event_manifest or of_batch
            time = datetime.fromtimestamp(ts_ns // _NS_PER_S, CHINA).isoformat(timespec="seconds")
            quantity = round(recv_kg if stage == DISPOSED and recv_kg else gen_kg, 3)
            for k, label in made:
                if k == "transfer" and not manifest:
                    continue
                destination = ""
                if stage == DISPATCHED and manifest:
                    destination = manifests.get(manifest, {}).get("receiver", "")
                elif stage == STORED:
                    destination = "贮存"
                rows.append(
                    {
                        "record_type": label,
                        "record_id": event_id,
                        "batch": batch_id,
                        "time": time,
                        "waste_name": waste_name,
                        "list_name": list_name,
                        "category": category,
                        "waste_code": code,
                        "quantity": quantity,
                        "unit": "kg",
                        "container_code": epc,
                        "container_type": container_type,
                        "container_count": 1,
                        "facility": device,
                        "handler": handler,
                        "destination": destination,
                        "previous_record": before,
                        "manifest": manifest or "",
                        "verdict": verdict,
                    }
                )
        for in_ns, out_ns in _stays(chain, site):
            for month, month_end in month_ends:
                if in_ns < month_end and (out_ns is None or out_ns >= month_end):
                    summary[(month, code)]["stored_month_end_kg"][batch_id] = gen_kg
                    codes.add(code)
    rows.sort(key=_ROW_ORDER)
    summary_rows = [
        {
            "month": month,
            "waste_code": code,
            **{
                name: round(sum(summary[(month, code)][name].values()), 3)
                for name, _, _ in SUMMARY_COLUMNS[2:]
            },
        }
        for month in months
        for code in sorted(codes)
    ]
    return Ledger(rows, summary_rows)


_ROW_ORDER = itemgetter("time", "batch", "record_id")


def _stays(chain: Sequence[LedgerEvent], site: str) -> list[tuple[int, int | None]]:
    """(in, out or None) of each of a container's stays in storage at `site`: from a STORED
    event to the next event of a later stage (a return stores it again). None from its
    disposal on: a tag seen in storage then holds no waste."""
    stays: list[tuple[int, int | None]] = []
    start: int | None = None
    for event in chain:
        stage, ts_ns = event[3], event[4]
        if start is not None and STAGE_INDEX[stage] > STAGE_INDEX[STORED]:
            stays.append((start, ts_ns))
            start = None
        if stage == DISPOSED:
            return stays
        if start is None and stage == STORED and event[5] == site:
            start = ts_ns
    if start is not None:
        stays.append((start, None))
    return stays


def _months(start_ns: int, end_ns: int) -> list[str]:
    first, last = _local(start_ns), _local(end_ns - 1)
    months, year, mon = [], first.year, first.month
    while (year, mon) <= (last.year, last.month):
        months.append(f"{year:04d}-{mon:02d}")
        year, mon = year + (mon == 12), mon % 12 + 1
    return months


# Values a person reads in a language (CSV and XLSX; JSON keeps them as built): a record's
# type and where it went are the ledger's own Chinese words, a verdict custody's English one
RECORD_TYPES_EN = {
    "产生": "generation",
    "入库": "storage in",
    "出库": "storage out",
    "委外利用处置(转移)": "transfer for utilisation/disposal",
    "自行利用处置": "own utilisation/disposal",
}
DESTINATIONS_EN = {"贮存": "storage"}
VERDICTS_ZH = {"open": "进行中", "complete": "已完成", "broken": "断链"}


def _shown(key: str, value: Any, lang: str) -> Any:
    """A record's value as the ledger in `lang` says it."""
    if lang == "zh" and key == "verdict":
        return VERDICTS_ZH.get(value, value)
    if lang == "en" and key == "record_type":
        return RECORD_TYPES_EN.get(value, value)
    if lang == "en" and key == "destination":
        return DESTINATIONS_EN.get(value, value)
    return value


def headings(columns: list[tuple[str, str, str]], lang: str) -> list[str]:
    return [zh if lang == "zh" else en for _, zh, en in columns]


def render(ledger: Ledger, fmt: str, lang: str = "zh") -> bytes:
    """The ledger as CSV (rows, then a blank line and the monthly summary), XLSX or JSON."""
    if fmt == "json":
        return json.dumps(
            {"records": ledger.rows, "monthly": ledger.summary}, ensure_ascii=False, indent=1
        ).encode()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(headings(COLUMNS, lang))
        for row in ledger.rows:
            writer.writerow([_shown(k, row[k], lang) for k, _, _ in COLUMNS])
        writer.writerow([])
        writer.writerow(headings(SUMMARY_COLUMNS, lang))
        for row in ledger.summary:
            writer.writerow([row[k] for k, _, _ in SUMMARY_COLUMNS])
        return ("\ufeff" + out.getvalue()).encode()  # BOM: Excel opens UTF-8 CSV correctly
    if fmt == "xlsx":
        from openpyxl import Workbook

        book = Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.title = "台账" if lang == "zh" else "ledger"
        sheet.append(headings(COLUMNS, lang))
        for row in ledger.rows:
            sheet.append([_cell(_shown(k, row[k], lang)) for k, _, _ in COLUMNS])
        monthly = book.create_sheet("月度汇总" if lang == "zh" else "monthly")
        monthly.append(headings(SUMMARY_COLUMNS, lang))
        for row in ledger.summary:
            monthly.append([row[k] for k, _, _ in SUMMARY_COLUMNS])
        buffer = io.BytesIO()
        book.save(buffer)
        return buffer.getvalue()
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def _cell(value: Any) -> Any:
    """A value openpyxl can store: XML 1.0 has no control characters (a device may send them)."""
    if isinstance(value, str):
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
    return value


def parse_date_ns(text: str, *, end: bool = False) -> int:
    """A YYYY-MM-DD date (China time) as ns; `end` gives the start of the next day.

    ValueError, with a reason a person can read, for text that is not a calendar day in
    [FIRST_DAY, LAST_DAY]; the arithmetic is on integers, so no day can overflow it.
    """
    try:
        day = datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise ValueError(f"{text!r} is not a calendar day YYYY-MM-DD") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"{text} is outside {FIRST_DAY}…{LAST_DAY}")
    days = day.toordinal() - _EPOCH_DAY + (1 if end else 0)
    return days * _NS_PER_DAY - _CHINA_OFFSET_NS


def ledger_for(store: Any, site: str, start_ns: int, end_ns: int, kind: str | None) -> Ledger:
    """Build the ledger from a CustodyStore: only the batches that can count in [start, end)
    are read (CustodyStore.ledger_inputs), so a month does not read the whole history."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    chains, batches, manifests = store.ledger_inputs(start_ns, end_ns)
    return _build(site, start_ns, end_ns, chains, batches, manifests, kind)
