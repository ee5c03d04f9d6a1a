"""The Congress.gov API (hearings, committee reports, committee meetings) for chosen committees;
the api.data.gov key travels only in the X-Api-Key header, never in a URL, a log or an item."""
from __future__ import annotations

import re
from typing import Any, Literal, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spiders.jsondoc import load_json
from spiders.kinds import Detail, Fetched, Item, Parsed, source_kinds
from state.errors import SourceError

API = "https://api.congress.gov/v3"
API_HOST = "api.congress.gov"
KEY_ENV = "GOVWATCH_CONGRESS_API_KEY"
DISABLED_NO_KEY = f"{KEY_ENV} is not set"
# Query parameters that carry a key: stripped from every URL we build or follow, in case the
# operator pasted one into `url` or the API ever echoes one in pagination.next.
_KEY_PARAMS = frozenset({"api_key", "apikey", "key"})
_CHAMBER_OF_PREFIX = {"h": "house", "s": "senate", "j": "joint"}
_LIST_KEY = {"hearing": "hearings", "committee-report": "reports", "committee-meeting": "committeeMeetings"}
_REPORT_PATH = re.compile(r"/committee-report/(\d+)/([A-Za-z]+)/(\d+)")
_COMMITTEE_ROUTE = re.compile(r"/v3/committee/(house|senate|joint)/([a-z]{4}\d{2})/reports/?$")
_REPORT_KIND = {"HRPT": "house-report", "SRPT": "senate-report", "ERPT": "executive-report"}


def api_key(env: Mapping[str, str] | None) -> str:
    """The api.data.gov key from the GOVWATCH_* settings the configuration read ("" when unset)."""
    return ((env or {}).get(KEY_ENV) or "").strip()


