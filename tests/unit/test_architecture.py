"""The arrows between hazwatch's parts: which folder may import which, and no import cycles.

Never exempt an import without its reason in the table below; an exemption nothing uses fails.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# -- the rules, as data: the package move edits these tables, not the code below -------------

# Import name of each of our packages -> the folder holding it (relative to the repository).
# hazwatch/ holds a symlink to each of the others (pyproject.toml): one installed name.
PACKAGES: dict[str, str] = {
    "hazwatch.base": "base",
    "hazwatch.devices": "devices",
    "hazwatch.edge": "edge",
    "hazwatch.ingest": "ingest",
    "hazwatch.streams": "streams",
    "hazwatch.alerts": "alerts",
    "hazwatch.notify": "notify",
    "hazwatch.api": "api",
    "hazwatch.simulators": "simulators",
    "hazwatch": "hazwatch",
    "tests": "tests",
    "bench": "bench",
}
OURS = tuple(f"{folder}/" for folder in PACKAGES.values())
# HTTP and MQTT libraries: adapters use them, the core never does.
NETWORK = (
    "fastapi",
    "starlette",
    "httpx",
    "uvicorn",
    "requests",
    "aiohttp",
    "urllib3",
    "influxdb_client",
    "paho",
    "aiomqtt",
    "amqtt",
)
CORE = ("base/", "devices/", "streams/", "alerts/")


@dataclass(frozen=True)
class Exempt:
    importer: str  # a folder ("tests/") or a file ("bench/pipeline.py")
    imported: str  # a folder or file of ours, or an import name ("paho")
    reason: str


@dataclass(frozen=True)
class Rule:
    says: str
    importers: tuple[str, ...]  # folders/files whose imports the rule checks
    forbidden: tuple[str, ...]  # folders/files of ours, or import names of libraries
    allowed: tuple[str, ...] = ()  # what stays allowed inside `forbidden`
    exempt: tuple[Exempt, ...] = ()


RULES: tuple[Rule, ...] = (
    Rule(
        "the base layer (errors, points, the state database, backoff) imports nothing else of ours",
        importers=("base/",),
        forbidden=OURS,
        allowed=("base/",),
    ),
    Rule(
        "the device contract imports nothing of ours but the base layer",
        importers=("devices/",),
        forbidden=OURS,
        allowed=("devices/", "base/"),
    ),
    Rule(
        "the edge program (the camera agent) imports only the device contract and the base layer",
        importers=("edge/",),
        forbidden=OURS,
        allowed=("edge/", "devices/", "base/"),
    ),
    Rule(
        "the notifiers (notify/) import only the alert core, the device contract, the base layer",
        importers=("notify/",),
        forbidden=OURS,
        allowed=("notify/", "alerts/", "devices/", "base/"),
    ),
    Rule(
        "nothing but the composition root imports the composition root (hazwatch/)",
        importers=tuple(pkg for pkg in OURS if pkg != "hazwatch/"),
        forbidden=("hazwatch/",),
        exempt=(
            Exempt("tests/", "hazwatch/", "tests start and compose the service as users do"),
            Exempt("bench/pipeline.py", "hazwatch/", "measures the composed service's pipeline"),
            Exempt("bench/reads.py", "hazwatch/", "measures reads through the composed pipeline"),
        ),
    ),
    Rule(
        "our folders are imported only under the installed name (hazwatch.devices, not devices)",
        importers=OURS,
        forbidden=tuple(name.removeprefix("hazwatch.") for name in PACKAGES if "." in name),
    ),
    Rule(
        "the core (base/, devices/, streams/, alerts/) imports no HTTP or MQTT library",
        importers=CORE,
        forbidden=NETWORK,
    ),
)

# -- the import graph -------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    importer: str  # file of ours, e.g. "devices/air.py"
    line: int
    name: (
        str  # the absolute name imported, e.g. "hazwatch.devices.hj212.parse" or "paho.mqtt.client"
    )
    target: str | None  # the file of ours it loads, None for a library


def module_files(root: Path, packages: dict[str, str]) -> dict[str, str]:
    """Import name -> file (relative, posix) of every module of ours."""
    modules: dict[str, str] = {}
    for package, folder in packages.items():
        for path in sorted((root / folder).rglob("*.py")):
            if _through_symlink(root / folder, path):
                continue  # hazwatch/devices -> ../devices: that folder is listed as itself
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path.relative_to(root).as_posix()
    return modules


def _through_symlink(top: Path, path: Path) -> bool:
    while path != top:
        if path.is_symlink():
            return True
        path = path.parent
    return False


def imports_of(root: Path, file: str, module: str, modules: dict[str, str]) -> Iterator[Import]:
    """Every import in `file`, at module level, in functions and under TYPE_CHECKING alike."""
    tree = ast.parse((root / file).read_text(encoding="utf-8"), filename=file)
    package = module if file.endswith("__init__.py") else module.rpartition(".")[0]
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            names = [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            yield Import(file, node.lineno, name, _resolve(name, modules))


def _resolve(name: str, modules: dict[str, str]) -> str | None:
    # `from hazwatch.devices.air import BOUNDS` names …air.BOUNDS: the longest module prefix
    while name:
        if name in modules:
            return modules[name]
        name = name.rpartition(".")[0]
    return None


def import_graph(
    root: Path = ROOT, packages: dict[str, str] = PACKAGES
) -> tuple[dict[str, str], list[Import]]:
    """Module name of each file of ours, and every import in them."""
    modules = module_files(root, packages)
    found = [
        imp
        for module, file in modules.items()
        for imp in imports_of(root, file, module, modules)
        if imp.target != file
    ]
    return {file: module for module, file in modules.items()}, found


def _within(path_or_name: str, spec: str) -> bool:
    if spec.endswith("/") or spec.endswith(".py"):  # a folder or file of ours
        return path_or_name == spec or (spec.endswith("/") and path_or_name.startswith(spec))
    return path_or_name == spec or path_or_name.startswith(spec + ".")  # a library


def _imported(imp: Import) -> str:
    return imp.target if imp.target is not None else imp.name


def violations(rule: Rule, found: list[Import]) -> tuple[list[str], set[Exempt]]:
    """The imports that break `rule` ("file:line imports name"), and the exemptions used."""
    broken: list[str] = []
    used: set[Exempt] = set()
    for imp in found:
        what = _imported(imp)
        if not any(_within(imp.importer, spec) for spec in rule.importers):
            continue
        if not any(_within(what, spec) for spec in rule.forbidden):
            continue
        if any(_within(what, spec) for spec in rule.allowed):
            continue
        exempt = next(
            (
                e
                for e in rule.exempt
                if _within(imp.importer, e.importer) and _within(what, e.imported)
            ),
            None,
        )
        if exempt is not None:
            used.add(exempt)
            continue
        broken.append(f"{imp.importer}:{imp.line} imports {imp.name}")
    return broken, used


def cycles(names: dict[str, str], found: list[Import]) -> list[list[str]]:
    """Each import cycle among our modules as a path of module names, first module repeated."""
    edges: dict[str, set[str]] = {file: set() for file in names}
    for imp in found:
        if imp.target is not None:
            edges[imp.importer].add(imp.target)
    # Tarjan's strongly connected components; iterative, so deep chains cannot overflow.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return [[names[file] for file in _cycle_path(component, edges)] for component in components]


def _cycle_path(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first), start repeated."""
    members, start = set(component), component[0]
    came_from = {start: start}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for child in sorted(edges[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if child not in came_from:
                    came_from[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start}: not a strongly connected component")


# -- the tests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, str], list[Import]]:
    return import_graph()


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.says)
def test_rule_holds(rule: Rule, graph: tuple[dict[str, str], list[Import]]) -> None:
    broken, _ = violations(rule, graph[1])
    assert not broken, f"{rule.says}:\n  " + "\n  ".join(broken)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.says)
