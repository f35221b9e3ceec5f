"""Contact sheets: one picture that shows a run, because people would rather look than read."""

from __future__ import annotations

from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

BG = (24, 24, 27)
FG = (235, 235, 235)
DIM = (150, 150, 160)
BAD = (230, 90, 80)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
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


# --- the frames stage's sheet: what was picked, and everything known about it ----------------------
#: Colours of what the frames sheet marks: faces, persistent marks (logos), other text, transitions.
FACE = (90, 220, 120)
MARK = (255, 150, 40)
TEXT = (250, 215, 70)
WARN = (240, 120, 100)
KINDS = {"fade-in": (235, 170, 60), "fade-out": (235, 170, 60), "fade": (235, 170, 60),
         "dissolve": (170, 120, 230), "wipe": (80, 190, 230)}
LANES = ((120, 200, 255), (255, 140, 200), (160, 230, 130), (250, 200, 90), (200, 160, 255), (120, 230, 220))


def _cell(kf, cell_w: int, lanes: dict) -> Image.Image:
    """One key frame, fitted into ``cell_w`` x ``cell_w`` (a portrait still no taller), with its faces (and
    who), text regions and logos drawn on it."""
    im = kf.image.convert("RGB")
    s = min(cell_w / im.width, cell_w / im.height)
    th = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.Resampling.LANCZOS)
    d = ImageDraw.Draw(th)
    small = _font(11)
    for r in kf.regions:
        b = r.box
        colour = MARK if r.persistent else TEXT
        d.rectangle([b.x * s, b.y * s, (b.x + b.w) * s, (b.y + b.h) * s], outline=colour, width=2)
        d.text((b.x * s + 2, max(0, (b.y + b.h) * s + 1)), r.kind, fill=colour, font=small)
    for i, b in enumerate(kf.faces):
        who = kf.people[i].character if i < len(kf.people) else None
        colour = lanes.get(who, FACE)
        d.rectangle([b.x * s, b.y * s, (b.x + b.w) * s, (b.y + b.h) * s], outline=colour, width=2)
        if who:
            d.rectangle([b.x * s, max(0, b.y * s - 13), b.x * s + 7 * len(who) + 4, b.y * s], fill=colour)
            d.text((b.x * s + 2, max(0, b.y * s - 13)), who, fill=(20, 20, 20), font=small)
    return th


def _caption(kf) -> list[str]:
    g = kf.scores.as_dict().get
    people = ", ".join(f"{p.character or '?'} eyes {p.eyes_open:.1f} expr {p.expression:.1f}"
                       if p.eyes_open is not None else f"{p.character or '?'}" for p in kf.people[:2])
    if len(kf.people) > 2:
        people += f" +{len(kf.people) - 2}"
    marks = sorted({r.kind for r in kf.regions})
    return [
        f"{kf.timecode}  frame {kf.frame_index}  shot {kf.shot}  quality {g('quality', 0):.2f}",
        f"sharp {g('sharpness', 0):.2f}  expo {g('exposure', 0):.2f}  contr {g('contrast', 0):.2f}  "
        f"natural {g('naturalness', 0):.2f}  thirds {g('thirds', 0):.2f}",
        f"faces {len(kf.faces)}: {people}" if kf.faces else "faces 0",
        f"text {g('text_share', 0):.0%}" + (f"  marks: {', '.join(marks)}" if marks else "  no marks")
        + f"  blur {g('motion_blur', 0):.2f}  card {g('title_card', 0):.2f}",
    ]


def _timeline(d: ImageDraw.ImageDraw, result, x0: int, y0: int, width: int, lanes: dict) -> int:
    """Shots, transitions, key frames and characters' screen time along the clip; returns its height."""
    dur = max(result.duration_s, 1e-6)

    def x(t: float) -> float:
        return x0 + width * min(max(t / dur, 0.0), 1.0)

    small = _font(11)
    for i, shot in enumerate(result.shots):
        d.rectangle([x(shot.start_s), y0, x(shot.end_s) - 1, y0 + 14], fill=(70, 70, 78) if i % 2 else (52, 52, 60))
    for tr in result.transitions:
        colour = KINDS.get(tr.kind, WARN)
        d.rectangle([x(tr.start_s), y0, max(x(tr.end_s), x(tr.start_s) + 2), y0 + 14], fill=colour)
        d.text((x(tr.start_s), y0 + 16), tr.kind, fill=colour, font=small)
    for n, kf in enumerate(result.keyframes, start=1):
        d.line([x(kf.t_s), y0 - 4, x(kf.t_s), y0 + 18], fill=FG, width=2)
        d.text((x(kf.t_s) + 2, y0 - 14), str(n), fill=FG, font=small)
    y = y0 + 32
    for c in result.characters[:len(LANES)]:
        colour = lanes[c.label]
        d.text((x0 - 150, y - 2), f"{c.label}  {c.screen_time_s:.1f} s", fill=colour, font=small)
        for a, b in c.appearances:
            d.rectangle([x(a), y, max(x(b), x(a) + 2), y + 8], fill=colour)
        y += 14
    d.text((x0 + width - 40, y0 + 16), f"{result.duration_s:.1f} s", fill=DIM, font=small)
    return y - y0 + 6


