"""A host is never sent more than `fetch.per_host_concurrency` requests at once, with no delay
between requests too (spiders/downloader.py: Scrapy 2.19 under the asyncio reactor started every
queued request of a host at once then), and its connections are kept alive and reused."""
from __future__ import annotations

from tests.e2e.test_monitor import page


def test_per_host_concurrency_holds_with_no_delay_and_connections_are_reused(site, workdir):
    n = 30
    for i in range(n):
        site.set(f"/p{i}", page(extra=f"<p>Notice {i} of the detention standards.</p>"), delay=0.05)
    workdir.write(sources=[{"id": f"p{i}", "url": site.url(f"/p{i}"), "every": "1h"} for i in range(n)],
                  fetch={"per_host_delay": "0s", "per_host_concurrency": 2, "concurrency": 64})
    out = workdir.run("check").stdout
    assert f"{n} baseline" in out, out
    assert site.most_in_flight == 2, site.most_in_flight   # two at a time: the limit, and used
    assert site.connections <= 3, site.connections          # two kept alive (a third at most, e.g. after robots.txt)
