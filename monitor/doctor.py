"""`govwatch doctor`: fetch each source once, politely and without recording anything, and say what
govwatch reads there (HTTP outcome, walls, items and their first titles, main-text size) and what
looks wrong (blind selectors, the fallback used, one title for every item, navigation as text)."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace

from monitor.config import Config, SourceConfig
from monitor.context import Context, utcnow
from monitor.escaping import terminal_text
from monitor.extract import extract
from spiders.blocks import judge
from spiders.kinds import FetchRequest, Fetched, Parsed
from state.errors import GovwatchError

MIN_TEXT = 200  # a page's main text shorter than this reads as nothing
MENU_LINE_WORDS = 4  # a line of at most this many words, without a full stop, reads like a menu entry


@dataclass
class Reading:
    """What one source reads like, from one fetch."""

    source_id: str
    url: str
    status: int | None = None
    outcome: str = "ok"  # ok | blind | blocked | error | disabled
    items: int | None = None
    titles: list[str] = field(default_factory=list)
    text_chars: int | None = None
    problems: list[str] = field(default_factory=list)
    rendered: bool = False  # read through the browser (render: browser, or auto past a JavaScript wall)

    def as_dict(self) -> dict:
        return asdict(self)


def diagnose(ctx: Context, src: SourceConfig, fetched: Fetched) -> Reading:
    """Judge one response the way the pipeline would, but only to describe it."""
    r = Reading(src.id, fetched.url, status=fetched.status)
    if fetched.error:
        return _bad(r, "error", fetched.error)
    r.rendered = fetched.request.render == "browser"
    verdict = judge(fetched, seen_before=False)
    if verdict is not None:
        hint = verdict.challenge and not ctx.browser and src.may_render(fetched.request.render)
        return _bad(r, "blocked" if verdict.kind == "blocked" else "error",
                    verdict.reason + (f"; {ctx.browser_hint}" if hint else ""))
    if fetched.status is not None and fetched.status >= 400:
        return _bad(r, "error", f"HTTP {fetched.status}")
    try:
        parsed = ctx.kinds[src.id].parse(fetched, src)
        if parsed.items is not None:
            _items(r, parsed)
        else:
            _text(r, ctx, src, fetched, parsed)
    except GovwatchError as e:
        return _bad(r, "blind", str(e))
    if r.problems and r.outcome == "ok":
        r.outcome = "blind"
    return r


def _bad(r: Reading, outcome: str, problem: str) -> Reading:
    r.outcome = outcome
    r.problems.append(problem)
    return r


def _items(r: Reading, parsed: Parsed) -> None:
    items = parsed.items or []
    r.items = len(items)
    r.titles = [it.title or it.url for it in items[:3]]
    fallback = sum(1 for it in items if it.fallback)
    if parsed.blind:
        r.problems.append(f"the configured selectors are blind: {parsed.blind}")
    if fallback:
        r.problems.append(f"fallback used: {fallback} of {len(items)} item(s) found without the configured selectors")
    if not items:
        r.problems.append("no items")
    titles = {it.title.strip().lower() for it in items}
    if len(items) >= 3 and len(titles) == 1:
        r.problems.append(f"all {len(items)} items share one title ({items[0].title!r}): the title selector reads a label")


def _text(r: Reading, ctx: Context, src: SourceConfig, fetched: Fetched, parsed: Parsed) -> None:
    ex = extract(parsed.document or b"", content_type=parsed.content_type or fetched.content_type, url=fetched.url,
                 select=src.select, ignore=ctx.ignore[src.id])
    r.text_chars = len(ex.text)
    if ex.no_text_layer:
        r.problems.append("a PDF without a text layer")
    elif len(ex.text) < MIN_TEXT:
        where = f"region '{src.select}'" if src.select else "main text"
        r.problems.append(f"the {where} holds only {len(ex.text)} characters")
    else:
        menu = navigation_share(ex.text)
        if menu >= 0.6:
            r.problems.append(f"the text looks like navigation ({menu:.0%} of its lines are short menu-like entries)")


def navigation_share(text: str) -> float:
    """The share of a text's lines that read like menu entries (a few words, no sentence)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 8:
        return 0.0
    menu = sum(1 for line in lines if len(line.split()) <= MENU_LINE_WORDS and not re.search(r"[.!?:;]$", line))
    return menu / len(lines)


