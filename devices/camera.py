"""HD cameras' frame metadata computed at the edge: `camera/{cam}/frame`.

Never carry pixels here; a frame message is numbers about a frame (and a snapshot's name).
"""

from __future__ import annotations

from typing import Annotated

import orjson
from pydantic import BaseModel, ConfigDict, Field

from hazwatch.base.points import Point
from hazwatch.devices import status
from hazwatch.devices.family import DecodeContext, Family, KindSpec
from hazwatch.devices.schema import Count, Payload, Printable, TimestampNs, clean_fields, validator
from hazwatch.devices.topics import Topic

FAMILY = "camera"
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class DetectedObject(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    label: Annotated[str, Field(min_length=1, max_length=40), Printable]
    conf: Fraction
    # x, y, w, h as fractions of the frame (hazwatch.edge.camera_agent): NaN would be stored as null
    box: Annotated[list[Fraction], Field(min_length=4, max_length=4)]


class Snapshot(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]
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
