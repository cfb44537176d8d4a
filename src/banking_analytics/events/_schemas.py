"""The five event schemas (version 1).

Each event is an envelope (id, times, user, session, properties) plus the
fields of its type. Schemas only ever grow by optional fields: a stored event
of an older version stays valid, and ``schema_version`` records the version
the client wrote against.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from banking_analytics.events._fields import IDENTIFIER_PATTERN, Field, Kind
from banking_analytics.vocabulary import (
    Aggregator,
    AuthMethod,
    BankingFeature,
    BillingInterval,
    ConnectionFlow,
    DeviceType,
    DiscountDuration,
    ErrorCategory,
    EventType,
    Outcome,
    PerformanceMetric,
    Platform,
    SubscriptionEventKind,
    SubscriptionStatus,
    SyncOutcome,
    SyncTrigger,
)

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "ENVELOPE_FIELDS",
    "SCHEMAS",
    "SERVER_FIELDS",
    "EventSchema",
    "schema_for",
]

CURRENT_SCHEMA_VERSION = 1
_ID_LEN = 128
_TEXT_LEN = 256


def _ident(name: str, doc: str, *, required: bool = False, max_length: int = _ID_LEN) -> Field:
    return Field(
        name,
        Kind.IDENTIFIER,
        doc,
        required=required,
        max_length=max_length,
        pattern=IDENTIFIER_PATTERN,
    )


def _enum(name: str, enum: type[StrEnum], doc: str, *, required: bool = False) -> Field:
    return Field(name, Kind.ENUM, doc, required=required, choices=tuple(m.value for m in enum))


def _text(name: str, doc: str) -> Field:
    return Field(name, Kind.TEXT, doc, max_length=_TEXT_LEN)


#: Fields every event may carry, sent by the client.
ENVELOPE_FIELDS: tuple[Field, ...] = (
    Field(
        "event_id",
        Kind.UUID,
        "Client-generated UUID naming one event whatever its type: a later event with the "
        "same id, of any type, is a duplicate (retries are deduplicated so); the server "
        "makes one if absent.",
    ),
    Field(
        "schema_version",
        Kind.INTEGER,
        "Schema version the client wrote against (default: current).",
        ge=1,
        le=CURRENT_SCHEMA_VERSION,
    ),
    Field(
        "occurred_at",
        Kind.TIMESTAMP,
        "When it happened (ISO-8601; no offset means UTC). Defaults to the receipt time.",
    ),
    Field(
        "sent_at",
        Kind.TIMESTAMP,
        "Client clock when the event was sent; used to correct client clock skew.",
    ),
    _ident("user_id", "The host app's user id (may be a keyed pseudonym)."),
    _ident("session_id", "App session the event belongs to."),
    Field(
        "properties",
        Kind.JSON,
        "Free-form JSON object of extra attributes (at most 16 KiB serialised).",
        max_length=16 * 1024,
    ),
)

#: Fields the server sets on every stored event.
SERVER_FIELDS: tuple[Field, ...] = (
    Field("received_at", Kind.TIMESTAMP, "When the server received the event.", required=True),
    Field(
        "ingest_flags",
        Kind.TEXT,
        "Comma-separated ingestion notes: skew_corrected, late.",
        max_length=_TEXT_LEN,
    ),
)

_ERROR_FIELDS: tuple[Field, ...] = (
    _enum(
        "error_category",
        ErrorCategory,
        "Who must act. Derived from error_code when the aggregator's code is known.",
    ),
    _ident("error_code", "The aggregator's raw error code, e.g. ITEM_LOGIN_REQUIRED."),
    _ident("error_type", "The aggregator's raw error type, e.g. ITEM_ERROR."),
)


@dataclass(frozen=True, slots=True)
class EventSchema:
    """An event type's schema: its own fields and the table that stores it."""

    event_type: EventType
    table: str
    fields: tuple[Field, ...]
    doc: str

    @property
    def input_fields(self) -> tuple[Field, ...]:
        """Fields a client may send."""
        return ENVELOPE_FIELDS + self.fields

    @property
    def stored_fields(self) -> tuple[Field, ...]:
        """Columns of the stored table, in order."""
        return ENVELOPE_FIELDS + SERVER_FIELDS + self.fields

    def field(self, name: str) -> Field:
        for f in self.stored_fields:
            if f.name == name:
                return f
        raise KeyError(name)


PERFORMANCE_METRIC = EventSchema(
    EventType.PERFORMANCE_METRIC,
    "performance_metric_events",
    (
        _enum("metric_type", PerformanceMetric, "Which performance metric.", required=True),
        _enum("feature", BankingFeature, "Banking feature measured.", required=True),
        Field("value", Kind.FLOAT, "The measured value (finite).", required=True),
        _ident("unit", "Unit of the value, e.g. ratio, ms, count.", max_length=32),
        _enum("aggregator", Aggregator, "Aggregator involved, if any."),
        _ident("institution_id", "Institution involved, if any."),
    ),
    "A client-reported measurement of one of the eight performance metrics.",
)

