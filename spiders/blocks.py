"""Reading a response for what it really is: a bot wall (blocked), a removal (404/410, a redirect
to the home page, a "page not found" title), or content. Blocks never become content changes."""
from __future__ import annotations

import html as _html
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from spiders.kinds import Fetched

_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(rb"<(script|style)[^>]*>.*?</\1>|<[^>]+>", re.IGNORECASE | re.DOTALL)
_WS = re.compile(rb"\s+")
_BLANKS = b" \t\n\r\x0b\x0c"

# (marker regex on the raw body, what it is). Checked only on small pages: a real article that
# merely quotes "Access Denied" is long, a challenge page is not.
_BLOCK_MARKERS = [
    (re.compile(rb"<title>\s*Access Denied\s*</title>.*(Reference(\s|&\#32;)*(\#|&\#35;)|edgesuite\.net|akamai)", re.I | re.S), "Akamai 'Access Denied' page"),
    (re.compile(rb"(you need to|please) enable JavaScript to (visit|view|access|continue|run)", re.I), "JavaScript challenge page"),
    (re.compile(rb"<title>\s*Just a moment\.\.\.\s*</title>|cf-chl-|challenge-platform|Attention Required! \| Cloudflare", re.I), "Cloudflare challenge"),
    (re.compile(rb"Request unsuccessful\. Incapsula incident ID|_Incapsula_Resource", re.I), "Imperva/Incapsula block page"),
    (re.compile(rb"(are you a robot|verify you are (a )?human|unusual traffic from your computer|captcha)", re.I), "CAPTCHA page"),
]
_SMALL_TEXT = 1200  # visible characters: challenge pages are short
_NOT_FOUND_TITLE = re.compile(r"\b(page not found|not found|404|page (does not|doesn't) exist|no longer available)\b", re.I)
_UNBLOCK_HOSTS = ("unblock.federalregister.gov",)


# the markers of walls that a real browser gets through (a script that sets a cookie and reloads)
_CHALLENGES = ("JavaScript challenge page", "Cloudflare challenge", "Akamai 'Access Denied' page")


@dataclass(frozen=True)
class Verdict:
    kind: str  # "blocked" | "removed"
    reason: str
    challenge: bool = False  # a wall a browser may get through (render: auto tries it)


def wall_marker(body: bytes) -> str | None:
    """What wall a short page is ("JavaScript challenge page", "CAPTCHA page", ...), or None."""
    if not body or not little_text(body):
        return None
    head = body[:200_000]
    return next((what for rx, what in _BLOCK_MARKERS if rx.search(head)), None)


def looks_like_challenge(body: bytes) -> bool:
    """A short HTML page that is a JavaScript or bot challenge a browser gets through, not content."""
    return wall_marker(body) in _CHALLENGES


def html_title(body: bytes) -> str:
    m = _TITLE.search(body[:200_000])
    if not m:
        return ""
    return _html.unescape(m.group(1).decode("utf-8", "replace")).strip()


def visible_chars(body: bytes) -> int:
    return len(_WS.sub(b" ", _TAGS.sub(b" ", body[:400_000])).strip())


def little_text(body: bytes, limit: int = _SMALL_TEXT) -> bool:
    """visible_chars(body) <= limit, reading only as far as needed: the non-blank bytes between
    tags are a lower bound of the visible characters, and an article passes `limit` early on."""
    seen, pos, head = 0, 0, body[:400_000]
    for m in _TAGS.finditer(head):
        seen += len(head[pos:m.start()].translate(None, _BLANKS))
        if seen > limit:
            return False
        pos = m.end()
    return visible_chars(body) <= limit


def judge(fetched: Fetched, *, seen_before: bool) -> Verdict | None:
    """Blocked or removed, or None for ordinary content (or an ordinary error)."""
    status = fetched.status or 0
    final = urlsplit(fetched.url)
    asked = urlsplit(fetched.request.url)
    if final.hostname in _UNBLOCK_HOSTS:
        return Verdict("blocked", f"redirected to the bot-check page at {final.hostname}")
    if fetched.headers.get("cf-mitigated", "").lower() == "challenge":
        return Verdict("blocked", "Cloudflare challenge (cf-mitigated)", challenge=True)
    body = fetched.body or b""
    ctype = fetched.headers.get("content-type", "").lower()
    looks_html = "html" in ctype or body[:200].lstrip().lower().startswith((b"<!doctype html", b"<html"))
    what = wall_marker(body) if looks_html and status != 304 else None
    if what:
        return Verdict("blocked", f"{what} (HTTP {status})", challenge=what in _CHALLENGES)
    if status == 429:
        return Verdict("blocked", "HTTP 429 Too Many Requests (rate limited)")
    if status in (404, 410) and seen_before:
        return Verdict("removed", f"HTTP {status}")
    if 200 <= status < 300 and seen_before:
        if final.path in ("", "/") and asked.path not in ("", "/") and (final.hostname == asked.hostname or
                                                                        (final.hostname or "").endswith((asked.hostname or "x").removeprefix("www."))):
            return Verdict("removed", f"now redirects to the site's home page ({final.scheme}://{final.netloc}/)")
        if looks_html:
            title = html_title(body)
            if title and _NOT_FOUND_TITLE.search(title):
                return Verdict("removed", f"the page now says '{title[:80]}'")
    return None
