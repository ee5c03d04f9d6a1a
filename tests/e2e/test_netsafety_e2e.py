"""Network safety through the real fetcher: a private target is refused, and so is a redirect
hop from a public-looking name to 127.0.0.1 (the hop never reaches the server)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.test_monitor import page

REPO = Path(__file__).resolve().parents[2]


def test_private_target_refused_by_default(site, workdir):
    site.set("/p", page())
    workdir.write(sources=[{"id": "p", "url": site.url("/p")}, {"id": "meta", "url": "http://169.254.169.254/latest/meta-data/"},
                           {"id": "dec", "url": f"http://2130706433:{site.port}/p"}],
                  fetch={"allow_private_networks": False})
    out = workdir.run("check").stdout
    assert "3 error" in out, out
    assert "refused" in out and "loopback" in out and "link-local" in out, out
    assert site.hits("/p") == []


def test_public_name_redirecting_to_loopback_is_refused(site):
    site.redirect("/go", site.url("/secret"), status=302)
    site.set("/secret", "internal admin page")
    p = subprocess.run([sys.executable, "-m", "tests.e2e.redirect_probe", f"http://public.example:{site.port}/go"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    results = json.loads(p.stdout.strip().splitlines()[-1])
    assert len(site.hits("/go")) == 1, "the first hop (a public name) must be fetched"
    assert site.hits("/secret") == [], "the redirect hop to 127.0.0.1 must never be requested"
    assert len(results) == 1 and results[0]["status"] is None
    assert "refused" in results[0]["error"] and "loopback" in results[0]["error"], results


def test_name_approved_only_over_ipv6_is_not_looked_up_again_over_ipv4(site):
    """Issue 16.1: the check saw only a public IPv6 address; the connection must use it, not a
    second (IPv4) lookup that a rebinding DNS server answers with 127.0.0.1."""
    site.set("/internal", "internal admin page")
    p = subprocess.run([sys.executable, "-m", "tests.e2e.rebind_probe", f"http://localhost:{site.port}/internal"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert site.hits("/internal") == [], "the internal page was fetched through a second lookup"
    assert out["connected_to"] == ["2606:2800:220:1::1"], out
    assert len(out["results"]) == 1 and out["results"][0]["status"] is None, out
