"""Main text of an HTML page, PDF or plain-text body, normalised so that noise is not a change.

Pure functions over bytes: no I/O. Failures raise ExtractError with a reason a person can act on.
"""
from __future__ import annotations

import copy
import io
import logging
import re
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import lxml.etree
import lxml.html
from cssselect import SelectorError

from monitor.patterns import BoundedPattern
from state.errors import BlindError, ExtractError

logger = logging.getLogger(__name__)

MAX_PDF_PAGES = 2_000

# What reads bytes into text, besides this module's own code and monitor/ocr.py and patterns.py: the
# libraries whose versions are part of each stored text's extraction key (monitor/documents.py
# extraction_key). A stored text read by another extraction is not compared with today's reading as
# it is: the old raw body is read again.
LIBRARIES = ("lxml", "lxml_html_clean", "cssselect", "google-re2", "trafilatura", "justext", "htmldate", "courlan",
             "pypdf", "pdf2image", "pytesseract")

# ---------------------------------------------------------------------------- result


@dataclass(frozen=True)
class Extracted:
    """Normalised text of one document; paragraphs separated by a blank line."""

    text: str
    title: str | None
    kind: str                       # "html" | "pdf" | "text"
    no_text_layer: bool = False     # a PDF whose pages carry no text (scanned): text is "" or OCR text
    pages: int | None = None
    ocr_confidence: float | None = None   # OCR text: Tesseract's mean word confidence, 0-100
    note: str = ""                  # said with the change: "OCR text (mean confidence 87%)", no text layer...


# ---------------------------------------------------------------------------- kind and charset

_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_FEED_TYPES = {"application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/feed+json"}
_XML_TYPES = {"text/xml", "application/xml"}
_HTML_SNIFF = re.compile(rb"<(?:!doctype\s+html|html|head|body|title|meta|div|p|main|article|table)[\s>/]", re.I)
_FEED_SNIFF = re.compile(rb"<(?:rss|feed|rdf:RDF)[\s>]", re.I)
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.I)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.I)
# Bytes no text format uses: C0 controls other than tab, newline, form feed, carriage return, escape.
_CONTROL_BYTES = bytes(set(range(0x20)) - {0x09, 0x0A, 0x0C, 0x0D, 0x1B}) + b"\x7f"


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _declared_charset(body: bytes, content_type: str | None) -> str | None:
    m = _CHARSET.search(content_type or "")
    if m:
        return m.group(1)
    m = _META_CHARSET.search(body[:4096])
    if m:
        return m.group(1).decode("ascii", "replace")
    m = re.match(rb"<\?xml[^>]+encoding=[\"']([A-Za-z0-9._:-]+)", body[:200])
    return m.group(1).decode("ascii", "replace") if m else None


def _valid_utf8(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
        return True
    except UnicodeDecodeError as e:
        # A sample cut inside a multi-byte character is still valid text.
        return e.start >= len(sample) - 3 and e.reason == "unexpected end of data"


def detect_kind(body: bytes, content_type: str | None) -> str:
    """"html" | "pdf" | "text" | "feed" | "json" | "binary", from the content type and the bytes.

    PDFs are recognised by their magic as well as their type: servers label them text/html or
    application/octet-stream.
    """
    mtype = _media_type(content_type)
    if mtype == "application/pdf" or b"%PDF-" in body[:1024]:
        return "pdf"
    head = body[:8192]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):         # UTF-16 text is full of NULs: decode first
        sample = head.decode("utf-16", "replace")[:1024].lstrip().encode("utf-8", "replace")
        return "html" if _HTML_SNIFF.search(sample) else "text"
    if b"\x00" in head:
        return "binary"
    if head and sum(head.count(bytes([c])) for c in _CONTROL_BYTES) > len(head) // 10:
        return "binary"
    start = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if mtype in _FEED_TYPES or ((mtype in _XML_TYPES or not mtype) and _FEED_SNIFF.search(start)):
        return "feed"
    if mtype in _HTML_TYPES or (mtype in ("", "text/plain", "application/octet-stream")
                                and _HTML_SNIFF.search(start)):
        return "html"
    if mtype == "application/json" or mtype.endswith("+json") or (
            mtype in ("", "text/plain") and start[:1] in (b"{", b"[") and _valid_utf8(head)):
        return "json"
    if mtype.startswith(("image/", "audio/", "video/", "font/")) or mtype in (
            "application/zip", "application/gzip", "application/x-gzip"):
        return "binary"
    if not _valid_utf8(head) and _declared_charset(body, content_type) is None:
        return "binary"
    return "text"


