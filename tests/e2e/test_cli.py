"""The smaller commands through the real CLI: classify (text, HTML, PDF, stdin), validate,
notify-test, kinds, per-target topic filters, and one-line errors."""
from __future__ import annotations

import json
import re

from tests.e2e.test_monitor import RELEVANT, page
from tests.pdfs import make_pdf

DEFINITION = ("For the purposes of this strategy, domestic violent extremism means violence committed by individuals "
              "based in the United States to further political goals; the Department of Homeland Security will add "
              "a new category of anti-government violent extremism.")


def test_classify_text_html_pdf_and_stdin(workdir, tmp_path):
    (tmp_path / "a.txt").write_text(DEFINITION)
    (tmp_path / "a.html").write_text(f"<html><body><nav>Home</nav><main><p>{DEFINITION}</p></main></body></html>")
    (tmp_path / "a.pdf").write_bytes(make_pdf([[DEFINITION[:90], DEFINITION[90:]]]))
    for name in ("a.txt", "a.html", "a.pdf"):
        out = json.loads(workdir.run("classify", "--format", "json", name).stdout)
        assert [t["id"] for t in out["topics"]] == ["extremism-definitions"], (name, out)
        t = out["topics"][0]
        assert t["score"] > 0 and t["evidence"] and "«" in t["evidence"][0]["marked"]
    table = workdir.run("classify", "-", input="The weather is mild today.").stdout
    assert table.strip() == "no topic matched"
    table = workdir.run("classify", "a.txt").stdout
    assert table.startswith("extremism-definitions: severity")
    p = workdir.run("classify", "missing.txt", check=False)
    assert p.returncode == 1 and p.stderr.strip() == "Error: cannot read missing.txt: No such file or directory"
    (tmp_path / "junk.bin").write_bytes(bytes(range(256)) * 10)
    p = workdir.run("classify", "junk.bin", check=False)
    assert p.returncode == 1 and "binary data" in p.stderr and "Traceback" not in p.stderr


