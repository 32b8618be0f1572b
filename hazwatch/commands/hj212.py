"""CLI: `hj212 rotate-key MN` (a new SM4 key for a station, sent by the gateway with CN 1014) and
`hj212 show [MN]` (stations' HJ 212 edition, field-device information, keys, own means).

Never print a key: what is shown of a rotation is its state, QN and times.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from hazwatch.base.errors import ConfigError
from hazwatch.base.statedb import StateDB

hj212_app = typer.Typer(
    help="HJ 212 stations: new SM4 keys (CN 1014), editions and field-device information.",
    no_args_is_help=True,
)
NS_PER_S = 1_000_000_000
STATES_ZH = {
    "issued": "已下发，等待站点确认",
    "active": "已生效",
    "failed": "失败（旧密钥仍有效）",
    "superseded": "已被更新的密钥取代",
}


def _db() -> StateDB:
    from hazwatch.invocation import settings

    return StateDB(settings().state_dsn)


def _station_of(db: StateDB, mn: str) -> tuple[Any, tuple[str, str]]:
    from hazwatch.devices import registry

    _, current = registry.load_stored(db)
    for key, station in current.stations.items():
        if station.mn == mn:
            return current, key
    raise ConfigError(f"no station of the stored registry has MN {mn!r} (hazwatch registry show)")


def _china(ns: int | None) -> str:
    from hazwatch.devices.hj212 import format_datatime

    if ns is None:
        return "—"
    text = format_datatime(ns, 8.0)
    return f"{text[:4]}-{text[4:6]}-{text[6:8]} {text[8:10]}:{text[10:12]}:{text[12:]}"


@hj212_app.command("rotate-key")
def rotate_key(
    mn: Annotated[str, typer.Argument(help="The station's MN (the registry's).")],
    wait: Annotated[
        float,
        typer.Option("--wait", help="Seconds to wait for the station's acknowledgement (0: none)."),
    ] = 0.0,
) -> None:
    """Issue a new SM4 key to a station: the gateway sends it (CN 1014, encrypted with the key
    in force) while the station is connected, and it is in force once the station answers
    9012 ExeRtn=1. The key is kept in the state store's secrets, never shown."""
    from hazwatch.devices.station_secrets import KeyRotations

    db = _db()
    current, (site, station) = _station_of(db, mn)
    secret = current.secrets.get((site, station))
    rotations = KeyRotations(db)
    issue = rotations.issue(
        site,
        station,
        secret.sm4_key if secret is not None else None,
        time.time_ns(),
        current.stations[(site, station)].zone_h,
    )
    typer.echo(
        f"站点 {site}/{station}（MN {mn}）：新密钥已生成，QN {issue.qn}；网关将在站点下次"
        "上报时以 CN 1014 下发（用现行密钥加密），站点回复 9012 ExeRtn=1 后生效"
    )
    deadline = time.monotonic() + wait
    while wait > 0:
        state = next(r for r in rotations.state_of(site, station) if r["qn"] == issue.qn)
        if state["state"] != "issued" or time.monotonic() > deadline:
            typer.echo(
                f"状态：{STATES_ZH.get(str(state['state']), state['state'])} {state['note']}"
            )
            if state["state"] != "active":
                raise typer.Exit(1)
            return
        time.sleep(0.5)


@hj212_app.command("show")
def show(
    mn: Annotated[str | None, typer.Argument(help="One station's MN (else every station).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
) -> None:
    """Each station's HJ 212 edition (as its newest packet's Flag says), its field-device
    information (CN 3020, and the hardware serial of CN 1001), its key rotations and how its
    own hourly/daily means compared with hazwatch's."""
    from hazwatch.devices import registry
    from hazwatch.devices.station_secrets import KeyRotations
    from hazwatch.streams.hj212.store import LinkStore

    db = _db()
    _, current = registry.load_stored(db)
    links = LinkStore(db).links()
    rotations = KeyRotations(db)
    keys = set(current.stations) | set(links)
    if mn is not None:
        keys = {k for k in keys if (s := current.stations.get(k)) is not None and s.mn == mn}
        if not keys:
            raise ConfigError(f"no station of the stored registry has MN {mn!r}")
    store = LinkStore(db)
    docs = []
    for site, station in sorted(keys):
        entry = current.stations.get((site, station))
        link = links.get((site, station), {})
        docs.append(
            {
                "site": site,
                "station": station,
                "mn": entry.mn if entry is not None else None,
                "serial": entry.serial if entry is not None else None,
                "registered_edition": entry.edition if entry is not None else None,
                "edition": link.get("edition"),
                "encrypted": link.get("encrypted"),
                "last_packet": _china(link.get("last_packet_ns")),
                "device_info": link.get("device_info", {}),
                "keys": rotations.state_of(site, station)[:5],
                "means": store.means(site, station, 10),
            }
        )
    if json_out:
        typer.echo(json.dumps(docs, ensure_ascii=False))
        return
    for doc in docs:
        typer.echo(
            f"{doc['site']}/{doc['station']}  MN {doc['mn'] or '—'}  序列号 {doc['serial'] or '—'}"
            f"  标准 {doc['edition'] or '—'}（登记 {doc['registered_edition'] or '—'}）"
            f"  加密 {'是' if doc['encrypted'] else '否'}  最近报文 {doc['last_packet']}"
        )
        for pol, items in doc["device_info"].items():
            shown = ", ".join(f"{code}={item['value']}" for code, item in sorted(items.items()))
            typer.echo(f"  现场机信息 {pol or '数采仪'}: {shown}")
        for key in doc["keys"]:
            typer.echo(
                f"  密钥 QN {key['qn']}: {STATES_ZH.get(str(key['state']), key['state'])}"
                f"（下发 {key['sends']} 次，{_china(key['done_ns'] or key['issued_ns'])}）"
                f" {key['note']}"
            )
        for mean in doc["means"]:
            own = mean["hazwatch_value"]
            typer.echo(
                f"  {'小时' if mean['interval'] == 'hour' else '日'} {_china(mean['period_ns'])}"
                f" {mean['pollutant']}: 站点 {mean['station_value']:g} / hazwatch "
                f"{'—' if own is None else f'{own:g}'} ({mean['state']})"
            )


def register(app: typer.Typer) -> None:
    """Registered by hazwatch.cli."""
    app.add_typer(hj212_app, name="hj212")
