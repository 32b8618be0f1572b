"""Session fixtures: real services on free ports; outside CI a missing binary skips."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hazwatch_proc import forget_stopped_sessions
from tests.services import (
    IN_CI,
    Influxd,
    Mosquitto,
    ServiceMissing,
    VictoriaMetrics,
    drop_postgres_database,
    postgres_database,
)


def _start(service_factory, what: str):  # type: ignore[no-untyped-def]
    try:
        service = service_factory()
        service.start()
    except ServiceMissing as exc:
        if IN_CI:
            pytest.fail(f"{what} is required in CI: {exc}")
        pytest.skip(str(exc))
    return service


@pytest.fixture(autouse=True)
def _no_stale_mqtt_sessions() -> Iterator[None]:
    """After each test, the sessions its stopped `hazwatch serve`s left on the shared broker
    end: else every later test's messages are queued for each of them (a suite's worth by
    test_simulators, whose custody publishing then took over 300 s with the broker saving them
    every second)."""
    yield
    forget_stopped_sessions()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = _start(lambda: Mosquitto(tmp_path_factory.mktemp("mosquitto")), "mosquitto")
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    server = _start(lambda: Influxd(tmp_path_factory.mktemp("influxd")), "influxd")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    server = _start(lambda: VictoriaMetrics(tmp_path_factory.mktemp("vm")), "victoria-metrics")
    yield server
    server.stop()


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    try:
        url = postgres_database()
    except ServiceMissing as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(str(exc))
    yield url
    drop_postgres_database(url)


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest) -> str:
    """The same test on both state stores: a fresh SQLite file, a fresh PostgreSQL database."""
    return str(request.getfixturevalue(f"{request.param}_url"))
