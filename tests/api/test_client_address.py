"""Which address a request is counted on: the peer, unless the peer is a trusted proxy;
then the right-most address of X-Forwarded-For that no trusted proxy wrote."""

from __future__ import annotations

from ipaddress import ip_network

import pytest
from pydantic import ValidationError
from starlette.types import Scope

from api.client_address import UNKNOWN, ClientAddresses, parse_address
from api.settings import ApiSettings

PROXIES = ClientAddresses([ip_network("10.0.0.0/8"), ip_network("fd00::/8")])


def scope(peer: str | None, *forwarded: str) -> Scope:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return {"client": (peer, 1234) if peer else None, "headers": headers}


def test_client_address_without_trusted_proxies_is_the_peer() -> None:
    nobody = ClientAddresses([])
    assert nobody.address(scope("10.1.2.3", "203.0.113.9")) == "10.1.2.3"


def test_client_address_from_an_untrusted_peer_ignores_forwarded_for() -> None:
    assert PROXIES.address(scope("198.51.100.7", "203.0.113.9")) == "198.51.100.7"


def test_client_address_behind_a_trusted_proxy_is_the_forwarded_client() -> None:
    assert PROXIES.address(scope("10.0.0.2", "203.0.113.9")) == "203.0.113.9"


def test_client_address_skips_every_trusted_hop_from_the_right() -> None:
    forwarded = "203.0.113.9, 10.9.9.9, 10.0.0.5"
    assert PROXIES.address(scope("10.0.0.2", forwarded)) == "203.0.113.9"


def test_client_address_never_believes_what_the_client_wrote_itself() -> None:
    # the client sent "X-Forwarded-For: 1.1.1.1"; the proxy appended the real peer
    assert PROXIES.address(scope("10.0.0.2", "1.1.1.1, 203.0.113.9")) == "203.0.113.9"


def test_client_address_reads_several_header_lines_in_order() -> None:
    two_lines = scope("10.0.0.2", "1.1.1.1", "203.0.113.9, 10.0.0.3")
    assert PROXIES.address(two_lines) == "203.0.113.9"


def test_client_address_all_hops_trusted_gives_the_left_most() -> None:
    assert PROXIES.address(scope("10.0.0.2", "10.0.0.9, 10.0.0.3")) == "10.0.0.9"


def test_client_address_without_header_behind_a_proxy_is_the_proxy() -> None:
    assert PROXIES.address(scope("10.0.0.2")) == "10.0.0.2"


def test_client_address_stops_at_a_hop_that_is_no_address() -> None:
    assert PROXIES.address(scope("10.0.0.2", "203.0.113.9, unknown, 10.0.0.3")) == "10.0.0.3"


def test_client_address_reads_ports_brackets_and_mapped_ipv4() -> None:
    assert parse_address("203.0.113.9:4711") == parse_address("203.0.113.9")
    assert str(parse_address("[2001:db8::1]:443")) == "2001:db8::1"
    assert str(parse_address("::ffff:203.0.113.9")) == "203.0.113.9"
    assert parse_address("not-an-address") is None
    assert PROXIES.address(scope("fd00::1", "[2001:db8::7]:5000")) == "2001:db8::7"


def test_client_address_without_peer_is_unknown() -> None:
    assert PROXIES.address(scope(None, "203.0.113.9")) is None
    assert PROXIES.key(None) == UNKNOWN


def test_client_key_is_the_address_for_ipv4_and_the_network_for_ipv6() -> None:
    assert PROXIES.key("203.0.113.9") == "203.0.113.9"
    assert PROXIES.key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert PROXIES.key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert ClientAddresses([], ipv6_prefix=128).key("2001:db8::1") == "2001:db8::1"


def test_client_trusted_proxies_setting_takes_comma_separated_networks() -> None:
    settings = ApiSettings(
        backend_secrets="s" * 32, insecure_skip_captcha=True, trusted_proxies="10.0.0.0/8, ::1"
    )
    assert settings.trusted_proxies == [ip_network("10.0.0.0/8"), ip_network("::1/128")]


@pytest.mark.parametrize("bad", ["10.0.0.1/8", "proxy.internal", "10.0.0.0/33"])
def test_client_trusted_proxies_setting_refuses_what_is_no_network(bad: str) -> None:
    with pytest.raises(ValidationError, match="trusted_proxies"):
        ApiSettings(backend_secrets="s" * 32, insecure_skip_captcha=True, trusted_proxies=bad)
