"""One settings class, read once at start from `TELEMETRY_*` variables (and `.env`), passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sigfox.limits import DAILY_UPLINKS
from telemetry.errors import SettingsError

# Mosquitto's default port; mqtts:// means TLS on 8883.
MQTT_PORT = 1883
MQTTS_PORT = 8883


class MqttEndpoint:
    """The parts of `TELEMETRY_MQTT_URL`, parsed once."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"scheme must be mqtt:// or mqtts://, got {parts.scheme!r}")
        if not parts.hostname:
            raise ValueError("no host in the URL")
        self.tls = parts.scheme == "mqtts"
        self.host = parts.hostname
        self.port = parts.port or (MQTTS_PORT if self.tls else MQTT_PORT)
        self.username = parts.username
        self.password = parts.password


# An MQTT topic prefix: one or more levels of letters, digits, `_` and `-` (no wildcards).
_PREFIX = r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$"


class Settings(BaseSettings):
    """Everything configurable. Flags of the `telemetry` command override these."""

    model_config = SettingsConfigDict(
        env_prefix="TELEMETRY_", env_file=".env", extra="ignore", frozen=True
    )

    # --- MQTT (DESIGN section 1) ---
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_topic_prefix: str = Field("uplink", pattern=_PREFIX)
    # DESIGN section 9: events are published (ingest: up, rejected, status; API: downlink) and
    # read (API: the stream) under this prefix.
    mqtt_events_prefix: str = Field("events", pattern=_PREFIX)
    # A fixed id keeps the persistent session (and its queued uplinks) across ingester restarts.
    mqtt_client_id: str = Field("telemetry-ingest", min_length=1, max_length=64)
    # Set to share the uplink stream between several ingesters ($share/<group>/...).
    mqtt_share_group: str | None = Field(None, pattern=r"^[A-Za-z0-9_\-]+$")
    mqtt_keepalive: int = Field(20, ge=5, le=600)

    # --- InfluxDB (DESIGN section 3) ---
    influx_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8086")
    influx_database: str = Field("telemetry", pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    influx_token: SecretStr | None = None
    influx_username: str | None = None
    influx_password: SecretStr | None = None
    influx_timeout: float = Field(10.0, gt=0, le=120)
    # Values go to /query as bound parameters; InfluxDB 3's v1 API ignores them (influxdb#24805),
    # so set this false there to send the (checked, escaped) values inline in the statement.
    influx_bind_params: bool = True

    # --- API (DESIGN section 4) ---
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    api_auth: Literal["enabled", "disabled"] = "enabled"
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    # Wrong or missing keys a client may send per minute before it gets 429: enough for a
    # person fixing a typo, far too few to guess a key.
    api_auth_failures_per_minute: int = Field(20, ge=1, le=10_000)

    # --- Sigfox callbacks and downlinks (DESIGN section 11) ---
    # Callback keys may only post callbacks; admin keys read and manage downlinks.
    callback_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    admin_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # The downlink queue: one SQLite file shared by every API process on the host.
    downlink_db: Path = Path("var/downlinks.sqlite3")

    # --- Ingest ---
    # A batch is written when it holds this many points or is this old, whichever comes first.
    # Mosquitto's max_inflight_messages must be >= ingest_batch_size, or a batch never fills.
    # 5,000 points (2,500 uplinks): InfluxDB's efficient batch size; see telemetry/servers.py.
    ingest_batch_size: int = Field(5000, ge=1, le=50_000)
    ingest_flush_interval: float = Field(0.2, gt=0, le=10)
    ingest_spool_dir: Path = Path("var/spool")
    ingest_spool_max_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    ingest_metrics_port: int = Field(9108, ge=0, le=65535)  # 0: no metrics listener
    ingest_metrics_host: str = "127.0.0.1"
    # Per-device limit, on the uplinks' own clock. Sigfox allows ~140 a day, but the `time` key
    # is in seconds, so one a second is the most that can be stored apart: that is the sustained
    # rate (demos at --speed and load tests stay under it); a day's worth may come at once.
    ingest_rate_burst: int = Field(DAILY_UPLINKS, ge=1)
    ingest_rate_per_hour: float = Field(3600.0, gt=0)
    ingest_future_tolerance: int = Field(300, ge=0)  # seconds a `time` may lie ahead of our clock
    ingest_shutdown_timeout: float = Field(10.0, gt=0, le=300)
    # Publish the events of DESIGN section 9 (off: only for measuring what they cost).
    ingest_events: bool = True

    # --- Stream (DESIGN section 9) ---
    # Events a stream client may lag behind before it gets `event: overflow` and is dropped:
    # about 5 s of a 1,000 uplinks/s fleet, so a client paused by a busy machine survives.
    api_stream_backlog: int = Field(5000, ge=1, le=100_000)
    # Open streams per API process at most; each holds a connection (uvicorn's limit is
    # raised by this much, see api/command.py).
    api_stream_clients_max: int = Field(200, ge=1, le=10_000)
    # Seconds between comment lines on a quiet stream (DESIGN 9: 15), for proxies' idle timeouts.
    api_stream_heartbeat: float = Field(15.0, gt=0, le=300)

    # --- Device status (DESIGN section 10) ---
    # How often ingest's status watcher and the API's status cache run the status rules and poll
    # InfluxDB (the API's less often while it follows the `up` events: below). A device is
    # late within 15 s of crossing two intervals, so at most 10 s; each poll costs InfluxDB
    # about a third of a second per 10,000 devices (BENCHMARKS.md), so not much faster either.
    status_poll_seconds: float = Field(5.0, ge=0.2, le=10.0)
    # While the API follows the `up` events (api/statuscache.py), its incremental poll runs only
    # this often, to catch events lost on the way (the broker dropping, an ingester's dropped
    # count): such an uplink is seen this late at most. Within the poll's 5 min window.
    status_backstop_seconds: float = Field(60.0, ge=1.0, le=300.0)
    # How long ingest's watcher waits after (re)subscribing before it judges silence: the broker
    # first delivers the uplinks it kept for the session while ingest was away, and they must be
    # stored first (ingest/service.py). 10 s stores the most our broker config keeps (110,000).
    status_settle_seconds: float = Field(10.0, ge=0.0, le=300.0)

    # --- Catalogue (DESIGN section 2) ---
    catalogue_dir: Path | None = None

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("api_keys", "callback_keys", "admin_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str) -> str:
        MqttEndpoint(value)
        return value

    @field_validator("catalogue_dir")
    @classmethod
    def _check_catalogue_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{str(value)!r} is not a folder")
        return value

    @field_validator("mqtt_events_prefix")
    @classmethod
    def _check_events_prefix(cls, value: str, info: ValidationInfo) -> str:
        # Ingest reads `<uplink prefix>/+/+`: with the same prefix it would read its own
        # `rejected` events as uplinks, reject them and publish again, forever.
        if value == info.data.get("mqtt_topic_prefix"):
            raise ValueError(f"{value!r} must differ from TELEMETRY_MQTT_TOPIC_PREFIX")
        return value

    @property
    def mqtt(self) -> MqttEndpoint:
        return MqttEndpoint(self.mqtt_url)


def load_settings(**overrides: object) -> Settings:
    """Build the settings; flags given as `overrides` (None means not given) win over the env."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]  # keys are checked by pydantic itself
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """The first problem, named as the environment variable the user sets."""
    err = exc.errors(include_url=False)[0]
    name = "_".join(str(p) for p in err["loc"][:1]) or "settings"
    msg = err["msg"].removeprefix("Value error, ")
    return f"invalid setting TELEMETRY_{name.upper()}: {msg}"
