"""Every threshold and window of every rule is a setting (#12 item 5), and a wrong value of any
of them is one line at start: for each numeric field of each part's settings table, a value
past its bound and a word where a number goes are refused by load_settings with a line that
names the variable; `hazwatch serve` given one prints that line alone and exits 2 without
serving; a rule named by the notification settings that no part declares is refused too.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import annotated_types
import pytest

from hazwatch.alerts.rules import RuleSpec
from hazwatch.base.errors import ConfigError
from hazwatch.settings import PART_TABLES, Settings, load_settings
from hazwatch.streams.catalog import rule_specs

RULE_TABLES = tuple(t for t in PART_TABLES if t != "alerts")  # alerts: targets, below
# facts about a storage site, set per site in the registry ([[site]], docs/rules.md), bounded
# there (devices/registry.py); its defaults are the rules' declared thresholds
SITE_FACTS = {"storage_limit_kg": (0, 1e9), "storage_limit_days": (0, 36500)}


def numeric_fields(table: str) -> list[tuple[str, type, float, float | None, bool]]:
    """(field, int or float, lower bound, upper bound or None, lower bound excluded)."""
    settings_class = Settings.model_fields[table].annotation
    assert settings_class is not None and dataclasses.is_dataclass(settings_class)
    hints = typing.get_type_hints(settings_class, include_extras=True)
    found = []
    for field in dataclasses.fields(settings_class):
        hint = hints[field.name]
        base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
        if base not in (int, float):
            continue
        low: float | None = None
        high: float | None = None
        strict = False
        for meta in getattr(hint, "__metadata__", ()):
            for c in getattr(meta, "metadata", [meta]):
                if isinstance(c, annotated_types.Ge):
                    low = float(c.ge)  # type: ignore[arg-type]
                elif isinstance(c, annotated_types.Gt):
                    low, strict = float(c.gt), True  # type: ignore[arg-type]
                elif isinstance(c, annotated_types.Le):
                    high = float(c.le)  # type: ignore[arg-type]
                elif isinstance(c, annotated_types.Lt):
                    high = float(c.lt)  # type: ignore[arg-type]
        assert low is not None, f"{table}.{field.name} has no lower bound: any value is taken"
        found.append((field.name, base, low, high, strict))
    return found


CASES: list[Any] = []
for _table in RULE_TABLES:
    for _name, _kind, _low, _high, _strict in numeric_fields(_table):
        _below = _low if _strict else _low - 1
        CASES.append(pytest.param(_table, _name, _below, id=f"{_table}.{_name}<{_below:g}"))
        if _high is not None:
            CASES.append(pytest.param(_table, _name, _high + 1, id=f"{_table}.{_name}>{_high:g}"))
        CASES.append(pytest.param(_table, _name, "often", id=f"{_table}.{_name}=word"))


@pytest.fixture()
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("HAZWATCH_")]:
        monkeypatch.delenv(name)


def test_every_rule_threshold_is_a_setting_with_bounds() -> None:
    """Each rule's declared default thresholds are fields of its part's table (and so may be
    set), and every part with rules has a table."""
    tables = {t: Settings.model_fields[t].annotation for t in RULE_TABLES}
    names = {t: {f.name for f in dataclasses.fields(c)} for t, c in tables.items()}  # type: ignore[arg-type]
    for spec in rule_specs().values():
        assert spec.part in tables, f"{spec.id}: part {spec.part} has no settings table"
        for threshold in spec.thresholds:
            if threshold in SITE_FACTS:
                continue
            assert threshold in names[spec.part], f"{spec.id}: {threshold} is not a setting"
    assert len(CASES) > 100  # every numeric field, twice or three times


@pytest.mark.parametrize(("table", "name", "value"), CASES)
def test_a_wrong_threshold_in_the_file_is_one_line(
    tmp_path: Path, no_env: None, table: str, name: str, value: object
) -> None:
    path = tmp_path / "hazwatch.toml"
    shown = f'"{value}"' if isinstance(value, str) else repr(value)
    path.write_text(f"[{table}]\n{name} = {shown}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    text = str(caught.value)
    assert text.startswith(f"setting HAZWATCH_{table.upper()}__{name.upper()}: "), text
    assert "\n" not in text


@pytest.mark.parametrize("fact", sorted(SITE_FACTS))
def test_a_wrong_storage_limit_of_a_site_is_one_line(fact: str) -> None:
    from hazwatch.devices.registry import parse_registry

    low, high = SITE_FACTS[fact]
    for wrong in (low - 1, high * 2, "a year"):
        doc = {"site": [{"id": "jy-0012", "role": "producer", fact: wrong}]}
        with pytest.raises(ConfigError, match=fact) as caught:
            parse_registry(doc, "site.toml")
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[alerts]\nescalate_after_min = { critical = 0 }\n", "ESCALATE_AFTER_MIN"),
        ("[alerts]\nescalate_after_min = { urgent = 5 }\n", "'urgent' is no severity"),
        ("[alerts]\nescalate_rule_after_min = { cloned_tag = -5 }\n", "ESCALATE_RULE_AFTER_MIN"),
        ("[alerts]\ndigest_every_s = 0\n", "HAZWATCH_ALERTS__DIGEST_EVERY_S"),
        ("[alerts]\nretry_first_s = 10\nretry_max_delay_s = 5\n", "shorter than retry_first_s"),
        ("[alerts]\npoll_s = 61\n", "HAZWATCH_ALERTS__POLL_S"),
    ],
)
def test_a_wrong_alerts_setting_is_one_line(
    tmp_path: Path, no_env: None, text: str, error: str
) -> None:
    path = tmp_path / "hazwatch.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=error) as caught:
        load_settings(path)
    assert "\n" not in str(caught.value)


def test_a_rule_the_notification_settings_name_must_be_declared() -> None:
    from hazwatch.alerts.settings import AlertSettings, TargetSettings
    from hazwatch.parts.notify import check_rule_names

    rules: dict[str, RuleSpec] = dict(rule_specs())
    hook = TargetSettings("hook", "webhook", "http://h", "s", rules=("air_exceedence",))
    with pytest.raises(ConfigError, match=r"alerts.targets\[hook\].rules: 'air_exceedence'"):
        check_rule_names(AlertSettings(targets=(hook,)), rules)
    with pytest.raises(ConfigError, match="escalate_rule_after_min: 'transit_late' is no rule"):
        check_rule_names(AlertSettings(escalate_rule_after_min={"transit_late": 5}), rules)
    right = dataclasses.replace(hook, rules=("air_exceedance", "device_offline"))
    check_rule_names(AlertSettings(targets=(right,), escalate_rule_after_min={"cloned_tag": 5}),
                     rules)  # fmt: skip


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[presence]\ncamera_silent_s = -30\n", "setting HAZWATCH_PRESENCE__CAMERA_SILENT_S: "),
        ("[air]\naqi_alert_above = 900\n", "setting HAZWATCH_AIR__AQI_ALERT_ABOVE: "),
        ("[custody]\ntransit_limit_h = 0\n", "setting HAZWATCH_CUSTODY__TRANSIT_LIMIT_H: "),
        ("[video]\nocclusion_on = 2\n", "setting HAZWATCH_VIDEO__OCCLUSION_ON: "),
        ("[clocks]\ntolerance_s = 0\n", "setting HAZWATCH_CLOCKS__TOLERANCE_S: "),
        (
            '[[alerts.targets]]\nname = "ding"\nkind = "dingtalk"\nurl = "http://127.0.0.1:9/"\n'
            'rules = ["air_exceedence"]\n',
            "setting alerts.targets[ding].rules: 'air_exceedence' is no rule",
        ),
    ],
)
def test_hazwatch_serve_with_a_wrong_value_says_one_line_and_does_not_start(
    tmp_path: Path, text: str, error: str
) -> None:
    config = tmp_path / "hazwatch.toml"
    config.write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAZWATCH_")}
    env |= {"HAZWATCH_DATA_DIR": str(tmp_path / "data"), "HAZWATCH_API_PORT": "0"}
    env |= {"HAZWATCH_MQTT_URL": "mqtt://127.0.0.1:9", "HAZWATCH_INFLUX_URL": ""}
    done = subprocess.run(
        [sys.executable, "-m", "hazwatch", "--config", str(config), "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert lines == [lines[0]] and lines[0].startswith(f"hazwatch: {error}"), done.stderr
    assert "serving" not in done.stdout + done.stderr
