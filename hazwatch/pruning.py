"""What the state store keeps, and for how long (issue #19, item 5): the `[store]` settings and
the one prune run that `hazwatch store prune` and the service's timer both make.

Never delete a record the ledger or a trace reads: custody's records (batches, events,
diagnostics, manifests) stay; what goes is closed batches' raw inputs (archived first,
streams/custody/retention.py), dead letters by age, and alerts resolved longer ago than the
ledger's five years (with their history). docs/store.md gives the figures and the reasons.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from hazwatch.base.statedb import StateDB

if TYPE_CHECKING:
    from hazwatch.alerts.store import AlertStore
    from hazwatch.ingest.deadletters import DeadLetterStore
    from hazwatch.streams.custody.retention import PruneReport
    from hazwatch.streams.custody.store import CustodyStore

NS_PER_DAY = 86_400 * 1_000_000_000
DAYS_MAX = 36_500


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """The settings file's [store] table (env HAZWATCH_STORE__<NAME>)."""

    # how often the service prunes (its periodic thread; also at start): once a day keeps
    # each run short (a day of closed batches) and the timer off the hot hours' mind
    prune_every_h: Annotated[float, Field(ge=0.1, le=24 * 30)] = 24.0
    # A closed batch's raw inputs (its tag's passes and weighings) are only what a late
    # input's load-back judges it again from. The latest an input can come: an MQTT session
    # keeps a device's messages for mqtt_session_expiry_s (7 days by default), a reader's or
    # scale's own buffer for its offline time. 90 days is a dozen times that, and a quarter:
    # the monthly ledger of the month a batch closed is reported and checked well inside it.
    # Never less than [custody] closed_keep_h (the prune waits for the longer).
    custody_raw_keep_days: Annotated[float, Field(ge=1, le=DAYS_MAX)] = 90.0
    # archive what goes (gzip JSON lines under archive_dir, "" = {data_dir}/archive): without
    # it only the digests stay, and `hazwatch store verify` checks the record alone
    custody_archive: bool = True
    archive_dir: str = ""
    # Dead letters are for finding a device's fault; the caps (deadletter_max_rows, _mb)
    # bound them in room, this in time: a quarter, as custody's raw inputs
    deadletter_keep_days: Annotated[float, Field(ge=1, le=DAYS_MAX)] = 90.0
    # HJ 1259-2022 asks the management ledger be kept "原则上应存档5年以上" (at least five
    # years): an alert is the ledger's account of a broken chain, so a resolved one stays
    # five years (of 366 days) after it was resolved; open and acknowledged ones stay.
    alert_keep_days: Annotated[float, Field(ge=366, le=DAYS_MAX)] = 5 * 366.0
    # SQLite: give the pages a prune freed back to the file system (PRAGMA
    # incremental_vacuum; a file made before auto_vacuum needs `hazwatch store vacuum` once)
    vacuum_after_prune: bool = True


def archive_path(store: StoreSettings, data_dir: Path) -> Path:
    """Where archived raw inputs go: archive_dir, or {data_dir}/archive."""
    return Path(store.archive_dir) if store.archive_dir else data_dir / "archive"


@dataclass(slots=True)
class Pruned:
    """What one prune run did (or, dry, would do)."""

    dry_run: bool
    custody: PruneReport
    deadletters: int = 0
    alerts: int = 0
    freed_bytes: int = 0  # SQLite: the file's free pages given back by the vacuum
    took_s: float = 0.0
    files: list[str] = field(default_factory=list)


def prune_store(
    db: StateDB,
    cfg: StoreSettings,
    data_dir: Path,
    deadletters: DeadLetterStore,
    *,
    closed_keep_h: float = 24.0,
    now_ns: int | None = None,
    dry_run: bool = False,
    custody: CustodyStore | None = None,
    alerts: AlertStore | None = None,
) -> Pruned:
    """One prune run over the state store, as the [store] settings `cfg` say (custody's raw
    inputs never before [custody] `closed_keep_h`)."""
    from hazwatch.alerts.store import AlertStore
    from hazwatch.streams.custody.retention import prune_raw
    from hazwatch.streams.custody.store import CustodyStore

    started = time.perf_counter()
    now = time.time_ns() if now_ns is None else now_ns
    keep_days = max(cfg.custody_raw_keep_days, closed_keep_h / 24)
    custody = custody or CustodyStore(db)
    report = prune_raw(
        custody,
        now - int(keep_days * NS_PER_DAY),
        now,
        archive_path(cfg, data_dir) if cfg.custody_archive else None,
        dry_run=dry_run,
    )
    letters = deadletters.prune_older(
        now - int(cfg.deadletter_keep_days * NS_PER_DAY), dry_run=dry_run
    )
    alerts = alerts or AlertStore(db)
    gone = alerts.prune_resolved(now - int(cfg.alert_keep_days * NS_PER_DAY), dry_run=dry_run)
    freed = 0
    if cfg.vacuum_after_prune and not dry_run:
        before = db.free_bytes()
        db.incremental_vacuum()
        freed = before - db.free_bytes()
    return Pruned(
        dry_run, report, letters, gone, freed, time.perf_counter() - started, report.files
    )


def describe(pruned: Pruned, lang: str = "zh") -> str:
    """One line of what a prune run did, for the log and the CLI."""
    c = pruned.custody
    if lang == "zh":
        head = "将清理（试运行）" if pruned.dry_run else "已清理"
        return (
            f"{head}：已结束批次 {c.batches} 个的原始输入（{c.inputs} 条称重/读取、"
            f"{c.passes} 个读取过程，暂缓 {c.skipped} 个），死信 {pruned.deadletters} 条，"
            f"已解决报警 {pruned.alerts} 条；释放 {pruned.freed_bytes / 2**20:.1f} MB，"
            f"用时 {pruned.took_s:.1f} 秒"
        )
    head = "would prune (dry run)" if pruned.dry_run else "pruned"
    return (
        f"{head}: raw inputs of {c.batches} closed batches ({c.inputs} weighings/reads, "
        f"{c.passes} passes; {c.skipped} held back), {pruned.deadletters} dead letters, "
        f"{pruned.alerts} resolved alerts; {pruned.freed_bytes / 2**20:.1f} MB freed in "
        f"{pruned.took_s:.1f} s"
    )
