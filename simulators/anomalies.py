"""Anomalies a simulated site makes on purpose (`hazwatch simulate --faults offline,silent,
blind-read`): which device plays which, what it does, and the alerts the service must raise.

Never make an anomaly the ground truth does not name: each is an InjectedFault whose `alerts`
are the (rule, subject) pairs the service must open while it lasts and clear once it ends,
for a service whose registry is `site_registry` (every device of the fleet listed, camera N
watching reader N's storage door). The rule ids are the parts' declarations (faults.ANOMALIES).

- `offline`: one device of every family drops its connection without DISCONNECT (the broker
  publishes its retained last will), and connects again when the anomaly ends.
- `silent`: one air station and one camera stop sending but stay connected (no will): their
  silence, judged on the receiver's clock (`device_offline` by `air_silent_s`,
  `camera_silent_s`); a door reader, a scale or a terminal is silent by nature, so none is.
- `blind_read`: camera 1 is covered (its frames say so, as the edge agent measures a hand or
  a bag over the lens) while reader 1, at the storage door it watches, goes on reading.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import orjson

from hazwatch.devices.topics import build_topic
from hazwatch.simulators.faults import ANOMALIES, InjectedFault
from hazwatch.simulators.mqtt import status_topic
from hazwatch.simulators.payloads import DEVICE_PREFIX, FAMILIES, Message, device_ids
from hazwatch.streams.presence.rules import DEVICE_OFFLINE
from hazwatch.streams.presence.rules import subject as device_subject
from hazwatch.streams.video.rules import BLIND_READ, TAMPER_OCCLUSION

SILENT_FAMILIES = ("air", "camera")  # the families that report on a clock
ORDER = ("blind_read", "silent", "offline")  # who picks devices first
# A covered lens, as edge/video_metrics.py measures one: the view gone, dark but not black,
# nothing sharp and nothing moving in it.
COVERED = {"occlusion": 0.97, "scene_change": 1.0, "brightness": 22.0, "sharpness": 2.0}
BEFORE, DURING, AFTER = "before", "during", "after"
# When the anomalies end, a door's reader comes back this long after the cameras: a read in
# the instant before its camera's first frame would be a blind_read the ground truth cannot
# name (a race, not a fault).
CAMERAS_FIRST_S = 1.0


@dataclass(frozen=True, slots=True)
class Role:
    """What one device does for one anomaly, and the alerts that must follow."""

    anomaly: str
    family: str
    device: str
    alerts: tuple[tuple[str, str], ...]
    detail: str


def roles(
    anomalies: Iterable[str], families: Iterable[str], devices: int, site: str
) -> dict[tuple[str, str], Role]:
    """(family, device) → its role, each anomaly on devices of its own; ValueError when the
    fleet has too few devices for them all."""
    chosen = [a for a in ORDER if a in set(anomalies)]
    present = tuple(families)
    taken: dict[str, int] = {family: 0 for family in present}  # devices used per family
    out: dict[tuple[str, str], Role] = {}

    def take(family: str, anomaly: str) -> str:
        if family not in taken:
            raise ValueError(f"the fault {anomaly} needs the {family} family (--families)")
        taken[family] += 1
        if taken[family] > devices:
            raise ValueError(
                f"the faults {', '.join(chosen)} need {taken[family]} {family} devices, each "
                f"on its own (--devices {taken[family]})"
            )
        return device_ids(family, taken[family])[-1]

    for anomaly in chosen:
        if anomaly == "blind_read":
            camera, reader = take("camera", anomaly), take("rfid", anomaly)
            if camera[len(DEVICE_PREFIX["camera"]) :] != reader[len(DEVICE_PREFIX["rfid"]) :]:
                raise ValueError("blind_read needs camera N and reader N (site_registry)")
            out[("camera", camera)] = Role(
                anomaly,
                "camera",
                camera,
                ((TAMPER_OCCLUSION, f"{site}/{camera}"),),
                f"covered while {reader} reads at the door it watches",
            )
            out[("rfid", reader)] = Role(
                anomaly,
                "rfid",
                reader,
                ((BLIND_READ, f"{site}/{reader}"),),
                f"reads at its storage door while {camera} is covered",
            )
            continue
        targets = SILENT_FAMILIES if anomaly == "silent" else present
        for family in (f for f in FAMILIES if f in targets):
            device = take(family, anomaly)
            what = "stops sending, still connected" if anomaly == "silent" else "last will"
            out[(family, device)] = Role(
                anomaly,
                family,
                device,
                ((DEVICE_OFFLINE, device_subject(site, family, device)),),
                what,
            )
    # a camera offline or silent is blind to its door (camera N watches reader N): the reads
    # there while it lasts are blind_read too, unless that reader is offline itself
    for (family, device), role in list(out.items()):
        if family != "camera" or role.anomaly == "blind_read" or "rfid" not in present:
            continue
        reader = device_ids("rfid", int(device.rsplit("-", 1)[1]))[-1]
        if ("rfid", reader) not in out:
            out[(family, device)] = Role(
                role.anomaly,
                family,
                device,
                (*role.alerts, (BLIND_READ, f"{site}/{reader}")),
                f"{role.detail}; {reader}, at the door it watches, reads unseen",
            )
    unknown = set(anomalies) - set(ANOMALIES)
    if unknown:
        raise ValueError(f"unknown anomaly {sorted(unknown)[0]!r}")
    return out


class Device(Protocol):
    """What an anomaly needs of a fleet device (simulators/fleet.py's _Device)."""

    async def abort(self) -> None: ...

    async def connect(self) -> None: ...

    def record(self, fault: InjectedFault) -> None: ...


class DeviceAnomaly:
    """One device's anomaly over the run: nothing before `start_s`, its anomaly until `end_s`
    (seconds since the run started; a camera's, the others' CAMERAS_FIRST_S later), itself
    again after."""

    def __init__(self, role: Role, site: str, start_s: float, end_s: float) -> None:
        self.role, self.site = role, site
        self.start_s = start_s
        self.end_s = end_s + (0.0 if role.family == "camera" else CAMERAS_FIRST_S)
        self.phase = BEFORE

    async def step(self, device: Device, elapsed_s: float) -> bool:
        """Move to the phase of `elapsed_s`; True while the device must send nothing."""
        phase = BEFORE if elapsed_s < self.start_s else DURING if elapsed_s < self.end_s else AFTER
        if phase != self.phase:
            was, self.phase = self.phase, phase
            if phase != BEFORE and was == BEFORE:
                await self._begin(device)
            if phase == AFTER:
                await self._end(device)
        return self.phase == DURING and self.role.anomaly in ("offline", "silent")

    async def _begin(self, device: Device) -> None:
        role = self.role
        if role.anomaly == "offline":
            await device.abort()  # no DISCONNECT: the broker publishes the will
            body: dict[str, object] = {"online": False}
            message = Message(
                status_topic(self.site, role.family, role.device),
                role.family,
                role.device,
                "status",
                body,
                None,
            )
        else:
            kind = {"camera": "frame", "air": "reading", "rfid": "read"}.get(role.family, "status")
            topic = build_topic(self.site, role.family, role.device, kind)
            message = Message(topic, role.family, role.device, kind, {}, None, payload=b"")
        device.record(InjectedFault(role.anomaly, message, None, role.detail, role.alerts))

    async def _end(self, device: Device) -> None:
        if self.role.anomaly == "offline":
            await device.connect()  # says online (retained), then sends as before

    def shape(self, message: Message) -> Message:
        """The message the device sends now: a covered camera's frames say it is covered."""
        if self.phase != DURING or self.role.anomaly != "blind_read" or message.kind != "frame":
            return message
        body = {**message.body, **COVERED, "motion": 0.0, "objects": []}
        return Message(
            message.topic,
            message.family,
            message.device,
            message.kind,
            body,
            message.ts_ns,
            message.key,
            orjson.dumps(body),
        )


def site_registry(site: str, families: Iterable[str] = FAMILIES, devices: int = 1) -> str:
    """The registry (TOML, for `hazwatch registry load`) of a simulated site: every device of
    the fleet, readers at storage doors (odd in, even out), camera N watching reader N. Its
    storage limit is out of reach: a simulation's batches pile up without leaving."""
    chosen = set(families)
    lines = [
        "# A simulated site (hazwatch simulate): every device of its fleet.",
        "[[site]]",
        f'id = "{site}"',
        f'name = "模拟站点 {site}"',
        'role = "producer"',
        "storage_limit_kg = 1000000000",
    ]
    tables = {"rfid": "reader", "scale": "scale", "terminal": "terminal", "air": "station"}
    for family in (f for f in FAMILIES if f in chosen):
        for n, device in enumerate(device_ids(family, devices), start=1):
            if family == "camera":
                continue  # after the readers they watch
            lines += ["", f"[[{tables[family]}]]", f'id = "{device}"', f'site = "{site}"']
            if family == "rfid":
                lines.append(f'location = "{"storage_in" if n % 2 else "storage_out"}"')
            elif family == "scale":
                lines.append('location = "generation"')
    if "camera" in chosen:
        readers = device_ids("rfid", devices) if "rfid" in chosen else []
        for n, camera in enumerate(device_ids("camera", devices), start=1):
            lines += ["", "[[camera]]", f'id = "{camera}"', f'site = "{site}"']
            if n <= len(readers):
                lines.append(f'watches = ["{readers[n - 1]}"]')
    return "\n".join(lines) + "\n"
