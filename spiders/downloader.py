"""Scrapy's downloader, holding each host to `fetch.per_host_concurrency` also when
`fetch.per_host_delay` is 0.

Scrapy 2.19's `Downloader._process_queue` starts a slot's queued requests while
`slot.free_transfer_slots() > 0`, but a request enters `slot.transferring` only when its download
task first runs: under the asyncio reactor, on the event loop's next turn. With no delay between
requests the loop therefore starts every queued request of a host at once: measured against one
local host, 60 requests at a time with `per_host_concurrency: 2` (CONCURRENT_REQUESTS_PER_DOMAIN),
and a new connection for most of them (the pool keeps `per_host_concurrency` idle connections). With
a delay (govwatch's default, 1 s) one request starts per delay and the limit held. Here a request
counts as transferring from the moment it is started; `Downloader._download` adds it again (a set)
and removes it when its download ends, as before."""
from __future__ import annotations

from time import monotonic

from scrapy.core.downloader import Downloader, Slot
from scrapy.utils.asyncio import call_later
from scrapy.utils.defer import _schedule_coro


class HostBoundDownloader(Downloader):
    def _process_queue(self, slot: Slot) -> None:
        if slot.latercall:
            return  # block processing until slot.latercall is called
        now = monotonic()
        delay = slot.download_delay()
        if delay:
            penalty = delay - now + slot.lastseen
            if penalty > 0:
                slot.latercall = call_later(penalty, self._latercall, slot)
                return
        while slot.queue and slot.free_transfer_slots() > 0:
            slot.lastseen = now
            request, queue_dfd = slot.queue.popleft()
            slot.transferring.add(request)  # counted now, not when its task first runs
            _schedule_coro(self._wait_for_download(slot, request, queue_dfd))
            if delay:  # prevent a burst if inter-request delays were configured
                self._process_queue(slot)
                break

