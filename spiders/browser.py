"""Pages behind a JavaScript wall, rendered by Debian's Chromium through scrapy-playwright.

A request with `FetchRequest.render == "browser"` goes through the same Scrapy downloader
middlewares as any other (the safety check of its URL, robots.txt, the per-host slot and delay,
retries), then to `BrowserHandler` (spiders/playwright_handler.py, behind the download handler of
spiders/browser_handler.py), which renders it in a fresh browser context and returns the rendered
DOM. This module imports neither Scrapy nor Playwright: every command imports it. Safety inside the page: Chromium is started with a proxy of ours (`SafeProxy`, on
127.0.0.1, loopback included through it) that runs `check_url` on every request the page makes and
connects to exactly the addresses the check approved, so a script, an image, a redirect or a
rebinding DNS answer cannot reach a private address. Images, media and fonts are not loaded.

The browser is launched on the first rendered page only (a crawl without one costs nothing),
pages run at most `fetch.browser.max_pages` at once, each context is closed after its page, and
the browser is restarted after `restart_after` pages.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
from typing import Any
from urllib.parse import urlsplit

from spiders.netsafety import allowance, check_url
from state.errors import UnsafeURLError

logger = logging.getLogger(__name__)

# what a page may not load: heavy, and never what govwatch reads
SKIPPED_RESOURCES = frozenset({"image", "media", "font"})
CHALLENGE_HEADERS = (b"cf-mitigated",)  # the wall's marks on the first response, not the page shown after it
VIEWPORT_WIDTH = 1280
MAX_SCREENSHOT_HEIGHT = 16_384  # pixels: a longer page is shot from the top (bounded PNG size and memory)
INLINE_SCHEMES = ("data:", "blob:", "about:")
_HEAD_LIMIT = 64 * 1024
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"
_IO_TIMEOUT = 60.0


def executable(path: str) -> str | None:
    """The Chromium binary to use, or None when it is not installed."""
    found = shutil.which(path) if os.sep not in path else (path if os.access(path, os.X_OK) else None)
    return found


def missing_hint(path: str) -> str:
    return (f"no browser at {path}: install Debian's chromium (apt-get install chromium) or set "
            f"fetch.browser.executable, so govwatch can read pages behind a JavaScript wall")


# -- the proxy every browser request goes through ---------------------------------------------
class SafeProxy:
    """An HTTP proxy on 127.0.0.1 for the browser: CONNECT for https, absolute-form requests for
    http. Each target is checked with `check_url` (private, loopback, link-local and metadata
    addresses refused unless allowed) and the connection goes to an address the check returned,
    never to a second lookup. Refusals answer 403 and are logged."""

    def __init__(self, allow_private: Any = False, resolver=socket.getaddrinfo):
        self.allow_private = allowance(allow_private)
        self.resolver = resolver
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0, limit=_HEAD_LIMIT)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    async def _open(self, url: str, host: str, port: int):
        addresses = await asyncio.to_thread(check_url, url, allow_private=self.allow_private, resolver=self.resolver)
        last: Exception | None = None
        for addr in [str(a) for a in addresses] or [host]:
            try:
                return await asyncio.wait_for(asyncio.open_connection(addr, port), _IO_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as e:
                last = e
        raise ConnectionError(f"cannot connect to {host}:{port}: {last}")

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _IO_TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
                return
            line, _, rest = head.partition(b"\r\n")
            try:
                method, target, version = line.decode("latin-1").split(" ", 2)
            except ValueError:
                writer.write(_BAD_REQUEST)
                return
            if method.upper() == "CONNECT":
                host, _, port_s = target.rpartition(":")
                host = host.strip("[]")
                if not host or not port_s.isdigit():
                    writer.write(_BAD_REQUEST)
                    return
                port = int(port_s)
                url = f"https://{'[' + host + ']' if ':' in host else host}:{port}/"
                first = b""
            else:
                parts = urlsplit(target)
                if parts.scheme.lower() != "http" or not parts.hostname:
                    writer.write(_BAD_REQUEST)
                    return
                host, port, url = parts.hostname, parts.port or 80, target
                path = parts.path or "/"
                if parts.query:
                    path += "?" + parts.query
                # origin-form to the server, one request per connection
                headers = [h for h in rest.split(b"\r\n") if h and not h.lower().startswith(
                    (b"proxy-connection:", b"connection:", b"keep-alive:", b"proxy-authorization:"))]
                first = (f"{method} {path} {version}\r\n".encode("latin-1") + b"\r\n".join(headers)
                         + b"\r\nConnection: close\r\n\r\n")
            try:
                upstream = await self._open(url, host, port)
            except UnsafeURLError as e:
                logger.info("browser request refused: %s", e)
                body = f"govwatch refused this request: {e}".encode()
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                             + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                return
            except ConnectionError as e:
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n")
                logger.debug("browser proxy: %s", e)
                return
            up_reader, up_writer = upstream
            if first:
                up_writer.write(first)
            else:
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except Exception:  # a broken page connection must not end the crawl
            logger.debug("browser proxy connection failed", exc_info=True)
        finally:
            for w in (writer, upstream[1] if upstream else None):
                if w is not None:
                    try:
                        w.close()
                    except Exception:
                        pass


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await asyncio.wait_for(reader.read(65536), _IO_TIMEOUT)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.TimeoutError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass


# -- Scrapy settings --------------------------------------------------------------------------
def sandbox_unavailable() -> bool:
    """Chromium's sandbox cannot run as root, nor in a container (Docker's default seccomp
    profile refuses the namespaces it needs, and Debian's chromium has no setuid helper)."""
    return os.geteuid() == 0 or os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv")


