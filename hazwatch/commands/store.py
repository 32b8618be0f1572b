"""CLI: `store prune [--dry-run]`, `store vacuum`, `store verify BATCH…`, `store size` (what the
state store keeps and for how long, hazwatch/pruning.py, docs/store.md).

Never prune without saying what went: one line per run, in the invocation's language.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from hazwatch.base.statedb import StateDB
    from hazwatch.settings import Settings

store_app = typer.Typer(
    help="The state store: prune what its settings say is old, vacuum, verify, size.",
    no_args_is_help=True,
)

LangOption = Annotated[str, typer.Option("--lang", help="zh (default) | en")]


def _settings_db() -> tuple[Settings, StateDB]:
    from hazwatch.base.statedb import StateDB
    from hazwatch.invocation import settings

    cfg = settings()
    return cfg, StateDB(cfg.state_dsn)


@store_app.command("prune")
def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go; change nothing.")
    ] = False,
    lang: LangOption = "zh",
) -> None:
    """Archive and delete closed batches' raw inputs older than [store]
    custody_raw_keep_days, dead letters older than deadletter_keep_days and alerts resolved
    more than alert_keep_days ago (the service does the same every prune_every_h)."""
    from hazwatch.ingest.deadletters import DeadLetterStore
    from hazwatch.pruning import describe, prune_store
    from hazwatch.settings import deadletter_limits

    cfg, db = _settings_db()
    try:
        letters = DeadLetterStore(db, deadletter_limits(cfg))
        pruned = prune_store(
            db, cfg.store, cfg.data_dir, letters, closed_keep_h=cfg.custody.closed_keep_h,
            dry_run=dry_run,
        )  # fmt: skip
    finally:
        db.close()
    typer.echo(describe(pruned, lang))
    for path in pruned.files:
        typer.echo(f"  {path}")


@store_app.command("vacuum")
def vacuum(lang: LangOption = "zh") -> None:
    """Rewrite the store once: SQLite takes auto_vacuum=INCREMENTAL (a file made before it
    needs this, once, while the service is stopped: it holds the write lock and needs room
    for a copy of the file); PostgreSQL VACUUM ANALYZE."""
    import time

    _, db = _settings_db()
    try:
        before = db.path.stat().st_size if db.path is not None else 0
        started = time.perf_counter()
        db.vacuum()
        took = time.perf_counter() - started
        after = db.path.stat().st_size if db.path is not None else 0
        mode = int(db.query("PRAGMA auto_vacuum")[0][0]) if db.kind == "sqlite" else -1
    finally:
        db.close()
    if db.kind != "sqlite":
        typer.echo(f"VACUUM ANALYZE: {took:.1f} s")
        return
    modes = {0: "none", 1: "full", 2: "incremental"}
    if lang == "zh":
        typer.echo(
            f"已整理：{before / 2**20:.1f} MB → {after / 2**20:.1f} MB，用时 {took:.1f} 秒，"
            f"auto_vacuum={modes.get(mode, mode)}"
        )
    else:
        typer.echo(
            f"vacuumed: {before / 2**20:.1f} MB → {after / 2**20:.1f} MB in {took:.1f} s, "
            f"auto_vacuum={modes.get(mode, mode)}"
        )


@store_app.command("verify")
def verify(
    batches: Annotated[list[str], typer.Argument(help="Batch codes whose raw inputs were pruned.")],
) -> None:
    """Check pruned batches: the record kept hashes as when pruned, the archived inputs are
    there as archived, and judging them again gives the stored verdict and event ids. Exit
    1 if one does not."""
    from hazwatch.devices.registry import RegistryContext
    from hazwatch.pruning import archive_path
    from hazwatch.streams.custody.processor import geography
    from hazwatch.streams.custody.retention import verify as verify_batch
    from hazwatch.streams.custody.rules import Tracker
    from hazwatch.streams.custody.store import CustodyStore

    cfg, db = _settings_db()
    failed = False
    try:
        store = CustodyStore(db)
        registry = RegistryContext(db)
        for batch in batches:
            found = verify_batch(
                store,
                batch,
                archive_path(cfg.store, cfg.data_dir),
                lambda: Tracker(geography(registry.current, cfg.custody)),
            )
            if found is None:
                typer.echo(f"{batch}: not pruned (its raw inputs are in the store)")
                continue
            failed |= not found.ok
            marks = {True: "ok", False: "FAILED", None: "-"}
            typer.echo(
                f"{batch}: record {marks[found.record_ok]}, archive {marks[found.archive_ok]}, "
                f"judged again {marks[found.verdict_ok]}"
                + (f"  ({found.detail})" if found.detail else "")
            )
    finally:
        db.close()
    if failed:
        raise typer.Exit(1)


@store_app.command("size")
def size() -> None:
    """Rows and bytes of each table (with its indexes), largest first."""
    _, db = _settings_db()
    try:
        rows = table_sizes(db)
    finally:
        db.close()
    total = sum(b for _, _, b in rows)
    for table, count, nbytes in rows:
        per = f"{nbytes / count:8.0f} B/row" if count else ""
        typer.echo(f"  {table:<28} {count:>12,} rows {nbytes / 2**20:10.1f} MB {per}")
    typer.echo(f"  {'total':<28} {'':>12}      {total / 2**20:10.1f} MB")


def table_sizes(db: StateDB) -> list[tuple[str, int, int]]:
    """(table, rows, bytes with its indexes) of every table of the store, largest first."""
    if db.kind == "postgres":
        names = [
            str(r[0])
            for r in db.query("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        ]
        sized = [(t, int(db.query("SELECT pg_total_relation_size(?)", (t,))[0][0])) for t in names]
    else:
        names = [
            str(r[0])
            for r in db.query(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        by_table: dict[str, int] = {}
        index_of = {
            str(r[0]): str(r[1])
            for r in db.query("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'")
        }
        for name, pgsize in db.query("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
            table = index_of.get(str(name), str(name))
            by_table[table] = by_table.get(table, 0) + int(pgsize)
        sized = [(t, by_table.get(t, 0)) for t in names]
    out = [(t, int(db.query(f"SELECT COUNT(*) FROM {t}")[0][0]), b) for t, b in sized]
    return sorted(out, key=lambda r: -r[2])


def register(app: typer.Typer) -> None:
    """Registered by hazwatch.cli."""
    app.add_typer(store_app, name="store")
