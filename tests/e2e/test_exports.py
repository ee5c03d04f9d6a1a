"""Exports agree: `changes --format csv` has /changes.csv's columns and never cuts text, every cell
escaped against formula injection; `changes --format json` names the source; `export-warc` writes
gzip only for .warc.gz, plain WARC for .warc, and a bad output path is a one-line error."""
from __future__ import annotations

import csv
import gzip
import io
import json

from tests.e2e.test_monitor import RELEVANT, page


def test_cli_csv_and_json_agree_with_the_web(site, workdir):
    from fastapi.testclient import TestClient

    from monitor.config import load_config
    from monitor.web import WebSettings, create_app
    from state.store import Store

    long = " ".join(f"Paragraph {i} of the annual OPR disclosure lists the dispositions of cases." for i in range(60))
    site.set("/opr", page())
    workdir.write(sources=[{"id": "ice-opr", "name": "ICE Office of Professional Responsibility", "url": site.url("/opr")}])
    workdir.run("check")
    site.set("/opr", page(extra=RELEVANT + f"<p>{long}</p><p>=HYPERLINK(\"http://x.example/\")</p>"))
    workdir.run("check", "--force")

    cli_rows = list(csv.reader(io.StringIO(workdir.run("changes", "--format", "csv").stdout)))
    cfg = load_config(workdir.config, env={})
    web = TestClient(create_app(cfg, Store(cfg.database), settings=WebSettings()), base_url="http://127.0.0.1")
    web_rows = list(csv.reader(io.StringIO(web.get("/changes.csv").text)))
    assert cli_rows[0] == web_rows[0]  # the same columns, in the same order
    assert [r[0] for r in cli_rows[1:]] == [r[0] for r in web_rows[1:]]
    full = json.loads(workdir.run("show", cli_rows[1][0], "--format", "json").stdout)["added_text"]
    assert len(full) > 2000
    record = dict(zip(cli_rows[0], cli_rows[1]))
    assert record["added_text"] == full  # never cut (it was cut at 500 characters)
    assert record["review_state"] == "unreviewed" and "white supremacist" in record["evidence"]

    data = json.loads(workdir.run("changes", "--format", "json").stdout)
    assert [d["source_name"] for d in data] == ["ICE Office of Professional Responsibility"]
    assert data[0]["review_state"] == "unreviewed"


def test_csv_cells_never_start_a_formula():
    from monitor.records import changes_csv

    d = {"id": 1, "detected_at": "2026-12-01T00:00:00Z", "source_id": "s", "kind": "changed", "topics": [], "severity": "",
         "review_state": "unreviewed", "title": "=cmd|' /C calc'!A0", "url": "https://x.gov/", "evidence": [],
         "added_text": "@SUM(1+1) " + "x" * 5000}
    row = list(csv.reader(io.StringIO(changes_csv([d]))))[1]
    assert row[7] == "'=cmd|' /C calc'!A0" and row[10] == "'@SUM(1+1) " + "x" * 5000


def test_export_warc_plain_or_gzip_and_a_bad_path_is_one_line(site, workdir, tmp_path):
    site.set("/opr", page())
    workdir.write(sources=[{"id": "ice-opr", "url": site.url("/opr")}])
    workdir.run("check")
    workdir.run("export-warc", "--source", "ice-opr", "-o", "plain.warc")
    plain = (tmp_path / "plain.warc").read_bytes()
    assert plain.startswith(b"WARC/1.0\r\nWARC-Type: warcinfo") and b"WARC-Type: response" in plain
    workdir.run("export-warc", "--source", "ice-opr", "-o", "packed.warc.gz")
    packed = (tmp_path / "packed.warc.gz").read_bytes()
    assert packed[:2] == b"\x1f\x8b" and gzip.decompress(packed).startswith(b"WARC/1.0\r\nWARC-Type: warcinfo")

    p = workdir.run("export-warc", "--source", "ice-opr", "-o", "/missing/dir/x.warc", check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.strip() == "Error: cannot write /missing/dir/x.warc: No such file or directory", p.stderr
    p = workdir.run("export-warc", "--source", "ice-opr", "-o", "captures.zip", check=False)
    assert p.returncode == 1 and p.stderr.strip() == (
        "Error: export-warc: captures.zip: the file name must end in .warc (plain) or .warc.gz (gzip)")
    assert sorted(x.name for x in tmp_path.iterdir() if "warc" in x.name or x.name.startswith(".govwatch-")) == [
        "packed.warc.gz", "plain.warc"]  # no half-written file left behind
