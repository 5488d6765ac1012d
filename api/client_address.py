"""Which address a request comes from: the peer, or the client a trusted proxy names.

Behind a load balancer every peer is the balancer, so the address that limits
are counted on must come from `X-Forwarded-For`, but only when the peer is a
trusted proxy (SDQ_TRUSTED_PROXIES): anyone else could write any address there.
The header is read right to left: hops appended by trusted proxies are skipped,
and the first untrusted address is the client. Everything left of it was sent
by the client itself and is never believed.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from starlette.types import Scope

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

UNKNOWN = "unknown"  # the key of a request without an IP peer (e.g. a Unix socket)


def parse_address(text: str) -> IPAddress | None:
    """An IP address as proxies write it: bare, `[v6]`, `v4:port` or `[v6]:port`;
    an IPv4-mapped IPv6 address is its IPv4 address. None if it is none of these."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientAddresses:
    """Resolves the client of a request under one trusted-proxy configuration."""

    def __init__(self, trusted_proxies: Sequence[IPNetwork], ipv6_prefix: int = 64) -> None:
        self._trusted = tuple(trusted_proxies)
        self._ipv6_prefix = ipv6_prefix

    def _is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self._trusted)

    def address(self, scope: Scope) -> str | None:
        """The client's IP address (what hCaptcha gets as `remoteip`), or None."""
        peer_host = scope["client"][0] if scope.get("client") else None
        peer = parse_address(peer_host) if peer_host else None
        if peer is None:
            return None
        if not self._trusted or not self._is_trusted(peer):
            return str(peer)
        client = peer
        for hop in reversed(_forwarded_for(scope)):
            address = parse_address(hop)
            if address is None:  # a trusted proxy would not write this: stop believing
                break
            client = address
            if not self._is_trusted(address):
                break
        return str(client)

    def key(self, address: str | None) -> str:
        """What limits are counted on: the address, or for IPv6 its network of
        SDQ_IPV6_CLIENT_PREFIX bits (one subscriber usually holds a whole /64)."""
        parsed = parse_address(address) if address else None
        if parsed is None:
            return UNKNOWN
        if isinstance(parsed, IPv6Address) and self._ipv6_prefix < 128:
            return str(IPv6Network((parsed, self._ipv6_prefix), strict=False))
        return str(parsed)


def _forwarded_for(scope: Scope) -> list[str]:
    """Every X-Forwarded-For hop, all header lines joined in order (RFC 9110 5.3)."""
    hops: list[str] = []
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            hops += value.decode("latin-1").split(",")
    return hops
