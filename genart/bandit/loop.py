"""The learning loop's rules, as pure functions: when is a segment's artwork weak, and which
generation settings to try next for it.

- :func:`weakness`: a segment is weak when, after ``loop_min_impressions`` impressions, none of
  its generated arms beats the control with probability above ``loop_beat_probability``, or the
  leader's lift over the control is below ``loop_min_lift``. A new arm that has seen little
  traffic still has a wide posterior, so it keeps a segment from being weak until its data say
  otherwise (and :func:`genart.learning.loop_step` waits for ``loop_min_impressions`` more
  impressions after a proposal before the segment may ask again). (The report carries the verdict for
  every segment; :func:`genart.learning.loop_step` acts on it when the test has ``loop`` on.)
- :func:`arms_key`: the state of a segment's arms; one trigger per state, so a weak segment asks
  for new artwork once, and again only after its arms changed.
- :func:`thompson_settings`: Thompson sampling over candidate generation settings (key frame,
  character, aspect, grade, prompt edit, strength): for each pick, one draw of the segment's
  taste from the preference model's posterior, and the setting whose expected facts score best
  under that draw. Settings the model is unsure about win some draws, so the loop explores what
  it has not seen as well as exploiting what it knows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Sequence

import numpy as np

from genart.bandit.types import ArmReport, TestConfig
from genart.errors import InvalidArgumentError
from genart.types import stable_id


def weakness(arms: Sequence[ArmReport], cfg: TestConfig) -> tuple[bool, str]:
    """(weak, why in words) for one segment's arms (see the module docstring)."""
    control = next((a for a in arms if a.is_control), None)
    made = [a for a in arms if not a.is_control]
    total = sum(a.impressions for a in arms)
    if control is None:
        return False, "no control arm to compare with"
    if not made:
        return False, "no generated arm"
    if total < cfg.loop_min_impressions:
        return False, f"collecting: {total} of {cfg.loop_min_impressions} impressions"
    best = max(made, key=lambda a: a.prob_beats_control or 0.0)
    leader = max(made, key=lambda a: a.posterior_mean)
    p_beat = best.prob_beats_control or 0.0
    lift = leader.lift if leader.lift is not None else 0.0
    if p_beat <= cfg.loop_beat_probability:
        return True, (f"no generated arm beats the control with P > {cfg.loop_beat_probability:g} "
                      f"(best: {best.arm_id}, P = {p_beat:.2f}) after {total} impressions")
    if lift < cfg.loop_min_lift:
        return True, (f"the leader {leader.arm_id} lifts {lift:+.1%} over the control, below "
                      f"{cfg.loop_min_lift:+.0%}, after {total} impressions")
    return False, f"{best.arm_id} beats the control with P = {p_beat:.2f}; the leader lifts {lift:+.1%}"


def opportunity(model, segment: str, candidates: Sequence[tuple["Setting", dict]], arms: Sequence[ArmReport],
                cfg: TestConfig, rng: np.random.Generator, *, exclude: Sequence[str] = (), group: str | None = None,
                n_draws: int = 2000, min_titles: int = 2) -> tuple[bool, str, float]:
    """(worth it, why, probability): does the preference model expect an untried setting to beat the
    segment's leader by at least ``cfg.loop_min_gain`` (relative), with probability above
    ``cfg.loop_beat_probability``? The other reason to ask for new artwork: the arms are not weak
    against the control, but what the segment has shown it likes is within reach.

    The probability is over joint posterior draws: in each draw, the best untried setting's rate
    against a draw of the leader's own (Beta) posterior; draws, not point estimates, so a model
    that knows little does not promise much, and it waits until the model has seen the segment on
    ``min_titles`` titles (the best of many wide guesses always looks good). It needs no traffic on
    this title: a model that learned the segment's taste on earlier titles can ask for better
    artwork from the start.
    """
    if cfg.loop_min_gain is None or not arms:
        return False, "off", 0.0
    seen = model.titles.get(segment, 0)
    if seen < min_titles:
        # an untaught model is wide, and the best of many wide guesses always looks good: no promise yet
        return False, (f"the preference model has seen {segment} on {seen} title(s); it promises better artwork "
                       f"after {min_titles}"), 0.0
    excluded = set(exclude)
    pool = [f for s, f in candidates if s.key not in excluded]
    if not pool:
        return False, "every setting was tried", 0.0
    leader = max(arms, key=lambda a: a.posterior_mean)
    a = leader.posterior_mean * (leader.impressions + 2.0)
    b = (1 - leader.posterior_mean) * (leader.impressions + 2.0)
    lead = rng.beta(max(a, 1e-3), max(b, 1e-3), size=n_draws)
    rates = 1.0 / (1.0 + np.exp(-model.sample_logits(segment, pool, n_draws, rng, group)))
    p = float((rates.max(axis=1) > (1.0 + cfg.loop_min_gain) * lead).mean())
    if p > cfg.loop_beat_probability:
        return True, (f"the preference model expects an untried setting to beat the leader {leader.arm_id} by "
                      f"{cfg.loop_min_gain:.0%} or more (P = {p:.2f})"), p
    return False, f"no untried setting likely to beat the leader by {cfg.loop_min_gain:.0%} (P = {p:.2f})", p


