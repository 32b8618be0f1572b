"""The HJ 212 link part's SQL on StateDB: each station's edition and link (the newest packet),
its field-device information (CN 3020, the latest per device/parameter, and CN 1001's hardware
serial), and the station's own hourly/daily means waiting to be compared with hazwatch's.

Never decide here what a mismatch is: the processor and streams/hj212/rules.py do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hazwatch.base.statedb import StateDB

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE hj212_station_link (
        site TEXT NOT NULL, station TEXT NOT NULL, edition TEXT NOT NULL, st TEXT NOT NULL,
        encrypted INTEGER NOT NULL, cn TEXT NOT NULL, sent_ns BIGINT NOT NULL,
        PRIMARY KEY (site, station));
    CREATE TABLE hj212_device_info (
        site TEXT NOT NULL, station TEXT NOT NULL, pol_id TEXT NOT NULL, info_id TEXT NOT NULL,
        value TEXT NOT NULL, data_ns BIGINT NOT NULL, cn TEXT NOT NULL,
        PRIMARY KEY (site, station, pol_id, info_id));
    CREATE TABLE hj212_station_mean (
        site TEXT NOT NULL, station TEXT NOT NULL, span TEXT NOT NULL,
        period_ns BIGINT NOT NULL, pollutant TEXT NOT NULL,
        station_value DOUBLE PRECISION NOT NULL, received_ns BIGINT NOT NULL,
        state TEXT NOT NULL, own_value DOUBLE PRECISION, done_ns BIGINT,
        PRIMARY KEY (site, station, span, period_ns, pollutant));
    CREATE INDEX hj212_station_mean_state ON hj212_station_mean (state)
    """,
)
INFO_VALUE_CHARS = 1000  # of one information value kept (a log line may be long)
KEEP_DONE_NS = 7 * 86_400 * 1_000_000_000  # compared means are kept this long, for a person


@dataclass(frozen=True, slots=True)
class PendingMean:
    site: str
    station: str
    interval: str  # "hour" or "day"
    period_ns: int
    pollutant: str
    station_value: float
    received_ns: int


