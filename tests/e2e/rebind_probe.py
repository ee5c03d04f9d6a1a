"""Run by test_netsafety_e2e in its own process (one reactor per process): fetch a URL whose host
name the safety check sees answered only with a public IPv6 address, while the system resolver
(a rebinding DNS server's second answer) says 127.0.0.1, where the test's site listens.

The connection's addresses are recorded, and the approved public IPv6 address is swapped for
::1 (where nothing listens) so that no packet leaves the machine."""
from __future__ import annotations

import json
import socket
import sys

from twisted.internet.address import IPv6Address
from twisted.internet.interfaces import IHostnameResolver, IResolutionReceiver
from zope.interface import implementer, provider

REBIND_NAME = "localhost"              # the system resolver answers 127.0.0.1 for it
PUBLIC_V6 = "2606:2800:220:1::1"


def v6_only_getaddrinfo(host, port, *args, **kwargs):
    if host == REBIND_NAME:
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (PUBLIC_V6, port or 80, 0, 0))]
    return socket.getaddrinfo(host, port, *args, **kwargs)


SEEN: list[str] = []


@implementer(IHostnameResolver)
class Recorder:
    def __init__(self, inner):
        self.inner = inner

    def resolveHostName(self, receiver, hostName, portNumber=0, addressTypes=None, transportSemantics="TCP"):
        @provider(IResolutionReceiver)
        class Wrap:
            def resolutionBegan(self, resolution):
                receiver.resolutionBegan(resolution)

            def addressResolved(self, address):
                SEEN.append(address.host)
                if address.host == PUBLIC_V6:
                    address = IPv6Address(address.type, "::1", address.port)
                receiver.addressResolved(address)

            def resolutionComplete(self):
                receiver.resolutionComplete()

        return self.inner.resolveHostName(Wrap(), hostName, portNumber, addressTypes, transportSemantics)


def main() -> int:
    from monitor.config import FetchSettings
    from spiders.fetch import Fetcher, run_in_reactor
    from spiders.kinds import FetchRequest

    url = sys.argv[1]
    results = []

    async def run(stop_event) -> int:
        from twisted.internet import reactor

        reactor.installNameResolver(Recorder(reactor.nameResolver))
        fetcher = Fetcher(FetchSettings(allow_private_networks=False, per_host_delay=0, retries=0, obey_robots=False,
                                        timeout=10),
                          {"GOVWATCH_RESOLVER": "tests.e2e.rebind_probe.v6_only_getaddrinfo"})

        async def on_result(f):
            results.append({"url": f.url, "status": f.status, "error": f.error})
            return []

        await fetcher.fetch([FetchRequest(source_id="probe", url=url)], on_result)
        return 0

    run_in_reactor(run)
    print(json.dumps({"results": results, "connected_to": SEEN}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
