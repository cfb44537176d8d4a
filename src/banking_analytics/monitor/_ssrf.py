"""Where notifications may go: an outbound URL checked against server-side request forgery.

A receiver's URL is written by an admin, but the request leaves from inside the
network: it must not reach the cloud metadata service (169.254.169.254), the
database on loopback or a private service. So the URL's host is resolved and
EVERY address it resolves to must be public (``ipaddress``'s ``is_global``, and
not multicast); loopback, link-local, private (10/8, 172.16/12, 192.168/16),
unique-local (fc00::/7), multicast, unspecified and reserved ranges are refused,
IPv4-mapped IPv6 addresses (``::ffff:127.0.0.1``) judged as the IPv4 address
they carry. An operator's allow-list (networks in CIDR notation) admits
addresses it contains.

The request is then sent to the address that was checked (the URL's host kept
as ``Host`` and, for https, as the TLS server name), so the name cannot resolve
to another address between the check and the connection (DNS rebinding), and
redirects are never followed (see :mod:`._deliveries`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "Address",
    "Network",
    "Resolver",
    "Target",
    "UnsafeURLError",
    "check_url",
    "parse_networks",
    "system_resolver",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Host and port to addresses (the system's resolver, or a test's).
Resolver = Callable[[str, int], list[Address]]


class UnsafeURLError(ValueError):
    """A URL notifications may not be sent to; says why."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: where to connect (``address``), and the names the request carries."""

    url: str
    scheme: str
    host: str
    port: int
    address: Address
    #: The URL's path and query.
    target: str

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def pinned_url(self) -> str:
        """The URL with the checked address in place of the host name."""
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.scheme}://{host}:{self.port}{self.target}"


def parse_networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """An allow-list: networks like ``127.0.0.1/32`` or ``10.20.0.0/16`` (a bare address is
    one host). :class:`ValueError` naming the bad one."""
    networks = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not a network like 10.0.0.0/8 or ::1/128") from None
    return tuple(networks)


def system_resolver(host: str, port: int) -> list[Address]:
    """Every address the system resolves ``host`` to."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def _refusal(address: Address) -> str | None:
    """Why ``address`` is not public, or None when it is."""
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.version == 6 and address in ipaddress.ip_network("fc00::/7"):
        return "unique-local"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "reserved (not globally routable)"
    return None


def check_url(
    url: str,
    allowed: Sequence[Network] = (),
    *,
    resolve: Resolver = system_resolver,
) -> Target:
    """The URL checked (see the module); :class:`UnsafeURLError` saying why it is refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURLError(f"{url!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURLError(f"{url!r} is not an http(s) URL with a host")
    if parts.username or parts.password:
        raise UnsafeURLError("a URL with credentials in it is refused (they would be logged)")
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    try:
        addresses = [literal] if literal is not None else resolve(host, port)
    except OSError as exc:
        raise UnsafeURLError(f"the host {host!r} does not resolve: {exc}") from None
    if not addresses:
        raise UnsafeURLError(f"the host {host!r} resolves to no address")
    for address in addresses:
        judged = address.ipv4_mapped if address.version == 6 and address.ipv4_mapped else address
        if any(judged in network or address in network for network in allowed):
            continue
        reason = _refusal(judged)
        if reason is not None:
            shown = host if literal is not None else f"{host} ({address})"
            raise UnsafeURLError(
                f"{shown} is a {reason} address; notifications go only to public addresses "
                "unless the operator allow-lists the network (BA_NOTIFY_ALLOWED_NETWORKS)"
            )
    path = parts.path or "/"
    target = f"{path}?{parts.query}" if parts.query else path
    return Target(url, parts.scheme, host, port, addresses[0], target)
