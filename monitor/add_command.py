"""`govwatch add URL`: a new source in the configuration file, in one step an operator can trust.

The entry is added to the file as text: every comment, key order, quoting and indentation of the
file stays as it was (a round-trip YAML library re-indents what it rewrites), and the edit is
checked by reading the result back. The file with the entry is validated as `load_config` reads
it before anything is written, then replaced atomically. A kind that is not given is told from
one fetch of the URL through govwatch's own fetcher (its network safety, robots.txt, User-Agent,
delays and limits), and that same response is read the way `govwatch doctor` reads it, so the
operator sees at once what govwatch will watch there. `register(add)` adds the command to the
`govwatch` parser (monitor/cli.py imports this module, never the reverse)."""
from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shlex
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from monitor import doctor
from monitor.config import Config, config_file, load_config
from monitor.escaping import terminal_text
from spiders.kinds import FetchRequest, Fetched
from state.errors import ConfigError, GovwatchError

# What a file created by `govwatch add` starts with: it says why the catalogue is still watched.
HEADER = """\
# govwatch configuration, created by `govwatch add` (every setting: the README's "Configuration").
# The built-in catalogue of DHS, ICE, OIG, GAO, Federal Register and congressional sources is
# watched as well (include_defaults is true unless this file sets it to false); `govwatch add URL`
# adds a source of your own below, `govwatch validate` checks this file.
"""
# URLs whose kind is their address: JSON APIs that only these kinds read
_API_HOSTS = (("federalregister.gov", "/api/", "federal-register"), ("api.congress.gov", "/", "congress-gov"))
# what detect_kind says of a response -> the kind that watches it
_KIND_OF = {"feed": "feed", "pdf": "pdf", "html": "page", "text": "page"}
_WHAT = {"feed": "an RSS/Atom feed", "pdf": "a PDF", "html": "an HTML page", "text": "a text document"}
_SUFFIX = re.compile(r"\.(s?html?|php|aspx?|jsp|xml|rss|atom|json|pdf)$", re.IGNORECASE)
_MAX_ID = 80
_ORDER = ("id", "name", "url", "kind", "every")  # the keys of an entry, in the order a hand-written one reads


class AddError(GovwatchError):
    """Nothing was written: the one-line reason (exit 2, like a bad configuration)."""

    exit_code = 2


class _Unplaceable(ValueError):
    """The file's `sources:` is written in a form that cannot be added to by adding lines."""


# -- the command ----------------------------------------------------------------------------
def cmd_add(args) -> int:
    """Add a source to the configuration file, then read it once as `govwatch doctor` does.

    The file is -c, $GOVWATCH_CONFIG or ./govwatch.yaml, created when missing (the built-in catalogue
    stays watched); its comments and layout are kept. Without --kind the kind is told from one
    fetch of the URL: an RSS/Atom feed, a PDF or an HTML page (a Federal Register or Congress.gov
    API URL by its address). The file with the new entry is validated before it is written (a
    private address needs fetch.allow_private_networks). Exit 0 when added and read right, 1 when
    added but blind, blocked or failing, 2 when nothing was written.

    Example: govwatch add https://www.gao.gov/rss/reports.xml --name "GAO reports" --every 1h
    """
    target = config_file(args.config)
    try:
        return _add(args, target)
    except ConfigError as e:  # the file as it is, or with the entry: every problem, then what was (not) done
        print(f"Error: {e}", file=sys.stderr)
        print(f"nothing was written to {target}", file=sys.stderr)
        return e.exit_code


def _add(args, target: Path) -> int:
    before = _read(target)
    current = _validated(target, before or "")
    entry = _entry(args)
    _refuse_taken(entry["id"], current, before, target)
    kind = entry.get("kind") or kind_of_url(entry["url"])
    provisional = {**entry, "kind": kind or "page"}
    checked = _validated(target, _placed(before, provisional, target)[0])  # a bad URL, every or kind; a private address
    adding = _Adding(target, before, entry, checked)
    if kind:
        entry["kind"] = kind
        adding.run(None)
    else:
        src = checked.source(entry["id"])
        adding.run(FetchRequest(source_id=src.id, url=src.url))
    return adding.report(args, current)


