"""OCR of scanned PDFs made in the test (text drawn into images, saved as image-only PDFs): the text
comes back with its confidence, the page and time limits hold, broken input gets a clear error,
and without Tesseract the PDF is recorded as before with a note saying how to enable OCR."""
from __future__ import annotations

import time

import pytest

from monitor.config import OcrSettings
from monitor.extract import extract
from monitor.ocr import MAX_PAGE_PIXELS, OcrResult, _lines, _page_dpi, describe, read_pdf, unavailable
from state.errors import ExtractError
from tests.pdfs import make_image_pdf, make_pdf

OPR = "ICE OPR substantiated 12 allegations; 4 employees were removed."


def test_scanned_pdf_has_no_text_layer_without_ocr():
    # the premise: pypdf finds nothing, so only OCR can read these documents
    body = make_image_pdf([[OPR]])
    got = extract(body, ocr=OcrSettings(enabled=False))
    assert (got.text, got.no_text_layer, got.ocr_confidence) == ("", True, None)
    assert got.note == "PDF without a text layer; OCR is turned off (ocr.enabled: false)"


def test_without_tesseract_the_note_says_how_to_enable_ocr():
    got = extract(make_image_pdf([[OPR]]), url="https://example.gov/scan.pdf",
                  ocr=OcrSettings(tesseract="/nonexistent/tesseract"))
    assert got.text == "" and got.no_text_layer and got.ocr_confidence is None
    assert got.note == ("PDF without a text layer; Tesseract is not installed ('/nonexistent/tesseract' not found): "
                        "apt-get install tesseract-ocr poppler-utils to read it with OCR")
    with pytest.raises(ExtractError, match="OCR is not available: Tesseract is not installed"):
        read_pdf(make_image_pdf([[OPR]]), OcrSettings(tesseract="/nonexistent/tesseract"))


def test_a_pdf_with_a_text_layer_is_never_ocred(ocr_tools):
    got = extract(make_pdf([[OPR]]))
    assert got.text == OPR and got.note == "" and got.ocr_confidence is None and not got.no_text_layer


def test_ocr_recovers_the_text_with_its_confidence(ocr_tools):
    body = make_image_pdf([["Office of Professional Responsibility", OPR], ["Second page: 31 cases were closed."]])
    got = extract(body, url="https://example.gov/foia/scan.pdf")
    assert OPR in got.text and "31 cases were closed." in got.text, got.text
    assert got.no_text_layer and got.kind == "pdf" and got.pages == 2
    assert 80 <= got.ocr_confidence <= 100
    assert got.note == f"OCR text (mean confidence {round(got.ocr_confidence)}%)"
    r = read_pdf(body)
    assert (r.pages_read, r.pages_total) == (2, 2) and r.words == 19 and r.seconds > 0
    assert [ln for ln in r.pages[0] if ln] == ["Office of Professional Responsibility", OPR]


def test_a_worn_photocopy_is_still_read_and_matched(ocr_tools):
    # skewed, speckled, blurred, JPEG-compressed at 150 dpi, with a redaction box: what FOIA
    # reading rooms post; the outcome must still be found, with a lower confidence than a clean scan
    from monitor import classify

    outcome = ("ICE Office of Professional Responsibility (OPR) investigations substantiated 12 allegations "
               "of misconduct; 4 employees were removed from federal service.")
    lines = ["U.S. Department of Homeland Security", "FOIA release 2026-ICFO-0417 (b)(6) (b)(7)(C)", outcome]
    worn = extract(make_image_pdf([lines], dpi=150, font_size=24, worn=True))
    clean = extract(make_image_pdf([lines], dpi=150, font_size=24))
    assert "removed from federal service" in worn.text and "Professional Responsibility" in worn.text, worn.text
    assert 50 <= worn.ocr_confidence < clean.ocr_confidence, (worn.ocr_confidence, clean.ocr_confidence)
    assert [m.topic for m in classify.classify(worn.text, classify.builtin_topics())] == ["opr-outcomes"]


@pytest.mark.parametrize("confidence,read,total,note", [
    (87.4, 3, 3, "OCR text (mean confidence 87%)"),
    (42.6, 1, 1, "OCR text (mean confidence 43%, a poor reading: check the scan)"),
    (91.0, 20, 45, "OCR text (mean confidence 91%); only the first 20 of 45 pages were read (ocr.max_pages)"),
], ids=["good", "poor", "page-limit"])
def test_the_ocr_mark(confidence, read, total, note):
    result = OcrResult(pages=[["text"]] * read, confidence=confidence, words=read, pages_total=total, seconds=1.0)
    assert describe(result) == note


