"""device_offline's detail in Chinese and English, from the alert's fields (family, device,
reason, last seen, the family's limit): for messages, the alert API and the CLI.

Never judge here whether a device is offline: the rule did (streams/presence/rules.py).
"""

from __future__ import annotations

from hazwatch.alerts.model import Alert
from hazwatch.alerts.text import Detail, Formatter, family_word, seconds_en, seconds_zh
from hazwatch.streams.presence.rules import ANNOUNCED, DEVICE_OFFLINE, LAST_WILL, SILENCE
from hazwatch.streams.presence.settings import NS_PER_S


def offline_detail(alert: Alert) -> Detail | None:
    """Why the device is offline: its will, its own word, or its silence past its limit."""
    details = alert.details
    family, device, reason = str(details["family"]), str(details["device"]), details["reason"]
    zh_what = f"{family_word(family, 'zh')} {device}"
    en_what = f"{family_word(family, 'en')} {device} at {alert.site}"
    if reason == LAST_WILL:
        return Detail(
            f"{zh_what} 离线：连接已断开（MQTT 遗嘱）",
            f"{en_what} is offline: its connection dropped (MQTT last will)",
        )
    if reason == ANNOUNCED:
        return Detail(
            f"{zh_what} 离线：离开前自行上报了离线状态",
            f"{en_what} is offline: it said so before leaving",
        )
    if reason != SILENCE or details.get("limit_s") is None:
        return None
    limit_s = float(str(details["limit_s"]))
    last_ns = details.get("last_seen_ns")
    if last_ns:
        ago_s = (alert.opened_ns - int(str(last_ns))) / NS_PER_S
        heard_zh, heard_en = (
            f"最后一次收到在 {seconds_zh(ago_s)}前",
            f"last heard {seconds_en(ago_s)} ago",
        )
    else:
        heard_zh, heard_en = (
            "hazwatch 开始监听以来从未收到",
            "not heard since hazwatch started listening",
        )
    return Detail(
        f"{zh_what} 离线：超过 {seconds_zh(limit_s)}未收到其任何消息（{heard_zh}）",
        f"{en_what} is offline: nothing from it for over {seconds_en(limit_s)} ({heard_en})",
    )


DETAILS: dict[str, Formatter] = {DEVICE_OFFLINE: offline_detail}
