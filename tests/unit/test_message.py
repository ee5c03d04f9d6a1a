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
