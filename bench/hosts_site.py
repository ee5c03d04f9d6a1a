"""The shared benchmark site (../shared/bench-site/site.py) on many hosts at once, for
`bench/scale.py --only run`: one process serving the same port on 127.0.0.1 ... 127.0.0.N (Linux
routes all of 127.0.0.0/8 to the loopback interface), each address a host of its own to the
fetcher and its politeness.

Usage: python bench/hosts_site.py --hosts 200 --pages 1000 --port P [--latency-ms 50] [--change-every 600]

Source k of the watch list is `http://127.0.0.{1 + k % hosts}:P/news/page-NNNNN.html?copy=C`: the
site's page `k % pages`, copy `C = k // pages`. Each copy carries its own paragraph in <main> (and
its own ETag), so no two sources store the same bytes or the same text, as on real sites. Every
`--change-every` seconds the site moves to its next generation: 5% of the pages change in content,
20% only cosmetically (the footer date), as in the shared site. ETag and Last-Modified on every
page, 304 for a matching If-None-Match. Prints "serving ..." once every address listens.
"""
from __future__ import annotations

import argparse
import http.server
import importlib.util
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs

SHARED = Path(__file__).resolve().parents[2] / "shared" / "bench-site"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--change-every", type=float, default=600.0, help="seconds between generations")
    args = ap.parse_args()
    if not 1 <= args.hosts <= 254:
        raise SystemExit("--hosts: 1 to 254 (addresses 127.0.0.1 to 127.0.0.254)")
    spec = importlib.util.spec_from_file_location("bench_site", SHARED / "site.py")
    bench_site = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_site)
    model = bench_site.SiteModel(args.pages, 1, 1, 0.05, 0.20, host=f"http://127.0.0.1:{args.port}")
    state = bench_site.SiteState(model, 0, False)
    latency = args.latency_ms / 1000.0
    counts = {"200": 0, "304": 0, "404": 0}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # silence
            pass

        def do_GET(self):
            path, _, query = self.path.partition("?")
            if latency:
                time.sleep(latency)
            res = state.resources.get(path)
            copy = (parse_qs(query).get("copy") or ["0"])[0]
            if res is None or not copy.isdigit():
                self._send(404, b"<html><body><h1>404 Not Found</h1></body></html>", {})
                return
            etag = f'"{res.etag.strip(chr(34))}-c{copy}"'
            if etag in [t.strip().replace("W/", "", 1) for t in (self.headers.get("If-None-Match") or "").split(",")]:
                self._send(304, b"", {"ETag": etag, "Last-Modified": res.lastmod})
                return
            body = res.body
            at = body.find(b">", body.find(b"<main")) + 1
            if at > 0:
                body = body[:at] + (f"<p>Copy {copy} of this bulletin, published for regional office {copy} "
                                    f"of host {self.server.server_address[0]}.</p>").encode() + body[at:]
            self._send(200, body, {"Content-Type": res.ctype, "ETag": etag, "Last-Modified": res.lastmod})

        def _send(self, status: int, body: bytes, headers: dict) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)
            with lock:
                counts[str(status)] = counts.get(str(status), 0) + 1

    servers = []
    for h in range(1, args.hosts + 1):
        srv = bench_site.Server((f"127.0.0.{h}", args.port), Handler)
        servers.append(srv)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True).start()
    print(f"serving {args.hosts} hosts 127.0.0.1-127.0.0.{args.hosts} port {args.port}, {args.pages} pages, "
          f"next generation every {args.change_every:g}s", flush=True)
    g = 0
    try:
        while True:
            time.sleep(args.change_every)
            g += 1
            done = state.set_generation(g)
            with lock:
                seen = dict(counts)
            print(f"generation {g}: {len(done['changed'])} page(s) changed, rendered in {done['render_s']}s; "
                  f"served so far {seen}", flush=True)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
