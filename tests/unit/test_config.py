"""Configuration: exact error texts (the message is the interface), durations, env overrides."""
from __future__ import annotations

import textwrap

import pytest

from monitor.config import load_config, parse_duration, parse_size
from state.errors import ConfigError


def load(tmp_path, text: str, env: dict | None = None):
    p = tmp_path / "govwatch.yaml"
    p.write_text(textwrap.dedent(text))
    return load_config(p, env=env or {})


def problems(tmp_path, text: str, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        load(tmp_path, text, env)
    assert ei.value.exit_code == 2
    return ei.value.problems


@pytest.mark.parametrize(
    "value,seconds",
    [("30m", 1800), ("6h", 21600), ("1d", 86400), ("1h30m", 5400), ("45s", 45), (90, 90), ("2w", 1209600), ("0.5s", 0.5)],
    ids=["30m", "6h", "1d", "1h30m", "45s", "int", "2w", "fraction"],
)
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["6 hours", "h", "", "5x", "-3", True, "10m later"], ids=["words", "unit-only", "empty", "bad-unit", "negative", "bool", "trailing"])
def test_bad_durations(value):
    with pytest.raises(ValueError, match="is not a duration like 30m, 6h or 1d"):
        parse_duration(value)


def test_sizes():
    assert parse_size("10MB") == 10_000_000 and parse_size("5MiB") == 5 * 2**20 and parse_size(1024) == 1024
    with pytest.raises(ValueError, match="is not a size"):
        parse_size("lots")


def test_every_problem_at_once_located(tmp_path):
    got = problems(tmp_path, """\
        include_defaults: false
        fetch:
          concurency: 4
        notify:
          - url: "slak://tokenA/tokenB"
          - url: "json://127.0.0.1/hook"
            topics: [opr-outcome]
        sources:
          - id: ok
            url: https://example.gov/a
          - id: oig-reports
            url: https://example.gov/b
            kind: fead
          - id: bad-every
            url: https://example.gov/c
            every: 6 hours
          - id: bad
            url: ftp://example.gov/d
            ignore: ['(unclosed']
          - id: ok
            url: https://example.gov/e
        """)
    assert got == [
        "fetch.concurency: unknown key 'concurency'; did you mean 'concurrency'? (line 3)",
        "sources[1] 'oig-reports': unknown kind 'fead'; known: feed, page (line 11)".replace(
            "feed, page", ", ".join(__import__("spiders").source_kinds.names())),
        "sources[2].every: '6 hours' is not a duration like 30m, 6h or 1d (line 16)",
        "sources[3].url: 'ftp://example.gov/d' is not an http(s) URL (line 18)",
        "sources[3].ignore[0]: bad pattern '(unclosed': missing ), unterminated subpattern at position 0 (line 19)",
        "sources[4].id: duplicate source id 'ok' (also at sources[0]) (line 20)",
        "notify[0].url: not a valid Apprise URL (scheme 'slak'); the URL is not shown because it may hold a token (line 5)",
        "notify[1].topics: unknown topic 'opr-outcome'; known: extremism-definitions, opr-outcomes (line 7)",
    ]


def test_apprise_url_never_echoed(tmp_path, caplog):
    caplog.set_level("DEBUG")
    with pytest.raises(ConfigError) as ei:
        load(tmp_path, """\
            include_defaults: false
            notify:
              - url: "slak://SECRETTOKEN123/xyz"
            """)
    assert "SECRETTOKEN123" not in str(ei.value)
    assert "SECRETTOKEN123" not in caplog.text


