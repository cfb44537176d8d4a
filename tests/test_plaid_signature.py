"""The ``Plaid-Verification`` check, step by step as Plaid documents it, and reading keys."""

from __future__ import annotations

import hashlib
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from banking_analytics.ingest import (
    PlaidKeyError,
    PlaidSignatureError,
    parse_plaid_keys,
    verify_plaid_webhook,
)
from plaid_payloads import KEY_ID, body, item_error, jwk, private_key, sign

NOW = 1_780_000_000
KEY = private_key()
KEYS = parse_plaid_keys(json.dumps(jwk(KEY)))
RAW = body(item_error("wz666MBjYWTp2PDzzggYhM6oWWmBb"))


def verify(header: str | None, raw: bytes = RAW, **kw: object) -> object:
    return verify_plaid_webhook(raw, header, KEYS, now=lambda: NOW, **kw)  # type: ignore[arg-type]


def test_a_webhook_signed_as_plaid_signs_verifies() -> None:
    proof = verify(sign(RAW, KEY, iat=NOW - 299))
    assert proof == type(proof)(KEY_ID, NOW - 299, hashlib.sha256(RAW).hexdigest())  # type: ignore[call-arg]


def _hs256_with_public_key() -> str:
    """The classic confusion: an HMAC keyed with the (public) verification key."""
    public = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {"iat": NOW, "request_body_sha256": hashlib.sha256(RAW).hexdigest()}
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","kid":"%s","typ":"JWT"}' % KEY_ID.encode())
    payload = jwt.utils.base64url_encode(json.dumps(claims).encode())
    import hmac

    signature = hmac.new(public, header + b"." + payload, hashlib.sha256).digest()
    return b".".join([header, payload, jwt.utils.base64url_encode(signature)]).decode()


def _unsigned() -> str:
    claims = {"iat": NOW, "request_body_sha256": hashlib.sha256(RAW).hexdigest()}
    return jwt.encode(claims, None, algorithm="none", headers={"kid": KEY_ID})


OTHER = private_key()
BAD = {
    "missing": (lambda: None, "header is missing"),
    "not a JWT": (lambda: "nonsense", "is not a JWT"),
    "a JWT of nothing": (lambda: "e30.e30.e30", "alg is None"),
    "a header that is no object": (lambda: "WzFd.e30.e30", "is not a JWT"),
    "alg none": (_unsigned, "alg is 'none'"),
    "alg HS256 keyed with the public key": (_hs256_with_public_key, "alg is 'HS256'"),
    "unknown kid": (lambda: sign(RAW, KEY, kid="f00d", iat=NOW), "key f00d, which is not"),
    "signed by another key": (lambda: sign(RAW, OTHER, iat=NOW), "does not verify"),
    "stale iat": (lambda: sign(RAW, KEY, iat=NOW - 301), "301 s old"),
    "iat in the future": (lambda: sign(RAW, KEY, iat=NOW + 301), "301 s in the future"),
    "body altered": (lambda: sign(RAW + b" ", KEY, iat=NOW), "does not equal"),
    "hash of re-serialised JSON": (
        lambda: sign(RAW, KEY, iat=NOW, body_sha256=hashlib.sha256(
            json.dumps(json.loads(RAW)).encode()).hexdigest()),
        "does not equal",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_each_failed_step_is_refused_with_its_reason(case: str) -> None:
    header, reason = BAD[case]
    with pytest.raises(PlaidSignatureError, match=reason):
        verify(header())


def test_claims_missing_are_refused() -> None:
    no_iat = jwt.encode(
        {"request_body_sha256": "x"}, KEY, algorithm="ES256", headers={"kid": KEY_ID}
    )
    with pytest.raises(PlaidSignatureError, match="no iat"):
        verify(no_iat)
    no_hash = jwt.encode({"iat": NOW}, KEY, algorithm="ES256", headers={"kid": KEY_ID})
    with pytest.raises(PlaidSignatureError, match="no request_body_sha256"):
        verify(no_hash)


def test_an_expired_key_is_refused() -> None:
    keys = parse_plaid_keys(json.dumps(jwk(KEY, expired_at=NOW - 10)))
    with pytest.raises(PlaidSignatureError, match="expired"):
        verify_plaid_webhook(RAW, sign(RAW, KEY, iat=NOW), keys, now=lambda: NOW)


def test_keys_are_read_in_every_form_plaid_and_jwk_sets_use() -> None:
    second = jwk(OTHER, kid="6c5516e1-92dc-479e-a8ff-5a51992e0001")
    forms = {
        "one JWK": (jwk(KEY), {KEY_ID}),
        "the get answer": ({"key": jwk(KEY), "request_id": "HvfCtrDLG1ihcp7"}, {KEY_ID}),
        "a list": ([jwk(KEY), second], {KEY_ID, second["kid"]}),
        "a JWK Set": ({"keys": [jwk(KEY), second]}, {KEY_ID, second["kid"]}),
    }
    for document, kids in forms.values():
        assert set(parse_plaid_keys(json.dumps(document))) == kids
    raw = body(item_error("other"))
    keys = parse_plaid_keys(json.dumps([jwk(KEY), second]))
    proof = verify_plaid_webhook(
        raw, sign(raw, OTHER, kid=second["kid"], iat=NOW), keys, now=lambda: NOW
    )
    assert proof.key_id == second["kid"]


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ("{", "not JSON"),
        ("[]", "no verification key"),
        ('"x"', "expected a JWK"),
        (json.dumps({**jwk(KEY), "kid": ""}), "no kid"),
        (json.dumps({**jwk(KEY), "crv": "P-384"}), "not an ES256 key"),
        (json.dumps({**jwk(KEY), "kty": "RSA"}), "not an ES256 key"),
        (json.dumps({**jwk(KEY), "x": "AAAA"}), f"key {KEY_ID}: "),
        (json.dumps([jwk(KEY), jwk(KEY)]), "given twice"),
    ],
)
def test_unreadable_keys_say_why(document: str, reason: str) -> None:
    with pytest.raises(PlaidKeyError, match=reason):
        parse_plaid_keys(document)
