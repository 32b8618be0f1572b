"""docs/payloads.md against the code: every family, kind, payload field and measurement is in it.

Never import a service or touch the network: the document is read as text, the code as modules.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from hazwatch.devices import hj212, rfid_vendors
from hazwatch.devices.families import FAMILIES
from hazwatch.devices.family import KindSpec

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "payloads.md").read_text(encoding="utf-8")
# A measurement written by code: Point("name", …) or MEASUREMENT = "name".
WRITES = re.compile(r"""\bPoint\(\s*["'](\w+)["']|^MEASUREMENT\s*=\s*["'](\w+)["']""", re.M)
SKIP_DIRS = {".venv", "tests", ".git", "build", "node_modules"}


def section(heading: str) -> str:
    """The text under the heading `heading` (exactly), up to the next heading as high."""
    lines = DOC.splitlines()
    for start, line in enumerate(lines):
        match = re.match(r"(#+) (.*)$", line)
        if match and match.group(2).strip() == heading:
            level = len(match.group(1))
            body = []
            for following in lines[start + 1 :]:
                deeper = re.match(r"(#+) ", following)
                if deeper and len(deeper.group(1)) <= level:
                    break
                body.append(following)
            return "\n".join(body)
    raise AssertionError(f"docs/payloads.md has no heading {heading}")


def kind_section(family: str, kind: str) -> str:
    """The section of one kind: `hw/{site}/rfid/{reader}/read`; status has one for all."""
    if kind == "status":
        return section("`hw/{site}/{family}/{device_id}/status`")
    pattern = re.compile(rf"^#+ (`hw/\{{site\}}/{family}/\{{\w+\}}/{kind}`)$", re.M)
    match = pattern.search(DOC)
    assert match, f"docs/payloads.md has no heading `hw/{{site}}/{family}/{{…}}/{kind}`"
    return section(match.group(1))


def model_of(spec: KindSpec) -> type[BaseModel] | None:
    """The pydantic model a kind parses to: its return type, or the model in a union of it
    (rfid/read: `RfidRead | ReaderReport`, the reports holding RfidReads of a vendor's events)."""
    hint = typing.get_type_hints(spec.parse).get("return")
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def nested(annotation: object, in_list: bool = False) -> tuple[type[BaseModel], bool] | None:
    """The pydantic model inside an annotation (list[M], M | None, …) and whether in a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, in_list
    origin = typing.get_origin(annotation)
    for arg in typing.get_args(annotation):
        found = nested(arg, in_list or origin is list)
        if found:
            return found
    return None


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, info in model.model_fields.items():
        paths.append(prefix + name)
        inner = nested(info.annotation)
        if inner is not None:
            sub, in_list = inner
            paths += field_paths(sub, f"{prefix}{name}{'[]' if in_list else ''}.")
    return paths


KINDS = [(family, kind) for family, spec in FAMILIES.items() for kind in spec.kinds]


def test_every_family_is_in_the_families_table() -> None:
    table = section("Families and kinds")
    for family, spec in FAMILIES.items():
        row = next((r for r in table.splitlines() if r.startswith(f"| `{family}` |")), None)
        assert row, f"family {family} has no row in 'Families and kinds'"
        for kind in spec.kinds:
            assert f"`{kind}`" in row, f"kind {kind} of {family} is not in its row"


@pytest.mark.parametrize(("family", "kind"), KINDS, ids=[f"{f}/{k}" for f, k in KINDS])
def test_every_field_of_every_kind_has_a_row(family: str, kind: str) -> None:
    spec = FAMILIES[family].kinds[kind]
    text = kind_section(family, kind)
    model = model_of(spec)
    if model is None:  # hj212: raw packets, documented in their own chapter
        assert kind == hj212.KIND, f"{family}/{kind} parses to no pydantic model"
        return
    assert f"`{model.__name__}`" in text, f"{family}/{kind}: model {model.__name__} not named"
    for path in field_paths(model):
        assert f"| `{path}` |" in text, f"{family}/{kind}: field {path} has no row"


def heading_section(contains: str) -> str:
    """The section under the one heading whose text holds `contains`."""
    headings = [m.group(1) for m in re.finditer(r"^#+ (.*)$", DOC, re.M) if contains in m.group(1)]
    assert len(headings) == 1, f"docs/payloads.md: headings holding {contains!r}: {headings}"
    return section(headings[0].strip())


VENDOR_MODELS = [
    (rfid_vendors.IMPINJ_R700, rfid_vendors.ImpinjReaderEvent),
    (rfid_vendors.ZEBRA_FX, rfid_vendors.ZebraTagDataEvent),
]


@pytest.mark.parametrize(("payload", "model"), VENDOR_MODELS, ids=[p for p, _ in VENDOR_MODELS])
def test_every_field_of_a_readers_own_payload_has_a_row(
    payload: str, model: type[BaseModel]
) -> None:
    """A reader's own payload (its registry `payload`) has its section under rfid/read, which
    names its models and has a row for every field hazwatch reads of it."""
    assert payload in rfid_vendors.READER_PAYLOADS
    text = heading_section(f'`payload = "{payload}"`')
    assert text in kind_section("rfid", "read"), f"{payload}: not under rfid/read"
    assert f"`{model.__name__}`" in text, f"{payload}: model {model.__name__} not named"
    for path in field_paths(model):
        assert f"| `{path}` |" in text, f"{payload}: field {path} has no row"
        inner = nested(model.model_fields[path.split(".")[0]].annotation)
        if inner is not None:
            assert f"`{inner[0].__name__}`" in text, f"{payload}: {inner[0].__name__} not named"


def test_hj212_codes_and_commands_are_documented() -> None:
    text = section("HJ 212-2017 air stations")
    for factor in hj212.FACTORS.values():
        assert f"| `{factor.code}` |" in text, f"factor {factor.code} has no row"
        assert f"`{factor.name}`" in text, f"factor {factor.code}'s field {factor.name} missing"
    for cn in hj212.KNOWN_CNS:
        assert f"`{cn}`" in text, f"CN {cn} is not documented"
    for suffix in hj212.VALUE_SUFFIXES | hj212.OTHER_SUFFIXES:
        assert f"`-{suffix}`" in text, f"suffix -{suffix} is not documented"


def written_measurements() -> dict[str, set[Path]]:
    found: dict[str, set[Path]] = {}
    for path in ROOT.rglob("*.py"):
        if SKIP_DIRS & set(path.relative_to(ROOT).parts):
            continue
        for match in WRITES.finditer(path.read_text(encoding="utf-8")):
            found.setdefault(match.group(1) or match.group(2), set()).add(path)
    return found


def test_every_measurement_written_has_a_section() -> None:
    measurements = written_measurements()
    devices_dir = ROOT / "devices"
    from_devices = {
        m for m, paths in measurements.items() if any(devices_dir in p.parents for p in paths)
    }
    assert {"waste_read", "air", "device_status"} <= from_devices, "measurement scan found too few"
    schema = section("InfluxDB schema")
    for name in measurements:
        assert re.search(rf"^#+ `{name}`$", schema, re.M), f"measurement {name} has no section"


def test_device_points_match_their_section() -> None:
    """Tags and fields the simulators' messages decode to are each in their measurement's table."""
    from hazwatch.devices.decode import decode
    from hazwatch.devices.family import NoRegistry
    from hazwatch.simulators.payloads import DeviceGenerator

    now_ns = 1_795_996_800_000_000_000
    for family in FAMILIES:
        generator = DeviceGenerator("jy-0012", family, "d-01", seed=1, clock_ns=lambda: now_ns)
        for message in [generator.next() for _ in range(5)] + [generator.status()]:
            for point in decode(message.topic, message.payload, NoRegistry(), now_ns=now_ns).points:
                text = section(f"`{point.measurement}`")
                for tag in point.tags:
                    assert f"| tag | `{tag}` |" in text, f"{point.measurement}: tag {tag}"
                for name in point.fields:
                    generic = re.sub(r"^(\w+?)_(min|max|flag)$", r"{name}_\2", name)
                    assert f"`{name}`" in text or f"`{generic}`" in text, (
                        f"{point.measurement}: field {name}"
                    )
