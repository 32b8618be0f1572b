"""Chooses the point writer and reader from the settings: InfluxDB v1, v2, or the embedded store.

Never guess on a wrong combination of settings: raise ConfigError with one line saying what to set.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from hazwatch.base.errors import ConfigError
from hazwatch.ingest.interfaces import PointReader, PointWriter
from hazwatch.ingest.retention import POLICY_OF, RetentionSettings, keep_ns


class InfluxSettings(Protocol):
    """What these factories read of the settings (hazwatch's Settings has it all).

    Said here rather than imported: ingest must not import the composition root.
    """

    @property
    def influx_url(self) -> str: ...
    @property
    def influx_api(self) -> Literal["v1", "v2"]: ...
    @property
    def influx_db(self) -> str: ...
    @property
    def influx_token(self) -> str: ...
    @property
    def influx_org(self) -> str: ...
    @property
    def influx_bucket(self) -> str: ...
    @property
    def influx_user(self) -> str: ...
    @property
    def influx_password(self) -> str: ...
    @property
    def influx_timeout_s(self) -> float: ...
    @property
    def influx_retry_max_s(self) -> float: ...
    @property
    def points_path(self) -> Path: ...
    @property
    def retention(self) -> RetentionSettings: ...


def make_writer(settings: InfluxSettings) -> PointWriter:
    """InfluxV1Writer, InfluxV2Writer, or PointStore at settings.points_path (no influx_url)."""
    check_influx_settings(settings)
    if not settings.influx_url:
        from hazwatch.ingest.pointstore import PointStore

        return PointStore(settings.points_path, keep_ns=keep_ns(settings.retention))
    from hazwatch.base.retry import RetryPolicy

    retry = RetryPolicy(max_s=settings.influx_retry_max_s)
    if settings.influx_api == "v2":
        from hazwatch.ingest.influx_v2 import InfluxV2Writer

        return InfluxV2Writer(
            settings.influx_url,
            settings.influx_token,
            settings.influx_org,
            settings.influx_bucket,
            timeout_s=settings.influx_timeout_s,
            retry=retry,
            policies=POLICY_OF,
        )
    from hazwatch.ingest.influx_v1 import InfluxV1Writer

    return InfluxV1Writer(
        **_v1_connection(settings),
        gzip_min_bytes=None if is_loopback(settings.influx_url) else 64 * 1024,
        retry=retry,
        policies=POLICY_OF,
    )


def _v1_connection(settings: InfluxSettings) -> dict[str, Any]:
    """What the v1 writer and the InfluxQL reader both connect with."""
    return {
        "url": settings.influx_url,
        "db": settings.influx_db,
        "username": settings.influx_user,
        "password": settings.influx_password,
        "token": settings.influx_token,
        "timeout_s": settings.influx_timeout_s,
    }


def is_loopback(url: str) -> bool:
    """True for an InfluxDB on this machine: there gzip costs both sides CPU and saves nothing."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_reader(settings: InfluxSettings) -> PointReader:
    """InfluxQL on /query for v1 and v2 servers, or the embedded store (its own connection)."""
    check_influx_settings(settings)
    if not settings.influx_url:
        from hazwatch.ingest.pointstore import PointStore

        return PointStore(settings.points_path)
    from hazwatch.ingest.influxql import InfluxQLReader, v2_reader

    if settings.influx_api == "v2":
        return v2_reader(
            settings.influx_url,
            settings.influx_token,
            settings.influx_bucket,
            timeout_s=settings.influx_timeout_s,
            policies=POLICY_OF,
        )
    return InfluxQLReader(**_v1_connection(settings), policies=POLICY_OF)


def check_influx_settings(settings: InfluxSettings) -> None:
    """ConfigError, one line, when the influx_* settings cannot work together."""
    credentials = [
        name
        for name, value in (
            ("HAZWATCH_INFLUX_TOKEN", settings.influx_token),
            ("HAZWATCH_INFLUX_USER", settings.influx_user),
            ("HAZWATCH_INFLUX_PASSWORD", settings.influx_password),
        )
        if value
    ]
    if not settings.influx_url:
        if credentials:
            raise ConfigError(
                f"{credentials[0]} is set but HAZWATCH_INFLUX_URL is empty: set the URL of"
                " InfluxDB, or unset it to use the embedded point store"
            )
        return
    if settings.influx_api == "v2":
        missing = [
            name
            for name, value in (
                ("HAZWATCH_INFLUX_TOKEN", settings.influx_token),
                ("HAZWATCH_INFLUX_ORG", settings.influx_org),
                ("HAZWATCH_INFLUX_BUCKET", settings.influx_bucket),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"HAZWATCH_INFLUX_API=v2 needs {', '.join(missing)}"
                " (on InfluxDB 1.8 use the token 'user:password')"
            )
        if settings.influx_user or settings.influx_password:
            raise ConfigError(
                "HAZWATCH_INFLUX_USER/_PASSWORD are for HAZWATCH_INFLUX_API=v1; v2 authenticates"
                " with HAZWATCH_INFLUX_TOKEN (on InfluxDB 1.8 use the token 'user:password')"
            )
        return
    if not settings.influx_db:
        raise ConfigError("HAZWATCH_INFLUX_API=v1 needs HAZWATCH_INFLUX_DB (the database name)")
    if bool(settings.influx_user) != bool(settings.influx_password):
        raise ConfigError(
            "set both HAZWATCH_INFLUX_USER and HAZWATCH_INFLUX_PASSWORD for v1, or neither"
        )
    if settings.influx_user and settings.influx_token:
        raise ConfigError(
            "set either HAZWATCH_INFLUX_USER/_PASSWORD or HAZWATCH_INFLUX_TOKEN for v1, not both"
        )
