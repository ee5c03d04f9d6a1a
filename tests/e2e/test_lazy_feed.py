"""An open crawl reads its feed lazily: while the downloader is full, at most spiders.fetch.WAITING
requests wait in Scrapy's scheduler (the rest wait in the feed as FetchRequests, a tenth of the
memory), and the feed hands the hosts out in turn. 20,000 sources fed at once were 20,000 Scrapy
requests (34 MB) before."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from spiders.fetch import interleave_hosts
from spiders.kinds import FetchRequest

REPO = Path(__file__).resolve().parents[2]


def probe(window: int) -> dict:
    p = subprocess.run([sys.executable, "-m", "tests.e2e.feed_probe", str(window)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_the_scheduler_holds_a_window_of_the_feed_and_every_request_is_fetched_once():
    lazy = probe(8)
    assert sorted(lazy["fetched"]) == sorted(f"s{i}-{k}" for i in range(3) for k in range(40))
    assert lazy["peak_scheduled"] <= 8
    # the same feed read eagerly (a window larger than the feed) fills the scheduler: the check above can fail
    eager = probe(1_000_000)
    assert sorted(eager["fetched"]) == sorted(lazy["fetched"])
    assert eager["peak_scheduled"] > 60
    # the first host's 40 requests came first in the feed, yet the others are not left until after them
    first_host_first = [x for x in lazy["fetched"][:12] if x.startswith("s0-")]
    assert len(first_host_first) <= 8, lazy["fetched"][:12]


def test_hosts_take_turns_each_in_its_own_order():
    frs = [FetchRequest(source_id=sid, url=url) for sid, url in [
        ("a1", "https://a.gov/1"), ("a2", "https://a.gov/2"), ("a3", "https://a.gov/3"),
        ("b1", "https://b.gov/1"), ("bad", "http://[::1/x"), ("c1", "https://c.gov/1"), ("b2", "https://B.gov/2")]]
    assert [fr.source_id for fr in interleave_hosts(frs)] == ["a1", "b1", "bad", "c1", "a2", "b2", "a3"]
    assert interleave_hosts([]) == []
