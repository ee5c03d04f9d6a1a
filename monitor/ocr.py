"""OCR of scanned PDFs (pages without a text layer): each page rasterised by poppler's pdftoppm
(through pdf2image) and read by Tesseract (through pytesseract), both as subprocesses with a time
limit, at most `ocr.max_pages` pages; the text is marked as OCR text with its mean confidence."""
from __future__ import annotations

import functools
import io
import logging
import math
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Sequence

from state.errors import ExtractError

logger = logging.getLogger(__name__)

INSTALL_HINT = "apt-get install tesseract-ocr poppler-utils to read it with OCR"
MAX_PAGE_PIXELS = 12_000_000   # a page is rendered at `ocr.dpi` unless that makes more pixels (a poster, a hostile page size)
MIN_DPI = 20                   # below this no text is legible
LOW_CONFIDENCE = 60            # below this mean word confidence the note says the reading is poor


@dataclass(frozen=True)
class OcrResult:
    """What Tesseract read: one list of lines per page read (a blank line between paragraphs)."""

    pages: list[list[str]]
    confidence: float | None   # mean word confidence, 0-100; None when no word was found
    words: int
    pages_total: int
    seconds: float

    @property
    def pages_read(self) -> int:
        return len(self.pages)


@dataclass(frozen=True)
class Defaults:
    """The limits when no configuration is given (config.OcrSettings has the same defaults)."""

    enabled: bool = True
    tesseract: str = "tesseract"
    language: str = "eng"
    max_pages: int = 20
    dpi: int = 300
    page_timeout: float = 60.0
    timeout: float = 300.0


def _settings(settings):
    return Defaults() if settings is None else settings


def limits(settings) -> Defaults:
    """config.OcrSettings (or None) as the plain dataclass: what the extraction worker is handed
    (unpickling the configuration's model would import the whole configuration there)."""
    return Defaults() if settings is None else Defaults(**{f: getattr(settings, f) for f in Defaults.__dataclass_fields__})


@functools.lru_cache(maxsize=8)
def engine_version(settings) -> str:
    """What OCR reads with here: Tesseract's and pdftoppm's versions, or why OCR cannot run
    (`unavailable`). Part of a text's extraction key (monitor/documents.py): another Tesseract
    reads a scan a little differently, and a scan stored unread is read again once OCR can."""
    s = _settings(settings)
    missing = unavailable(s)
    if missing:
        return f"unavailable: {missing}"
    return "; ".join(_first_line([shutil.which(exe), flag]) for exe, flag in ((s.tesseract, "--version"), ("pdftoppm", "-v")))


def _first_line(cmd: list) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines else ""


@functools.lru_cache(maxsize=8)
def _missing(tesseract: str, language: str) -> str:
    """'' when Tesseract (with `language`) and pdftoppm can run here, else what is missing."""
    if not shutil.which(tesseract):
        return f"Tesseract is not installed ('{tesseract}' not found)"
    if not shutil.which("pdftoppm"):
        return "poppler's pdftoppm is not installed"
    import pytesseract

    pytesseract.pytesseract.tesseract_cmd = tesseract
    try:
        have = set(pytesseract.get_languages(config=""))
    except Exception as e:                      # a broken install: say so instead of failing every page
        return f"Tesseract does not run ({type(e).__name__}: {e})"
    wanted = [lang for lang in language.split("+") if lang]
    absent = [lang for lang in wanted if lang not in have]
    if absent:
        return (f"Tesseract has no language data for {', '.join(absent)} "
                f"(apt-get install {' '.join('tesseract-ocr-' + a for a in absent)})")
    return ""


def unavailable(settings=None) -> str:
    """'' when OCR can run with these settings, else the reason (shown in notes and logs)."""
    s = _settings(settings)
    if not s.enabled:
        return "OCR is turned off (ocr.enabled: false)"
    return _missing(s.tesseract, s.language)


def _page_dpi(width_pt: float, height_pt: float, dpi: int) -> int:
    """`dpi`, lowered so that the page stays under MAX_PAGE_PIXELS; 0 when that leaves too few
    dots to read any text (the page is skipped)."""
    area_in = max(width_pt, 1.0) * max(height_pt, 1.0) / (72.0 * 72.0)
    bounded = min(dpi, int(math.sqrt(MAX_PAGE_PIXELS / area_in)))
    return bounded if bounded >= MIN_DPI else 0


def _page_sizes(body: bytes, limit: int) -> tuple[int, list[tuple[float, float]]]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(body))
        if reader.is_encrypted:
            reader.decrypt("")
        n = len(reader.pages)
        sizes = []
        for i in range(min(n, limit)):
            box = reader.pages[i].mediabox
            unit = float(reader.pages[i].get("/UserUnit", 1) or 1)
            sizes.append((abs(float(box.width)) * unit, abs(float(box.height)) * unit))
    except Exception as e:                      # pypdf raises many kinds on broken files
        raise ExtractError(f"OCR: corrupt PDF: {type(e).__name__}: {e}") from e
    return n, sizes


def _lines(data: dict) -> tuple[list[str], list[float]]:
    """Tesseract's TSV (words with block, paragraph and line numbers) as lines, a blank line
    between paragraphs, and the confidences of its words."""
    lines: list[str] = []
    confs: list[float] = []
    cur_par = cur_line = None
    words: list[str] = []
    for i, word in enumerate(data["text"]):
        word = (word or "").strip()
        conf = float(data["conf"][i])
        if not word or conf < 0:
            continue
        par = (data["page_num"][i], data["block_num"][i], data["par_num"][i])
        line = (*par, data["line_num"][i])
        if line != cur_line:
            if words:
                lines.append(" ".join(words))
            words = []
            if cur_par is not None and par != cur_par:
                lines.append("")
            cur_par, cur_line = par, line
        words.append(word)
        confs.append(conf)
    if words:
        lines.append(" ".join(words))
    return lines, confs


