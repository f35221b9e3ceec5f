"""Contact sheets: one picture that shows a run, because people would rather look than read."""

from __future__ import annotations

from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

BG = (24, 24, 27)
FG = (235, 235, 235)
DIM = (150, 150, 160)
BAD = (230, 90, 80)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _fit(img: Image.Image, w: int, h: int) -> Image.Image:
    im = img.convert("RGB").copy()
    im.thumbnail((w, h), Image.Resampling.LANCZOS)
    return im


def grid(rows: Sequence[tuple[str, Sequence[tuple[Image.Image, Sequence[str]]]]], *, cell: int = 220,
         title: str = "", footer: str = "", cap_lines: int = 3) -> Image.Image:
    """A labelled grid: each row is (label, [(image, caption lines), ...]); up to ``cap_lines`` caption
    lines under each image (those starting "rejected" or "needs review" in the warning colour)."""
    label_w, cap_h, pad = 170, 8 + 14 * cap_lines, 10
    cols = max((len(items) for _, items in rows), default=1) or 1
    head = 40 if title else 0
    foot = 24 if footer else 0
    width = label_w + cols * (cell + pad) + pad
    height = head + len(rows) * (cell + cap_h + pad) + pad + foot
    sheet = Image.new("RGB", (width, height), BG)
    draw = ImageDraw.Draw(sheet)
    big, small = _font(20), _font(13)
    if title:
        draw.text((pad, 10), title, fill=FG, font=big)
    for r, (label, items) in enumerate(rows):
        y0 = head + pad + r * (cell + cap_h + pad)
        draw.text((pad, y0 + 4), label, fill=FG, font=_font(16))
        for c, (img, caption) in enumerate(items):
            x0 = label_w + pad + c * (cell + pad)
            thumb = _fit(img, cell, cell)
            sheet.paste(thumb, (x0 + (cell - thumb.width) // 2, y0 + (cell - thumb.height) // 2))
            for i, line in enumerate(caption[:cap_lines]):
                colour = BAD if line.startswith(("rejected", "needs review")) else (FG if i == 0 else DIM)
                draw.text((x0, y0 + cell + 2 + i * 14), line, fill=colour, font=small)
    if footer:
        draw.text((pad, height - foot + 4), footer, fill=DIM, font=small)
    return sheet


def contact_sheet(cells: Sequence[tuple[Image.Image, Sequence[str], Sequence[tuple[float, float, float, float]]]], *,
                  cols: int = 4, cell_w: int = 320, title: str = "", footer: str = "") -> Image.Image:
    """Key frames in a grid, each with boxes drawn (x, y, w, h in its own pixels) and caption lines under it.

    Each cell keeps the frame's aspect (``cell_w`` wide); captions: the first line bright (timecode),
    the rest dim (scores). Built for a creative team's first look at what the frames stage picked.
    """
    cols = max(1, min(cols, len(cells) or 1))
    pad, line_h = 10, 15
    n_lines = max((len(lines) for _, lines, _ in cells), default=1)
    thumbs = []
    for img, _lines, boxes in cells:
        im = img.convert("RGB")
        scale = cell_w / im.width
        th = im.resize((cell_w, max(1, round(im.height * scale))), Image.Resampling.LANCZOS)
        d = ImageDraw.Draw(th)
        for x, y, w, h in boxes:
            d.rectangle([x * scale, y * scale, (x + w) * scale, (y + h) * scale], outline=(90, 220, 120), width=2)
        thumbs.append(th)
    cell_h = max((t.height for t in thumbs), default=cell_w * 9 // 16)
    rows = (len(cells) + cols - 1) // cols
    head = 40 if title else 0
    foot = 24 if footer else 0
    width = pad + cols * (cell_w + pad)
    height = head + pad + rows * (cell_h + n_lines * line_h + 2 * pad) + foot
    sheet = Image.new("RGB", (width, height), BG)
    draw = ImageDraw.Draw(sheet)
    small = _font(12)
    if title:
        draw.text((pad, 10), title, fill=FG, font=_font(20))
    for i, (thumb, (_img, lines, _boxes)) in enumerate(zip(thumbs, cells)):
        r, c = divmod(i, cols)
        x0 = pad + c * (cell_w + pad)
        y0 = head + pad + r * (cell_h + n_lines * line_h + 2 * pad)
        sheet.paste(thumb, (x0, y0 + (cell_h - thumb.height) // 2))
        for k, line in enumerate(lines):
            draw.text((x0, y0 + cell_h + 3 + k * line_h), line, fill=FG if k == 0 else DIM, font=small)
    if footer:
        draw.text((pad, height - foot + 4), footer, fill=DIM, font=small)
    return sheet
