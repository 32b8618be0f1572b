"""`hazwatch migrate influx`: points written before #19 (EPC, batch, manifest, alert subject as
tags) rewritten as the service writes them now (those as fields, docs/payloads.md, "Series").
`hazwatch migrate retention`: each measurement's retention policy (1.x) or bucket (2.x) made
or altered to its [retention] days (ingest/retention.py, docs/retention.md).

Never delete an old point that is not copied: `--drop-old` refuses until every old point of
the measurement is rewritten; without it the old series stay where they are.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from hazwatch.base.errors import ConfigError, StoreUnavailable
from hazwatch.base.points import FieldValue, Point
from hazwatch.base.statedb import StateDB
from hazwatch.devices.schema import point_time, spread
from hazwatch.devices.timeparse import format_ts
from hazwatch.ingest.influxql import quote_ident
from hazwatch.ingest.interfaces import RejectedLine
from hazwatch.ingest.retention import (
    NS_PER_DAY,
    POLICY_BY_NAME,
    bucket_name,
    days_of,
    influx_duration,
)
from hazwatch.invocation import settings

NS_PER_H = 3600 * 1_000_000_000
WRITE_LINES = 5000  # lines per write request


@dataclass(frozen=True, slots=True)
class Moved:
    """A tag of the old schema that is a field now, and what moves the point's time."""

    tag: str
    offset_by: str  # the field (or the tag itself) whose value point_time takes


# Each measurement whose old schema had an unbounded tag (issue #19), as the point builders
# write it now: devices/rfid.py, scale.py, terminal.py, streams/custody/processor.py points,
# alerts/publish.py alert_point.
MOVED: dict[str, Moved] = {
    "waste_read": Moved("epc", "epc"),
    "waste_weight": Moved("epc", "epc"),
    "waste_batch": Moved("batch", "batch"),
    "waste_manifest": Moved("manifest", "manifest"),
    "custody": Moved("batch", "event_id"),
    "alert": Moved("subject", "alert_id"),
}

MIGRATIONS = [
    "CREATE TABLE influx_migration (target {text} NOT NULL, measurement {text} NOT NULL, "
    "done_until_ns BIGINT NOT NULL, copied BIGINT NOT NULL, dropped_ns BIGINT NOT NULL, "
    "PRIMARY KEY (target, measurement))",
]

Query = Callable[[str], list[dict[str, Any]]]
Write = Callable[[Sequence[str]], list[RejectedLine]]
Drop = Callable[[str, str], None]  # (measurement, old tag): delete every series with that tag


@dataclass(frozen=True, slots=True)
class Survey:
    """What a measurement holds in the old shape, and how far its copy has come."""

    measurement: str
    points: int  # old points, at least: the count of its most common field (no scan)
    first_ns: int | None  # None: no old point
    last_ns: int | None
    done_until_ns: int  # copied up to here (exclusive); 0: not begun
    copied: int
    dropped_ns: int  # when --drop-old dropped its old series; 0: not

    @property
    def copied_all(self) -> bool:
        return self.last_ns is None or self.done_until_ns > self.last_ns


def rewrite(
    measurement: str, series: dict[str, Any], types: dict[str, str]
) -> list[tuple[tuple[tuple[str, str], ...], int, str, dict[str, FieldValue]]]:
    """One old series of a `SELECT * … GROUP BY *` as (new tags, device time, offset key,
    fields): the old tag out of the tags and into the fields. `types`: field → its InfluxDB
    type (SHOW FIELD KEYS), since JSON gives a float like -40.0 back as -40."""
    moved = MOVED[measurement]
    tags: dict[str, str] = dict(series.get("tags") or {})
    identifier = tags.pop(moved.tag, "")
    new_tags = tuple(sorted((k, v) for k, v in tags.items() if v))
    columns: list[str] = series["columns"]
    out = []
    for row in series.get("values") or []:
        fields: dict[str, FieldValue] = {}
        for name, value in zip(columns[1:], row[1:], strict=True):
            if value is None:
                continue
            kind = types.get(name)
            if kind == "float":
                fields[name] = float(value)
            elif kind == "integer":
                fields[name] = int(value)
            else:
                fields[name] = value
        if identifier:
            fields[moved.tag] = identifier
        if measurement == "waste_read" and len(fields) > 1:
            fields.pop("read", None)  # was there only because the read had no other field
        key = identifier if moved.offset_by == moved.tag else fields.get(moved.offset_by)
        out.append((new_tags, int(row[0]), str(key or identifier), fields))
    return out