def test_malformed_yaml_names_line(tmp_path):
    got = problems(tmp_path, "sources:\n  - id: x\n   url: y\n")
    assert got == ["line 3, column 4: invalid YAML: expected <block end>, but found '<block mapping start>'"]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("- just\n- a list\n", ["(top level): expected a mapping of settings, got list"]),
        ("sources: [{url: 'https://x.gov/'}]\ninclude_defaults: false\n", ["sources[0].id: required (line 1)"]),
        ("sources:\n  - id: a\n    url: https://x.gov/\n    kind: feed\n    max_entries: 0\ninclude_defaults: false\n",
         ["sources[0].max_entries: Input should be greater than or equal to 1 (got 0) (line 5)"]),
        ("sources:\n  - id: a\n    url: https://x.gov/\n    evry: 1h\ninclude_defaults: false\n",
         ["sources[0].evry: unknown key 'evry'; did you mean 'every'? (line 4)"]),
        ("sources:\n  - id: a\n    url: https://x.gov/\n    topics: [nope]\ninclude_defaults: false\n",
         ["sources[0].topics: unknown topic 'nope'; known: extremism-definitions, opr-outcomes (line 4)"]),
        ("fetch:\n  max_bytes: lots\n", ["fetch.max_bytes: 'lots' is not a size like 512KB, 10MB or 10485760 (line 2)"]),
        ("sources:\n  - id: a\n    url: https://x.gov/\n    alert_on: ['use of force', ' - ']\ninclude_defaults: false\n",
         ["sources[0].alert_on: ' - ' is not a phrase (words to look for in added text) (line 4)"]),
        ("sources:\n  - id: a\n    url: https://x.gov/\n    alert_on: use of force\ninclude_defaults: false\n",
         ["sources[0].alert_on: Input should be a valid list (got 'use of force') (line 4)"]),
    ],
    ids=["not-a-mapping", "missing-id", "kind-option-range", "typo-key", "unknown-topic", "bad-size", "alert-on-not-a-phrase",
         "alert-on-not-a-list"],
)
def test_single_problems(tmp_path, text, expected):
    assert problems(tmp_path, text) == expected


def test_missing_explicit_file(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path / "nope.yaml", env={})
    assert ei.value.problems == ["file not found"]


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(env={})
    assert cfg.database == "sqlite:///state/govwatch.db"
    assert not cfg.from_file and len(cfg.sources) >= 5
    assert {t.id for t in cfg.topics} >= {"opr-outcomes", "extremism-definitions"}


def test_env_overrides(tmp_path):
    p = tmp_path / "other.yaml"
    p.write_text("include_defaults: false\nsources: [{id: a, url: 'https://x.gov/'}]\n")
    cfg = load_config(env={"GOVWATCH_CONFIG": str(p), "GOVWATCH_DATABASE": "sqlite:////tmp/x.db",
                           "GOVWATCH_NOTIFY": "json://127.0.0.1:9/a json://127.0.0.1:9/b"})
    assert cfg.path == str(p) and cfg.database == "sqlite:////tmp/x.db"
    assert [t.name for t in cfg.notify] == ["env-1", "env-2"]
    assert [s.id for s in cfg.sources] == ["a"]


def test_bad_env_notify_is_reported_without_url(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("include_defaults: false\n")
    with pytest.raises(ConfigError) as ei:
        load_config(p, env={"GOVWATCH_NOTIFY": "nope://SECRET999"})
    assert ei.value.problems == ["GOVWATCH_NOTIFY[0]: not a valid Apprise URL (scheme 'nope'); the URL is not shown because it may hold a token"]


def test_user_source_replaces_builtin_with_same_id(tmp_path):
    cfg = load(tmp_path, "sources:\n  - id: ice-opr\n    url: https://example.gov/opr\n")
    opr = [s for s in cfg.sources if s.id == "ice-opr"]
    assert len(opr) == 1 and opr[0].url == "https://example.gov/opr"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("notify: ['slack://T0KENAAAA/B0KENBBBB/C0KENCCCCCCC']\n",
         ["notify[0]: Input should be a valid dictionary (line 1)"]),
        ("notify: 'slack://T0KENAAAA/B0KENBBBB/C0KENCCCCCCC'\n", ["notify: Input should be a valid list (line 1)"]),
    ],
    ids=["bare-url-in-list", "bare-url"],
)
def test_a_bare_apprise_url_is_not_echoed(tmp_path, text, expected):
    got = problems(tmp_path, "include_defaults: false\n" + text.replace("(line 1)", "(line 2)"))
    assert got == [e.replace("(line 1)", "(line 2)") for e in expected]
    assert not any("T0KEN" in p for p in got)


def test_target_names_are_unique_across_alert_and_health_targets(tmp_path):
    got = problems(tmp_path, """\
        include_defaults: false
        notify:
          - {url: "json://127.0.0.1:9/team", name: team}
        health_notify:
          - {url: "json://127.0.0.1:9/ops", name: team}
        """)
    assert got == ["health_notify[0].name: duplicate target name 'team' (line 5)"]


