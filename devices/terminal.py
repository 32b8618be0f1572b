"""Site terminals: a producer registers a batch (`terminal/{id}/batch`) or a transfer manifest.

Never accept a waste code that is not of the National Hazardous Waste List's form (e.g. 900-249-08).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import orjson
from pydantic import Field, field_validator, model_validator

from hazwatch.base.points import Point
from hazwatch.devices import status
from hazwatch.devices.family import DecodeContext, Family, KindSpec
from hazwatch.devices.schema import (
    Epc,
    Payload,
    Printable,
    TimestampNs,
    clean_fields,
    point_time,
    validator,
)
from hazwatch.devices.topics import Topic

FAMILY = "terminal"
# 《国家危险废物名录》: an 8-digit code xxx-xxx-xx whose last two digits are the category HWxx.
# ASCII digits only: str \d also takes ٩ and ９, and $ a trailing newline (fullmatch it).
WASTE_CODE = re.compile(r"[0-9]{3}-[0-9]{3}-([0-9]{2})")
WASTE_CATEGORY = re.compile(r"HW([0-9]{2})")
Ident = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Text = Annotated[str, Field(max_length=200), Printable]


class BatchRegistration(Payload):
    ts: TimestampNs
    epc: Epc
    batch: Ident
    waste_code: str
    waste_name: Text | None = None
    waste_category: str | None = None
    form: Literal["solid", "liquid", "sludge", "gas", "semi-solid"] | None = None
    hazard: Annotated[list[Literal["T", "C", "I", "R", "In"]], Field(max_length=5)] | None = None
    producer: Text | None = None
    label_id: Annotated[str, Field(min_length=37, max_length=37), Printable] | None = None
    container_type: Text | None = None
    handler: Text | None = None

    @field_validator("waste_code")
    @classmethod
    def _code(cls, value: str) -> str:
        code = value.strip()
        if code.upper().startswith("HW") and " " in code:  # "HW08 900-249-08"
            code = code.split()[-1]
        if not WASTE_CODE.fullmatch(code):
            raise ValueError("waste_code must be a National List code like 900-249-08")
        return code

    @model_validator(mode="after")
    def _category_matches(self) -> BatchRegistration:
        match = WASTE_CODE.fullmatch(self.waste_code)
        assert match is not None
        if self.waste_category is not None:
            cat = WASTE_CATEGORY.fullmatch(self.waste_category.strip().upper())
            if cat is None:
                raise ValueError("waste_category must look like HW08")
            if cat.group(1) != match.group(1):
                raise ValueError(
                    f"waste_category {self.waste_category} does not match waste_code "
                    f"{self.waste_code} (its last two digits are the category)"
                )
        return self

    @property
    def category(self) -> str:
        match = WASTE_CODE.fullmatch(self.waste_code)
        assert match is not None
        return f"HW{match.group(1)}"


class Manifest(Payload):
    ts: TimestampNs
    manifest: Ident
    batches: Annotated[list[Ident], Field(min_length=1, max_length=1000)]
    receiver: Ident
    producer: Ident | None = None
    transporter: Ident | None = None
    vehicle: Annotated[str, Field(max_length=32), Printable] | None = None
    planned_kg: Annotated[float, Field(ge=0, le=1_000_000)] | None = None
    transit_limit_h: Annotated[float, Field(gt=0, le=24 * 30)] | None = None

    @field_validator("batches")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("batches lists a batch twice")
        return value


_validate_batch = validator(BatchRegistration)
_validate_manifest = validator(Manifest)


def parse_batch(raw: bytes, topic: Topic, ctx: DecodeContext) -> BatchRegistration:
    return _validate_batch(raw)


def parse_manifest(raw: bytes, topic: Topic, ctx: DecodeContext) -> Manifest:
    return _validate_manifest(raw)


def batch_points(reg: BatchRegistration, topic: Topic, ctx: DecodeContext) -> list[Point]:
    fields = clean_fields(
        {
            "batch": reg.batch,
            "epc": reg.epc,
            "waste_name": reg.waste_name,
            "waste_category": reg.category,
            "form": reg.form,
            "hazard": ",".join(reg.hazard) if reg.hazard else None,
            "producer": reg.producer,
            "label_id": reg.label_id,
            "container_type": reg.container_type,
            "handler": reg.handler,
        }
    )
    # the batch is a field (a series per terminal and waste code), its time moved by it
    tags = {"site": topic.site, "terminal": topic.device, "waste_code": reg.waste_code}
    return [Point("waste_batch", tags, fields, point_time(reg.ts, reg.batch))]


def manifest_points(man: Manifest, topic: Topic, ctx: DecodeContext) -> list[Point]:
    fields = clean_fields(
        {
            "manifest": man.manifest,
            "batches": orjson.dumps(man.batches).decode(),
            "batch_count": len(man.batches),
            "receiver": man.receiver,
            "producer": man.producer,
            "transporter": man.transporter,
            "vehicle": man.vehicle,
            "planned_kg": man.planned_kg,
            "transit_limit_h": man.transit_limit_h,
        }
    )
    tags = {"site": topic.site, "terminal": topic.device}
    return [Point("waste_manifest", tags, fields, point_time(man.ts, man.manifest))]


def sent_at(record: BatchRegistration | Manifest) -> int:
    """The terminal's clock when it sent the registration or manifest: its own time, not the
    point's (moved by `point_time` within the millisecond)."""
    return record.ts


FAMILY_SPEC = Family(
    FAMILY,
    {
        "batch": KindSpec(
            "batch", parse_batch, batch_points, "a producer registers a batch", sent_at
        ),
        "manifest": KindSpec(
            "manifest", parse_manifest, manifest_points, "transfer manifest", sent_at
        ),
        "status": status.SPEC,
    },
    "site terminal",
)
