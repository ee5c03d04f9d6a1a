"""Subscriptions (issue 17 point 2), end to end with the real CLI, a local site, a webhook receiver
and a local SMTP server: an instant saved search alerts once per matching change and never again on
quiet checks; a daily digest lists two matching changes in one message (HTML and plain-text
e-mail, Markdown to chat); `digests send --force` again sends nothing already sent; a SIGKILL
during a digest send neither loses nor repeats it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.e2e.test_monitor import RELEVANT, page

RESIGNED = "<p>A second ICE OPR investigation was substantiated in March; the officer resigned in lieu of removal.</p>"
UNRELATED = "<p>The agency announced new grant deadlines for community organizations in Texas.</p>"


def config(workdir, site, subscriptions, notify=(), **extra):
    workdir.write(sources=[{"id": "ice-opr", "name": "ICE OPR", "url": site.url("/opr")},
                           {"id": "ice-news", "name": "ICE newsroom", "url": site.url("/news")}],
                  notify=list(notify), subscriptions=subscriptions, **extra)


def test_instant_and_daily_digest(site, webhook, smtp, workdir):
    site.set("/opr", page())
    site.set("/news", page(widget="News"))
    config(workdir, site, [
        {"name": "extremist ties", "query": '"white supremacist" OR extremist', "every": "instant", "notify": [webhook.url("/instant")]},
        {"name": "OPR daily", "query": "substantiated OR resigned -grant", "every": "daily@08:00", "timezone": "America/New_York",
         "notify": [smtp.url(), webhook.url("/digest")]},
    ])
    workdir.run("check")  # the baseline: nothing to alert
    listed = json.loads(workdir.run("subscriptions", "--format", "json").stdout)
    assert [(x["name"], x["origin"], x["every"]) for x in listed] == [("OPR daily", "config", "daily@08:00"),
                                                                       ("extremist ties", "config", "instant")]
    assert listed[0]["targets"] == ["mailto://", "json://"]  # never the URLs (tokens)
    assert listed[0]["next_digest_at"].endswith(("12:00:00Z", "13:00:00Z"))  # 08:00 in New York

    site.set("/opr", page(extra=RELEVANT))
    workdir.run("check", "--force")
    instant = [m for m in webhook.received if m["_path"] == "/instant"]
    assert len(instant) == 1 and instant[0]["title"].startswith("extremist ties: ")
    assert "white supremacist" in instant[0]["message"]
    for _ in range(2):  # quiet checks: nothing again
        workdir.run("check", "--force")
    site.set("/news", page(widget="News", extra=UNRELATED))  # a change no subscription wants
    workdir.run("check", "--force")
    site.set("/news", page(widget="News", extra=UNRELATED + RESIGNED))
    workdir.run("check", "--force")
    assert len([m for m in webhook.received if m["_path"] == "/instant"]) == 1
    assert [m for m in webhook.received if m["_path"] == "/digest"] == [] and smtp.messages == []

    out = workdir.run("digests", "send").stdout  # not due before 08:00 New York time
    assert "no digest due" in out and smtp.messages == []
    out = workdir.run("digests", "send", "--force").stdout
    assert "OPR daily: a digest of 2 change(s) for 2 target(s)" in out, out
    digests = [m for m in webhook.received if m["_path"] == "/digest"]
    assert len(digests) == 1 and len(smtp.messages) == 1
    d = digests[0]
    assert d["title"] == "govwatch digest: OPR daily: 2 changes"
    assert "white supremacist" in d["message"] and "resigned in lieu of removal" in d["message"]
    assert "grant deadlines" not in d["message"]
    assert d["message"].count("ICE OPR") >= 1 and d["message"].count("ICE newsroom") == 1
    mail = smtp.messages[0]["msg"]
    assert mail.get_content_type() == "multipart/alternative"
    kinds = {p.get_content_type() for p in mail.walk()}
    assert {"text/plain", "text/html"} <= kinds
    text = smtp.text_of(smtp.messages[0])
    assert "resigned in lieu of removal" in text and "<strong>" in text  # the HTML part, with the Markdown made HTML

    out = workdir.run("digests", "send", "--force").stdout
    assert "nothing to send" in out
    assert len([m for m in webhook.received if m["_path"] == "/digest"]) == 1 and len(smtp.messages) == 1
    listed = {x["name"]: x for x in json.loads(workdir.run("subscriptions", "--format", "json").stdout)}
    assert listed["OPR daily"]["cursor"] > 0 and listed["OPR daily"]["last_digest_at"]


def test_a_sigkill_during_a_digest_send_neither_loses_nor_repeats_it(site, webhook, workdir):
    site.set("/opr", page())
    site.set("/news", page(widget="News"))
    config(workdir, site, [{"name": "OPR weekly", "query": "substantiated", "every": "weekly@monday 09:00",
                            "notify": [webhook.url("/digest")]}], scheduler={"delivery_claim": "2s"})
    workdir.run("check")
    site.set("/opr", page(extra=RELEVANT))
    site.set("/news", page(widget="News", extra=RESIGNED))
    workdir.run("check", "--force")

    webhook.delay = 30.0  # the receiver keeps the digest and holds its answer: the sender is killed meanwhile
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVWATCH_")}
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "digests", "send", "--force"], cwd=workdir.path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not webhook.received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert webhook.received, "the digest never reached the receiver"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    webhook.delay = 0.0

    time.sleep(2.5)  # the dead sender's claim on the row expires (delivery_claim 2s)
    out = workdir.run("digests", "send").stdout  # not due (weekly): only the queued digest is delivered
    assert "1 sent" in out, out
    workdir.run("digests", "send", "--force")  # and forcing again adds nothing
    workdir.run("check", "--force")
    got = [m for m in webhook.received if m["_path"] == "/digest"]
    keys = {m["_headers"].get("X-Govwatch-Delivery") for m in got}
    # at least once, and a repeat carries the same key, which the receiver drops: one digest
    assert len(keys) == 1 and None not in keys, [m["_headers"] for m in got]
    assert len(got) == 2  # the one whose answer the kill cut off, and its resend
    for m in got:
        assert "2 changes" in m["title"] and "white supremacist" in m["message"] and "resigned in lieu" in m["message"]


def test_a_subscription_made_in_the_web_ui_alerts_on_the_next_check(site, webhook, workdir):
    import re

    from fastapi.testclient import TestClient

    from monitor.config import load_config
    from monitor.web import create_app
    from state.store import Store

    site.set("/opr", page())
    site.set("/news", page(widget="News"))
    config(workdir, site, [])
    workdir.run("check")
    cfg = load_config(str(workdir.config))
    client = TestClient(create_app(cfg, Store(cfg.database)), base_url="http://127.0.0.1")  # loopback: the local admin
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/subscriptions").text).group(1)
    r = client.post("/subscriptions", data={"csrf_token": token, "name": "my OPR watch", "query": "substantiated",
                                            "every": "instant", "timezone": "UTC", "notify": webhook.url("/mine")},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    site.set("/opr", page(extra=RELEVANT))
    workdir.run("check", "--force")
    got = [m for m in webhook.received if m["_path"] == "/mine"]
    assert len(got) == 1 and got[0]["title"].startswith("my OPR watch: ")
    listed = json.loads(workdir.run("subscriptions", "--format", "json").stdout)
    assert [(x["name"], x["origin"], x["owner"]) for x in listed] == [("my OPR watch", "web", "local")]
    assert listed[0]["cursor"] > 0


MEDIUM = "<p>ICE OPR closed 12 investigations in fiscal year 2025; 3 allegations of misconduct were substantiated.</p>"


def test_team_routing_digest_for_low_and_medium_and_quiet_hours(site, webhook, workdir):
    """A target with `digest: daily@08:00` gets a high change at once and a medium one only in its
    digest; a target in its quiet hours gets nothing until they end."""
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    quiet = f"{(now - timedelta(hours=1)).strftime('%H:00')}-{(now + timedelta(hours=2)).strftime('%H:00')}"  # around now
    site.set("/opr", page())
    site.set("/news", page(widget="News"))
    notify = [{"url": webhook.url("/team"), "name": "team", "min_severity": "low", "digest": "daily@08:00"},
              {"url": webhook.url("/night"), "name": "night", "min_severity": "low", "quiet_hours": quiet, "timezone": "UTC"}]
    config(workdir, site, [], notify=notify)
    workdir.run("check")
    site.set("/news", page(widget="News", extra=MEDIUM))
    site.set("/opr", page(extra=RELEVANT))
    workdir.run("check", "--force")
    team = [m for m in webhook.received if m["_path"] == "/team"]
    assert len(team) == 1 and "white supremacist" in team[0]["message"]  # the high one at once
    assert [m for m in webhook.received if m["_path"] == "/night"] == []  # quiet hours: held
    listed = {x["name"]: x for x in json.loads(workdir.run("subscriptions", "--format", "json").stdout)}
    assert listed["team digest"]["origin"] == "target" and listed["team digest"]["every"] == "daily@08:00"

    workdir.run("digests", "send", "--force")
    team = [m for m in webhook.received if m["_path"] == "/team"]
    assert len(team) == 2 and team[1]["title"] == "govwatch digest: team digest: 1 change"
    assert "12 investigations" in team[1]["message"] and "white supremacist" not in team[1]["message"]
    assert [m for m in webhook.received if m["_path"] == "/night"] == []

    # the quiet hours end (here: the configuration says so): the held alerts go out, once each
    notify[1]["quiet_hours"] = f"{(now + timedelta(hours=3)).strftime('%H:00')}-{(now + timedelta(hours=4)).strftime('%H:00')}"
    config(workdir, site, [], notify=notify)
    workdir.run("check")
    workdir.run("check", "--force")
    night = [m for m in webhook.received if m["_path"] == "/night"]
    assert len(night) == 2 and {("white supremacist" in m["message"]) for m in night} == {True, False}
