"""`govwatch deliveries`: the outbox listed (by state, table or JSON), a given-up delivery queued
again once its target is fixed (audited in the change's trail), and Apprise's reason as the error."""
from __future__ import annotations

import json

from tests.e2e.test_monitor import RELEVANT, page
from tests.e2e.test_operations import query, sqlite_path


def test_list_retry_and_audit_a_given_up_delivery(site, webhook, workdir):
    from tests.servers import Webhook

    broken = Webhook()
    broken.fail_next, broken.fail_status = 10**6, 500
    try:
        site.set("/opr", page())
        workdir.write(sources=[{"id": "ice-opr", "name": "ICE OPR", "url": site.url("/opr")}],
                      notify=[{"url": broken.url("/broken"), "name": "broken", "max_attempts": 1},
                              {"url": webhook.url("/good"), "name": "good"}])
        workdir.run("check")
        site.set("/opr", page(extra=RELEVANT))
        assert "failed 1" in workdir.run("check", "--force").stdout

        failed = json.loads(workdir.run("deliveries", "--state", "failed", "--format", "json").stdout)
        assert [(d["target"], d["status"], d["attempts"], d["source_id"]) for d in failed] == [("broken", "failed", 1, "ice-opr")]
        # Apprise's reason, not its log line (no timestamp, no level), and no URL
        err = failed[0]["last_error"]
        assert "error=500" in err and " - WARNING - " not in err and not err[:4].isdigit(), err
        assert str(broken.port) not in err
        everything = json.loads(workdir.run("deliveries", "--format", "json").stdout)
        assert sorted(d["status"] for d in everything) == ["failed", "sent"]
        table = workdir.run("deliveries", "--state", "failed").stdout
        assert "broken" in table and "failed" in table and "good" not in table

        # a sent delivery is not queued again; an unknown id is an error; nothing changes
        sent_id = next(d["id"] for d in everything if d["status"] == "sent")
        p = workdir.run("deliveries", "retry", str(sent_id), "999", check=False)
        assert p.returncode == 1 and "Traceback" not in p.stderr
        assert p.stderr.splitlines() == [f"Error: delivery {sent_id} is sent, not failed: only given-up deliveries are queued again",
                                         "Error: no delivery with id 999"]
        p = workdir.run("deliveries", "retry", check=False)
        assert p.returncode == 1 and "--all-failed" in p.stderr

        broken.fail_next = 0  # the target is fixed
        out = workdir.run("deliveries", "retry", str(failed[0]["id"])).stdout
        assert out.startswith(f"queued again: 1 delivery ({failed[0]['id']})"), out
        assert json.loads(workdir.run("deliveries", "--state", "failed", "--format", "json").stdout) == []
        assert "alerts sent 1" in workdir.run("check").stdout
        assert len(broken.received) == 1 and "ICE OPR (ice-opr)" in broken.received[0]["title"]
        assert len(webhook.received) == 1  # the other target's alert is not repeated
        states = {d["target"]: (d["status"], d["attempts"]) for d in json.loads(workdir.run("deliveries", "--format", "json").stdout)}
        assert states == {"broken": ("sent", 1), "good": ("sent", 1)}
        # audited: who and when, in the change's audit trail (its review state is untouched)
        trail = query(sqlite_path(workdir), "select change_id, action, actor, note from triage_actions")
        assert len(trail) == 1 and trail[0][1] == "delivery_retried" and "(cli)" in trail[0][2], trail
        assert "queued again" in trail[0][3] and "error=500" in trail[0][3]
        assert query(sqlite_path(workdir), "select count(*) from triage_states") == [(0,)]
        assert workdir.run("deliveries", "retry", "--all-failed").stdout.strip() == "no failed deliveries"

        # two more alerts given up while the target is down again, then all of them queued at once
        broken.fail_next = 10**6
        site.set("/opr", page(extra=RELEVANT + "<p>ICE OPR also substantiated a second allegation; the employee resigned.</p>"))
        assert "failed 1" in workdir.run("check", "--force").stdout
        site.set("/opr", page(extra=RELEVANT + "<p>In fiscal year 2026 ICE OPR substantiated 4 allegations of extremist ties.</p>"))
        assert "failed 1" in workdir.run("check", "--force").stdout
        failed = json.loads(workdir.run("deliveries", "--state", "failed", "--format", "json").stdout)
        assert len(failed) == 2 and {d["target"] for d in failed} == {"broken"}, failed
        broken.fail_next = 0
        out = workdir.run("deliveries", "retry", "--all-failed").stdout
        assert out.startswith("queued again: 2 deliveries"), out
        assert "alerts sent 2" in workdir.run("check").stdout
        assert len(broken.received) == 3 and json.loads(workdir.run("deliveries", "--state", "failed", "--format", "json").stdout) == []
        trail = query(sqlite_path(workdir), "select action from triage_actions")
        assert [a for (a,) in trail] == ["delivery_retried"] * 3, trail
    finally:
        broken.stop()