def frames_sheet(result, *, title: str = "", cols: int = 4, cell_w: int = 320) -> Image.Image:
    """The frames stage at a glance: every key frame with its faces (who), text regions and logos
    drawn on it, the clip's shots, transitions, key-frame times and characters' screen time on a
    timeline, the bars cropped, the characters' faces, and why fewer frames came back than asked.

    Args:
        result: a ``FramesResult``.
        title: the headline.
        cols, cell_w: key frames per row and each one's width in pixels.
    """
    kfs = list(result.keyframes)
    lanes = {c.label: LANES[i % len(LANES)] for i, c in enumerate(result.characters)}
    cols = max(1, min(cols, len(kfs) or 1))
    pad, line_h = 10, 15
    thumbs = [_cell(kf, cell_w, lanes) for kf in kfs]
    captions = [_caption(kf) for kf in kfs]
    cell_h = max((t.height for t in thumbs), default=cell_w * 9 // 16)
    n_lines = max((len(c) for c in captions), default=1)
    rows = (len(kfs) + cols - 1) // cols
    width = max(pad + cols * (cell_w + pad), 900)
    chars = [c for c in result.characters if c.chip is not None][:10]
    head = 64
    timeline_h = 46 + 14 * min(len(result.characters), len(LANES)) if result.kind == "video" else 0
    chars_h = 118 if chars else 0
    import textwrap

    chars_per_line = max(40, int((width - 2 * pad) / 6.6))
    warn_lines = [line for msg in result.warnings for line in textwrap.wrap(msg, chars_per_line)]
    foot = 8 + line_h * (len(warn_lines) + 1)
    height = head + timeline_h + chars_h + rows * (cell_h + n_lines * line_h + 2 * pad) + foot + pad
    sheet = Image.new("RGB", (width, height), BG)
    d = ImageDraw.Draw(sheet)
    small = _font(12)
    d.text((pad, 8), title or f"key frames of {result.source}", fill=FG, font=_font(20))
    facts = [f"{len(kfs)} of {result.asked or len(kfs)} key frames", f"{len(result.shots)} shots",
             f"{len(result.transitions)} transitions", f"{len(result.characters)} characters",
             f"{len(result.regions)} persistent marks"]
    d.text((pad, 34), "   ".join(facts), fill=DIM, font=small)
    if result.active_area is not None:
        _bars_icon(d, result, width - 150, 10)
    y = head
    if timeline_h:
        y += _timeline(d, result, pad + 150, y + 14, width - 2 * pad - 150, lanes) + 8
    if chars:
        for i, c in enumerate(chars):
            x0 = pad + i * 96
            chip = c.chip.convert("RGB").resize((80, 80), Image.Resampling.LANCZOS)
            sheet.paste(chip, (x0, y))
            colour = lanes.get(c.label, FG)
            d.rectangle([x0, y, x0 + 79, y + 79], outline=colour, width=2)
            d.text((x0, y + 82), c.label[:14], fill=colour, font=small)
            d.text((x0, y + 96), f"{c.screen_time_s:.1f} s, {len(c.appearances)}x", fill=DIM, font=small)
        y += chars_h
    for i, (thumb, lines) in enumerate(zip(thumbs, captions)):
        r, c = divmod(i, cols)
        x0 = pad + c * (cell_w + pad)
        y0 = y + r * (cell_h + n_lines * line_h + 2 * pad)
        tx, ty = x0 + (cell_w - thumb.width) // 2, y0 + (cell_h - thumb.height) // 2
        sheet.paste(thumb, (tx, ty))
        d.text((tx + 4, ty + 2), str(i + 1), fill=FG, font=_font(14))
        for k, line in enumerate(lines):
            d.text((x0, y0 + cell_h + 3 + k * line_h), line, fill=FG if k == 0 else DIM, font=small)
    y = height - foot
    d.text((pad, y), f"{result.n_frames} frames decoded, {result.duration_s:.2f} s, "
           f"cuts by {result.detector or 'stills'}", fill=DIM, font=small)
    for k, msg in enumerate(warn_lines):
        d.text((pad, y + (k + 1) * line_h), msg, fill=WARN, font=small)
    return sheet


def _bars_icon(d: ImageDraw.ImageDraw, result, x0: int, y0: int) -> None:
    """The source frame as a small black outline (the bars) and the picture kept, filled green."""
    w, h = 64, max(8, round(64 * result.height / max(result.width, 1)))
    s = w / max(result.width, 1)
    d.rectangle([x0, y0, x0 + w, y0 + h], fill=(8, 8, 8), outline=DIM, width=1)
    ax, ay, aw, ah = result.active_area
    d.rectangle([x0 + ax * s, y0 + ay * s, x0 + (ax + aw) * s, y0 + (ay + ah) * s], fill=(60, 110, 80),
                outline=FACE)
    bars = (aw, ah) != (result.width, result.height)
    d.text((x0 + w + 6, y0), "bars cropped" if bars else "no bars", fill=FACE if bars else DIM, font=_font(11))
    d.text((x0 + w + 6, y0 + 14), f"{aw}x{ah}", fill=DIM, font=_font(11))
