"""Fetching with Scrapy: every cycle is one crawl of an `AsyncCrawlerRunner` on the asyncio
reactor, which this long-lived process installs and starts exactly once.

Why this shape: a Twisted reactor cannot be restarted (`CrawlerProcess.start()` twice raises
ReactorNotRestartable). Running the scheduler as a coroutine inside the one reactor/asyncio loop
and starting a new crawl per cycle costs ~0.25 s per cycle with flat memory (stack-notes §2),
where a process per cycle costs 0.4-1 s. Results are handed to the monitor as they arrive
(awaited by the spider callback), so a shutdown mid-crawl loses nothing already fetched.
"""
from __future__ import annotations

import asyncio
import logging
import re
import signal
import socket
import time
from collections import deque
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import urlsplit

import scrapy
from scrapy.downloadermiddlewares.redirect import MetaRefreshMiddleware, RedirectMiddleware
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.resolver import CachingThreadedResolver, HostResolution
from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import IHostnameResolver
from zope.interface import implementer
from scrapy.utils.misc import load_object
from scrapy.utils.response import response_status_message

from spiders.kinds import FetchRequest, Fetched
from spiders.netsafety import allowance, check_url
from state.errors import UnsafeURLError

logger = logging.getLogger(__name__)

REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
VERSION = "0.1.0"
# Statuses the callback sees itself (304 = unchanged; 4xx/5xx are recorded, not dropped).
# 3xx other than 304 stay with RedirectMiddleware, so every hop passes the safety check.
HANDLED_STATUSES = [304] + list(range(400, 600))

OnResult = Callable[[Fetched], Awaitable[Iterable[FetchRequest] | None]]


def user_agent(contact: str = "") -> str:
    extra = f"; {contact}" if contact else ""
    return f"govwatch/{VERSION} (change monitor for public oversight records{extra})"


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


# host name -> every address the safety check approved (IPv4 and IPv6, in the resolver's order);
# the reactor's resolvers answer a pinned name from it and never look it up again
_PINNED: dict[str, tuple[str, ...]] = {}


def pin(host: str, addresses: list) -> None:
    """Remember the checked addresses of a host name, so that the connection goes to one of them."""
    approved = tuple(dict.fromkeys(str(a) for a in addresses if getattr(a, "version", 0) in (4, 6)))
    if host and approved:
        _PINNED[host.lower().rstrip(".")] = approved


class PinnedResolver(CachingThreadedResolver):
    """Scrapy's caching resolver, but a name the safety check approved resolves to the address it
    approved: a DNS server that answers a public address to the check and 127.0.0.1 to the
    connection (DNS rebinding) cannot steer a fetch into the private network."""

    def getHostByName(self, name, timeout=()):
        pinned = _PINNED.get(name.lower().rstrip("."))
        if pinned is not None:
            v4 = [a for a in pinned if ":" not in a]
            if v4:
                return defer.succeed(v4[0])
            # approved only over IPv6: this IPv4-only interface must not look the name up again
            return defer.fail(DNSLookupError(f"{name}: the safety check approved only IPv6 addresses"))
        return super().getHostByName(name, timeout)


@implementer(IHostnameResolver)
class PinnedNameResolver:
    """The reactor's name resolver (what Twisted's HostnameEndpoint, and so every Scrapy HTTP
    connection, asks): a pinned name resolves to every address the check approved, IPv4 and IPv6;
    other names go to the resolver it wraps. Without it a name approved only for a public IPv6
    address was resolved again over IPv4, an answer no check had seen."""

    def __init__(self, fallback: IHostnameResolver):
        self.fallback = fallback

    def resolveHostName(self, resolutionReceiver, hostName, portNumber=0, addressTypes=None,
                        transportSemantics="TCP"):
        pinned = _PINNED.get(hostName.lower().rstrip("."))
        if pinned is None:
            return self.fallback.resolveHostName(resolutionReceiver, hostName, portNumber, addressTypes,
                                                 transportSemantics)
        resolution = HostResolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        for ip in pinned:
            kind = IPv6Address if ":" in ip else IPv4Address
            if addressTypes is None or kind in addressTypes:
                resolutionReceiver.addressResolved(kind(transportSemantics, ip, portNumber))
        resolutionReceiver.resolutionComplete()
        return resolution


