"""Scanned PDFs end to end: the real CLI against a local site serving image-only PDFs made in the test
(text drawn with Pillow). A scan that gains an OPR outcome is a change read by OCR, matched, alerted
once and marked as OCR text; `govwatch classify` reads scans too; without Tesseract the note says
how to enable OCR."""
from __future__ import annotations

import json

from tests.pdfs import make_image_pdf

HEAD = ["U.S. Immigration and Customs Enforcement", "FOIA Library release 2026-ICFO-0417"]
BEFORE = [HEAD + ["This release contains records responsive to your request of March 3."],
          ["Records of the Office of Professional Responsibility, fiscal year 2025."]]
OUTCOME = ("ICE Office of Professional Responsibility (OPR) investigations substantiated 12 allegations of "
           "misconduct; 4 employees were removed from federal service.")
AFTER = [BEFORE[0], BEFORE[1] + [OUTCOME]]


def test_scanned_pdf_change_is_read_by_ocr_matched_and_alerted_once(ocr_tools, site, webhook, workdir):
    site.set("/foia/release.pdf", make_image_pdf(BEFORE), content_type="application/pdf")
    workdir.write(sources=[{"id": "ice-foia", "name": "ICE FOIA release", "url": site.url("/foia/release.pdf"),
                            "kind": "pdf"}], notify=[{"url": webhook.url(), "name": "team-webhook"}])
    assert "1 baseline" in workdir.run("check").stdout
    site.set("/foia/release.pdf", make_image_pdf(AFTER), content_type="application/pdf")
    out = workdir.run("check", "--force").stdout
    assert "1 changed" in out and "alerts sent 1" in out, out
    assert len(webhook.received) == 1
    hook = webhook.received[0]
    assert "opr-outcomes" in hook["title"] and "ice-foia" in hook["title"]
    assert "OCR text (mean confidence " in hook["message"], hook["message"]
    assert "12 allegations" in hook["message"]

    changes = json.loads(workdir.run("changes", "--format", "json").stdout)
    assert len(changes) == 1
    c = changes[0]
    assert c["topics"] == ["opr-outcomes"] and "removed from federal service" in c["added_text"]
    assert "Records of the Office" not in c["added_text"]   # only what the new scan added
    shown = json.loads(workdir.run("show", str(c["id"]), "--format", "json").stdout)
    assert shown["note"].startswith("OCR text (mean confidence "), shown["note"]
    assert 80 <= int(shown["note"].split("confidence ")[1].split("%")[0]) <= 100
    assert "Note:     OCR text (mean confidence" in workdir.run("show", str(c["id"])).stdout
    # the change page says so too
    from fastapi.testclient import TestClient

    from monitor.config import load_config
    from monitor.web import WebSettings, create_app
    from state.store import Store

    cfg = load_config(workdir.config)
    client = TestClient(create_app(cfg, Store(cfg.database), settings=WebSettings()), base_url="http://127.0.0.1")
    page = client.get(f"/changes/{c['id']}")
    assert page.status_code == 200
    assert '<span class="badge ocr"' in page.text and f"{shown['note']}</dd>" in page.text, page.text[:3000]

    # the same scan again (304, then the same bytes): no OCR, no change; a re-scan with the same words: no change
    assert "1 not modified" in workdir.run("check", "--force").stdout
    site.set("/foia/release.pdf", make_image_pdf(AFTER, dpi=210), content_type="application/pdf")
    out = workdir.run("check", "--force").stdout
    assert "1 unchanged" in out and "0 change(s)" in out, out
    assert len(webhook.received) == 1
    assert len(json.loads(workdir.run("changes", "--format", "json").stdout)) == 1


def test_classify_reads_a_scanned_pdf(ocr_tools, workdir):
    scan = workdir.path / "scan.pdf"
    scan.write_bytes(make_image_pdf(AFTER))
    p = workdir.run("classify", "--format", "json", str(scan))
    topics = json.loads(p.stdout)["topics"]
    assert [t["id"] for t in topics] == ["opr-outcomes"], p.stdout
    assert any("12 allegations" in (e.get("sentence") or "") for e in topics[0]["evidence"])
    assert "note: OCR text (mean confidence " in p.stderr
    table = workdir.run("classify", str(scan)).stdout
    assert table.startswith("opr-outcomes: severity")


