"""The scrapy-playwright download handler that renders a page: imported with the first page to
render (spiders/browser_handler.py), never at start-up. See spiders/browser.py for the whole."""
from __future__ import annotations

import asyncio
import itertools
import logging
from functools import partial

from scrapy_playwright.handler import ScrapyPlaywrightDownloadHandler

from spiders.browser import CHALLENGE_HEADERS, VIEWPORT_WIDTH, SafeProxy, screenshot, settle, watch_documents
from spiders.fetch import resolver_of

logger = logging.getLogger("spiders.browser")


class BrowserHandler(ScrapyPlaywrightDownloadHandler):
    """scrapy-playwright's download handler, launched lazily and bounded: see the module text."""

    _names = itertools.count(1)

    def __init__(self, crawler) -> None:
        super().__init__(crawler)
        opts = crawler.settings.getdict("GOVWATCH_BROWSER")
        self.page_timeout = float(opts.get("page_timeout", 30.0))
        self.settle_seconds = float(opts.get("settle", 5.0))
        self.restart_after = int(opts.get("restart_after", 100))
        self.screenshots = bool(opts.get("screenshots", True))
        self.proxy = SafeProxy(crawler.settings.get("GOVWATCH_ALLOW_PRIVATE"), resolver_of(crawler.settings))
        self._start_lock = asyncio.Lock()
        self._started = False
        self._rendered = 0
        # pages rendered at once (fetch.browser.max_pages): a page waits for its turn here, outside
        # its time limit, instead of timing out in the queue
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
        documents: list = []  # the main frame's document responses, filled as the page loads
        request.meta["playwright_page_init_callback"] = partial(watch_documents, documents)
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
