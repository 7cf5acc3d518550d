"""Node-wide settings, read once from the environment (prefix ``FQ_``) and the command line.

Each service adds its own knobs in ``services/<name>/config.py``; nothing else reads
``os.environ``. What every service of a node must agree on lives here, such as the case
vocabulary (``FQ_CATEGORIES``, ``FQ_CHANNELS``), which the services and the gateway get from
``NodeContext.settings``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from fengqiao.cases.vocabulary import DEFAULT_CATEGORIES, DEFAULT_CHANNELS, Vocabulary
from fengqiao.clock import Clock, ScaledClock, SystemClock
from fengqiao.security.keyring import KeyringError, node_keyring
from fengqiao.security.sealing import Keyring, parse_key

ALL_SERVICES = ("intake", "routing", "assessment", "federation")
PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "placeholder", "xxx"}
_SEPARATORS = re.compile(r"[,，、]")  # the full-width ones too, as a Chinese keyboard types them


class MissingSecret(ValueError):
    """A required secret is missing or still a placeholder."""


class NodeSettings(BaseSettings):
    """How one node (a center) runs: who it is, where its broker and database are."""

    model_config = SettingsConfigDict(env_prefix="FQ_", extra="ignore")

    node_code: str = Field(description="division code of this node")
    topology_file: Path = Field(description="the county's topology YAML")
    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("DATABASE_URL", "FQ_DATABASE_URL", "database_url"),
        description="SQLAlchemy URL; empty means a SQLite file in data_dir",
    )
    nats_url: str = "nats://127.0.0.1:4222"
    data_dir: Path = Path(".fengqiao/data")
    # NoDecode: lists come as text ("intake,routing"), split by the validators below, or JSON.
    services: Annotated[tuple[str, ...], NoDecode] = ALL_SERVICES
    categories: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_CATEGORIES,
        description='the county\'s case categories (GB/T 31000 "9+X": the shared ones and its own), '
        "comma-separated or a JSON list",
    )
    channels: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_CHANNELS, description="the channels a case may come by, comma-separated or a JSON list"
    )
    grpc_port: int | None = Field(default=None, description="overrides the topology's port")
    http_port: int | None = Field(default=None, description="overrides the topology's port")
    bind_host: str | None = Field(
        default=None, description="address gRPC and HTTP bind to instead of the topology's host (0.0.0.0 in a pod)"
    )
    metrics_port: int | None = Field(
        default=None, description="the /metrics port; overrides the topology's metrics_port; 0: any free port"
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="address /metrics binds to: loopback unless a scraper elsewhere needs it"
    )
    serve_http: bool = True
    service_addresses: dict[str, str] = Field(
        default_factory=dict,
        description="gRPC address of services run by another process of this node, by name",
    )
    token_secret: SecretStr = Field(description="signs operator tokens; at least 32 characters")
    personal_data_key: SecretStr | None = Field(
        default=None,
        description="the county's key sealing parties' personal data at rest: base64 of 32 random bytes, "
        "the same at every node of the county (`python -m fengqiao.security.sealing` prints a new one); "
        "beside a keyring file, one of its older keys",
    )
    personal_keyring: Path | None = Field(
        default=None,
        description="the node's keyring file of personal-data keys (`fengqiao keys rotate` writes it; "
        "read again when it changes); FQ_PERSONAL_DATA_KEY alone serves while it does not exist",
    )
    token_ttl_minutes: int = 8 * 60
    admin_password: SecretStr | None = Field(default=None, description="seeds the admin account")
    open311_api_key: SecretStr | None = Field(default=None, description="registers an Open311 api_key at start-up")
    grpc_call_timeout_s: float = 5.0
    tls_dir: Path | None = Field(
        default=None, description="ca.crt and <code>.crt/.key from `fengqiao pki`: gRPC over mTLS when set"
    )
    clock_speed: float = Field(
        default=1.0, gt=0, description="run the node's clock this many times faster (the soak's compressed year)"
    )
    clock_start: dt.datetime | None = Field(
        default=None, description="with clock_speed: the node's time at Unix time clock_wall_start"
    )
    clock_wall_start: float = 0.0
    otel_traces_exporter: str = Field(
        default="none",
        validation_alias=AliasChoices("OTEL_TRACES_EXPORTER", "otel_traces_exporter"),
    )
    otel_service_name: str = Field(
        default="fengqiao",
        validation_alias=AliasChoices("OTEL_SERVICE_NAME", "otel_service_name"),
    )

    @field_validator("services", "categories", "channels", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        """A list from the environment: a JSON list, or words separated by commas."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON list: {exc}") from exc
        return tuple(word.strip() for word in _SEPARATORS.split(text) if word.strip())

    @field_validator("categories", "channels")
    @classmethod
    def _distinct_words(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        name = f"FQ_{str(info.field_name).upper()}"
        if not value:
            raise ValueError(f"{name} must list at least one word")
        if any(not word.strip() or word != word.strip() for word in value):
            raise ValueError(f"{name} must not hold blank words or words with surrounding spaces")
        repeated = sorted({word for word in value if value.count(word) > 1})
        if repeated:
            raise ValueError(f"{name} lists {', '.join(repeated)} more than once")
        return value

    @field_validator("services")
    @classmethod
    def _known_services(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(value) - set(ALL_SERVICES)
        if unknown:
            raise ValueError(f"unknown services: {sorted(unknown)}")
        return value

    @field_validator("clock_start")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("FQ_CLOCK_START needs a UTC offset, e.g. 2026-01-01T00:00:00+08:00")
        return value

    @field_validator("token_secret")
    @classmethod
    def _real_secret(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if raw.strip().lower() in PLACEHOLDER_SECRETS or len(raw) < 32:
            raise MissingSecret("FQ_TOKEN_SECRET is missing or a placeholder (need 32+ characters)")
        return value

    @field_validator("personal_data_key")
    @classmethod
    def _real_key_bytes(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        try:
            parse_key(value.get_secret_value())
        except ValueError as exc:
            raise MissingSecret(f"FQ_PERSONAL_DATA_KEY is missing or malformed: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _some_personal_key(self) -> NodeSettings:
        try:
            self.keyring()
        except KeyringError as exc:
            raise MissingSecret(f"FQ_PERSONAL_DATA_KEY / FQ_PERSONAL_KEYRING: {exc}") from exc
        return self

    def keyring(self) -> Keyring:
        """The node's personal-data keyring (its file, read again when it changes, and its key)."""
        env = self.personal_data_key.get_secret_value() if self.personal_data_key is not None else None
        return node_keyring(self.personal_keyring, env)

    @field_validator("open311_api_key")
    @classmethod
    def _real_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise MissingSecret("FQ_OPEN311_API_KEY is too short (need 16+ characters)")
        return value

    def clock(self) -> Clock:
        """The wall clock, or the scaled clock the ``clock_*`` settings describe."""
        if self.clock_start is None and self.clock_speed == 1.0:
            return SystemClock()
        start = self.clock_start or dt.datetime.fromtimestamp(self.clock_wall_start, dt.UTC)
        return ScaledClock(start=start, wall_start=self.clock_wall_start, speed=self.clock_speed)

    def vocabulary(self) -> Vocabulary:
        """The categories and channels this node's cases may be filed under."""
        return Vocabulary(self.categories, self.channels)

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file per node."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / f'{self.node_code}.db').resolve()}"


class LogSettings(BaseSettings):
    """How a process logs: read by the entry point before anything else (``FQ_LOG_FORMAT``)."""

    model_config = SettingsConfigDict(env_prefix="FQ_", extra="ignore")

    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one JSON object a line (collectors); text: for people (make run)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
