"""The congress-gov kind: real Congress.gov list responses, committee filtering and chaining,
pagination, errors, the disabled reason, and the API key kept out of everything the kind returns."""
from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import pytest

from spiders import source_kinds
from spiders.congress import (
    DISABLED_NO_KEY,
    KEY_ENV,
    CongressOptions,
    CongressSource,
    parse_congress,
)
from spiders.kinds import FetchRequest, Fetched
from state.errors import SourceError

REPO = Path(__file__).resolve().parents[2]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"
DATA = REPO / "tests" / "data" / "congress"
KEY = "k3y-Th4t-Must-N0t-Leak-0123456789"


def shared(name: str) -> bytes:
    path = SHARED_FIXTURES / name
    if not path.exists():
        pytest.skip(f"real Congress.gov sample {path} is absent (it lives in /work/shared/fixtures, outside the repo)")
    return path.read_bytes()


class Src:
    """The parts of a SourceConfig the kind reads."""

    def __init__(self, url: str = "https://api.congress.gov/v3", **options):
        self.id = "congress-test"
        self.url = url
        self.options = CongressOptions(**options)


def fetched(body: bytes, url: str) -> Fetched:
    return Fetched(request=FetchRequest(source_id="congress-test", url=url), url=url, status=200,
                   headers={"content-type": "application/json"}, body=body,
                   started_at=datetime(2026, 9, 20, tzinfo=timezone.utc), duration_ms=5)


def test_registered_with_its_options():
    kind = source_kinds.get("congress-gov")
    assert kind is CongressSource
    assert set(kind.Options.model_fields) == {"endpoint", "congress", "committees", "limit", "max_pages"}


def test_real_hearing_list():
    url = "https://api.congress.gov/v3/hearing/119?limit=3&format=json"
    items, nxt = parse_congress(shared("congress-hearing-list.sample.json"), url)
    assert [(i.key, i.url, i.title, i.published) for i in items] == [
        ("hearing/119/house/64431", "https://www.govinfo.gov/app/details/CHRG-119hhrg64431",
         "House hearing, jacket 64431 (119th Congress)", "2026-09-18T19:55:55Z"),
        ("hearing/119/house/63127", "https://www.govinfo.gov/app/details/CHRG-119hhrg63127",
         "House hearing, jacket 63127 (119th Congress)", "2026-09-18T01:21:16Z"),
        ("hearing/119/house/64404", "https://www.govinfo.gov/app/details/CHRG-119hhrg64404",
         "House hearing, jacket 64404 (119th Congress)", "2026-09-18T01:21:16Z"),
    ]
    assert items[0].extra == {"congress": 119, "chamber": "House", "jacketNumber": 64431,
                              "updateDate": "2026-09-18T19:55:55Z",
                              "api_url": "https://api.congress.gov/v3/hearing/119/house/64431"}
    assert all(i.doc_url == "" for i in items)
    assert nxt == "https://api.congress.gov/v3/hearing/119?offset=3&limit=3&format=json"


def test_real_committee_report_list():
    url = "https://api.congress.gov/v3/committee-report/119?limit=3&format=json"
    items, nxt = parse_congress(shared("congress-committee-report-list.sample.json"), url)
    assert [(i.key, i.url, i.title, i.published) for i in items] == [
        ("H. Rept. 119-1", "https://www.congress.gov/congressional-report/119th-congress/house-report/1",
         "H. Rept. 119-1", "2025-05-27T14:12:39Z"),
        ("H. Rept. 119-2", "https://www.congress.gov/congressional-report/119th-congress/house-report/2",
         "H. Rept. 119-2", "2025-05-27T14:12:41Z"),
        ("H. Rept. 119-3", "https://www.congress.gov/congressional-report/119th-congress/house-report/3",
         "H. Rept. 119-3", "2025-05-27T14:12:42Z"),
    ]
    assert items[0].extra["cmte_rpt_id"] == 289187
    assert items[0].extra["citation"] == "H. Rept. 119-1"
    assert items[0].extra["api_url"] == "https://api.congress.gov/v3/committee-report/119/HRPT/1?format=json"
    assert nxt == "https://api.congress.gov/v3/committee-report/119?offset=3&limit=3&format=json"


