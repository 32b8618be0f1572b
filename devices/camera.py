"""HD cameras' frame metadata computed at the edge: `camera/{cam}/frame`.

Never carry pixels here; a frame message is numbers about a frame (and a snapshot's name).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hazwatch.base.errors import shown
from hazwatch.base.points import Point
from hazwatch.devices import status
from hazwatch.devices.family import DecodeContext, Family, KindSpec
from hazwatch.devices.schema import Count, Payload, Printable, TimestampNs, clean_fields, validator
from hazwatch.devices.timeparse import NS_PER_S
from hazwatch.devices.topics import Topic

FAMILY = "camera"
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]

# An evidence snapshot's name: the agent keeps and uploads the JPEG under it, a frame message
# cites it, the service stores and serves the file under it. One file name in one folder:
# ASCII letters, digits, "_", "-" and single dots (never first), ending ".jpg".
SNAPSHOT_NAME_MAX = 128
_SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*\.jpg")


def check_snapshot_name(name: str) -> str:
    """`name` when it is a snapshot name, else ValueError ("bad snapshot name …")."""
    if len(name) > SNAPSHOT_NAME_MAX or ".." in name or not _SNAPSHOT_NAME.fullmatch(name):
        raise ValueError(f"bad snapshot name {shown(name, SNAPSHOT_NAME_MAX * 4 + 2)}")
    return name


def snapshot_name(site: str, camera: str, ts_ns: int, seq: int, event: str) -> str:
    """The name of the snapshot `camera` at `site` keeps for `event` in frame message `seq`.

    Topic ids may hold dots: a run of them becomes one, and a name cut to its last 128
    characters loses a leading dot, so the name passes check_snapshot_name (ValueError when the
    ids hold characters no snapshot name can).
    """
    when = datetime.fromtimestamp(ts_ns / NS_PER_S, tz=UTC)
    stamp = f"{when:%Y%m%dT%H%M%S}{when.microsecond // 1000:03d}Z"
    name = re.sub(r"\.{2,}", ".", f"{site}_{camera}_{stamp}_{seq}_{event}.jpg")
    return check_snapshot_name(name[-SNAPSHOT_NAME_MAX:].lstrip("."))


class DetectedObject(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    label: Annotated[str, Field(min_length=1, max_length=40), Printable]
    conf: Fraction
    # x, y, w, h as fractions of the frame (hazwatch.edge.camera_agent): NaN would be stored as null
    box: Annotated[list[Fraction], Field(min_length=4, max_length=4)]


class Snapshot(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    name: Annotated[
        str,
        Field(min_length=1, max_length=SNAPSHOT_NAME_MAX),
        AfterValidator(check_snapshot_name),
    ]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Frame(Payload):
    ts: TimestampNs
    seq: Count
    width: Annotated[int, Field(ge=1, le=16384)] | None = None
    height: Annotated[int, Field(ge=1, le=16384)] | None = None
    brightness: Annotated[float, Field(ge=0, le=255, allow_inf_nan=False)] | None = None
    sharpness: Annotated[float, Field(ge=0, le=1e7, allow_inf_nan=False)] | None = None
    motion: Fraction | None = None
    occlusion: Fraction | None = None
    scene_change: Fraction | None = None
    objects: Annotated[list[DetectedObject], Field(max_length=256)] | None = None
    snapshot: Snapshot | None = None
    event: Annotated[str, Field(max_length=40), Printable] | None = None


_validate = validator(Frame)


def parse(raw: bytes, topic: Topic, ctx: DecodeContext) -> Frame:
    return _validate(raw)


def to_points(frame: Frame, topic: Topic, ctx: DecodeContext) -> list[Point]:
    objects = (
        orjson.dumps([o.model_dump() for o in frame.objects]).decode()
        if frame.objects is not None
        else None
    )
    fields = clean_fields(
        {
            "seq": frame.seq,
            "width": frame.width,
            "height": frame.height,
            "brightness": frame.brightness,
            "sharpness": frame.sharpness,
            "motion": frame.motion,
            "occlusion": frame.occlusion,
            "scene_change": frame.scene_change,
            "objects": objects,
            "snapshot": frame.snapshot.name if frame.snapshot else None,
            "snapshot_sha256": frame.snapshot.sha256 if frame.snapshot else None,
            "event": frame.event,
        }
    )
    tags = {"site": topic.site, "camera": topic.device}
    return [Point("video_frame", tags, fields, frame.ts)]


FAMILY_SPEC = Family(
    FAMILY,
    {"frame": KindSpec("frame", parse, to_points, "frame metadata"), "status": status.SPEC},
    "HD camera (edge agent)",
)