def test_api_keys_never_go_in_source_urls(tmp_path):
    got = problems(tmp_path, """\
        include_defaults: false
        sources:
          - id: c
            url: https://api.congress.gov/v3/hearing/119?api_key=SECRETKEY123456
        """)
    assert got == ["sources[0].url: the URL holds an API key or token parameter; keys never go in URLs "
                   "(Congress.gov: set GOVWATCH_CONGRESS_API_KEY); the URL is not shown (line 4)"]


@pytest.mark.parametrize("yaml_text,problem", [
    ("sources: [{id: a, url: 'https://e.gov/a', every: 1.0e+308}]", "sources[0].every: '1e+308' is out of range: from 0s to 3660d (line 2)"),
    ("sources: [{id: a, url: 'https://e.gov/a', every: .inf}]", "sources[0].every: inf is not a duration like 30m, 6h or 1d (line 2)"),
    ("sources: [{id: a, url: 'https://e.gov/a', every: .nan}]", "sources[0].every: nan is not a duration like 30m, 6h or 1d (line 2)"),
    ("sources: [{id: a, url: 'https://e.gov/a', every: 999999999999d}]", "sources[0].every: '999999999999d' is out of range: from 0s to 3660d (line 2)"),
    ("sources: [{id: a, url: 'https://e.gov/a', expect_update_within: 0s}]", "sources[0].expect_update_within: '0s' is out of range: from 1s to 3660d (line 2)"),
    ("scheduler: {tick: 0s}", "scheduler.tick: '0s' is out of range: from 0.1s to 1d (line 2)"),
    ("scheduler: {delivery_every: 0s}", "scheduler.delivery_every: '0s' is out of range: from 0.1s to 1d (line 2)"),
    ("scheduler: {lease: 100000d}", "scheduler.lease: '100000d' is out of range: from 1s to 7d (line 2)"),
    ("scheduler: {stop_timeout: .inf}", "scheduler.stop_timeout: inf is not a duration like 30m, 6h or 1d (line 2)"),
    ("fetch: {per_host_delay: 1.0e+9}", "fetch.per_host_delay: '1000000000.0' is out of range: from 0s to 10m (line 2)"),
    ("fetch: {timeout: 0s}", "fetch.timeout: '0s' is out of range: from 1s to 10m (line 2)"),
    ("fetch: {max_retry_after: 400d}", "fetch.max_retry_after: '400d' is out of range: from 0s to 1d (line 2)"),
    ("fetch: {max_bytes: 100TB}", "fetch.max_bytes: '100TB' is not a size like 512KB, 10MB or 10485760 (line 2)"),
    ("fetch: {max_bytes: 100GB}", "fetch.max_bytes: '100GB' is out of range: from 1,024 bytes to 2,048 MiB (line 2)"),
    ("health: {failures_before_alert: 100000}", "health.failures_before_alert: Input should be less than or equal to 1000 (got 100000) (line 2)"),
], ids=["every-1e308", "every-inf", "every-nan", "every-huge", "expect-0", "tick-0", "delivery-0", "lease-huge", "stop-inf",
        "delay-1e9", "timeout-0", "retry-after-huge", "size-unit", "size-huge", "failures-huge"])
def test_numbers_that_would_break_a_check_are_refused_with_their_place(tmp_path, yaml_text, problem):
    """Issue 16.7: each of these validated, then crashed every check, spun `run` or hung a crawl."""
    assert problems(tmp_path, "include_defaults: false\n" + yaml_text + "\n") == [problem]


def test_topic_numbers_are_bounded(tmp_path):
    text = ("include_defaults: false\ntopics:\n  - {id: t, title: T, threshold: .inf, "
            "rules: [{id: r, phrases: [x], weight: 1.0e+300}]}\n")
    got = problems(tmp_path, text)
    assert len(got) == 2 and all(p.startswith("topics[0]: ") and "less than or equal to 1000" in p for p in got), got