def test_hearings_filtered_by_the_committees_an_entry_names():
    body = (DATA / "hearings-with-committees.json").read_bytes()
    items, nxt = parse_congress(body, "https://api.congress.gov/v3/hearing/119?format=json", committees=["hshm00", "ssga00"])
    # hsag00 is dropped; the Senate entry names no committee, so it cannot be judged and is kept
    assert [(i.key, i.title, i.published) for i in items] == [
        ("hearing/119/house/61102", "Examining Threats to the Homeland Workforce", "2026-03-11"),
        ("hearing/119/senate/59870", "Senate hearing, jacket 59870 (119th Congress)", "2026-09-01T08:30:00Z"),
    ]
    assert items[0].extra["committees"] == ["hshm00"]
    assert items[1].url == "https://www.govinfo.gov/app/details/CHRG-119shrg59870"
    assert nxt is None
    unfiltered, _ = parse_congress(body, "https://api.congress.gov/v3/hearing/119?format=json")
    assert len(unfiltered) == 3


def test_committee_meetings_and_a_key_in_next_is_stripped():
    body = (DATA / "committee-meetings.json").read_bytes()
    items, nxt = parse_congress(body, "https://api.congress.gov/v3/committee-meeting/119?format=json")
    assert [(i.key, i.url, i.title) for i in items] == [
        ("committee-meeting/119/house/118421", "https://www.congress.gov/event/119th-congress/house-event/118421",
         "House committee meeting 118421 (119th Congress)"),
        ("committee-meeting/119/senate/337502", "https://www.congress.gov/event/119th-congress/senate-event/337502",
         "Senate committee meeting 337502 (119th Congress)"),
    ]
    assert nxt == "https://api.congress.gov/v3/committee-meeting/119?offset=2&limit=2&format=json"


