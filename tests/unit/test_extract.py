"""Extraction and normalisation: fixture page pairs, selectors, charsets, PDFs, junk, URLs."""
from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest

from monitor.diff import diff
from monitor.extract import (
    Extracted, compile_ignore, detect_kind, extract, html_title, normalise,
)
from spiders.urls import strip_tracking
from state.errors import ExtractError

PAGES = Path(__file__).resolve().parents[1] / "data" / "pages"

# case -> None when before and after must extract to the same text, else a phrase of the change.
PAIRS = {
    "dhs-main-noise": None,           # shuffled nav, rotating featured stories, date stamps, JS notice
    "dhs-main-change": "substantiated allegations of participation in extremist groups",
    "legacy-noise": None,             # no <main>, windows-1252, related links, stamp and widget variants
    "legacy-change": "fail two consecutive inspections",
    "listing-new-item": "DHS Updates Definition of Domestic Violent Extremism",
    "listing-noise": None,
    "table-change": "1,311",
    "table-stamp": None,
    "broken-markup": "Beginning in 2025",
    "footer-stamp-variant": None,     # "Last Modified: 2025-03-03 10:22 AM EST" style stamps
}
NOISE_PHRASES = ["Last Reviewed", "Last Modified", "last updated", "official website", "Here's how you know",
                 "helpful", "enable JavaScript", "Featured", "Story ", "Privacy", "form-", "Archived"]


def _pair(case: str) -> tuple[Extracted, Extracted]:
    before = (PAGES / f"{case}.before.html").read_bytes()
    after = (PAGES / f"{case}.after.html").read_bytes()
    return (extract(before, content_type="text/html", url=f"https://example.gov/{case}"),
            extract(after, content_type="text/html", url=f"https://example.gov/{case}"))


def test_every_fixture_pair_is_listed():
    cases = {p.name.split(".")[0] for p in PAGES.glob("*.html")}
    assert cases == set(PAIRS)
    for case in cases:
        assert (PAGES / f"{case}.before.html").exists() and (PAGES / f"{case}.after.html").exists()


@pytest.mark.parametrize("case,change", list(PAIRS.items()), ids=list(PAIRS))
def test_fixture_pairs(case, change):
    before, after = _pair(case)
    assert before.kind == after.kind == "html"
    assert before.text and after.text
    d = diff(before.text, after.text)
    if change is None:
        assert before.text == after.text
        assert not d.changed
    else:
        assert d.changed
        assert change in d.added_text
        assert change not in before.text
    for phrase in NOISE_PHRASES:
        assert phrase.lower() not in before.text.lower(), f"noise {phrase!r} leaked"
        assert phrase.lower() not in after.text.lower(), f"noise {phrase!r} leaked"


def test_dhs_page_keeps_content_paragraphs_and_heading():
    before, _ = _pair("dhs-main-noise")
    assert before.title == "Office of Professional Responsibility | ICE"
    paras = before.text.split("\n\n")
    assert paras[0] == "Office of Professional Responsibility"
    assert any(p.startswith("The Office of Professional Responsibility (OPR) investigates") for p in paras)
    assert "Joint Intake Center" in before.text
    assert not before.text.endswith(" ") and "\n\n\n" not in before.text


def test_legacy_page_decodes_declared_windows_1252():
    before, _ = _pair("legacy-noise")
    assert "Detention Standards Unit \u2013 responses" in before.text     # 0x96 is an en dash in cp1252
    assert "Related:" not in before.text                                   # layout-table nav cell left out


def test_table_rows_survive():
    before, _ = _pair("table-stamp")
    assert "| Substantiated | 412 | 18% |" in before.text.split("\n\n")


def test_repeated_extraction_is_stable():
    # trafilatura's deduplicate cache changed the 4th extraction of the same page (stack-notes §6).
    body = (PAGES / "dhs-main-change.after.html").read_bytes()
    texts = {extract(body, content_type="text/html").text for _ in range(6)}
    assert len(texts) == 1


# ----------------------------------------------------------------------------- selectors

