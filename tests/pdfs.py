"""Real PDFs for the tests, made with reportlab (text layer, several pages, or none at all) or,
for scans, with Pillow (pages that are only images)."""
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


def make_image_pdf(pages: list[list[str]], dpi: int = 200, font_size: int = 40, worn: bool = False) -> bytes:
    """A scanned document: each page's lines drawn into a grayscale image with Pillow and the
    images saved as an image-only PDF (no text layer at all), as a scanner writes it. `worn`: a
    photocopy as FOIA offices post them: grey paper, a redaction box, 1.2 degrees of skew, speckle,
    blur, JPEG at quality 60."""
    import random

    from PIL import Image, ImageDraw, ImageFilter, ImageFont

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
        if worn:
            draw.rectangle((left, y, left + 3 * dpi, y + font_size), fill=0)
            img = img.point(lambda v: 30 if v < 128 else 240).rotate(1.2, resample=Image.BICUBIC, fillcolor=240)
            rng, px = random.Random(len(images)), img.load()
            for _ in range(img.width * img.height // 40):
                px[rng.randrange(img.width), rng.randrange(img.height)] = rng.choice((0, 120, 255))
            img = img.filter(ImageFilter.GaussianBlur(0.6))
        images.append(img)
    buf = io.BytesIO()
    images[0].save(buf, "PDF", resolution=dpi, save_all=True, append_images=images[1:], **({"quality": 60} if worn else {}))
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


def demo_report_pdf(report) -> bytes:
    """A PDF of the replay's report (monitor/demo.py; shipped as monitor/demo_data/<doc>.pdf, made with
    this): its corpus text wrapped at 95 characters, 40 lines a page."""
    import textwrap

    from monitor.demo import report_text

    lines: list[str] = []
    for para in report_text(report).split("\n"):
        lines += textwrap.wrap(para, 95) or [""]
    return make_pdf([lines[i:i + 40] for i in range(0, len(lines), 40)], title=report.number)