def arms_key(arm_ids: Sequence[str]) -> str:
    """A short id of a set of arms (order does not matter)."""
    return stable_id(sorted(arm_ids), length=16)


@dataclass(frozen=True)
class Setting:
    """How to make one new variant through the preset's own generator.

    ``face``: the index of the face (in the key frame's ``faces``) to frame the crop around, or
    None for the frame's own subject; ``character`` names it when the frames stage clustered it.
    ``grade_amount`` scales the profile's grade; ``strength`` and ``prompt_edit`` apply to the
    diffusion presets only.
    """

    keyframe_id: str
    aspect: str
    grade_amount: float = 1.0
    face: int | None = None
    character: str | None = None
    strength: float | None = None
    prompt_edit: str | None = None
    extras: tuple[tuple[str, float], ...] = field(default=())  # anything else a caller varies, by name

    @cached_property
    def key(self) -> str:
        return stable_id(asdict(self), length=16)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Setting":
        d = json.loads(text)
        d["extras"] = tuple(tuple(x) for x in d.get("extras", ()))
        return cls(**d)


@dataclass(frozen=True)
class Pick:
    """A setting Thompson sampling chose, with the model's view of it."""

    setting: Setting
    predicted: float  # posterior mean rate
    low: float
    high: float
    sampled: float  # the rate in the draw that picked it


def thompson_settings(model, segment: str, candidates: Sequence[tuple[Setting, dict]], k: int,
                      rng: np.random.Generator, *, exclude: Sequence[str] = (), n_summary: int = 2000,
                      group: str | None = None) -> list[Pick]:
    """Up to ``k`` distinct settings for ``segment`` by Thompson sampling under ``model``.

    Args:
        model: a :class:`~genart.bandit.preferences.PreferenceModel`.
        candidates: (setting, the facts its variant is expected to show).
        k: how many to pick.
        rng: the draws' generator.
        exclude: setting keys already made (they are not proposed again).
        group: the test, when the model has seen it (its own baseline).

    Raises:
        InvalidArgumentError: ``k < 1``.
    """
    if k < 1:
        raise InvalidArgumentError("k", k, "an integer >= 1")
    excluded = set(exclude)
    pool = [(s, f) for s, f in candidates if s.key not in excluded]
    seen: set[str] = set()
    unique = []
    for s, f in pool:
        if s.key not in seen:
            seen.add(s.key)
            unique.append((s, f))
    if not unique:
        return []
    facts = [f for _, f in unique]
    summary = 1.0 / (1.0 + np.exp(-model.sample_logits(segment, facts, n_summary, rng, group)))
    mean = summary.mean(axis=0)
    lo, hi = np.quantile(summary, [0.025, 0.975], axis=0)
    picks: list[Pick] = []
    taken = np.zeros(len(unique), dtype=bool)
    draws = 1.0 / (1.0 + np.exp(-model.sample_logits(segment, facts, 4 * k, rng, group)))
    for row in draws:
        if len(picks) >= k or taken.all():
            break
        scores = np.where(taken, -np.inf, row)
        j = int(np.argmax(scores))
        taken[j] = True
        picks.append(Pick(unique[j][0], float(mean[j]), float(lo[j]), float(hi[j]), float(row[j])))
    return picks
