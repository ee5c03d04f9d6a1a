"""Run by test_netsafety_e2e in its own process (one reactor per process): fetch a URL whose
host name looks public but whose server redirects to 127.0.0.1, with private networks refused.

The name `public.example` is checked as 93.184.216.34 (a public address) by the safety check,
while Scrapy's own resolver connects it to 127.0.0.1 where the test's site listens."""
from __future__ import annotations

import json
import socket
import sys

from scrapy.resolver import CachingThreadedResolver

PUBLIC_NAME = "public.example"


def fake_getaddrinfo(host, port, *args, **kwargs):
    if host == PUBLIC_NAME:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port or 80))]
    return socket.getaddrinfo(host, port, *args, **kwargs)


class LoopbackResolver(CachingThreadedResolver):
    def getHostByName(self, name, timeout=()):
        return super().getHostByName("127.0.0.1" if name == PUBLIC_NAME else name, timeout)


def main() -> int:
    from monitor.config import FetchSettings
    from spiders.fetch import Fetcher, run_in_reactor
    from spiders.kinds import FetchRequest

    url = sys.argv[1]
    results = []

    async def run(stop_event) -> int:
        from twisted.internet import reactor

        LoopbackResolver(reactor, 100, 10.0).install_on_reactor()
        fetcher = Fetcher(FetchSettings(allow_private_networks=False, per_host_delay=0, retries=0, obey_robots=False),
                          {"GOVWATCH_RESOLVER": "tests.e2e.redirect_probe.fake_getaddrinfo"})

        async def on_result(f):
            results.append({"url": f.url, "status": f.status, "error": f.error})
            return []

        await fetcher.fetch([FetchRequest(source_id="probe", url=url)], on_result)
        return 0

    run_in_reactor(run)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