def new_points(measurement: str, rows: list[tuple[Any, ...]]) -> list[Point]:
    """The rewritten rows as points, each at point_time of its key; points of one series that
    would share a time are moved apart (`spread`, in the order of their keys), so the copy
    never merges two old points, and a copy made again is the same."""
    by_series: dict[tuple[tuple[str, str], ...], list[tuple[int, str, dict[str, FieldValue]]]]
    by_series = defaultdict(list)
    for tags, ts_ns, key, fields in rows:
        by_series[tags].append((point_time(ts_ns, key), key, fields))
    points = []
    for tags, items in by_series.items():
        items.sort(key=lambda item: (item[0], item[1]))
        for (_, _, fields), at in zip(items, spread([i[0] for i in items]), strict=True):
            points.append(Point(measurement, dict(tags), fields, at))
    return points


class InfluxMigration:
    """Copies old-shape points chunk by chunk (checkpointed in the state store: an interrupted
    run resumes where it stopped, a finished one does nothing), and drops the old series when
    asked once they are copied."""

    def __init__(
        self,
        target: str,
        query: Query,
        write: Write,
        drop: Drop,
        db: StateDB,
        *,
        chunk_ns: int = 24 * NS_PER_H,
    ) -> None:
        if chunk_ns < 1_000_000:
            raise ConfigError(f"a chunk must be at least a millisecond, got {chunk_ns} ns")
        self.target = target
        self.query, self.write, self.drop, self.db = query, write, drop, db
        self.chunk_ns = chunk_ns
        db.migrate("influx_migration", MIGRATIONS)

    def _old(self, measurement: str) -> str:
        return f"{quote_ident(MOVED[measurement].tag)}::tag =~ /./"

    def survey(self, measurement: str) -> Survey:
        where = self._old(measurement)
        name = quote_ident(measurement)
        first = self.query(f"SELECT * FROM {name} WHERE {where} ORDER BY time ASC LIMIT 1")
        last = self.query(f"SELECT * FROM {name} WHERE {where} ORDER BY time DESC LIMIT 1")
        points = 0
        if first:
            counts = self.query(f"SELECT COUNT(*) FROM {name} WHERE {where}")
            if counts:
                points = max(int(v or 0) for v in counts[0]["values"][0][1:])
        row = self.db.query(
            "SELECT done_until_ns, copied, dropped_ns FROM influx_migration "
            "WHERE target = ? AND measurement = ?",
            (self.target, measurement),
        )
        done, copied, dropped = (int(v) for v in row[0]) if row else (0, 0, 0)
        return Survey(
            measurement,
            points,
            int(first[0]["values"][0][0]) if first else None,
            int(last[0]["values"][0][0]) if last else None,
            done,
            copied,
            dropped,
        )

    def describe(self, survey: Survey, drop_old: bool) -> str:
        """What a run would do with this measurement, one paragraph (the dry run's)."""
        m, tag = survey.measurement, MOVED[survey.measurement].tag
        if survey.first_ns is None or survey.last_ns is None:
            if survey.dropped_ns:
                return (
                    f"{m}: nothing in the old shape (old series dropped {_at(survey.dropped_ns)})"
                )
            return f"{m}: nothing in the old shape (no point with a {tag} tag)"
        span = f"{_at(survey.first_ns)} … {_at(survey.last_ns)}"
        head = f"{m}: at least {survey.points} points with the tag {tag}, {span}"
        if survey.copied_all:
            what = f"copied already ({survey.copied} points)"
        else:
            start = self._start(survey)
            chunks = -(-(survey.last_ns + 1 - start) // self.chunk_ns)
            resumed = f", resumed at {_at(start)}" if survey.done_until_ns else ""
            what = (
                f"would rewrite them with {tag} as a field, in {chunks} chunks of "
                f"{self.chunk_ns / NS_PER_H:g} h{resumed}"
            )
        old = (
            "then drop the old series"
            if drop_old
            else "old series kept (--drop-old drops them once copied)"
        )
        return f"{head}: {what}; {old}"

    def _start(self, survey: Survey) -> int:
        assert survey.first_ns is not None
        first = survey.first_ns - survey.first_ns % self.chunk_ns
        return max(first, survey.done_until_ns)

    def copy(self, survey: Survey, progress: Callable[[str], None] = lambda _: None) -> int:
        """Copy what is left of the measurement; returns the points written by this call."""
        if survey.copied_all or survey.last_ns is None:
            return 0
        m, name = survey.measurement, quote_ident(survey.measurement)
        types = {
            str(key): str(kind)
            for series in self.query(f"SHOW FIELD KEYS FROM {name}")
            for key, kind in series["values"]
        }
        start, copied, written = self._start(survey), survey.copied, 0
        while start <= survey.last_ns:
            end = start + self.chunk_ns
            rows = []
            within = f"{self._old(m)} AND time >= {start} AND time < {end}"
            for series in self.query(f"SELECT * FROM {name} WHERE {within} GROUP BY *"):
                rows += rewrite(m, series, types)
            counts = self.query(f"SELECT COUNT(*) FROM {name} WHERE {within}")
            expected = max((int(v or 0) for v in counts[0]["values"][0][1:]), default=0)
            if len(rows) < expected:  # the server cut its answer (its max-row-limit)
                raise ConfigError(
                    f"{m}: InfluxDB answered {len(rows)} of at least {expected} points of "
                    f"{_at(start)} … {_at(end)} (its [http] max-row-limit?): run again with a "
                    "smaller --chunk-h"
                )
            lines = [point.to_line() for point in new_points(m, rows)]
            for at in range(0, len(lines), WRITE_LINES):
                rejected = self.write(lines[at : at + WRITE_LINES])
                if rejected:
                    first = rejected[0]
                    raise ConfigError(
                        f"{m}: InfluxDB refused {len(rejected)} rewritten points of "
                        f"{_at(start)} … {_at(end)}, e.g. {first.reason}; nothing after "
                        f"{_at(start)} is marked copied, run again once it is fixed"
                    )
            copied += len(lines)
            written += len(lines)
            self._checkpoint(m, end, copied, 0)
            progress(f"{m}: copied {_at(start)} … {_at(end)} ({len(lines)} points)")
            start = end
        return written

    def drop_old(self, survey: Survey, now_ns: int) -> bool:
        """Drop the measurement's old series once all are copied; False when nothing is old."""
        m = survey.measurement
        if survey.first_ns is None:
            return False
        if not survey.copied_all:
            raise ConfigError(
                f"{m}: not every old point is copied yet (copied up to "
                f"{_at(survey.done_until_ns)}, the newest is {_at(survey.last_ns or 0)}): "
                "run `hazwatch migrate influx` without --drop-old first"
            )
        self.drop(m, MOVED[m].tag)
        self._checkpoint(m, survey.done_until_ns, survey.copied, now_ns)
        return True

    def _checkpoint(self, measurement: str, done_until_ns: int, copied: int, dropped: int) -> None:
        with self.db.transaction():
            self.db.execute(
                "DELETE FROM influx_migration WHERE target = ? AND measurement = ?",
                (self.target, measurement),
            )
            self.db.execute(
                "INSERT INTO influx_migration (target, measurement, done_until_ns, copied, "
                "dropped_ns) VALUES (?, ?, ?, ?, ?)",
                (self.target, measurement, done_until_ns, copied, dropped),
            )


def _at(ts_ns: int) -> str:
    return format_ts(ts_ns)


def v1_drop(query: Query) -> Drop:
    """InfluxDB 1.x: one `DROP SERIES … WHERE "tag"::tag =~ /./` (the `::tag`: a field of the
    same name exists once the new points are in, and a DROP may not name a field)."""

    def drop(measurement: str, tag: str) -> None:
        query(f"DROP SERIES FROM {quote_ident(measurement)} WHERE {quote_ident(tag)}::tag =~ /./")

    return drop


def v2_drop(query: Query, url: str, token: str, org: str, bucket: str) -> Drop:
    """InfluxDB 2.x: /api/v2/delete takes `=` and AND only (no regex): one delete of all time
    per value of the old tag, the values listed by InfluxQL's SHOW TAG VALUES."""

    def drop(measurement: str, tag: str) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient

        from hazwatch.ingest.influx_v2 import predicate, rfc3339_ns

        values = [
            str(value)
            for series in query(
                f"SHOW TAG VALUES FROM {quote_ident(measurement)} WITH KEY = {quote_ident(tag)}"
            )
            for _, value in series["values"]
        ]
        start, stop = rfc3339_ns(0), rfc3339_ns(2**63 - 1)
        with InfluxDBClient(url=url, token=token, org=org) as client:
            delete = client.delete_api()
            for value in values:
                delete.delete(start, stop, predicate(measurement, {tag: value}), bucket, org)

    return drop


def _measurements(chosen: list[str] | None) -> list[str]:
    names = chosen or list(MOVED)
    unknown = [n for n in names if n not in MOVED]
    if unknown:
        raise ConfigError(
            f"no old schema to move for {', '.join(unknown)} (these have one: {', '.join(MOVED)})"
        )
    return names


def influx(
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="只显示将做什么 / Print what it would do, change nothing."),
    ] = False,
    drop_old: Annotated[
        bool,
        typer.Option("--drop-old", help="复制完成后删除旧序列 / Drop the old series once copied."),
    ] = False,
    measurement: Annotated[
        list[str] | None,
        typer.Option("--measurement", "-m", help="Only these measurements (default: all six)."),
    ] = None,
    chunk_h: Annotated[
        float, typer.Option(min=0.001, max=24 * 366, help="Hours of points per read and write.")
    ] = 24.0,
) -> None:
    """把 #19 之前的旧格式数据（EPC、批次、联单、告警对象为 tag）改写为新格式。
    Rewrite points of the schema before #19 (EPC, batch, manifest, alert subject as tags) in
    the schema of docs/payloads.md; idempotent and resumable; old series kept unless --drop-old.
    """
    s = settings()
    if not s.influx_url:
        raise ConfigError(
            "HAZWATCH_INFLUX_URL is not set: the embedded point store needs no migration "
            "(it keeps its points as the service wrote them)"
        )
    from hazwatch.ingest.writers import make_reader, make_writer

    names = _measurements(measurement)
    reader = make_reader(s)
    writer = make_writer(s)
    query: Query = reader.query  # type: ignore[attr-defined]
    target = f"{s.influx_url}/{s.influx_bucket if s.influx_api == 'v2' else s.influx_db}"
    if s.influx_api == "v2":
        drop = v2_drop(query, s.influx_url, s.influx_token, s.influx_org, s.influx_bucket)
    else:
        drop = v1_drop(query)
    db = StateDB(s.state_dsn)
    try:
        migration = InfluxMigration(
            target, query, writer.write, drop, db, chunk_ns=int(chunk_h * NS_PER_H)
        )
        for name in names:
            survey = migration.survey(name)
            if dry_run:
                typer.echo(migration.describe(survey, drop_old))
                continue
            written = migration.copy(survey, typer.echo)
            survey = migration.survey(name)
            typer.echo(f"{name}: {written} points rewritten now, {survey.copied} in all")
            if drop_old and migration.drop_old(survey, time.time_ns()):
                typer.echo(f"{name}: old series dropped")
    except StoreUnavailable as exc:
        raise ConfigError(f"InfluxDB is not reachable: {exc}") from None
    finally:
        db.close()
        writer.close()
        close = getattr(reader, "close", None)
        if callable(close):
            close()