def ordinal(n: int) -> str:
    """119 -> '119th' (congress.gov spells congresses this way in its URLs)."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def chamber_of(code: str) -> str:
    """'hshm00' -> 'house', 'ssga00' -> 'senate' (the first letter of a system code is its chamber)."""
    try:
        return _CHAMBER_OF_PREFIX[code[0]]
    except (IndexError, KeyError):
        raise ValueError(f"'{code}' is not a committee system code like hshm00 or ssga00") from None


def without_key(url: str) -> str:
    """`url` with any key parameter removed (other parameters keep their order and spelling)."""
    parts = urlsplit(url)
    kept = [p for p in parts.query.split("&") if p and p.split("=", 1)[0].lower() not in _KEY_PARAMS]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(kept), parts.fragment))


def _with_query(url: str, **params: Any) -> str:
    parts = urlsplit(url)
    q = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params and k.lower() not in _KEY_PARAMS]
    q += [(k, str(v)) for k, v in params.items()]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(q), ""))


class CongressOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    endpoint: Literal["hearing", "committee-report", "committee-meeting"] = "hearing"
    congress: int = Field(119, ge=1, le=300)
    committees: list[str] = []  # system codes to keep, e.g. [hshm00, ssga00, hsgo00]; [] keeps all
    limit: int = Field(250, ge=1, le=250)  # the API's own maximum page size
    max_pages: int = Field(6, ge=1, le=50)

    @field_validator("committees")
    @classmethod
    def _codes(cls, v: list[str]) -> list[str]:
        out = []
        for code in v:
            code = code.strip().lower()
            if not re.fullmatch(r"[hsj][a-z]{3}\d{2}", code):
                raise ValueError(f"'{code}' is not a committee system code like hshm00 or ssga00")
            out.append(code)
        return out


def first_url(base: str, o: CongressOptions) -> str:
    """The first request of a source: a URL with a route (beyond /v3) is used as it is, minus any key.

    Committee reports of chosen committees use `/committee/{chamber}/{code}/reports` (the plain
    list does not say which committee reported); hearings and meetings have no committee route,
    so their lists are filtered where an entry names its committees.
    """
    path = urlsplit(base).path.rstrip("/")
    if path not in ("", "/v3"):
        return _with_query(base, format="json")
    root = f"{urlsplit(base).scheme}://{urlsplit(base).netloc}/v3"
    if o.endpoint == "committee-report" and o.committees:
        return committee_reports_url(root, o.committees[0], o.limit)
    return f"{root}/{o.endpoint}/{o.congress}?" + urlencode([("format", "json"), ("limit", o.limit), ("offset", 0)])


def committee_reports_url(root: str, code: str, limit: int) -> str:
    return f"{root}/committee/{chamber_of(code)}/{code}/reports?" + urlencode([("format", "json"), ("limit", limit), ("offset", 0)])


def _committee_codes(entry: dict) -> list[str]:
    """System codes an entry names (detail-shaped entries carry `committees[].systemCode`)."""
    codes = []
    raw = entry.get("committees")
    if isinstance(raw, dict):  # some routes wrap lists: {"committees": {"item": [...]}}
        raw = raw.get("item")
    for c in raw if isinstance(raw, list) else []:
        if isinstance(c, dict) and isinstance(c.get("systemCode"), str):
            codes.append(c["systemCode"].lower())
    for k in ("systemCode", "committeeCode"):
        if isinstance(entry.get(k), str):
            codes.append(entry[k].lower())
    return codes


def _s(v: Any) -> str:
    return "" if v is None else str(v)


def _hearing(e: dict, url: str) -> Item | None:
    jacket, congress, chamber = e.get("jacketNumber"), e.get("congress"), _s(e.get("chamber"))
    if jacket is None or congress is None:
        return None
    letter = {"house": "h", "senate": "s", "joint": "j"}.get(chamber.lower(), "")
    # Printed hearings are published on GovInfo as CHRG-{congress}{h|s|j}hrg{jacket} (sources.md).
    public = f"https://www.govinfo.gov/app/details/CHRG-{congress}{letter}hrg{jacket}" if letter else without_key(_s(e.get("url")))
    title = _s(e.get("title")) or f"{chamber or 'Congressional'} hearing, jacket {jacket} ({ordinal(int(congress))} Congress)"
    return Item(key=f"hearing/{congress}/{chamber.lower()}/{jacket}", url=public, title=title,
                published=_s(e.get("date") or e.get("updateDate")), extra={})


def _report(e: dict, url: str) -> Item | None:
    citation = _s(e.get("citation")).strip()
    api_url = without_key(_s(e.get("url")))
    m = _REPORT_PATH.search(api_url)
    if not citation and not m:
        return None
    part = e.get("part")
    key = citation or api_url
    if part not in (None, 1, "1"):
        key += f" part {part}"
    public = ""
    if m:
        congress, rtype, number = int(m.group(1)), m.group(2).upper(), m.group(3)
        kind = _REPORT_KIND.get(rtype)
        if kind:
            public = f"https://www.congress.gov/congressional-report/{ordinal(congress)}-congress/{kind}/{number}"
            if part not in (None, 1, "1"):
                public += f"/{part}"
    title = _s(e.get("title")) or citation
    return Item(key=key, url=public or api_url, title=title, published=_s(e.get("updateDate")), extra={})


def _meeting(e: dict, url: str) -> Item | None:
    event, congress, chamber = e.get("eventId"), e.get("congress"), _s(e.get("chamber"))
    if event is None or congress is None:
        return None
    public = (f"https://www.congress.gov/event/{ordinal(int(congress))}-congress/{chamber.lower()}-event/{event}"
              if chamber else without_key(_s(e.get("url"))))
    title = _s(e.get("title")) or f"{chamber or 'Committee'} committee meeting {event} ({ordinal(int(congress))} Congress)"
    return Item(key=f"committee-meeting/{congress}/{chamber.lower()}/{event}", url=public, title=title,
                published=_s(e.get("date") or e.get("updateDate")), extra={})


_READERS = {"hearings": _hearing, "reports": _report, "committeeMeetings": _meeting}
# The record of one entry, as the details routes answer it: a bare object, or a list of parts.
_DETAIL_KEYS = ("hearing", "committeeReports", "committeeReport", "committeeMeeting")


def detail_url(entry_url: str) -> str:
    """The details request of a list entry (its own `url`), without any key, as JSON; "" when the
    entry's URL is not a Congress.gov API URL (nothing is ever sent elsewhere with the key)."""
    parts = urlsplit(entry_url or "")
    if parts.scheme != "https" or parts.hostname != API_HOST or not parts.path.startswith("/v3/"):
        return ""
    return _with_query(without_key(entry_url), format="json")


