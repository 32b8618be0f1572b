"""CLI: `rfid-llrp` (the LLRP connector for one reader that speaks only LLRP, edge/llrp.py).

Never let the connector die on a dropped reader or broker: it reconnects; SIGTERM/Ctrl-C stop
the inventory, hand the broker what it can within --drain-s, and keep the rest on disk.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from hazwatch import extras


def rfid_llrp(
    host: Annotated[
        str,
        typer.Option("--host", help="The reader's LLRP interface: HOST or HOST:PORT (5084)."),
    ],
    reader: Annotated[
        str, typer.Option("--reader", help="The reader's device id (topic, registry).")
    ],
    site: Annotated[str, typer.Option("--site", help="Site id (topic site).")],
    antenna: Annotated[
        list[int] | None,
        typer.Option("--antenna", help="Antenna to read (repeat); default every antenna."),
    ] = None,
    session: Annotated[int, typer.Option("--session", min=0, max=3, help="Gen2 session.")] = 1,
    mqtt_url: Annotated[str | None, typer.Option("--mqtt-url", help="Broker URL.")] = None,
    outbox: Annotated[
        Path | None,
        typer.Option("--outbox", help="SQLite file of reads the broker has not acknowledged."),
    ] = None,
    outbox_max: Annotated[
        int, typer.Option("--outbox-max", min=1, help="Reads the outbox holds before refusing.")
    ] = 1_000_000,
    drain_s: Annotated[
        float, typer.Option("--drain-s", min=0, help="At stop, seconds to flush the outbox.")
    ] = 10.0,
    seconds: Annotated[
        float | None, typer.Option("--seconds", min=0, help="Stop after this long.")
    ] = None,
) -> None:
    """Read one LLRP reader (EPCglobal LLRP 1.0.1) and publish every tag read to
    hw/{site}/rfid/{reader}/read over MQTT QoS 1, as hazwatch's own read message."""
    extras.require("llrp", "hazwatch rfid-llrp")
    from hazwatch.edge.llrp import LlrpProgram, LlrpSetup, parse_reader_address
    from hazwatch.invocation import settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = settings()
    reader_host, reader_port = parse_reader_address(host)
    setup = LlrpSetup(
        reader_host=reader_host,
        reader_port=reader_port,
        site=site,
        reader=reader,
        mqtt_url=mqtt_url or cfg.mqtt_url,
        outbox=outbox or cfg.data_dir / "llrp" / f"{site}_{reader}.sqlite",
        antennas=tuple(antenna or ()),
        session=session,
        outbox_max_reads=outbox_max,
        drain_s=drain_s,
        seconds=seconds,
    )
    program = LlrpProgram(setup)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: program.stop())
    stats = program.run()
    notes = stats.notes
    typer.echo(
        f"rfid-llrp {site}/{reader}: {stats.reports} reports, {stats.reads} reads taken, "
        f"{stats.published} published, {stats.pending} left in {setup.outbox}, "
        f"{stats.refused} refused (outbox full), {stats.reader_connects} inventories, "
        f"{stats.reader_drops} reader drops, {stats.broker_connects} broker connections"
        + (
            f", {notes.aggregated} aggregated reports, {notes.no_utc_time} without UTC time"
            if notes is not None and (notes.aggregated or notes.no_utc_time)
            else ""
        ),
        err=True,
    )


def register(app: typer.Typer) -> None:
    """Registered by hazwatch.cli."""
    app.command("rfid-llrp")(rfid_llrp)
