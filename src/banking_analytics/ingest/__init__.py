"""Ingestion: decode, validate, quarantine, and durably write events."""

from banking_analytics.ingest._decode import (
    Decoded,
    decode_arrow,
    decode_json_lines,
    decode_records,
)
from banking_analytics.ingest._institutions import InstitutionName, record_institutions
from banking_analytics.ingest._listeners import CommitListener
from banking_analytics.ingest._pipeline import IngestPipeline
from banking_analytics.ingest._rates import (
    ExchangeRate,
    RatesError,
    parse_rates,
    read_rates_csv,
)
from banking_analytics.ingest._results import (
    BatchOutcome,
    BatchPart,
    EventError,
    EventResult,
    EventStatus,
)
from banking_analytics.ingest._stripe import StripeEventError, StripeMapping, map_stripe_event
from banking_analytics.ingest._stripe_signature import (
    StripeSignatureError,
    sign_stripe_payload,
    verify_stripe_signature,
)
from banking_analytics.ingest._validate import IngestLimits
from banking_analytics.ingest._writer import GroupCommitWriter, Ticket, WriterClosedError

__all__ = [
    "BatchOutcome",
    "BatchPart",
    "CommitListener",
    "Decoded",
    "EventError",
    "EventResult",
    "EventStatus",
    "ExchangeRate",
    "GroupCommitWriter",
    "IngestLimits",
    "IngestPipeline",
    "InstitutionName",
    "RatesError",
    "StripeEventError",
    "StripeMapping",
    "StripeSignatureError",
    "Ticket",
    "WriterClosedError",
    "decode_arrow",
    "decode_json_lines",
    "decode_records",
    "map_stripe_event",
    "parse_rates",
    "read_rates_csv",
    "record_institutions",
    "sign_stripe_payload",
    "verify_stripe_signature",
]
