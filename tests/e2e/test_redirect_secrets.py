"""Secret request headers never follow a redirect to another origin (issue 16.4): Scrapy drops
only Authorization and Cookie, so a 302 from the API host to another host received X-Api-Key."""
from __future__ import annotations

from pathlib import Path

import pytest

from spiders import source_kinds
from tests.servers import Site

DATA = Path(__file__).resolve().parents[1] / "data" / "congress"
KEY = "k3y-for-the-redirect-test-0123456789"
# every kind that sends a credential, with the environment that makes it send one
KEY_KINDS = {"congress-gov": {"GOVWATCH_CONGRESS_API_KEY": KEY}}


def test_every_kind_that_sends_a_key_is_covered_here():
    senders = {name for name, kind in source_kinds.items() if hasattr(kind, "request_headers")}
    assert senders == set(KEY_KINDS), "a kind that sends request headers needs a redirect test here"


@pytest.fixture
def other_host():
    s = Site().start()
    yield s
    s.stop()


@pytest.mark.parametrize("kind", sorted(KEY_KINDS))
def test_key_is_sent_to_its_host_and_dropped_on_a_redirect_to_another(kind, site, other_host, workdir):
    body = (DATA / "hearings-with-committees.json").read_bytes()
    # same origin first: the key must still be sent there (so the test can tell "dropped" from "never sent")
    site.redirect("/v3/hearing/119?*", "/v3/moved/hearing/119?format=json", status=302)
    site.set("/v3/moved/hearing/119?*", body, content_type="application/json")
    workdir.write(sources=[{"id": "c", "kind": kind, "url": site.url("/v3"), "endpoint": "hearing", "max_pages": 1}])
    workdir.run("check", env=KEY_KINDS[kind])
    same = site.hits("/v3/moved/hearing/119?format=json")
    assert same and same[0].get("x-api-key") == KEY, site.requests

    # then to another host (localhost, not 127.0.0.1, and another port)
    site.redirect("/v3/hearing/119?*", other_host.url("/v3/hearing/119?format=json").replace("127.0.0.1", "localhost"),
                  status=302)
    other_host.set("/v3/hearing/119?*", body, content_type="application/json")
    workdir.run("check", "--force", env=KEY_KINDS[kind])
    hops = other_host.hits("/v3/hearing/119?format=json")
    assert hops, "the redirect was not followed"
    assert all(KEY not in v for h in hops for v in h.values()), hops


@pytest.mark.parametrize("src,dst,keep", [
    ("https://api.congress.gov/v3/a", "https://api.congress.gov/v3/b", True),
    ("http://api.example/a", "https://api.example/b", True),           # upgrade on the default ports
    ("https://api.congress.gov/v3/a", "http://api.congress.gov/v3/b", False),   # downgrade
    ("https://api.congress.gov/v3/a", "https://evil.example/v3/b", False),
    ("https://api.congress.gov/v3/a", "https://api.congress.gov:8443/v3/b", False),
    ("https://API.congress.gov./a", "https://api.congress.gov/b", True),
    ("https://api.congress.gov/a", "https://api.congress.gov:99999/b", False),
], ids=["same", "upgrade", "downgrade", "other-host", "other-port", "case-and-dot", "bad-port"])
def test_which_redirects_keep_secrets(src, dst, keep):
    from spiders.fetch import keeps_secrets

    assert keeps_secrets(src, dst) is keep
