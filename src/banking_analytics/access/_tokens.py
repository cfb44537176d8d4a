"""End-user tokens: JWTs the host app signs, naming the user in ``sub``.

The verifier accepts exactly one algorithm, the one its key is for: HS256 with
a shared secret, or RS256 with the host app's public key. A token naming any
other algorithm (``none``, or HS256 signed with the RSA public key as the
secret) is refused before its signature is looked at. A token must carry
``exp`` (a number of seconds since 1970, at most ``max_lifetime_seconds`` ahead)
and a non-empty string ``sub``; ``aud`` and ``iss`` are checked when
configured, and a token with an ``aud`` is refused when no audience is.

An HS256 secret must be at least 32 bytes and hold at least 128 bits by a
conservative estimate (:func:`check_hs256_secret`): 40 times ``a`` is long but
guessable.
"""

from __future__ import annotations

import math
import time
import zlib
from collections import Counter

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import exceptions as errors

__all__ = ["InvalidTokenError", "UserTokenVerifier", "check_hs256_secret"]

_MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as its hash
_MIN_SECRET_BITS = 128
#: What zlib adds to any input (header, checksum, block framing), in bytes.
_ZLIB_OVERHEAD = 8
_MIN_RSA_BITS = 2048
_MAX_TOKEN_CHARS = 8192
_MAX_LEEWAY_SECONDS = 300

# Most specific first: PyJWT's errors subclass one another.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (errors.ExpiredSignatureError, "token has expired"),
    (errors.ImmatureSignatureError, "token is not valid yet"),
    (errors.InvalidIssuedAtError, "token issue time (iat) is not a number"),
    (errors.InvalidAudienceError, "token is for another audience"),
    (errors.InvalidIssuerError, "token is from another issuer"),
    (errors.InvalidAlgorithmError, "token is signed with an algorithm not accepted here"),
    (errors.InvalidSignatureError, "token signature is invalid"),
    (errors.InvalidSubjectError, "token subject must be a string"),
    (errors.DecodeError, "token is malformed"),
)


def _estimated_bits(secret: bytes) -> float:
    """A ceiling on the secret's entropy: the lesser of its length times the Shannon
    entropy of its byte frequencies (``-sum(p * log2 p)``), which catches a small
    alphabet, and the bits zlib needs for it, which catches repetition (``0123...`` x 4)."""
    counts = Counter(secret)
    per_byte = -sum(n / len(secret) * math.log2(n / len(secret)) for n in counts.values())
    compressed = 8 * max(0, len(zlib.compress(secret, 9)) - _ZLIB_OVERHEAD)
    return min(per_byte * len(secret), compressed)


def check_hs256_secret(secret: str) -> str:
    """The secret, if it is at least 32 bytes holding an estimated 128 bits or more;
    ``ValueError`` saying which it lacks otherwise."""
    encoded = secret.encode()
    if len(encoded) < _MIN_SECRET_BYTES:
        raise ValueError(f"hs256_secret must be at least {_MIN_SECRET_BYTES} bytes")
    if _estimated_bits(encoded) < _MIN_SECRET_BITS:
        raise ValueError(
            f"hs256_secret is too predictable (under {_MIN_SECRET_BITS} bits by estimate); "
            "use a random value, e.g. python -c 'import secrets; print(secrets.token_hex(32))'"
        )
    return secret


class InvalidTokenError(ValueError):
    """A token that is not accepted; the message says why, on one line, without the token."""


class UserTokenVerifier:
    """Checks end users' JWTs and tells whose they are (see the module for what it checks)."""

    def __init__(
        self,
        *,
        hs256_secret: str | None = None,
        rs256_public_key: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway_seconds: int = 30,
        max_lifetime_seconds: int = 86_400,
    ) -> None:
        """Exactly one of ``hs256_secret`` (see :func:`check_hs256_secret`) and
        ``rs256_public_key`` (PEM).

        ``leeway_seconds`` (0 to 300) is the clock skew tolerated on ``exp``,
        ``nbf`` and ``iat``; a token whose ``exp`` lies more than
        ``max_lifetime_seconds`` (at least 1) ahead is refused, so a stolen token
        cannot be one that never expires. A bad argument raises ``ValueError`` naming it.
        """
        if not 0 <= leeway_seconds <= _MAX_LEEWAY_SECONDS:
            raise ValueError(f"leeway_seconds must be between 0 and {_MAX_LEEWAY_SECONDS}")
        if max_lifetime_seconds < 1:
            raise ValueError("max_lifetime_seconds must be at least 1")
        self._key: str | RSAPublicKey
        if hs256_secret is not None and rs256_public_key is None:
            self._algorithm, self._key = "HS256", check_hs256_secret(hs256_secret)
        elif rs256_public_key is not None and hs256_secret is None:
            self._algorithm, self._key = "RS256", _rsa_public_key(rs256_public_key)
        else:
            raise ValueError("give exactly one of hs256_secret and rs256_public_key")
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway_seconds
        self._max_lifetime = max_lifetime_seconds

    def verify(self, token: str) -> str:
        """The user id (``sub``) of a valid token; ``InvalidTokenError`` saying why not."""
        if len(token) > _MAX_TOKEN_CHARS:
            raise InvalidTokenError(f"token is longer than {_MAX_TOKEN_CHARS} characters")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "sub"]},
            )
        except errors.MissingRequiredClaimError as exc:
            raise InvalidTokenError(f"token has no {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            # PyJWT's own messages may quote parts of the token.
            reason = next((r for kind, r in _REASONS if isinstance(exc, kind)), "token is invalid")
            raise InvalidTokenError(reason) from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise InvalidTokenError("token subject must be a non-empty string")
        expires = claims["exp"]
        # PyJWT reads exp with int(), so "1900000000" (text) or 1e30 would pass it.
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            raise InvalidTokenError("token expiry (exp) must be a number of seconds")
        if expires > time.time() + self._max_lifetime + self._leeway:
            raise InvalidTokenError(
                f"token expiry (exp) is more than {self._max_lifetime} s ahead, "
                "the longest lifetime accepted"
            )
        return subject


def _rsa_public_key(pem: str) -> RSAPublicKey:
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError:
        raise ValueError("rs256_public_key is not a PEM public key") from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError("rs256_public_key is not an RSA key")
    if key.key_size < _MIN_RSA_BITS:
        raise ValueError(f"rs256_public_key must have at least {_MIN_RSA_BITS} bits")
    return key
