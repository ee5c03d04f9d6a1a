"""The web change log as a signed-in browser sees it (TestClient): sign-in and CSRF tokens."""
from __future__ import annotations

import re

from fastapi.testclient import TestClient


def csrf(page: str) -> str:
    """The CSRF token of the first form of a page."""
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def signed_in(app, name: str, password: str) -> TestClient:
    """A client signed in through the sign-in form (a real session, as a browser has)."""
    c = TestClient(app, base_url="http://127.0.0.1")
    token = csrf(c.get("/login").text)
    r = c.post("/login", data={"name": name, "password": password, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return c
