"""Run by test_lazy_feed in its own process (one reactor per process): feed an open crawl 120
requests for three loopback hosts (all of the first host's first) and report how many requests
Scrapy's scheduler held at most, the order the hosts were fetched in, and what came back.

argv: the window (spiders.fetch.WAITING) to use."""
from __future__ import annotations

import asyncio
import json
import sys

from tests.servers import Site

HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
PER_HOST = 40


def main() -> int:
    from monitor.config import FetchSettings
    from spiders import fetch
    from spiders.fetch import Fetcher, run_in_reactor
    from spiders.kinds import FetchRequest

    fetch.WAITING = int(sys.argv[1])
    sites = [Site(host).start() for host in HOSTS]
    for site in sites:
        for k in range(PER_HOST):
            site.set(f"/p{k}", "<html><body><main><p>page</p></main></body></html>", delay=0.01)
    requests = [FetchRequest(source_id=f"s{i}-{k}", url=site.url(f"/p{k}"))
                for i, site in enumerate(sites) for k in range(PER_HOST)]
    fetched: list[str] = []
    peak = {"scheduled": 0}

    async def run(stop_event) -> int:
        fetcher = Fetcher(FetchSettings(allow_private_networks=True, per_host_delay=0, retries=0, obey_robots=False,
                                        concurrency=4, per_host_concurrency=2))

        async def on_result(f):
            fetched.append(f.request.source_id if f.status == 200 else f"{f.request.source_id}: {f.status} {f.error}")
            return []

        feed = fetcher.open_feed(on_result)

        async def sample():
            while True:
                for crawler in list(fetcher.runner.crawlers):
                    scheduler = crawler.engine.scheduler if crawler.engine else None
                    if scheduler is not None:
                        peak["scheduled"] = max(peak["scheduled"], len(scheduler))
                await asyncio.sleep(0.002)

        sampler = asyncio.ensure_future(sample())
        await asyncio.sleep(0.5)  # the crawl is open
        feed.submit(requests)
        await feed.close()
        sampler.cancel()
        return 0

    run_in_reactor(run)
    print(json.dumps({"fetched": fetched, "peak_scheduled": peak["scheduled"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
