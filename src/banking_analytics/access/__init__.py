"""Who may use the system, and what they did: API keys, end-user tokens, the audit log.

No HTTP here: the API layer calls these on every request.
"""

from banking_analytics.access._audit import AUDIT_LOG, AuditEntry, AuditLog, ChainReport
from banking_analytics.access._keys import (
    API_KEYS,
    ApiKey,
    IssuedKey,
    KeyNotFoundError,
    KeyStore,
    Role,
)
from banking_analytics.access._tokens import (
    InvalidTokenError,
    UserTokenVerifier,
    check_hs256_secret,
)

__all__ = [
    "API_KEYS",
    "AUDIT_LOG",
    "ApiKey",
    "AuditEntry",
    "AuditLog",
    "ChainReport",
    "InvalidTokenError",
    "IssuedKey",
    "KeyNotFoundError",
    "KeyStore",
    "Role",
    "UserTokenVerifier",
    "check_hs256_secret",
]
