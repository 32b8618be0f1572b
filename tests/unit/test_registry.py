"""The device registry: validation names file, entry and field; storage; the decode context."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hazwatch.base.errors import ConfigError
from hazwatch.base.statedb import StateDB
from hazwatch.devices import registry
from tests.samples import custody_limits

SAMPLE = Path(__file__).parents[1] / "data" / "registry.toml"


def test_sample_loads() -> None:
    loaded = registry.load_file(SAMPLE)
    assert loaded.readers[("jy-0012", "gate-03")].location == "storage_in"
    assert loaded.sites["jy-0012"].storage_limit_kg == 3000
    assert custody_limits().unknown_tag_grace_s == 0  # its tolerances: the sample settings
    assert 10 < (loaded.distance_km("jy-0012", "dp-01") or 0) < 30


def test_example_in_docs_is_the_sample() -> None:
    example = Path(__file__).parents[2] / "docs" / "registry.example.toml"
    assert registry.load_file(example) == registry.load_file(SAMPLE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[reader]]\nid = "r1"\nsite = "nowhere"\nlocation = "vehicle"',
            "[[reader]] #1 (id 'r1'): field 'site' names site 'nowhere'",
        ),
        (
            '[[site]]\nid = "a"\n[[reader]]\nid = "r1"\nsite = "a"\nlocation = "roof"',
            "field 'location' must be one of",
        ),
        (
            '[[site]]\nid = "a"\nlat = 91\nlon = 1',
            "[[site]] #1 (id 'a'): field 'lat' must be between",
        ),
        ('[[site]]\nid = "a"\n[[site]]\nid = "a"', "[[site]] #2 (id 'a'): field 'id' repeats"),
        ('[[site]]\nid = "a"\nrole = "mayor"', "field 'role' must be one of producer"),
        ("[custody]\nspeed = 3", "the [custody] table is no longer part of the registry"),
        ("[[gadget]]\nid = 1", "unknown table 'gadget'"),
        ('[[site]]\nname = "x"', "field 'id' is required"),
    ],
)
def test_errors_name_file_entry_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "reg.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        registry.load_file(path)
    assert str(path) in str(caught.value) and expected in str(caught.value)


def test_a_custody_table_is_refused_with_where_the_tolerances_went(tmp_path: Path) -> None:
    path = tmp_path / "reg.toml"
    path.write_text('[custody]\nunknown_tag_grace_s = 0\n[[site]]\nid = "a"\n')
    with pytest.raises(ConfigError) as caught:
        registry.load_file(path)
    said = str(caught.value)
    assert said.startswith(f"{path}: the [custody] table is no longer part of the registry")
    assert "settings file's [custody] table" in said and "HAZWATCH_CUSTODY__<NAME>" in said


def test_a_registry_stored_with_custody_tolerances_still_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Stored before the tolerances became settings: the stored table is dropped, said once."""
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    registry.save(db, registry.load_file(SAMPLE), "sample", 1)
    body = json.loads(db.query("SELECT body FROM registry_doc")[0][0])
    with db.transaction():
        db.execute(
            "UPDATE registry_doc SET body = ?",
            (json.dumps({**body, "custody": {"unknown_tag_grace_s": 0}}),),
        )
    version, loaded = registry.load_stored(db)
    assert version == 1 and loaded == registry.load_file(SAMPLE)
    assert "settings file's [custody] table" in caplog.text


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[[site]\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        registry.load_file(path)
    with pytest.raises(ConfigError, match="does not exist"):
        registry.load_file(tmp_path / "none.toml")


def test_stored_registry_and_context_refresh(tmp_path: Path) -> None:
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    clock = [0.0]
    batches = {"E2001": "B1"}
    ctx = registry.RegistryContext(db, batches=batches, clock=lambda: clock[0], refresh_s=5)
    assert ctx.reader_location("jy-0012", "gate-03") is None
    assert registry.save(db, registry.load_file(SAMPLE), "sample", 1) == 1
    clock[0] = 1.0  # not yet time to look again
    assert ctx.reader_location("jy-0012", "gate-03") is None
    clock[0] = 6.0
    assert ctx.reader_location("jy-0012", "gate-03") == "storage_in"
    assert ctx.scale_location("dp-01", "s2") == "receiver_gate"
    assert ctx.station_mn("jy-0012", "aq-07") == "41900100000007"
    assert ctx.station_zone_h("jy-0012", "aq-07") == 8.0
    assert ctx.station_by_mn("41900100000007") == ("jy-0012", "aq-07")
    assert ctx.batch_of("E2001") == "B1"
    batches["E2002"] = "B2"  # the tracker's live map, not a copy
    assert ctx.batch_of("E2002") == "B2"
    assert ctx.station_by_mn("nope") is None
    version, stored = registry.load_stored(db)
    assert version == 1 and stored == registry.load_file(SAMPLE)


def test_a_site_without_a_name_is_stored_and_loads_back(tmp_path: Path) -> None:
    # the site's name is optional: stored as a document, it must load back (it was stored as
    # "" and every command reading the stored registry then failed on "must be non-empty")
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    reg = registry.parse_registry({"site": [{"id": "jy-0099"}]})
    assert reg.sites["jy-0099"].name == ""
    registry.save(db, reg, "test", 1)
    _, stored = registry.load_stored(db)
    assert stored.sites["jy-0099"] == reg.sites["jy-0099"]