def _decode(body: bytes, content_type: str | None, encoding: str | None) -> str:
    """Decode with the caller's, the declared or the BOM's charset; else UTF-8 with replacement."""
    if body.startswith(b"\xef\xbb\xbf"):
        return body[3:].decode("utf-8", "replace")
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        return body.decode("utf-16", "replace")
    for name in (encoding, _declared_charset(body, content_type)):
        if not name:
            continue
        try:
            # Servers say iso-8859-1 when they mean windows-1252 (as browsers assume).
            if name.lower().replace("_", "-") in ("iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii"):
                name = "cp1252"
            return body.decode(name, "replace")
        except LookupError:
            logger.debug("unknown charset %r, trying the next", name)
    return body.decode("utf-8", "replace")


# ---------------------------------------------------------------------------- normalisation

_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e]")
_LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029\x0b\x0c\x85]")
_LINE_BREAK_CHARS = "\r\u2028\u2029\x0b\x0c\x85"
_DATE = (r"(?:[A-Z][a-z]{2,8}\.?\s+\d{1,2},?\s+\d{4}|\d{1,2}\s+[A-Z][a-z]{2,8}\.?\s+\d{4}"
         r"|\d{1,2}/\d{1,2}/\d{2,4}|\d{4}-\d{2}-\d{2})(?:,?\s*(?:at\s+)?\d{1,2}:\d{2}(?::\d{2})?"
         r"\s*(?i:[ap]\.?m\.?)?(?:\s*[A-Z]{2,4}\b)?)?")
_STAMP = r"last\s+(?:reviewed|updated|modified|revised)(?:\s*/\s*(?:reviewed|updated|modified|revised))?"
# Built-in noise, removed where it matches on each line. Case-insensitive except the dates.
_NOISE = [
    # Date stamps. In prose ("the rule was last updated in 2019") the words are content: a stamp
    # is a whole line, or has a colon before its date, or starts with "Page last updated".
    re.compile(r"(?i:^(?:page\s+|date\s+)?" + _STAMP + r"(?:\s+(?:on|date))?)\s*:?\s*(?:" + _DATE + r")?\.?$"),
    re.compile(r"(?i:\b(?:page\s+|date\s+)?" + _STAMP + r"(?:\s+(?:on|date))?)\s*:\s*" + _DATE + r"\.?"),
    re.compile(r"(?i:\bpage\s+" + _STAMP + r"(?:\s+on)?)\s*:?\s*(?:" + _DATE + r")?\.?"),
    re.compile(r"(?i)^archived\s+content\b\.?"),
    re.compile(r"(?i)in an effort to keep (?:\S+\s+)?current,? the archive contains outdated information"
               r"[^.]*\.?(?:\s*(?:for|please)\b[^.]*(?:\.|$))*"),
    re.compile(r"(?i)\bwas this (?:page|information|article) helpful\??(?:\s*(?:yes|no)\b)*"),
    re.compile(r"(?i)\ban official website of the united states government\.?"),
    re.compile(r"(?i)\bhere['\u2019]s how you know\.?"),
    re.compile(r"(?i)\bofficial websites use \.gov\.?"),
    re.compile(r"(?i)\ba \.gov website belongs to an official government organization in the united states\.?"),
    re.compile(r"(?i)\bsecure \.gov websites use https\.?"),
    re.compile(r"(?i)\ba lock \(.{0,40}?\) or https:// means you['\u2019]ve safely connected to the \.gov website\.?"),
    re.compile(r"(?i)\bshare sensitive information only on official, secure websites\.?"),
    re.compile(r"(?i)\bsorry, you need to enable javascript to visit this website\.?"),
    re.compile(r"(?i)\b(?:please\s+)?enable javascript (?:in your browser )?to (?:view|use) this (?:site|website|page)\.?"),
    # Hidden form fields that leak into text in some layouts (Drupal's form_build_id, CSRF tokens).
    re.compile(r"(?i)\b(?:form[_-]build[_-]id|form[_-]token|csrf[_-]?token|authenticity_token|__viewstate"
               r"|__eventvalidation|__requestverificationtoken)\b\s*[:=]?\s*\S*"),
    re.compile(r"\bform-(?=[A-Za-z_-]*\d)[A-Za-z0-9_-]{30,}"),    # Drupal build ids: 43 base64url chars
]
# Every _NOISE pattern needs one of these words: a line (NFKC-normalised, lower-cased) without
# any cannot match, and most lines of an article skip the patterns (a third of the cost of a page).
_NOISE_WORDS = ("last", "archive", "helpful", "official", "know", ".gov", "javascript", "form", "csrf",
                "authenticity", "viewstate", "eventvalidation", "verificationtoken")