def install_pinned_resolvers(reactor) -> None:
    """Give the reactor Scrapy's caching resolver (with a timeout, so one slow DNS server cannot
    stall a cycle) for unchecked names, both resolver interfaces pinned to the checked addresses."""
    simple = PinnedResolver(reactor, cache_size=10000, timeout=20.0)
    simple.install_on_reactor()
    # (this also makes reactor.resolver a view of the pinned name resolver, pins included)
    reactor.installNameResolver(PinnedNameResolver(reactor.nameResolver))


def resolver_of(settings):
    """The name resolver of the safety check (socket.getaddrinfo; GOVWATCH_RESOLVER replaces it, so
    that a test can make a "public" name that in truth points at a local server), for the fetcher
    and the browser's proxy alike."""
    resolver = settings.get("GOVWATCH_RESOLVER")
    return load_object(resolver) if isinstance(resolver, str) else (resolver or socket.getaddrinfo)


class SafetyMiddleware:
    """Refuses every request (first hop and each redirect hop) to private or reserved addresses."""

    def __init__(self, crawler):
        self.allow_private = allowance(crawler.settings.get("GOVWATCH_ALLOW_PRIVATE"))
        self.resolver = resolver_of(crawler.settings)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    async def process_request(self, request):
        # the fetch starts now, not when the request was queued: durations and schedules count from here
        request.meta["gw_started"] = time.monotonic()
        request.meta["gw_started_at"] = datetime.now(timezone.utc)
        try:
            # DNS resolution blocks: keep it off the event loop.
            addresses = await asyncio.to_thread(check_url, request.url, allow_private=self.allow_private, resolver=self.resolver)
        except UnsafeURLError as e:
            msg = str(e)
            raise IgnoreRequest(msg if msg.startswith("cannot resolve") else f"refused: {msg}") from e
        pin(urlsplit(request.url).hostname or "", addresses)
        return None


class PoliteRobotsMiddleware(RobotsTxtMiddleware):
    """robots.txt rules, plus its Crawl-delay: Scrapy parses the directive but never applies it,
    so the host's download slot is slowed to what the site asks (capped at 60 s)."""

    MAX_CRAWL_DELAY = 60.0

    def process_request_2(self, rp, request) -> None:
        super().process_request_2(rp, request)  # raises IgnoreRequest when robots.txt forbids it
        if rp is None or not hasattr(rp, "crawl_delay"):
            return
        ua = self._robotstxt_useragent or request.headers.get(b"User-Agent", self._default_useragent)
        delay = rp.crawl_delay(ua)
        if delay:
            _key, slot = self.crawler.engine.downloader._get_slot(request)
            slot.delay = max(slot.delay, min(float(delay), self.MAX_CRAWL_DELAY))


_META_REFRESH = re.compile(rb"<meta[^>]*http-equiv\s*=\s*[\"']?\s*refresh", re.I)


# Request headers that carry a credential, whatever the kind: Scrapy itself drops only Cookie and
# Authorization on a redirect to another origin.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "apikey",
                            "x-auth-token", "x-access-token", "x-goog-api-key", "ocp-apim-subscription-key"})
