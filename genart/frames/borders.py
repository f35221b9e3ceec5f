"""Letterbox, pillarbox and windowbox bars: found once per title, cropped away before anything else.

Why per title and over many frames (the idea of FFmpeg's ``cropdetect``): a single dark frame looks
like one big bar, and a bright frame says nothing about the black rows of a dark one. Bars are the
rows and columns that stay dark *and flat* in nearly every frame that has a picture at all, so
every analysed sample votes (``BarVotes.push``: one per-row and one per-column reduction of a
half-size grey copy, about a millisecond), and a row or column is a bar when at least
``BAR_SHARE`` of the votes say so and every row between it and the frame's edge is a bar too.

The scan needs the bars before it measures anything (so that sharpness, faces, thirds and text are
measured on the picture, not on black), but the votes only settle as the title plays: the first
``WARMUP`` usable samples are held back (a few megabytes), the bars estimated from them crop every
sample from then on, and the final bars come from all the votes of the title. Where the two differ
the key frames follow the final ones (faces and regions are moved into their pixels).

Only near-black bars are found (``DARK``, on 0-255 luma after averaging 2x2 pixels): the bars of
film transfers and broadcast; blurred or coloured fills are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: A row/column of a frame is bar-like when 90% of its (2x2-averaged) pixels are at most this
#: (0-255) and that 90th percentile is at most ``FLAT`` above its median: compression noise in real
#: bars stays under 20 and 4, the dark rows of a night scene have texture. The percentile, not the
#: maximum, so a subtitle or timecode crossing a bar does not make it picture.
DARK = 36.0
FLAT = 10.0
#: Share of the usable samples in which a row or column must be bar-like to count as a bar.
BAR_SHARE = 0.8
#: A side's bar is ignored when thinner than this share of the frame (a line of dust), and a side
#: never takes more than ``MAX_BAR`` of it (what is left of the picture must stay a picture).
MIN_BAR = 0.006
MAX_BAR = 0.35
#: Samples held back before the first estimate, and the fewest votes an estimate trusts.
WARMUP = 12
MIN_VOTES = 3
#: Pixels (at analysis size) added inside each detected bar: the rows next to a bar are often a
#: blend of black and picture (scaling, chroma subsampling).
INSET = 1


@dataclass(frozen=True)
class Bars:
    """Bar widths in pixels of the frame they were measured on: left, top, right, bottom."""

    left: int = 0
    top: int = 0
    right: int = 0
    bottom: int = 0

    @property
    def any(self) -> bool:
        return bool(self.left or self.top or self.right or self.bottom)

    def area(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The picture inside the bars, (x, y, w, h), of a ``width`` x ``height`` frame."""
        w = max(1, width - self.left - self.right)
        h = max(1, height - self.top - self.bottom)
        return self.left, self.top, w, h

    def scaled(self, sx: float, sy: float, width: int, height: int) -> "Bars":
        """The same bars on a frame ``sx`` x ``sy`` times larger (``width`` x ``height``), rounded inwards."""
        import math

        if not self.any:
            return self
        left = math.ceil(self.left * sx) if self.left else 0
        top = math.ceil(self.top * sy) if self.top else 0
        right = math.ceil(self.right * sx) if self.right else 0
        bottom = math.ceil(self.bottom * sy) if self.bottom else 0
        left, right = min(left, width // 2 - 1), min(right, width // 2 - 1)
        top, bottom = min(top, height // 2 - 1), min(bottom, height // 2 - 1)
        return Bars(max(0, left), max(0, top), max(0, right), max(0, bottom))

    def describe(self, width: int, height: int) -> str:
        """In words, for captions: which bars and the picture left."""
        if not self.any:
            return "no bars"
        kinds = []
        if self.top or self.bottom:
            kinds.append("letterbox")
        if self.left or self.right:
            kinds.append("pillarbox")
        x, y, w, h = self.area(width, height)
        return f"{' + '.join(kinds)} bars cropped: {w}x{h} of {width}x{height}"


def _profiles(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows bar-like, columns bar-like) of one RGB frame, as boolean vectors at its own size."""
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    half = cv2.resize(grey, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA).astype(np.float32)
    rp, rm = np.percentile(half, (90, 50), axis=1)
    cp, cm = np.percentile(half, (90, 50), axis=0)
    rows = (rp <= DARK) & (rp - rm <= FLAT)
    cols = (cp <= DARK) & (cp - cm <= FLAT)
    # back to full size (each half-size line stands for two)
    return np.repeat(rows, 2)[:h] if h > 1 else rows, np.repeat(cols, 2)[:w] if w > 1 else cols


def _run(share: np.ndarray) -> int:
    """Length of the bar run from index 0: lines whose vote share is at least ``BAR_SHARE``."""
    bad = np.flatnonzero(share < BAR_SHARE)
    return int(bad[0]) if len(bad) else len(share)


class BarVotes:
    """Each usable sample's vote on which rows and columns are bars, for one frame size."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.rows = np.zeros(height, np.int32)
        self.cols = np.zeros(width, np.int32)
        self.n = 0

    def push(self, rgb: np.ndarray) -> None:
        """Add a sample (RGB, this size); black or near-uniform samples should not be pushed."""
        if rgb.shape[:2] != (self.height, self.width):
            return
        rows, cols = _profiles(rgb)
        if rows.all() or cols.all():  # a black frame: it votes for nothing
            return
        self.rows += rows
        self.cols += cols
        self.n += 1

    def bars(self) -> Bars:
        """The bars the votes so far agree on (none before ``MIN_VOTES`` votes)."""
        if self.n < MIN_VOTES:
            return Bars()
        rs, cs = self.rows / self.n, self.cols / self.n
        sides = []
        for share, size in ((cs, self.width), (rs, self.height), (cs[::-1], self.width), (rs[::-1], self.height)):
            run = _run(share)
            if run < max(2, MIN_BAR * size) or run > MAX_BAR * size:
                sides.append(0)
            else:
                sides.append(min(run + INSET, int(MAX_BAR * size)))
        return Bars(*sides)
