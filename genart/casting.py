"""Casting: how well a key frame gives a profile the people it asks for.

The frames stage knows who is on screen (``KeyFrame.people[i].character``: a casting note's name or
``c1``, ``c2``, ... in order of screen time) and scores ``lead`` (the title's most-seen character is
in the frame) and ``characters`` (how many distinct ones). A profile says what its audience wants
with ``casting:`` in ``prompts/<id>.yaml``:

- ``lead``: the title's lead;
- ``pair``: two characters together (the romance fan's couple);
- any other value: the character of that name in the title's casting notes (``cast:`` in the
  catalogue, ``--cast NAME=IMAGE``, ``analyse(cast=...)``), e.g. the one a region's team knows sells.

This module imports nothing heavy: ranking can score any key frame with it.
"""

from __future__ import annotations

from genart.types import KeyFrame

#: The wants that are not a character's name.
LEAD, PAIR = "lead", "pair"


def casting_match(keyframe: KeyFrame, want: str | None) -> float | None:
    """1 when ``keyframe`` gives what ``want`` asks for, 0 when it does not, None when nothing is asked.

    Args:
        keyframe: a key frame from the frames stage (its ``people`` and ``scores``).
        want: a profile's ``casting``: ``"lead"``, ``"pair"`` or a character's name (case ignored).

    Returns:
        For ``pair``, 0.5 when two or more faces are in the frame but who they are is unknown.
    """
    if not want:
        return None
    who = {p.character for p in keyframe.people if p.character}
    w = want.strip().lower()
    if w == LEAD:
        return float(keyframe.scores.get("lead", 0.0) or 0.0)
    if w == PAIR:
        if len(who) >= 2:
            return 1.0
        return 0.5 if len(keyframe.faces) >= 2 else 0.0
    return 1.0 if any(c.lower() == w for c in who) else 0.0
