"""Where notifications may go: URLs refused or admitted by the SSRF rule, with the reason."""

from __future__ import annotations

import ipaddress

import pytest

from banking_analytics.monitor import UnsafeURLError, check_url, parse_networks
from banking_analytics.monitor._ssrf import Address

PUBLIC = ipaddress.ip_address("93.184.215.14")


def resolver(*addresses: str):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[Address]:
        return [ipaddress.ip_address(a) for a in addresses]

    return resolve


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
        ("http://[::1]:8080/hook", "::1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://10.1.2.3/hook", "10.1.2.3 is a private address"),
        ("https://192.168.0.10/hook", "192.168.0.10 is a private address"),
        ("http://172.16.5.4/hook", "172.16.5.4 is a private address"),
        ("http://[::ffff:127.0.0.1]/hook", "::ffff:127.0.0.1 is a loopback address"),
        ("http://[::ffff:10.0.0.1]/hook", "::ffff:10.0.0.1 is a private address"),
        ("http://[fd12:3456::1]/hook", "fd12:3456::1 is a unique-local address"),
        ("http://[fe80::1]/hook", "fe80::1 is a link-local address"),
        ("http://224.0.0.1/hook", "224.0.0.1 is a multicast address"),
        ("http://0.0.0.0/hook", "0.0.0.0 is a unspecified address"),
        ("http://[::]/hook", ":: is a unspecified address"),
        ("http://100.64.0.1/hook", "100.64.0.1 is a reserved (not globally routable) address"),
    ],
)
def test_addresses_that_are_not_public_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURLError) as refused:
        check_url(url, resolve=resolver("8.8.8.8"))
    assert str(refused.value).startswith(reason)
    assert "BA_NOTIFY_ALLOWED_NETWORKS" in str(refused.value)


def test_a_name_is_refused_if_any_address_it_resolves_to_is_not_public() -> None:
    with pytest.raises(UnsafeURLError, match=r"^hooks.example.com \(10.0.0.5\) is a private"):
        check_url("https://hooks.example.com/x", resolve=resolver("93.184.215.14", "10.0.0.5"))
    # localhost, by the system's own resolver.
    with pytest.raises(UnsafeURLError, match="is a loopback address"):
        check_url("http://localhost:9/hook")


def test_a_public_address_is_connected_to_as_checked() -> None:
    target = check_url(
        "https://hooks.example.com/services/T1?x=1", resolve=resolver("93.184.215.14")
    )
    assert (target.address, target.port, target.host_header, target.target) == (
        PUBLIC,
        443,
        "hooks.example.com",
        "/services/T1?x=1",
    )
    assert target.pinned_url == "https://93.184.215.14:443/services/T1?x=1"
    v6 = check_url("http://[2606:4700::1111]:8080/", resolve=resolver())
    assert (v6.pinned_url, v6.host_header) == (
        "http://[2606:4700::1111]:8080/",
        "[2606:4700::1111]:8080",
    )


def test_the_operator_allow_list_admits_its_networks_only() -> None:
    allowed = parse_networks(["127.0.0.1/32", "10.20.0.0/16"])
    assert check_url("http://127.0.0.1:9000/h", allowed).port == 9000
    assert check_url("http://[::ffff:127.0.0.1]:9000/h", allowed).port == 9000
    assert str(check_url("http://10.20.3.4/h", allowed).address) == "10.20.3.4"
    for url in ("http://127.0.0.2/h", "http://10.21.0.1/h", "http://[::1]/h"):
        with pytest.raises(UnsafeURLError):
            check_url(url, allowed)
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is not a network"):
        parse_networks(["10.0.0.0/33"])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/x", "is not an http(s) URL with a host"),
        ("http:///x", "is not an http(s) URL with a host"),
        ("http://user:pw@example.com/x", "a URL with credentials in it is refused"),
        ("http://example.com:99999/x", "is not a URL"),
        ("http://no-such-host.invalid/x", "does not resolve"),
    ],
)
def test_what_is_not_an_http_url_is_refused(url: str, message: str) -> None:
    with pytest.raises(UnsafeURLError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_url(url)
