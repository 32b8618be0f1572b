"""Named simulation scenarios, each data (a list of steps) run against a broker URL.

Never hide a step's work from its report; scenarios never talk to hazwatch, only to the broker.

The interface other parts register against (custody, air, video):

    register_scenario(name, factory)      # factory(**options) -> Scenario
    get_scenario(name)(**options)         # KeyError names the known scenarios
    scenario_names()                      # sorted

Call register_scenario at module level in any module of the simulators package (for example
simulators/custody.py): get_scenario and scenario_names import every module of the package
once, so a scenario needs no other registration line.

A Scenario is a name and a list of steps; `await scenario.run(mqtt_url, progress)` runs the
steps in order and returns a report. A step is any object with a `label: str` and
`async run(mqtt_url: str, progress: Progress) -> ScenarioReport` (hazwatch.simulators.fleet.Fleet is
one). `progress(fraction, text)` takes the fraction done in [0, 1] and one line of status.
A ScenarioReport has `ok: bool` (everything sent was acknowledged) and
`summary() -> list[tuple[str, str]]` (rows for the CLI's summary table).

`hazwatch simulate --scenario NAME` calls the factory with these keyword options: site (str),
devices (int, per family), rate (float, messages/s, 0 = as fast as possible), duration_s
(float | None), count (int | None), families (tuple[str, ...]), faults (FaultPlan),
seed (int), keep_messages (bool, False: no per-message ground truth is kept), clocks
(dict of device id → simulators.clocks.DeviceClock), and for the custody story reads
("bursts" | "single"), timing ("default" | "compressed"), live (bool), violations (int | None)
and truth (a Path for the ground truth's JSON, or None). A factory takes what it uses and
ignores the rest (accept **options).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from hazwatch.simulators.fleet import Fleet, FleetConfig, Progress, no_progress


class ScenarioReport(Protocol):
    @property
    def ok(self) -> bool: ...

    def summary(self) -> list[tuple[str, str]]: ...


class Step(Protocol):
    label: str

    async def run(self, mqtt_url: str, progress: Progress) -> ScenarioReport: ...


@dataclass
class StepsReport:
    """The reports of a scenario's steps, in order."""

    steps: list[tuple[str, ScenarioReport]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(report.ok for _, report in self.steps)

    def summary(self) -> list[tuple[str, str]]:
        if len(self.steps) == 1:
            return self.steps[0][1].summary()
        rows: list[tuple[str, str]] = []
        for label, report in self.steps:
            rows += [(f"{label}: {name}", value) for name, value in report.summary()]
        return rows


@dataclass
class Scenario:
    """A named list of steps run one after the other against one broker."""

    name: str
    steps: Sequence[Step]
    description: str = ""

    async def run(self, mqtt_url: str, progress: Progress = no_progress) -> StepsReport:
        report = StepsReport()
        count = max(1, len(self.steps))
        for index, step in enumerate(self.steps):

            def step_progress(fraction: float, text: str, index: int = index) -> None:
                label = self.steps[index].label
                progress((index + fraction) / count, f"{label}: {text}" if count > 1 else text)

            report.steps.append((step.label, await step.run(mqtt_url, step_progress)))
        return report


ScenarioFactory = Callable[..., Scenario]
_SCENARIOS: dict[str, ScenarioFactory] = {}


def register_scenario(name: str, factory: ScenarioFactory) -> None:
    """Make `factory(**options) -> Scenario` available as `hazwatch simulate --scenario name`."""
    if name in _SCENARIOS and _SCENARIOS[name] is not factory:
        raise ValueError(f"scenario {name!r} is already registered")
    _SCENARIOS[name] = factory


def get_scenario(name: str) -> ScenarioFactory:
    discover()
    try:
        return _SCENARIOS[name]
    except KeyError:
        known = ", ".join(scenario_names())
        broken = "".join(f"; {module} failed to import: {exc}" for module, exc in _BROKEN.items())
        raise KeyError(f"unknown scenario {name!r} (known: {known}){broken}") from None


def scenario_names() -> list[str]:
    discover()
    return sorted(_SCENARIOS)


_BROKEN: dict[str, str] = {}
_discovered = False


def discover() -> None:
    """Import every module of the simulators package once, so their scenarios register."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module("hazwatch.simulators")
    for module in pkgutil.iter_modules(package.__path__, "hazwatch.simulators."):
        try:
            importlib.import_module(module.name)
        except Exception as exc:  # one part's broken module must not hide the others' scenarios
            _BROKEN[module.name] = f"{type(exc).__name__}: {exc}"


_FLEET_OPTIONS = frozenset(f.name for f in fields(FleetConfig))


def fleet_scenario(**options: Any) -> Scenario:
    """One site's fleet of every family (FleetConfig's fields as options; others ignored)."""
    config = FleetConfig(**{k: v for k, v in options.items() if k in _FLEET_OPTIONS})
    return Scenario("fleet", [Fleet(config)], "devices of every family publishing at a rate")


register_scenario("fleet", fleet_scenario)