@dataclass
class _Adding:
    """One `govwatch add` in one crawl: the fetch that tells the kind (when it is not known), the
    write, and doctor's reading of the new source. Doctor reads the first response itself when its
    request would be the same (the URL is fetched once), else it fetches in the same crawl, behind
    the same per-host delay."""

    target: Path
    before: str | None
    entry: dict
    base: Config  # the configuration validated with the provisional entry (its fetch settings)
    cfg: Config | None = None  # the configuration as written
    line: int = 0  # where the entry starts in the file
    told: str = ""  # what the response was, when the kind was told from it
    notes: list[str] = field(default_factory=list)
    reading: doctor.Reading | None = None
    error: Exception | None = None  # raised after the crawl (an error in a callback would only be logged)
    _ctx: object = None

    def run(self, probe: FetchRequest | None) -> None:
        first = probe or self.write()
        if first is not None:
            from spiders.fetch import Fetcher, run_in_reactor

            async def main(stop_event) -> int:
                await Fetcher(self.base.fetch).fetch([first], self.on_result)
                return 0

            run_in_reactor(main, stop_timeout=self.base.scheduler.stop_timeout)
        if self.error is not None:
            raise self.error
        if self.cfg is None:
            raise AddError("interrupted before the kind was told; nothing written")

    def write(self) -> FetchRequest | None:
        """Write the entry (validated again, as it now reads); doctor's request for it, or None
        when doctor fetches nothing (a disabled source: its reading is set)."""
        from monitor.context import Context, utcnow

        self.cfg, self.line = _write(self.target, self.before, self.entry)
        self._ctx = Context(self.cfg, None, utcnow, "doctor")
        step = doctor.source_request(self._ctx, self.cfg.source(self.entry["id"]))
        if isinstance(step, doctor.Reading):
            self.reading = step
            return None
        return step

    async def on_result(self, fetched: Fetched) -> list[FetchRequest]:
        try:
            if self.cfg is None:  # the fetch that tells the kind
                self.entry["kind"], self.told, notes = tell_kind(fetched)
                self.notes += notes
                request = await asyncio.to_thread(self.write)
                if request is None:
                    return []
                if (request.url, request.headers, request.render) != (fetched.request.url, fetched.request.headers,
                                                                         fetched.request.render):
                    return [request]
            step = doctor.read_response(self._ctx, self.cfg.source(self.entry["id"]), fetched)
            if isinstance(step, FetchRequest):
                return [step]  # past a JavaScript wall: read through the browser, as `check` does
            self.reading = step
        except Exception as e:  # noqa: BLE001 -- said after the crawl; a ConfigError keeps its problems
            self.error = e
        return []

    def report(self, args, current: Config) -> int:
        """What was added and what govwatch reads there; 0 read right, 1 not (yet)."""
        sid, kind = self.entry["id"], self.entry["kind"]
        how = f", told from the response: {self.told}" if self.told else ("" if args.kind else ", told from its address")
        print(f"added source '{sid}' (kind {kind}{how}) to {self.target}, line {self.line}")
        same = [s.id for s in current.sources if s.url == self.cfg.source(sid).url]
        if same:
            self.notes.append(f"source '{same[0]}' watches this URL already")
        self.notes += _kind_notes(kind, self.target, self.line, bool(args.kind))
        for note in self.notes:
            print(terminal_text(f"note: {note}", newlines=False))
        if self.reading is None:  # a signal ended the crawl before the answer came
            print(f"doctor could not read it (interrupted): run {_command(args, 'doctor', sid)}")
            return 1
        print(f"what govwatch reads there (`govwatch doctor --source {sid}`):")
        doctor.print_report([self.reading])
        if self.reading.outcome == "ok":
            every = args.every or "6h (the default)"
            print(f"next: {_command(args, 'check', sid)} records its baseline (stored, never alerted); "
                  f"`govwatch run` then checks it every {every}")
            return 0
        doctor_again = _command(args, "doctor", sid)
        if self.reading.outcome == "disabled":
            print(f"the source was added but is not checked until that is fixed (see above); then run {doctor_again}")
        else:
            print(f"the source was added but govwatch does not read it right yet ({self.reading.outcome}, see above): fix "
                  f"its entry in {self.target} (line {self.line}: its url, kind, `select` and `items`, or `render`) and run "
                  f"{doctor_again}, or delete the entry to remove the source")
        return 1


def _command(args, name: str, sid: str) -> str:
    config = f" -c {shlex.quote(args.config)}" if args.config else ""
    return f"`govwatch {name}{config} --source {sid}`"