# Headers a kind may set that are not secret; every other header a kind sets is treated as one.
_PLAIN_KIND_HEADERS = frozenset({"accept", "accept-language", "if-none-match", "if-modified-since"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        return scheme, (parts.hostname or "").lower().rstrip("."), parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:                       # a port out of range: no origin to compare
        return None


def keeps_secrets(source_url: str, target_url: str) -> bool:
    """Whether a redirect from `source_url` to `target_url` may carry credentials: only to the same
    origin, or the same host upgraded from http to https on the default ports."""
    src, dst = _origin(source_url), _origin(target_url)
    if src is None or dst is None:
        return False
    if src == dst:
        return True
    return (src[1] == dst[1] and src[0] == "http" and dst[0] == "https"
            and src[2] == 80 and dst[2] == 443)


class SecretHeadersOnRedirect:
    """Mixin for Scrapy's redirect middlewares: a hop to another host, port or a downgraded scheme
    carries none of the secret headers (an API key, a token, a cookie): a 302 to another host must
    not hand it the Congress.gov key."""

    def _build_redirect_request(self, source_request, response, *, url, **kwargs):
        redirected = super()._build_redirect_request(source_request, response, url=url, **kwargs)
        if keeps_secrets(source_request.url, redirected.url):
            return redirected
        fr = source_request.meta.get("gw")
        kind_headers = {k.lower() for k in (fr.headers if fr is not None else {})} - _PLAIN_KIND_HEADERS
        for name in list(redirected.headers.keys()):
            if name.decode("latin-1").lower() in SECRET_HEADERS | kind_headers:
                del redirected.headers[name]
        return redirected


class SafeRedirectMiddleware(SecretHeadersOnRedirect, RedirectMiddleware):
    """Scrapy's 3xx redirects, without secret headers on a hop to another origin."""


class LeanMetaRefreshMiddleware(SecretHeadersOnRedirect, MetaRefreshMiddleware):
    """Scrapy's meta-refresh redirects (secret headers dropped like SafeRedirectMiddleware's),
    without decoding every page to look for the tag: Scrapy reads `response.text` (the whole body,
    decoded and cached on the response: 11 MB of the peak at 100 responses in flight, and a decode
    per page) for a tag within its first 4,096 characters."""

    def process_response(self, request, response, spider=None):
        head = response.body[:16_384]            # 4,096 characters are at most 16 KB of UTF-8
        if b"\x00" not in head[:512] and not _META_REFRESH.search(head):   # UTF-16 pages: ask Scrapy
            return response
        return super().process_response(request, response)


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's retry, plus exponential backoff and Retry-After on 429/503 (capped)."""

    def __init__(self, settings):
        super().__init__(settings)
        self.base_delay = settings.getfloat("GOVWATCH_RETRY_BASE_DELAY", 0.5)
        self.max_retry_after = settings.getfloat("GOVWATCH_MAX_RETRY_AFTER", 120.0)

    def _backoff(self, request) -> float:
        return self.base_delay * (2 ** request.meta.get("retry_times", 0))

    async def process_response(self, request, response, spider=None):
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        delay = self._backoff(request)
        if response.status in (429, 503):
            ra = retry_after_seconds(response.headers.get("Retry-After", b"").decode("latin-1") or None)
            if ra is not None:
                if ra > self.max_retry_after:
                    return response  # the server asks for a long pause: give up now, the scheduler backs off
                delay = max(delay, ra)
        retried = self._retry(request, response_status_message(response.status))
        if retried is None:
            return response
        await asyncio.sleep(delay)
        return retried

    async def process_exception(self, request, exception, spider=None):
        if isinstance(exception, self.exceptions_to_retry) and not request.meta.get("dont_retry", False):
            retried = self._retry(request, exception)
            if retried is not None:
                await asyncio.sleep(self._backoff(request))
            return retried
        return None


class FetchSpider(scrapy.Spider):
    """Fetches the given requests (and the follow-ups the monitor returns) and hands each result on."""

    name = "govwatch"

    def __init__(self, fetch_requests: list[FetchRequest], on_result: OnResult, max_bytes: int,
                 feed: asyncio.Queue | None = None, **kw: Any):
        super().__init__(**kw)
        self.fetch_requests = fetch_requests
        self.on_result = on_result
        self.max_bytes = max_bytes
        self.feed = feed

    async def start(self):
        for fr in interleave_hosts(self.fetch_requests):  # (a fixed list: `doctor`, `add`)
            await self._room()
            async for r in self._requests([fr]):
                yield r
        # A fed crawl stays open (Scrapy is never idle while start() is pending) and takes each
        # request as it is submitted, until the feed is closed with None.
        while self.feed is not None:
            fr = await self.feed.get()
            if fr is None:
                return
            await self._room()
            async for r in self._requests([fr]):
                yield r

    async def _room(self) -> None:
        """Start requests are read lazily. While the downloader is full, Scrapy's engine reads
        start() without pause into its scheduler. A feed of 20,000 sources became 20,000 Scrapy
        requests at once (34 MB). So while the downloader is full and WAITING requests already wait
        in the scheduler, the next source waits here as its FetchRequest instead. The window
        holds several per host, since Feed.submit interleaves the hosts. Without the engine's
        scheduler to look at (another Scrapy), it reads eagerly as before."""
        engine = getattr(self.crawler, "engine", None)
        scheduler = getattr(engine, "scheduler", None)
        if scheduler is None or not hasattr(scheduler, "__len__"):
            return
        while engine.running and engine.needs_backout() and len(scheduler) >= WAITING:
            await asyncio.sleep(0.05)

    async def _requests(self, frs):
        """Scrapy's request for each one; a URL Scrapy cannot even make a request of (a port out of
        range, a broken IPv6 literal) is that source's failed fetch, never the end of the crawl (an
        exception in start() would end every request after it)."""
        for fr in frs:
            try:
                request = self.make_request(fr)
            except ValueError as e:
                now = datetime.now(timezone.utc)
                fetched = Fetched(request=fr, url=fr.url, status=None, headers={}, body=b"", started_at=now,
                                  duration_ms=0, error=f"invalid URL: {e}")
                async for r in self._hand_on(fetched):
                    yield r
                continue
            yield request

    def make_request(self, fr: FetchRequest) -> scrapy.Request:
        headers = dict(fr.headers)
        browser = fr.render == "browser"
        if fr.etag and not browser:  # a browser shown a 304 has nothing to render
            headers["If-None-Match"] = fr.etag
        if fr.last_modified and not browser:
            headers["If-Modified-Since"] = fr.last_modified
        meta = {
            "gw": fr,
            "gw_started": time.monotonic(),
            "gw_started_at": datetime.now(timezone.utc),
            "handle_httpstatus_list": HANDLED_STATUSES,
            "download_maxsize": fr.max_bytes or self.max_bytes,
        }
        if browser:
            meta["playwright"] = True
        return scrapy.Request(fr.url, headers=headers, callback=self.on_response, errback=self.on_failure,
                              dont_filter=True, meta=meta)

    async def _hand_on(self, fetched: Fetched):
        try:
            follow = await self.on_result(fetched)
        except Exception:  # one broken source never stops the others
            logger.exception("source %s: processing failed", fetched.request.source_id)
            return
        async for r in self._requests(follow or ()):
            yield r

    async def on_response(self, response):
        meta = response.request.meta if response.request else response.meta
        headers = {k.decode("latin-1").lower(): b", ".join(v).decode("latin-1") for k, v in response.headers.items()}
        fetched = Fetched(
            request=meta["gw"],
            url=response.url,
            status=response.status,  # a rendered page: the document shown at the end (spiders/browser.py)
            headers=headers,
            body=response.body,
            started_at=meta["gw_started_at"],
            duration_ms=int((time.monotonic() - meta["gw_started"]) * 1000),
            screenshot=meta.get("gw_screenshot"),
            raw_body=meta.get("gw_raw_body"),
        )
        async for r in self._hand_on(fetched):
            yield r

    async def on_failure(self, failure):
        request = failure.request
        meta = request.meta
        fetched = Fetched(
            request=meta["gw"],
            url=request.url,
            status=None,
            headers={},
            body=b"",
            started_at=meta["gw_started_at"],
            duration_ms=int((time.monotonic() - meta["gw_started"]) * 1000),
            error=describe_failure(failure),
        )
        async for r in self._hand_on(fetched):
            yield r


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception, what it wraps (`from e`), and the reasons Twisted's ResponseNeverReceived /
    ResponseFailed carry as Failures: where the real cause (e.g. an OpenSSL error) sits."""
    out, todo, seen = [], [exc], set()
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        out.append(e)
        todo.append(e.__cause__ or e.__context__)
        todo.extend(getattr(r, "value", r) for r in getattr(e, "reasons", None) or [] if isinstance(getattr(r, "value", r), BaseException))
    return out


def _names(exc: BaseException) -> set[str]:
    return {f"{type(e).__module__}.{type(e).__name__}" for e in _causes(exc)}


# Routine network failures: the source's fetch fails and is recorded with a one-line reason; a
# traceback would tell the operator nothing more (anything else is a bug and keeps its traceback).
_ROUTINE = ("DownloadConnectionRefusedError", "CannotResolveHostError", "DownloadTimeoutError", "DownloadFailedError",
            "ResponseDataLossError", "DownloadCancelledError", "IgnoreRequest", "ConnectError", "ConnectionRefusedError",
            "DNSLookupError", "TimeoutError", "TCPTimedOutError", "ConnectionLost", "ConnectionDone", "ConnectionAborted",
            "ResponseNeverReceived", "ResponseFailed", "ConnectingCancelledError", "NoRouteError", "SSLError", "Error")


def is_routine(exc: BaseException) -> bool:
    """Whether a fetch exception is an everyday network failure (refused, DNS, timeout, TLS, lost)."""
    for name in _names(exc):
        mod, _, cls = name.rpartition(".")
        if cls in _ROUTINE and (mod.startswith(("twisted.", "scrapy.", "OpenSSL.", "ssl")) or cls != "Error"):
            return True
    return False


def describe_failure(failure) -> str:
    """A readable one-line reason for a failed request (no exception reprs, no URL repeated)."""
    exc = failure.value if hasattr(failure, "value") else failure
    name = type(exc).__name__
    msg = str(exc).strip()
    names = _names(exc)
    host = urlsplit(getattr(getattr(failure, "request", None), "url", "") or "").hostname or ""
    if name == "IgnoreRequest" and msg:
        return msg
    if any(n.startswith("OpenSSL.") or n.endswith(("SSLError", ".SSL.Error")) for n in names):
        tls = [str(e) for e in _causes(exc) if type(e).__module__.startswith(("OpenSSL", "ssl"))]
        detail = ", ".join(re.findall(r"'([a-z][^']{3,})'", tls[0])) if tls else ""
        return f"TLS handshake failed{': ' + detail if detail else ''}"
    if any("Timeout" in n or "TimedOut" in n for n in names) or "took longer than" in msg:
        m = re.search(r"longer than ([\d.]+) seconds", msg)
        return f"timed out after {float(m.group(1)):g}s" if m else "timed out"
    if any("ConnectionRefused" in n for n in names):
        return "connection refused"
    if any("CannotResolveHost" in n or "DNSLookupError" in n for n in names):
        return f"DNS lookup failed{' for ' + host if host else ''}"
    if "DownloadCancelled" in name or "max size" in msg or "maxsize" in msg:
        return f"response over the size cap: {msg}"
    if "Decompression" in name or "decompress" in msg.lower():
        return f"response over the size cap after decompression: {msg}"
    if any(n.endswith(("ConnectionLost", "ConnectionDone", "ResponseDataLossError", "ConnectionAborted")) for n in names):
        return "connection lost before the response was complete"
    if name in ("DownloadFailedError", "ResponseNeverReceived", "ResponseFailed"):
        inner = [e for e in _causes(exc)[1:] if type(e).__name__ not in ("DownloadFailedError", "ResponseNeverReceived", "ResponseFailed")]
        return f"connection failed: {type(inner[0]).__name__}: {inner[0]}" if inner else "connection failed"
    return f"{name}: {msg}" if msg else name


class QuietRoutineFailures(logging.Filter):
    """Scrapy's robots.txt middleware logs a failed robots.txt download at ERROR with its traceback
    (~60 lines for a refused connection or a failed DNS lookup). The page's own request fails the
    same way a moment later and is recorded with a one-line reason, so a routine network failure
    here is dropped (a debug line stays); anything else keeps its traceback: it is a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and is_routine(exc):
            logger.debug("robots.txt not read (%s): %s", describe_failure(exc), record.getMessage())
            return False
        return True


logging.getLogger("scrapy.downloadermiddlewares.robotstxt").addFilter(QuietRoutineFailures())


def crawl_settings(fetch, *, log_level: str = "WARNING") -> dict[str, Any]:
    """Scrapy settings from govwatch's fetch settings (polite defaults, no HTTP cache)."""
    return {
        "TWISTED_REACTOR": REACTOR,
        "USER_AGENT": user_agent(fetch.user_agent_contact),
        "ROBOTSTXT_OBEY": fetch.obey_robots,  # Scrapy's own default is False
        "CONCURRENT_REQUESTS": fetch.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": fetch.per_host_concurrency,
        "DOWNLOADER": "spiders.downloader.HostBoundDownloader",  # the per-host limit holds with no delay too
        "DOWNLOAD_DELAY": fetch.per_host_delay,
        "DOWNLOAD_DELAY_JITTER": 0.5,
        "DOWNLOAD_TIMEOUT": fetch.timeout,
        "DOWNLOAD_MAXSIZE": fetch.max_bytes,
        "DOWNLOAD_WARNSIZE": 0,
        "RETRY_TIMES": fetch.retries,
        "RETRY_HTTP_CODES": [500, 502, 503, 504, 522, 524, 408, 429],
        "GOVWATCH_ALLOW_PRIVATE": fetch.allow_private_networks,
        "GOVWATCH_MAX_RETRY_AFTER": fetch.max_retry_after,
        "HTTPCACHE_ENABLED": False,  # the cache would serve stale bodies and hide changes
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": log_level,
        "LOG_ENABLED": False,
        "STATS_DUMP": False,
        "REDIRECT_MAX_TIMES": 10,
        # The callback yields at most a few follow-up requests: Scrapy's default of 100 starts 100
        # tasks per response to process them (a fifth of the CPU of a cycle of 304s).
        "CONCURRENT_ITEMS": 1,
        # The whole list, not changes to Scrapy's: Scrapy imports every middleware and extension it
        # lists, even disabled ones (cookies pull in tldextract, remote control aiohttp: 0.15 s).
        "DOWNLOADER_MIDDLEWARES_BASE": {
            "spiders.fetch.SafetyMiddleware": 50,
            "spiders.fetch.PoliteRobotsMiddleware": 100,
            "scrapy.downloadermiddlewares.downloadtimeout.DownloadTimeoutMiddleware": 350,
            "scrapy.downloadermiddlewares.defaultheaders.DefaultHeadersMiddleware": 400,
            "scrapy.downloadermiddlewares.useragent.UserAgentMiddleware": 500,
            "spiders.fetch.BackoffRetryMiddleware": 550,
            "spiders.fetch.LeanMetaRefreshMiddleware": 580,
            "scrapy.downloadermiddlewares.httpcompression.HttpCompressionMiddleware": 590,
            "spiders.fetch.SafeRedirectMiddleware": 600,
            "scrapy.downloadermiddlewares.httpproxy.HttpProxyMiddleware": 750,
        },
        "EXTENSIONS_BASE": {},  # stats, telnet, memory debugger, feed export, remote control: unused
        "SPIDER_MIDDLEWARES": {  # per-response wrappers this spider has no use for
            "scrapy.spidermiddlewares.depth.DepthMiddleware": None,          # follow-ups are bounded by max_follow
            "scrapy.spidermiddlewares.metacopy.MetaCopyDetectionMiddleware": None,
        },
        "DNS_TIMEOUT": min(fetch.timeout, 20),
        "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
    }


WAITING = 256  # requests that wait in Scrapy's scheduler at most while its downloader is full (see FetchSpider._room)


def interleave_hosts(requests: Iterable[FetchRequest]) -> list[FetchRequest]:
    """The requests with their hosts in turn (a, b, c, a, b, c, ...), each host's in their order."""
    by_host: dict[str, list[FetchRequest]] = {}
    for fr in requests:
        by_host.setdefault(_host(fr.url), []).append(fr)
    queues = [deque(q) for q in by_host.values()]
    out: list[FetchRequest] = []
    while queues:
        for q in queues:
            out.append(q.popleft())
        queues = [q for q in queues if q]
    return out


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:  # a URL Scrapy cannot make a request of either: its source's failed fetch
        return ""


class Feed:
    """A crawl that stays open: requests submitted while it runs are fetched as they come, under
    the same per-host limits as the rest of the crawl (one downloader, one politeness budget)."""

    def __init__(self, runner, on_result: OnResult, max_bytes: int):
        self._queue: asyncio.Queue = asyncio.Queue()
        self._closed = False
        self.done = asyncio.ensure_future(runner.crawl(FetchSpider, fetch_requests=[], on_result=on_result,
                                                       max_bytes=max_bytes, feed=self._queue))

    def submit(self, requests: Iterable[FetchRequest]) -> None:
        """Queued for the crawl, one host after another in turn (FetchSpider._room lets only a
        window of them into Scrapy's scheduler: a window of one host's sources would hold the
        crawl to that host's politeness)."""
        if self._closed:
            raise RuntimeError("the feed is closed")
        for fr in interleave_hosts(requests):
            self._queue.put_nowait(fr)

    async def close(self) -> None:
        """No more requests: the crawl ends once what was submitted (and its follow-ups) is done."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)
        await self.done


class Fetcher:
    """Runs crawls on the running reactor; `stop()` ends the current crawl cleanly."""

    def __init__(self, fetch_settings, extra_settings: dict[str, Any] | None = None):
        from scrapy.crawler import AsyncCrawlerRunner

        from spiders.browser import browser_settings

        self.settings = {**crawl_settings(fetch_settings), **browser_settings(fetch_settings), **(extra_settings or {})}
        self.runner = AsyncCrawlerRunner(self.settings)
        self.max_bytes = fetch_settings.max_bytes

    async def fetch(self, requests: list[FetchRequest], on_result: OnResult) -> None:
        if not requests:
            return
        await self.runner.crawl(FetchSpider, fetch_requests=requests, on_result=on_result, max_bytes=self.max_bytes)

    def open_feed(self, on_result: OnResult) -> Feed:
        """A crawl fed continuously (`Feed.submit`), for the scheduler: a slow source holds only
        its own download slot, never the others' turn."""
        return Feed(self.runner, on_result, self.max_bytes)

    async def stop(self) -> None:
        await self.runner.stop()


def run_in_reactor(main: Callable[[asyncio.Event], Awaitable[int]], *, stop_timeout: float = 25.0,
                   on_abandon: Callable[[], None] | None = None) -> int:
    """Install the asyncio reactor, run `main(stop_event)` to completion, return its exit code.

    SIGTERM/SIGINT set the stop event (and a second signal forces the exit): the caller ends
    its crawl with `Fetcher.stop()`, which lets in-flight responses finish and be stored. What is
    still in flight after `stop_timeout` seconds is abandoned: the reactor stops, the writer
    thread finishes the transaction it is in (each is all-or-nothing), `on_abandon` runs (e.g. to
    mark the worker stopped and give back its leases), and the process exits.
    """
    from scrapy.utils.defer import deferred_from_coro
    from scrapy.utils.reactor import install_reactor

    install_reactor(REACTOR)
    from twisted.internet import reactor

    # A crawler *runner* (unlike CrawlerProcess) installs no resolver: install ours.
    install_pinned_resolvers(reactor)

    result: dict[str, Any] = {"code": 0}
    stop_event = asyncio.Event()

    async def wrapper() -> None:
        loop = asyncio.get_running_loop()
        signals_seen = {"n": 0}

        def on_signal(signum: int) -> None:
            signals_seen["n"] += 1
            if signals_seen["n"] > 1:
                logger.warning("second signal %s: exiting now", signal.Signals(signum).name)
                if reactor.running:
                    reactor.stop()
                return
            logger.info("signal %s: finishing the in-flight work (at most %gs), then exiting", signal.Signals(signum).name, stop_timeout)
            stop_event.set()
            reactor.callLater(stop_timeout, _abandon)

        def _abandon() -> None:
            if reactor.running:
                logger.warning("in-flight work not finished after %gs: abandoned", stop_timeout)
                result["code"] = 0
                reactor.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, on_signal, sig)
            except (NotImplementedError, RuntimeError):
                pass
        try:
            result["code"] = await main(stop_event)
            result["finished"] = True
        except BaseException as e:  # reported by the caller
            result["error"] = e
            result["finished"] = True

    def done(_):
        if reactor.running:
            reactor.stop()

    reactor.callWhenRunning(lambda: deferred_from_coro(wrapper()).addBoth(done))
    reactor.run(installSignalHandlers=False)
    if not result.get("finished") and on_abandon is not None:
        try:
            on_abandon()
        except Exception:
            logger.exception("cleanup after abandoning the in-flight work failed")
    if "error" in result:
        raise result["error"]
    return result["code"]