def source_request(ctx: Context, src: SourceConfig) -> FetchRequest | Reading:
    """The one request doctor makes for a source, or its Reading when it is not fetched at all
    (disabled in the configuration, or by its kind, e.g. Congress.gov without a key)."""
    kind = ctx.kinds[src.id]
    reason = (kind.disabled_reason(src, env=ctx.env) or "") if hasattr(kind, "disabled_reason") else ""
    if not src.enabled or reason:
        return Reading(src.id, src.url, outcome="disabled", problems=[reason or "disabled in the configuration"])
    url = kind.request_url(src) if hasattr(kind, "request_url") else src.url
    render = "browser" if ctx.renders(src, None) else ""
    return FetchRequest(source_id=src.id, url=url, headers=ctx.headers(src), render=render)


def read_response(ctx: Context, src: SourceConfig, fetched: Fetched) -> Reading | FetchRequest:
    """The Reading of one response, or the browser request that reads it instead (what `check`
    does past a JavaScript wall)."""
    verdict = judge(fetched, seen_before=False) if not fetched.error else None
    if verdict is not None and verdict.challenge and ctx.browser and src.may_render(fetched.request.render):
        return replace(fetched.request, render="browser")
    return diagnose(ctx, src, fetched)


def run_doctor(cfg: Config, only: list[str] | None = None, *, on_reading=None) -> list[Reading]:
    """Fetch every chosen source once (no validators, no follow-ups, nothing stored)."""
    from spiders.fetch import Fetcher, run_in_reactor

    unknown = set(only or ()) - {s.id for s in cfg.sources}
    if unknown:
        raise GovwatchError(f"unknown source id(s): {', '.join(sorted(unknown))}; see `govwatch sources`")
    ctx = Context(cfg, None, utcnow, "doctor")
    chosen = [s for s in cfg.sources if not only or s.id in only]
    readings: dict[str, Reading] = {}
    requests = []
    for src in chosen:
        step = source_request(ctx, src)
        if isinstance(step, Reading):
            readings[src.id] = step
        else:
            requests.append(step)

    async def on_result(fetched: Fetched):
        src = cfg.source(fetched.request.source_id)
        step = read_response(ctx, src, fetched)
        if isinstance(step, FetchRequest):
            return [step]
        readings[src.id] = step
        if on_reading:
            on_reading(step)
        return []

    async def main(stop_event) -> int:
        await Fetcher(cfg.fetch).fetch(requests, on_result)
        return 0

    run_in_reactor(main, stop_timeout=cfg.scheduler.stop_timeout)
    return [readings[s.id] for s in chosen if s.id in readings]


def failing(readings: list[Reading]) -> list[Reading]:
    """The readings that make doctor exit 1: blind, blocked or failing (a disabled source is not)."""
    return [r for r in readings if r.outcome not in ("ok", "disabled")]


def print_report(readings: list[Reading]) -> None:
    """`govwatch doctor`'s table: per source its outcome, what it reads, first titles and problems."""
    for r in readings:
        status = f"HTTP {r.status}" if r.status is not None else "no response"
        read = (f"{r.items} item(s)" if r.items is not None else
                f"{r.text_chars:,} characters of text" if r.text_chars is not None else "nothing read")
        read += "; rendered by the browser" if r.rendered else ""
        print(terminal_text(f"{r.source_id}: {r.outcome.upper() if r.outcome != 'ok' else 'ok'} ({status}; {read})", newlines=False))
        for t in r.titles:
            print(terminal_text(f"    - {t[:120]}", newlines=False))
        for p in r.problems:
            print(terminal_text(f"    ! {p[:300]}", newlines=False))
    bad = failing(readings)
    print(f"{len(readings)} source(s): {len(readings) - len(bad)} read right, {len(bad)} blind, blocked or failing")