def _kind_notes(kind: str, target: Path, line: int, given: bool) -> list[str]:
    """What to do next for the kinds whose reading depends on selectors (spiders/listing.py)."""
    options = ("`select` (CSS of the list's region) and `items` (CSS of its item links), or for a table or cards "
               "`item_row` with `items`, `item_title` and `item_date`; none is required (`items` defaults to every link, "
               "and selectors that miss most of the region's document links fall back to those links, reported blind); "
               "`govwatch kinds` lists every option")
    if kind == "listing":
        return [f"a listing without selectors takes every link of the page as an item, menus included: give its entry "
                f"({target}, line {line}) {options}"]
    if kind == "page" and not given:
        return [f"watched as a page (its main text). If it is a list of links to documents (reports, releases, hearings), "
                f"`--kind listing` with item selectors is the kind for it: in its entry ({target}, line {line}) set "
                f"`kind: listing` with {options}"]
    return []


# -- the entry ------------------------------------------------------------------------------
def _entry(args) -> dict:
    """The new `sources:` entry (no kind yet when it is to be told from the response)."""
    entry = {"id": args.source_id or derived_id(args.url)}
    if args.name:
        entry["name"] = args.name
    entry["url"] = args.url
    if args.kind:
        entry["kind"] = args.kind
    if args.every:
        entry["every"] = args.every
    return entry


def derived_id(url: str) -> str:
    """A readable id from the URL's host and path: https://www.gao.gov/rss/reports.xml -> gao-gov-rss-reports."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").removeprefix("www.")
    except ValueError:
        return "source"
    slug = re.sub(r"[^a-z0-9]+", "-", f"{host}/{_SUFFIX.sub('', parts.path)}".lower()).strip("-")
    if len(slug) > _MAX_ID:
        slug = slug[:_MAX_ID].rsplit("-", 1)[0]
    return slug or "source"


def _refuse_taken(sid: str, current: Config, before: str | None, target: Path) -> None:
    """A duplicate id is one line naming the source that has it (a source of the file with a
    catalogue id would silently replace the built-in one: not what `add` is for)."""
    if sid not in {s.id for s in current.sources}:
        return
    theirs = current.source(sid)
    data = yaml.safe_load(before) if before else None
    mine = data.get("sources") if isinstance(data, dict) else None
    where = f"in {target}" if any(isinstance(s, dict) and s.get("id") == sid for s in mine or ()) else "in the built-in catalogue"
    raise AddError(f"a source with the id '{sid}' exists already {where} ({theirs.url}); nothing written: "
                   f"give another with --id")


def kind_of_url(url: str) -> str | None:
    """The kind of an API URL, known from its address alone (the Federal Register, Congress.gov)."""
    try:
        parts = urlsplit(url.strip())
        host, path = (parts.hostname or "").lower(), parts.path or "/"
    except ValueError:
        return None
    for name, prefix, kind in _API_HOSTS:
        if (host == name or host.endswith("." + name)) and path.startswith(prefix):
            return kind
    return None


def tell_kind(fetched: Fetched) -> tuple[str, str, list[str]]:
    """(kind, what the response is, notes) from one response of the URL: an RSS/Atom feed, a PDF,
    an HTML or text page. A response that says nothing of the kind is an AddError."""
    from monitor.extract import detect_kind
    from spiders.blocks import judge
    from spiders.listing import read_listing

    url = fetched.request.url
    retry = "nothing written (with --kind it is added without telling the kind, and doctor says what it reads)"
    if fetched.error:
        raise AddError(f"cannot tell the kind of {url}: {fetched.error}; {retry}")
    verdict = judge(fetched, seen_before=False)
    if verdict is not None:  # a wall hides what is behind it; `render: auto` reads a page or listing past it
        return "page", f"a wall: {verdict.reason}", ["what is behind the wall cannot be seen from here: taken for a page"]
    if fetched.status is not None and fetched.status >= 400:
        raise AddError(f"cannot tell the kind of {url}: it answered HTTP {fetched.status}; {retry}")
    what = detect_kind(fetched.body, fetched.content_type)
    if what not in _KIND_OF:
        shown = fetched.content_type.split(";")[0].strip() or "no content type"
        raise AddError(f"{url} answers with {'JSON' if what == 'json' else what + ' data'} ({shown}), which no kind reads "
                       f"at this address (JSON: only the Federal Register and Congress.gov APIs); {retry}")
    notes = []
    if fetched.url != url:
        notes.append(f"the URL redirects to {fetched.url}")
    if what == "html":
        links = read_listing(fetched.body, fetched.url, select=None, items="a[href]", item_row=None, item_title=None,
                             item_date=None, next_page=None).document_links
        if links >= 3:
            notes.append(f"the page links to {links} documents (reports, releases, files)")
    return _KIND_OF[what], _WHAT[what], notes


# -- the file -------------------------------------------------------------------------------
def _read(target: Path) -> str | None:
    """The file's text exactly as it is (line endings kept), or None when there is no file."""
    if not target.exists():
        return None
    try:
        with open(target, encoding="utf-8", newline="") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise AddError(f"cannot read {target}: {getattr(e, 'strerror', None) or e}") from None


