"""Server settings, read from ``BA_*`` environment variables (or given directly)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from banking_analytics.access import check_hs256_secret
from banking_analytics.ingest import PlaidKeyError, PlaidVerificationKey, parse_plaid_keys
from banking_analytics.metrics import DEFAULT_MAX_CELLS, DEFAULT_QUERY_WORKERS
from banking_analytics.monitor._ssrf import Network, parse_networks

__all__ = ["ApiSettings"]

#: Secrets copied from examples and templates; a server configured with one is not secret.
_KNOWN_DEFAULTS = frozenset({"secret", "changeme", "changethis", "password", "jwt-secret"})


class ApiSettings(BaseSettings):
    """How the API server runs. Every field can be set as ``BA_<NAME>`` in the environment.

    End-user tokens are accepted only when one of ``jwt_hs256_secret`` (at least
    32 bytes and an estimated 128 bits, not a template value) or
    ``jwt_rs256_public_key`` (PEM) is set.
    """

    model_config = SettingsConfigDict(env_prefix="BA_", extra="forbid", frozen=True)

    db: str = "duckdb:///demo-data/analytics.duckdb"
    jwt_hs256_secret: SecretStr | None = None
    jwt_rs256_public_key: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    #: The furthest ahead a user token's ``exp`` may lie (a token for ever is refused).
    jwt_max_lifetime_seconds: int = Field(default=86_400, ge=60)
    #: Sustained requests per second each API key (or end user) may make, and the burst above it.
    rate_limit_per_second: float = Field(default=200.0, gt=0)
    rate_limit_burst: int = Field(default=400, ge=1)
    #: Largest request body accepted; larger ones answer 413 before being read whole.
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_page_size: int = Field(default=1000, ge=1)
    #: Evaluate the alert rules in this server, in a background thread (``serve`` with one
    #: process turns it on; with several, run ``banking-analytics monitor`` beside them).
    evaluate_rules: bool = False
    #: How long this server's evaluator holds a rule it evaluates unless renewed: with
    #: several replicas evaluating one PostgreSQL store, the longest a dead one's rules
    #: wait for another to take them over (docs/monitoring.md).
    rule_lease_seconds: float = Field(default=30.0, ge=1)
    #: The event stream (``GET .../stream``): open streams in all and per API key, events
    #: waiting for one slow client before it is cut off, the seconds between heartbeats,
    #: how often the store is read for new transitions and data versions, the most
    #: transitions replayed on resume, and the most metric queries one stream may follow.
    stream_max_connections: int = Field(default=1000, ge=1)
    stream_max_connections_per_key: int = Field(default=20, ge=1)
    stream_queue_events: int = Field(default=256, ge=1)
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0)
    stream_poll_seconds: float = Field(default=0.5, gt=0)
    stream_replay_limit: int = Field(default=1000, ge=1)
    stream_max_queries: int = Field(default=8, ge=0)
    #: How long an ``Idempotency-Key`` and its first response are kept (Stripe keeps 24 h).
    idempotency_retention_hours: int = Field(default=24, ge=1)
    #: How long a verified API key is trusted before the store is asked again (revocation lag).
    key_cache_seconds: float = Field(default=5.0, ge=0)
    #: Threads running the queries a request runs side by side (a dashboard's parts); on
    #: PostgreSQL also the most read connections the server process holds.
    query_workers: int = Field(default=DEFAULT_QUERY_WORKERS, ge=0)
    #: Web origins whose pages may call the API from the browser (the host app's front
    #: end showing a user their own analytics), e.g. ``["https://app.example.com"]``.
    cors_origins: list[str] = Field(default_factory=list)
    #: Most cells (rows x metrics) one metric query may answer; larger ones answer 422
    #: before they run, saying how to narrow them.
    query_max_cells: int = Field(default=DEFAULT_MAX_CELLS, ge=1)
    #: Seconds a read of the store may run before the engine stops it (503, Retry-After).
    statement_timeout_seconds: float = Field(default=30.0, gt=0)
    #: Metric queries and dashboards running at once; ``query_queue`` more wait, each at
    #: most ``query_queue_seconds``, and the rest answer 503 with Retry-After at once.
    query_concurrency: int = Field(default=4, ge=1)
    query_queue: int = Field(default=16, ge=0)
    query_queue_seconds: float = Field(default=5.0, ge=0)
    #: A request's line and headers must arrive within this many seconds (of the
    #: connection opening, or of the request's first byte), and be at most so many bytes.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    #: A request's body must arrive within this many seconds of its headers.
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    #: An idle keep-alive connection is closed after this many seconds.
    keep_alive_seconds: int = Field(default=5, ge=1)
    #: Open connections one client address may hold; more are answered 429 and closed.
    max_connections_per_client: int = Field(default=256, ge=1)
    #: Failed authentications an address may make per minute (sustained, and in a burst)
    #: before its requests answer 429 without their credentials being looked at.
    auth_failures_per_minute: float = Field(default=30.0, gt=0)
    auth_failure_burst: int = Field(default=20, ge=1)
    #: Failed authentications are audited as one entry per address per this many seconds.
    auth_failure_audit_seconds: float = Field(default=60.0, gt=0)
    #: Threads running the synchronous routes (analyses, ingestion, audit writes) at once;
    #: more requests wait their turn. 40 (anyio's own default): with 8, batch ingestion
    #: over HTTP fell from 53,350 to 43,753 events/s while /healthz under 200 clients kept
    #: its p99 (57.8 against 59.4 ms; benchmarks/RESULTS.md, http and http_health).
    worker_threads: int = Field(default=40, ge=1, le=256)
    #: ``/readyz`` answers 503 when the store takes longer than this to answer.
    readiness_timeout_seconds: float = Field(default=5.0, gt=0)
    #: Signing secrets (``whsec_...``) of the Stripe webhook endpoint; in the environment,
    #: comma-separated. Several while a secret is rolled: a webhook signed under any of
    #: them is accepted. None: ``POST .../webhooks/stripe`` answers 404 (docs/stripe.md).
    stripe_webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    #: How far a webhook's signed timestamp may be from now, either way (Stripe: 300 s).
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    #: Plaid's webhook verification keys (JWKs) as JSON: one key, a list, a JWK Set
    #: ``{"keys": [...]}`` or ``/webhook_verification_key/get``'s answer; or the path of
    #: a file holding that JSON. Neither: ``POST .../webhooks/plaid`` answers 404
    #: (docs/plaid.md). Read when the server starts; never fetched from Plaid.
    plaid_webhook_keys: str | None = None
    plaid_webhook_keys_file: Path | None = None
    #: How far a Plaid webhook's ``iat`` may be from now, either way (Plaid: 5 minutes).
    plaid_webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)

    #: Networks (CIDR) notifications may be sent to although they are not public: the SSRF
    #: rule refuses loopback, link-local and private addresses otherwise
    #: (docs/notifications.md). In the environment, comma-separated.
    notify_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin == "*" or not origin.startswith(("https://", "http://")):
                raise ValueError(
                    f"cors_origins: {origin!r} is not an origin like https://app.example.com "
                    "(a wildcard would let any site use a visitor's token)"
                )
        return origins

    @field_validator("stripe_webhook_secrets", "notify_allowed_networks", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("notify_allowed_networks")
    @classmethod
    def _networks(cls, networks: list[str]) -> list[str]:
        parse_networks(networks)
        return networks

    def notify_networks(self) -> tuple[Network, ...]:
        """The networks of ``notify_allowed_networks``."""
        return parse_networks(self.notify_allowed_networks)

    @field_validator("stripe_webhook_secrets")
    @classmethod
    def _real_secrets(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        for secret in secrets:
            if secret.get_secret_value().lower() in _KNOWN_DEFAULTS:
                raise ValueError("stripe_webhook_secrets holds a template default, not a secret")
        return secrets

    @field_validator("jwt_hs256_secret")
    @classmethod
    def _refuse_weak_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if secret.lower() in _KNOWN_DEFAULTS:
            raise ValueError("jwt_hs256_secret is a template default, not a secret")
        check_hs256_secret(secret)
        return value

    @model_validator(mode="after")
    def _one_token_key(self) -> ApiSettings:
        if self.jwt_hs256_secret is not None and self.jwt_rs256_public_key is not None:
            raise ValueError("set jwt_hs256_secret or jwt_rs256_public_key, not both")
        return self

    @field_validator("plaid_webhook_keys")
    @classmethod
    def _plaid_keys_read(cls, text: str | None) -> str | None:
        if text is not None:
            _parsed_plaid_keys(text, "")
        return text

    @field_validator("plaid_webhook_keys_file")
    @classmethod
    def _plaid_keys_file_read(cls, path: Path | None) -> Path | None:
        if path is not None:
            _parsed_plaid_keys(_read(path), f"{path}: ")
        return path

    @model_validator(mode="after")
    def _one_plaid_key_source(self) -> ApiSettings:
        if self.plaid_webhook_keys is not None and self.plaid_webhook_keys_file is not None:
            raise ValueError("set plaid_webhook_keys or plaid_webhook_keys_file, not both")
        return self

    def plaid_verification_keys(self) -> dict[str, PlaidVerificationKey]:
        """The configured Plaid verification keys by ``kid`` (empty: none configured)."""
        if self.plaid_webhook_keys_file is not None:
            path = self.plaid_webhook_keys_file
            return _parsed_plaid_keys(_read(path), f"{path}: ")
        if self.plaid_webhook_keys is not None:
            return _parsed_plaid_keys(self.plaid_webhook_keys, "")
        return {}


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror}") from None


def _parsed_plaid_keys(text: str, where: str) -> dict[str, PlaidVerificationKey]:
    try:
        return parse_plaid_keys(text)
    except PlaidKeyError as exc:
        raise ValueError(f"{where}{exc}") from None
