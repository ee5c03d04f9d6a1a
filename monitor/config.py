"""Configuration: YAML validated with pydantic, every problem reported at once with its place
(field path and line); GOVWATCH_* environment overrides are read here and nowhere else."""
from __future__ import annotations

import contextlib
import difflib
import functools
import logging
import os
import pickle
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from monitor import memory
from monitor.offload import default_processes
from state.errors import ConfigError, GovwatchError, TopicError
from state.subscriptions import check_timezone, parse_cadence, parse_quiet_hours

DEFAULT_CONFIG = "govwatch.yaml"
DEFAULT_DATABASE = "sqlite:///state/govwatch.db"
SEVERITY = Literal["low", "medium", "high"]
RENDERED_KINDS = ("page", "listing")  # the kinds `render` applies to

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 10**6, "mib": 2**20, "gb": 10**9, "gib": 2**30}


def parse_duration(value: Any) -> float:
    """'30m' -> 1800.0; '1h30m' works; a bare number is seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration like 30m, 6h or 1d")
    if isinstance(value, (int, float)):
        if not 0 <= value < float("inf"):                 # negative, .inf and .nan (nan compares False)
            raise ValueError(f"{value!r} is not a duration like 30m, 6h or 1d")
        return float(value)
    s = str(value).strip().lower()
    pos, total = 0, 0.0
    for m in _DURATION.finditer(s):
        if s[pos : m.start()].strip():
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not s or pos == 0 or s[pos:].strip() or not total < float("inf"):
        raise ValueError(f"'{value}' is not a duration like 30m, 6h or 1d")
    return total


def parse_size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _SIZE.match(str(value))
    if not m or not 0 < float(m.group(1)) < float("inf"):
        raise ValueError(f"'{value}' is not a size like 512KB, 10MB or 10485760")
    return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])


def _short(seconds: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= n and seconds % n == 0:
            return f"{int(seconds // n)}{unit}"
    return f"{seconds:g}s"


def duration_between(lo: float, hi: float):
    """A field validator: a duration within [lo, hi] seconds. Every duration has bounds: 1e308,
    .inf or 999999999999d overflowed every date computation; 0s ticks spun the scheduler."""
    def check(value: Any) -> float:
        seconds = parse_duration(value)
        if not lo <= seconds <= hi:
            shown = value if isinstance(value, str) else f"{value!r}"
            raise ValueError(f"'{shown}' is out of range: from {_short(lo)} to {_short(hi)}")
        return seconds
    return check


def size_between(lo: int, hi: int):
    """A field validator: a size within [lo, hi] bytes."""
    def check(value: Any) -> int:
        size = parse_size(value)
        if not lo <= size <= hi:
            raise ValueError(f"'{value}' is out of range: from {lo:,} bytes to {hi // 2**20:,} MiB")
        return size
    return check


_DAY = 86400.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrowserSettings(_Strict):
    """`fetch.browser`: pages behind a JavaScript wall read through Debian's Chromium (scrapy-playwright,
    never a browser download). Every request the browser makes passes govwatch's network-safety
    check (a local proxy of ours); images, media and fonts are not loaded."""

    executable: str = "/usr/bin/chromium"  # Debian's package chromium
    max_pages: int = Field(2, ge=1, le=16)  # pages rendered at once, each in a fresh context
    page_timeout: float = 30.0  # loading one page, its scripts and the wait for them to settle
    settle: float = 5.0  # after the load: wait at most this long for the network to go quiet or a challenge to clear
    restart_after: int = Field(100, ge=1, le=100_000)  # pages, after which the browser is restarted (memory)
    screenshots: bool = True  # a full-page PNG of each new version
    sandbox: Literal["auto", "on", "off"] = "auto"  # auto: Chromium's sandbox except as root or in a container

    _t = field_validator("page_timeout", mode="before")(duration_between(1, 600))
    _s = field_validator("settle", mode="before")(duration_between(0, 120))


class FetchSettings(_Strict):
    # true (any private target, for local testing), false, or a list of networks, addresses and
    # hosts with an optional :port (e.g. ["127.0.0.1:8081", "10.1.0.0/16"]): those may be fetched
    allow_private_networks: bool | list[str] = False
    browser: BrowserSettings = BrowserSettings()
    concurrency: int = Field(64, ge=1, le=512)
    per_host_concurrency: int = Field(2, ge=1, le=256)
    per_host_delay: float = 1.0
    timeout: float = 30.0
    max_bytes: int = 20 * 2**20
    retries: int = Field(2, ge=0, le=10)
    max_retry_after: float = 120.0
    obey_robots: bool = True
    user_agent_contact: str = ""
    # pages and documents extracted (and compressed) in this many worker processes, ahead of the
    # writer (monitor/offload.py): 1 where the machine has a second core, 0 turns it off
    extract_processes: int = Field(default_factory=default_processes, ge=0, le=8)

    _delay = field_validator("per_host_delay", mode="before")(duration_between(0, 600))

    @field_validator("allow_private_networks")
    @classmethod
    def _allowance(cls, v: bool | list[str]) -> bool | list[str]:
        if isinstance(v, list):
            from spiders.netsafety import Allowance

            Allowance(v)  # a ValueError names the entry that is neither a network, an address nor a host
        return v
    _timeout = field_validator("timeout", mode="before")(duration_between(1, 600))
    _retry = field_validator("max_retry_after", mode="before")(duration_between(0, _DAY))
    _s = field_validator("max_bytes", mode="before")(size_between(1024, 2**31))


def _http_url(v: str) -> str:
    """An http(s) URL the fetch can make a request of (stripped), or a ValueError naming what is
    wrong: the scheme, or what Scrapy's own parsing refuses (a port out of range, a broken IPv6
    literal), which would otherwise surface only at check time."""
    from w3lib.url import safe_url_string

    v = v.strip()
    if not re.match(r"^https?://[^\s/]+", v, re.IGNORECASE):
        raise ValueError(f"'{v}' is not an http(s) URL")
    try:
        safe_url_string(v)
    except ValueError as e:
        raise ValueError(f"'{v}' is not a valid URL: {e}") from None
    return v


def _checked(check):
    """A pydantic validator from a check of the state layer (which raises GovwatchError; pydantic
    reports ValueError): None passes, anything else is checked and returned in its checked form."""
    def validate(v):
        if v is None:
            return v
        try:
            return check(v)
        except GovwatchError as e:
            raise ValueError(str(e)) from None
    return validate


def _digest_cadence(v: str) -> str:
    cadence = parse_cadence(v)
    if cadence.kind == "instant":
        raise ValueError("a digest is daily@HH:MM or weekly@<day> HH:MM (instant is the default without `digest`)")
    return str(cadence)


class NotifyTarget(_Strict):
    """An Apprise URL (a secret: never printed) with an optional name and topic filter."""

    url: SecretStr
    name: str = ""
    topics: list[str] | None = None
    min_severity: SEVERITY = "medium"
    max_attempts: int = Field(8, ge=1, le=100)
    # team routing: low and medium severity as a digest at this cadence (daily@08:00, weekly@monday
    # 08:00), high at once; messages held during quiet hours ("22:00-07:00") and sent after them
    digest: str | None = None
    quiet_hours: str | None = None
    timezone: str | None = None  # of digest and quiet_hours; default display_timezone

    _digest = field_validator("digest")(_checked(lambda v: _digest_cadence(v)))
    _quiet = field_validator("quiet_hours")(_checked(lambda v: parse_quiet_hours(v) and v.strip()))
    _tz = field_validator("timezone")(_checked(check_timezone))

    @field_validator("url", mode="before")
    @classmethod
    def _apprise_url(cls, v: Any) -> Any:
        s = v.get_secret_value() if isinstance(v, SecretStr) else v
        if not isinstance(s, str) or not s.strip():
            raise ValueError("an Apprise URL is required")
        if not valid_apprise_url(s):
            scheme = s.split("://", 1)[0] if "://" in s else ""
            hint = f" (scheme '{scheme}')" if scheme and re.fullmatch(r"[a-z0-9+]{1,20}", scheme) else ""
            raise ValueError(f"not a valid Apprise URL{hint}; the URL is not shown because it may hold a token")
        return s.strip()


def valid_apprise_url(url: str) -> bool:
    """Whether Apprise takes the URL. Apprise logs an unparseable URL in full at ERROR: its log is
    off meanwhile, so the URL (a secret) reaches no log."""
    import apprise

    quiet_apprise_logs()
    log = logging.getLogger("apprise")
    was, log.disabled = log.disabled, True
    try:
        return apprise.Apprise.instantiate(url.strip()) is not None
    finally:
        log.disabled = was


def quiet_apprise_logs() -> None:
    """Apprise's own log lines may carry URLs and tokens: they never reach our handlers.
    Failures are reported by govwatch itself, with secrets scrubbed."""
    logging.getLogger("apprise").propagate = False


class HealthSettings(_Strict):
    failures_before_alert: int = Field(3, ge=1, le=1000)
    blocks_before_alert: int = Field(2, ge=1, le=1000)
    shrink_ratio: float = Field(0.5, gt=0, lt=1)


class SchedulerSettings(_Strict):
    """`govwatch run`: how often it looks for due sources, leases, shutdown and health bounds."""

    tick: float = 30.0  # how often the scheduler looks for due sources
    delivery_every: float = 30.0  # alert retries run on their own cadence
    lease: float = 600.0  # a worker's hold on a source it is checking (renewed while it works); a dead worker's expires
    delivery_claim: float = 300.0  # a worker's hold on an alert it is sending; longer than any send can take
    stop_timeout: float = 25.0  # after SIGTERM, in-flight fetches get this long before they are abandoned
    health_max_age: float = 900.0  # `govwatch health` fails when no cycle completed within this

    _tick = field_validator("tick", "delivery_every", mode="before")(duration_between(0.1, _DAY))
    _lease = field_validator("lease", "delivery_claim", mode="before")(duration_between(1, 7 * _DAY))
    _stop = field_validator("stop_timeout", mode="before")(duration_between(0, 3600))
    _age = field_validator("health_max_age", mode="before")(duration_between(1, 30 * _DAY))


class OcrSettings(_Strict):
    """Scanned PDFs (no text layer) read with Tesseract: at most max_pages pages, each within
    page_timeout (rendering, then reading), the document within timeout."""

    enabled: bool = True
    tesseract: str = "tesseract"  # the command, or its path
    language: str = "eng"  # Tesseract's language codes, e.g. eng+spa (Debian: tesseract-ocr-spa)
    max_pages: int = Field(20, ge=1, le=2000)
    dpi: int = Field(300, ge=72, le=600)
    page_timeout: float = Field(60.0, gt=0)
    timeout: float = Field(300.0, gt=0)

    _d = field_validator("page_timeout", "timeout", mode="before")(lambda v: parse_duration(v))


class SavePageNowSettings(_Strict):
    """`archive.save_page_now`: ask the Wayback Machine's SPN2 API for a capture of each change's URL.
    The keys are read from the environment variables named here, never from the file."""

    enabled: bool = False
    endpoint: str = "https://web.archive.org/save"
    access_key_env: str = Field("", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")
    secret_key_env: str = Field("", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")
    changes: Literal["matched", "every"] = "matched"  # which changes are captured
    max_attempts: int = Field(6, ge=1, le=50)  # failed submissions before a capture is given up (a 429 is a wait, not a failure)
    retry_base: float = 60.0  # first retry after a failure; doubles per attempt, at most 6h
    poll_every: float = 10.0  # between two status polls of a capture job (and the scheduler's archive pass)
    max_polls: int = Field(60, ge=1)  # a job still pending after this many polls is submitted again
    check_wait: float = 60.0  # how long `check` waits, after delivery, for its captures to finish
    timeout: float = 30.0

    _d = field_validator("retry_base", "poll_every", "check_wait", "timeout", mode="before")(lambda v: parse_duration(v))

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        return _http_url(v).rstrip("/")


class ArchiveSettings(_Strict):
    save_page_now: SavePageNowSettings = SavePageNowSettings()
    timestamp_url: str = ""  # an RFC 3161 time stamping authority: the chain's head is stamped once a day

    @field_validator("timestamp_url")
    @classmethod
    def _tsa(cls, v: str) -> str:
        if v.strip() and not re.match(r"^https?://[^\s/]+", v.strip(), re.IGNORECASE):
            raise ValueError(f"'{v}' is not an http(s) URL")
        return v.strip()


_KEY_PARAM = re.compile(r"[?&](api[_-]?key|access_token)=", re.IGNORECASE)


class SourceConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    url: str
    kind: str = "page"
    name: str = ""
    agency: str = ""
    every: float = 6 * 3600.0
    select: str | None = None
    ignore: list[str] = []
    topics: list[str] | None = None
    enabled: bool = True
    expect_update_within: float | None = None
    alert_on: list[str] = []  # phrases: added text containing one alerts (topic "alert-on") without a topic file
    # page and listing: `auto` fetches over HTTP and renders through the browser when the answer is a
    # JavaScript challenge (and remembers it); `browser` always renders; `http` never does
    render: Literal["auto", "browser", "http"] = "auto"
    options: Any = None  # the kind's own Options, filled from the keys the kind declares

    _d = field_validator("every", mode="before")(duration_between(0, 3660 * _DAY))
    _e = field_validator("expect_update_within", mode="before")(
        lambda v: None if v is None else duration_between(1, 3660 * _DAY)(v))

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = _http_url(v)
        if _KEY_PARAM.search(v):
            # a key in a URL ends up in the sources table, the web pages and health alerts
            raise ValueError("the URL holds an API key or token parameter; keys never go in URLs "
                             "(Congress.gov: set GOVWATCH_CONGRESS_API_KEY); the URL is not shown")
        return v.strip()

    @field_validator("alert_on")
    @classmethod
    def _alert_on(cls, v: list[str]) -> list[str]:
        for phrase in v:
            if not phrase.strip() or not any(ch.isalnum() for ch in phrase):
                raise ValueError(f"{phrase!r} is not a phrase (words to look for in added text)")
        return [p.strip() for p in v]

    @property
    def display_name(self) -> str:
        return self.name or self.id

    def renders(self, remembered: bool) -> bool:
        """Its own request goes through the browser (when one is installed): `render: browser`, or
        `auto` once a JavaScript wall was met (`remembered`, the source record's needs_browser)."""
        return self.kind in RENDERED_KINDS and (self.render == "browser" or (self.render == "auto" and remembered))

    def may_render(self, request_render: str) -> bool:
        """A JavaScript wall met by this request could be passed by rendering it: a page or listing
        not set to `render: http`, and a request that did not go through the browser already."""
        return request_render != "browser" and self.render != "http" and self.kind in RENDERED_KINDS


_COMMON_SOURCE_KEYS = set(SourceConfig.model_fields) - {"options"}


class _File(_Strict):
    database: str | None = None
    include_defaults: bool = True
    fetch: FetchSettings = FetchSettings()
    notify: list[dict[str, Any]] = []
    health_notify: list[dict[str, Any]] = []
    health: HealthSettings = HealthSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    ocr: OcrSettings = OcrSettings()
    sources: list[dict[str, Any]] = []
    topics: list[dict[str, Any]] = []
    public_url: str = ""
    archive: ArchiveSettings = ArchiveSettings()
    display_timezone: str = "UTC"  # the web change log's times (UTC stays in the tooltip)
    subscriptions: list[dict[str, Any]] = []  # saved searches that alert (monitor/subscriptions.py)

    _tz = field_validator("display_timezone")(_checked(check_timezone))


@dataclass
class Config:
    path: str
    database: str
    fetch: FetchSettings
    notify: list[NotifyTarget]
    health_notify: list[NotifyTarget]
    health: HealthSettings
    scheduler: SchedulerSettings
    sources: list[SourceConfig]
    topics: list[Any]  # monitor.classify.Topic, built-ins first
    public_url: str = ""
    display_timezone: str = "UTC"
    subscriptions: list[Any] = field(default_factory=list)  # monitor.subscriptions.Subscription
    web_sources: set[str] = field(default_factory=set)  # ids of the sources made in the web UI (monitor/watches.py)
    from_file: bool = False
    # problems `validate` reports that do not stop a run (e.g. a private URL, which the fetch refuses)
    advisories: list[str] = field(default_factory=list)
    # the GOVWATCH_* environment as it was at load (keys live here): never printed, never logged


    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    # the GOVWATCH_* environment as it was at load, and the key variables that the file names
    # (archive.save_page_now): never printed, never logged
    environment: dict[str, str] = field(default_factory=dict, repr=False)
    ocr: OcrSettings = field(default_factory=OcrSettings)
    _by_id: dict[str, SourceConfig] = field(default_factory=dict)

    def source(self, source_id: str) -> SourceConfig:
        if not self._by_id:
            self._by_id = {s.id: s for s in self.sources}
        return self._by_id[source_id]

    def target_names(self) -> list[str]:
        return [t.name for t in self.notify]


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it (same safety)


# -- locating problems in the YAML -------------------------------------------------------
# A document whose aliases expand to more values than this is refused before anything reads it:
# a billion-laughs config is a few lines that pydantic (or any walk) would expand to 10^9 values.
MAX_EXPANDED_VALUES = 1_000_000
_COMPACT_ABOVE = 256 * 1024  # characters of YAML from which its data is copied out of the parser's heap (_load_yaml)


def _expanded_size(root) -> int:
    """How many values the node graph holds once every alias is expanded, counted without
    expanding (each distinct node once; an alias counts its node's whole size again)."""
    size: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in size:
            continue
        if isinstance(node, yaml.ScalarNode):
            size[id(node)] = 1
            continue
        children = [x for kv in node.value for x in kv] if isinstance(node, yaml.MappingNode) else list(node.value)
        if done:
            size[id(node)] = 1 + sum(size.get(id(c), 1) for c in children)
        else:
            stack.append((node, True))
            stack += [(c, False) for c in children if id(c) not in size]
    return size.get(id(root), 0)


@contextlib.contextmanager
def _composed(text: str):
    """(loader, the document's root node or None), the loader disposed of afterwards."""
    loader = _SAFE_LOADER(text)
    try:
        yield loader, loader.get_single_node()
    finally:
        loader.dispose()


def _load_yaml(text: str):
    """The document's data; ConfigError-worthy problems raise yaml.YAMLError. The node graph is
    dropped here: a problem's line is found by composing the text again (_Lines).

    The data comes back by way of pickle: composing a YAML document makes some 90 bytes of node
    objects per byte of text, interleaved in memory with the data built from them, so a watch list
    of 20,000 sources (2 MB) left 180 MB of mostly empty heap in the process for good (RSS 101 ->
    283 MB for 13 MB of data). Pickled, the nodes and the first copy are freed together and the
    copy the process keeps is built in memory of its own (122 MB)."""
    with _composed(text) as (loader, node):
        if node is None:
            return None
        expanded = _expanded_size(node)
        if expanded > MAX_EXPANDED_VALUES:
            raise _AliasBomb(f"the document expands to {expanded:,} values through its aliases (&anchor/*alias); "
                             f"at most {MAX_EXPANDED_VALUES:,} are read")
        if len(text) < _COMPACT_ABOVE:
            return loader.construct_document(node)
        blob = pickle.dumps(loader.construct_document(node), protocol=pickle.HIGHEST_PROTOCOL)
    del node
    memory.trim()
    return pickle.loads(blob)


class _AliasBomb(ValueError):
    pass


class _Lines(dict):
    """The line map, built the first time a problem asks for a line (the text composed again: a
    valid file is composed once, and its node graph is not kept)."""

    def __init__(self, text: str | None):
        super().__init__()
        self._text = text

    def _load(self) -> None:
        if self._text is not None:
            text, self._text = self._text, None
            try:
                with _composed(text) as (loader, root):
                    if root is None:
                        return
                    # constructed as the load did: a merge key (<<: *anchor) puts the anchor's key
                    # nodes into the mapping, so a problem of a merged key is located where it is written
                    loader.construct_document(root)
            except yaml.YAMLError:
                return  # (the load reported it)
            self.update(_line_map(root))

    def __contains__(self, key) -> bool:
        self._load()
        return super().__contains__(key)

    def __getitem__(self, key):
        self._load()
        return super().__getitem__(key)


def _line_map(root) -> dict[tuple, int]:
    """Map each key/index path of the YAML document to its 1-based line.

    Each node is entered once, by the first path that reaches it: an alias is not expanded (a
    problem under an alias is located at the nearest path mapped, e.g. the key that holds it).
    Iterative, so that a deeply nested document cannot exhaust the stack."""
    out: dict[tuple, int] = {}
    seen: set[int] = set()
    stack = [(root, ())]
    while stack:
        node, path = stack.pop()
        out.setdefault(path, node.start_mark.line + 1)
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in reversed(node.value):
                key = k.value
                out[path + (key,)] = k.start_mark.line + 1
                stack.append((v, path + (key,)))
        elif isinstance(node, yaml.SequenceNode):
            for i in range(len(node.value) - 1, -1, -1):
                stack.append((node.value[i], path + (i,)))
    return out


def _loc(path: tuple) -> str:
    s = ""
    for p in path:
        s += f"[{p}]" if isinstance(p, int) else (f".{p}" if s else str(p))
    return s


def _problem(path: tuple, msg: str, lines: dict[tuple, int], label: str = "") -> str:
    line = None
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            line = lines[path[:n]]
            break
    where = (_loc(path) or "(top level)") + label
    return f"{where}: {msg}" + (f" (line {line})" if line else "")


def _pydantic_problems(err: ValidationError, base: tuple, lines: dict, known: list[str]) -> list[str]:
    out = []
    for e in err.errors():
        path = base + tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        if e["type"] == "extra_forbidden":
            key = path[-1]
            close = difflib.get_close_matches(str(key), known, n=1)
            msg = f"unknown key '{key}'" + (f"; did you mean '{close[0]}'?" if close else "")
        elif e["type"] == "value_error":
            msg = str(e["ctx"].get("error", e["msg"])) if e.get("ctx") else e["msg"]
        elif e["type"] == "missing":
            msg = "required"
        else:
            msg = e["msg"]
            # never echo what may be a secret: any URL, and anything under notify/health_notify
            secret = path[-1:] == ("url",) or (path and path[0] in ("notify", "health_notify"))
            if "input" in e and isinstance(e["input"], (str, int, float, bool)) and not secret:
                msg += f" (got {e['input']!r})"
        out.append(_problem(path, msg, lines))
    return out


_KNOWN_KEYS = sorted(set(_File.model_fields) | set(FetchSettings.model_fields) | set(SchedulerSettings.model_fields)
                     | set(ArchiveSettings.model_fields) | set(SavePageNowSettings.model_fields)
                     | set(HealthSettings.model_fields) | _COMMON_SOURCE_KEYS | set(NotifyTarget.model_fields))


def builtin_catalogue() -> list[dict[str, Any]]:
    text = resources.files("monitor").joinpath("catalogue.yaml").read_text(encoding="utf-8")
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # the package's own file
    return list(data.get("sources", []))


def _env_targets(value: str) -> list[dict[str, Any]]:
    return [{"url": u, "name": f"env-{i + 1}"} for i, u in enumerate(value.split())]


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The GOVWATCH_* settings of the process environment (or of `env`): the one place that reads
    it. Commands read it once at start and pass what they need down."""
    return {k: v for k, v in (os.environ if env is None else env).items() if k.startswith("GOVWATCH_")}


def config_file(path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The configuration file: `path` (--config), else GOVWATCH_CONFIG, else ./govwatch.yaml. It
    may not exist (`load_config` then uses the built-in defaults, and `govwatch add` creates it)."""
    return Path(path or environment(env).get("GOVWATCH_CONFIG") or DEFAULT_CONFIG)


def config_path_given(env: Mapping[str, str] | None = None) -> bool:
    """Whether a configuration file is named (GOVWATCH_CONFIG) or present as ./govwatch.yaml."""
    return bool(environment(env).get("GOVWATCH_CONFIG")) or Path(DEFAULT_CONFIG).exists()


def _read_file(cfg_path: Path, explicit: bool) -> tuple[Any, Any]:
    """The file's settings and its text (for the line map); ({}, None) without a file.
    Unreadable files, invalid YAML and alias bombs are a ConfigError naming the place."""
    raw: Any = {}
    text = None
    if cfg_path.exists():
        try:
            text = cfg_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(str(cfg_path), [f"cannot read: {e}"]) from e
        try:
            try:
                raw = _load_yaml(text) or {}
            except yaml.YAMLError as c_error:
                try:
                    raw = yaml.safe_load(text)  # the pure-Python parser's message names the problem better
                except RecursionError:          # nested past libyaml's limit: its message says so
                    raise c_error from None
        except _AliasBomb as e:
            raise ConfigError(str(cfg_path), [f"(top level): {e}"]) from None
        except RecursionError:
            raise ConfigError(str(cfg_path), ["(top level): invalid YAML: nested too deeply"]) from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(e, "problem", None) or str(e)
            raise ConfigError(str(cfg_path), [f"{where}invalid YAML: {problem}"]) from e
        if not isinstance(raw, dict):
            raise ConfigError(str(cfg_path), ["(top level): expected a mapping of settings, got " + type(raw).__name__])
    elif explicit:
        raise ConfigError(str(cfg_path), ["file not found"])
    return raw, text


def load_config(path: str | os.PathLike | None = None, *, env: dict[str, str] | None = None) -> Config:
    """Read, validate and resolve the configuration; raises ConfigError listing every problem."""
    from spiders import source_kinds  # registers the kinds
    from monitor import classify

    process_env = os.environ if env is None else env
    env = environment(env)
    explicit = path is not None or bool(env.get("GOVWATCH_CONFIG"))
    cfg_path = config_file(path, env)
    raw, text = _read_file(cfg_path, explicit)
    lines = _Lines(text)
    problems: list[str] = []

    try:
        f = _File.model_validate(raw)
    except ValidationError as e:
        problems += _pydantic_problems(e, (), lines, _KNOWN_KEYS)
        # Keep validating what can be validated, so every problem is reported at once.
        bad = {e["loc"][0] for e in e.errors() if e["loc"]}
        safe = {k: v for k, v in raw.items() if k not in bad}
        try:
            f = _File.model_validate(safe)
        except ValidationError:
            f = _File()

    # topics: built-ins plus the operator's own
    topics = list(classify.builtin_topics())
    if f.topics:
        try:
            topics += classify.load_topics(f.topics, where="topics")
        except TopicError as e:
            problems += [_problem(_path_of(p), p.split(": ", 1)[1] if ": " in p else p, lines) if p.startswith("topics[") else p for p in e.problems]
    topic_ids = {t.id for t in topics}
    from monitor.relevance import ALERT_ON

    if ALERT_ON in topic_ids:
        problems.append(f"topics: the id '{ALERT_ON}' is reserved for the matches of sources' alert_on phrases")

    sources: list[SourceConfig] = []
    user_sources = [(("sources", i), s) for i, s in enumerate(f.sources)]
    default_sources = [(("(built-in catalogue)", i), s) for i, s in enumerate(builtin_catalogue())] if f.include_defaults else []
    seen: dict[str, tuple] = {}
    for base, s in user_sources + default_sources:
        src, errs = _validate_source(s, base, lines, source_kinds, topic_ids)
        problems += errs
        # a duplicate id is reported with the other problems, even when the source has some of its own
        sid = s.get("id") if isinstance(s, dict) else None
        if isinstance(sid, str) and sid in seen:
            if base[0] == "sources":
                problems.append(_problem(base + ("id",), f"duplicate source id '{sid}' (also at {_loc(seen[sid])})", lines))
            continue  # a user source replaces the built-in entry with the same id
        if isinstance(sid, str):
            seen[sid] = base
        if src is not None:
            sources.append(src)
    allowed = f.fetch.allow_private_networks
    advisories = [] if allowed is True else _private_urls(user_sources, lines, allowed or None)

    notify = _targets(f.notify, ("notify",), lines, problems)
    health_notify = _targets(f.health_notify, ("health_notify",), lines, problems)
    if env.get("GOVWATCH_NOTIFY"):
        for i, t in enumerate(_env_targets(env["GOVWATCH_NOTIFY"])):
            try:
                notify.append((len(f.notify) + i, NotifyTarget.model_validate(t)))
            except ValidationError as e:
                problems += [f"GOVWATCH_NOTIFY[{i}]: {x['ctx']['error'] if x.get('ctx') else x['msg']}" for x in e.errors()]
    _name_targets(notify, health_notify, topic_ids, {ALERT_ON}, lines, problems)
    subscriptions = _subscriptions(f.subscriptions, {t.name: t.url.get_secret_value() for _, t in notify}, topic_ids,
                                   {s.id for s in sources}, f.display_timezone, lines, problems)
    subscriptions += _target_digests(notify, f.display_timezone, {x.name for x in subscriptions}, lines, problems)

    if problems:
        raise ConfigError(str(cfg_path), problems + advisories)
    database = env.get("GOVWATCH_DATABASE") or f.database or DEFAULT_DATABASE
    spn = f.archive.save_page_now
    for name in (spn.access_key_env, spn.secret_key_env):  # keys: named by the file, read here only
        if name and name in process_env:
            env[name] = process_env[name]
    return Config(
        path=str(cfg_path),
        database=database,
        fetch=f.fetch,
        notify=[t for _, t in notify],
        health_notify=[t for _, t in health_notify],
        health=f.health,
        scheduler=f.scheduler,
        ocr=f.ocr,
        sources=sources,
        topics=topics,
        public_url=f.public_url.rstrip("/"),
        display_timezone=f.display_timezone,
        subscriptions=subscriptions,
        from_file=cfg_path.exists(),
        archive=f.archive,
        environment=env,
        advisories=advisories,
    )


def _subscriptions(raw: list, named: dict[str, str], topic_ids: set[str], source_ids: set[str], tz: str,
                   lines: dict, problems: list[str]) -> list:
    """The configuration's subscriptions, each validated as the web form validates one."""
    from monitor import subscriptions as subs_mod

    out, seen = [], set()
    for i, entry in enumerate(raw):
        sub, errs = subs_mod.validate(entry, topic_ids=topic_ids, source_ids=source_ids, named_targets=named,
                                     url_ok=valid_apprise_url, default_timezone=tz)
        problems += [_problem(("subscriptions", i) + ((k,) if k else ()), msg, lines) for k, msg in errs.items()]
        if sub is not None:
            if sub.name in seen:
                problems.append(_problem(("subscriptions", i, "name"), f"duplicate subscription name '{sub.name}'", lines))
            seen.add(sub.name)
            out.append(sub)
    return out


def validate_watch(raw: Any, cfg: "Config", taken: set[str]) -> tuple["SourceConfig | None", list[str]]:
    """A source made in the web UI, validated as a `sources:` entry of the file is (kind, options,
    selectors, patterns, a private address without allow_private_networks) plus a unique id; the
    problems read "watch.<field>: message"."""
    from spiders import source_kinds

    src, problems = _validate_source(raw, ("watch",), {}, source_kinds, {t.id for t in cfg.topics})
    allowed = cfg.fetch.allow_private_networks
    if allowed is not True:
        problems += _private_urls([(("watch",), raw)], {}, allowed or None)
    sid = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(sid, str) and sid in taken:
        problems.append(_problem(("watch", "id"), f"a source with the id '{sid}' exists already", {}))
    return (None if problems else src), problems


def _target_digests(notify: list, tz: str, taken: set[str], lines: dict, problems: list[str]) -> list:
    """Team routing: a notify target with `digest:` gets its low and medium alerts as a digest, kept
    as a subscription of origin "target" (its cursor and pending changes in the database)."""
    from monitor.subscriptions import Subscription

    out = []
    for i, t in notify:
        if not t.digest:
            continue
        name = f"{t.name} digest"
        if name in taken:
            problems.append(_problem(("notify", i, "digest"), f"the subscription name '{name}' is taken", lines))
            continue
        out.append(Subscription(name=name, query="", every=t.digest, timezone=t.timezone or tz, topics=list(t.topics or []),
                                targets=[(t.name, t.url.get_secret_value())], origin="target"))
    return out


def _name_targets(notify: list, health_notify: list, topic_ids: set[str], also: set[str], lines: dict,
                  problems: list[str]) -> None:
    """Every target named (deliveries name their target: one namespace for both lists), each name
    once, each topic filter naming a known topic (or one of `also`, e.g. alert-on)."""
    names: set[str] = set()
    for group, targets in (("notify", notify), ("health_notify", health_notify)):
        for i, t in targets:
            if not t.name:
                t.name = f"{'health-' if group == 'health_notify' else ''}target-{i + 1}"
            if t.name in names:
                problems.append(_problem((group, i, "name"), f"duplicate target name '{t.name}'", lines))
            names.add(t.name)
            for tid in t.topics or []:
                if tid not in topic_ids and tid not in also:
                    problems.append(_problem((group, i, "topics"), f"unknown topic '{tid}'; known: {', '.join(sorted(topic_ids))}", lines))


def _targets(raw: list, base: tuple, lines: dict, problems: list[str]) -> list[tuple[int, NotifyTarget]]:
    """Each target validated on its own (every problem reported), kept with its index in the file."""
    out = []
    for i, t in enumerate(raw):
        try:
            out.append((i, NotifyTarget.model_validate(t)))
        except ValidationError as e:
            problems += _pydantic_problems(e, base + (i,), lines, sorted(NotifyTarget.model_fields))
    return out


def _path_of(problem: str) -> tuple:
    m = re.match(r"topics\[(\d+)\]", problem)
    return ("topics", int(m.group(1))) if m else ()


def _validate_source(s: Any, base: tuple, lines: dict, kinds, topic_ids: set[str]) -> tuple[SourceConfig | None, list[str]]:
    if not isinstance(s, dict):
        return None, [_problem(base, f"expected a mapping with id, url and kind, got {type(s).__name__}", lines)]
    sid = s.get("id")
    label = f" '{sid}'" if isinstance(sid, str) else ""
    kind_name = s.get("kind", "page")
    try:
        kind = kinds.get(str(kind_name))
    except KeyError as e:
        # still check what every source has (its options are the kind's: unknown, so not judged)
        errs = [_problem(base, e.args[0], lines, label)]
        try:
            SourceConfig.model_validate({k: v for k, v in s.items() if k in _COMMON_SOURCE_KEYS})
        except ValidationError as ve:
            errs += _pydantic_problems(ve, base, lines, sorted(_COMMON_SOURCE_KEYS))
        return None, errs + _selector_problems(s, base, lines, None)
    option_fields = set(kind.Options.model_fields)
    common = {k: v for k, v in s.items() if k in _COMMON_SOURCE_KEYS or k not in option_fields}
    own = {k: v for k, v in s.items() if k in option_fields and k not in _COMMON_SOURCE_KEYS}
    errs: list[str] = []
    src = None
    known = sorted(_COMMON_SOURCE_KEYS | option_fields)
    try:
        src = SourceConfig.model_validate(common)
    except ValidationError as e:
        errs += _pydantic_problems(e, base, lines, known)
    try:
        # a source that sets none of its kind's options shares the kind's defaults (read-only: 20,000
        # sources held 20,000 copies, 7 MB)
        options = _default_options(kind.Options) if not own else kind.Options.model_validate(own)
    except ValidationError as e:
        errs += _pydantic_problems(e, base, lines, known)
        options = None
    from monitor.extract import compile_ignore

    ignore = s.get("ignore")
    for j, pat in enumerate(ignore if isinstance(ignore, list) else []):
        if isinstance(pat, str):
            try:
                compile_ignore([pat])
            except ValueError as e:
                errs.append(_problem(base + ("ignore", j), str(e), lines))
    errs += _selector_problems(s, base, lines, kind)
    if s.get("render") == "browser" and kind_name not in RENDERED_KINDS:
        errs.append(_problem(base + ("render",), f"render: browser is for kinds {' and '.join(RENDERED_KINDS)}, "
                             f"not {kind_name} (its answers are data, not pages)", lines))
    if src is not None:
        for tid in src.topics or []:
            if tid not in topic_ids:
                errs.append(_problem(base + ("topics",), f"unknown topic '{tid}'; known: {', '.join(sorted(topic_ids))}", lines))
        # past pydantic's __setattr__, which would add "options" to the model's set of fields given
        # and grow that set past its inline size: 10 MB at 20,000 sources (nothing reads that set)
        object.__setattr__(src, "options", options)
    return (src if not errs else None), errs


@functools.lru_cache(maxsize=None)
def _default_options(options_class):
    return options_class.model_validate({})


# -- the web change log's environment (`govwatch serve`) ----------------------------------------
@dataclass(frozen=True)
class WebEnvironment:
    """GOVWATCH_WEB_TOKEN (a secret: never shown) and GOVWATCH_WEB_USERS (the path of an accounts file)."""

    token: str = field(default="", repr=False)
    users_file: str = ""


def web_environment(env: Mapping[str, str] | None = None) -> WebEnvironment:
    """The web settings of `env` (e.g. Config.environment) or of the process environment, read when
    the app is built (never at import); monitor.web.auth checks them."""
    env = environment(env)
    return WebEnvironment(token=(env.get("GOVWATCH_WEB_TOKEN") or "").strip(),
                          users_file=(env.get("GOVWATCH_WEB_USERS") or "").strip())


def _selector_problems(s: dict, base: tuple, lines: dict, kind) -> list[str]:
    """CSS selectors compiled at load, so that `div[[[` is a located configuration error and not a
    failure at check time: `select` as lxml reads it (pages), a kind's selector options as parsel
    does (listings). The configuration has no XPath selectors."""
    from cssselect import HTMLTranslator, SelectorError
    from parsel.csstranslator import HTMLTranslator as ParselTranslator

    checks = [("select", HTMLTranslator() if kind is None or not getattr(kind, "selector_options", ()) else ParselTranslator())]
    checks += [(name, ParselTranslator()) for name in getattr(kind, "selector_options", ())]
    out = []
    for name, translator in checks:
        sel = s.get(name)
        if not isinstance(sel, str):
            continue
        try:
            translator.css_to_xpath(sel)
        except SelectorError as e:
            out.append(_problem(base + (name,), f"'{sel}' is not a valid CSS selector: {e}", lines))
    return out


def private_host(url: str, allowed: bool | list[str] | None) -> str:
    """"host H is a loopback address ..." when the URL names a private, loopback or link-local
    address (or localhost) that fetch.allow_private_networks does not allow; "" otherwise. Only
    literal addresses and localhost: a name is judged at fetch time, after its DNS lookup."""
    from urllib.parse import urlsplit

    from spiders.netsafety import Allowance, forbidden_reason, parse_ip_literal

    if allowed is True:
        return ""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        return ""
    ip = parse_ip_literal(host) if host else None
    reason = forbidden_reason(ip) if ip is not None else ("loopback" if host == "localhost" or host.endswith(".localhost") else None)
    if not reason or (allowed and Allowance(allowed).allows(host, ip, port)):
        return ""
    return f"host {host} is a {reason} address, which is refused unless fetch.allow_private_networks is true (set it for local testing only)"


def _private_urls(user_sources: list, lines: dict, allowed: list[str] | None = None) -> list[str]:
    """Sources whose URL names a private address fetch.allow_private_networks does not allow: the
    fetch would refuse them, so `validate` says so now."""
    out = []
    for base, s in user_sources:
        url = s.get("url") if isinstance(s, dict) else None
        reason = private_host(url, allowed) if isinstance(url, str) else ""
        if reason:
            out.append(_problem(base + ("url",), reason, lines))
    return out
