"""All of hazwatch's settings in one pydantic-settings class: env HAZWATCH_*, an optional TOML file.

Never read os.environ for a setting anywhere else; a wrong value fails here with one clear line.
Each part's rule thresholds are one dataclass of its own (streams/<part>/settings.py), composed
here as a nested field: the file's [custody] / [video] / [air] / [clocks] / [presence] table, env
HAZWATCH_<PART>__<NAME>; env wins over the file field by field.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from hazwatch.alerts.settings import AlertSettings
from hazwatch.base.errors import ConfigError
from hazwatch.ingest.retention import RetentionSettings
from hazwatch.pruning import StoreSettings
from hazwatch.streams.air.settings import HourlySettings
from hazwatch.streams.clocks.settings import ClockSettings
from hazwatch.streams.custody.settings import CustodyLimits
from hazwatch.streams.hj212.settings import LinkSettings
from hazwatch.streams.presence.settings import PresenceSettings
from hazwatch.streams.video.settings import VideoRuleSettings

if TYPE_CHECKING:
    from hazwatch.ingest.deadletters import DeadLetterLimits

# the part tables a settings file may hold (the nested fields of Settings)
PART_TABLES = (
    "custody",
    "video",
    "air",
    "clocks",
    "presence",
    "hj212",
    "alerts",
    "retention",
    "store",
)
# Settings renamed (old -> new, a part's field as part.name): the old name, in env or the file,
# fails naming the new one instead of being ignored.
RENAMED: dict[str, str] = {
    "batch_max_messages": "message_batch_max",
    "batch_max_wait_ms": "message_batch_wait_ms",
    "batch_workers": "message_batch_workers",
    # device_offline (the presence part) took over camera_offline and station_stale (#12)
    "video_offline_after_s": "presence.camera_silent_s",
    "video.offline_after_s": "presence.camera_silent_s",
    "air.stale_after_s": "presence.air_silent_s",
    **{
        f"video_{name}": f"video.{name}"
        for name in (
            "persist_frames",
            "occlusion_on",
            "scene_change_on",
            "too_dark_brightness",
            "defocus_ratio",
            "door_motion_on",
            "door_window_s",
            "confirm_grace_s",
        )
    },
}
# the settings file's values while load_settings builds Settings (the lowest source)
_FILE_VALUES: ContextVar[Mapping[str, Any]] = ContextVar(
    "hazwatch_settings_file", default=MappingProxyType({})
)


def default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "hazwatch"


class Settings(BaseSettings):
    """hazwatch settings; every field is also env var HAZWATCH_<NAME>, every field of a part's
    table env var HAZWATCH_<PART>__<NAME>."""

    model_config = SettingsConfigDict(
        env_prefix="HAZWATCH_", env_nested_delimiter="__", extra="forbid"
    )

    # where things are
    data_dir: Path = Field(default_factory=default_data_dir)
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_client_id: str = "hazwatch-ingest"
    mqtt_subscription: str = "hw/+/+/+/+"
    mqtt_shared_group: str = ""  # e.g. "hazwatch": subscribe $share/hazwatch/hw/+/+/+/+
    mqtt_session_expiry_s: int = 7 * 24 * 3600
    mqtt_receive_maximum: int = Field(default=10_000, ge=1, le=65535)
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    mqtt_keepalive_s: int = 30
    influx_url: str = ""  # empty: the embedded point store under data_dir
    influx_api: Literal["v1", "v2"] = "v1"
    influx_db: str = "hazwatch"
    influx_token: str = ""
    influx_org: str = "hazwatch"
    influx_bucket: str = "hazwatch"
    influx_user: str = ""
    influx_password: str = ""
    influx_timeout_s: float = 10.0
    # a failing InfluxDB is retried with backoff this long per message batch, then message
    # batches are spooled
    influx_retry_max_s: float = Field(default=10.0, gt=0, le=3600)
    state_url: str = ""  # empty: sqlite:///{data_dir}/state.db

    # ingest behaviour: a message batch (MQTT messages decoded and written together) closes at
    # this many messages or this age
    message_batch_max: int = Field(default=2000, ge=1)
    message_batch_wait_ms: int = Field(default=50, ge=1, le=4000)
    # message batches in hand at once: while some wait for InfluxDB, another is decoded
    message_batch_workers: int = Field(default=3, ge=1, le=16)
    max_payload_bytes: int = Field(default=64 * 1024, ge=64)
    max_future_s: float = 300.0
    spool_max_mb: int = Field(default=512, ge=1)

    # dead letters (ingest/deadletters.py): bounded in what each keeps, how fast one source may
    # add them, and in all
    deadletter_keep_kb: int = Field(default=64, ge=1, le=1024)  # raw bytes kept of a payload
    # per source (device, gateway peer) and minute: this many are always kept and published
    # whole; beyond it they are counted as suppressed, not stored
    deadletter_burst_per_min: int = Field(default=20, ge=1)
    deadletter_max_rows: int = Field(default=100_000, ge=100)
    deadletter_max_mb: int = Field(default=256, ge=1)
    # an HJ 212 gateway connection sending more bad frames than this within the window is closed
    gateway_max_bad_frames: int = Field(default=20, ge=1)
    gateway_bad_window_s: float = Field(default=60.0, gt=0)

    # /api/health says "degraded" (and `hazwatch status` exits 1) past these
    health_max_unacked_age_s: float = Field(default=60.0, gt=0)
    health_max_batch_retries: int = Field(default=5, ge=1)
    health_max_deadletters_per_min: float = Field(default=600.0, gt=0)

    # each part's rule thresholds (streams/<part>/settings.py): a table of the settings file
    custody: CustodyLimits = Field(default_factory=CustodyLimits)
    video: VideoRuleSettings = Field(default_factory=VideoRuleSettings)
    air: HourlySettings = Field(default_factory=HourlySettings)
    clocks: ClockSettings = Field(default_factory=ClockSettings)
    presence: PresenceSettings = Field(default_factory=PresenceSettings)
    # the HJ 212 link (streams/hj212/settings.py): [hj212]
    hj212: LinkSettings = Field(default_factory=LinkSettings)
    # who is told of alerts (alerts/settings.py): [alerts] and its [[alerts.targets]] list
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    # how long each retention policy keeps points (ingest/retention.py, docs/retention.md)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    # what the state store keeps and for how long (hazwatch/pruning.py, docs/store.md)
    store: StoreSettings = Field(default_factory=StoreSettings)

    # evidence snapshots uploaded by camera agents: kept this long, and always while the
    # alert they prove is open or acknowledged
    snapshot_keep_days: float = Field(default=365.0, gt=0)

    # API
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    api_token: str = ""  # required for write endpoints (snapshots, alert acks) when set
    lang: Literal["zh", "en"] = "zh"

    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then env, then the settings file: sources are merged field by
        field, so HAZWATCH_VIDEO__DOOR_WINDOW_S keeps the file's other [video] fields."""
        settings_file = InitSettingsSource(settings_cls, init_kwargs=dict(_FILE_VALUES.get()))
        return (init_settings, env_settings, dotenv_settings, file_secret_settings, settings_file)

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"must be mqtt://host:port or mqtts://host:port, got {value!r}")
        try:
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError:
            raise ValueError(f"has a bad port: {value!r}") from None
        return value

    @field_validator("influx_url")
    @classmethod
    def _influx_url(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"must be http(s)://host:port, got {value!r}")
        return value.rstrip("/")

    @field_validator("state_url")
    @classmethod
    def _state_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError(f"must be sqlite:///path or postgresql://..., got {value!r}")
        return value

    # derived values
    @property
    def mqtt(self) -> MqttTarget:
        parts = urlsplit(self.mqtt_url)
        tls = parts.scheme == "mqtts"
        return MqttTarget(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    @property
    def state_dsn(self) -> str:
        return self.state_url or f"sqlite:///{self.data_dir / 'state.db'}"

    @property
    def points_path(self) -> Path:
        return self.data_dir / "points.db"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def subscription(self) -> str:
        if self.mqtt_shared_group:
            return f"$share/{self.mqtt_shared_group}/{self.mqtt_subscription}"
        return self.mqtt_subscription


class MqttTarget:
    __slots__ = ("host", "password", "port", "tls", "username")

    def __init__(
        self, host: str, port: int, tls: bool, username: str | None, password: str | None
    ) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.username, self.password = username, password


def deadletter_limits(settings: Settings) -> DeadLetterLimits:
    """The dead-letter store's caps from the deadletter_* settings: one reading for the service
    (hazwatch/app.py) and the HJ 212 gateway (hazwatch/gateway.py), each with a store of its own."""
    # imported here, not above: a command that only reads its settings never loads the store
    from hazwatch.ingest.deadletters import DeadLetterLimits

    return DeadLetterLimits(
        keep_bytes=settings.deadletter_keep_kb * 1024,
        burst_per_min=settings.deadletter_burst_per_min,
        max_rows=settings.deadletter_max_rows,
        max_bytes=settings.deadletter_max_mb * 1024 * 1024,
    )


def env_name(setting: str) -> str:
    """The env var of a setting: HAZWATCH_API_PORT, a part's HAZWATCH_VIDEO__DOOR_WINDOW_S."""
    return "HAZWATCH_" + setting.replace(".", "__").upper()


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from env and an optional TOML file (env wins); ConfigError on anything wrong.

    The file's keys are the settings' names, in a [hazwatch] table or at its top level; a
    part's thresholds are its table ([hazwatch.video] or [video]).
    """
    file_values: dict[str, Any] = {}
    if config is not None:
        try:
            with config.open("rb") as fh:
                loaded = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {config} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config} is not valid TOML: {exc}") from None
        file_values = loaded.get("hazwatch", loaded)
        if not isinstance(file_values, dict):
            raise ConfigError(f"config file {config}: hazwatch must be a table ([hazwatch])")
        if file_values is not loaded:
            beside = sorted(set(PART_TABLES) & set(loaded))
            if beside:
                raise ConfigError(
                    f"config file {config}: [{beside[0]}] is outside the [hazwatch] table; "
                    f"write it [hazwatch.{beside[0]}]"
                )
    for old, new in RENAMED.items():
        part, _, name = old.rpartition(".")
        table = file_values.get(part) if part else file_values
        if (isinstance(table, dict) and name in table) or env_name(old) in os.environ:
            raise ConfigError(
                f"setting {old!r} ({env_name(old)}) was renamed {new!r} ({env_name(new)})"
            )
    token = _FILE_VALUES.set(file_values)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = [str(p) for p in err["loc"]]
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            raise ConfigError(f"unknown setting {'.'.join(loc)!r}") from None
        raise ConfigError(f"setting {env_name('.'.join(loc))}: {msg}") from None
    finally:
        _FILE_VALUES.reset(token)