SELECT_PAGE = b"""<html><head><title>Sel</title></head><body>
<div id="nav">Home About</div>
<div class="item"><p>First item text.</p><script>var x = 1;</script></div>
<section><div class="item">Second item text.</div></section>
<div class="outer item"><div class="item">Nested item text.</div></div>
<p id="empty"> </p>
</body></html>"""

SELECTS = [
    ("class-in-document-order", ".item", "First item text.\n\nSecond item text.\n\nNested item text."),
    ("id", "#nav", "Home About"),
    ("descendant", "section .item", "Second item text."),
    ("tag-and-attribute", "div[class='outer item']", "Nested item text."),
]


@pytest.mark.parametrize("select,expected", [s[1:] for s in SELECTS], ids=[s[0] for s in SELECTS])
def test_select(select, expected):
    got = extract(SELECT_PAGE, content_type="text/html", select=select)
    assert got.text == expected
    assert got.title == "Sel"


@pytest.mark.parametrize("select,message", [
    ("#missing", "selector '#missing' matched nothing"),
    ("#empty", "selector '#empty' matched only elements without text"),
], ids=["no-match", "only-empty"])
def test_select_errors(select, message):
    with pytest.raises(ExtractError) as ei:
        extract(SELECT_PAGE, content_type="text/html", select=select, url="https://example.gov/x")
    assert str(ei.value) == message
    assert ei.value.url == "https://example.gov/x"


def test_bad_selector_syntax_is_a_readable_error():
    with pytest.raises(ExtractError, match=r"^bad selector 'div\[': "):
        extract(SELECT_PAGE, content_type="text/html", select="div[")


def test_select_on_plain_text_is_an_error():
    with pytest.raises(ExtractError, match="needs an HTML page"):
        extract(b"just text", content_type="text/plain", select="main")


def test_select_keeps_paragraphs_and_line_breaks():
    page = b"<html><body><main><h2>Title</h2><p>One<br>two</p><ul><li>a</li><li>b</li></ul></main></body></html>"
    assert extract(page, select="main").text == "Title\n\nOne\ntwo\n\na\n\nb"


def test_ignore_patterns_apply_to_selected_text():
    page = b"<html><body><main><p>Keep this.</p><p>Visitors today: 4,512</p><p>Session 8f3a keep</p></main></body></html>"
    ignore = compile_ignore([r"^Visitors today: [\d,]+$", r"Session \w+ "])
    assert extract(page, select="main", ignore=ignore).text == "Keep this.\n\nkeep"


# ----------------------------------------------------------------------------- HTML fallbacks and errors

def test_lxml_fallback_when_trafilatura_finds_nothing():
    # A pure link list: trafilatura (favor_precision) returns nothing; the lxml fallback takes <main>.
    page = (b"<html><body><nav>Site menu</nav><main><ul><li><a href=/a>Report one</a></li>"
            b"<li><a href=/b>Report two</a></li></ul></main><footer>Contact</footer></body></html>")
    assert extract(page, content_type="text/html").text == "Report one\n\nReport two"


@pytest.mark.parametrize("body", [
    b"<html><body><script>var a = 1;</script><style>p{}</style></body></html>",
    b"<html><head><title>Only a title</title></head><body>  </body></html>",
    b"<!-- nothing -->",
], ids=["only-script", "only-title", "only-comment"])
def test_page_without_text(body):
    with pytest.raises(ExtractError, match="^no text"):
        extract(body, content_type="text/html")


@pytest.mark.parametrize("body", [b"", b"   \n\t  "], ids=["empty", "whitespace"])
def test_empty_body(body):
    with pytest.raises(ExtractError, match="^empty body$"):
        extract(body, content_type="text/html")


def test_broken_markup_and_bad_bytes_do_not_crash():
    body = b"<html><body><div><p>Caf\xe9 \xff\xfe society</i></b><table><td>cell<div><p>More text here"
    got = extract(body, content_type="text/html")
    assert "\ufffd" in got.text and "society" in got.text and "More text here" in got.text


