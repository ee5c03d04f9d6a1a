"""Real local servers for the tests: a changeable website (ETag/304, redirects, delays, gzip),
a JSON webhook receiver (Apprise json://) and an SMTP server (aiosmtpd), all on 127.0.0.1."""
from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    etag: bool = True  # answer If-None-Match with 304
    delay: float = 0.0
    gzip: bool = False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a small backlog drops SYNs under a crawl (1 s retransmits)
    allow_reuse_address = True


class Site:
    """A website whose pages the test changes between runs."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        """`host`: the loopback address it listens on (127.0.0.2 is another host to a crawler)."""
        self.routes: dict[str, Route | Callable[[], Route]] = {}
        self.requests: list[tuple[str, str, dict]] = []
        self.times: list[float] = []  # monotonic arrival time of each request
        self.in_flight = self.most_in_flight = 0  # requests being answered now, and at most at once
        self.connections = 0  # TCP connections accepted
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def setup(self):
                with site._lock:
                    site.connections += 1
                super().setup()

            def do_GET(self):
                with site._lock:
                    site.in_flight += 1
                    site.most_in_flight = max(site.most_in_flight, site.in_flight)
                try:
                    self._get()
                finally:
                    with site._lock:
                        site.in_flight -= 1

            def _get(self):
                headers = {k.lower(): v for k, v in self.headers.items()}
                with site._lock:
                    site.requests.append(("GET", self.path, headers))
                    site.times.append(time.monotonic())
                    route = site.routes.get(self.path)
                    if route is None:  # an API route matches whatever its query string is
                        route = site.routes.get(self.path.split("?", 1)[0] + "?*")
                if callable(route):  # a route made per request; given the request's headers if it asks
                    route = route(headers) if getattr(route, "wants_headers", False) else route()
                if route is None:
                    body = b"<html><head><title>Page not found</title></head><body>Not found</body></html>"
                    self.send_response(404)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if route.delay:
                    time.sleep(route.delay)
                if route.status in (301, 302, 303, 307, 308):
                    self.send_response(route.status)
                    self.send_header("Location", route.headers.get("Location", "/"))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                etag = '"' + hashlib.sha1(route.body).hexdigest()[:16] + '"'
                if route.etag and route.status == 200 and headers.get("if-none-match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = route.body
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                if route.etag and route.status == 200:
                    self.send_header("ETag", etag)
                for k, v in route.headers.items():
                    self.send_header(k, v)
                if route.gzip:
                    body = gzip.compress(body)
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = _Server((host, 0), Handler)
        self.port = self.server.server_address[1]
        self.base = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "Site":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def set(self, path: str, body: bytes | str = b"", **kw) -> None:
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.routes[path] = Route(body=body, **kw)

    def url(self, path: str) -> str:
        return self.base + path

    def redirect(self, path: str, location: str, status: int = 301) -> None:
        self.routes[path] = Route(status=status, headers={"Location": location})

    def hits(self, path: str) -> list[dict]:
        return [h for (_m, p, h) in self.requests if p == path]


class Webhook:
    """Receives Apprise json:// POSTs; can fail the first N with a status, or hold its answer for
    `delay` seconds after keeping the message (a sender killed meanwhile never hears the 200)."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.fail_next = 0
        self.fail_status = 500
        self.delay = 0.0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                if hook.fail_next > 0:
                    hook.fail_next -= 1
                    status, body = hook.fail_status, b"error"
                else:
                    try:
                        data = json.loads(raw)
                    except ValueError:
                        data = {"raw": raw.decode("utf-8", "replace")}
                    data["_path"] = self.path
                    data["_headers"] = dict(self.headers.items())
                    hook.received.append(data)
                    status, body = 200, b"ok"
                    if hook.delay:
                        time.sleep(hook.delay)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Smtp:
    """A real SMTP server (aiosmtpd) keeping every message it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list = []
        outer = self

        class HandlerImpl:
            async def handle_DATA(self, server, session, envelope):
                msg = message_from_bytes(envelope.content, policy=default_policy)
                outer.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "msg": msg})
                return "250 OK"

        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.controller = Controller(HandlerImpl(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def url(self, to: str = "analyst@example.org") -> str:
        return f"mailto://127.0.0.1:{self.port}?from=govwatch@example.org&to={to}&mode=insecure"

    def stop(self) -> None:
        self.controller.stop()

    @staticmethod
    def text_of(m) -> str:
        msg = m["msg"]
        parts = []
        for part in msg.walk():
            if part.get_content_type() in ("text/plain", "text/html"):
                parts.append(part.get_content())
        return "\n".join(parts)
