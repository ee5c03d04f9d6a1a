"""`govwatch demo`: see govwatch work in a minute, offline. A replay of real captures and real
documents (monitor/demo_data, each with its provenance) is served on 127.0.0.1 in generations;
`govwatch check` runs against each generation exactly as it runs against the real sites, its
alerts go to a local webhook catcher that prints them as they arrive, and the change log of the
replay is then served in the browser. Nothing leaves 127.0.0.1; everything is written to a
temporary folder (or `--keep DIR`).

What the replay shows, and what it expects (the demo checks its own outcome and exits 1 when an
expected alert is missing or the noisy page alerted):
  generation 1  the baseline: five sources read, nothing alerted
  generation 2  the DHS OIG listing gains a report on ICE OPR (its PDF is read); the Federal
                Register query gains the executive order designating Antifa a domestic terrorist
                organization (its full text is read); the noisy page loses a banner, its date moves
  generation 3  the ICE OPR page gains a paragraph of outcome figures; the DHS review of domestic
                violent extremism in its workforce is taken down (404); the noisy page's date moves
"""
from __future__ import annotations

import hashlib
import html
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

import yaml

from state.errors import GovwatchError

DEFAULT_PORT = 8765


class UsageError(GovwatchError):
    """A port or folder the demo cannot use: said in one line, exit 2 (nothing was run)."""
    exit_code = 2

LABEL = "REPLAY"


def _data(name: str):
    return resources.files("monitor").joinpath("demo_data", name)


def documents() -> dict[str, dict]:
    """The corpus documents the replay serves (real texts; see each one's `origin` and `url`)."""
    return json.loads(_data("documents.json").read_text(encoding="utf-8"))["documents"]


# -- the replayed sites ----------------------------------------------------------------------
@dataclass
class Response:
    body: bytes
    status: int = 200
    content_type: str = "text/html; charset=utf-8"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Replay:
    """The replayed sites on 127.0.0.1, one generation at a time (ETag and 304 as real sites do)."""

    def __init__(self) -> None:
        self.routes: dict[str, Response] = {}
        self.hits: dict[str, int] = {}
        self._lock = threading.Lock()
        replay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                with replay._lock:
                    r = replay.routes.get(path)
                    replay.hits[path] = replay.hits.get(path, 0) + 1
                if r is None:
                    r = Response(b"<html><body><h1>Page not found</h1></body></html>", 404)
                tag = '"' + hashlib.sha256(r.body).hexdigest()[:16] + '"'
                if r.status == 200 and self.headers.get("If-None-Match") == tag:
                    self.send_response(304)
                    self.send_header("ETag", tag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(r.status)
                self.send_header("Content-Type", r.content_type)
                self.send_header("Content-Length", str(len(r.body)))
                if r.status == 200:
                    self.send_header("ETag", tag)
                self.end_headers()
                self.wfile.write(r.body)

        self.server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True, name="govwatch-demo-replay").start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def show(self, routes: dict[str, Response]) -> None:
        with self._lock:
            self.routes = dict(routes)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Catcher:
    """A local webhook (Apprise json://) that keeps and prints every alert as it arrives."""

    def __init__(self, out=print) -> None:
        self.received: list[dict] = []
        self._lock = threading.Lock()
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    data = json.loads(raw)
                except ValueError:
                    data = {"title": "(not JSON)", "message": raw.decode("utf-8", "replace")}
                with catcher._lock:
                    catcher.received.append(data)
                    out(_alert_lines(data))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True, name="govwatch-demo-catcher").start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/alerts"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _alert_lines(data: dict) -> str:
    body = [line for line in str(data.get("message", "")).splitlines() if line.strip()][:4]
    return "\n".join([f"  ALERT  {data.get('title', '')}"] + [f"         {line[:150]}" for line in body])


# -- the generations -------------------------------------------------------------------------
OIG_PATH = "/reports/audits-inspections-and-evaluations"
FR_PATH = "/api/v1/documents.json"
OPR_PATH = "/about-ice/opr"
DVE_PATH = "/publication/domestic-violent-extremism-internal-review"
NOISY_PATH = "/reports/2014/oig-14-20"