@pytest.mark.parametrize("body,ctype,encoding,expected", [
    ("Caf\u00e9 \u2013 r\u00e9sum\u00e9".encode("cp1252"), "text/plain; charset=windows-1252", None, "Caf\u00e9 \u2013 r\u00e9sum\u00e9"),
    ("Caf\u00e9 \u2019quoted\u2019".encode("cp1252"), "text/plain; charset=ISO-8859-1", None, "Caf\u00e9 \u2019quoted\u2019"),
    ("Caf\u00e9".encode("utf-8"), "text/plain", None, "Caf\u00e9"),
    ("Caf\u00e9".encode("latin-1"), "text/plain", "latin-1", "Caf\u00e9"),
    ("Caf\u00e9".encode("utf-8"), "text/plain; charset=no-such-charset", None, "Caf\u00e9"),
    ("\ufeffCaf\u00e9".encode("utf-8"), "text/plain", None, "Caf\u00e9"),
    ("Caf\u00e9 text".encode("utf-16"), None, None, "Caf\u00e9 text"),
], ids=["cp1252", "latin1-label-means-cp1252", "utf8-default", "encoding-arg", "unknown-charset", "utf8-bom", "utf16-bom"])
def test_text_decoding(body, ctype, encoding, expected):
    got = extract(body, content_type=ctype, encoding=encoding)
    assert (got.text, got.kind, got.title) == (expected, "text", None)


def test_meta_charset_is_honoured():
    body = '<html><head><meta charset="windows-1252"><title>R\u00e9sum\u00e9</title></head><body><main><p>Na\u00efve caf\u00e9 policy text.</p></main></body></html>'.encode("cp1252")
    got = extract(body, content_type="text/html")
    assert got.title == "R\u00e9sum\u00e9"
    assert "Na\u00efve caf\u00e9" in got.text