def test_validate_and_errors_are_one_line(workdir, webhook):
    workdir.write(sources=[{"id": "a", "url": "https://example.gov/a"}], notify=[{"url": webhook.url(), "name": "hook"}])
    assert workdir.run("validate").stdout.startswith("OK: ")
    workdir.config.write_text("sources:\n  - id: a\n    url: https://example.gov/a\n    every: 6 hours\ninclude_defaults: false\n")
    p = workdir.run("check", check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.splitlines()[1].strip() == "sources[0].every: '6 hours' is not a duration like 30m, 6h or 1d (line 4)"
    p = workdir.run("show", "999", check=False)
    assert p.returncode == 2  # the config is still bad: reported first
    workdir.write(sources=[])
    p = workdir.run("show", "999", check=False)
    assert p.returncode == 1 and p.stderr.strip() == "Error: no change with id 999; see `govwatch changes`"
    p = workdir.run("changes", "--since", "yesterday", check=False)
    assert p.returncode == 1 and "--since: 'yesterday' is not an ISO 8601 date" in p.stderr


def test_notify_test_reports_each_target(workdir, webhook, smtp):
    workdir.write(sources=[], notify=[{"url": webhook.url(), "name": "hook"}, {"url": smtp.url(), "name": "mail"},
                                      {"url": "json://127.0.0.1:9/nothing", "name": "dead"}])
    p = workdir.run("notify-test", check=False)
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    assert lines[0] == "hook: sent" and lines[1] == "mail: sent" and lines[2].startswith("dead: FAILED: ")
    assert len(webhook.received) == 1 and webhook.received[0]["title"] == "govwatch test message"
    assert len(smtp.messages) == 1


def test_kinds_lists_every_kind(workdir):
    out = workdir.run("kinds").stdout
    for kind in ("page", "listing", "feed", "pdf", "federal-register", "congress-gov"):
        assert out.count(f"{kind}: ") == 1, out


def test_per_target_topic_filters_and_severity(site, webhook, workdir):
    site.set("/p", page())
    workdir.write(sources=[{"id": "p", "url": site.url("/p")}], notify=[
        {"url": webhook.url("/opr"), "name": "opr-team", "topics": ["opr-outcomes"]},
        {"url": webhook.url("/ext"), "name": "ext-team", "topics": ["extremism-definitions"]},
        {"url": webhook.url("/high"), "name": "high-only", "min_severity": "high"},
    ])
    workdir.run("check")
    site.set("/p", page(extra=RELEVANT))
    workdir.run("check", "--force")
    assert sorted(m["_path"] for m in webhook.received) == ["/high", "/opr"]
    site.set("/p", page(extra=RELEVANT + f"<p>{DEFINITION}</p>"))
    workdir.run("check", "--force")
    assert sorted(m["_path"] for m in webhook.received) == ["/ext", "/high", "/high", "/opr"]


def test_changes_table_shows_the_newest_and_exports_show_all(workdir):
    """A table of a long log shows the newest 50 and says so; json/csv exports are whole; the
    topic matches of every listed change come along (read in one query per 500 changes)."""
    from datetime import datetime, timedelta, timezone

    from state.models import ChangeRecord, SourceRecord, TopicMatchRecord
    from state.store import Store

    workdir.write(sources=[{"id": "a", "url": "https://example.gov/a"}])
    store = Store(workdir.db)
    t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
    with store.session() as s:
        s.add(SourceRecord(id="a", url="https://example.gov/a"))
        s.flush()
        for i in range(620):
            c = ChangeRecord(source_id="a", url="https://example.gov/a", detected_at=t0 + timedelta(minutes=i), kind="changed",
                             title=f"change {i}", matched=i % 2 == 0, topics="opr-outcomes" if i % 2 == 0 else "")
            s.add(c)
            s.flush()
            if c.matched:
                s.add(TopicMatchRecord(change_id=c.id, topic="opr-outcomes", score=1.0, severity="high", evidence_json="{}"))
    out = workdir.run("changes").stdout
    assert "change 619" in out and "change 570" in out and "change 569" not in out
    assert "the newest 50 shown; --limit N for more, --limit 0 for all" in out
    rows = json.loads(workdir.run("changes", "--format", "json").stdout)
    assert len(rows) == 620 and rows[0]["title"] == "change 619"
    assert all((r["topics"] == ["opr-outcomes"]) == (int(r["title"].split()[1]) % 2 == 0) for r in rows)
    assert len(json.loads(workdir.run("changes", "--format", "json", "--limit", "7").stdout)) == 7
    assert "--limit 0 for all" not in workdir.run("changes", "--limit", "0").stdout


def test_captured_text_cannot_inject_formulas_or_terminal_escapes(site, workdir):
    """Issue 16.5: a captured title or text that starts a spreadsheet formula is escaped in the CLI's
    CSV (like the web's), and `show` and the tables print control sequences visibly, never raw."""
    import csv
    import io

    title = "\x1b]0;owned\x07\x1b[31mRed\x1b[0m [link=http://evil.example]click[/link] \x9b2J"
    body = "<html><head><title>{t}</title></head><body><main><p>{p}First paragraph of the page, long enough.</p>{x}</main></body></html>"
    site.set("/a", body.format(t=title, p="", x=""))
    workdir.write(sources=[{"id": "a", "url": site.url("/a")}])
    workdir.run("check")
    site.set("/a", body.format(t=title, p='=HYPERLINK("http://evil.example","click") ', x="<p>-2+3 \x1b]0;x\x07 added</p>"))
    workdir.run("check", "--force")

    rows = list(csv.reader(io.StringIO(workdir.run("changes", "--format", "csv").stdout)))
    assert len(rows) == 2
    assert rows[1][rows[0].index("added_text")].startswith("'=HYPERLINK("), rows[1]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows[1:] for cell in row), rows

    shown = workdir.run("show", rows[1][0]).stdout
    table = workdir.run("changes").stdout
    for out in (shown, table):
        assert not any(c in out for c in "\x1b\x07\x9b"), repr(out)
    assert "Title:    \\x1b]0;owned\\x07\\x1b[31mRed\\x1b[0m [link=http://evil.example]click[/link] \\x9b2J" in shown
    assert "\\x1b]0;x\\x07 added" in shown
    assert "[link=http://evil.example]" in table, table