def test_ocr_reads_at_most_max_pages(ocr_tools):
    body = make_image_pdf([["First page: 10 allegations."], ["Second page: 20 allegations."], ["Third page: 30 allegations."]])
    got = extract(body, ocr=OcrSettings(max_pages=2))
    assert "First page" in got.text and "Second page" in got.text and "Third" not in got.text
    assert got.note.endswith("; only the first 2 of 3 pages were read (ocr.max_pages)"), got.note
    r = read_pdf(body, OcrSettings(max_pages=1))
    assert (r.pages_read, r.pages_total) == (1, 3)


def test_ocr_document_time_limit(ocr_tools):
    body = make_image_pdf([[f"Page {i}: {OPR}"] for i in range(6)])
    t0 = time.monotonic()
    with pytest.raises(ExtractError, match=r"OCR ran out of time at (rendering|reading) page \d of 6 \(ocr.timeout 0.5 s"):
        read_pdf(body, OcrSettings(timeout=0.5))
    assert time.monotonic() - t0 < 3.0   # the limit is honoured: about 0.5 s, not 6 pages of work


def test_ocr_page_time_limit(ocr_tools):
    t0 = time.monotonic()
    with pytest.raises(ExtractError, match=r"^OCR: (rendering|reading) page 1 took longer than 0.001 s \(ocr.page_timeout\)$"):
        read_pdf(make_image_pdf([[OPR]]), OcrSettings(page_timeout=0.001))
    assert time.monotonic() - t0 < 3.0


def test_ocr_time_limits_do_not_cut_a_normal_document(ocr_tools):
    got = read_pdf(make_image_pdf([[OPR], ["Page two."]]), OcrSettings(page_timeout=30, timeout=60))
    assert got.pages_read == 2


@pytest.mark.parametrize("body", [
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage",
    b"not a pdf at all",
], ids=["garbage-pdf", "not-pdf"])
def test_ocr_of_a_broken_pdf_is_a_clear_error(ocr_tools, body):
    with pytest.raises(ExtractError, match=r"^OCR: (corrupt PDF|the PDF cannot be rendered)"):
        read_pdf(body)


def test_ocr_of_a_truncated_scan_is_an_error_or_its_text(ocr_tools):
    # pypdf recovers what it can of a cut file; then either pdftoppm renders it or the error is clear
    body = make_image_pdf([[OPR]])
    cut = body[: len(body) * 2 // 3]
    try:
        got = extract(cut)
    except ExtractError as e:
        assert "PDF" in str(e)
    else:
        assert got.no_text_layer and got.note


def test_missing_language_data_is_named(ocr_tools):
    assert unavailable(OcrSettings(language="eng+zzz")) == (
        "Tesseract has no language data for zzz (apt-get install tesseract-ocr-zzz)")
    got = extract(make_image_pdf([[OPR]]), ocr=OcrSettings(language="zzz"))
    assert got.text == "" and "apt-get install tesseract-ocr-zzz" in got.note


def test_tesseract_words_become_lines_and_paragraphs():
    tsv = {  # Tesseract's image_to_data: block/paragraph/line numbers per word; conf -1 for layout rows
        "page_num": [1, 1, 1, 1, 1, 1, 1],
        "block_num": [1, 1, 1, 1, 2, 2, 2],
        "par_num": [1, 1, 1, 1, 1, 1, 1],
        "line_num": [0, 1, 1, 2, 1, 1, 1],
        "conf": [-1, 90, 80, 70, 60, 50.5, 95],
        "text": ["", "ICE", "OPR", "report", "4", "  ", "removed."],
    }
    lines, confs = _lines(tsv)
    assert lines == ["ICE OPR", "report", "", "4 removed."]
    assert confs == [90.0, 80.0, 70.0, 60.0, 95.0]


@pytest.mark.parametrize("size_pt,dpi,expect", [
    ((612, 792), 300, 300),                 # US letter: the configured resolution
    ((7200, 7200), 300, 34),                # a 100-inch square page: bounded, not 900 MB of pixels
    ((14400 * 75, 14400 * 75), 300, 0),     # /UserUnit 75: 15,000 inches a side: not rendered at all
    ((612, 792), 150, 150),
], ids=["letter", "poster", "huge", "lower-dpi"])
def test_page_resolution_is_bounded(size_pt, dpi, expect):
    got = _page_dpi(*size_pt, dpi)
    assert got == expect
    w_in, h_in = size_pt[0] / 72, size_pt[1] / 72
    assert (w_in * got) * (h_in * got) <= MAX_PAGE_PIXELS


def test_the_defaults_without_a_configuration_are_the_configured_defaults():
    from dataclasses import asdict

    from monitor.ocr import Defaults

    assert asdict(Defaults()) == OcrSettings().model_dump()
