"""Stripe-Signature verification, against an independent HMAC (OpenSSL's command line)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from banking_analytics.ingest import (
    StripeSignatureError,
    sign_stripe_payload,
    verify_stripe_signature,
)

SECRET = "whsec_test_5b1f0e7c2d9a4e6b8c3f1a2d4e6b8c0a"
OLD_SECRET = "whsec_test_old_0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"
BODY = b'{"id":"evt_1","object":"event","type":"invoice.paid","created":1772323200}'
NOW = 1_772_323_200


def openssl_hmac(secret: str, message: bytes) -> str:
    """HMAC-SHA256 hex by OpenSSL: an implementation independent of Python's hmac."""
    openssl = shutil.which("openssl")
    assert openssl is not None, "the openssl command is needed for the independent check"
    done = subprocess.run(
        [openssl, "dgst", "-sha256", "-hmac", secret, "-r"],
        input=message,
        capture_output=True,
        check=True,
    )
    return done.stdout.split()[0].decode()


def verify(header: str | None, secrets: list[str], body: bytes = BODY, now: float = NOW) -> int:
    return verify_stripe_signature(body, header, secrets, now=lambda: now)


def test_the_signature_is_stripes_hmac_of_timestamp_dot_body() -> None:
    expected = openssl_hmac(SECRET, f"{NOW}.".encode() + BODY)
    assert sign_stripe_payload(BODY, SECRET, NOW) == f"t={NOW},v1={expected}"
    assert verify(f"t={NOW},v1={expected}", [SECRET]) == NOW


def test_any_v1_may_match_and_other_schemes_are_ignored() -> None:
    good = openssl_hmac(SECRET, f"{NOW}.".encode() + BODY)
    header = f"t={NOW},v1={'0' * 64},v1={good},v0={'f' * 64},v2=whatever"
    assert verify(header, [SECRET]) == NOW


def test_during_a_rotation_either_secret_verifies() -> None:
    signed_with_old = sign_stripe_payload(BODY, OLD_SECRET, NOW)
    assert verify(signed_with_old, [SECRET, OLD_SECRET]) == NOW
    with pytest.raises(StripeSignatureError, match="no v1 signature matches"):
        verify(signed_with_old, [SECRET])


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "header is missing"),
        ("", "header is missing"),
        ("garbage", "no timestamp"),
        (f"v1={'a' * 64}", "no timestamp"),
        (f"t=soon,v1={'a' * 64}", "not an integer"),
        (f"t={NOW}", "no v1 signature"),
        # v0 is Stripe's test-mode decoy: alone, it is no signature.
        (f"t={NOW},v0={'a' * 64}", "no v1 signature"),
        (f"t={NOW},v1=not-hex-\u00e9", "no v1 signature matches"),
    ],
)
def test_malformed_headers_are_refused_saying_why(header: str | None, message: str) -> None:
    with pytest.raises(StripeSignatureError, match=message):
        verify(header, [SECRET])


def test_a_wrong_secret_or_an_altered_body_is_refused() -> None:
    header = sign_stripe_payload(BODY, SECRET, NOW)
    with pytest.raises(StripeSignatureError, match="no v1 signature matches"):
        verify(header, ["whsec_someone_else"])
    with pytest.raises(StripeSignatureError, match="no v1 signature matches"):
        verify(header, [SECRET], body=BODY.replace(b"invoice.paid", b"invoice.PAID"))
    # The timestamp is signed too: moving it breaks the signature.
    digest = header.split("v1=")[1]
    with pytest.raises(StripeSignatureError, match="no v1 signature matches"):
        verify(f"t={NOW + 1},v1={digest}", [SECRET])


def test_the_timestamp_may_be_300_seconds_off_either_way() -> None:
    header = sign_stripe_payload(BODY, SECRET, NOW)
    assert verify(header, [SECRET], now=NOW + 300) == NOW
    assert verify(header, [SECRET], now=NOW - 300) == NOW
    with pytest.raises(StripeSignatureError, match="301 s old"):
        verify(header, [SECRET], now=NOW + 301)
    with pytest.raises(StripeSignatureError, match="301 s in the future"):
        verify(header, [SECRET], now=NOW - 301)


def test_the_signature_is_checked_before_the_timestamp() -> None:
    """As stripe-python: a forged, stale request is refused for its signature."""
    with pytest.raises(StripeSignatureError, match="no v1 signature matches"):
        verify(f"t={NOW - 10_000},v1={'0' * 64}", [SECRET])


def test_no_secret_is_a_configuration_error_not_a_verdict() -> None:
    with pytest.raises(ValueError, match="no endpoint secret"):
        verify(sign_stripe_payload(BODY, SECRET, NOW), [])