def test_alias_bomb_with_a_typo_is_refused_quickly_in_bounded_memory(tmp_path):
    """Issue 16.8: a billion-laughs config with one typo made the error path (the line map) expand
    every alias (20 GB). Run under a 1 GiB address-space limit: main dies of MemoryError or time."""
    import resource
    import subprocess
    import sys
    import time

    lines = ["include_defaults: false", "lol0: &a0 [" + ", ".join(["lol"] * 10) + "]"]
    lines += [f"lol{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    lines.append("sourcs: []")                                        # the typo
    (tmp_path / "govwatch.yaml").write_text("\n".join(lines) + "\n")

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))

    t0 = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-m", "monitor", "validate"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=60, preexec_fn=limit)
    except subprocess.TimeoutExpired:
        raise AssertionError("validate did not finish in 60 s") from None
    assert time.monotonic() - t0 < 30
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert p.stderr.splitlines()[1].strip().startswith(
        "(top level): the document expands to 12,345,679,025 values through its aliases"), p.stderr


def test_aliases_below_the_cap_still_locate_problems(workdir):
    workdir.config.write_text("include_defaults: false\nsources:\n  - &s {id: a, url: 'https://e.gov/a', evry: 1h}\n"
                              "  - {<<: *s, id: b}\n")
    p = workdir.run("validate", check=False)
    assert p.returncode == 2
    assert [x.strip() for x in p.stderr.splitlines()[1:]] == [
        "sources[0].evry: unknown key 'evry'; did you mean 'every'? (line 3)",
        "sources[1].evry: unknown key 'evry'; did you mean 'every'? (line 3)"], p.stderr   # where evry is written


def test_validate_reports_private_urls_and_check_says_when_next_due(site, workdir):
    site.set("/p", page())
    workdir.write(sources=[{"id": "p", "url": site.url("/p"), "every": "6h"}, {"id": "bad", "url": "https://example.gov/", "select": "div[[["}],
                  fetch={"allow_private_networks": False})
    p = workdir.run("validate", check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.splitlines()[1:] == [
        "  sources[1].select: 'div[[[' is not a valid CSS selector: Expected ident or '*', got <DELIM '[' at 4> (line 16)",
        "  sources[0].url: host 127.0.0.1 is a loopback address, which is refused unless fetch.allow_private_networks is true "
        "(set it for local testing only) (line 12)"], p.stderr
    workdir.write(sources=[{"id": "p", "url": site.url("/p"), "every": "6h"}], fetch={"allow_private_networks": False})
    p = workdir.run("validate", check=False)
    assert p.returncode == 2 and "sources[0].url: host 127.0.0.1 is a loopback address" in p.stderr
    out = workdir.run("check").stdout  # a run goes on: the fetch itself refuses the source
    assert "1 error" in out and "refused" in out and site.hits("/p") == []

    workdir.write(sources=[{"id": "p", "url": site.url("/p"), "every": "6h"}])  # local fetch settings allow 127.0.0.1
    assert workdir.run("validate").stdout.startswith("OK: ")
    workdir.run("check", "--force")
    out = workdir.run("check").stdout
    assert "nothing due" in out
    assert re.search(r"^no source is due; the next is p, due \d{4}-\d\d-\d\dT[\d:]+Z \(in [56]h \d\dm\); "
                     r"`govwatch check --force` checks every source now$", out, re.M), out
