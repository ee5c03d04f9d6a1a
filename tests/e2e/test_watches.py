"""Watches added in the browser are checked (issue 17 point 4, end to end): a running `govwatch run`
takes a watch an admin adds in the web UI within its next ticks, a paused source is not fetched,
and "check now" is served at the scheduler's next tick."""
from __future__ import annotations

import re
import signal
import time

from fastapi.testclient import TestClient

from tests.e2e.test_monitor import page
from tests.e2e.test_operations import GovwatchProcess, query, sqlite_path, wait_until


def test_a_running_scheduler_checks_a_watch_added_in_the_web_ui(site, workdir):
    from monitor.config import load_config
    from monitor.web import create_app
    from state.store import Store

    site.set("/opr", page())
    site.set("/gao", page(widget="GAO"))
    workdir.write(sources=[{"id": "ice-opr", "url": site.url("/opr"), "every": "1h"}],
                  scheduler={"tick": "1s", "delivery_every": "1s"})
    db = sqlite_path(workdir)
    with GovwatchProcess("run", cwd=workdir.path) as run:
        wait_until(lambda: site.hits("/opr"), 60, what="the configured source's first fetch")
        cfg = load_config(str(workdir.config))
        web = TestClient(create_app(cfg, Store(cfg.database)), base_url="http://127.0.0.1")  # loopback: the local admin
        token = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/sources").text).group(1)
        r = web.post("/sources", data={"csrf_token": token, "id": "gao", "url": site.url("/gao"), "kind": "page", "every": "1h",
                                       "render": "http"}, follow_redirects=False)
        assert r.status_code == 303, r.text
        wait_until(lambda: query(db, "select count(*) from snapshots where source_id = 'gao'")[0][0] > 0, 60,
                   what="the watch's first capture by the running scheduler")
        assert len(site.hits("/gao")) == 1, (query(db, "select started_at, outcome, status from fetch_attempts where source_id = 'gao'"),
                                             run.stderr()[-3000:])
        # paused: "check now" asked of a paused source does nothing until it is resumed
        web.post("/sources/gao/pause", data={"csrf_token": token})
        web.post("/sources/gao/check", data={"csrf_token": token})
        time.sleep(4)
        assert len(site.hits("/gao")) == 1
        web.post("/sources/gao/resume", data={"csrf_token": token})
        web.post("/sources/gao/check", data={"csrf_token": token})
        wait_until(lambda: len(site.hits("/gao")) == 2, 30, what="the check asked for now")
        rc, _ = run.signal(signal.SIGTERM, timeout=30)
        assert rc == 0, run.output()[-2000:]
    assert "1 watch(es) added in the web UI: gao" in run.output()
    trail = query(db, "select action, actor from admin_actions order by id")
    assert trail == [("watch_added", "local"), ("paused", "local"), ("check_requested", "local"), ("resumed", "local"),
                     ("check_requested", "local")]
