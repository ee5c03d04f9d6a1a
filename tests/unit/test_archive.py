"""Save Page Now settings and answers (monitor/archive.py, monitor/config.py): keys come from the
variables the file names and nowhere else, a typo is an error, Retry-After and SPN2 timestamps parse."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from monitor.archive import SavePageNow, retry_after, wayback_time
from monitor.config import load_config
from state.errors import ConfigError

SPN = """include_defaults: false
archive:
  save_page_now:
    enabled: true
    access_key_env: MY_SPN_ACCESS
    secret_key_env: MY_SPN_SECRET
    poll_every: 5s
"""


def test_keys_come_from_the_variables_the_file_names(tmp_path):
    p = tmp_path / "g.yaml"
    p.write_text(SPN)
    cfg = load_config(p, env={"MY_SPN_ACCESS": "a-key", "MY_SPN_SECRET": "s-key", "OTHER": "x"})
    spn = cfg.archive.save_page_now
    assert spn.enabled and spn.poll_every == 5.0 and spn.endpoint == "https://web.archive.org/save" and spn.changes == "matched"
    assert cfg.environment == {"MY_SPN_ACCESS": "a-key", "MY_SPN_SECRET": "s-key"}  # named ones only
    client = SavePageNow(spn, cfg.environment)
    assert client.missing == [] and client.replay_base == "https://web.archive.org/web/"
    assert "a-key" not in repr(cfg) and "s-key" not in repr(cfg)
    assert SavePageNow(spn, {}).missing == ["MY_SPN_ACCESS", "MY_SPN_SECRET"]


@pytest.mark.parametrize("text, expected", [
    ("archive:\n  save_page_now:\n    enabeld: true\n", "archive.save_page_now.enabeld: unknown key 'enabeld'; did you mean 'enabled'? (line 4)"),
    ("archive:\n  save_page_now:\n    endpoint: ftp://x\n", "archive.save_page_now.endpoint: 'ftp://x' is not an http(s) URL (line 4)"),
    ("archive:\n  save_page_now:\n    changes: some\n", "archive.save_page_now.changes: Input should be 'matched' or 'every' (got 'some') (line 4)"),
    ("archive:\n  save_page_now:\n    access_key_env: 'my key'\n", "archive.save_page_now.access_key_env: String should match pattern"),
], ids=["typo", "endpoint", "changes", "env-name"])
def test_bad_settings_name_the_field(tmp_path, text, expected):
    p = tmp_path / "g.yaml"
    p.write_text("include_defaults: false\n" + text)
    with pytest.raises(ConfigError) as e:
        load_config(p, env={})
    assert any(x.startswith(expected) for x in e.value.problems), e.value.problems


def test_retry_after_and_wayback_times():
    now = datetime(2026, 12, 1, 20, 0, 0, tzinfo=timezone.utc)
    assert retry_after("120") == 120.0
    assert retry_after("Tue, 01 Dec 2026 20:00:30 GMT", now) == 30.0
    assert retry_after("soon") is None and retry_after(None) is None
    assert wayback_time("20261201203005") == "2026-12-01T20:30:05Z" and wayback_time("junk") == ""