def _placed(before: str | None, entry: dict, target: Path) -> tuple[str, int]:
    try:
        return with_source(before, entry)
    except _Unplaceable as e:
        raise AddError(f"{target}: {e}; nothing written: add the entry by hand: {_flow(entry)}") from None


def _write(target: Path, before: str | None, entry: dict) -> tuple[Config, int]:
    """Validate the file with the entry and put it in place atomically (a temporary file beside
    it, renamed over it); the configuration as written and the entry's line. A file changed by
    someone else meanwhile is not overwritten."""
    text, line = _placed(before, entry, target)
    with _candidate(target, text) as (cfg, tmp):
        if _read(target) != before:
            raise AddError(f"{target} changed while the source was being added; nothing written: run govwatch add again")
        os.replace(tmp, _real(target))
        _sync_directory(_real(target).parent)
    return cfg, line


def _validated(target: Path, text: str) -> Config:
    with _candidate(target, text) as (cfg, _tmp):
        return cfg


@contextmanager
def _candidate(target: Path, text: str):
    """(the configuration `text` makes, its temporary file beside `target`): validated by
    `load_config` as the file would be read. Its problems, and the advisories `validate` reports
    (a private address the fetch would refuse, naming fetch.allow_private_networks), are a
    ConfigError naming `target`. The temporary file is gone afterwards unless renamed."""
    tmp = _temp_beside(target, text)
    try:
        try:
            cfg = load_config(tmp)
        except ConfigError as e:
            raise ConfigError(str(target), e.problems) from None
        if cfg.advisories:
            raise ConfigError(str(target), cfg.advisories)
        cfg.path = str(target)
        yield cfg, tmp
    finally:
        tmp.unlink(missing_ok=True)


def _real(target: Path) -> Path:
    return Path(os.path.realpath(target))  # a symlinked configuration: its file is replaced, not the link


def _temp_beside(target: Path, text: str) -> Path:
    """`text` in a new file in the target's directory (a rename there is atomic), with the
    target's mode and owner when it exists, else the umask's mode."""
    real = _real(target)
    st = real.stat() if real.exists() else None
    try:
        while True:
            tmp = real.parent / f".{real.name}.add-{os.getpid()}-{secrets.token_hex(4)}.tmp"
            try:
                # owner-only while written (the file may hold notification secrets); its mode after
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                break
            except FileExistsError:
                continue
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, st.st_mode & 0o7777 if st is not None else 0o666 & ~_umask())
        if st is not None:
            try:
                os.chown(tmp, st.st_uid, st.st_gid)
            except PermissionError:
                pass  # not ours to give away: the mode is kept, the owner is whoever writes
    except OSError as e:
        raise AddError(f"cannot write {target}: {e.strerror or e}; nothing written") from None
    return tmp