def test_every_exemption_is_still_needed(
    rule: Rule, graph: tuple[dict[str, str], list[Import]]
) -> None:
    _, used = violations(rule, graph[1])
    stale = [f"{e.importer} → {e.imported} ({e.reason})" for e in rule.exempt if e not in used]
    assert not stale, f"{rule.says}: remove the exemptions nothing uses:\n  " + "\n  ".join(stale)


def test_no_import_cycles(graph: tuple[dict[str, str], list[Import]]) -> None:
    found = cycles(*graph)
    assert not found, "import cycles (function-level imports count):\n  " + "\n  ".join(
        " → ".join(path) for path in found
    )


def test_the_checks_see_hidden_imports(tmp_path: Path) -> None:
    """A function-level import, a relative one and a cycle through them are all caught."""
    for folder in ("devices", "ingest"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "devices" / "a.py").write_text("def f():\n    from . import b\n")
    (tmp_path / "devices" / "b.py").write_text("from devices.a import f\nimport paho.mqtt.client\n")
    (tmp_path / "ingest" / "c.py").write_text("")
    (tmp_path / "devices" / "d.py").write_text("def g():\n    import ingest.c\n")
    names, found = import_graph(tmp_path, {"devices": "devices", "ingest": "ingest"})

    assert cycles(names, found) == [["devices.a", "devices.b", "devices.a"]]
    contract = Rule("contract", ("devices/",), ("devices/", "ingest/"), allowed=("devices/",))
    assert violations(contract, found)[0] == ["devices/d.py:2 imports ingest.c"]
    network = Rule("network", ("devices/",), ("paho",))
    assert violations(network, found)[0] == ["devices/b.py:2 imports paho.mqtt.client"]


