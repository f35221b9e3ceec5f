"""A test's choices as a person states them, the same on every surface.

``genart bandit create`` options, a catalogue's ``test:`` block, the app's form and
``genart.api`` keyword arguments all go through :func:`test_settings`, so ``reward: play:15`` means
the same everywhere and every mistake gets the same message:

- ``policy``: ts | egreedy | ucb1 | lints | linucb | vw
- ``reward``: ``click`` (a click or a play), ``play:N`` (a play of at least N minutes: a quality
  play), ``watch:M`` (minutes watched, capped at M, as a reward in [0, 1])
- ``floor``: the exploration floor, every arm's least probability while the test runs
- ``change_cap`` and ``change_interval``: the change-effect cap, e.g. ``0.1`` per ``1h`` (an
  arm's share moves at most 10 points an hour) or per ``500 exposures``
- ``stop_at`` and ``min_impressions``: the stopping rule (a segment's winner is declared when an
  arm's P(best) reaches ``stop_at`` and every arm has ``min_impressions``)
- ``loop``, ``loop_variants``, ``loop_min_impressions``, ``loop_min_lift``,
  ``loop_beat_probability``: new artwork for weak segments (:mod:`genart.bandit.loop`)
- ``context_dim``: how many member features the contextual policies get per request
"""

from __future__ import annotations

import re
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict

from genart.bandit.types import POLICY_NAMES, RewardRule, TestConfig, interval_text  # noqa: F401  (re-exported)
from genart.errors import InvalidArgumentError, UnknownPolicyError

REWARD_HELP = "click | play:MINUTES (a play of at least that long) | watch:MINUTES (watch time capped there)"
INTERVAL_HELP = "a duration (30m, 1h, 3600s, 1d) or a count of exposures (500 exposures)"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)\s*$", re.I)
_COUNT = re.compile(r"^\s*(\d+)\s*(x|exp|exposures?|impressions?)\s*$", re.I)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_reward(text: str | RewardRule) -> RewardRule:
    """``click``, ``play:15`` or ``watch:60`` as a :class:`RewardRule`.

    Raises:
        InvalidArgumentError: anything else.
    """
    if isinstance(text, RewardRule):
        return text
    raw = str(text).strip().lower()
    kind, _, arg = raw.partition(":")
    try:
        if kind in ("click", "clicks") and not arg:
            return RewardRule(kind="click")
        if kind in ("play", "plays") and arg:
            minutes = float(arg.removesuffix("min").removesuffix("m"))
            if minutes > 0:
                return RewardRule(kind="threshold", threshold=minutes)
        if kind == "watch" and arg:
            minutes = float(arg.removesuffix("min").removesuffix("m"))
            if minutes > 0:
                return RewardRule(kind="value", scale=minutes)
    except (ValueError, InvalidArgumentError):
        pass
    raise InvalidArgumentError("reward", text, REWARD_HELP)


def reward_text(rule: RewardRule) -> str:
    """The inverse of :func:`parse_reward`."""
    if rule.kind == "threshold":
        return f"play:{rule.threshold:g}"
    if rule.kind == "value":
        return f"watch:{rule.scale:g}"
    return "click"


def parse_interval(value: str | float | int) -> tuple[float, Literal["seconds", "exposures"]]:
    """(amount, unit) of ``1h``, ``90m``, ``3600s``, ``500 exposures`` (a bare number is seconds).

    Raises:
        InvalidArgumentError: anything else, or an interval that is not positive.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value > 0:
            return float(value), "seconds"
    else:
        text = str(value)
        m = _DURATION.match(text)
        if m and float(m.group(1)) > 0:
            return float(m.group(1)) * _SECONDS[m.group(2)[0].lower()], "seconds"
        m = _COUNT.match(text)
        if m and int(m.group(1)) > 0:
            return float(m.group(1)), "exposures"
        try:
            seconds = float(text)
            if seconds > 0:
                return seconds, "seconds"
        except ValueError:
            pass
    raise InvalidArgumentError("change_interval", value, INTERVAL_HELP)


def test_settings(*, policy: str = "ts", reward: str | RewardRule = "click", floor: float = 0.01,
                  change_cap: float | None = None, change_interval: str | float = "1h", stop_at: float = 0.95,
                  min_impressions: int = 100, context_dim: int = 0, sticky: bool = False, loop: bool = False,
                  loop_variants: int = 3, loop_min_impressions: int = 1000, loop_min_lift: float = 0.05,
                  loop_beat_probability: float = 0.5, seed: int | None = None) -> TestConfig:
    """A :class:`TestConfig` from a person's choices (see the module docstring).

    Raises:
        UnknownPolicyError: an unknown policy.
        InvalidArgumentError: any other bad value, named as the option is named.
    """
    if policy not in POLICY_NAMES:
        raise UnknownPolicyError(str(policy), POLICY_NAMES)
    amount, unit = parse_interval(change_interval)
    if change_cap is not None and isinstance(change_cap, (int, float)) and change_cap > 1.0:
        raise InvalidArgumentError("change_cap", change_cap, "a share in (0, 1]: 0.1 lets an arm's share move 10 points "
                                   "per interval")
    return TestConfig(policy=policy, reward=parse_reward(reward), floor=floor, change_cap=change_cap,
                      change_interval=amount, change_unit=unit, stop_probability=stop_at,
                      min_impressions=min_impressions, context_dim=context_dim, sticky=sticky, loop=loop,
                      loop_variants=loop_variants, loop_min_impressions=loop_min_impressions,
                      loop_min_lift=loop_min_lift, loop_beat_probability=loop_beat_probability, seed=seed)


test_settings.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


class TestSettingsFile(BaseModel):
    """The ``test:`` block of a catalogue: the keyword arguments of :func:`test_settings`."""

    __test__ = False
    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: str = "ts"
    reward: str = "click"
    floor: float = 0.01
    change_cap: float | None = None
    change_interval: str | float = "1h"
    stop_at: float = 0.95
    min_impressions: int = 100
    context_dim: int = 0
    sticky: bool = False
    loop: bool = False
    loop_variants: int = 3
    loop_min_impressions: int = 1000
    loop_min_lift: float = 0.05
    loop_beat_probability: float = 0.5

    def config(self) -> TestConfig:
        return test_settings(**self.model_dump())


def settings_of(cfg: TestConfig) -> dict[str, Any]:
    """A config as the choices that make it (``test_settings(**settings_of(cfg)) == cfg`` for what
    the surfaces can set)."""
    return dict(policy=cfg.policy, reward=reward_text(cfg.reward), floor=cfg.floor, change_cap=cfg.change_cap,
                change_interval=interval_text(cfg.change_interval, cfg.change_unit), stop_at=cfg.stop_probability,
                min_impressions=cfg.min_impressions, context_dim=cfg.context_dim, sticky=cfg.sticky, loop=cfg.loop,
                loop_variants=cfg.loop_variants, loop_min_impressions=cfg.loop_min_impressions,
                loop_min_lift=cfg.loop_min_lift, loop_beat_probability=cfg.loop_beat_probability)


def from_mapping(data: Mapping[str, Any]) -> TestConfig:
    """:func:`test_settings` from a mapping (JSON, a form), refusing unknown keys.

    Raises:
        InvalidArgumentError: an unknown key or a bad value.
    """
    known = set(TestSettingsFile.model_fields)
    for key in data:
        if key not in known:
            raise InvalidArgumentError("test setting", key, "one of " + ", ".join(sorted(known)))
    return test_settings(**dict(data))
