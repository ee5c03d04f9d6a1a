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


def make_image_pdf(pages: list[list[str]], dpi: int = 200, font_size: int = 40) -> bytes:
    """A scanned document: each page's lines drawn into a grayscale image with Pillow and the
    images saved as an image-only PDF (no text layer at all), as a scanner writes it."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=font_size)   # Pillow's bundled scalable font: no system fonts
    images = []
    for lines in pages:
        img = Image.new("L", (int(8.5 * dpi), int(11 * dpi)), 255)
        draw = ImageDraw.Draw(img)
        left, y = int(0.75 * dpi), dpi
        for line in lines:
            for row in _wrap(draw, line, font, img.width - 2 * left):
                draw.text((left, y), row, fill=0, font=font)
                y += int(font_size * 1.4)
            y += int(font_size * 0.6)       # a little more between the given lines
        images.append(img)
    buf = io.BytesIO()
    images[0].save(buf, "PDF", resolution=dpi, save_all=True, append_images=images[1:])
    return buf.getvalue()


def _wrap(draw, line: str, font, width: int) -> list[str]:
    """Greedy word wrap to `width` pixels, as a typed page would break a long sentence."""
    rows: list[str] = []
    for word in line.split():
        if rows and draw.textlength(f"{rows[-1]} {word}", font=font) <= width:
            rows[-1] = f"{rows[-1]} {word}"
        else:
            rows.append(word)
    return rows
