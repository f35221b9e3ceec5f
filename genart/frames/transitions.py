"""Fades, dissolves and wipes, found on every decoded frame: no key frame may come from inside one.

A frame half way through a fade has the sharpness of the shot it belongs to, so quality measures
alone keep picking it; a cross-dissolve is a double exposure. Each frame ``F`` is compared with the
frames ``k`` before (``A``) and ``k`` after (``B``) it, on a 48-px colour copy of the detector's
frame, at two spans (``k`` about 0.15 s and 0.4 s, so short and long transitions both fill the span):

- **dissolve**: where the picture changes between ``A`` and ``B``, ``F`` is their mix: close to
  ``(A + B) / 2`` and close to neither end. A pan or a zoom also changes every cell, but its middle
  frame is not a mix (a moving edge is either here or there); at this coarse size a slow move can
  look like one, so a mix must also show the blend's contrast dip (two unrelated pictures averaged
  lose contrast, a moving one does not).
- **fade**: ``F`` is ``A`` or ``B`` scaled towards black (or white): the same picture
  (normalised correlation at least ``FADE_CORR``) with clearly less (or more) contrast, and
  darker (or lighter).
- **wipe**: the change from one frame to the next is concentrated in a narrow band of columns (or
  rows), far above the change elsewhere (which is only the shots' own motion), and that band moves
  steadily across the frame for several frames: the edge of the next picture sweeping in.
  Horizontal and vertical wipes are found; iris, clock and diagonal wipes are not.

Flagged frames close together form a transition; it is widened by the span that found it (the
first and last frames of a transition are barely changed, so the test cannot see them, but they
are still a blend). A transition that passes through black (or white) is a fade-out up to its
darkest frame and a fade-in after it. Everything runs on the consumer thread of the single decode
pass; per frame it costs a resize to 48 px and a few array operations on 1300 numbers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from genart.types import Transition

#: Width of the colour copy compared (height follows the aspect).
THUMB_W = 48
#: A cell counts as changed between ``A`` and ``B`` above this mean absolute difference (0-1).
CHANGED = 0.06
#: Share of the cells that must change for a frame to be tested at all.
MIN_CHANGED = 0.3
#: Dissolve: share of changed cells that are a mix (close to the mean of the ends, far from both).
MIX_SHARE = 0.55
#: Dissolve: contrast of ``F`` at most this times the mean contrast of ``A`` and ``B``.
DIP = 0.93
#: Fade: correlation of ``F`` with the brighter end, and the contrast ratio it must fall under.
FADE_CORR = 0.9
FADE_RATIO = 0.85
#: Wipe: the band of change must exceed the column (row) median by this factor and this much, be at
#: most ``WIPE_BAND`` of the frame wide, and move steadily (``WIPE_MIN_STEP``-``WIPE_MAX_STEP`` of the
#: frame per frame, one way) for at least ``WIPE_FRAMES`` frames.
WIPE_PEAK = 3.0
WIPE_ABOVE = 0.06
WIPE_BAND = 0.2
WIPE_MIN_STEP, WIPE_MAX_STEP = 0.005, 0.25
WIPE_FRAMES = 4
#: ... and sweep at least this share of the frame (a hand or a door moving is a short sweep).
WIPE_SWEEP = 0.45
#: A transition whose darkest frame is under this mean luma (or brightest over 1 minus it) is a fade.
FADE_FLOOR = 0.08
#: Frames flagged at most this many frames apart are one transition; a transition needs this many flags.
MERGE_GAP = 2
MIN_FLAGS = 2


@dataclass(frozen=True)
class _Thumb:
    index: int
    t_s: float
    pix: np.ndarray  # (h, THUMB_W, 3) float32 0-1
    luma: float  # mean
    sd: float  # contrast (std of the grey copy)


def _classify(a: _Thumb, f: _Thumb, b: _Thumb) -> str | None:
    """``"dissolve"``, ``"fade"``, ``"wipe"`` or None for frame ``f`` between ``a`` and ``b``."""
    A, F, B = a.pix, f.pix, b.pix
    d = np.abs(B - A).mean(axis=2)
    changed = d > CHANGED
    share = float(changed.mean())
    if share < MIN_CHANGED:
        return None
    ea = np.abs(F - A).mean(axis=2)[changed]
    eb = np.abs(F - B).mean(axis=2)[changed]
    em = np.abs(F - (A + B) / 2).mean(axis=2)[changed]
    dc = d[changed]
    # fades: the same picture as one end, scaled in contrast (checked first: a fade is also a mix)
    for end in (a, b):
        other = b if end is a else a
        if end.sd > 0.04 and f.sd < FADE_RATIO * end.sd and other.sd < f.sd * 1.05 + 0.02:
            x = (F - F.mean()).ravel()
            y = (end.pix - end.pix.mean()).ravel()
            denom = float(np.linalg.norm(x) * np.linalg.norm(y))
            if denom > 1e-6 and float(x @ y) / denom >= FADE_CORR:
                return "fade"
    mix = (em < 0.3 * dc) & (ea > 0.25 * dc) & (eb > 0.25 * dc)
    if float(mix.mean()) >= MIX_SHARE and f.sd <= DIP * (a.sd + b.sd) / 2:
        return "dissolve"
    return None


def _edge(prev: np.ndarray, cur: np.ndarray) -> tuple[int, float] | None:
    """(axis, position 0-1) of a narrow band holding most of the change between two frames, if any.

    Axis 0: a vertical edge (columns), 1: a horizontal one (rows).
    """
    diff = np.abs(cur - prev).mean(axis=2)
    for axis, profile in ((0, diff.mean(axis=0)), (1, diff.mean(axis=1))):
        n = len(profile)
        base = float(np.median(profile))
        peak = int(np.argmax(profile))
        top = float(profile[peak])
        if top < WIPE_PEAK * base or top < base + WIPE_ABOVE:
            continue
        band = profile > (base + top) / 2
        lo, hi = peak, peak
        while lo > 0 and band[lo - 1]:
            lo -= 1
        while hi < n - 1 and band[hi + 1]:
            hi += 1
        if (hi - lo + 1) <= max(2, WIPE_BAND * n) and band.sum() <= (hi - lo + 1) + 1:
            return axis, (lo + hi + 1) / 2 / n
    return None


class TransitionTracker:
    """Push every decoded frame's detector copy; ``finish`` gives the transitions.

    Args:
        fps: the stream's frame rate (sets the two spans).
    """

    def __init__(self, fps: float) -> None:
        fps = max(1.0, float(fps))
        self.spans = sorted({max(2, round(0.15 * fps)), max(4, round(0.4 * fps))})
        self.k = self.spans[-1]
        self.buf: deque[_Thumb] = deque(maxlen=2 * self.k + 1)
        self.flags: list[tuple[int, float, str, int]] = []  # (frame index, t, kind, span)
        self.edges: list[tuple[int, int, float]] = []  # (frame index, axis, position) of sweeping edges
        self.times: list[float] = []
        self.luma: list[float] = []
        self.size: tuple[int, int] | None = None

    def push(self, index: int, t_s: float, bgr: np.ndarray) -> None:
        import cv2

        h, w = bgr.shape[:2]
        if self.size is None:
            self.size = (THUMB_W, max(4, round(THUMB_W * h / max(w, 1))))
        pix = cv2.resize(bgr, self.size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        grey = pix.mean(axis=2)
        th = _Thumb(index, float(t_s), pix, float(grey.mean()), float(grey.std()))
        self.times.append(float(t_s))
        self.luma.append(th.luma)
        if self.buf:
            edge = _edge(self.buf[-1].pix, pix)
            if edge is not None:
                self.edges.append((index, *edge))
        self.buf.append(th)
        self._test_middle()

    def _test_middle(self) -> None:
        n = len(self.buf)
        if n < 2 * self.spans[0] + 1:
            return
        c = n - 1 - self.k if n == self.buf.maxlen else None
        if c is None:
            return
        f = self.buf[c]
        for k in self.spans:
            kind = _classify(self.buf[c - k], f, self.buf[c + k])
            if kind is not None:
                self.flags.append((f.index, f.t_s, kind, k))
                return

    def _wipes(self) -> list[tuple[int, int]]:
        """Frame ranges [first, last] where an edge swept steadily across the frame."""
        out = []
        run: list[tuple[int, int, float]] = []

        def close() -> None:
            if len(run) >= WIPE_FRAMES:
                steps = np.diff([p for _i, _a, p in run])
                if (len(steps) and (np.all(steps > 0) or np.all(steps < 0))
                        and WIPE_MIN_STEP <= float(np.abs(steps).mean()) <= WIPE_MAX_STEP
                        and abs(run[-1][2] - run[0][2]) >= WIPE_SWEEP):
                    out.append((run[0][0] - 1, run[-1][0]))

        for e in self.edges:
            if run and (e[0] - run[-1][0] > 1 or e[1] != run[-1][1]):
                close()
                run = []
            run.append(e)
        close()
        return out

    def finish(self, frame_period_s: float) -> list[Transition]:
        """The transitions found, each widened by its span; fades named by their direction."""
        n = len(self.times)
        out: list[Transition] = []
        for first, last in self._wipes():
            first, last = max(0, first - 1), min(n - 1, last + 1)
            end_t = self.times[last + 1] if last + 1 < n else self.times[last] + frame_period_s
            out.append(Transition(self.times[first], float(end_t), "wipe"))
        if not self.flags:
            return _merge(out)
        groups: list[list[tuple[int, float, str, int]]] = [[self.flags[0]]]
        for fl in self.flags[1:]:
            if fl[0] - groups[-1][-1][0] <= MERGE_GAP + 1:
                groups[-1].append(fl)
            else:
                groups.append([fl])
        for g in groups:
            if len(g) < MIN_FLAGS:
                continue
            k = max(fl[3] for fl in g)
            first = max(0, g[0][0] - k)
            last = min(n - 1, g[-1][0] + k)
            kinds = [fl[2] for fl in g]
            out += self._named(first, last, max(set(kinds), key=kinds.count), frame_period_s)
        return _merge(out)

    def _named(self, first: int, last: int, kind: str, frame_period_s: float) -> list[Transition]:
        """The transition over frames [first, last]: through black (or white) it is a fade-out to its
        extreme frame and a fade-in from it; otherwise ``kind``."""
        n = len(self.times)

        def t_end(i: int) -> float:
            return float(self.times[i + 1] if i + 1 < n else self.times[i] + frame_period_s)

        luma = np.asarray(self.luma[first:last + 1])
        extreme = np.minimum(luma, 1.0 - luma)
        m = int(np.argmin(extreme))
        if float(extreme[m]) >= FADE_FLOOR:
            return [Transition(self.times[first], t_end(last), "fade" if kind == "fade" else kind)]
        flat = np.flatnonzero(extreme <= float(extreme[m]) + 0.015)
        a, b = first + int(flat[0]), first + int(flat[-1])  # the black (white) frames inside
        out = []
        if a > first:
            out.append(Transition(self.times[first], t_end(a - 1), "fade-out"))
        if b < last:
            out.append(Transition(self.times[b + 1], t_end(last), "fade-in"))
        return out or [Transition(self.times[first], t_end(last), "fade")]


def _merge(ts: list[Transition]) -> list[Transition]:
    """Overlapping transitions as one (the kind of the longer)."""
    out: list[Transition] = []
    for t in sorted(ts, key=lambda t: t.start_s):
        if out and t.start_s <= out[-1].end_s:
            prev = out[-1]
            kind = prev.kind if prev.end_s - prev.start_s >= t.end_s - t.start_s else t.kind
            out[-1] = Transition(prev.start_s, max(prev.end_s, t.end_s), kind)
        else:
            out.append(t)
    return out


def inside(t_s: float, transitions: "list[Transition] | tuple[Transition, ...]") -> Transition | None:
    """The transition that covers ``t_s``, if any."""
    for tr in transitions:
        if tr.covers(t_s):
            return tr
    return None
