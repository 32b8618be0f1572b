"""StreamProcessor of the HJ 212 link: keeps each station's edition and field-device information
(CN 3020, CN 1001) from its packets, and compares the station's own hourly (CN 2061) and daily
(CN 2031) means with hazwatch's own hour and day once those are computed.

Never compute an hour or a day here: hazwatch's come from the air part's store, as it made them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone

from hazwatch.alerts.model import AlertSink
from hazwatch.base.points import Point
from hazwatch.devices import hj212
from hazwatch.devices.decode import Decoded
from hazwatch.streams.hj212.rules import mean_mismatch, mean_tolerance
from hazwatch.streams.hj212.settings import LinkSettings
from hazwatch.streams.hj212.store import LinkStore, PendingMean

NS_PER_HOUR = 3600 * 1_000_000_000
# the pollutants whose station means are compared: the day's O3 is rated by its 8-h maximum,
# which no station sends as its daily Avg, so only its hours are compared
HOUR_POLLUTANTS = ("so2", "no2", "pm10", "co", "o3", "pm25")
DAY_POLLUTANTS = ("so2", "no2", "pm10", "co", "pm25")
# hazwatch's own mean of (site, station, "hour"|"day", period start ns, pollutant): a float, or
# None while it is not computed (the hour still open, the day not over) or not valid
OwnMean = Callable[[str, str, str, int, str], float | None]
# (site, station, pollutant) → the analyser's resolution from the registry, None when not given
Resolution = Callable[[str, str, str], float | None]
# (site, station) → the station's UTC offset (h), for the period named in a message
ZoneOf = Callable[[str, str], float]


class LinkProcessor:
    """Fed every batch: HJ 212 packets' edition and device information into the link store;
    the station's hour and day means compared on tick."""

    name = "hj212_link"

    def __init__(
        self,
        store: LinkStore,
        alerts: AlertSink,
        own_mean: OwnMean,
        *,
        settings: LinkSettings | None = None,
        resolution: Resolution | None = None,
        zone_of: ZoneOf | None = None,
    ) -> None:
        self.store = store
        self.alerts = alerts
        self.own_mean = own_mean
        self.settings = settings or LinkSettings()
        self.resolution: Resolution = resolution or (lambda site, station, pollutant: None)
        self.zone_of: ZoneOf = zone_of or (lambda site, station: 8.0)

    def process(self, batch: Sequence[Decoded], now_ns: int) -> list[Point]:
        packets = [
            (d.topic.site, d.topic.device, d.record)
            for d in batch
            if d.topic.kind == hj212.KIND and isinstance(d.record, hj212.Hj212Message)
        ]
        if not packets:
            return []
        means: list[PendingMean] = []
        with self.store.db.transaction():
            for site, station, message in packets:
                self._packets(site, station, message, now_ns)
                means.extend(self._means(site, station, message, now_ns))
            if means:
                self.store.add_means(means)
        return []

    def _packets(self, site: str, station: str, message: hj212.Hj212Message, now_ns: int) -> None:
        zone_h = self.zone_of(site, station)
        sent = message.sent_each or [None] * len(message.packets)
        for packet, sent_ns in zip(message.packets, sent, strict=False):
            if packet.cn in hj212.RESPONSE_CNS:
                continue
            at_ns = sent_ns if sent_ns is not None else now_ns
            self.store.save_link(
                site, station, packet.edition, packet.st, packet.encrypted, packet.cn, at_ns
            )
            if packet.cn == hj212.CN_DEVICE_INFO:
                try:
                    info = hj212.device_info(packet, zone_h)
                except Exception:  # a DataTime that is no time: the info is kept at receipt
                    info = hj212.DeviceInfo(None, packet.cp_dict().get("PolId", ""), {})
                if info.info:
                    data_ns = info.ts_ns if info.ts_ns is not None else at_ns
                    self.store.save_info(site, station, info.pol_id, info.info, data_ns, "3020")
            elif packet.cn == hj212.CN_HARDWARE:
                hardware = {
                    code: value
                    for code in hj212.HARDWARE_FIELDS
                    if (value := packet.cp_dict().get(f"{code}-Info")) is not None
                }
                if hardware:
                    self.store.save_info(site, station, "", hardware, at_ns, "1001")

    def _means(
        self, site: str, station: str, message: hj212.Hj212Message, now_ns: int
    ) -> list[PendingMean]:
        found: list[PendingMean] = []
        for data in message.data:
            if data.interval not in ("hour", "day"):
                continue
            names = HOUR_POLLUTANTS if data.interval == "hour" else DAY_POLLUTANTS
            for name in names:
                entry = data.factors.get(name)
                if entry is None or entry.avg is None or entry.flag not in (None, "N"):
                    continue  # only a normal value (HJ 212 flag N) is a mean to compare
                found.append(
                    PendingMean(site, station, data.interval, data.ts_ns, name, entry.avg, now_ns)
                )
        return found

    def tick(self, now_ns: int) -> list[Point]:
        """Each station mean whose hazwatch hour or day is now computed is compared; one
        waiting longer than mean_wait_h is given up (unmatched)."""
        wait_ns = int(self.settings.mean_wait_h * NS_PER_HOUR)
        for mean in self.store.pending():
            own = self.own_mean(mean.site, mean.station, mean.interval, mean.period_ns,
                                mean.pollutant)  # fmt: skip
            if own is None or not math.isfinite(own):
                if now_ns - mean.received_ns > wait_ns:
                    self.store.done(mean, "unmatched", None, now_ns)
                continue
            tolerance = mean_tolerance(
                own,
                self.resolution(mean.site, mean.station, mean.pollutant),
                self.settings.mean_tolerance_pct,
                mean.pollutant,
            )
            signal = mean_mismatch(
                mean.site,
                mean.station,
                mean.pollutant,
                mean.interval,
                mean.period_ns,
                mean.station_value,
                own,
                tolerance,
                now_ns,
                _period_text(mean, self.zone_of(mean.site, mean.station)),
            )
            self.store.done(mean, "matched" if signal is None else "mismatch", own, now_ns)
            if signal is not None:
                self.alerts.raise_alert(signal)
        self.store.prune(now_ns)
        return []


def _period_text(mean: PendingMean, zone_h: float) -> str:
    local = datetime.fromtimestamp(mean.period_ns / 1e9, tz=UTC).astimezone(
        timezone(timedelta(hours=zone_h))
    )
    return local.strftime("%Y-%m-%d %H:00" if mean.interval == "hour" else "%Y-%m-%d")
