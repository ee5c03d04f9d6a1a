"""Feed entry text: the site's chrome (navigation, menus, search forms, page header, share
buttons, WordPress's "appeared first on" line) is not the entry's text; the entry's own words,
links and lists are kept. The real White House case is in test_catalogue.py."""
from __future__ import annotations

import pytest

from spiders.feed import html_to_text, strip_site_chrome


@pytest.mark.parametrize("html, text", [
    ("Plain text, no markup & no tags", "Plain text, no markup & no tags"),
    ("", ""),
    ("<nav><ul><li><a href='/'>Home</a></li></ul></nav><p>The order.</p>", "The order."),
    ("<div class='site-navigation__menu'><a href='/a'>All News</a></div><p>Body</p>", "Body"),
    ("<div role='navigation'>Menu</div><form role='search'><label>Search</label></form><p>Body</p>", "Body"),
    ("<p>Before</p><select><option>Executive Orders</option></select><p>After</p>", "Before\nAfter"),
    ("<div class='wp-block-whitehouse-topper'><h1>Presidential Actions</h1></div><p>Sec. 1.</p>", "Sec. 1."),
    ("<p>Text</p><div class='share-buttons'><a href='x'>Share on X</a></div>", "Text"),
    ("<p>Text</p>\n<p>The post <a href='u'>Title</a> appeared first on <a href='h'>The White House</a>.</p>", "Text"),
    # the entry's own lists, links and headings stay
    ("<h2>Findings</h2><ul><li>One <a href='/r.pdf'>report</a></li><li>Two</li></ul>", "Findings\nOne report\nTwo"),
    ("<p>A menu of options for the agency: keep, revise, rescind.</p>", "A menu of options for the agency: keep, revise, rescind."),
], ids=["text", "empty", "nav", "nav-class", "roles", "select", "page-header", "share", "wordpress-footer", "content",
        "the-word-menu"])
def test_entry_text_without_site_chrome(html, text):
    assert html_to_text(strip_site_chrome(html)) == text


def test_stray_angle_brackets_are_text():
    assert html_to_text(strip_site_chrome("5 < 6 and <b>bold</b> > 4")) == "5 < 6 and bold > 4"


def test_an_entry_with_a_text_node_over_libxml2s_10_mb_limit_keeps_its_text():
    """Issue 16.9 for feeds: libxml2 cuts a text node over 10 MB without huge_tree, and the entry's
    summary was read as its intro alone, silently."""
    from spiders.feed import parse_feed

    giant = ("word " * 10 + "\n") * 200_000                        # 11 MB in one text node
    summary = f"<p>Intro.</p><p>{giant}</p>".replace("<", "&lt;").replace(">", "&gt;")
    rss = (f"<?xml version='1.0'?><rss version='2.0'><channel><title>T</title><item><title>Big</title>"
           f"<link>https://example.gov/big</link><description>{summary}</description></item></channel></rss>").encode()
    _title, items = parse_feed(rss, "https://example.gov/feed", {"content-type": "application/rss+xml"}, 10)
    assert len(items) == 1 and len(items[0].summary) > 10_000_000, len(items[0].summary)
    assert items[0].summary.rstrip().endswith("word word")


def test_feedparser_never_guesses_an_encoding_with_chardet():
    """chardet is installed here (a test dependency brings it in) but not with govwatch: a feed that
    declares no encoding is decoded the same way in both (UTF-8, then windows-1252...)."""
    import importlib.util

    import spiders.feed

    assert importlib.util.find_spec("chardet") is not None  # else this test proves nothing
    assert spiders.feed.feedparser.encodings.chardet is None
    undeclared = ("<?xml version='1.0'?><rss version='2.0'><channel><title>OPR</title><item>"
                  "<title>Caf\u00e9 r\u00e9sum\u00e9 \u2013 report</title><link>https://www.ice.gov/a</link></item>"
                  "</channel></rss>").encode("windows-1252")
    parsed = spiders.feed.feedparser.parse(undeclared)
    assert parsed.entries[0].title == "Caf\u00e9 r\u00e9sum\u00e9 \u2013 report"
    import chardet  # still importable by everything else

    assert chardet.detect(b"abc")["encoding"] == "ascii"