@dataclass
class Report:
    """An OIG listing row (the real row's markup, monitor/demo_data/oig-row.html) and its PDF."""
    number: str
    title: str
    pdf: str  # path on the replay
    date: str  # ISO date; the corpus gives the month or the fiscal year only for some (see NOTES)
    fy: str
    doc: str  # key of its text in documents.json (a PDF of it in demo_data)


REPORTS_BEFORE = [
    Report("OIG-21-03", "ICE Needs to Address Concerns About Detainee Care and Treatment at the Howard County Detention Center",
           "/sites/default/files/assets/2020-11/OIG-21-03-Nov20.pdf", "2020-11-02", "2021", "oig-21-03"),
    Report("OIG-18-76", "Assaults on CBP and ICE Law Enforcement Officers",
           "/sites/default/files/assets/2018-09/OIG-18-76-Sep18.pdf", "2018-09-04", "2018", "oig-18-76"),
]
REPORT_NEW = Report("OIG-19-14", "Oversight Review of the Department of Homeland Security Immigration and Customs Enforcement, "
                    "Office of Professional Responsibility, Investigations Division",
                    "/sites/default/files/assets/2018-12/OIG-19-14-Dec18.pdf", "2018-12-05", "2019", "oig-19-14")

# Composed for the replay (no such figures were published): the kind of paragraph the ICE OPR
# page would gain if it disclosed outcomes, which is what govwatch exists to catch.
OPR_FIGURES = ("In fiscal year 2025, OPR investigated 41 allegations that ICE employees were members of or supported "
               "violent extremist groups. OPR substantiated allegations against six employees; four were removed from "
               "federal service and two resigned in lieu of removal.")

NOTES = ("The listing rows use the real oig.dhs.gov row markup; their titles and the PDFs' texts are the real reports' "
         "(corpus excerpts); the rows' exact issue dates are approximate. The Federal Register response is a real "
         "capture (2026-10-02) without its links to the live site; the executive order's text is the real text. "
         "The ICE OPR page's text is the real page's; the outcome figures it gains in generation 3 are composed "
         "for the replay.")


def report_text(report: Report) -> str:
    """The text of a report's PDF: the corpus document from the report's title on (one corpus text
    is the listing page around the report: its site banner is not the report's)."""
    text = documents()[report.doc]["text"]
    at = text.find(report.title)
    return text[at:] if at > 0 else text


def _oig_listing(reports: list[Report]) -> bytes:
    template = _data("oig-row.html").read_text(encoding="utf-8")
    row = template[template.index("<tr>"):template.index("</tr>") + 5]
    rows = []
    for r in reports:
        month = r.date[5:7] + "/" + r.date[8:10] + "/" + r.date[:4]
        rows.append(row.replace("/sites/default/files/assets/2026-07/OIG-26-18-Jul26.pdf", r.pdf)
                    .replace("OIG-26-18", r.number)
                    .replace(" View the ICE&#039;s Electronic Health Record System PDF", " View the " + html.escape(r.title) + " PDF")
                    .replace("ICE&#039;s Electronic Health Record System Does Not Fully Address Capability Needs", html.escape(r.title))
                    .replace("2026-07-23T12:00:00Z", r.date + "T12:00:00Z").replace("07/23/2026", month)
                    .replace(">2026 ", ">" + r.fy + " "))
    return _page("Audits, Inspections, and Evaluations | Office of Inspector General",
                 "<div id='content-area'><h1>Audits, Inspections, and Evaluations</h1><table class='views-table'><thead><tr>"
                 "<th>Report Number</th><th>Title</th><th>Issue Date</th><th>Fiscal Year</th></tr></thead><tbody>"
                 + "".join(rows) + "</tbody></table></div>")


def _page(title: str, main: str, *, banner: str = "", stamp: str = "") -> bytes:
    foot = f"<p>Last Updated: {stamp}</p>" if stamp else ""
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>" + html.escape(title) + "</title></head><body>"
            "<header><a href='/'>Home</a> <nav><a href='/about'>About</a> <a href='/news'>News</a></nav></header>"
            + (f"<div class='alert-banner'><p>{html.escape(banner)}</p></div>" if banner else "")
            + f"<main>{main}{foot}</main><footer><p>An official website of the United States government</p></footer>"
              "</body></html>").encode()


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{html.escape(p.strip())}</p>" for p in text.split("\n") if p.strip())


