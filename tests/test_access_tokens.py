"""End-user JWTs: what is accepted, what is refused and why, and that no reason quotes a token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from banking_analytics.access import InvalidTokenError, UserTokenVerifier

# Random (secrets.token_hex(32)): a secret must hold entropy, not only length.
SECRET = "5a1f0c3e9b7d2846e1c0f93a7b5d8e2c4f6a1b3d5e7f9081a2c4e6f8b0d2f4a6"
OTHER_SECRET = "c07e3b19f5a2d8640e9b1c7f3a5d2e8b6c4f0a9d1e3b5c7f9a2d4e6b8c0f1a3e"


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"sub": "user123", "exp": now + 300, "iat": now}
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


def hs256(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), SECRET, algorithm="HS256")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def refused(verifier: UserTokenVerifier, token: str) -> str:
    """The reason a token is refused, checked to be one line that does not quote it."""
    with pytest.raises(InvalidTokenError) as caught:
        verifier.verify(token)
    reason = str(caught.value)
    assert "\n" not in reason
    for part in token.split("."):
        assert len(part) < 8 or part not in reason
    return reason


def test_hs256_token_gives_its_subject() -> None:
    assert UserTokenVerifier(hs256_secret=SECRET).verify(hs256()) == "user123"


def test_rs256_token_gives_its_subject(rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(claims(sub="u-42"), rsa_key, algorithm="RS256")
    assert UserTokenVerifier(rs256_public_key=pem(rsa_key)).verify(token) == "u-42"


def test_an_expired_token_is_refused_past_the_leeway_only() -> None:
    verifier = UserTokenVerifier(hs256_secret=SECRET, leeway_seconds=30)
    assert verifier.verify(hs256(exp=int(time.time()) - 10)) == "user123"
    assert "expired" in refused(verifier, hs256(exp=int(time.time()) - 60))


def test_a_token_not_valid_yet_is_refused() -> None:
    verifier = UserTokenVerifier(hs256_secret=SECRET)
    assert "not valid yet" in refused(verifier, hs256(nbf=int(time.time()) + 600))


def test_a_wrong_signature_is_refused() -> None:
    verifier = UserTokenVerifier(hs256_secret=SECRET)
    forged = jwt.encode(claims(), OTHER_SECRET, algorithm="HS256")
    assert "signature" in refused(verifier, forged)
    header, _, signature = hs256().split(".")
    other_user = b64(json.dumps(claims(sub="admin")).encode())
    assert "signature" in refused(verifier, f"{header}.{other_user}.{signature}")


def test_alg_none_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    unsigned = jwt.encode(claims(), None, algorithm="none")
    assert unsigned.endswith(".")
    for verifier in (
        UserTokenVerifier(hs256_secret=SECRET),
        UserTokenVerifier(rs256_public_key=pem(rsa_key)),
    ):
        assert "algorithm" in refused(verifier, unsigned)


def test_hs256_signed_with_the_rsa_public_key_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    # The classic confusion attack, built by hand: PyJWT itself refuses to sign it.
    public_pem = pem(rsa_key)
    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}."
        f"{b64(json.dumps(claims()).encode())}"
    )
    mac = hmac.new(public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(mac)}"
    assert "algorithm" in refused(UserTokenVerifier(rs256_public_key=public_pem), token)


def test_each_verifier_takes_only_its_own_algorithm(rsa_key: rsa.RSAPrivateKey) -> None:
    rs_token = jwt.encode(claims(), rsa_key, algorithm="RS256")
    assert "algorithm" in refused(UserTokenVerifier(hs256_secret=SECRET), rs_token)
    assert "algorithm" in refused(UserTokenVerifier(rs256_public_key=pem(rsa_key)), hs256())


@pytest.mark.parametrize("claim", ["sub", "exp"])
def test_sub_and_exp_are_required(claim: str) -> None:
    verifier = UserTokenVerifier(hs256_secret=SECRET)
    assert f"'{claim}'" in refused(verifier, hs256(**{claim: None}))


@pytest.mark.parametrize("subject", ["", 42])
def test_the_subject_must_be_a_non_empty_string(subject: object) -> None:
    verifier = UserTokenVerifier(hs256_secret=SECRET)
    assert "subject" in refused(verifier, hs256(sub=subject))


def test_audience_and_issuer_are_checked_when_configured() -> None:
    verifier = UserTokenVerifier(hs256_secret=SECRET, audience="ba-api", issuer="https://app")
    assert verifier.verify(hs256(aud="ba-api", iss="https://app")) == "user123"
    assert "audience" in refused(verifier, hs256(aud="other", iss="https://app"))
    assert "'aud'" in refused(verifier, hs256(iss="https://app"))
    assert "issuer" in refused(verifier, hs256(aud="ba-api", iss="https://evil"))
    assert "'iss'" in refused(verifier, hs256(aud="ba-api"))


def test_a_token_for_an_audience_is_refused_when_none_is_configured() -> None:
    assert "audience" in refused(UserTokenVerifier(hs256_secret=SECRET), hs256(aud="ba-api"))


@pytest.mark.parametrize(
    "token", ["", "abc", "a.b.c", "a.b", "eyJhbGciOiJIUzI1NiJ9.e30.", "x" * 9000]
)
def test_malformed_tokens_are_refused(token: str) -> None:
    refused(UserTokenVerifier(hs256_secret=SECRET), token)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda key: UserTokenVerifier(), "exactly one"),
        (
            lambda key: UserTokenVerifier(hs256_secret=SECRET, rs256_public_key=pem(key)),
            "exactly one",
        ),
        (lambda key: UserTokenVerifier(hs256_secret="short"), "hs256_secret"),
        # Long enough, but each guessable: one letter, two, a repeated run of digits.
        (lambda key: UserTokenVerifier(hs256_secret="a" * 40), "predictable"),
        (lambda key: UserTokenVerifier(hs256_secret="ab" * 32), "predictable"),
        (lambda key: UserTokenVerifier(hs256_secret="0123456789" * 4), "predictable"),
        (lambda key: UserTokenVerifier(hs256_secret=SECRET, max_lifetime_seconds=0), "lifetime"),
        (lambda key: UserTokenVerifier(rs256_public_key="not a key"), "rs256_public_key"),
        (
            lambda key: UserTokenVerifier(
                rs256_public_key=key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode()
            ),
            "rs256_public_key",
        ),
        (
            lambda key: UserTokenVerifier(
                rs256_public_key=pem(ec.generate_private_key(ec.SECP256R1()))
            ),
            "RSA",
        ),
        (
            lambda key: UserTokenVerifier(
                rs256_public_key=pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))
            ),
            "2048",
        ),
        (lambda key: UserTokenVerifier(hs256_secret=SECRET, leeway_seconds=-1), "leeway"),
    ],
)
def test_bad_configurations_are_refused(
    rsa_key: rsa.RSAPrivateKey, make: Callable[[rsa.RSAPrivateKey], object], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        make(rsa_key)


@pytest.mark.parametrize("expires", ["4102444800", 1e30, 10**30])
def test_exp_must_be_a_number_within_the_longest_lifetime(expires: object) -> None:
    # PyJWT reads exp with int(): the text "4102444800" (year 2100) would pass it.
    verifier = UserTokenVerifier(hs256_secret=SECRET, max_lifetime_seconds=3600)
    assert "(exp)" in refused(verifier, hs256(exp=expires))


def test_exp_up_to_the_longest_lifetime_is_accepted() -> None:
    verifier = UserTokenVerifier(hs256_secret=SECRET, max_lifetime_seconds=3600)
    now = int(time.time())
    assert verifier.verify(hs256(exp=now + 3600)) == "user123"
    assert "3600" in refused(verifier, hs256(exp=now + 3600 + 31 + 5))
    assert verifier.verify(hs256(exp=now + 300.5)) == "user123"
