"""Refuse fetch targets on private, loopback, link-local or reserved addresses (SSRF protection).

`check_url` is called for the configured URL and again for every redirect hop.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from state.errors import UnsafeURLError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}

_N = ipaddress.ip_network
# Checked in order, first match wins: the reason names the most specific range. Explicit lists
# rather than ipaddress's is_private/is_reserved flags, whose meaning changed between Python
# releases (100.64/10 and 192.0.0.0/24 moved in and out of is_private).
_V4_RANGES: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_N("0.0.0.0/32"), "unspecified"),
    (_N("0.0.0.0/8"), "reserved"),                       # "this network"; Linux routes 0.x to localhost
    (_N("127.0.0.0/8"), "loopback"),
    (_N("10.0.0.0/8"), "private"),
    (_N("172.16.0.0/12"), "private"),
    (_N("192.168.0.0/16"), "private"),
    (_N("169.254.0.0/16"), "link-local (cloud metadata)"),
    (_N("100.64.0.0/10"), "carrier-grade NAT (100.64/10)"),
    (_N("192.0.0.0/24"), "reserved"),                    # IETF protocol assignments
    (_N("192.0.2.0/24"), "reserved"),                    # documentation (TEST-NET-1)
    (_N("198.51.100.0/24"), "reserved"),                 # documentation (TEST-NET-2)
    (_N("203.0.113.0/24"), "reserved"),                  # documentation (TEST-NET-3)
    (_N("198.18.0.0/15"), "reserved"),                   # benchmarking
    (_N("192.88.99.0/24"), "reserved"),                  # deprecated 6to4 relay anycast
    (_N("224.0.0.0/4"), "multicast"),
    (_N("240.0.0.0/4"), "reserved"),                     # includes 255.255.255.255 broadcast
)
_V6_RANGES: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_N("::/128"), "unspecified"),
    (_N("::1/128"), "loopback"),
    (_N("fc00::/7"), "private"),
    (_N("fe80::/10"), "link-local"),
    (_N("fec0::/10"), "site-local (fec0::/10)"),
    (_N("ff00::/8"), "multicast"),
    (_N("64:ff9b:1::/48"), "private"),                   # local-use NAT64 (RFC 8215)
    (_N("100::/64"), "reserved"),                        # discard-only
    (_N("2001:db8::/32"), "reserved"),                   # documentation
    (_N("2001::/23"), "reserved"),                       # IETF protocol assignments, incl. Teredo
)
_V4_COMPATIBLE = _N("::/96")                             # deprecated ::a.b.c.d
_NAT64 = _N("64:ff9b::/96")
# inet_aton accepts trailing garbage after a space ("127.0.0.1 x"); only hand it a plausible literal.
_V4_LITERAL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$", re.IGNORECASE)


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why `ip` must not be fetched ("loopback", "private", ...), or None for a public address."""
    if isinstance(ip, ipaddress.IPv4Address):
        for net, reason in _V4_RANGES:
            if ip in net:
                return reason
        # Anything the registry does not call global and we did not name above.
        return None if ip.is_global else "reserved"
    # IPv6 forms that carry an IPv4 address are judged by that address: the kernel or a
    # translator on the path delivers them to it.
    if ip.ipv4_mapped is not None:
        inner = forbidden_reason(ip.ipv4_mapped)
        return f"IPv4-mapped IPv6 of {inner}" if inner else None
    for net, reason in _V6_RANGES[:2]:                   # :: and ::1 live inside ::/96
        if ip in net:
            return reason
    if ip in _V4_COMPATIBLE:
        inner = forbidden_reason(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        return f"IPv4-compatible IPv6 of {inner}" if inner else None
    if ip.sixtofour is not None:
        inner = forbidden_reason(ip.sixtofour)
        return f"6to4 IPv6 of {inner}" if inner else None
    if ip in _NAT64:
        inner = forbidden_reason(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        return f"NAT64 IPv6 of {inner}" if inner else None
    for net, reason in _V6_RANGES[2:]:
        if ip in net:
            return reason
    return None if ip.is_global else "reserved"


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address `host` spells, in any form the OS resolver accepts, or None for a name.

    Covers dotted quads, decimal (2130706433), octal (0177.0.0.1), hex (0x7f.0.0.1), short
    (127.1) and IPv6 with or without a zone id.
    """
    host = host.strip("[]")
    if "%" in host:                                      # fe80::1%eth0: the zone id is not part of the address
        host = host.split("%", 1)[0]
    if host.endswith("."):                               # "127.0.0.1." resolves like "127.0.0.1"
        host = host[:-1]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _V4_LITERAL.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


class Allowance:
    """`fetch.allow_private_networks` given as a list: the private targets that may be fetched.
    Each entry is a network (`10.0.0.0/8`), an address (`127.0.0.1`, `::1`), an address with a port
    (`127.0.0.1:8081`, `[::1]:8081`) or a host name with an optional port (`intranet.local:8080`,
    matched on the URL's host as written). Everything else private stays refused."""

    def __init__(self, entries: list[str]):
        self.entries = list(entries)
        self.networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int | None]] = []
        self.names: list[tuple[str, int | None]] = []
        for e in self.entries:
            self._add(e)

    def _add(self, entry: str) -> None:
        text = entry.strip()
        if not text:
            raise ValueError("an empty entry")
        try:                                             # a network or bare address (IPv6 without brackets)
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            net = None
        if net is not None:
            if net.prefixlen < (8 if net.version == 4 else 16):  # 127.0.0.1/0 is every address
                raise ValueError(f"{entry!r} is too wide (/{net.prefixlen}): it would allow "
                                 f"{'every address' if net.prefixlen == 0 else 'far more than a private network'}; "
                                 "name the networks, or use true for local testing")
            self.networks.append((net, None))
            return
        m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?|([^:/\s\[\]]+)(?::(\d{1,5}))?", text)
        if not m:
            raise ValueError(f"{entry!r} is not a network, an address or a host, with an optional :port")
        host = m.group(1) or m.group(3)
        port_text = m.group(2) or m.group(4)
        port = int(port_text) if port_text else None
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"{entry!r}: port {port} is out of range")
        ip = parse_ip_literal(host)
        if ip is not None:
            self.networks.append((ipaddress.ip_network(ip), port))
        else:
            self.names.append((host.lower().rstrip("."), port))

    def allows(self, host: str, ip: IPAddress | None, port: int) -> bool:
        h = host.lower().strip("[]").rstrip(".")
        if any(name == h and p in (None, port) for name, p in self.names):
            return True
        return ip is not None and any(ip.version == net.version and ip in net and p in (None, port)
                                      for net, p in self.networks)

    def __repr__(self) -> str:
        return f"Allowance({self.entries!r})"