def launch_args() -> list[str]:
    """Chromium flags for a server or a container: no GPU, nothing running in the background,
    no updates, no sync, no WebRTC outside the proxy."""
    return ["--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-default-apps", "--no-first-run", "--mute-audio",
            "--disable-dev-shm-usage", "--disable-extensions", "--no-pings", "--disable-domain-reliability",
            "--disable-client-side-phishing-detection", "--disable-breakpad", "--metrics-recording-only",
            "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,"
            "CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions",
            "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
            "--webrtc-ip-handling-policy=disable_non_proxied_udp"]


def browser_settings(fetch) -> dict[str, Any]:
    """Scrapy settings that route requests marked for the browser to `BrowserHandler` (the
    others keep Scrapy's own HTTP handler); {} when no browser is installed."""
    b = fetch.browser
    path = executable(b.executable)
    if path is None:
        return {}
    sandbox = b.sandbox == "on" or (b.sandbox == "auto" and not sandbox_unavailable())
    return {
        # Scrapy's own HTTP handler for every request; scrapy-playwright is imported and the browser
        # launched only for the first request marked for it (spiders/browser_handler.py)
        "DOWNLOAD_HANDLERS": {"http": "spiders.browser_handler.LazyBrowserHandler",
                              "https": "spiders.browser_handler.LazyBrowserHandler"},
        "PLAYWRIGHT_BROWSER_TYPE": "chromium",
        "PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": path, "headless": True, "chromium_sandbox": sandbox,
                                      "args": launch_args(), "timeout": 30_000},
        # not PLAYWRIGHT_MAX_CONTEXTS: its semaphore leaks a place when a page's time limit cancels
        # the creation of its context; BrowserHandler bounds the pages at once itself
        "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": 1,
        "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT": b.page_timeout * 1000,
        "PLAYWRIGHT_ABORT_REQUEST": skip_request,
        "GOVWATCH_BROWSER": {"page_timeout": b.page_timeout, "settle": b.settle, "restart_after": b.restart_after,
                             "screenshots": b.screenshots, "max_pages": b.max_pages},
    }


def skip_request(request) -> bool:
    """Requests the page makes that are not loaded at all: images, media, fonts, and schemes
    other than http(s) and inline data (file:, ftp:, chrome: ...)."""
    if request.resource_type in SKIPPED_RESOURCES:
        return True
    url = request.url.lower()
    return not url.startswith(("http://", "https://") + INLINE_SCHEMES)


# -- the page, rendered -----------------------------------------------------------------------
async def watch_documents(seen: list, page, request) -> None:
    """Before the page loads (scrapy-playwright's page init callback, `seen` bound with partial):
    remember each response that is a document of the main frame, so that the raw answer of the
    page shown at the end is kept."""

    def on_response(response) -> None:
        try:
            if response.request.is_navigation_request() and response.frame == page.main_frame:
                seen.append(response)
        except Exception:
            pass

    page.on("response", on_response)


async def settle(page, seconds: float, documents: list | None = None, max_bytes: int = 0) -> dict[str, Any]:
    """After the load event: wait (at most `seconds`) for the network to go quiet and for a
    JavaScript challenge to hand over to the real page (a script that sets a cookie and reloads);
    then the final document's HTTP status and its raw answer (the HTML as the server sent it,
    at most `max_bytes`; None when it cannot be read)."""
    from spiders.blocks import looks_like_challenge

    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        left = deadline - loop.time()
        try:
            await page.wait_for_load_state("networkidle", timeout=max(left, 0.05) * 1000)
        except Exception:
            pass  # a page that never goes quiet is read as it is now
        try:
            html = await page.content()
        except Exception:  # navigating right now: wait for the next document
            html = ""
        if (html and not looks_like_challenge(html.encode("utf-8", "replace"))) or loop.time() >= deadline:
            break
        await asyncio.sleep(0.25)
    status = raw = None
    try:
        status = await page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                                     " return n && n.responseStatus ? n.responseStatus : null; }")
    except Exception:
        pass
    for response in reversed(documents or []):
        try:
            if 300 <= response.status < 400:
                continue  # a redirect hop: the document is the one it led to
            body = await response.body()
            raw = body if not max_bytes or len(body) <= max_bytes else None
        except Exception:
            raw = None
        break
    return {"status": status, "raw": raw}


async def screenshot(page, timeout: float) -> bytes:
    """A full-page PNG, at most MAX_SCREENSHOT_HEIGHT pixels from the top."""
    try:
        height = int(await page.evaluate("() => document.documentElement.scrollHeight") or 0)
    except Exception:
        height = 0
    if height > MAX_SCREENSHOT_HEIGHT:
        return await page.screenshot(full_page=True, type="png", timeout=timeout * 1000,
                                     clip={"x": 0, "y": 0, "width": VIEWPORT_WIDTH, "height": MAX_SCREENSHOT_HEIGHT})
    return await page.screenshot(full_page=True, type="png", timeout=timeout * 1000)
