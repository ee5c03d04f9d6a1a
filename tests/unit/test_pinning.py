"""DNS rebinding: the connection goes to the address the safety check approved, not to a second
lookup's answer."""
from __future__ import annotations

import ipaddress
import socket

from spiders import fetch
from spiders.netsafety import check_url


def resolver_public(host, port, type=0):
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]


class RebindingFallback(fetch.PinnedResolver):
    """What a rebinding DNS server would answer to the second lookup."""

    def __init__(self):
        super().__init__(None, 10, 1.0)
        self.second_lookups = []

    def _resolve(self, name):
        self.second_lookups.append(name)
        return "127.0.0.1"


def result_of(d):
    out = []
    d.addCallback(out.append)
    return out[0]


def test_checked_address_is_pinned_and_answered_without_a_second_lookup(monkeypatch):
    monkeypatch.setattr(fetch, "_PINNED", {})
    addresses = check_url("http://Rebind.Example./x", resolver=resolver_public)
    assert addresses == [ipaddress.ip_address("93.184.216.34")]
    fetch.pin("Rebind.Example.", addresses)
    r = RebindingFallback()
    monkeypatch.setattr(fetch.CachingThreadedResolver, "getHostByName", lambda self, name, timeout=(): r._resolve(name))
    assert result_of(r.getHostByName("rebind.example")) == "93.184.216.34"
    assert r.second_lookups == []


def test_unpinned_names_use_the_normal_lookup(monkeypatch):
    monkeypatch.setattr(fetch, "_PINNED", {})
    r = RebindingFallback()
    monkeypatch.setattr(fetch.CachingThreadedResolver, "getHostByName", lambda self, name, timeout=(): r._resolve(name))
    assert r.getHostByName("other.example") == "127.0.0.1" and r.second_lookups == ["other.example"]


def test_private_mode_pins_nothing(monkeypatch):
    monkeypatch.setattr(fetch, "_PINNED", {})
    fetch.pin("localhost", check_url("http://localhost/", allow_private=True))
    assert fetch._PINNED == {}


def test_ipv6_only_answers_are_pinned_and_never_looked_up_over_ipv4(monkeypatch):
    monkeypatch.setattr(fetch, "_PINNED", {})
    fetch.pin("v6.example", [ipaddress.ip_address("2606:2800:220:1::1")])
    assert fetch._PINNED == {"v6.example": ("2606:2800:220:1::1",)}
    r = RebindingFallback()
    monkeypatch.setattr(fetch.CachingThreadedResolver, "getHostByName", lambda self, name, timeout=(): r._resolve(name))
    failures = []
    r.getHostByName("v6.example").addErrback(failures.append)
    assert failures and "only IPv6" in str(failures[0].value) and r.second_lookups == []


def test_name_resolver_answers_every_pinned_family(monkeypatch):
    monkeypatch.setattr(fetch, "_PINNED", {})
    fetch.pin("both.example", [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("2606:2800:220:1::1")])

    class Unreachable:
        def resolveHostName(self, *a, **kw):
            raise AssertionError("a pinned name was looked up again")

    class Receiver:
        def __init__(self):
            self.addresses = []

        def resolutionBegan(self, resolution):
            pass

        def addressResolved(self, address):
            self.addresses.append((type(address).__name__, address.host, address.port))

        def resolutionComplete(self):
            self.done = True

    rec = Receiver()
    fetch.PinnedNameResolver(Unreachable()).resolveHostName(rec, "Both.Example.", 443)
    assert rec.addresses == [("IPv4Address", "93.184.216.34", 443), ("IPv6Address", "2606:2800:220:1::1", 443)]
    assert rec.done
