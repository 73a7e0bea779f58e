"""Typed settings: the only module of socialpulse that reads the environment.

Every knob is an environment variable with the ``SOCIALPULSE_`` prefix
(``SOCIALPULSE_WINDOWS=5m,1h``), or a field of a ``.env`` file in the working directory. Secrets are
``SecretStr`` so that they never show in a repr, a log line or an exception.
"""

from __future__ import annotations

import tomllib
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from streams.core.schedule import NO_SCHEDULES, BusinessHours, BusinessSchedules, parse_schedules
from streams.core.windows import Window, parse_duration


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """All configuration of a socialpulse process."""

    model_config = SettingsConfigDict(
        env_prefix="SOCIALPULSE_", env_file=".env", extra="ignore", frozen=True
    )

    # --- Kafka connection -------------------------------------------------------------------
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None

    # --- Embedded local broker (used when the bootstrap address is loopback and silent) ---
    kafka_embedded: bool = True
    kafka_version: str = "4.4.0"
    kafka_cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "socialpulse")
    kafka_heap: str = "512m"
    kafka_data_dir: Path = Path("var/kafka")
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535)

    # --- Topics -------------------------------------------------------------------------------
    input_topic: str = "social.interactions"
    dlq_topic: str = "social.interactions.dlq"
    topic_partitions: int = Field(default=4, ge=1)
    topic_replication: int = Field(default=1, ge=1)

    # --- Worker -------------------------------------------------------------------------------
    app_id: str = "socialpulse"
    data_dir: Path = Path("var/worker")
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    # A request's headers must arrive within this (slowloris); an idle keep-alive connection is
    # closed after this; at most this many connections at once (the rest are closed at once).
    web_header_timeout_seconds: float = Field(default=10.0, gt=0)
    web_idle_timeout_seconds: float = Field(default=30.0, gt=0)
    web_max_connections: int = Field(default=64, ge=1)
    # GET /kpis: an account's answer is reused while nothing new was applied, for at most this
    # long; at most this many computes at a time (more waiting than 4 x that are answered 503).
    kpis_cache_seconds: float = Field(default=1.0, ge=0)
    kpis_max_concurrent: int = Field(default=2, ge=1)
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    store: str = "memory://"
    log_level: str = "WARNING"
    # Aggregates are made durable (table changelog + offset commit) at most this often ...
    flush_interval_seconds: float = Field(default=5.0, gt=0)
    # ... or after this many events, whichever comes first.
    flush_max_events: int = Field(default=20_000, ge=1)
    # The repartition topic's records below the committed offsets are deleted this often.
    repartition_purge_seconds: float = Field(default=30.0, gt=0)
    # Owning partitions with work left and neither applying nor committing for this long: one
    # log line, socialpulse_stalled_seconds, and GET /ready fails (streams.worker.watchdog) ...
    stall_warn_seconds: float = Field(default=60.0, gt=0)
    # ... and for this long: the worker exits with code 3 so that its supervisor restarts it.
    stall_exit_seconds: float = Field(default=300.0, gt=0)
    # Tests only: provoke a stall ("stop_fetcher": the fetcher stops after the first batch;
    # "stop_commits": offsets are never committed again; "stop_recovery": the changelogs of a
    # recovery are never fetched). Never set in production.
    fault_injection: Literal["none", "stop_fetcher", "stop_commits", "stop_recovery"] = "none"

    # --- KPI semantics (SPEC §2-§4) -----------------------------------------------------------
    windows: Annotated[list[str], NoDecode] = ["5m", "1h", "24h"]
    clock: Literal["wall", "event"] = "wall"
    grace_seconds: float = Field(default=300.0, ge=0)
    future_tolerance_seconds: float = Field(default=300.0, ge=0)
    dedup_horizon_seconds: float = Field(default=86_400.0, gt=0)
    max_record_bytes: int = Field(default=65_536, ge=256)
    # A dead letter longer than this is stored truncated (headers truncated and original_size):
    # below the broker's default max.message.bytes (1 MiB) and the flush's batch (512 KiB).
    dead_letter_max_bytes: int = Field(default=256 * 1024, ge=1024, le=448 * 1024)
    response_sla_seconds: float = Field(default=3600.0, gt=0)
    # A TOML file of business hours (SPEC §3, care; ``streams.core.schedule``): an account with
    # a schedule also gets business-hours response times, and its SLA counts business hours.
    business_hours_file: Path | None = None
    # account -> market, as "acme=coffee,rival=coffee"; unlisted accounts are in default_market.
    markets: Annotated[dict[str, str], NoDecode] = {}
    default_market: str = "default"
    max_accounts: int = Field(default=1000, ge=1)
    max_campaigns_per_account: int = Field(default=100, ge=1)
    # Every other label value that comes from event data is capped per account too (SPEC §4);
    # beyond a cap the events count under the value "_other" (platform, goal, currency).
    max_platforms_per_account: int = Field(default=20, ge=1)
    max_goals_per_account: int = Field(default=20, ge=1)
    max_currencies_per_account: int = Field(default=10, ge=1)
    # Care staff on replies (SPEC §1: ``agent`` and ``team``), capped per account the same way.
    max_agents_per_account: int = Field(default=50, ge=1)
    max_teams_per_account: int = Field(default=10, ge=1)

    # --- Reports (``socialpulse report``; the command's flags override these) --------------
    # The Prometheus that scrapes the workers and has the rules of deploy/prometheus/rules.
    report_prometheus_url: str = "http://127.0.0.1:9090"
    # A worker's web address, for the top posts (GET /kpis; the owner of the account answers).
    report_worker_url: str | None = None
    report_dir: Path = Path("reports")
    # Headless Chromium for the PDF; None: found on PATH (Debian's chromium).
    report_chromium: str | None = None
    # Chromium's sandbox: None keeps it (but as root, where it cannot run); false turns it off,
    # which a container without the user namespaces it needs must (deploy/k8s, deploy/compose).
    report_chromium_sandbox: bool | None = None
    report_timeout_seconds: float = Field(default=30.0, gt=0)

    # --- The demo (``socialpulse up``) --------------------------------------------------------
    # Its own Prometheus and Alertmanager on loopback (``--no-prometheus`` leaves them out); the
    # Alertmanager's cluster port is off, so 9094 is free for its web port (9093 is Kafka's
    # controller). Their data, rendered rules and the processes' logs go under ``demo_dir``.
    demo_prometheus_port: int = Field(default=9090, ge=1, le=65535)
    demo_alertmanager_port: int = Field(default=9094, ge=1, le=65535)
    demo_dir: Path = Path("var/demo")
    # Seconds between two refreshes of the terminal view (plain lines: ten times that).
    demo_refresh_seconds: float = Field(default=2.0, gt=0)

    @field_validator("windows", mode="before")
    @classmethod
    def _windows(cls, value: Any) -> Any:
        value = _split_csv(value)
        lengths: dict[float, str] = {}
        for label in value:
            seconds = parse_duration(label)
            if seconds in lengths:
                raise ValueError(f"windows {lengths[seconds]!r} and {label!r} have the same "
                                 "length: each window once")
            lengths[seconds] = label
        return value

    @model_validator(mode="after")
    def _stall_limits(self) -> Settings:
        if self.stall_exit_seconds < self.stall_warn_seconds:
            raise ValueError("stall_exit_seconds must be >= stall_warn_seconds")
        return self

    @field_validator("business_hours_file")
    @classmethod
    def _business_hours(cls, path: Path | None) -> Path | None:
        if path is not None:
            read_business_hours(path)  # a bad file is a bad setting: refused at start
        return path

    @cached_property
    def business_hours(self) -> BusinessSchedules:
        """The schedules of ``business_hours_file`` (none without one)."""
        path = self.business_hours_file
        return NO_SCHEDULES if path is None else read_business_hours(path)

    def business_hours_of(self, account: str) -> BusinessHours | None:
        """The schedule ``account`` follows, if any."""
        return self.business_hours.of(account, self.market_of(account))

    @field_validator("markets", mode="before")
    @classmethod
    def _markets(cls, value: Any) -> Any:
        if isinstance(value, str):
            pairs = _split_csv(value)
            out: dict[str, str] = {}
            for pair in pairs:
                account, sep, market = pair.partition("=")
                if not sep or not account.strip() or not market.strip():
                    raise ValueError(f"markets entry must be account=market: {pair!r}")
                out[account.strip()] = market.strip()
            return out
        return value

    @cached_property
    def window_specs(self) -> tuple[Window, ...]:
        """The windows, shortest first."""
        return tuple(sorted((Window.parse(w) for w in self.windows), key=lambda w: w.length_ms))

    @property
    def retention_ms(self) -> int:
        """How far behind the clock an event may be and still count (largest window + grace)."""
        return max(w.length_ms for w in self.window_specs) + int(self.grace_seconds * 1000)

    @property
    def changelog_topic(self) -> str:
        """The state table's changelog, as faust names it (``{app id}-{table}-changelog``)."""
        return f"{self.app_id}-{STATE_TABLE}-changelog"

    @property
    def repartition_topic(self) -> str:
        """Where a record read outside its account's home partition goes (SPEC §1): keyed by
        the account, co-partitioned with the input (as faust's ``group_by`` names them)."""
        return f"{self.app_id}-interactions-repartition"

    @property
    def dedup_store_path(self) -> Path:
        """The local RocksDB of the dedup index's sealed runs (rebuilt from the changelog at
        every start, so one per worker process: the web port tells the workers of one host)."""
        return self.data_dir / f"{self.app_id}-dedup-{self.web_port}.rocksdb"

    @property
    def market_topic(self) -> str:
        """Compacted topic of per-partition mention totals by market (share of voice)."""
        return f"{self.app_id}-market-mentions"

    def market_of(self, account: str) -> str:
        return self.markets.get(account, self.default_market)

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Connection arguments shared by every aiokafka client we create (producer, admin)."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            kwargs["ssl_context"] = create_ssl_context(
                cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None,
                certfile=str(self.kafka_ssl_certfile) if self.kafka_ssl_certfile else None,
                keyfile=str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None,
            )
        if self.kafka_security_protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = self.kafka_sasl_mechanism
            kwargs["sasl_plain_username"] = self.kafka_sasl_username
            kwargs["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        return kwargs


def read_business_hours(path: Path) -> BusinessSchedules:
    """Parse a business-hours TOML file; ``ValueError`` in one line when it cannot serve."""
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not TOML: {exc}") from None
    try:
        return parse_schedules(doc)
    except ValueError as exc:
        raise ValueError(f"{str(path)!r}: {exc}") from None


# The name of the worker's one faust table (its changelog topic is named after it).
STATE_TABLE = "state"

# The exit code of a process whose settings (or the topics and state they name) cannot work:
# the CLI's for a bad value or an unreachable broker, the worker's for state it must not read.
EXIT_BAD_SETTINGS = 2


def load() -> Settings:
    """Read the environment once; callers pass the result down instead of reading it again."""
    return Settings()
