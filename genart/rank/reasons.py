"""Numbers in reasons printed at the precision that makes the sentence true.

"fidelity 0.350 below the threshold 0.350" is a rounding contradiction: the value was 0.3498. A reason
compares a value with a line, so both are printed with the fewest decimals (at least ``digits``) at
which they differ, the same way, so the printed relation is the real one.
"""

from __future__ import annotations


def pair(value: float, line: float, digits: int = 2, most: int = 8) -> tuple[str, str]:
    """``value`` and ``line`` as text with one shared number of decimals at which they print differently.

    Rounding is monotone, so a value below the line never prints above it; equal values print equal.
    """
    d = digits
    while d < most and f"{value:.{d}f}" == f"{line:.{d}f}" and value != line:
        d += 1
    return f"{value:.{d}f}", f"{line:.{d}f}"