def _fr_response(base: str, new: dict | None) -> bytes:
    """The real capture, its links to the live site dropped (nothing may be fetched there) and its
    documents' pages pointed at the replay; `new` goes first, as the newest document."""
    data = json.loads(_data("fr-executive-orders.json").read_text(encoding="utf-8"))
    data.pop("next_page_url", None)
    results = []
    for r in data["results"]:
        r = {k: v for k, v in r.items() if k not in ("pdf_url", "public_inspection_pdf_url")}
        r["html_url"] = base + "/documents/" + r["document_number"]
        for a in r.get("agencies") or []:
            a.pop("url", None), a.pop("json_url", None)
        results.append(r)
    if new:
        results.insert(0, new)
    data["results"], data["count"] = results, len(results)
    return json.dumps(data).encode()


def generations(base: str) -> list[tuple[str, dict[str, Response]]]:
    """(what happens, routes) for each generation of the replay."""
    docs = documents()
    pdf = {r.pdf: Response(_data(f"{r.doc}.pdf").read_bytes(), content_type="application/pdf")
           for r in REPORTS_BEFORE + [REPORT_NEW]}
    robots = {"/robots.txt": Response(b"User-agent: *\nAllow: /\n", content_type="text/plain")}
    antifa = docs["antifa-eo"]
    eo = {"title": "Designating Antifa as a Domestic Terrorist Organization", "type": "Presidential Document",
          "subtype": "Executive Order", "abstract": None, "document_number": "2025-18709", "publication_date": "2025-09-25",
          "html_url": base + "/documents/2025-18709", "raw_text_url": base + "/raw/2025-18709.txt",
          "agencies": [{"raw_name": "EXECUTIVE OFFICE OF THE PRESIDENT", "name": "Executive Office of the President", "id": 538,
                        "parent_id": None, "slug": "executive-office-of-the-president"}], "excerpts": None}
    opr = docs["ice-opr"]["text"]
    dve = docs["dhs-dve-review"]
    noisy = docs["oig-14-20"]
    banner, body = noisy["text_before"].split("\n\n", 2)[0], noisy["text"]

    def opr_page(extra: str = "") -> Response:
        head, _, rest = opr.partition("\n")
        return Response(_page("Office of Professional Responsibility | ICE", f"<h1>{html.escape(head)}</h1>"
                              + _paragraphs(rest.split("Points of Contact")[0]) + (f"<p>{html.escape(extra)}</p>" if extra else "")
                              + "<h2>Points of Contact</h2>" + _paragraphs(rest.split("Points of Contact", 1)[1]),
                              stamp="08/14/2026"))

    dve_page = Response(_page("Domestic Violent Extremism Internal Review | Homeland Security",
                              "<h1>Domestic Violent Extremism Internal Review: Observations, Findings, and Recommendations</h1>"
                              + _paragraphs(dve["text"]), stamp="03/11/2022"))

    def noisy_page(with_banner: bool, stamp: str) -> Response:
        return Response(_page("OIG-14-20 | Office of Inspector General", _paragraphs(body), banner=banner if with_banner else "",
                              stamp=stamp))

    common = {**robots, **pdf, "/raw/2025-18709.txt": Response(antifa["text"].encode(), content_type="text/plain; charset=utf-8")}
    g1 = {**common,
          OIG_PATH: Response(_oig_listing(REPORTS_BEFORE)),
          FR_PATH: Response(_fr_response(base, None), content_type="application/json"),
          OPR_PATH: opr_page(), DVE_PATH: dve_page, NOISY_PATH: noisy_page(True, "11/03/2026")}
    g2 = {**g1,
          OIG_PATH: Response(_oig_listing([REPORT_NEW] + REPORTS_BEFORE)),
          FR_PATH: Response(_fr_response(base, eo), content_type="application/json"),
          NOISY_PATH: noisy_page(False, "12/01/2026")}
    g3 = {**g2, OPR_PATH: opr_page(OPR_FIGURES), NOISY_PATH: noisy_page(False, "12/07/2026")}
    del g3[DVE_PATH]
    return [
        ("the baseline: every source read once, nothing alerted", g1),
        ("OIG lists a report on ICE OPR (a PDF); the Federal Register lists an executive order designating a "
         "domestic terrorist organization; the noisy page loses its banner and its date moves", g2),
        ("the ICE OPR page gains outcome figures; the DHS workforce-extremism review is taken down (404); "
         "the noisy page's date moves again", g3),
    ]