def allowance(value) -> bool | Allowance:
    """What `fetch.allow_private_networks` means: True/False, or an Allowance from a list."""
    if isinstance(value, Allowance) or isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple)):
        return Allowance([str(v) for v in value])
    return bool(value)


def check_url(url: str, *, allow_private: bool | Allowance = False, resolver=socket.getaddrinfo) -> list:
    """Raise UnsafeURLError unless `url` is http(s) and its host resolves only to public addresses;
    return the addresses that were checked (empty with allow_private), so that the fetcher can
    connect to exactly those (no second lookup that a rebinding DNS server could answer differently).
    With an Allowance, a private address (or host) it names passes, and every other stays refused.

    Messages name the host, never the whole URL: it may carry credentials.
    `resolver` has the signature of socket.getaddrinfo (tests inject one).
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except ValueError as e:
        raise UnsafeURLError(f"malformed URL: {e}", url=url) from e
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = f"'{scheme}:'" if scheme else "none"
        raise UnsafeURLError(
            f"scheme {shown} is not allowed; only http and https are fetched", url=url
        )
    if not host:
        raise UnsafeURLError("URL has no host", url=url)
    if allow_private is True:
        return []
    allowed = allow_private if isinstance(allow_private, Allowance) else None
    port_n = port or _DEFAULT_PORTS[scheme]
    ip = parse_ip_literal(host)
    if ip is not None:
        reason = forbidden_reason(ip)
        if reason and not (allowed is not None and allowed.allows(host, ip, port_n)):
            raise UnsafeURLError(f"refusing host {host}: {ip} is {reason}", url=url)
        return [ip]
    name = host.rstrip(".") or host
    try:
        infos = resolver(name, port_n, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:                 # socket.gaierror is an OSError
        raise UnsafeURLError(f"cannot resolve host {host}: {e}", url=url) from e
    addresses = []
    for info in infos:
        addr = parse_ip_literal(str(info[4][0]))
        if addr is None:                                 # a resolver answer we cannot judge is not trusted
            raise UnsafeURLError(f"host {host} resolved to an unparseable address", url=url)
        addresses.append(addr)
    if not addresses:
        raise UnsafeURLError(f"cannot resolve host {host}: no addresses", url=url)
    # ANY forbidden answer refuses the host: the fetcher may connect to whichever it likes.
    for addr in addresses:
        reason = forbidden_reason(addr)
        if reason and not (allowed is not None and allowed.allows(host, addr, port_n)):
            raise UnsafeURLError(
                f"refusing host {host}: it resolves to {addr}, which is {reason}", url=url
            )
    return addresses
