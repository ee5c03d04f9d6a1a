"""A local stand-in of the Wayback Machine's Save Page Now 2 API on 127.0.0.1: POST /save (url=...)
answers a job id, GET /save/status/{job} answers pending, then success with a timestamp. It can be
down (503), rate-limit (429 with Retry-After), and records every request with its time."""
from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

from tests.servers import _Server


class SavePageNow:
    def __init__(self) -> None:
        self.requests: list[dict] = []  # {"method", "path", "url", "auth", "at"}
        self.down = False  # 503 to everything
        self.limit_next = 0  # answer 429 to the next N submissions
        self.retry_after = "1"
        self.pending_polls = 1  # status polls answered "pending" before "success"
        self.jobs: dict[str, dict] = {}
        self.probe = lambda: None  # called at every request; its answer is kept with the request
        spn = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _answer(self, status: int, data: dict, headers: dict | None = None) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = urllib.parse.parse_qs(raw.decode()).get("url", [""])[0]
                spn.requests.append({"method": "POST", "path": self.path, "url": url, "auth": self.headers.get("Authorization", ""),
                                     "at": time.time(), "probe": spn.probe()})
                if spn.down:
                    return self._answer(503, {"message": "Service Unavailable"})
                if spn.limit_next > 0:
                    spn.limit_next -= 1
                    return self._answer(429, {"message": "Too Many Requests"}, {"Retry-After": spn.retry_after})
                job = f"spn2-{len(spn.jobs) + 1:04d}"
                spn.jobs[job] = {"url": url, "polls": 0}
                self._answer(200, {"url": url, "job_id": job})

            def do_GET(self):
                spn.requests.append({"method": "GET", "path": self.path, "url": "", "auth": self.headers.get("Authorization", ""),
                                     "at": time.time()})
                if spn.down:
                    return self._answer(503, {"message": "Service Unavailable"})
                job = self.path.rsplit("/", 1)[-1]
                j = spn.jobs.get(job)
                if not self.path.startswith("/save/status/") or j is None:
                    return self._answer(404, {"status": "error", "message": "no such job"})
                j["polls"] += 1
                if j["polls"] <= spn.pending_polls:
                    return self._answer(200, {"status": "pending", "job_id": job})
                self._answer(200, {"status": "success", "job_id": job, "original_url": j["url"], "timestamp": "20261201203005",
                                   "duration_sec": 1.5})

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/save"

    def submissions(self) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST"]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