def _may_be_noise(line: str, words: Sequence[str] = _NOISE_WORDS) -> bool:
    low = line.lower()
    return any(w in low for w in words)
# A feedback widget splits "Yes" / "No" / thanks onto lines of their own after its question.
_WIDGET_TAIL = re.compile(r"(?i)^(?:yes|no|yes no|thank you for your feedback\.?|submit)$")
_WIDGET_HEAD = re.compile(r"(?i)^was this (?:page|information|article) helpful")


def compile_ignore(patterns: Sequence[str]) -> list[BoundedPattern]:
    """Compile a source's ignore regexes (on RE2: linear time, see monitor/patterns.py); the
    ValueError (PatternError) message is shown by config validation."""
    return [BoundedPattern(p) for p in patterns]


def normalise(text: str, ignore: Sequence[re.Pattern] = ()) -> str:
    """NFKC, no zero-width characters, one space between words, paragraphs split by one blank line.

    Built-in noise (date stamps, gov banners, feedback widgets, archive notices, form tokens) and
    then the `ignore` patterns are removed line by line. A line emptied that way disappears without
    leaving a paragraph break, so a stamp added or removed does not re-shape the paragraphs.
    """
    text = unicodedata.normalize("NFKC", text)
    if _ZERO_WIDTH.search(text):
        text = _ZERO_WIDTH.sub("", text)
    if any(c in text for c in _LINE_BREAK_CHARS):            # str `in` is a fast scan; the regex is not
        text = _LINE_BREAKS.sub("\n", text)
    low = text.lower()
    words = [w for w in _NOISE_WORDS if w in low]           # usually none or one ("form" in "information")
    # lower() is not the patterns' (?i) for the Turkish dotted/dotless i: no screening then
    screen = "\u0130" not in text and "\u0131" not in text
    out: list[str] = []
    after_widget = False
    for raw in text.split("\n"):
        line = " ".join(raw.split())          # str.split() and the regex \s agree on what is a space
        if not line:
            if out and out[-1] != "":
                out.append("")
            continue
        if after_widget and _WIDGET_TAIL.match(line):
            continue
        after_widget = bool(_WIDGET_HEAD.match(line))
        patterns = (*_NOISE, *ignore) if not screen or (words and _may_be_noise(line, words)) else ignore
        if patterns:
            before = line
            for pattern in patterns:
                line = pattern.sub("", line)
            if line != before:
                line = " ".join(line.split())
        if line:
            out.append(line)
    return "\n".join(out).strip("\n")


# strip_tracking lives in spiders/urls.py (spiders key items by it); it is not re-exported here:
# importing spiders/ loads every source kind (feedparser, pydantic, ~25 MB), which the extraction
# worker (monitor/offload.py) has no use for.


# ---------------------------------------------------------------------------- HTML

_DROP_ALWAYS = ("script", "style", "noscript", "template", "svg", "iframe", "object", "canvas")
_DROP_FALLBACK = _DROP_ALWAYS + ("nav", "header", "footer", "aside", "form", "button", "select")
# Inside a page's <main>: what is not the article (its own header, with the title, stays).
_DROP_IN_MAIN = _DROP_ALWAYS + ("nav", "aside", "footer", "form", "button", "select", "dialog")
MIN_MAIN_TEXT = 200   # characters; less than that in <main> (a JS shell, a stub): ask trafilatura
_BLOCKS = frozenset("""address article aside blockquote body caption dd details dialog div dl dt
    fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section
    summary table tbody thead tfoot tr ul center""".split())
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.I)