def _names(raw: Any) -> list[dict]:
    if isinstance(raw, dict):
        raw = raw.get("item")
    return [c for c in raw if isinstance(c, dict)] if isinstance(raw, list) else []


def parse_detail(body: bytes, url: str) -> Detail:
    """Title, committees, date and text of a Congress.gov details response (hearing, committee
    report or committee meeting). SourceError when it is not one."""
    data = load_json(body, api="Congress.gov API details", url=without_key(url))
    if not isinstance(data, dict):
        raise SourceError("Congress.gov API details: expected a JSON object", url=without_key(url))
    if data.get("error"):
        err = data["error"]
        msg = err.get("message") or err.get("code") if isinstance(err, dict) else err
        raise SourceError(f"Congress.gov API error: {_s(msg)[:300]}", url=without_key(url))
    rec = next((data[k] for k in _DETAIL_KEYS if k in data), None)
    if isinstance(rec, list):
        rec = next((r for r in rec if isinstance(r, dict)), None)
    if not isinstance(rec, dict):
        raise SourceError("Congress.gov API details: no hearing, committeeReports or committeeMeeting record",
                          url=without_key(url))
    title = " ".join(_s(rec.get("title")).split()).strip("\"“” ")  # some titles come in quotes
    committees = [(_s(c.get("name")).strip(), _s(c.get("systemCode")).strip().lower()) for c in _names(rec.get("committees"))]
    dates = [_s(d.get("date")) for d in _names(rec.get("dates")) if d.get("date")]
    published = dates[0] if dates else _s(rec.get("date") or rec.get("issueDate") or "")
    lines = [title] if title else []
    if committees:
        lines.append("Committee: " + "; ".join(f"{n} ({c})" if c else n for n, c in committees))
    if rec.get("citation"):
        lines.append(f"Citation: {_s(rec['citation'])}")
    if published:
        lines.append(f"Date: {published}")
    for w in _names(rec.get("witnesses")):
        who = ", ".join(x for x in (_s(w.get("name")).strip(), _s(w.get("position")).strip(),
                                    _s(w.get("organization")).strip()) if x)
        if who:
            lines.append(f"Witness: {who}")
    extra: dict[str, Any] = {"committees": sorted({c for _n, c in committees if c})} if committees else {}
    if committees:
        extra["committee_names"] = [n for n, _c in committees if n]
    meeting = rec.get("associatedMeeting")
    if isinstance(meeting, dict) and meeting.get("eventId") is not None:
        extra["event_id"] = _s(meeting["eventId"])
    return Detail(title=title, text="\n".join(lines), published=published, extra=extra)


def _congress_of(e: dict) -> int | None:
    if isinstance(e.get("congress"), int):
        return e["congress"]
    m = _REPORT_PATH.search(_s(e.get("url")))
    return int(m.group(1)) if m else None


