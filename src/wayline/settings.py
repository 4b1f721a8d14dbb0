"""Process settings: one frozen object, read from ``WAYLINE_*`` environment variables.

Built once in ``main()`` and passed down; nothing else reads the environment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from wayline.schemas.errors import ConfigError

Port = Annotated[int, Field(ge=0, le=65535)]


class Settings(BaseSettings):
    """Where Wayline runs. Environment names are the field names upper-cased with ``WAYLINE_``."""

    model_config = SettingsConfigDict(env_prefix="WAYLINE_", frozen=True, extra="ignore")

    kafka_bootstrap: str | None = Field(
        default=None,
        description="Bootstrap servers of a real Kafka cluster; when unset, the embedded broker.",
    )
    kafka_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra librdkafka options (JSON), passed through to every client.",
    )
    broker_host: str = "127.0.0.1"
    broker_port: Port = 9092
    topic_prefix: str = Field(default="wayline", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
    partitions: int = Field(default=6, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1, le=16)
    api_host: str = "127.0.0.1"
    api_port: Port = 8080
    config: Path | None = Field(default=None, description="YAML config file.")
    clickhouse_url: str | None = Field(
        default=None,
        description="A ClickHouse server (http(s)://user:password@host:8123); when unset, the "
        "embedded engine under the data directory.",
    )
    analytics: bool = Field(
        default=True,
        description="Run the analytics sink (every topic into ClickHouse) and answer "
        "/v1/analytics; off: neither.",
    )
    data_dir: Path = Path("wayline-data")
    default_phone_region: str | None = Field(
        default=None, description="ISO region for phone numbers written without +country code."
    )
    stats_interval_s: float = Field(default=10.0, gt=0)
    stall_after_s: float = Field(
        default=30.0, gt=0, description="Lag with no progress for this long is a stall."
    )
    timer_grace_ms: int = Field(
        default=0,
        ge=0,
        description="Live mode: timers fire at wall clock minus this, to wait for late events.",
    )
    public_url: str | None = Field(
        default=None,
        description="Where customers and providers reach the API (links in messages, signed "
        "webhooks behind a proxy); default http://API_HOST:API_PORT.",
    )
    link_secret: str | None = Field(
        default=None,
        description="Secret of unsubscribe links; the same for every process. Default: one "
        "made once in the data directory.",
    )
    retry_scale: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Delivery retry delays (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h) times "
        "this; demos and tests compress the schedule.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator(
        "kafka_bootstrap", "clickhouse_url", "default_phone_region", "public_url", "link_secret"
    )
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers every client connects to."""
        return self.kafka_bootstrap or f"{self.broker_host}:{self.broker_port}"

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def embedded_broker(self) -> bool:
        """True when Wayline starts its own broker (no external cluster configured)."""
        return self.kafka_bootstrap is None


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; a bad value raises ``ConfigError`` naming it."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError("; ".join(_describe(err) for err in exc.errors())) from None
    except SettingsError as exc:  # a complex value (JSON) that does not parse
        match = re.search(r'field "(\w+)"', str(exc))
        name = f"WAYLINE_{match.group(1).upper()}" if match else "WAYLINE_*"
        raise ConfigError(f"setting {name}: not valid JSON ({exc.__cause__})") from None


def _describe(err: Any) -> str:
    name = "WAYLINE_" + "_".join(str(p) for p in err["loc"][:1]).upper()
    value = err.get("input")
    shown = f" (got {value!r})" if isinstance(value, str | int | float) else ""
    return f"setting {name}: {err['msg']}{shown}"
