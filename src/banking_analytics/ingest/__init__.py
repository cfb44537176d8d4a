"""Ingestion: decode, validate, quarantine, and durably write events.

Plaid's store (``PlaidItems``) and signature names load on first use: they need the
query builder and the JWT library, which a worker decoding a file does not.
"""

from typing import TYPE_CHECKING

from banking_analytics._lazy import lazy_names
from banking_analytics.ingest._decode import (
    Decoded,
    decode_arrow,
    decode_json_lines,
    decode_records,
)
from banking_analytics.ingest._institutions import InstitutionName, record_institutions
from banking_analytics.ingest._listeners import CommitListener
from banking_analytics.ingest._pipeline import IngestPipeline
from banking_analytics.ingest._plaid import (
    ItemChange,
    ItemOrigin,
    ItemState,
    PlaidMapping,
    PlaidWebhook,
    PlaidWebhookError,
    link_institutions,
    map_plaid_webhook,
    read_plaid_webhook,
)
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
    "ItemChange",
    "ItemOrigin",
    "ItemState",
    "PlaidItem",
    "PlaidItems",
    "PlaidKeyError",
    "PlaidMapping",
    "PlaidSignatureError",
    "PlaidVerification",
    "PlaidVerificationKey",
    "PlaidWebhook",
    "PlaidWebhookError",
    "RatesError",
    "StripeEventError",
    "StripeMapping",
    "StripeSignatureError",
    "Ticket",
    "WriterClosedError",
    "decode_arrow",
    "decode_json_lines",
    "decode_records",
    "link_institutions",
    "map_plaid_webhook",
    "map_stripe_event",
    "parse_plaid_keys",
    "parse_rates",
    "read_plaid_webhook",
    "read_rates_csv",
    "record_institutions",
    "sign_stripe_payload",
    "verify_plaid_webhook",
    "verify_stripe_signature",
]

if TYPE_CHECKING:
    from banking_analytics.ingest._plaid_items import PlaidItem, PlaidItems
    from banking_analytics.ingest._plaid_signature import (
        PlaidKeyError,
        PlaidSignatureError,
        PlaidVerification,
        PlaidVerificationKey,
        parse_plaid_keys,
        verify_plaid_webhook,
    )

_LAZY = {
    **dict.fromkeys(("PlaidItem", "PlaidItems"), "banking_analytics.ingest._plaid_items"),
    **dict.fromkeys(
        (
            "PlaidKeyError",
            "PlaidSignatureError",
            "PlaidVerification",
            "PlaidVerificationKey",
            "parse_plaid_keys",
            "verify_plaid_webhook",
        ),
        "banking_analytics.ingest._plaid_signature",
    ),
}
__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
