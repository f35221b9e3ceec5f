"""The run at a glance (``overview.png``): key frames on top, each profile's best variants below with
the numbers that placed them. Written by a run and by the batch job's hand-off alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genart.types import KeyFrame, RankedVariant, RunResult, Variant

if TYPE_CHECKING:  # annotations only: Pillow loads where pixels are drawn
    from PIL import Image


def _contribution_lines(rv: RankedVariant, width: int) -> list[str]:
    """``= aff .38 + fid .22 + ...`` (the weighted scores' contributions, largest first), wrapped."""
    parts = [f"{c.score[:3]} {c.contribution:.3f}".replace("0.", ".", 1) for c in rv.explanation if c.weight > 0]
    lines, line = [], "="
    for part in parts:
        piece = f" {part}" if line == "=" else f" + {part}"
        if len(line) + len(piece) > width and line not in ("=", "+"):
            lines.append(line)
            line = "+ " + part
        else:
            line += piece
    return lines + [line]


def overview(result: RunResult, per_profile: int = 6) -> Image.Image:
    """The run at a glance: key frames on top, then each profile's best variants in their displayed order,
    each with its rank score, the contributions its total is made of, and what diversity or the safety
    review said about it."""
    import textwrap

    from genart.imaging import load_rgb
    from genart.sheets import grid
    from genart.usecases.layout import stored_path

    def opened(item: KeyFrame | Variant) -> Image.Image:
        return item.image if item.image is not None else load_rgb(stored_path(item))

    width = 34
    rows = [("key frames", [(opened(k), [k.timecode, f"shot {k.shot}"]) for k in result.keyframes])]
    for pid, items in result.ranked:
        cells = []
        for rv in items[:per_profile]:
            score = rv.rank_score if rv.rank_score is not None else rv.total
            p = rv.variant.params
            lines = [f"#{rv.rank}  score {score:.3f}  {p.aspect}"]
            lines += _contribution_lines(rv, width)[:2]
            lines[-1] += f"  (total {rv.total:.3f})" if len(lines[-1]) + 15 <= width + 4 else ""
            # what finishing could not do (generate stage): a designer sees it before the numbers
            finishing = ", ".join(x for x in ("title skipped" if p.title_status == "skipped" else "",
                                              f"upscaled {p.upscale:.1f}x" if p.upscale > 1.5 else "") if x)
            if finishing:
                lines.append(finishing)
            note = f"needs review: {rv.needs_review}" if rv.needs_review else rv.placed_by or ""
            lines += textwrap.wrap(note, width)[:6 - len(lines)]
            cells.append((opened(rv.variant), lines))
        rows.append((pid, cells))
    return grid(rows, cell=240, cap_lines=6, title=f"genart run {result.run_id} - preset {result.preset}",
                footer="Order: the rank score (the total less what diversity took off); total = the sum of the "
                       "contributions shown. Source media keep their own licences and attribution.")