_PARSERS = threading.local()


def _html_parser() -> lxml.html.HTMLParser:
    """libxml2 silently drops a text node over 10 MB unless huge_tree is on; the response is already
    capped by fetch.max_bytes, so a giant paragraph is read rather than made invisible. One parser
    per thread: lxml parsers are not shared between threads."""
    parser = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = lxml.html.HTMLParser(huge_tree=True)
    return parser


def _parse_html(html: str) -> lxml.html.HtmlElement | None:
    # lxml refuses a str that carries an encoding declaration; the text is decoded already.
    html = _XML_DECL.sub("", html, count=1)
    if not html.strip():
        return None
    try:
        tree = lxml.html.document_fromstring(html, parser=_html_parser())
    except (lxml.etree.ParserError, ValueError):
        return None
    # iterwalk skips comments, and with them their tail text: merge those tails into the parent.
    lxml.etree.strip_tags(tree, lxml.etree.Comment, lxml.etree.ProcessingInstruction)
    return tree


def _title_of(tree: lxml.html.HtmlElement) -> str | None:
    for path in (".//title", ".//h1"):
        el = tree.find(path)
        if el is not None:
            title = " ".join(el.text_content().split())
            if title:
                return title
    return None


def html_title(html: str) -> str | None:
    """The page's <title> (else its first <h1>), whitespace-normalised; None when there is none."""
    tree = _parse_html(html)
    return _title_of(tree) if tree is not None else None


def _block_text(el: lxml.html.HtmlElement, drop: Sequence[str]) -> str:
    """Text of `el` with block elements as paragraph breaks, iteratively (broken markup nests deep)."""
    parts: list[str] = []
    skipping = 0                     # depth inside a dropped element (script, nav...)
    for event, node in lxml.etree.iterwalk(el, events=("start", "end")):
        tag = node.tag if isinstance(node.tag, str) else None   # entities have no str tag
        own_tail = node.tail if node is not el else None
        if event == "start":
            if skipping:
                skipping += tag is not None
            elif tag in drop:
                skipping = 1
            elif tag is not None:
                if tag in _BLOCKS:
                    parts.append("\n\n")
                elif tag == "br":
                    parts.append("\n")
                elif tag in ("td", "th"):
                    parts.append(" ")
                if node.text:
                    parts.append(node.text)
            continue
        if skipping:
            skipping -= tag is not None
            if not skipping and own_tail:   # text after a dropped element is still visible
                parts.append(own_tail)
            continue
        if tag in _BLOCKS:
            parts.append("\n\n")
        if own_tail:
            parts.append(own_tail)
    return "".join(parts)


_LAYOUT_CELL_CONTENT = "p|div|table|ul|ol|h1|h2|h3|h4|h5|h6|form|blockquote".split("|")


def _unwrap_layout_tables(tree: lxml.html.HtmlElement) -> None:
    """Turn tables used for page layout (cells holding paragraphs or other tables) into divs.

    trafilatura renders every table as "| cell | cell |" rows, so a legacy page laid out in one
    big table became a single row holding the navigation and the article together.
    """
    cell_query = " or ".join(f"self::{t}" for t in _LAYOUT_CELL_CONTENT)
    for table in tree.xpath(f"//table[.//td/*[{cell_query}] or .//th/*[{cell_query}]]"):
        for el in table.iter("table", "thead", "tbody", "tfoot", "tr", "td", "th"):
            el.tag = "div"


