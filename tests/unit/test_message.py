"""Alert messages: title names topic and source; long text is shortened at a word with a note;
page-derived text cannot become markup."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from alerts.message import change_message, md_escape, shorten
from alerts.outbox import Target
from state.models import ChangeRecord, TopicMatchRecord


@pytest.mark.parametrize(
    "text,limit,expected",
    [
        ("short text", 50, "short text"),
        ("alpha beta gamma delta", 14, "alpha beta … [shortened: 12 more characters in the change log]"),
        ("x" * 30, 10, "xxxxxxxxxx … [shortened: 20 more characters in the change log]"),
    ],
    ids=["fits", "word-boundary", "one-long-word"],
)
def test_shorten(text, limit, expected):
    assert shorten(text, limit) == expected


def test_a_long_document_title_is_cut_once_in_the_alert_title():
    """A real OIG title (160 characters) and a long source name: the title ends in one "…", no
    note cut in half by the title's own limit (as the demo's first alert once showed)."""
    title = ("Oversight Review of the Department of Homeland Security Immigration and Customs Enforcement, "
             "Office of Professional Responsibility, Investigations Division")
    change = ChangeRecord(id=3, source_id="dhs-oig-ice-reports", url="https://www.oig.dhs.gov/r.pdf", kind="new_item", title=title,
                          detected_at=datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc), added_text="OPR.")
    m = TopicMatchRecord(change_id=3, topic="opr-outcomes", score=6.5, severity="medium", evidence_json=json.dumps(
        {"evidence": [{"rule": "outcome", "sentence": "OPR.", "marked": "«OPR»."}], "definition_changes": []}))
    msg = change_message(change, [m], "DHS OIG reports on ICE, audits, inspections and evaluations of the Office", public_url="")
    assert "[shortened" not in msg.title and msg.title.count("…") == 1, msg.title
    assert msg.title.endswith("Enforcement, Office of …") and len(msg.title) <= 241, msg.title
    assert shorten("alpha beta gamma delta", 14, note=False) == "alpha beta …"


def test_markup_in_page_text_is_escaped():
    assert md_escape("<script>*x*</script> [a](javascript:1)") == r"\<script\>\*x\*\</script\> \[a\](javascript:1)"


def test_change_message_shape():
    change = ChangeRecord(id=7, source_id="oig", url="https://www.oig.dhs.gov/r.pdf", kind="new_item", title="OIG-26-07 <b>Review</b>",
                          detected_at=datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc), item_published="2026-11-20",
                          added_text="word " * 1000, severity="high")
    m = TopicMatchRecord(change_id=7, topic="opr-outcomes", score=6.5, severity="high", evidence_json=json.dumps(
        {"evidence": [{"rule": "outcome", "sentence": "OPR substantiated it.", "marked": "«OPR» «substantiated» it."}], "definition_changes": []}))
    msg = change_message(change, [m], "DHS OIG reports", public_url="https://govwatch.example.org")
    assert msg.title == "HIGH [opr-outcomes] DHS OIG reports (oig): new document: OIG-26-07 <b>Review</b>"
    assert "**OPR** **substantiated** it." in msg.body
    assert "\\<b\\>Review\\</b\\>" in msg.body
    assert "[shortened:" in msg.body and len(msg.body) < 3000
    assert "https://govwatch.example.org/changes/7" in msg.body
    assert "2026-11-28 12:00 UTC" in msg.body and "https://www.oig.dhs.gov/r.pdf" in msg.body


def test_target_errors_never_carry_the_url():
    t = Target("hook", "json://user:SECRETPASS1@127.0.0.1:9/path?+X-Token=HEADERTOKEN9")
    out = t.scrub("failed json://user:SECRETPASS1@127.0.0.1:9/path token HEADERTOKEN9 SECRETPASS1")
    assert "SECRETPASS1" not in out and "HEADERTOKEN9" not in out and out.startswith("failed ")
    full = "json://user:SECRETPASS1@127.0.0.1:9/path?+X-Token=HEADERTOKEN9"
    assert t.scrub(f"error at {full}.") == "error at ***."


# -- issue 14: the cases of the end-to-end tests, as each target renders them ----------------------
# Slack and webhooks get the Markdown body; an HTML e-mail gets Apprise's Markdown -> HTML; the
# plain-text part of that e-mail is Apprise's HTML -> text (what its e-mail plugin sends).
from apprise import NotifyFormat  # noqa: E402
from apprise.conversion import convert_between  # noqa: E402

from monitor.classify import builtin_topics  # noqa: E402
from monitor.diff import diff  # noqa: E402
from monitor.recorder import match_records  # noqa: E402
from monitor.relevance import judge  # noqa: E402

PUBLIC = "https://govwatch.example.org"
WHEN = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)
STATS = ("In fiscal year 2025, ICE OPR opened {n} investigations of employees alleged to have ties to extremist groups; "
         "{k} allegations were substantiated and 4 employees were removed from federal service.")
FR_TITLE = "Countering Domestic Terrorism and Organized Political Violence"
FR_ABSTRACT = ("This memorandum revises the definition of domestic terrorism used by the Department of Homeland Security "
               "and directs agencies to designate anti-government violent extremist groups.")


def rendered(msg):
    html = convert_between(NotifyFormat.MARKDOWN, NotifyFormat.HTML, msg.body)
    return {"markdown": msg.body, "html": html, "text": convert_between(NotifyFormat.HTML, NotifyFormat.TEXT, html)}


def records(change, added="", removed="", replaced=()):
    return match_records(change.id, judge(added, builtin_topics(), removed=removed, replaced=replaced))


def test_fr_document_alerted_on_its_abstract_then_updated_by_its_full_text():
    text = f"{FR_TITLE}\n\n{FR_ABSTRACT}"
    change = ChangeRecord(id=11, source_id="fr-dhs", url="https://www.federalregister.gov/d/2026-21001", kind="new_item",
                          title=FR_TITLE, item_key="2026-21001", item_published="2026-11-20", detected_at=WHEN, added_text=text,
                          note="full text pending: the document could not be fetched (HTTP 404); classified on what the listing says")
    msg = change_message(change, records(change, text), "Federal Register: DHS", PUBLIC)
    assert msg.title == f"HIGH [extremism-definitions] Federal Register: DHS (fr-dhs): new document: {FR_TITLE}"
    out = rendered(msg)
    for body in out.values():
        assert "full text pending" in body and "HTTP 404" in body
        assert "https://www.federalregister.gov/d/2026-21001" in body and f"{PUBLIC}/changes/11" in body
        assert body.count(FR_TITLE) <= 1  # the title: in the alert title and at most once more
    assert '<a href="https://govwatch.example.org/changes/11">' in out["html"]
    full = text + "\n\nFindings. ICE OPR substantiated allegations that three employees were members of a militia extremist group."
    change.added_text = full
    update = change_message(change, records(change, full), "Federal Register: DHS", PUBLIC, update=True)
    assert update.title.startswith("HIGH UPDATE [") and "opr-outcomes" in update.title and "full text of new document" in update.title
    assert "**Update:**" in update.body and "ICE OPR** **substantiated**" in update.body.replace("«", "")


def test_removed_page_alert_names_removed_topic_with_passage_and_last_capture():
    text = "Office of Professional Responsibility\n\n" + STATS.format(n=31, k=9)
    change = ChangeRecord(id=12, source_id="ice-opr", url="https://www.ice.gov/about-ice/opr", kind="removed",
                          title="Office of Professional Responsibility", detected_at=WHEN, removed_text=text,
                          prev_snapshot_id=40, new_snapshot_id=41, note="removed: redirected to the home page")
    msg = change_message(change, records(change, removed=text), "ICE OPR", PUBLIC)
    assert msg.title == "HIGH REMOVED [opr-outcomes] ICE OPR (ice-opr): page removed: Office of Professional Responsibility"
    for body in rendered(msg).values():
        assert f"{PUBLIC}/snapshots/40" in body and "31 investigations" in body and "removed from federal service" in body
    local = change_message(change, records(change, removed=text), "ICE OPR")
    assert "snapshot 40" in local.body and "govwatch show 12" in local.body


def test_report_taken_off_a_listing_links_its_stored_document():
    text = "Review of ICE OPR Investigations\n\n" + STATS.format(n=31, k=9)
    change = ChangeRecord(id=13, source_id="oig-ice", url="https://www.oig.dhs.gov/r/oig-26-07.pdf", kind="removed", item_key="oig-26-07",
                          title="Review of ICE OPR Investigations", detected_at=WHEN, removed_text=text, prev_snapshot_id=50,
                          new_snapshot_id=52, meta_json=json.dumps({"last_capture_id": 47}))
    msg = change_message(change, records(change, removed=text), "DHS OIG reports", PUBLIC)
    assert msg.title.startswith("HIGH REMOVED [opr-outcomes] DHS OIG reports (oig-ice): taken off the listing: Review of ICE OPR")
    assert f"{PUBLIC}/snapshots/47" in msg.body and "/snapshots/50" not in msg.body


def test_reworded_statistics_show_old_to_new_once():
    old, new = STATS.format(n=31, k=9), STATS.format(n=33, k=11)
    d = diff(old, new)
    change = ChangeRecord(id=14, source_id="ice-opr", url="https://www.ice.gov/about-ice/opr", kind="changed", detected_at=WHEN,
                          added_text=d.added_text, removed_text=d.removed_text)
    msg = change_message(change, records(change, d.added_text, d.removed_text, d.replaced), "ICE OPR", PUBLIC)
    assert "REMOVED" not in msg.title
    out = rendered(msg)
    assert "• now: In fiscal year 2025, **ICE OPR** opened 33 investigations" in out["markdown"]
    assert "was: In fiscal year 2025, ICE OPR opened 31 investigations" in out["markdown"]
    for body in out.values():
        assert body.count("opened 33 investigations") == 1 and body.count("opened 31 investigations") == 1  # old -> new, once
    assert "\nwas: In fiscal year 2025, ICE OPR opened 31 investigations of employees alleged to have ties to extremist groups; 9 " \
           "allegations were substantiated and 4 employees were removed from federal service." in out["text"]


def test_each_sentence_once_title_not_repeated_and_not_a_definition():
    title = "ICE Did Not Consistently Discipline Employees Tied to Extremist Groups"
    ev = {"rule": "extremist-ties", "sentence": title, "marked": title.replace("Extremist", "«Extremist»")}
    outcome = {"rule": "outcome", "sentence": "OPR substantiated 9 allegations.", "marked": "OPR «substantiated» 9 allegations."}
    m = TopicMatchRecord(change_id=15, topic="opr-outcomes", score=5, severity="high", evidence_json=json.dumps(
        {"evidence": [ev, {**ev, "rule": "discipline"}, outcome, {**outcome, "rule": "weaker"}], "definition_changes": []}))
    d = TopicMatchRecord(change_id=15, topic="extremism-definitions", score=3, severity="high", evidence_json=json.dumps(
        {"evidence": [{**ev, "rule": "definition-added"}], "definition_changes": [{"term": "extremist", "change": "added", "old": None, "new": title}]}))
    change = ChangeRecord(id=15, source_id="oig", url="https://www.oig.dhs.gov/r.pdf", kind="new_item", title=title, detected_at=WHEN,
                          added_text=f"{title}\n\n{title}\n\nOPR substantiated 9 allegations.")
    body = change_message(change, [m, d], "DHS OIG").body
    assert body.count("substantiated** 9 allegations") == 1 and "rule weaker" not in body
    assert "rule discipline" not in body and "rule extremist-ties" not in body  # the headline is not evidence again
    assert body.count("Tied to Extremist Groups") + body.count("Tied to **Extremist** Groups") <= 1  # the excerpt only


def test_the_sentence_with_the_numbers_and_outcome_words_is_never_cut():
    filler = "The review examined records kept by the field offices over several years and interviewed many officials. "
    facts = ("Of the 113 allegations referred to ICE OPR in fiscal years 2021 through 2024, 9 were substantiated and 4 employees "
             "were removed from federal service, while 23 cases remained open at the end of the review period.")
    sentence = filler * 2 + facts
    change = ChangeRecord(id=16, source_id="oig", url="https://www.oig.dhs.gov/r.pdf", kind="new_item", title="OIG-26-07",
                          detected_at=WHEN, added_text=sentence + " " + "More text. " * 300)
    msg = change_message(change, records(change, sentence.replace(". The", "; the")), "DHS OIG", PUBLIC)
    plain = rendered(msg)["text"]
    assert "113 allegations" in plain and "23 cases remained open" in plain
    assert "9 were substantiated and 4 employees were removed from federal service" in plain
    evidence_line = next(line for line in plain.splitlines() if "113" in line)
    assert "[shortened" not in evidence_line


def test_plain_text_email_keeps_link_urls_and_unbroken_lines():
    change = ChangeRecord(id=17, source_id="ice-opr", url="https://www.ice.gov/about-ice/opr?a=1&b=2", kind="changed",
                          detected_at=WHEN, added_text=STATS.format(n=33, k=11) + "\nReport Description:\nA second line.", note="a note")
    msg = change_message(change, records(change, STATS.format(n=33, k=11)), "ICE OPR", PUBLIC)
    lines = rendered(msg)["text"].splitlines()
    assert "Source: ICE OPR (ice-opr)" in lines and "URL: https://www.ice.gov/about-ice/opr?a=1&b=2" in lines
    assert "Detected: 2026-12-01 09:30 UTC" in lines and f"Open change 17 in govwatch: {PUBLIC}/changes/17" in lines
    assert "Report Description:" in lines and "A second line." in lines
    assert not any(line.startswith(" ") or line == ">" for line in lines)


def test_health_digest_groups_problems_and_recoveries_by_name():
    from alerts.message import health_alert, health_digest

    rows = [health_alert("ICE OPR", "ice-opr", "https://www.ice.gov/opr", "failing", "3 consecutive failure(s); last error: connection refused"),
            health_alert("OIG reports", "oig", "https://www.oig.dhs.gov/r", "blocked", "2 blocked fetches in a row"),
            health_alert("GAO", "gao", "https://www.gao.gov/", "ok", was="failing")]
    one = health_digest(rows[:1])
    assert one.title == "govwatch health: ICE OPR (ice-opr) is failing"
    msg = health_digest(rows)
    assert msg.title == "govwatch health: 2 sources need attention (1 blocked, 1 failing); 1 source recovered"
    lines = msg.body.splitlines()
    assert "- **ICE OPR** (`ice-opr`, https://www.ice.gov/opr) is **failing**: 3 consecutive failure(s); last error: connection refused" in lines
    assert "- **GAO** (`gao`, https://www.gao.gov/) recovered (was failing)." in lines
    assert lines.index("**1 recovered:**") > lines.index("**1 failing:**")