@dataclass
class Source:
    id: str
    path: str
    catalogue: str | None = None  # the built-in catalogue's entry whose options it keeps
    kind: str = "page"
    name: str = ""
    alerts: bool = True  # the replay must alert for it (the noisy page must not)
    options: dict = field(default_factory=dict)


SOURCES = [
    Source("dhs-oig-ice-reports", OIG_PATH, catalogue="dhs-oig-ice-reports"),
    Source("fr-presidential-domestic-terrorism", FR_PATH, catalogue="fr-presidential-domestic-terrorism"),
    Source("ice-opr", OPR_PATH, catalogue="ice-opr"),
    Source("dhs-dve-internal-review", DVE_PATH, name="DHS Domestic Violent Extremism Internal Review", options={"select": "main"}),
    Source("oig-14-20", NOISY_PATH, name="DHS OIG report page OIG-14-20 (USSS misconduct)", alerts=False),
]


def source_entries(base: str) -> list[dict]:
    """The replay's sources: the catalogue's own entries (selectors, topics, noise rules) with the
    replay's URL, so the demo reads the replay the way govwatch reads the real sites."""
    from monitor.config import builtin_catalogue

    catalogue = {s["id"]: s for s in builtin_catalogue()}
    out = []
    for s in SOURCES:
        entry = dict(catalogue[s.catalogue]) if s.catalogue else {"id": s.id, "kind": s.kind, "name": s.name, **s.options}
        entry.pop("expect_update_within", None)  # a replay is not late
        entry.pop("max_pages", None)
        entry["url"] = base + s.path
        entry["name"] = f"{entry.get('name') or s.id} ({LABEL})"
        entry["every"] = "1m"
        out.append(entry)
    return out


def write_config(folder: Path, replay: Replay, catcher: Catcher, public_url: str) -> Path:
    port = replay.server.server_address[1]
    cfg = {
        "database": f"sqlite:///{folder / 'govwatch.db'}",
        "include_defaults": False,
        "public_url": public_url,
        "fetch": {"allow_private_networks": [f"127.0.0.1:{port}"], "per_host_delay": 0, "per_host_concurrency": 4,
                  "timeout": 20, "retries": 0},
        "notify": [{"url": catcher.url, "name": "demo-catcher"}],
        "sources": source_entries(replay.base),
    }
    path = folder / "govwatch.yaml"
    path.write_text(f"# govwatch demo: a {LABEL} of real captures served on 127.0.0.1 (monitor/demo.py); nothing here is live.\n"
                    + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


# -- the run ---------------------------------------------------------------------------------
def _free(port: int) -> int:
    """The port to serve on (0: any free one), refused at once when it is taken."""
    if not 0 <= port <= 65535:
        raise UsageError(f"demo: --port {port} is not a port (0-65535; 0: any free one)")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            raise UsageError(f"demo: port {port} on 127.0.0.1 is in use ({e.strerror}); pick another with --port, "
                                "or --port 0 for any free one") from None
        return s.getsockname()[1]


def _folder(keep: str | None) -> tuple[Path, bool]:
    if not keep:
        return Path(tempfile.mkdtemp(prefix="govwatch-demo-")), True
    path = Path(keep)
    try:
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise UsageError(f"demo: --keep {keep}: must be a new or empty folder (the replay starts from nothing)")
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"demo: --keep {keep}: {e.strerror or e}") from None
    return path.resolve(), False