def test_binary_junk_is_refused():
    junk = bytes((i * 37 + 11) % 256 for i in range(4096))
    with pytest.raises(ExtractError, match=r"^body is binary, not text or HTML \(application/octet-stream\)$"):
        extract(junk, content_type="application/octet-stream")
    with pytest.raises(ExtractError, match="binary"):
        extract(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", content_type=None)


def test_feed_is_refused_with_a_hint():
    with pytest.raises(ExtractError, match="kind 'feed'"):
        extract(b'<?xml version="1.0"?><rss version="2.0"><channel></channel></rss>', content_type="application/rss+xml")


KINDS = [
    ("html-type", b"<p>x</p>", "text/html; charset=utf-8", "html"),
    ("html-sniffed", b"<!DOCTYPE html><html><body>x</body></html>", None, "html"),
    ("xhtml", b"<html xmlns='http://www.w3.org/1999/xhtml'/>", "application/xhtml+xml", "html"),
    ("pdf-type", b"not really", "application/pdf", "pdf"),
    ("pdf-as-html", b"%PDF-1.4\n...", "text/html", "pdf"),
    ("pdf-as-octet", b"\n\n%PDF-1.7\n", "application/octet-stream", "pdf"),
    ("rss", b"<?xml version='1.0'?><rss version='2.0'>", "application/xml", "feed"),
    ("atom", b"<feed xmlns='http://www.w3.org/2005/Atom'>", "application/atom+xml", "feed"),
    ("json", b'{"results": []}', "application/json", "json"),
    ("json-sniffed", b'[{"a": 1}]', None, "json"),
    ("plain", b"Plain words.", "text/plain", "text"),
    ("plain-untyped", b"Plain words.", None, "text"),
    ("nul-bytes", b"abc\x00def", "text/plain", "binary"),
    ("invalid-utf8-undeclared", b"abc \xff\xfe\xfd def", None, "binary"),
    ("invalid-utf8-declared", b"abc \xe9 def", "text/plain; charset=latin-1", "text"),
    ("image", b"GIF89a", "image/gif", "binary"),
    ("control-chars", bytes(range(1, 32)) * 20, None, "binary"),
]


@pytest.mark.parametrize("body,ctype,kind", [k[1:] for k in KINDS], ids=[k[0] for k in KINDS])
def test_detect_kind(body, ctype, kind):
    assert detect_kind(body, ctype) == kind


# ----------------------------------------------------------------------------- normalise

NORMALISE = [
    ("nbsp-and-zero-width", "Homeland\u00a0Security\u200b is\u202fhere\ufeff.", "Homeland Security is here."),
    ("whitespace", "  a \t b  \r\n\r\n\r\n\n c\n", "a b\n\nc"),
    ("nfkc", "\ufb01le No\u2460", "file No1"),
    ("last-reviewed", "Text.\nLast Reviewed: March 3, 2025\nMore.", "Text.\nMore."),
    ("last-updated-inline", "Policy text. Last Updated: 04/05/2025", "Policy text."),
    ("page-last-updated-inline", "Share this page. Page last updated June 2, 2025", "Share this page."),
    ("reviewed-updated-slash", "Last Reviewed/Updated: 01/12/2024", ""),
    ("last-modified-iso-time", "Last Modified: 2025-03-03 10:22 AM EST", ""),
    ("page-last-updated", "Page last updated\nBody.", "Body."),
    ("page-last-updated-date", "Page last updated on 12 May 2025", ""),
    ("archived", "Archived Content\n\nIn an effort to keep DHS.gov current, the archive contains outdated "
                 "information that may not reflect current policy or programs.\n\nReal text.", "Real text."),
    ("helpful-widget", "Body.\nWas this page helpful?\nYes\nNo\n\nNext.", "Body.\n\nNext."),
    ("helpful-inline", "Was this page helpful? Yes No", ""),
    ("gov-banner", "An official website of the United States government Here\u2019s how you know\n"
                   "Official websites use .gov\nA .gov website belongs to an official government "
                   "organization in the United States.\nSecure .gov websites use HTTPS\nA lock ( ) or https:// "
                   "means you've safely connected to the .gov website. Share sensitive information only "
                   "on official, secure websites.\n\nContent.", "Content."),
    ("javascript-notice", "Sorry, you need to enable JavaScript to visit this website.\nContent.", "Content."),
    ("form-token", "form_build_id form-aB3dE5fG7hI9jK1lM3nO5pQ7\nContent.", "Content."),
    ("drupal-build-id", "form-x7Yk2PqL9mN4vB8cD1eF6gH3jK5lM0nO2pQ4rS6tU8w", ""),
    ("last-updated-in-prose-kept", "The rule was last updated in 2019 to add categories.",
     "The rule was last updated in 2019 to add categories."),
    ("last-reviewed-in-prose-kept", "Cases are last reviewed on May 1, 2025 by the board.",
     "Cases are last reviewed on May 1, 2025 by the board."),
    ("archived-in-prose-kept", "Requests for archived content go to FOIA.", "Requests for archived content go to FOIA."),
    ("form-word-kept", "Use the form-based-classification-procedures page.",
     "Use the form-based-classification-procedures page."),
    ("yes-no-outside-widget-kept", "Is it open?\nYes\n\nNo", "Is it open?\nYes\n\nNo"),
    ("stamp-line-does-not-split-paragraph", "First line\nLast Reviewed: May 1, 2025\nsecond line",
     "First line\nsecond line"),
    ("banner-with-double-space", "Here's how  you know\nThe rule text.", "The rule text."),
    ("banner-with-tab", "Here\u2019s how\tyou know\nThe rule text.", "The rule text."),
    ("banner-with-dotted-capital-i", "AN OFF\u0130C\u0130AL WEBS\u0130TE OF THE UN\u0130TED STATES GOVERNMENT\nThe rule text.",
     "The rule text."),
]


@pytest.mark.parametrize("text,expected", [n[1:] for n in NORMALISE], ids=[n[0] for n in NORMALISE])
def test_normalise(text, expected):
    assert normalise(text) == expected


def test_date_stamp_only_change_normalises_equal():
    a = "Intro.\n\nBody text here.\n\nLast Reviewed: January 2, 2024"
    b = "Intro.\n\n  Body text\u00a0here.\n\n\nLast Reviewed: Aug. 30, 2025\n"
    assert normalise(a) == normalise(b) == "Intro.\n\nBody text here."


def test_normalise_with_ignore():
    ignore = compile_ignore([r"Visitors: \d+", r"^Build \w+$"])
    assert normalise("Hello. Visitors: 12 today\nBuild abc123\nEnd.", ignore) == "Hello. today\nEnd."


def test_compile_ignore():
    assert [p.pattern for p in compile_ignore(["a+", "Last (Reviewed|Updated):.*"])] == ["a+", "Last (Reviewed|Updated):.*"]
    with pytest.raises(ValueError) as ei:
        compile_ignore(["ok", "Last (Reviewed"])
    assert str(ei.value) == "bad pattern 'Last (Reviewed': missing ), unterminated subpattern at position 5"


# ----------------------------------------------------------------------------- URLs and titles

TRACKING = [
    ("utm", "https://www.dhs.gov/news?utm_source=x&utm_medium=email&id=7", "https://www.dhs.gov/news?id=7"),
    ("click-ids", "https://a.gov/p?fbclid=1&gclid=2&page=3&msclkid=4", "https://a.gov/p?page=3"),
    ("mailchimp", "https://a.gov/p?mc_cid=abc&mc_eid=def", "https://a.gov/p"),
    ("ga", "https://a.gov/p?_ga=2.1.2&q=opr", "https://a.gov/p?q=opr"),
    ("order-and-encoding-kept", "https://a.gov/s?b=2&UTM_Campaign=z&a=x%20y&c=", "https://a.gov/s?b=2&a=x%20y&c="),
    ("fragment", "https://a.gov/p?id=1#section-2", "https://a.gov/p?id=1"),
    ("nothing-to-strip", "https://a.gov/reports/2025.pdf", "https://a.gov/reports/2025.pdf"),
    ("similar-name-kept", "https://a.gov/p?utmost=1&ga=2", "https://a.gov/p?utmost=1&ga=2"),
]


@pytest.mark.parametrize("url,expected", [t[1:] for t in TRACKING], ids=[t[0] for t in TRACKING])
def test_strip_tracking(url, expected):
    assert strip_tracking(url) == expected


@pytest.mark.parametrize("html,title", [
    ("<html><head><title>  ICE  |\n OPR </title></head><body></body></html>", "ICE | OPR"),
    ("<html><body><h1>Heading <b>only</b></h1></body></html>", "Heading only"),
    ("<html><head><title> </title></head><body><p>x</p></body></html>", None),
    ("", None),
    ('<?xml version="1.0" encoding="utf-8"?><html><head><title>XHTML</title></head></html>', "XHTML"),
], ids=["title", "h1-fallback", "blank", "empty", "xml-declaration"])
def test_html_title(html, title):
    assert html_title(html) == title


# ----------------------------------------------------------------------------- PDF

def _pdf(pages: list[list[str]], *, header: str | None = None, footer: bool = False,
          encrypt: str | None = None, owner_only: bool = False, title: str | None = None) -> bytes:
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas
    from reportlab.lib import pdfencrypt

    buf = io.BytesIO()
    enc = None
    if encrypt is not None or owner_only:
        enc = pdfencrypt.StandardEncryption(userPassword=encrypt or "", ownerPassword="owner-secret", canPrint=0)
    c = canvas.Canvas(buf, pagesize=letter, encrypt=enc)
    if title:
        c.setTitle(title)
    for n, lines in enumerate(pages, 1):
        if header:
            c.drawString(72, 750, header)
        y = 700
        for line in lines:
            c.drawString(72, y, line)
            y -= 16
        if footer:
            c.drawString(280, 40, f"Page {n} of {len(pages)}")
        c.showPage()
    c.save()
    return buf.getvalue()


def test_pdf_text():
    body = _pdf([["The Office of Inspector General reviewed 120 cases.", "Eleven were substantiated."]],
                title="OIG-25-01")
    got = extract(body, content_type="application/pdf")
    assert got == Extracted(text="The Office of Inspector General reviewed 120 cases.\nEleven were substantiated.",
                            title="OIG-25-01", kind="pdf", no_text_layer=False, pages=1)


def test_pdf_running_header_and_page_footer_are_dropped():
    pages = [[f"Section {n} finding: the component closed {n * 10} cases."] for n in range(1, 5)]
    got = extract(_pdf(pages, header="DHS OIG Report OIG-25-17 | For Official Use", footer=True))
    assert got.pages == 4
    assert "For Official Use" not in got.text
    assert not re.search(r"Page \d of 4", got.text)
    assert got.text.split("\n\n") == [p[0] for p in pages]


def test_pdf_two_versions_diff_to_the_added_sentence():
    v1 = [["First page text is here."], ["Second page text is here."]]
    v2 = [["First page text is here."], ["Second page text is here.", "A new paragraph was added."]]
    a = extract(_pdf(v1, header="Annual Report", footer=True))
    b = extract(_pdf(v2, header="Annual Report", footer=True))
    d = diff(a.text, b.text)
    assert d.added == ("A new paragraph was added.",) and d.removed == ()


def test_pdf_without_text_layer():
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.rect(100, 100, 300, 400, fill=1)      # a scanned page: marks but no text
    c.showPage()
    c.save()
    from monitor.config import OcrSettings

    got = extract(buf.getvalue(), content_type="application/pdf", ocr=OcrSettings(enabled=False))   # OCR: test_ocr.py
    assert got == Extracted(text="", title=None, kind="pdf", no_text_layer=True, pages=1,
                            note="PDF without a text layer; OCR is turned off (ocr.enabled: false)")


def test_pdf_served_as_html():
    got = extract(_pdf([["Served with the wrong type."]]), content_type="text/html; charset=utf-8")
    assert (got.kind, got.text) == ("pdf", "Served with the wrong type.")


def test_pdf_with_owner_password_only_opens():
    got = extract(_pdf([["Printing is restricted but reading is not."]], owner_only=True))
    assert got.text == "Printing is restricted but reading is not."


def test_pdf_with_user_password_is_refused():
    with pytest.raises(ExtractError, match="^PDF is encrypted"):
        extract(_pdf([["Secret."]], encrypt="user-pw"), url="https://example.gov/s.pdf")


@pytest.mark.parametrize("body", [
    b"%PDF-1.4\n1 0 obj <</Type /Catalog>> endobj\ntrailer <<>>\n%%EOF",
    b"%PDF-1.7\n" + bytes(range(256)) * 8,
    b"%PDF-",
], ids=["no-pages", "garbage", "magic-only"])
def test_corrupt_pdf(body):
    with pytest.raises(ExtractError, match="^corrupt PDF"):
        extract(body, content_type="application/pdf")


def test_truncated_pdf_is_refused_or_partial():
    full = _pdf([["Alpha page."], ["Beta page."]])
    try:
        got = extract(full[: len(full) // 2], content_type="application/pdf")
    except ExtractError as e:
        assert str(e).startswith("corrupt PDF")
    else:
        assert got.kind == "pdf"      # pypdf may recover the pages it can reach


# ----------------------------------------------------------------------------- speed

def test_extraction_speed_per_100kb_page():
    para = ("<p>The Office of Professional Responsibility reviewed allegation {n} against an employee "
            "and referred it to the Office of Inspector General for investigation.</p>")
    body = ("<html><head><title>Big</title></head><body><nav>Menu</nav><main>"
            + "".join(para.format(n=n) for n in range(700)) + "</main></body></html>").encode()
    assert len(body) > 100_000
    started = time.perf_counter()
    got = extract(body, content_type="text/html")
    elapsed = time.perf_counter() - started
    assert got.text.count("\n\n") == 699
    assert elapsed < 20.0, f"{elapsed:.2f}s for a 100 KB page"  # bounded, not a speed target (~0.1 s here)


# ----------------------------------------------------------------------------- <main> fast path

ARTICLE = ("<p>The Office of Professional Responsibility closed the investigation into the employee and "
           "substantiated the allegation of membership in an extremist group; the employee was removed.</p>"
           "<p>The report was referred to the Office of Inspector General for review in March 2025.</p>")


def _page(main: str, *, extra: str = "") -> bytes:
    return (f"<html><head><title>T</title><script>var x = 1;</script></head><body>"
            f"<header><nav><a href='/'>Home</a> <a href='/news'>News</a></nav></header>{extra}"
            f"{main}<footer><p>Privacy policy. Contact us. Page last updated 2 May 2025</p></footer>"
            f"</body></html>").encode()


def test_single_main_is_read_without_its_nav_aside_form_and_footer(monkeypatch):
    import monitor.extract as extract_mod

    # The fast path must not reach trafilatura at all: make it fail loudly if it does.
    monkeypatch.setitem(__import__("sys").modules, "trafilatura", None)
    main = (f"<main><article><header><h1>OPR closes case 2025-17</h1></header>{ARTICLE}"
            "<nav class='breadcrumb'><a href='/a'>Breadcrumb link</a></nav>"
            "<aside><h2>Related content</h2><a href='/x'>Rotating related story</a></aside>"
            "<form><button>Subscribe</button><select><option>Weekly</option></select></form>"
            "<footer>Share this page: Facebook Twitter</footer></article></main>")
    got = extract_mod.extract(_page(main), content_type="text/html", url="https://www.ice.gov/x")
    assert got.text.startswith("OPR closes case 2025-17\n\nThe Office of Professional Responsibility closed")
    assert "referred to the Office of Inspector General" in got.text
    for noise in ("Breadcrumb", "Related", "Rotating", "Subscribe", "Weekly", "Share this page", "Home", "Privacy", "var x"):
        assert noise not in got.text


def test_role_main_counts_as_main():
    got = extract(_page(f"<div role='main'>{ARTICLE}</div>"), content_type="text/html")
    assert got.text.startswith("The Office of Professional Responsibility closed") and "Home" not in got.text


@pytest.mark.parametrize("main", [
    f"<main>{ARTICLE}</main><main><p>A second main region makes the page ambiguous.</p></main>",
    "<main><p>Loading…</p></main><div class='content'>" + ARTICLE + "</div>",
], ids=["two-mains", "thin-main"])
def test_ambiguous_or_thin_main_goes_to_trafilatura(main, monkeypatch):
    import trafilatura

    calls = []
    real = trafilatura.extract
    monkeypatch.setattr(trafilatura, "extract", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = extract(_page(main), content_type="text/html")
    assert calls == [1]
    assert "substantiated the allegation" in got.text


EXAMPLE_NOISE_LINES = [n[1] for n in NORMALISE] + [
    "LAST REVIEWED: MARCH 3, 2025", "Page Last Updated on 12 May 2025", "WAS THIS PAGE HELPFUL? YES NO",
    "An Official Website Of The United States Government", "HERE'S HOW YOU KNOW", "SECURE .GOV WEBSITES USE HTTPS",
    "Please enable JavaScript in your browser to view this site.", "__VIEWSTATE=abc", "__EVENTVALIDATION: x",
    "__RequestVerificationToken abc", "authenticity_token=xyz", "csrf-token: 1", "Form_Token abc",
]


def test_noise_screen_never_skips_a_line_a_noise_pattern_would_change():
    """normalise only runs the noise patterns on lines holding one of _NOISE_WORDS: every pattern
    must need one of them, or a stamp would slip through as content."""
    from monitor.extract import _NOISE, _NOISE_WORDS, _may_be_noise

    checked = 0
    for text in EXAMPLE_NOISE_LINES:
        for line in text.split("\n"):
            for pattern in _NOISE:
                if pattern.search(line):
                    if "\u0130" in text or "\u0131" in text:
                        continue  # normalise does not screen such texts: lower() is not (?i) for them
                    checked += 1
                    assert _may_be_noise(line), (line, pattern.pattern)
                    assert _may_be_noise(line, [w for w in _NOISE_WORDS if w in text.lower()]), line
    assert checked >= 25


def test_a_text_node_over_libxml2s_10_mb_limit_is_read_not_silently_dropped():
    """Issue 16.9: without huge_tree, libxml2 drops a text node over 10 MB and the page read as
    its intro alone (or "no text"): content made invisible."""
    giant = ("word " * 10 + "\n") * 200_000                        # 11 MB in one text node
    body = f"<html><head><title>T</title></head><body><main><p>Intro.</p><p>{giant}</p></main></body></html>"
    got = extract(body.encode(), content_type="text/html")
    assert got.title == "T" and len(got.text) > 10_000_000, len(got.text)
    assert got.text.rstrip().endswith("word word")
