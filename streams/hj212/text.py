"""The HJ 212 link's rules' details in Chinese and English (hj212_auth_refused,
station_mean_mismatch), from the alert's fields: for messages, the alert API and the CLI. A
refusals alert stored before its window was a field (`window_min`) has it read from its
message.

Never judge a station or a peer here: the rules did (streams/hj212/rules.py).
"""

from __future__ import annotations

import re

from hazwatch.alerts.model import Alert
from hazwatch.alerts.text import Detail, Formatter, number
from hazwatch.streams.hj212.rules import AUTH_REFUSED, MEAN_MISMATCH

# why the gateway refused a packet (ingest/hj212_gateway.py, the dead letter's reason)
REASON_WORDS = {
    "unknown_mn": ("MN 未登记", "MN not registered"),
    "auth_refused": ("访问密码错误", "wrong access password"),
    "unknown_serial": ("数采仪序列号未登记", "data logger serial not registered"),
    "decrypt_failed": ("无法解密", "could not be decrypted"),
}
# the refusals alert's message (rules.py RefusedPeers), read for alerts stored without
# `window_min` only
_MINUTES = re.compile(r"在 (?P<minutes>[0-9.]+) 分钟内")
POLLUTANTS = {"pm25": "PM2.5", "pm10": "PM10", "so2": "SO₂", "no2": "NO₂", "co": "CO", "o3": "O₃"}


def refused_detail(alert: Alert) -> Detail | None:
    d = alert.details
    reason = str(d["last_reason"])
    zh_reason, en_reason = REASON_WORDS.get(reason, (reason, reason))
    minutes: str | None = None
    if d.get("window_min") is not None:
        minutes = number(d["window_min"])
    elif (found := _MINUTES.search(alert.message)) is not None:
        minutes = found["minutes"]
    within_zh = f"在 {minutes} 分钟内 " if minutes is not None else ""
    within_en = f" within {minutes} min" if minutes is not None else ""
    return Detail(
        f"地址 {d['peer']} {within_zh}{d['refusals']} 次发送被拒的 HJ 212 报文"
        f"（最近一次：MN {d['last_mn']}，{zh_reason}）",
        f"{d['peer']} sent {d['refusals']} refused HJ 212 packets{within_en} "
        f"(the last: MN {d['last_mn']}, {en_reason})",
    )


def mismatch_detail(alert: Alert) -> Detail | None:
    d = alert.details
    hourly = d["interval"] == "hour"
    pollutant = POLLUTANTS.get(str(d["pollutant"]), str(d["pollutant"]))
    station_value, own = float(str(d["station_value"])), float(str(d["hazwatch_value"]))
    difference, tolerance = float(str(d["difference"])), float(str(d["tolerance"]))
    unit = str(d["unit"])
    return Detail(
        f"站点 {d['station']} {d['period']} 的 {pollutant} {'小时值' if hourly else '日均值'}："
        f"站点上报 {station_value:g}，hazwatch 计算 {own:g} {unit}，相差 {difference:+.4g}"
        f"（容差 {tolerance:.4g}）",
        f"station {d['station']}, {d['period']}: its own {pollutant} "
        f"{'hourly value' if hourly else 'daily mean'} {station_value:g}, hazwatch's {own:g} "
        f"{unit}, {difference:+.4g} apart (tolerance {tolerance:.4g})",
    )


DETAILS: dict[str, Formatter] = {AUTH_REFUSED: refused_detail, MEAN_MISMATCH: mismatch_detail}
