"""Real PDFs for the tests, made with reportlab (text layer, several pages, or none at all)."""
from __future__ import annotations

import io


def make_pdf(pages: list[list[str]], title: str = "") -> bytes:
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter)
    if title:
        c.setTitle(title)
    for lines in pages:
        y = 720
        for line in lines:
            c.drawString(72, y, line)
            y -= 16
        c.showPage()
    c.save()
    return buf.getvalue()


def make_scanned_pdf() -> bytes:
    """A PDF whose page carries only a drawing: no text layer (like a scanned document)."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter)
    c.rect(72, 400, 300, 200, fill=1)
    c.showPage()
    c.save()
    return buf.getvalue()