def _umask() -> int:
    """The process's umask (read by setting it, then put back: a CLI has one thread here)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _sync_directory(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- adding the entry as text ---------------------------------------------------------------
def with_source(text: str | None, entry: dict) -> tuple[str, int]:
    """The configuration text with `entry` added at the end of its `sources:` list, and the line
    the entry starts on. Only lines are added (an empty `sources:` or `sources: []` is opened, and
    a file without `sources:` gets one at its end): every other character stays where it was. A
    new file (None) starts with HEADER. The result is read back and compared with what it must
    mean; a `sources:` this cannot add to is _Unplaceable."""
    if text is None:
        head = HEADER + "sources:\n"
        return head + _block(entry, 2, 4, "\n"), head.count("\n") + 1
    nl = "\r\n" if "\r\n" in text else "\n"
    root = yaml.compose(text, Loader=yaml.SafeLoader) if text.strip() else None
    key, value = _top_level(root, "sources")
    if value is None:
        head = text + ("" if not text or text.endswith("\n") else nl) + "sources:" + nl
        out, line = head + _block(entry, 2, 4, nl), head.count("\n") + 1
    elif isinstance(value, yaml.SequenceNode) and value.value and not value.flow_style:
        out, line = _after_last_item(text, value, entry, nl)
    elif (isinstance(value, yaml.ScalarNode) and value.tag.endswith(":null")) or (
            isinstance(value, yaml.SequenceNode) and not value.value):
        out, line = _opened(text, key, value, entry, nl)
    else:
        raise _Unplaceable("its `sources:` is not a block list (`- id: ...` lines)")
    _check(text, out, entry)
    return out, line


def _top_level(root, name: str):
    """(key node, value node) of a top-level key; (None, None) without it."""
    if not isinstance(root, yaml.MappingNode):
        if root is not None:
            raise _Unplaceable("the file is not a mapping of settings")
        return None, None
    found = [(k, v) for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == name]
    return found[-1] if found else (None, None)


def _after_last_item(text: str, seq, entry: dict, nl: str) -> tuple[str, int]:
    """The entry after the last item's last line (before any comment lines that follow it),
    indented as the list's first item is."""
    start = seq.value[0].start_mark.index
    lead = text[text.rfind("\n", 0, start) + 1:start]  # what precedes the first item on its line: "  - "
    key_col = len(lead)
    dash_col = len(lead.rstrip()) - 1 if lead.rstrip().endswith("-") else max(key_col - 2, 0)
    end = _content_end(seq.value[-1])
    if end.column == 0 and end.index > 0:  # a block scalar ends with its line break
        at = end.index
    else:
        eol = text.find("\n", end.index)
        if eol < 0:
            text, eol = text + nl, len(text) + len(nl) - 1
        at = eol + 1
    return text[:at] + _block(entry, dash_col, key_col, nl) + text[at:], text.count("\n", 0, at) + 1


def _content_end(node):
    """Where a node's own text ends: its last scalar or flow collection (a block collection's
    end mark lies past the comments and blank lines that follow it)."""
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False):
        return node.end_mark
    children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else node.value
    return max((_content_end(c) for c in children), key=lambda m: m.index, default=node.end_mark)


def _opened(text: str, key, value, entry: dict, nl: str) -> tuple[str, int]:
    """`sources:` (empty, ~, null or []) opened as a block list holding the entry."""
    text = text[:value.start_mark.index] + text[value.end_mark.index:]
    eol = text.find("\n", value.start_mark.index)
    if eol < 0:
        text, eol = text + nl, len(text) + len(nl) - 1
    at = eol + 1
    dash = key.start_mark.column + 2
    return text[:at] + _block(entry, dash, dash + 2, nl) + text[at:], text.count("\n", 0, at) + 1


def _block(entry: dict, dash_col: int, key_col: int, nl: str) -> str:
    lines = [_key_value(k, entry[k]) for k in sorted(entry, key=_ORDER.index)]
    first = " " * dash_col + "-" + " " * max(key_col - dash_col - 1, 1) + lines[0]
    return nl.join([first] + [" " * key_col + line for line in lines[1:]]) + nl


def _key_value(key: str, value) -> str:
    """`key: value` on one line, quoted as YAML needs (a line break in a value: JSON's escapes)."""
    line = yaml.safe_dump({key: value}, allow_unicode=True, width=2**31 - 1, default_flow_style=False).rstrip("\n")
    return line if "\n" not in line else f"{key}: {json.dumps(value)}"


def _flow(entry: dict) -> str:
    return yaml.safe_dump(entry, default_flow_style=True, width=2**31 - 1, sort_keys=False).strip()


def _check(before: str, after: str, entry: dict) -> None:
    """The edited text means the old settings with one more source, or it is not used."""
    old = yaml.safe_load(before) if before.strip() else None
    old = old if isinstance(old, dict) else {}
    try:
        new = yaml.safe_load(after)
    except yaml.YAMLError:
        new = None
    if new != {**old, "sources": list(old.get("sources") or []) + [entry]}:
        raise _Unplaceable("its `sources:` list cannot be added to line by line without changing what the file says")


def register(add) -> None:
    sp = add("add", cmd_add)
    sp.add_argument("url", metavar="URL", help="the page, listing, feed, PDF or API URL to watch")
    sp.add_argument("--kind", metavar="K", help="page, listing, feed, pdf, federal-register or congress-gov "
                    "(default: told from one fetch of the URL; `govwatch kinds` lists them)")
    sp.add_argument("--id", dest="source_id", metavar="ID", help="the source's id (default: from the URL's host and path)")
    sp.add_argument("--name", metavar="N", help="the name alerts and the change log show")
    sp.add_argument("--every", metavar="DURATION", help="how often it is checked, e.g. 30m, 6h, 1d (default 6h)")