def read_pdf(body: bytes, settings=None) -> OcrResult:
    """OCR the first `settings.max_pages` pages of a PDF. Raises ExtractError when OCR is not
    available, the PDF cannot be rendered, or a page or the document runs out of time."""
    s = _settings(settings)
    missing = unavailable(s)
    if missing:
        raise ExtractError(f"OCR is not available: {missing}")
    from pdf2image import convert_from_path
    from pdf2image.exceptions import PDFPageCountError, PDFPopplerTimeoutError, PDFSyntaxError
    import pytesseract

    pytesseract.pytesseract.tesseract_cmd = s.tesseract
    # Tesseract's OpenMP threads only fight over the cores here (one page at a time, on a shared
    # machine): one thread reads a page in about half the time on 2 busy cores.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    started = time.monotonic()
    deadline = started + s.timeout
    n_pages, sizes = _page_sizes(body, s.max_pages)
    pages: list[list[str]] = []
    confs: list[float] = []

    def out_of_time(what: str, page: int) -> ExtractError:
        return ExtractError(f"OCR ran out of time at {what} page {page} of {n_pages} "
                            f"(ocr.timeout {s.timeout:g} s for a document)")

    def budget(what: str, page: int) -> float:
        left = deadline - time.monotonic()
        if left <= 0.05:
            raise out_of_time(what, page)
        return min(s.page_timeout, left)

    def too_slow(what: str, page: int, limit: float) -> ExtractError:
        if limit < s.page_timeout:                  # the document's time was the bound
            return out_of_time(what, page)
        return ExtractError(f"OCR: {what} page {page} took longer than {s.page_timeout:g} s (ocr.page_timeout)")

    with tempfile.TemporaryDirectory(prefix="govwatch-ocr-") as tmp:
        path = os.path.join(tmp, "document.pdf")
        with open(path, "wb") as f:
            f.write(body)
        for i, (w, h) in enumerate(sizes):
            page = i + 1
            limit = budget("rendering", page)
            dpi = _page_dpi(w, h, s.dpi)
            if not dpi:
                logger.warning("OCR: page %d is %.0f x %.0f inches, too large to read; skipped", page, w / 72, h / 72)
                pages.append([])
                continue
            try:
                images = convert_from_path(path, dpi=dpi, first_page=page, last_page=page,
                                           output_folder=tmp, output_file=f"page{page}", fmt="ppm", grayscale=True,
                                           paths_only=True, timeout=limit)
            except PDFPopplerTimeoutError as e:
                raise too_slow("rendering", page, limit) from e
            except (PDFPageCountError, PDFSyntaxError) as e:
                raise ExtractError(f"OCR: the PDF cannot be rendered: {str(e).strip()[:300]}") from e
            if not images:
                raise ExtractError(f"OCR: pdftoppm rendered nothing for page {page}")
            limit = budget("reading", page)
            try:
                data = pytesseract.image_to_data(images[0], lang=s.language, config=f"--dpi {dpi}", timeout=limit,
                                                 output_type=pytesseract.Output.DICT)
            except RuntimeError as e:           # pytesseract's timeout (it kills the process)
                raise too_slow("reading", page, limit) from e
            except pytesseract.TesseractError as e:
                raise ExtractError(f"OCR: Tesseract failed on page {page}: {str(e)[:300]}") from e
            finally:
                for p in images:
                    os.unlink(p)
            lines, page_confs = _lines(data)
            pages.append(lines)
            confs.extend(page_confs)
    seconds = time.monotonic() - started
    mean = sum(confs) / len(confs) if confs else None
    return OcrResult(pages=pages, confidence=mean, words=len(confs), pages_total=n_pages, seconds=seconds)


def describe(result: OcrResult) -> str:
    """The mark a change, an alert and the change page carry: 'OCR text (mean confidence 87%)'."""
    conf = round(result.confidence or 0)
    note = f"OCR text (mean confidence {conf}%"
    if conf < LOW_CONFIDENCE:
        note += ", a poor reading: check the scan"
    note += ")"
    if result.pages_read < result.pages_total:
        note += f"; only the first {result.pages_read} of {result.pages_total} pages were read (ocr.max_pages)"
    return note


@dataclass(frozen=True)
class Scan:
    """A PDF without a text layer as OCR saw it: its pages of lines ([] when OCR could not run),
    the note for the change, the note when the pages hold no text, and the mean confidence."""

    pages: list[list[str]]
    note: str
    empty_note: str
    confidence: float | None = None


def read_scan(body: bytes, *, url: str, settings=None) -> Scan:
    """OCR of a PDF whose pages carry no text, when Tesseract is available; else no pages, with a
    note saying how to enable OCR (today's 'no text layer'). ExtractError when OCR fails."""
    missing = unavailable(settings)
    if missing:
        hint = "" if missing.startswith("OCR is turned off") else f": {INSTALL_HINT}"
        note = f"PDF without a text layer; {missing}{hint}"
        return Scan(pages=[], note=note, empty_note=note)
    try:
        result = read_pdf(body, settings)
    except ExtractError as e:
        e.url = url
        raise
    logger.info("%s: OCR read %d of %d pages in %.1f s (%d words, mean confidence %s)", url or "PDF",
                result.pages_read, result.pages_total, result.seconds, result.words,
                f"{result.confidence:.0f}%" if result.confidence is not None else "n/a")
    return Scan(pages=result.pages, note=describe(result), confidence=result.confidence,
                empty_note=f"PDF without a text layer; OCR found no text on its first {result.pages_read} page(s)")
