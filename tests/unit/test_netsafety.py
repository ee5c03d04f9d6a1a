"""SSRF guard: every forbidden range, every spelling of an IP literal, resolver answers, schemes."""
from __future__ import annotations

import ipaddress
import socket

import pytest

from spiders.netsafety import check_url, forbidden_reason, parse_ip_literal
from state.errors import UnsafeURLError


def fake_resolver(table: dict[str, list[str]]):
    """A getaddrinfo stand-in answering from `table`; unknown names fail like real DNS."""
    calls = []

    def resolve(host, port, type=0, **kw):
        calls.append((host, port, type))
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out = []
        for addr in table[host]:
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            sockaddr = (addr, port, 0, 0) if fam == socket.AF_INET6 else (addr, port)
            out.append((fam, socket.SOCK_STREAM, 6, "", sockaddr))
        return out

    resolve.calls = calls
    return resolve


def no_dns(*a, **kw):
    raise AssertionError("an IP literal must not be sent to the resolver")


RANGES = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local (cloud metadata)"),
    ("169.254.1.1", "link-local (cloud metadata)"),
    ("100.64.0.1", "carrier-grade NAT (100.64/10)"),
    ("100.127.255.255", "carrier-grade NAT (100.64/10)"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "reserved"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.0.8", "reserved"),
    ("192.0.2.1", "reserved"),
    ("198.51.100.7", "reserved"),
    ("203.0.113.9", "reserved"),
    ("198.18.0.1", "reserved"),
    ("198.19.255.1", "reserved"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fe80::1", "link-local"),
    ("fec0::1", "site-local (fec0::/10)"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "reserved"),
    ("::ffff:127.0.0.1", "IPv4-mapped IPv6 of loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped IPv6 of link-local (cloud metadata)"),
    ("::ffff:10.0.0.1", "IPv4-mapped IPv6 of private"),
    ("::127.0.0.1", "IPv4-compatible IPv6 of loopback"),
    ("2002:7f00:1::", "6to4 IPv6 of loopback"),
    ("2002:a9fe:a9fe::1", "6to4 IPv6 of link-local (cloud metadata)"),
    ("64:ff9b::10.0.0.1", "NAT64 IPv6 of private"),
    ("64:ff9b::192.168.0.1", "NAT64 IPv6 of private"),
]


@pytest.mark.parametrize("addr,reason", RANGES, ids=[a for a, _ in RANGES])
def test_forbidden_ranges(addr, reason):
    assert forbidden_reason(ipaddress.ip_address(addr)) == reason


PUBLIC = ["93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "192.169.0.1",
          "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.216.34", "2002:5db8:d822::1",
          "64:ff9b::93.184.216.34"]


@pytest.mark.parametrize("addr", PUBLIC, ids=PUBLIC)
def test_public_addresses_are_allowed(addr):
    assert forbidden_reason(ipaddress.ip_address(addr)) is None


SPELLINGS = [
    ("dotted", "http://127.0.0.1/", "127.0.0.1"),
    ("decimal", "http://2130706433/", "127.0.0.1"),
    ("octal", "http://0177.0.0.1/", "127.0.0.1"),
    ("hex", "http://0x7f.0.0.1/", "127.0.0.1"),
    ("hex-whole", "http://0x7f000001/", "127.0.0.1"),
    ("short", "http://127.1/", "127.0.0.1"),
    ("trailing-dot", "http://127.0.0.1./", "127.0.0.1"),
    ("with-port", "http://127.0.0.1:8080/admin", "127.0.0.1"),
    ("metadata-decimal", "http://2852039166/latest/meta-data/", "169.254.169.254"),
    ("v6-bracketed", "http://[::1]/", "::1"),
    ("v6-port", "https://[::1]:8443/", "::1"),
    ("v6-zone", "http://[fe80::1%25eth0]/", "fe80::1"),
    ("v4-mapped", "http://[::ffff:127.0.0.1]/", "::ffff:7f00:1"),
    ("v4-mapped-hex", "http://[::ffff:7f00:1]/", "::ffff:7f00:1"),
    ("6to4", "http://[2002:c0a8:0101::1]/", "2002:c0a8:101::1"),
    ("nat64", "http://[64:ff9b::a00:1]/", "64:ff9b::a00:1"),
]


@pytest.mark.parametrize("name,url,normal", SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_every_ip_spelling_is_normalised_and_refused(name, url, normal):
    with pytest.raises(UnsafeURLError) as ei:
        check_url(url, resolver=no_dns)
    assert f": {normal} is " in str(ei.value)
    assert ei.value.url == url


@pytest.mark.parametrize("host,expected", [
    ("127.1", "127.0.0.1"), ("10.1", "10.0.0.1"), ("0x0a.0x01.0.1", "10.1.0.1"),
    ("127.0.0.1 x", None), ("example.gov", None), ("cafe.be", None), ("1.2.3.4.5", None),
], ids=["short", "short-private", "hex-octets", "trailing-junk", "name", "hexlike-name", "five-parts"])
def test_parse_ip_literal(host, expected):
    got = parse_ip_literal(host)
    assert (str(got) if got else None) == expected


def test_public_name_is_allowed_and_resolved_with_port_and_stream_type():
    resolve = fake_resolver({"www.dhs.gov": ["93.184.216.34"]})
    check_url("https://www.dhs.gov/news", resolver=resolve)
    assert resolve.calls == [("www.dhs.gov", 443, socket.SOCK_STREAM)]
    check_url("http://www.dhs.gov:8080/", resolver=resolve)
    assert resolve.calls[-1] == ("www.dhs.gov", 8080, socket.SOCK_STREAM)


def test_public_ip_literal_is_allowed():
    check_url("http://93.184.216.34/", resolver=no_dns)


RESOLVED = [
    ("only-private", ["10.0.0.5"], "10.0.0.5, which is private"),
    ("public-then-private", ["93.184.216.34", "192.168.0.10"], "192.168.0.10, which is private"),
    ("private-then-public", ["127.0.0.1", "93.184.216.34"], "127.0.0.1, which is loopback"),
    ("v6-loopback-among-public", ["93.184.216.34", "::1"], "::1, which is loopback"),
    ("metadata", ["169.254.169.254"], "which is link-local (cloud metadata)"),
    ("mapped", ["::ffff:10.0.0.1"], "which is IPv4-mapped IPv6 of private"),
    ("v6-zone-linklocal", ["fe80::1%eth0"], "which is link-local"),
]


@pytest.mark.parametrize("name,addrs,fragment", RESOLVED, ids=[r[0] for r in RESOLVED])
def test_name_refused_when_any_address_is_forbidden(name, addrs, fragment):
    resolve = fake_resolver({"internal.example.gov": addrs})
    with pytest.raises(UnsafeURLError) as ei:
        check_url("https://internal.example.gov/", resolver=resolve)
    assert str(ei.value).startswith("refusing host internal.example.gov: it resolves to ")
    assert fragment in str(ei.value)


def test_unresolvable_name():
    with pytest.raises(UnsafeURLError, match=r"^cannot resolve host nowhere\.invalid: "):
        check_url("http://nowhere.invalid/", resolver=fake_resolver({}))


def test_empty_resolver_answer_is_refused():
    with pytest.raises(UnsafeURLError, match="no addresses"):
        check_url("http://empty.example/", resolver=fake_resolver({"empty.example": []}))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://[::1]/", "http://169.254.169.254/", "http://localhost:8000/",
], ids=["v4-loopback", "v6-loopback", "metadata", "name"])
def test_allow_private_skips_address_checks(url):
    check_url(url, allow_private=True, resolver=no_dns)


