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
