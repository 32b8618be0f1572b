"""The video rules' details in Chinese and English (frame gaps, tamper, door motion with no
read, blind reads), from the alert's fields: for messages, the alert API and the CLI. A door
motion alert stored before its window was a field (`window_s`) has it read from its message.

Never judge a camera here: the rules did (streams/video/rules.py).
"""

from __future__ import annotations

import re

from hazwatch.alerts.model import Alert
from hazwatch.alerts.text import Detail, Formatter, number
from hazwatch.streams.video.rules import (
    BLIND_READ,
    BLIND_WORDS,
    CAMERA_TOO_DARK,
    DOOR_MOTION_NO_READ,
    FRAME_GAP,
    TAMPER_DEFOCUS,
    TAMPER_OCCLUSION,
    TAMPER_SCENE_CHANGE,
)

# what each tamper rule saw, and the frame metric its value is (devices/camera.py)
TAMPER_WORDS = {
    TAMPER_OCCLUSION: ("镜头被遮挡", "lens covered", "遮挡比例", "cover"),
    CAMERA_TOO_DARK: ("画面过暗，无法看清现场", "too dark to see", "亮度", "brightness"),
    TAMPER_SCENE_CHANGE: (
        "画面与原场景相比变化过大（摄像机可能被转动或移动）",
        "view changed (camera moved?)",
        "变化程度",
        "change",
    ),
    TAMPER_DEFOCUS: ("画面失焦", "out of focus", "清晰度", "sharpness"),
}
DOOR_WORDS = {"storage_in": ("贮存入口", "storage in"), "storage_out": ("贮存出口", "storage out")}
# door motion's message (rules.py), read for alerts stored without `window_s` only
_WINDOW = re.compile(r"within (?P<s>[0-9.]+) s$")


def _camera(alert: Alert) -> str:
    return str(alert.details.get("camera") or alert.subject.split("/")[-1])


def tamper_detail(alert: Alert) -> Detail | None:
    zh, en, metric_zh, metric_en = TAMPER_WORDS[alert.rule]
    camera, value = _camera(alert), alert.details.get("value")
    shown_zh = f"（{metric_zh} {number(value)}）" if value is not None else ""
    shown_en = f" ({metric_en} {number(value)})" if value is not None else ""
    return Detail(
        f"摄像机 {camera}：{zh}{shown_zh}", f"camera {camera} at {alert.site}: {en}{shown_en}"
    )


def gap_detail(alert: Alert) -> Detail | None:
    d = alert.details
    camera, missing = _camera(alert), int(str(d["missing"]))
    seqs = f"{d['from_seq']} → {d['to_seq']}"
    return Detail(
        f"摄像机 {camera} 缺失 {missing} 条帧消息（帧序号 {seqs}），共享存储中也没有",
        f"camera {camera}: {missing} frame message(s) missing (seq {seqs})",
    )


def door_detail(alert: Alert) -> Detail | None:
    camera = _camera(alert)
    readers = [str(r) for r in alert.details["readers"]]  # type: ignore[attr-defined]
    seconds: str | None = None
    if alert.details.get("window_s") is not None:
        seconds = f"{float(str(alert.details['window_s'])):.0f}"
    elif (found := _WINDOW.search(alert.message)) is not None:
        seconds = found["s"]
    window_zh = f"前后 {seconds} 秒内" if seconds is not None else ""
    window_en = f" within {seconds} s" if seconds is not None else ""
    return Detail(
        f"贮存间门口摄像机 {camera} 检测到移动，{window_zh}读写器 {'、'.join(readers)} "
        "没有任何标签读取",
        f"movement at the storage door seen by {camera} at {alert.site} with no RFID read at "
        f"{', '.join(readers)}{window_en}",
    )


def blind_detail(alert: Alert) -> Detail | None:
    d = alert.details
    reader, epc = str(d["reader"]), str(d.get("epc") or "")
    location = str(d["location"])
    cameras: dict[str, object] = dict(d["cameras"])  # type: ignore[call-overload]
    why = [(c, BLIND_WORDS.get(str(w), (str(w), str(w)))) for c, w in cameras.items() if w]
    door_zh, door_en = DOOR_WORDS.get(location, (location, location))
    return Detail(
        f"{door_zh}读写器 {reader} 读到{'标签 ' + epc if epc else '标签'}，"
        f"但监视该门的摄像机都看不到：{'、'.join(f'{c} {w[0]}' for c, w in why)}",
        f"{door_en} read of {epc or 'a tag'} at {reader} ({alert.site}) that no camera could "
        f"see: {', '.join(f'{c} {w[1]}' for c, w in why)}",
    )


DETAILS: dict[str, Formatter] = {
    FRAME_GAP: gap_detail,
    TAMPER_OCCLUSION: tamper_detail,
    TAMPER_DEFOCUS: tamper_detail,
    TAMPER_SCENE_CHANGE: tamper_detail,
    CAMERA_TOO_DARK: tamper_detail,
    DOOR_MOTION_NO_READ: door_detail,
    BLIND_READ: blind_detail,
}