def _check(config: Path) -> tuple[int, str]:
    """`govwatch check --force` on the replay, as its own process (the way an operator runs it), with
    none of this shell's GOVWATCH_* settings: a demo never writes to a real database or alerts a real team."""
    # no proxy either (Scrapy and Apprise would send the replay's requests and alerts through one),
    # and -P: the `monitor` package installed, never one in the current directory
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVWATCH_") and not k.lower().endswith("_proxy")}
    env["PYTHONUNBUFFERED"] = "1"
    p = subprocess.run([sys.executable, "-P", "-m", "monitor", "check", "--force", "-c", str(config)], env=env,
                       capture_output=True, text=True, timeout=300)
    return p.returncode, (p.stdout + p.stderr).strip()


class _Stopped(SystemExit):
    """SIGTERM or SIGHUP (a closed terminal): the demo ends, its temporary folder deleted on the way."""


def _stop(signum, _frame):
    raise _Stopped(128 + signum)


def run(port: int = DEFAULT_PORT, keep: str | None = None, serve: bool = True, out=print) -> int:
    port = _free(port)
    folder, temporary = _folder(keep)
    public_url = f"http://127.0.0.1:{port}"
    replay, catcher = Replay(), Catcher(out)
    started = time.monotonic()
    # uvicorn, while it serves, takes these signals over and raises them again once it has stopped
    handlers = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        config = write_config(folder, replay, catcher, public_url)
        gens = generations(replay.base)
        out(f"govwatch demo: a {LABEL} of real captures and documents on {replay.base} (nothing here is live, "
            f"nothing leaves 127.0.0.1)\n  {len(SOURCES)} sources, {len(gens)} generations; state in {folder}\n  {NOTES}")
        for n, (what, routes) in enumerate(gens, 1):
            replay.show(routes)
            out(f"\n[{n}/{len(gens)}] {what}")
            before = len(catcher.received)
            code, output = _check(config)
            for line in output.splitlines():
                if line.startswith(("checked ", "  ", "skipped ", "Error")):
                    out(f"  check: {line.strip()}")
            if code != 0:
                raise GovwatchError(f"demo: `govwatch check` failed on generation {n} (exit {code}):\n{output}")
            out(f"  {len(catcher.received) - before} alert(s) in {time.monotonic() - started:.1f}s so far")
        ok = _verdict(catcher.received, out)
        out(f"\nreplay finished in {time.monotonic() - started:.1f}s: {len(catcher.received)} alert(s) caught.")
        if serve or not temporary:
            out(f"next, in another terminal: govwatch changes -c {config}   |   govwatch show CHANGE_ID -c {config}")
        if serve:
            _serve(config, port, folder if temporary else None, out)
        return 0 if ok else 1
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        replay.close()
        catcher.close()
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)


def _verdict(received: list[dict], out) -> bool:
    """Did every source that should alert alert, and the noisy page stay quiet? Said, not assumed."""
    ok = True
    out("\nwhat the replay expects:")
    for s in SOURCES:
        n = sum(1 for m in received if f"({s.id})" in str(m.get("title", "")))
        good = (n >= 1) if s.alerts else (n == 0)
        ok &= good
        want = "an alert" if s.alerts else "no alert (only dates and a banner changed)"
        out(f"  {'ok ' if good else 'MISSING' if s.alerts else 'NOISE'}  {s.id}: {want}; got {n}")
    if not ok:
        out("the replay did not go as expected: see the check output above, and `govwatch doctor` for the sources")
    return ok


def _serve(config: Path, port: int, temporary: Path | None, out) -> None:
    from monitor.config import load_config
    from monitor.web import serve, web_settings
    from state.store import Store

    cfg = load_config(config, env={})
    gone = f"; the folder {temporary} is deleted then (--keep DIR keeps it)" if temporary else ""
    out(f"\nthe replay's change log: open http://127.0.0.1:{port}/   (Ctrl-C to stop{gone})", )
    try:
        serve(cfg, Store(cfg.database), host="127.0.0.1", port=port, settings=web_settings({}))
    except _Stopped:
        raise
    except SystemExit as e:  # uvicorn could not start (the port was taken since it was checked)
        if e.code not in (None, 0):
            raise UsageError(f"demo: could not serve the change log on 127.0.0.1:{port} (taken meanwhile?); "
                             "run again with another --port") from None
