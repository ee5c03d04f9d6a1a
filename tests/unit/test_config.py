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
    ],
    ids=["not-a-mapping", "missing-id", "kind-option-range", "typo-key", "unknown-topic", "bad-size"],
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
