"""The extraction key (monitor/documents.extraction_key): what a stored text was read with. Two
readings with the same key are the same reading, so a new version is compared with the stored text
as it is; any input of the reading that differs must give another key."""
from __future__ import annotations

from dataclasses import replace

from monitor import documents
from monitor.documents import extraction_key
from monitor.ocr import Defaults, engine_version
from monitor.offload import Args

HTML = Args(content_type="text/html", url="https://example.gov/a", select=None, ignore=(), ocr=Defaults())


def test_the_same_reading_has_the_same_key_and_each_input_changes_it():
    key = extraction_key(HTML, "html")
    assert len(key) == 16 and key == extraction_key(replace(HTML, url="https://example.gov/b", content_type="text/plain"), "html")
    others = {
        "select": extraction_key(replace(HTML, select="main"), "html"),
        "ignore": extraction_key(replace(HTML, ignore=("Last reviewed",)), "html"),
        "kind": extraction_key(HTML, "text"),
        "pdf": extraction_key(HTML, "pdf"),
    }
    assert key not in others.values() and len(set(others.values())) == len(others), others


def test_ocr_settings_and_engine_count_for_a_pdf_only():
    pdf = extraction_key(HTML, "pdf")
    assert extraction_key(replace(HTML, ocr=Defaults(dpi=200)), "pdf") != pdf
    assert extraction_key(replace(HTML, ocr=Defaults(enabled=False)), "pdf") != pdf
    # OCR that cannot run here (no such Tesseract) reads scans as no text: another reading
    assert extraction_key(replace(HTML, ocr=Defaults(tesseract="/nonexistent/tesseract")), "pdf") != pdf
    assert engine_version(Defaults(tesseract="/nonexistent/tesseract")).startswith("unavailable: ")
    # an HTML page is read the same whatever the OCR settings (no re-reading of every page after an OCR upgrade)
    assert extraction_key(replace(HTML, ocr=Defaults(dpi=200)), "html") == extraction_key(HTML, "html")


def test_the_code_and_library_versions_are_in_the_key(monkeypatch):
    key = extraction_key(HTML, "html")
    reader = documents._reader()
    assert set(reader["libraries"]) >= {"lxml", "trafilatura", "pypdf"} and reader["libraries"]["lxml"]
    documents._key.cache_clear()
    monkeypatch.setattr(documents, "_reader", lambda: {**reader, "code": "another extract.py"})
    try:
        assert extraction_key(HTML, "html") != key
    finally:
        documents._key.cache_clear()