def _mains(tree: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    """The page's <main> elements, else its role="main" ones."""
    return tree.xpath("//main") or tree.xpath("//*[@role='main']")


def _single_main(tree: lxml.html.HtmlElement) -> lxml.html.HtmlElement | None:
    """The page's one main region; None when it has none or several."""
    found = _mains(tree)
    return found[0] if len(found) == 1 else None


def _fallback_region(tree: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    found = _mains(tree)
    if found:
        return found[:1]
    articles = tree.xpath("//article[not(ancestor::article)]")
    if articles:
        return articles
    body = tree.find(".//body")
    return [body if body is not None else tree]


def _extract_html(html: str, *, url: str, select: str | None, ignore: Sequence[re.Pattern]) -> Extracted:
    tree = _parse_html(html)
    if tree is None:
        raise BlindError("no text: the page is empty", url=url)
    title = _title_of(tree)
    if select:
        try:
            matched = tree.cssselect(select)
        except SelectorError as e:
            raise ExtractError(f"bad selector '{select}': {e}", url=url) from e
        if not matched:
            raise BlindError(f"selector '{select}' matched nothing", url=url)
        # Nested matches ("div" matching a div inside a div) would repeat text: keep the outermost.
        ids = set(map(id, matched))
        outer = [m for m in matched if not any(id(a) in ids for a in m.iterancestors())]
        text = normalise("\n\n".join(_block_text(m, _DROP_ALWAYS) for m in outer), ignore)
        if not text:
            raise BlindError(f"selector '{select}' matched only elements without text", url=url)
        return Extracted(text=text, title=title, kind="html")
    main = _single_main(tree)
    if main is not None:
        # The page marks its main content (as government CMSs do): its text, without the
        # navigation, asides and forms inside it, is the article. ~30x cheaper than trafilatura,
        # which stays for pages that do not say where their content is.
        text = normalise(_block_text(main, _DROP_IN_MAIN), ignore)
        if len(text) >= MIN_MAIN_TEXT:
            return Extracted(text=text, title=title, kind="html")
    # favor_precision keeps link lists and "Last Reviewed" widgets out of the text (stack-notes §6).
    # deduplicate=False: trafilatura's dedup cache spans calls, so the 4th extraction of the same
    # page came out shorter than the first three, a false change in a long-running process.
    import trafilatura  # here: its import costs ~0.1 s a process, and most pages never need it

    raw = None
    cleaned = copy.deepcopy(tree)                            # trafilatura prunes the tree it gets
    _unwrap_layout_tables(cleaned)
    try:
        raw = trafilatura.extract(
            cleaned, url=url or None, favor_precision=True, deduplicate=False,
            include_comments=False, include_tables=True, output_format="txt",
        )
    except Exception as e:                                  # trafilatura on hostile markup: use lxml
        logger.debug("trafilatura failed on %s: %s", url, e)
    text = ""
    if raw:
        # trafilatura puts one paragraph (or table row, or list item) per line.
        text = normalise("\n\n".join(raw.split("\n")), ignore)
    if not text:
        region = _fallback_region(tree)
        text = normalise("\n\n".join(_block_text(r, _DROP_FALLBACK) for r in region), ignore)
    if not text:
        raise BlindError("no text: the page's main text is empty (a script may write it)", url=url)
    return Extracted(text=text, title=title, kind="html")


# ---------------------------------------------------------------------------- PDF

_DIGITS = re.compile(r"\d+")
_EDGE_LINES = 3          # running headers and footers sit in the first and last lines of a page


def _line_key(line: str) -> str:
    """A short line with its numbers blanked ("Page 3 of 9" and "Page 4 of 9" are one footer);
    longer lines must repeat exactly, so numbered content ("Section 2 finding...") is kept."""
    blanked = _DIGITS.sub("#", line)
    return blanked if len(blanked.replace("#", "")) <= 30 else line


def _repeating_lines(pages: list[list[str]]) -> set[str]:
    """Keys of header/footer lines that appear on most pages ("Page 3 of 9" counts as one line)."""
    if len(pages) < 2:
        return set()
    seen: Counter[str] = Counter()
    for lines in pages:
        edges = lines[:_EDGE_LINES] + lines[-_EDGE_LINES:]
        seen.update({_line_key(ln) for ln in edges if len(ln) <= 150})
    threshold = max(2, (len(pages) * 6 + 9) // 10)        # on at least 60% of pages
    return {key for key, n in seen.items() if n >= threshold}


def _extract_pdf(body: bytes, *, url: str, ignore: Sequence[re.Pattern], ocr=None) -> Extracted:
    from pypdf import PdfReader                             # imported here: only PDF sources pay for it
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(body))
        if reader.is_encrypted:
            # Many government PDFs are "encrypted" with an empty user password only to restrict
            # printing; those open with "". A real password cannot be guessed.
            try:
                if not reader.decrypt(""):
                    raise ExtractError("PDF is encrypted with a password", url=url)
            except (FileNotDecryptedError, NotImplementedError) as e:
                raise ExtractError(f"PDF is encrypted: {e}", url=url) from e
        n_pages = len(reader.pages)
    except ExtractError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, AssertionError) as e:
        raise ExtractError(f"corrupt PDF: {e}", url=url) from e
    except Exception as e:                                  # pypdf raises many kinds on broken files
        raise ExtractError(f"corrupt PDF: {type(e).__name__}: {e}", url=url) from e
    if n_pages > MAX_PDF_PAGES:
        logger.warning("%s: PDF has %d pages; extracting the first %d", url, n_pages, MAX_PDF_PAGES)
    pages: list[list[str]] = []
    failed = 0
    for i in range(min(n_pages, MAX_PDF_PAGES)):
        try:
            page_text = reader.pages[i].extract_text() or ""
        except Exception as e:                              # one bad page must not lose the others
            failed += 1
            logger.warning("%s: PDF page %d unreadable: %s", url, i + 1, e)
            page_text = ""
        lines = [" ".join(ln.split()) for ln in page_text.splitlines()]
        pages.append([ln for ln in lines if ln])
    if failed and failed == len(pages):
        raise ExtractError(f"corrupt PDF: none of its {n_pages} pages could be read", url=url)
    title = None
    try:
        meta = reader.metadata
        if meta is not None and meta.title:
            title = " ".join(str(meta.title).split()) or None
            if title and title.lower() in ("untitled", "untitled document"):   # generator defaults
                title = None
    except Exception:                                       # broken metadata is not worth failing for
        pass
    if not any(pages):                                      # a scan: OCR when Tesseract is installed
        from monitor.ocr import read_scan

        scan = read_scan(body, url=url, settings=ocr)        # its pages ([] without OCR) and its note
        repeating = _repeating_lines([[ln for ln in p if ln] for p in scan.pages])
        text = normalise("\n\n".join("\n".join(ln for ln in p if not ln or _line_key(ln) not in repeating)
                                     for p in scan.pages), ignore)
        return Extracted(text=text, title=title, kind="pdf", no_text_layer=True, pages=n_pages,
                         ocr_confidence=scan.confidence if text else None, note=scan.note if text else scan.empty_note)
    repeating = _repeating_lines(pages)
    kept = ["\n".join(ln for ln in lines if _line_key(ln) not in repeating) for lines in pages]
    text = normalise("\n\n".join(k for k in kept if k), ignore)
    return Extracted(text=text, title=title, kind="pdf", pages=n_pages)


# ---------------------------------------------------------------------------- entry point


def extract(body: bytes, *, content_type: str | None = None, url: str = "", select: str | None = None,
            ignore: Sequence[re.Pattern] = (), encoding: str | None = None, ocr=None) -> Extracted:
    """Main text of `body`; `select` (CSS) limits an HTML page to a region, `ignore` drops noise;
    `ocr` (config.OcrSettings, default limits when None) bounds the OCR of a scanned PDF."""
    if not body or not body.strip():
        raise ExtractError("empty body", url=url)
    kind = detect_kind(body, content_type)
    if kind == "pdf":
        return _extract_pdf(body, url=url, ignore=ignore, ocr=ocr)
    if kind == "binary":
        shown = _media_type(content_type) or "no content type"
        raise ExtractError(f"body is binary, not text or HTML ({shown})", url=url)
    if kind == "feed":
        raise ExtractError("body is an RSS/Atom feed; watch it as kind 'feed'", url=url)
    text = _decode(body, content_type, encoding)
    if kind == "html":
        return _extract_html(text, url=url, select=select, ignore=ignore)
    if select:
        raise ExtractError(f"selector '{select}' needs an HTML page, got {kind}", url=url)
    normalised = normalise(text, ignore)
    if not normalised:
        raise ExtractError("no text", url=url)
    return Extracted(text=normalised, title=None, kind="text")
