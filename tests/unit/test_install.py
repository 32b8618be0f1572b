"""What `pip install .` puts into site-packages: one package, hazwatch, whole (the symlinked
folders as real files), and nothing that can clash with another distribution's `api` or
`devices` (issue #10, item 3)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("base", "devices", "edge", "ingest", "streams", "alerts", "notify", "api", "simulators")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # a copy as git would check it out: building in place would leave build/ in the checkout
    source = out / "source"
    junk = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".*cache")
    shutil.copytree(ROOT, source, symlinks=True, ignore=junk)
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*build, "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (found,) = out.glob("hazwatch-*.whl")
    return found


def test_the_wheel_holds_only_hazwatch(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"hazwatch"}
    for folder in FOLDERS:
        assert f"hazwatch/{folder}/__init__.py" in names, f"hazwatch.{folder} is not installed"
    # every module of each folder, copied (a symlink in the wheel would point nowhere)
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            assert f"hazwatch/{path.relative_to(ROOT).as_posix()}" in names
    assert "hazwatch/demo_registry.toml" in names  # package data travels too
    # the screen's static files, and each vendored library with its licence (api/static/)
    static = ROOT / "api" / "static"
    shipped = [p for p in static.rglob("*") if p.is_file()]
    assert any(p.suffix == ".js" for p in shipped) and (static / "README.md") in shipped
    for path in shipped:
        assert f"hazwatch/{path.relative_to(ROOT).as_posix()}" in names, f"{path} not shipped"
    for library in ("echarts/echarts.min.js", "echarts/LICENSE", "swagger-ui/swagger-ui-bundle.js"):
        assert f"hazwatch/api/static/vendor/{library}" in names


def test_installed_next_to_a_package_called_api(wheel: Path, tmp_path: Path) -> None:
    """Another distribution's `api` and `devices` stay theirs; hazwatch imports as installed."""
    target, other = tmp_path / "site", tmp_path / "other"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), wheel],
        check=True,
        capture_output=True,
    )
    for name in ("api", "devices"):
        (other / name).mkdir(parents=True)
        (other / name / "__init__.py").write_text(f"OWNER = 'someone else: {name}'\n")
    code = (
        "import api, devices, hazwatch, hazwatch.cli, hazwatch.app, hazwatch.api.app;"
        "import hazwatch.devices.registry as r;"
        "assert api.OWNER == 'someone else: api', api.__file__;"
        "assert devices.OWNER == 'someone else: devices', devices.__file__;"
        "print(hazwatch.__file__); print(r.__file__)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(other)])}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    for line in done.stdout.split():
        assert line.startswith(str(target)), f"imported from outside the install: {line}"
    cli = subprocess.run(
        [sys.executable, "-m", "hazwatch", "--help"], cwd=tmp_path, env=env, capture_output=True
    )
    assert cli.returncode == 0, cli.stderr