def test_request_urls_carry_no_key_and_use_the_committee_route_for_reports(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    kind = CongressSource()
    assert kind.request_url(Src(endpoint="hearing")) == "https://api.congress.gov/v3/hearing/119?format=json&limit=250&offset=0"
    assert kind.request_url(Src(endpoint="committee-meeting", congress=118, limit=50)) == \
        "https://api.congress.gov/v3/committee-meeting/118?format=json&limit=50&offset=0"
    assert kind.request_url(Src(endpoint="committee-report", committees=["ssga00", "hshm00"])) == \
        "https://api.congress.gov/v3/committee/senate/ssga00/reports?format=json&limit=250&offset=0"
    # an operator's own route is kept, minus a pasted key
    assert kind.request_url(Src(url="https://api.congress.gov/v3/hearing/119/senate?api_key=abc&limit=5")) == \
        "https://api.congress.gov/v3/hearing/119/senate?limit=5&format=json"


def test_committee_route_keeps_this_congress_and_chains_to_the_next_committee():
    kind = CongressSource()
    src = Src(endpoint="committee-report", congress=119, committees=["hshm00", "ssga00", "hsgo00"])
    url = "https://api.congress.gov/v3/committee/house/hshm00/reports?format=json&limit=250&offset=0"
    parsed = kind.parse(fetched((DATA / "committee-reports-hshm00.json").read_bytes(), url), src)
    assert [(i.key, i.url) for i in parsed.items] == [
        ("H. Rept. 119-214", "https://www.congress.gov/congressional-report/119th-congress/house-report/214"),
    ]
    assert parsed.items[0].extra["committees"] == ["hshm00"]
    # the page held reports of this congress: its own next page comes first
    assert parsed.next_pages == ["https://api.congress.gov/v3/committee/house/hshm00/reports?offset=3&limit=3&format=json"]
    # a page of older reports only ends that committee: on to the next one
    old = "https://api.congress.gov/v3/committee/senate/ssga00/reports?format=json&limit=250&offset=0"
    parsed = kind.parse(fetched((DATA / "committee-reports-old-only.json").read_bytes(), old), src)
    assert parsed.items == []
    assert parsed.next_pages == ["https://api.congress.gov/v3/committee/house/hsgo00/reports?format=json&limit=250&offset=0"]
    last = "https://api.congress.gov/v3/committee/house/hsgo00/reports?format=json&limit=250&offset=0"
    parsed = kind.parse(fetched((DATA / "committee-reports-old-only.json").read_bytes(), last), src)
    assert parsed.next_pages == []


@pytest.mark.parametrize("body, message", [
    (b"<html>Service Unavailable</html>", "Congress.gov API: not JSON"),
    (b"[1, 2]", "Congress.gov API: expected a JSON object"),
    (b'{"pagination": {"count": 0}}', "Congress.gov API: no hearings, reports or committeeMeetings list"),
    (b'{"hearings": {"a": 1}}', "Congress.gov API: 'hearings' is not a list"),
    ((DATA / "error-no-key.json").read_bytes(), "Congress.gov API error: No api_key was supplied."),
], ids=["html", "array", "no-list", "list-not-list", "api-error"])
def test_bad_responses_are_source_errors(body, message):
    url = "https://api.congress.gov/v3/hearing/119?format=json&api_key=" + KEY
    with pytest.raises(SourceError) as e:
        parse_congress(body, url)
    assert str(e.value).startswith(message)
    assert KEY not in str(e.value) and KEY not in (e.value.url or "")
    assert e.value.url == "https://api.congress.gov/v3/hearing/119?format=json"


def test_disabled_without_a_key_and_header_only_with_one():
    kind = CongressSource()
    assert kind.disabled_reason(Src(), env={}) == DISABLED_NO_KEY == "GOVWATCH_CONGRESS_API_KEY is not set"
    assert kind.disabled_reason(Src(), env={KEY_ENV: "  "}) == DISABLED_NO_KEY
    assert kind.disabled_reason(Src(), env={KEY_ENV: KEY}) is None
    assert kind.request_headers(Src(), env={KEY_ENV: KEY}) == {"X-Api-Key": KEY, "Accept": "application/json"}
    assert "X-Api-Key" not in kind.request_headers(Src(), env={})


def test_the_key_reaches_the_kind_from_the_environment_read_by_the_configuration(monkeypatch, tmp_path):
    """The environment is read once, by monitor/config.py; the kind sees what the Monitor hands it."""
    from monitor.config import load_config
    from monitor.pipeline import Monitor
    from state.store import Store

    cfg_file = tmp_path / "govwatch.yaml"
    cfg_file.write_text(f"database: sqlite:///{tmp_path}/gw.db\ninclude_defaults: false\nsources:\n"
                        "  - {id: hearings, kind: congress-gov, url: 'https://api.congress.gov/v3/hearing', options: {committees: [hshm00]}}\n")
    monkeypatch.delenv(KEY_ENV, raising=False)
    cfg = load_config(cfg_file)
    mon = Monitor(cfg, Store(cfg.database))
    assert mon.leases.disabled_reason(cfg.source("hearings")) == DISABLED_NO_KEY
    monkeypatch.setenv(KEY_ENV, KEY)
    assert mon.leases.disabled_reason(cfg.source("hearings")) == DISABLED_NO_KEY  # read at load, not per call
    cfg = load_config(cfg_file)
    mon = Monitor(cfg, Store(cfg.database))
    assert mon.leases.disabled_reason(cfg.source("hearings")) == ""
    assert mon.ctx.headers(cfg.source("hearings"))["X-Api-Key"] == KEY
    assert KEY not in repr(cfg)


@pytest.mark.parametrize("name", ["hearings-with-committees.json", "committee-meetings.json", "committee-reports-hshm00.json"])
def test_the_key_appears_only_in_the_header(name):
    kind = CongressSource()
    src = Src(endpoint="committee-report", committees=["hshm00", "ssga00"])
    url = kind.request_url(src)
    parsed = kind.parse(fetched((DATA / name).read_bytes(), url), src)
    assert parsed.items
    everything = json.dumps([url, parsed.title, parsed.next_pages, [asdict(i) for i in parsed.items]], default=str)
    assert KEY not in everything
    assert "api_key" not in everything.lower()
    assert kind.request_headers(src, env={KEY_ENV: KEY})["X-Api-Key"] == KEY


@pytest.mark.parametrize("options, problem", [
    ({"endpoint": "bill"}, "endpoint"),
    ({"committees": ["homeland"]}, "not a committee system code"),
    ({"limit": 500}, "less than or equal to 250"),
    ({"api_key": "x"}, "Extra inputs are not permitted"),
], ids=["endpoint", "code", "limit", "no-key-option"])
def test_options_are_strict(options, problem):
    with pytest.raises(ValueError) as e:
        CongressOptions(**options)
    assert problem in str(e.value)


def test_a_new_entry_asks_for_its_details_with_the_key_in_the_header_of_the_api_only():
    """Real list entries carry no title: the kind follows each to its details route (the pipeline
    fetches it for a NEW entry only), sending the key to https://api.congress.gov and nowhere else."""
    env = {KEY_ENV: KEY}
    kind = CongressSource()
    url = "https://api.congress.gov/v3/hearing/119?limit=3&format=json"
    parsed = kind.parse(fetched(shared("congress-hearing-list.sample.json"), url), Src())
    assert [i.doc_url for i in parsed.items] == [
        "https://api.congress.gov/v3/hearing/119/house/64431?format=json",
        "https://api.congress.gov/v3/hearing/119/house/63127?format=json",
        "https://api.congress.gov/v3/hearing/119/house/64404?format=json",
    ]
    assert kind.document_headers(Src(), parsed.items[0].doc_url, env=env) == {"X-Api-Key": KEY, "Accept": "application/json"}
    for elsewhere in ("https://www.govinfo.gov/app/details/CHRG-119hhrg64431", "http://api.congress.gov/v3/hearing/1",
                      "https://api.congress.gov.evil.example/v3/hearing/1"):
        assert kind.document_headers(Src(), elsewhere, env=env) == {}
    # an entry whose url is not the API's is not followed (its key would go elsewhere)
    body = json.dumps({"hearings": [{"chamber": "House", "congress": 119, "jacketNumber": 1,
                                     "url": "https://example.org/v3/hearing/119/house/1?api_key=" + KEY}]}).encode()
    (it,) = kind.parse(fetched(body, url), Src()).items
    assert it.doc_url == "" and KEY not in json.dumps(asdict(it))


def test_hearing_details_give_the_title_and_committee_a_reader_sees():
    """tests/data/congress/hearing-detail-64431.json is HAND-MADE in the documented shape of
    GET /v3/hearing/{congress}/{chamber}/{jacket}: its committee, date and meeting are those the
    real meeting 119003 record states for jacket 64431; its title is that meeting's title."""
    url = "https://api.congress.gov/v3/hearing/119/house/64431?format=json"
    d = CongressSource().read_document(fetched((DATA / "hearing-detail-64431.json").read_bytes(), url), Src())
    assert d.title == "Oversight of Fraud and Misuse of Federal Funds in Minnesota: Part II"
    assert d.published == "2026-03-04"
    assert d.extra == {"committees": ["hsgo00"], "committee_names": ["House Oversight and Government Reform"],
                       "event_id": "119003"}
    assert d.text.splitlines() == [
        "Oversight of Fraud and Misuse of Federal Funds in Minnesota: Part II",
        "Committee: House Oversight and Government Reform (hsgo00)",
        "Date: 2026-03-04",
    ]


def test_report_and_meeting_details_and_bad_details():
    from spiders.congress import parse_detail
    report = {"committeeReports": [{"citation": "H. Rept. 119-230", "title": "DHS Workforce Integrity Act",
                                    "committees": [{"name": "Homeland Security Committee", "systemCode": "hshm00"}],
                                    "issueDate": "2026-09-10T04:00:00Z"}]}
    d = parse_detail(json.dumps(report).encode(), "https://api.congress.gov/v3/committee-report/119/HRPT/230")
    assert (d.title, d.published, d.extra["committees"]) == ("DHS Workforce Integrity Act", "2026-09-10T04:00:00Z", ["hshm00"])
    assert "Citation: H. Rept. 119-230" in d.text
    meeting = {"committeeMeeting": {"title": "Threats to the Homeland", "date": "2026-09-23T14:00:00Z",
                                    "committees": [{"name": "Senate HSGAC", "systemCode": "ssga00"}],
                                    "witnesses": [{"name": "Jane Doe", "position": "Director", "organization": "DHS"}]}}
    d = parse_detail(json.dumps(meeting).encode(), "https://api.congress.gov/v3/committee-meeting/119/senate/1")
    assert d.title == "Threats to the Homeland" and "Witness: Jane Doe, Director, DHS" in d.text
    for body, message in [(b"<html>", "not JSON"), (b'{"hearings": []}', "no hearing, committeeReports or committeeMeeting"),
                          ((DATA / "error-no-key.json").read_bytes(), "Congress.gov API error")]:
        with pytest.raises(SourceError, match=message) as e:
            parse_detail(body, "https://api.congress.gov/v3/hearing/119/house/1?api_key=" + KEY)
        assert KEY not in str(e.value) and KEY not in (e.value.url or "")