class LinkStore:
    """Reads and writes the HJ 212 link part's state."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
        db.migrate("hj212_link", MIGRATIONS)

    # written by the processor
    def save_link(
        self, site: str, station: str, edition: str, st: str, encrypted: bool, cn: str, sent_ns: int
    ) -> None:
        """The station's newest packet (by its QN time): its edition, ST, whether encrypted."""
        self.db.execute(
            "INSERT INTO hj212_station_link (site, station, edition, st, encrypted, cn, sent_ns) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, station) DO UPDATE SET "
            "edition = excluded.edition, st = excluded.st, encrypted = excluded.encrypted, "
            "cn = excluded.cn, sent_ns = excluded.sent_ns "
            "WHERE excluded.sent_ns >= hj212_station_link.sent_ns",
            (site, station, edition, st, int(encrypted), cn, sent_ns),
        )

    def save_info(
        self,
        site: str,
        station: str,
        pol_id: str,
        info: dict[str, str],
        data_ns: int,
        cn: str,
    ) -> None:
        """The newest value of each information item of a device (an older one never wins)."""
        self.db.executemany(
            "INSERT INTO hj212_device_info (site, station, pol_id, info_id, value, data_ns, cn) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, station, pol_id, info_id) DO UPDATE "
            "SET value = excluded.value, data_ns = excluded.data_ns, cn = excluded.cn "
            "WHERE excluded.data_ns >= hj212_device_info.data_ns",
            [
                (site, station, pol_id, info_id, value[:INFO_VALUE_CHARS], data_ns, cn)
                for info_id, value in sorted(info.items())
            ],
        )

    def add_means(self, rows: list[PendingMean]) -> None:
        """A station's own means to compare; one sent again (RF=1) replaces a pending one."""
        self.db.executemany(
            "INSERT INTO hj212_station_mean (site, station, span, period_ns, pollutant, "
            "station_value, received_ns, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending') "
            "ON CONFLICT (site, station, span, period_ns, pollutant) DO UPDATE SET "
            "station_value = excluded.station_value, received_ns = excluded.received_ns "
            "WHERE hj212_station_mean.state = 'pending'",
            [
                (
                    r.site,
                    r.station,
                    r.interval,
                    r.period_ns,
                    r.pollutant,
                    r.station_value,
                    r.received_ns,
                )
                for r in rows
            ],
        )

    def pending(self) -> list[PendingMean]:
        rows = self.db.query(
            "SELECT site, station, span, period_ns, pollutant, station_value, received_ns "
            "FROM hj212_station_mean WHERE state = 'pending' ORDER BY site, station, period_ns"
        )
        return [
            PendingMean(
                str(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4]), float(r[5]), int(r[6])
            )
            for r in rows
        ]

    def done(self, mean: PendingMean, state: str, own: float | None, now_ns: int) -> None:
        """The comparison of `mean` is over: `matched`, `mismatch` or `unmatched` (no valid
        value of hazwatch's came within the wait)."""
        self.db.execute(
            "UPDATE hj212_station_mean SET state = ?, own_value = ?, done_ns = ? WHERE site = ? "
            "AND station = ? AND span = ? AND period_ns = ? AND pollutant = ? "
            "AND state = 'pending'",
            (state, own, now_ns, mean.site, mean.station, mean.interval, mean.period_ns,
             mean.pollutant),
        )  # fmt: skip

    def prune(self, now_ns: int) -> None:
        self.db.execute(
            "DELETE FROM hj212_station_mean WHERE state <> 'pending' AND done_ns < ?",
            (now_ns - KEEP_DONE_NS,),
        )

    # read back (API, CLI)
    def links(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(site, station) → its edition ("HJ 212-2017"/"HJ 212-2025"), ST, encrypted, the CN
        and QN time of its newest packet, and its device information by PolId."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for r in self.db.query(
            "SELECT site, station, edition, st, encrypted, cn, sent_ns FROM hj212_station_link"
        ):
            found[(str(r[0]), str(r[1]))] = {
                "edition": edition_name(str(r[2])),
                "st": str(r[3]),
                "encrypted": bool(r[4]),
                "last_cn": str(r[5]),
                "last_packet_ns": int(r[6]),
                "device_info": {},
            }
        for r in self.db.query(
            "SELECT site, station, pol_id, info_id, value, data_ns, cn FROM hj212_device_info "
            "ORDER BY site, station, pol_id, info_id"
        ):
            entry = found.setdefault((str(r[0]), str(r[1])), {"edition": None, "device_info": {}})
            entry["device_info"].setdefault(str(r[2]), {})[str(r[3])] = {
                "value": str(r[4]),
                "time_ns": int(r[5]),
                "cn": str(r[6]),
            }
        return found

    def means(self, site: str, station: str, limit: int = 50) -> list[dict[str, Any]]:
        """The station's own means and how they compared, newest period first."""
        rows = self.db.query(
            "SELECT span, period_ns, pollutant, station_value, own_value, state FROM "
            "hj212_station_mean WHERE site = ? AND station = ? ORDER BY period_ns DESC, pollutant "
            "LIMIT ?",
            (site, station, limit),
        )
        return [
            {
                "interval": str(r[0]),
                "period_ns": int(r[1]),
                "pollutant": str(r[2]),
                "station_value": float(r[3]),
                "hazwatch_value": None if r[4] is None else float(r[4]),
                "state": str(r[5]),
            }
            for r in rows
        ]


def edition_name(edition: str) -> str:
    """ "2025" → "HJ 212-2025" (2005: "HJ/T 212-2005")."""
    return "HJ/T 212-2005" if edition == "2005" else f"HJ 212-{edition}"