def test_the_server_imports_no_extra() -> None:
    """`hazwatch serve` (the CLI with every command registered, and the service) runs on
    `pip install .`: no package of an extra is imported (they load in the commands using them)."""
    from hazwatch.extras import EXTRAS

    extra_imports = sorted({name for names in EXTRAS.values() for name in names})
    code = (
        "import sys, hazwatch.cli, hazwatch.app; hazwatch.cli._register(); "
        f"print(sorted(set({extra_imports!r}) & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", f"the server imports: {done.stdout.strip()}"


def test_the_gateway_does_not_load_the_service() -> None:
    """`hazwatch hj212-gateway` is a process of its own (hazwatch/gateway.py): it shares only
    settings with the service, never hazwatch.app and the API it builds (~0.3 s of imports)."""
    service = ["hazwatch.app", "hazwatch.api.app", "uvicorn", "fastapi"]
    code = f"import sys, hazwatch.gateway; print(sorted(set({service!r}) & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", f"the gateway imports: {done.stdout.strip()}"


def test_the_extras_are_the_ones_pyproject_declares() -> None:
    from hazwatch.extras import EXTRAS

    with (ROOT / "pyproject.toml").open("rb") as f:
        declared = tomllib.load(f)["project"]["optional-dependencies"]
    assert set(EXTRAS) <= set(declared), f"hazwatch.extras names {set(EXTRAS) - set(declared)}"


def test_every_module_is_in_the_architecture_index() -> None:
    """docs/architecture.md "Which file holds what" names every module of the package, and
    only modules that exist: a newcomer finds any behaviour's file there."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    index = doc.split("## Which file holds what", 1)[1]
    listed = set(re.findall(r"^\| `([\w/]+\.py)` \|", index, flags=re.M))
    names, _ = import_graph()
    ours = {
        file
        for file in names
        if not file.startswith(("tests/", "bench/")) and not file.endswith("__init__.py")
    }
    assert not ours - listed, f"add to docs/architecture.md: {sorted(ours - listed)}"
    assert not listed - ours, f"not modules (any more): {sorted(listed - ours)}"
