"""The download handler Scrapy loads when a browser is installed: Scrapy's own HTTP/1.1 handler for
every request, and, for a request marked for the browser, `BrowserHandler` (scrapy-playwright),
created with the first such request. A crawl with no page to render imports no Playwright and
starts no browser (importing scrapy-playwright alone costs ~0.2-0.4 s and ~9 MB)."""
from __future__ import annotations

import asyncio

from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler


class LazyBrowserHandler(HTTP11DownloadHandler):
    def __init__(self, crawler) -> None:
        super().__init__(crawler)
        self._crawler = crawler
        self._browser = None
        self._browser_lock: asyncio.Lock | None = None

    async def download_request(self, request):
        if not request.meta.get("playwright"):
            return await super().download_request(request)
        if self._browser is None:
            if self._browser_lock is None:
                self._browser_lock = asyncio.Lock()
            async with self._browser_lock:
                if self._browser is None:
                    from spiders.playwright_handler import BrowserHandler

                    self._browser = BrowserHandler(self._crawler)
        return await self._browser.download_request(request)

    async def close(self) -> None:
        await super().close()
        if self._browser is not None:
            await self._browser.close()