def parse_congress(body: bytes, url: str, *, committees: list[str] | None = None,
                   congress: int | None = None) -> tuple[list[Item], str | None]:
    """Items of one Congress.gov list response and the next page's URL (without any key).

    `committees` keeps entries that name one of those committees (entries that name none are
    kept: the list routes do not say, see first_url); `congress` drops entries of other congresses
    (the committee routes list every congress).
    """
    data = load_json(body, api="Congress.gov API", url=without_key(url))
    if not isinstance(data, dict):
        raise SourceError("Congress.gov API: expected a JSON object", url=without_key(url))
    if data.get("error"):
        # e.g. {"error": {"code": "API_KEY_MISSING", "message": ...}}; never echo the request back
        err = data["error"]
        msg = err.get("message") or err.get("code") if isinstance(err, dict) else err
        raise SourceError(f"Congress.gov API error: {_s(msg)[:300]}", url=without_key(url))
    found = [k for k in _READERS if k in data]
    if not found:
        raise SourceError("Congress.gov API: no hearings, reports or committeeMeetings list in the response",
                          url=without_key(url))
    entries = data[found[0]]
    if not isinstance(entries, list):
        raise SourceError(f"Congress.gov API: '{found[0]}' is not a list", url=without_key(url))
    route = _COMMITTEE_ROUTE.search(urlsplit(url).path)
    wanted = {c.lower() for c in committees or []}
    items: list[Item] = []
    seen: set[str] = set()
    for e in entries:
        if not isinstance(e, dict):
            continue
        codes = _committee_codes(e) or ([route.group(2)] if route else [])
        if wanted and codes and not wanted.intersection(codes):
            continue
        if congress is not None and _congress_of(e) not in (None, congress):
            continue
        it = _READERS[found[0]](e, url)
        if it is None or it.key in seen:
            continue
        seen.add(it.key)
        it.extra = {k: e[k] for k in ("congress", "chamber", "jacketNumber", "citation", "number", "part", "type",
                                      "eventId", "updateDate", "cmte_rpt_id") if e.get(k) is not None}
        it.extra["api_url"] = without_key(_s(e.get("url")))
        if codes:
            it.extra["committees"] = sorted(set(codes))
        items.append(it)
    nxt = (data.get("pagination") or {}).get("next") if isinstance(data.get("pagination"), dict) else None
    if isinstance(nxt, str) and urlsplit(nxt).scheme == "https" and urlsplit(nxt).hostname == API_HOST:
        return items, _with_query(nxt, format="json")
    return items, None


@source_kinds.register("congress-gov")
class CongressSource:
    """Watch Congress.gov API hearings, committee reports or committee meetings of chosen committees."""

    Options = CongressOptions

    def _options(self, source) -> CongressOptions:
        return getattr(source, "options", None) or CongressOptions()

    def disabled_reason(self, source, env: Mapping[str, str] | None = None) -> str | None:
        """Why the source cannot run (no api.data.gov key), or None when it can."""
        return None if api_key(env) else DISABLED_NO_KEY

    def request_headers(self, source, env: Mapping[str, str] | None = None) -> dict[str, str]:
        key = api_key(env)
        return {"X-Api-Key": key, "Accept": "application/json"} if key else {"Accept": "application/json"}

    def request_url(self, source) -> str:
        return first_url(source.url, self._options(source))

    def document_headers(self, source, url: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """Headers of a followed details request: the key only for https://api.congress.gov."""
        return self.request_headers(source, env) if detail_url(url) else {}

    def read_document(self, fetched: Fetched, source) -> Detail:
        """A new entry's details: its title and committees (the list entries carry neither)."""
        return parse_detail(fetched.body, fetched.url)

    def next_url(self, url: str, nxt: str | None, items_on_page: int, o: CongressOptions) -> str | None:
        """The API's next page; on a committee route whose page held nothing of this congress, or
        that has no more pages, the next committee's reports instead."""
        route = _COMMITTEE_ROUTE.search(urlsplit(url).path)
        if not route or o.endpoint != "committee-report":
            return nxt
        if nxt and items_on_page:
            return nxt
        code = route.group(2)
        later = o.committees[o.committees.index(code) + 1:] if code in o.committees else []
        if not later:
            return None
        root = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}/v3"
        return committee_reports_url(root, later[0], o.limit)

    def parse(self, fetched: Fetched, source) -> Parsed:
        o = self._options(source)
        on_route = bool(_COMMITTEE_ROUTE.search(urlsplit(fetched.url).path))
        items, nxt = parse_congress(fetched.body, fetched.url, committees=o.committees,
                                    congress=o.congress if on_route else None)
        for it in items:
            # a NEW entry's details (title, committees) are asked for with the key, in the header,
            # of api.congress.gov only; the list entries of hearings and reports carry no title
            it.doc_url = detail_url(_s(it.extra.get("api_url")))
        following = self.next_url(fetched.url, nxt, len(items), o)
        return Parsed(items=items, title=f"Congress.gov {o.endpoint} ({ordinal(o.congress)} Congress)",
                      next_pages=[following] if following else [])