CONNECTION_ATTEMPT = EventSchema(
    EventType.CONNECTION_ATTEMPT,
    "connection_attempt_events",
    (
        _ident("attempt_id", "Id of this attempt.", required=True),
        _ident("link_session_id", "Link/Connect widget session (for link conversion)."),
        _enum("aggregator", Aggregator, "Aggregator the attempt went through.", required=True),
        _ident("institution_id", "Institution, e.g. ins_3.", required=True),
        _text("institution_name", "Institution display name."),
        _enum("feature", BankingFeature, "Feature the connection serves.", required=True),
        _enum("flow", ConnectionFlow, "new, reauth or add_product.", required=True),
        _enum("auth_method", AuthMethod, "oauth, credentials or unknown."),
        Field("started_at", Kind.TIMESTAMP, "When the user opened the flow.", required=True),
        Field(
            "credentials_submitted_at",
            Kind.TIMESTAMP,
            "When credentials were submitted (OAuth: redirect started).",
            not_before="started_at",
        ),
        Field(
            "ended_at",
            Kind.TIMESTAMP,
            "When the attempt ended; null while pending.",
            not_before="started_at",
        ),
        _enum("outcome", Outcome, "success, failure, abandoned or pending.", required=True),
        *_ERROR_FIELDS,
        Field(
            "latency_ms",
            Kind.FLOAT,
            "Credential submit (or start) to outcome, in ms; derived from the times if absent.",
            ge=0,
        ),
        _enum("platform", Platform, "Client platform."),
    ),
    "One attempt to link or repair a bank connection.",
)

SYNC_RUN = EventSchema(
    EventType.SYNC_RUN,
    "sync_run_events",
    (
        _ident("connection_id", "Aggregator connection (Plaid item, MX member).", required=True),
        _enum("aggregator", Aggregator, "Aggregator the sync went through.", required=True),
        _ident("institution_id", "Institution of the connection.", required=True),
        _enum("feature", BankingFeature, "Feature whose data was synced.", required=True),
        _enum("trigger", SyncTrigger, "What started the sync.", required=True),
        Field("started_at", Kind.TIMESTAMP, "Start of the run.", required=True),
        Field("ended_at", Kind.TIMESTAMP, "End of the run.", not_before="started_at"),
        _enum("outcome", SyncOutcome, "success, failure, partial or not_ready.", required=True),
        *_ERROR_FIELDS,
        Field("records_added", Kind.INTEGER, "Records added.", ge=0),
        Field("records_modified", Kind.INTEGER, "Records modified.", ge=0),
        Field("records_removed", Kind.INTEGER, "Records removed.", ge=0),
        Field(
            "expected_interval_s",
            Kind.FLOAT,
            "Expected seconds between syncs of this connection (for freshness).",
            ge=1,
        ),
    ),
    "One refresh of a connection's data for a feature.",
)

BEHAVIOR = EventSchema(
    EventType.BEHAVIOR,
    "behavior_events",
    (
        _enum("feature", BankingFeature, "Feature the user interacted with.", required=True),
        _ident("action", "What the user did, e.g. view_report.", required=True, max_length=64),
        Field("duration_s", Kind.FLOAT, "How long it took, in seconds.", ge=0),
        Field("success", Kind.BOOLEAN, "Whether the interaction succeeded."),
        _enum("device", DeviceType, "Device type."),
        _enum("platform", Platform, "Client platform."),
    ),
    "A user's interaction with a banking feature.",
)

SUBSCRIPTION = EventSchema(
    EventType.SUBSCRIPTION,
    "subscription_events",
    (
        _enum("kind", SubscriptionEventKind, "Lifecycle or payment event.", required=True),
        _ident("subscription_id", "Billing system subscription id.", required=True),
        _ident("plan", "Plan id.", required=True, max_length=64),
        _ident("tier", "Tier, e.g. free or premium.", required=True, max_length=32),
        Field(
            "unit_amount",
            Kind.INTEGER,
            "Price per interval per unit, in the currency's minor units, before discount.",
            required=True,
            ge=0,
        ),
        _enum("interval", BillingInterval, "Billing interval unit.", required=True),
        Field("interval_count", Kind.INTEGER, "Intervals per billing period.", ge=1, le=366),
        Field("quantity", Kind.INTEGER, "Seats or units (default 1).", ge=1),
        Field("discount_percent", Kind.FLOAT, "Percentage off the price.", ge=0, le=100),
        Field("discount_amount", Kind.INTEGER, "Amount off per period, in minor units.", ge=0),
        _enum(
            "discount_duration",
            DiscountDuration,
            "How long the discount lasts (default forever); its end raises MRR (an expansion).",
        ),
        Field(
            "discount_months",
            Kind.INTEGER,
            "Months a repeating discount lasts, from the first event that carries it.",
            ge=1,
            le=120,
        ),
        Field(
            "period_end",
            Kind.TIMESTAMP,
            "End of the service period paid for; a cancellation can take effect then.",
            ahead_allowed=True,
        ),
        Field(
            "currency",
            Kind.IDENTIFIER,
            "ISO-4217 code, upper case.",
            required=True,
            pattern=r"^[A-Z]{3}$",
            max_length=3,
        ),
        _enum("status", SubscriptionStatus, "Status after the event.", required=True),
        Field(
            "amount",
            Kind.INTEGER,
            "Money moved by a payment or refund, in minor units.",
            ge=0,
        ),
        _enum("attributed_feature", BankingFeature, "Feature credited with the event."),
        _ident("attribution_source", "Where the conversion came from (paywall, email, ...)."),
    ),
    "A subscription lifecycle or money event.",
)

SCHEMAS: dict[EventType, EventSchema] = {
    s.event_type: s
    for s in (PERFORMANCE_METRIC, CONNECTION_ATTEMPT, SYNC_RUN, BEHAVIOR, SUBSCRIPTION)
}


def schema_for(event_type: EventType | str) -> EventSchema:
    """The schema of an event type."""
    return SCHEMAS[EventType(event_type)]