# -- retention policies and buckets -------------------------------------------------------

_DURATION = re.compile(r"(\d+)([hms])")
_UNIT_NS = {"h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9}


def duration_ns(text: str) -> int:
    """A duration as SHOW RETENTION POLICIES says it (`720h0m0s`; `0s` is INF) in ns."""
    return sum(int(n) * _UNIT_NS[unit] for n, unit in _DURATION.findall(text))


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """What SHOW RETENTION POLICIES says of the database: each policy's duration, the default."""

    durations_ns: dict[str, int]  # 0: INF
    default: str


def v1_policies(query: Query, db: str) -> PolicyInfo:
    """The database's retention policies (none, default autogen, when it does not exist)."""
    try:
        series = query(f"SHOW RETENTION POLICIES ON {quote_ident(db)}")
    except ValueError:  # database not found
        return PolicyInfo({}, "autogen")
    durations: dict[str, int] = {}
    default = "autogen"
    for one in series:
        columns = one["columns"]
        for row in one.get("values") or []:
            item = dict(zip(columns, row, strict=False))
            durations[str(item["name"])] = duration_ns(str(item.get("duration", "0s")))
            if item.get("default"):
                default = str(item["name"])
    return PolicyInfo(durations, default)


def v1_statements(db: str, have: PolicyInfo, days: dict[str, int], copy: bool) -> list[str]:
    """The InfluxQL that makes the database's policies what `days` says: CREATE for a missing
    one (then, with `copy`, its measurements' points still within it copied from the default
    policy, where hazwatch wrote them before), ALTER for one of another duration, nothing for
    one that is right (idempotent). None of them becomes the default."""
    out = [f"CREATE DATABASE {quote_ident(db)}"]
    for policy, want in days.items():
        current = have.durations_ns.get(policy)
        duration = influx_duration(want)
        name = f"{quote_ident(policy)} ON {quote_ident(db)}"
        if current is None:
            out.append(f"CREATE RETENTION POLICY {name} DURATION {duration} REPLICATION 1")
            if copy:
                out += _copies(db, policy, want, have.default)
        elif current != want * NS_PER_DAY:
            out.append(f"ALTER RETENTION POLICY {name} DURATION {duration}")
    return out


def _copies(db: str, policy: str, days: int, default: str) -> list[str]:
    """`SELECT * INTO` each of the policy's measurements from the default policy: GROUP BY *
    keeps the tags tags; old-shape series (#19, `migrate influx`) are left where they are."""
    out = []
    for measurement in POLICY_BY_NAME[policy].measurements:
        name = quote_ident(measurement)
        where = [f"time >= now() - {days}d"] if days else []
        if measurement in MOVED:
            where.append(f"{quote_ident(MOVED[measurement].tag)}::tag = ''")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        out.append(
            f"SELECT * INTO {quote_ident(db)}.{quote_ident(policy)}.{name}"
            f" FROM {quote_ident(db)}.{quote_ident(default)}.{name}{clause} GROUP BY *"
        )
    return out


@dataclass(frozen=True, slots=True)
class BucketStep:
    """One change of `hazwatch migrate retention` on InfluxDB 2.x."""

    action: str  # "create", "update" (its retention), "dbrp" (its InfluxQL mapping)
    bucket: str
    policy: str
    every_seconds: int  # 0: for ever


def v2_steps(
    bucket: str, have: dict[str, int | None], mapped: set[str], days: dict[str, int]
) -> list[BucketStep]:
    """The buckets `<bucket>_<policy>` to create or update (`have`: bucket name -> its
    retention seconds, 0 for ever; absent: no such bucket) and the DBRP mappings (database
    `<bucket>`, retention policy `<policy>`) to make for InfluxQL (`mapped`: the policies that
    have one)."""
    steps: list[BucketStep] = []
    for policy, want in days.items():
        name, every = bucket_name(bucket, policy), want * 86_400
        if name not in have:
            steps.append(BucketStep("create", name, policy, every))
        elif (have[name] or 0) != every:
            steps.append(BucketStep("update", name, policy, every))
        if policy not in mapped:
            steps.append(BucketStep("dbrp", name, policy, every))
    return steps


def v2_apply(client: Any, org: str, bucket: str, steps: list[BucketStep]) -> None:
    """Run the steps through influxdb-client (`client`: an InfluxDBClient): the buckets API,
    and the DBRP service for the mappings."""
    from influxdb_client.domain.bucket_retention_rules import BucketRetentionRules
    from influxdb_client.domain.dbrp_create import DBRPCreate
    from influxdb_client.service.dbr_ps_service import DBRPsService

    buckets = client.buckets_api()
    org_id = client.organizations_api().find_organizations(org=org)[0].id
    for step in steps:
        rules = [BucketRetentionRules(type="expire", every_seconds=step.every_seconds)]
        if step.action == "create":
            buckets.create_bucket(bucket_name=step.bucket, retention_rules=rules, org_id=org_id)
        elif step.action == "update":
            found = buckets.find_bucket_by_name(step.bucket)
            found.retention_rules = rules
            buckets.update_bucket(bucket=found)
        else:
            found = buckets.find_bucket_by_name(step.bucket)
            DBRPsService(client.api_client).post_dbrp(
                DBRPCreate(
                    org_id=org_id,
                    bucket_id=found.id,
                    database=bucket,
                    retention_policy=step.policy,
                    default=False,
                )
            )


def v2_state(client: Any, org: str, bucket: str) -> tuple[dict[str, int | None], set[str]]:
    """(bucket name -> retention seconds, the policies mapped) of the policies' buckets."""
    from influxdb_client.service.dbr_ps_service import DBRPsService

    from hazwatch.ingest.retention import POLICIES

    buckets = client.buckets_api()
    have: dict[str, int | None] = {}
    for policy in POLICIES:
        found = buckets.find_bucket_by_name(bucket_name(bucket, policy.name))
        if found is not None:
            rules = found.retention_rules or []
            have[found.name] = int(rules[0].every_seconds or 0) if rules else 0
    answer = DBRPsService(client.api_client).get_dbr_ps(org=org, db=bucket)
    mapped = {str(m.retention_policy) for m in (answer.content or [])}
    return have, mapped


def retention(
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="只显示将做什么 / Print what it would do, change nothing."),
    ] = False,
    copy: Annotated[
        bool,
        typer.Option(
            "--copy/--no-copy",
            help="新建保留策略时复制默认策略中的数据 / Copy a new policy's points from the"
            " default policy (1.x).",
        ),
    ] = True,
) -> None:
    """按 [retention] 设置创建或修改各测量的保留策略（1.x）或存储桶（2.x）。
    Create or alter each measurement's retention policy (1.x) or bucket (2.x) to the
    [retention] days; idempotent (docs/retention.md).
    """
    s = settings()
    days = days_of(s.retention)
    if not s.influx_url:
        keep = ", ".join(f"{p} {d or '∞'} d" for p, d in days.items())
        typer.echo(f"embedded point store: nothing to create; it prunes by itself ({keep})")
        return
    if s.influx_api == "v2":
        from influxdb_client.client.influxdb_client import InfluxDBClient

        with InfluxDBClient(url=s.influx_url, token=s.influx_token, org=s.influx_org) as client:
            have, mapped = v2_state(client, s.influx_org, s.influx_bucket)
            steps = v2_steps(s.influx_bucket, have, mapped, days)
            for step in steps:
                typer.echo(f"{step.action} {step.bucket} ({step.every_seconds // 86_400 or '∞'} d)")
            if not steps:
                typer.echo("every bucket is as [retention] says: nothing to do")
            if not dry_run:
                v2_apply(client, s.influx_org, s.influx_bucket, steps)
        return
    from hazwatch.ingest.influxql import InfluxQLReader

    reader = InfluxQLReader(
        s.influx_url,
        s.influx_db,
        username=s.influx_user,
        password=s.influx_password,
        token=s.influx_token,
        timeout_s=max(s.influx_timeout_s, 300.0),  # a copy may take minutes
    )
    try:
        statements = v1_statements(s.influx_db, v1_policies(reader.query, s.influx_db), days, copy)
        if len(statements) == 1:
            typer.echo("every retention policy is as [retention] says: nothing to do")
            return
        if not dry_run:
            reader.query(statements[0])  # CREATE DATABASE: idempotent
        for statement in statements[1:]:
            typer.echo(statement)
            if dry_run:
                continue
            for series in reader.query(statement):
                if statement.startswith("SELECT") and series.get("values"):
                    typer.echo(f"  copied {series['values'][0][1]} points")
        if dry_run:
            typer.echo("(dry run: nothing changed)")
    except StoreUnavailable as exc:
        raise ConfigError(f"InfluxDB is not reachable: {exc}") from None
    finally:
        reader.close()


def register(app: typer.Typer) -> None:
    migrate_app = typer.Typer(
        help="数据迁移 / Move stored data to the current schema.", no_args_is_help=True
    )
    migrate_app.command("influx")(influx)
    migrate_app.command("retention")(retention)
    app.add_typer(migrate_app, name="migrate")