def test_deeply_nested_yaml_is_a_located_error_not_a_recursion_error(tmp_path):
    got = problems(tmp_path, "include_defaults: false\nsourcs: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert got == ["line 2, column 1008: invalid YAML: exceeded maximum nesting depth"]


def test_alert_on_phrases_load_and_a_target_may_filter_on_them(tmp_path):
    cfg = load(tmp_path, """\
        include_defaults: false
        notify:
          - url: "json://127.0.0.1:9/hook"
            topics: [alert-on]
        sources:
          - id: a
            url: https://x.gov/
            alert_on: [" use of force "]
        """)
    assert cfg.sources[0].alert_on == ["use of force"] and cfg.notify[0].topics == ["alert-on"]


def test_ocr_settings(tmp_path):
    cfg = load(tmp_path, "include_defaults: false\nocr:\n  max_pages: 5\n  page_timeout: 30s\n  timeout: 2m\n  language: eng+spa\n")
    assert (cfg.ocr.enabled, cfg.ocr.max_pages, cfg.ocr.page_timeout, cfg.ocr.timeout, cfg.ocr.language, cfg.ocr.dpi) == (
        True, 5, 30.0, 120.0, "eng+spa", 300)
    assert load(tmp_path, "include_defaults: false\n").ocr.max_pages == 20
    got = problems(tmp_path, "include_defaults: false\nocr:\n  max_pages: 0\n  timeout: 0s\n  tesseract_path: /x\n")
    assert got == ["ocr.max_pages: Input should be greater than or equal to 1 (got 0) (line 3)",
                   "ocr.timeout: Input should be greater than 0 (got 0.0) (line 4)",
                   "ocr.tesseract_path: unknown key 'tesseract_path' (line 5)"], got


def test_validate_finds_everything_at_once(tmp_path):
    """Selectors compiled at load, a duplicate id beside the other problems (also of sources with
    problems of their own), an unknown kind beside its source's other problems; private URLs are
    reported after them (see test_private_urls_are_advisories)."""
    kinds = ", ".join(__import__("spiders").source_kinds.names())
    got = problems(tmp_path, """\
        include_defaults: false
        sources:
          - id: a
            url: https://example.gov/a
            select: "div[[["
          - id: b
            url: https://example.gov/b
            kind: fead
            every: 6 hours
          - id: a
            url: ftp://example.gov/a2
          - id: lst
            kind: listing
            url: https://example.gov/l
            select: "#content table"
            items: "td a::attr(href)"
            item_row: "tr >"
          - id: local
            url: http://127.0.0.1:8080/x
        """)
    assert got == [
        "sources[0].select: 'div[[[' is not a valid CSS selector: Expected ident or '*', got <DELIM '[' at 4> (line 5)",
        f"sources[1] 'b': unknown kind 'fead'; known: {kinds} (line 6)",
        "sources[1].every: '6 hours' is not a duration like 30m, 6h or 1d (line 9)",
        "sources[2].url: 'ftp://example.gov/a2' is not an http(s) URL (line 11)",
        "sources[2].id: duplicate source id 'a' (also at sources[0]) (line 10)",
        "sources[3].item_row: 'tr >' is not a valid CSS selector: Expected selector, got <EOF at 4> (line 17)",
        "sources[4].url: host 127.0.0.1 is a loopback address, which is refused unless fetch.allow_private_networks "
        "is true (set it for local testing only) (line 19)",
    ]


def test_private_urls_are_advisories(tmp_path):
    """A run goes on (the fetch refuses such a source, and one source never stops the others);
    `validate` reports them as problems; allow_private_networks silences them."""
    text = """\
        include_defaults: false
        sources:
          - {id: meta, url: "http://169.254.169.254/latest/"}
          - {id: lh, url: "http://localhost:8000/"}
          - {id: dec, url: "http://2130706433/"}
          - {id: pub, url: "https://www.ice.gov/"}
        """
    cfg = load(tmp_path, text)
    fix = "which is refused unless fetch.allow_private_networks is true (set it for local testing only)"
    assert cfg.advisories == [f"sources[0].url: host 169.254.169.254 is a link-local (cloud metadata) address, {fix} (line 3)",
                              f"sources[1].url: host localhost is a loopback address, {fix} (line 4)",
                              f"sources[2].url: host 2130706433 is a loopback address, {fix} (line 5)"]
    assert [s.id for s in cfg.sources] == ["meta", "lh", "dec", "pub"]
    assert load(tmp_path, text.replace("include_defaults: false\n", "include_defaults: false\n        fetch: {allow_private_networks: true}\n")).advisories == []