BAD_SCHEMES = [
    ("file:///etc/passwd", "'file:'"),
    ("ftp://ftp.example.gov/x", "'ftp:'"),
    ("gopher://127.0.0.1:70/", "'gopher:'"),
    ("javascript:alert(1)", "'javascript:'"),
    ("data:text/html,hi", "'data:'"),
    ("FILE:///etc/passwd", "'file:'"),
    ("//example.gov/x", "none"),
]


@pytest.mark.parametrize("url,shown", BAD_SCHEMES, ids=[u.split(":")[0] or "relative" for u, _ in BAD_SCHEMES])
@pytest.mark.parametrize("allow_private", [False, True], ids=["strict", "allow-private"])
def test_bad_schemes_refused_even_with_allow_private(url, shown, allow_private):
    with pytest.raises(UnsafeURLError) as ei:
        check_url(url, allow_private=allow_private, resolver=no_dns)
    assert str(ei.value) == f"scheme {shown} is not allowed; only http and https are fetched"


def test_credentials_are_never_echoed():
    url = "http://admin:s3cret-token@10.0.0.1/x"
    with pytest.raises(UnsafeURLError) as ei:
        check_url(url, resolver=no_dns)
    assert "s3cret" not in str(ei.value) and "admin" not in str(ei.value)
    assert str(ei.value) == "refusing host 10.0.0.1: 10.0.0.1 is private"
    resolve = fake_resolver({"h.example": ["192.168.0.1"]})
    with pytest.raises(UnsafeURLError) as ei:
        check_url("https://u:s3cret@h.example/", resolver=resolve)
    assert "s3cret" not in str(ei.value)
    # Credentials alone are not a reason to refuse.
    check_url("https://u:s3cret@www.dhs.gov/", resolver=fake_resolver({"www.dhs.gov": ["93.184.216.34"]}))


@pytest.mark.parametrize("url,fragment", [
    ("http:///path", "URL has no host"),
    ("http://[::1/", "malformed URL"),
    ("http://example.gov:99999/", "malformed URL"),
], ids=["no-host", "bad-bracket", "bad-port"])
def test_malformed_urls(url, fragment):
    with pytest.raises(UnsafeURLError, match=fragment):
        check_url(url, resolver=no_dns)


@pytest.mark.parametrize("entry", ["127.0.0.1/0", "0.0.0.0/0", "10.0.0.0/7", "::/0", "fc00::/8"])
def test_an_allowance_wider_than_a_private_network_is_refused(entry):
    from spiders.netsafety import Allowance

    with pytest.raises(ValueError, match="too wide"):
        Allowance([entry])


def test_an_allowance_lets_through_exactly_what_it_names():
    from spiders.netsafety import Allowance

    a = Allowance(["127.0.0.1:8081", "10.1.0.0/16", "[::1]:99", "intranet.local"])
    check_url("http://127.0.0.1:8081/x", allow_private=a, resolver=no_dns)
    check_url("http://10.1.2.3/", allow_private=a, resolver=no_dns)
    check_url("http://[::1]:99/", allow_private=a, resolver=no_dns)
    for url in ("http://127.0.0.1:8082/", "http://127.0.0.2:8081/", "http://10.2.0.1/", "http://[::1]:98/",
                "http://169.254.169.254/"):
        with pytest.raises(UnsafeURLError):
            check_url(url, allow_private=a, resolver=no_dns)
