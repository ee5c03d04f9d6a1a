"""Pages behind a JavaScript wall, rendered by Debian's Chromium through scrapy-playwright.

A request with `FetchRequest.render == "browser"` goes through the same Scrapy downloader
middlewares as any other (the safety check of its URL, robots.txt, the per-host slot and delay,
retries), then to `BrowserHandler`, which renders it in a fresh browser context and returns the
rendered DOM. Safety inside the page: Chromium is started with a proxy of ours (`SafeProxy`, on
127.0.0.1, loopback included through it) that runs `check_url` on every request the page makes and
connects to exactly the addresses the check approved, so a script, an image, a redirect or a
rebinding DNS answer cannot reach a private address. Images, media and fonts are not loaded.

The browser is launched on the first rendered page only (a crawl without one costs nothing),
pages run at most `fetch.browser.max_pages` at once, each context is closed after its page, and
the browser is restarted after `restart_after` pages.
"""
from __future__ import annotations

import asyncio
import itertools
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
    never to a second lookup. Refusals answer 403 and are counted in `refused`."""

    def __init__(self, allow_private: Any = False, resolver=socket.getaddrinfo):
        self.allow_private = allowance(allow_private)
        self.resolver = resolver
        self.refused: list[tuple[str, str]] = []  # (host, reason), newest last, at most 100
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

    def _refuse(self, host: str, reason: str) -> None:
        self.refused.append((host, reason))
        del self.refused[:-100]
        logger.info("browser request refused: %s", reason)

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
                writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                return
            if method.upper() == "CONNECT":
                host, _, port_s = target.rpartition(":")
                host = host.strip("[]")
                if not host or not port_s.isdigit():
                    writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                    return
                port = int(port_s)
                url = f"https://{'[' + host + ']' if ':' in host else host}:{port}/"
                first = b""
            else:
                parts = urlsplit(target)
                if parts.scheme.lower() != "http" or not parts.hostname:
                    writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
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
                self._refuse(host, str(e))
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
        "DOWNLOAD_HANDLERS": {"http": "spiders.browser.BrowserHandler", "https": "spiders.browser.BrowserHandler"},
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
async def watch_documents(page, request) -> None:
    """Before the page loads (scrapy-playwright's page init callback): remember each response that
    is a document of the main frame, so that the raw answer of the page shown at the end is kept."""
    seen = request.meta.setdefault("gw_documents", [])

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


def _handler_base():
    from scrapy_playwright.handler import ScrapyPlaywrightDownloadHandler

    return ScrapyPlaywrightDownloadHandler


class BrowserHandler(_handler_base()):
    """scrapy-playwright's download handler, launched lazily and bounded: see the module text."""

    _names = itertools.count(1)

    def __init__(self, crawler) -> None:
        super().__init__(crawler)
        opts = crawler.settings.getdict("GOVWATCH_BROWSER")
        self.page_timeout = float(opts.get("page_timeout", 30.0))
        self.settle_seconds = float(opts.get("settle", 5.0))
        self.restart_after = int(opts.get("restart_after", 100))
        self.screenshots = bool(opts.get("screenshots", True))
        self.proxy = SafeProxy(crawler.settings.get("GOVWATCH_ALLOW_PRIVATE"), _resolver(crawler.settings))
        self._start_lock = asyncio.Lock()
        self._started = False
        self._rendered = 0
        # pages rendered at once (PLAYWRIGHT_MAX_CONTEXTS is the same number): a page waits for its
        # turn here, outside its time limit, instead of timing out in the queue
        self._turns = asyncio.Semaphore(int(opts.get("max_pages", 2)))
        self._gate = asyncio.Lock()  # a restart happens behind it, while no page is being rendered
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # the browser starts with the first rendered page, not with every crawl
    async def _maybe_launch_in_thread(self) -> None:
        return None

    def _engine_started(self):
        from twisted.internet import defer

        return defer.succeed(None)

    async def _ensure_started(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            if self.proxy.server is None:  # (a failed launch is tried again with the same proxy)
                await self.proxy.start()
            # `<-loopback>`: loopback goes through the proxy too (Chromium would go direct; Playwright
            # adds the rule itself unless an environment variable says not to: say it here)
            self.config.launch_options["proxy"] = {"server": f"http://127.0.0.1:{self.proxy.port}", "bypass": "<-loopback>"}
            await self._launch()
            self._started = True

    async def _download_request(self, request, spider=None):
        from scrapy_playwright.page import PageMethod

        await self._ensure_started()
        name = f"govwatch-{next(self._names)}"
        request.meta["playwright_context"] = name
        request.meta["playwright_context_kwargs"] = {
            "user_agent": request.headers.get("User-Agent", b"").decode("latin-1") or None,
            "service_workers": "block", "accept_downloads": False, "java_script_enabled": True,
            "viewport": {"width": VIEWPORT_WIDTH, "height": 1024},
        }
        documents: list = []
        request.meta["gw_documents"] = documents
        request.meta["playwright_page_init_callback"] = watch_documents
        methods = [PageMethod(settle, self.settle_seconds, documents, int(request.meta.get("download_maxsize") or 0))]
        if self.screenshots:
            methods.append(PageMethod(screenshot, self.page_timeout))
        request.meta["playwright_page_methods"] = methods
        limit = self.page_timeout + self.settle_seconds + 15
        async with self._turns:  # the wait for a turn is not the page's time
            async with self._gate:  # a due restart happens here, once the pages in the browser are done
                if self._rendered >= self.restart_after:
                    await self._idle.wait()
                    await self._restart()
                self._active += 1
                self._idle.clear()
            try:
                response = await asyncio.wait_for(super()._download_request(request, spider), limit)
            except asyncio.TimeoutError as e:
                raise TimeoutError(f"timed out: the browser did not render the page within {limit:g}s") from e
            finally:
                self._active -= 1
                if not self._active:
                    self._idle.set()
                wrapper = self.context_wrappers.get(name)
                if wrapper is not None:
                    try:
                        await wrapper.context.close()
                    except Exception:
                        pass
                self._rendered += 1
        settled = methods[0].result or {}
        request.meta.pop("gw_documents", None)
        if isinstance(settled.get("raw"), bytes):
            request.meta["gw_raw_body"] = settled["raw"]
        if self.screenshots and isinstance(methods[1].result, bytes):
            request.meta["gw_screenshot"] = methods[1].result
        # What the rest of the crawl sees is the document shown at the end: its status (after a
        # challenge's reload; retries and error handling judge that one), without the wall's marks.
        headers = response.headers.copy()
        for h in CHALLENGE_HEADERS:
            headers.pop(h, None)
        return response.replace(status=settled.get("status") or response.status, headers=headers)

    async def _restart(self) -> None:
        """Every `restart_after` pages the browser is closed (the next page launches a new one):
        what a long-running Chromium accumulates is given back. Called behind the gate with no
        page in the browser: pages that want a turn wait for it."""
        self._rendered = 0
        if hasattr(self, "browser"):
            logger.info("restarting the browser after %d pages", self.restart_after)
            try:
                await self.browser.close()
            except Exception:
                pass
            # scrapy-playwright's "disconnected" handler forgets the browser (the next page launches
            # a new one); wait for it rather than forget it here, or it would forget the new one
            for _ in range(100):
                if not hasattr(self, "browser"):
                    break
                await asyncio.sleep(0.05)

    async def _close(self) -> None:
        await super()._close()
        await self.proxy.close()


def _resolver(settings):
    from scrapy.utils.misc import load_object

    resolver = settings.get("GOVWATCH_RESOLVER")
    return load_object(resolver) if isinstance(resolver, str) else (resolver or socket.getaddrinfo)
