"""What every step of one check shares: the configuration, the store, the clock and each source's
kind, topics and ignore patterns (`Context`); the outcome of one response and a cycle's report."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from monitor import relevance
from monitor.config import Config, SourceConfig
from monitor.extract import compile_ignore
from monitor.offload import Extractor
from spiders import source_kinds
from spiders.browser import executable, missing_hint
from spiders.kinds import FetchRequest
from state.store import Store

logger = logging.getLogger("monitor.pipeline")  # one logger name for every step of a check


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Outcome:
    source_id: str
    outcome: str  # changed | unchanged | not_modified | baseline | error | blocked | removed
    changes: int = 0
    matched: int = 0
    error: str = ""
    part: str = ""  # "" for a source's own fetch; "page" or "document" for follow-ups


@dataclass
class CycleReport:
    started_at: datetime
    finished_at: datetime | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    sent: int = 0
    retrying: int = 0
    failed_deliveries: int = 0
    interrupted: bool = False
    skipped: list[tuple[str, str, datetime | None]] = field(default_factory=list)  # held by a live worker: (source, owner, until)

    def count(self, outcome: str, part: str = "") -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome and o.part == part)

    @property
    def sources(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.part]

    @property
    def documents(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.part == "document"]

    @property
    def archived(self) -> list[Outcome]:
        """Listed documents archived (first copy) or fetched again to see whether they were replaced."""
        return [o for o in self.outcomes if o.part == "archive"]

    @property
    def changes(self) -> int:
        return sum(o.changes for o in self.outcomes)

    @property
    def matched(self) -> int:
        return sum(o.matched for o in self.outcomes)


class Context:
    """The configuration as the steps of a check read it, built once per Monitor."""

    def __init__(self, config: Config, store: Store, clock: Callable[[], datetime], worker: str):
        self.config = config
        self.store = store
        self.clock = clock
        self.worker = worker
        self.env = config.environment  # the GOVWATCH_* settings read at load (the Congress.gov key)
        self.ignore, self.kinds, self.topics_for, self.alert_on = {}, {}, {}, {}
        self.extractor = Extractor(config.fetch.extract_processes)  # pages extracted ahead (monitor/offload.py)
        self.add_sources(config.sources)
        browser = config.fetch.browser.executable
        self.browser = executable(browser) is not None  # Chromium installed: pages can be rendered
        self.browser_hint = missing_hint(browser)

    def add_sources(self, sources) -> None:
        """What the steps read of each source (also for watches added in the web UI while running)."""
        for s in sources:
            self.ignore[s.id] = compile_ignore(s.ignore)
            self.kinds[s.id] = source_kinds.get(s.kind)()
            self.topics_for[s.id] = [t for t in self.config.topics if s.topics is None or t.id in s.topics]
            self.alert_on[s.id] = relevance.alert_on_topic(s.id, s.alert_on)

    def renders(self, src: SourceConfig, rec) -> bool:
        """Whether the source's own request goes through the browser (see SourceConfig.renders):
        only when a browser is installed."""
        return self.browser and src.renders(rec is not None and bool(rec.needs_browser))

    def classify(self, sid: str, added: str, removed: str = "", replaced=()):
        """The topics of a change: what was added, what disappeared (REMOVED) and what was reworded."""
        return relevance.judge(added, self.topics_for[sid], removed=removed, replaced=replaced, alert_on=self.alert_on[sid])

    def headers(self, src: SourceConfig) -> dict[str, str]:
        kind = self.kinds[src.id]
        return kind.request_headers(src, env=self.env) if hasattr(kind, "request_headers") else {}


def part_of(req: FetchRequest) -> str:
    """What a request fetches: "" the source itself, "page" a later page, "document" an item's document."""
    if not req.item_key:
        return ""
    return "page" if req.item_key.startswith("#page-") else "document"


def log_outcome(sid: str, outcome: str, matches, n: int | None = None, n_matched: int | None = None, pending: int = 0) -> None:
    if outcome == "changed":
        topics = ", ".join(m.topic for m in matches)
        if n is not None:
            extra = f"{n} change(s), {n_matched} matched" + (f", {pending} document(s) to fetch" if pending else "")
        else:
            extra = f"matched {topics}" if topics else "no topic matched"
        logger.info("source %s: changed (%s)", sid, extra)
    else:
        logger.info("source %s: %s", sid, outcome)