def test_without_tesseract_a_scan_is_recorded_as_before_with_how_to_enable_ocr(site, webhook, workdir):
    site.set("/scan.pdf", make_image_pdf([HEAD]), content_type="application/pdf")
    workdir.write(sources=[{"id": "scan", "url": site.url("/scan.pdf"), "kind": "pdf"}],
                  notify=[{"url": webhook.url()}], ocr={"tesseract": "/nonexistent/tesseract"})
    assert "1 baseline" in workdir.run("check").stdout
    site.set("/scan.pdf", make_image_pdf(AFTER), content_type="application/pdf")
    assert "1 changed" in workdir.run("check", "--force").stdout
    [c] = json.loads(workdir.run("changes", "--format", "json").stdout)
    shown = json.loads(workdir.run("show", str(c["id"]), "--format", "json").stdout)
    assert shown["added_text"] == "" and c["topics"] == [] and webhook.received == []
    assert shown["note"] == ("the PDF was replaced; neither version has a text layer; Tesseract is not installed "
                             "('/nonexistent/tesseract' not found): apt-get install tesseract-ocr poppler-utils "
                             "to read it with OCR"), shown["note"]
    scan = workdir.path / "scan.pdf"
    scan.write_bytes(make_image_pdf(AFTER))
    p = workdir.run("classify", "--config", str(workdir.config), str(scan))
    assert p.stdout.strip() == "no topic matched"
    assert "note: PDF without a text layer; Tesseract is not installed" in p.stderr


def test_a_listing_item_whose_document_is_a_scan_is_classified_on_its_ocr_text(ocr_tools, site, webhook, workdir):
    from tests.e2e.test_sources import LISTING_OPTIONS, oig_listing

    rows = [{"num": "FOIA-1", "href": "/foia/1.pdf", "title": "FOIA release 1", "summary": "Records.", "date": "2026-10-01"}]
    site.set("/foia", oig_listing(rows))
    workdir.write(sources=[{"id": "foia", "url": site.url("/foia"), "kind": "listing", **LISTING_OPTIONS}],
                  notify=[{"url": webhook.url(), "name": "team"}])
    assert "1 baseline" in workdir.run("check").stdout
    rows.insert(0, {"num": "FOIA-2", "href": "/foia/2.pdf", "title": "FOIA release 2", "summary": "Records.", "date": "2026-11-20"})
    site.set("/foia", oig_listing(rows))
    site.set("/foia/2.pdf", make_image_pdf([HEAD + [OUTCOME]]), content_type="application/pdf")
    out = workdir.run("check", "--force").stdout
    assert "1 new document(s) fetched" in out and "alerts sent 1" in out, out
    assert len(webhook.received) == 1 and "OCR text (mean confidence " in webhook.received[0]["message"]
    [c] = json.loads(workdir.run("changes", "--format", "json").stdout)
    assert c["kind"] == "new_item" and c["topics"] == ["opr-outcomes"] and "removed from federal service" in c["added_text"]
    note = json.loads(workdir.run("show", str(c["id"]), "--format", "json").stdout)["note"]
    assert note.startswith("OCR text (mean confidence ") and "classified on the title" not in note, note


def test_a_scan_that_runs_out_of_time_is_a_failed_fetch_never_an_empty_change(ocr_tools, site, webhook, workdir):
    site.set("/scan.pdf", make_image_pdf(BEFORE), content_type="application/pdf")
    sources = [{"id": "scan", "url": site.url("/scan.pdf"), "kind": "pdf"}]
    workdir.write(sources=sources, notify=[{"url": webhook.url()}])
    assert "1 baseline" in workdir.run("check").stdout
    site.set("/scan.pdf", make_image_pdf(AFTER), content_type="application/pdf")
    workdir.write(sources=sources, notify=[{"url": webhook.url()}], ocr={"timeout": "10ms"})
    out = workdir.run("check", "--force").stdout
    assert "1 error" in out and "0 change(s)" in out, out
    [src] = json.loads(workdir.run("sources", "--format", "json").stdout)
    assert src["health"] == "failing" and "OCR ran out of time" in src["last_error"], src
    assert "(ocr.timeout 0.01 s for a document)" in src["last_error"]
    assert json.loads(workdir.run("changes", "--format", "json").stdout) == [] and webhook.received == []
    # with time enough, the same new scan is the change (compared with the last good version)
    workdir.write(sources=sources, notify=[{"url": webhook.url()}])
    assert "1 changed" in workdir.run("check", "--force").stdout
    [c] = json.loads(workdir.run("changes", "--format", "json").stdout)
    assert c["topics"] == ["opr-outcomes"] and "Records of the Office" not in c["added_text"]
