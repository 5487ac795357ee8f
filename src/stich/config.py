"""Settings from the environment (prefix ``STICH_``), validated once at start.

Invalid settings raise :class:`SettingsError` carrying one line that names the setting;
the CLI prints that line and exits with status 2.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import secrets
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import structlog
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

SERVER_KEY_BYTES = 32
VAULT_KEY_BYTES = 32
DEFAULT_DATABASE_URL = "sqlite:///./stich.db"
# A browser origin: scheme, host and maybe a port; no path (what an Origin header holds).
_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    CONSOLE = "console"
    JSON = "json"


class SettingsError(Exception):
    """A setting is missing or malformed; ``str(err)`` is one line naming it."""


def normalize_database_url(raw: str) -> str:
    """Parse a database URL and pin the driver: ``sqlite`` (stdlib) or ``postgresql+psycopg``."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ValueError(
            "is not a database URL; expected e.g. sqlite:///./stich.db "
            "or postgresql+psycopg://user@host:5432/dbname"
        ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise ValueError("SQLite is supported through the standard sqlite3 driver only")
        if not url.database or url.database == ":memory:":
            raise ValueError("SQLite needs a file path, e.g. sqlite:///./stich.db")
        return url.set(drivername="sqlite").render_as_string(hide_password=False)
    if backend == "postgresql":
        if url.drivername not in ("postgresql", "postgres", "postgresql+psycopg"):
            raise ValueError("PostgreSQL is supported through psycopg 3 (postgresql+psycopg://)")
        if not url.database:
            raise ValueError("names no database, e.g. postgresql+psycopg://user@host/dbname")
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ValueError(f"uses the unsupported backend {backend!r}; use sqlite or postgresql")


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def parse_key_ring(raw: str) -> dict[str, bytes]:
    """``"kid1:base64key,kid2:base64key"`` -> ordered ``{kid: key}``; the first key encrypts."""
    ring: dict[str, bytes] = {}
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        if not sep or not (key_id.isascii() and key_id.isidentifier()) or len(key_id) > 32:
            raise ValueError("each entry must be KEY_ID:BASE64KEY with a short alphanumeric id")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"key {key_id!r} is not valid base64") from None
        if len(key) != VAULT_KEY_BYTES:
            raise ValueError(f"key {key_id!r} must be 256 bits (32 bytes), got {len(key) * 8}")
        if key_id in ring:
            raise ValueError(f"key id {key_id!r} appears twice")
        ring[key_id] = key
    return ring


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STICH_", extra="ignore", frozen=True, validate_default=True
    )

    env: Environment = Environment.DEVELOPMENT
    database_url: str = DEFAULT_DATABASE_URL
    read_replica_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # HMAC key for hashing tokens, API keys and viewer ids. Generated into
    # ``server_key_path()`` on first local use; required in production.
    server_key: SecretStr | None = None
    # Unset: server.key in ``local_keys_dir()`` (where the database is, not the cwd).
    server_key_file: Path | None = None
    # AES-256-GCM key ring for the secrets vault: "kid:base64key,..."; first one encrypts.
    secrets_keys: SecretStr | None = None
    # Without STICH_SECRETS_KEYS outside production, a local ring is generated here
    # (unset: secrets.keys in ``local_keys_dir()``).
    secrets_keys_file: Path | None = None
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.CONSOLE
    slow_query_ms: float = Field(default=200.0, ge=0)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Server processes of `stich serve` (each with its own pools); see docs/operations.md.
    web_concurrency: int = Field(default=1, ge=1, le=64)
    # Forwarding headers (X-Forwarded-For) are believed only from these proxy addresses.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Browser origins (scheme://host[:port], or "*") allowed to call the API (CORS); none.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    # Connections per PostgreSQL pool, kept open (no overflow): the most a process uses at once.
    pool_size: int = Field(default=15, ge=1, le=200)
    # Read replicas (PostgreSQL). A replica is skipped while it lags beyond BOTH limits
    # (GitLab's defaults); a read with a bookmark waits this long for a replica to catch
    # up before it goes to the primary.
    replica_max_lag_seconds: float = Field(default=60.0, gt=0)
    replica_max_lag_bytes: int = Field(default=8 * 1024 * 1024, ge=0)
    replica_bookmark_wait_ms: float = Field(default=100.0, ge=0, le=10_000)
    replica_check_interval_seconds: float = Field(default=2.0, ge=0.05, le=3600)
    replica_connect_timeout_seconds: int = Field(default=2, ge=1, le=60)
    # How long a replica may take to answer (a connection, a statement) before the read
    # gives up on it and moves to another node: a frozen server never says no.
    replica_answer_timeout_seconds: float = Field(default=1.0, ge=0.05, le=60)

    # --- identity and authentication (docs/auth.md) ---
    # argon2id cost; the defaults are RFC 9106's low-memory profile (t=3, 64 MiB, p=4).
    # Raising them is safe: existing hashes are upgraded on their owner's next sign-in.
    argon2_time_cost: int = Field(default=3, ge=1, le=50)
    argon2_memory_cost: int = Field(default=65536, ge=8, le=4 * 1024 * 1024)  # KiB
    argon2_parallelism: int = Field(default=4, ge=1, le=64)
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86400, ge=300, le=365 * 86400)
    # A rotated refresh token presented again within this many seconds is refused without
    # revoking its family (two tabs refreshing at once); 0 treats every replay as theft.
    refresh_reuse_grace_seconds: int = Field(default=0, ge=0, le=120)
    max_sessions_per_user: int = Field(default=10, ge=1, le=1000)
    max_api_keys_per_user: int = Field(default=25, ge=1, le=1000)
    # From the Nth consecutive failure an account (or unknown email) is locked for
    # base * 2^(failures - N) seconds, at most max.
    lockout_threshold: int = Field(default=5, ge=1, le=100)
    lockout_base_seconds: int = Field(default=60, ge=1, le=86400)
    lockout_max_seconds: int = Field(default=3600, ge=1, le=30 * 86400)
    # Failed password sign-ins per client address (IPv6: per /64) within the window;
    # beyond them that client is refused (429) before any password is checked.
    login_client_max_failures: int = Field(default=20, ge=1, le=100_000)
    login_client_window_seconds: int = Field(default=900, ge=1, le=86400)
    # OAuth (GitHub, Google). A provider is enabled when its client id is set; its
    # endpoints are settings so tests (and GitHub Enterprise) can point elsewhere.
    oauth_redirect_base_url: str = "http://127.0.0.1:8000"
    oauth_state_ttl_seconds: int = Field(default=600, ge=30, le=3600)
    oauth_http_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    oauth_github_client_id: str | None = None
    oauth_github_client_secret: SecretStr | None = None
    oauth_github_authorize_url: str = "https://github.com/login/oauth/authorize"
    oauth_github_token_url: str = "https://github.com/login/oauth/access_token"  # noqa: S105
    oauth_github_api_url: str = "https://api.github.com"
    oauth_google_client_id: str | None = None
    oauth_google_client_secret: SecretStr | None = None
    oauth_google_authorize_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    oauth_google_token_url: str = "https://oauth2.googleapis.com/token"  # noqa: S105
    oauth_google_userinfo_url: str = "https://openidconnect.googleapis.com/v1/userinfo"
    # Google's id_token signing keys (JWKS), fetched and cached to verify sign-ins.
    oauth_google_jwks_url: str = "https://www.googleapis.com/oauth2/v3/certs"
    # Email verification, password reset and email change (docs/auth.md#email). Links in
    # the mails start with the public URL; tokens expire after these many seconds.
    public_url: str = "http://127.0.0.1:8000"
    product_name: str = Field(default="Stich", min_length=1, max_length=100)
    email_verification_ttl_seconds: int = Field(default=86400, ge=60, le=30 * 86400)
    password_reset_ttl_seconds: int = Field(default=1800, ge=60, le=86400)
    email_change_ttl_seconds: int = Field(default=86400, ge=60, le=30 * 86400)
    # never | publish (unverified accounts cannot make apps public) | always (nor sign in).
    require_verified_email: Literal["never", "publish", "always"] = "never"
    # One verification / reset / change mail per address and purpose within this window.
    email_cooldown_seconds: int = Field(default=60, ge=0, le=86400)
    # And at most this many such requests per client address (IPv6: /64) per window,
    # whatever the addresses (429 beyond); in each server process's memory.
    email_client_max_requests: int = Field(default=20, ge=1, le=100_000)
    email_client_window_seconds: int = Field(default=3600, ge=1, le=86400)
    # Mail delivery: smtp://user:pass@host:587?starttls=true or smtps://host:465. Unset,
    # messages are written as .eml files into the outbox directory instead.
    smtp_url: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    mail_from: str = Field(default="Stich <no-reply@localhost>", min_length=3, max_length=320)
    # Unset: "outbox" beside the server key file (.stich/outbox by default).
    mail_outbox_dir: Path | None = None
    # Delivery attempts per message (the first and the retries), spaced by the delay x2^n.
    mail_send_attempts: int = Field(default=4, ge=1, le=20)
    mail_retry_delay_seconds: float = Field(default=2.0, ge=0, le=3600)
    # Soft-deleted apps can be restored for this many days; `stich apps purge` removes them after.
    app_retention_days: int = Field(default=30, ge=1, le=3650)

    # --- gallery and analytics (docs/gallery.md) ---
    # A viewer's views of an app count once per window of this many seconds. Windows are
    # aligned to the epoch, and must divide a day so none straddles UTC midnight.
    view_dedup_window_seconds: int = Field(default=1800, ge=60, le=86400)
    # Windowed feed rankings (popular/viewed over a period, trending) are snapshots that
    # `stich maintenance run` rebuilds when older than the refresh interval; a first page
    # uses a snapshot up to the max age, else computes the ranking live.
    feed_ranking_refresh_seconds: int = Field(default=300, ge=1, le=86400)
    feed_ranking_max_age_seconds: int = Field(default=900, ge=0, le=7 * 86400)

    # --- view queue and background work (docs/operations.md#views-and-the-worker) ---
    # Views are queued by the request and counted in batches. Without a URL the queue is a
    # bounded buffer in each server process; with redis://... it is a Redis stream that
    # `stich worker` consumes (several processes or hosts).
    view_queue_url: str | None = None
    view_queue_stream: str = Field(default="stich:views", min_length=1, max_length=200)
    view_flush_ms: int = Field(default=250, ge=10, le=60_000)
    view_batch_size: int = Field(default=1000, ge=1, le=10_000)
    # In-process: views beyond this many waiting are shed (counted in a metric). Redis:
    # the stream is trimmed to about this many entries.
    view_buffer_size: int = Field(default=100_000, ge=100, le=10_000_000)
    # Redis: entries a consumer read but did not acknowledge for this long are taken over.
    view_claim_idle_seconds: int = Field(default=30, ge=1, le=86_400)
    # Background work (maintenance on a schedule, and with Redis the view consumer) runs
    # in `stich worker`; "auto" also runs the maintenance schedule in each `stich serve`
    # process when no Redis queue is configured, so one server is a whole deployment.
    embedded_worker: Literal["auto", "on", "off"] = "auto"
    # Scheduled purges and retention (every job but feed_rankings, which follows
    # feed_ranking_refresh_seconds); 0 turns the schedule off.
    maintenance_interval_seconds: int = Field(default=3600, ge=0, le=7 * 86400)

    # --- rate limits and request limits (docs/operations.md#rate-limits-and-request-limits) ---
    # Budgets in the notation of the `limits` library ("10/hour", "3/2 seconds"), each
    # counted per client address (IPv6: per /64) and, where a credential is sent, per
    # credential. In-process by default (each server process counts alone); with
    # redis://... every process and host shares one count.
    rate_limit_enabled: bool = True
    rate_limit_url: str | None = None
    rate_limit_prefix: str = Field(default="stich-rate", min_length=1, max_length=100)
    # The sliding-window counter keeps two counters per client (the in-process moving
    # window keeps a list per client it has ever seen); moving-window is exact.
    rate_limit_strategy: Literal["moving-window", "fixed-window", "sliding-window-counter"] = (
        "sliding-window-counter"
    )
    rate_limit_signup: str = "20/hour"
    rate_limit_signin: str = "30/15 minutes"
    rate_limit_signin_email: str = "10/15 minutes"  # per submitted email (keyed hash)
    rate_limit_refresh: str = "120/hour"
    rate_limit_password: str = "10/hour"  # noqa: S105 (a budget, not a password)
    rate_limit_write: str = "120/minute"
    rate_limit_view: str = "120/minute"
    rate_limit_feed: str = "300/minute"
    # Larger bodies are refused (413) before they are read; longer query strings (414).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    max_query_string_bytes: int = Field(default=4096, ge=256, le=1024 * 1024)

    # --- operations (docs/operations.md) ---
    # Stich Studio, the admin UI: mounted at /admin in the API app when enabled (and
    # served alone by `stich studio`). A sign-in lasts this many hours at most.
    studio_enabled: bool = False
    studio_session_hours: float = Field(default=8.0, gt=0, le=7 * 24)
    # GET /metrics (Prometheus text). Off by default; with a token set, scrapers must send
    # it as "Authorization: Bearer <token>".
    metrics_enabled: bool = False
    metrics_token: SecretStr | None = None
    # Optional integrations, each enabled by its setting alone (extras stich[sentry] and
    # stich[otel]). The OpenTelemetry exporter reads the standard OTEL_EXPORTER_OTLP_* variables.
    sentry_dsn: SecretStr | None = None
    sentry_traces_sample_rate: float = Field(default=0.0, ge=0, le=1)
    otel_enabled: bool = False
    # `stich maintenance run`: audit entries and raw view events older than these go
    # (the daily rollups keep the view history); rows per delete, one transaction each.
    audit_retention_days: int = Field(default=365, ge=1, le=36500)
    view_retention_days: int = Field(default=90, ge=1, le=36500)
    maintenance_batch_size: int = Field(default=1000, ge=1, le=100_000)

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            from stich.mail.transport import parse_smtp_url  # no import cycle at load

            parse_smtp_url(value.get_secret_value())
            return value
        return None

    @field_validator("view_queue_url")
    @classmethod
    def _check_view_queue_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL (or unset)")
        return value or None

    @field_validator("rate_limit_url")
    @classmethod
    def _check_rate_limit_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "memory://")):
            raise ValueError("must be a redis://, rediss:// or memory:// URL (or unset)")
        return value or None

    @field_validator(
        "rate_limit_signup",
        "rate_limit_signin",
        "rate_limit_signin_email",
        "rate_limit_refresh",
        "rate_limit_password",
        "rate_limit_write",
        "rate_limit_view",
        "rate_limit_feed",
    )
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        from limits import parse  # the library's own notation, checked at start

        parse(value)  # ValueError names what is wrong
        return value

    @field_validator("view_dedup_window_seconds")
    @classmethod
    def _check_view_window(cls, value: int) -> int:
        if 86400 % value:
            raise ValueError("must divide a day (86400 seconds), e.g. 900, 1800 or 3600")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("read_replica_urls", mode="before")
    @classmethod
    def _split_replicas(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("trusted_proxies", "cors_origins", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("cors_origins")
    @classmethod
    def _check_cors_origins(cls, value: list[str]) -> list[str]:
        origins = [entry.rstrip("/") for entry in value]  # as browsers send Origin
        for entry in origins:
            if entry != "*" and not _ORIGIN.fullmatch(entry):
                raise ValueError(f"{entry!r} is not an origin such as https://app.example.com")
        return origins

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value

    @field_validator("read_replica_urls")
    @classmethod
    def _check_replicas(cls, value: list[str]) -> list[str]:
        return [normalize_database_url(url) for url in value]

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("server_key")
    @classmethod
    def _check_server_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (use `stich secrets generate-key`)")
        return value

    @field_validator("secrets_keys")
    @classmethod
    def _check_secrets_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_key_ring(value.get_secret_value())
        return value

    @field_validator(
        "oauth_redirect_base_url",
        "public_url",
        "oauth_github_authorize_url",
        "oauth_github_token_url",
        "oauth_github_api_url",
        "oauth_google_authorize_url",
        "oauth_google_token_url",
        "oauth_google_userinfo_url",
        "oauth_google_jwks_url",
    )
    @classmethod
    def _check_http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or len(value) > 2048:
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_auth_policy(self) -> Settings:
        if self.argon2_memory_cost < 8 * self.argon2_parallelism:
            raise ValueError("STICH_ARGON2_MEMORY_COST must be at least 8 KiB per lane")
        if self.lockout_max_seconds < self.lockout_base_seconds:
            raise ValueError("STICH_LOCKOUT_MAX_SECONDS must be >= STICH_LOCKOUT_BASE_SECONDS")
        if self.access_token_ttl_seconds > self.refresh_token_ttl_seconds:
            raise ValueError("access tokens must not outlive refresh tokens")
        return self

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if self.env is Environment.PRODUCTION:
            if self.server_key is None:
                raise ValueError("STICH_SERVER_KEY is required when STICH_ENV=production")
            if self.replicas_for_sqlite():
                raise ValueError("read replicas need PostgreSQL")
        elif self.replicas_for_sqlite():
            raise ValueError("STICH_READ_REPLICA_URLS needs a PostgreSQL STICH_DATABASE_URL")
        return self

    def replicas_for_sqlite(self) -> bool:
        return bool(self.read_replica_urls) and self.url.get_backend_name() == "sqlite"

    @cached_property
    def url(self) -> URL:
        return make_url(self.database_url)

    @property
    def backend(self) -> str:
        return self.url.get_backend_name()

    @property
    def runs_embedded_worker(self) -> bool:
        """Whether each server process runs the background loop itself."""
        if self.embedded_worker == "auto":
            return self.view_queue_url is None
        return self.embedded_worker == "on"

    def server_key_bytes(self) -> bytes:
        """The HMAC server key; generated once into ``server_key_path()`` outside production."""
        if self.server_key is not None:
            return self.server_key.get_secret_value().encode()
        return _load_or_create_server_key(self.server_key_path())

    def local_keys_dir(self) -> Path:
        """Where local keys live when no file is set: fixed by the database, never by the
        current directory, so a server started anywhere finds the same keys."""
        return local_keys_dir(self.url)

    def server_key_path(self) -> Path:
        return self.server_key_file or self.local_keys_dir() / "server.key"

    def secrets_keys_path(self) -> Path:
        return self.secrets_keys_file or self.local_keys_dir() / "secrets.keys"

    def outbox_dir(self) -> Path:
        """Where mail goes when no SMTP server is configured."""
        return self.mail_outbox_dir or self.server_key_path().parent / "outbox"

    def key_ring(self) -> dict[str, bytes]:
        if self.secrets_keys is None:
            return {}
        return parse_key_ring(self.secrets_keys.get_secret_value())


def local_keys_dir(url: URL) -> Path:
    """``.stich/`` beside a SQLite database file; for PostgreSQL, one directory per server
    and database under the user's data directory: ``$XDG_DATA_HOME/stich/<host>-<port>-
    <database>/`` (``~/.local/share`` when XDG_DATA_HOME is unset or relative)."""
    if url.get_backend_name() == "sqlite":
        return Path(url.database or "stich.db").resolve().parent / ".stich"
    data_home = Path(os.environ.get("XDG_DATA_HOME") or "relative")
    if not data_home.is_absolute():  # the XDG spec: relative values are ignored
        data_home = Path.home() / ".local" / "share"
    name = f"{url.host or 'localhost'}-{url.port or 5432}-{url.database}"
    return data_home / "stich" / re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _load_or_create_server_key(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48).encode()
    path.write_bytes(key)
    path.chmod(0o600)
    structlog.get_logger("stich.config").warning(
        "generated a local server key; set STICH_SERVER_KEY in production",
        path=str(path),
    )
    return key


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment (and overrides), or raise a one-line SettingsError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = [str(part) for part in error.get("loc", ())]
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    if location:
        setting = "STICH_" + location[0].upper()
        return f"invalid setting {setting}: {message}"
    return f"invalid settings: {message}"
