"""The bandit stage's own typed values: what a test is configured with, what it reports.

``Arm``, ``Exposure`` and ``Outcome`` live in :mod:`genart.types` because they cross into the
pipeline and the review app; the values here are the stage's settings and results. All are frozen
dataclasses validated in ``__post_init__`` (typed errors, never ``assert``), and all round-trip
through plain JSON so a test's configuration can be stored next to its log.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Literal

from genart.errors import InvalidArgumentError, UnknownPolicyError

POLICY_NAMES: tuple[str, ...] = ("ts", "egreedy", "ucb1", "lints", "linucb", "vw")
BETA_POLICIES: tuple[str, ...] = ("ts", "egreedy", "ucb1")
REWARD_KINDS: tuple[str, ...] = ("click", "threshold", "value")
#: The declared range of a context feature: [-FEATURE_LIMIT, FEATURE_LIMIT]. A feature is a scaled
#: number (an age bucket, a watch-time z-score); anything near 1e154 would overflow the contextual
#: models' x x^T into inf and poison them, so the bound is far inside that and far outside real use.
FEATURE_LIMIT = 1e6
#: The largest observed reward value (a click 0/1, minutes watched) a test accepts.
REWARD_LIMIT = 1e9


def _finite(name: str, value: float, *, lo: float | None = None, hi: float | None = None, expected: str = "") -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and lo is not None and value < lo:
        ok = False
    if ok and hi is not None and value > hi:
        ok = False
    if not ok:
        raise InvalidArgumentError(name, value, expected or f"a finite number in [{lo}, {hi}]")


@dataclass(frozen=True)
class Context:
    """Who is asking for artwork: their segment, optionally who they are and numeric features.

    ``features`` feed the contextual policies (LinTS, LinUCB, Vowpal Wabbit); its length must match
    the test's ``context_dim``. ``user_id`` enables stickiness.
    """

    segment: str
    user_id: str | None = None
    features: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.segment, str) or not self.segment:
            raise InvalidArgumentError("segment", self.segment, "a non-empty string")
        for value in self.features:
            _finite("context feature", value, lo=-FEATURE_LIMIT, hi=FEATURE_LIMIT,
                    expected=f"finite numbers in [-{FEATURE_LIMIT:g}, {FEATURE_LIMIT:g}]")


@dataclass(frozen=True)
class RewardRule:
    """How an observed value becomes a reward in [0, 1].

    - ``click``: 1 if the value is > 0 (a click, a play), else 0.
    - ``threshold``: 1 if the value is >= ``threshold`` (a quality play: minutes watched past a
      threshold), else 0.
    - ``value``: ``min(value / scale, 1)`` (a capped continuous reward).

    ``window_s``: a reward arriving later than this after its exposure is stored for the audit but
    does not move the posterior (a late reward). ``implicit_zero``: an exposure without a reward
    counts as reward 0 (impressions minus clicks), which is how click logs arrive; switch it off when
    every exposure gets an explicit outcome and pending ones must not count.
    """

    kind: Literal["click", "threshold", "value"] = "click"
    threshold: float = 0.0
    scale: float = 1.0
    window_s: float | None = None
    implicit_zero: bool = True

    def __post_init__(self) -> None:
        if self.kind not in REWARD_KINDS:
            raise InvalidArgumentError("reward kind", self.kind, "one of " + ", ".join(REWARD_KINDS))
        _finite("reward threshold", self.threshold, lo=0.0, expected="a finite number >= 0")
        _finite("reward scale", self.scale, lo=1e-12, expected="a finite number > 0")
        if self.window_s is not None:
            _finite("reward window_s", self.window_s, lo=0.0, expected="None or seconds >= 0")

    def reward(self, value: float) -> float:
        """Maps an observed value to a reward in [0, 1].

        Raises:
            InvalidArgumentError: the value is not a finite number >= 0.
        """
        _finite("reward value", value, lo=0.0, hi=REWARD_LIMIT,
                expected=f"a finite number from 0 to {REWARD_LIMIT:g} (a click 0/1, minutes watched, ...)")
        if self.kind == "click":
            return 1.0 if value > 0 else 0.0
        if self.kind == "threshold":
            return 1.0 if value >= self.threshold else 0.0
        return float(min(value / self.scale, 1.0))


@dataclass(frozen=True)
class TestConfig:
    """How a test decides and when it stops.

    ``floor`` is the exploration floor: while the test runs no arm of a segment is chosen with
    probability below it (p = floor + (1 - K * floor) * p_policy), against filter bubbles and so
    that offline evaluation of any other policy stays possible. ``prior_weight`` is how many
    pseudo-observations the cold-start prior (the arm's ``prior_mean``) is worth. ``mc_samples``
    is the number of posterior draws that turn Thompson sampling into an explicit probability per
    arm; the decision is then drawn from that distribution, so the logged propensity is exactly the
    probability the arm was chosen with. ``seed`` makes a test's draws reproducible (simulations,
    tests); leave it ``None`` in production, where several workers must not draw in lockstep.
    """

    __test__ = False  # not a pytest test class

    policy: str = "ts"
    floor: float = 0.01
    epsilon: float = 0.1
    ucb_c: float = 1.0
    prior_weight: float = 2.0
    mc_samples: int = 1000
    reward: RewardRule = field(default_factory=RewardRule)
    sticky: bool = False
    sticky_ttl_s: float | None = None
    stop_probability: float = 0.95
    min_impressions: int = 100
    credible_level: float = 0.95
    context_dim: int = 0
    lin_alpha: float = 1.0
    lin_v: float = 0.5
    ridge: float = 1.0
    vw_args: str = "--epsilon 0.05"
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.policy not in POLICY_NAMES:
            raise UnknownPolicyError(self.policy, POLICY_NAMES)
        _finite("floor", self.floor, lo=0.0, hi=0.5)
        _finite("epsilon", self.epsilon, lo=0.0, hi=1.0)
        _finite("ucb_c", self.ucb_c, lo=0.0, expected="a finite number >= 0")
        _finite("prior_weight", self.prior_weight, lo=1e-6, expected="a finite number > 0")
        if not isinstance(self.mc_samples, int) or self.mc_samples < 1:
            raise InvalidArgumentError("mc_samples", self.mc_samples, "an integer >= 1")
        if self.sticky_ttl_s is not None:
            _finite("sticky_ttl_s", self.sticky_ttl_s, lo=0.0, expected="None or seconds >= 0")
        _finite("stop_probability", self.stop_probability, lo=0.5, hi=1.0)
        if not isinstance(self.min_impressions, int) or self.min_impressions < 0:
            raise InvalidArgumentError("min_impressions", self.min_impressions, "an integer >= 0")
        _finite("credible_level", self.credible_level, lo=0.5, hi=0.9999)
        if not isinstance(self.context_dim, int) or self.context_dim < 0:
            raise InvalidArgumentError("context_dim", self.context_dim, "an integer >= 0")
        _finite("lin_alpha", self.lin_alpha, lo=0.0, expected="a finite number >= 0")
        _finite("lin_v", self.lin_v, lo=0.0, expected="a finite number >= 0")
        _finite("ridge", self.ridge, lo=1e-9, expected="a finite number > 0")
        if isinstance(self.reward, dict):  # from JSON
            object.__setattr__(self, "reward", RewardRule(**self.reward))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TestConfig":
        data = json.loads(text)
        data["reward"] = RewardRule(**data.get("reward", {}))
        return cls(**data)


@dataclass(frozen=True)
class RecordResult:
    """What ``record`` did with an outcome: ``recorded``, ``duplicate`` (ignored) or ``late``."""

    exposure_id: str
    status: Literal["recorded", "duplicate", "late"]
    reward: float


@dataclass(frozen=True)
class Assignment:
    """An exposure together with the arm it shows (for callers that need the image, not only the id)."""

    exposure: "Exposure"
    variant_id: str | None
    image_path: str | None
    is_control: bool
    probabilities: tuple[tuple[str, float], ...]  # (arm id, probability) over the segment's arms


@dataclass(frozen=True)
class ArmReport:
    arm_id: str
    variant_id: str | None
    is_control: bool
    impressions: int
    outcomes: int
    rewards: float
    posterior_mean: float
    ci_low: float
    ci_high: float
    prob_best: float


@dataclass(frozen=True)
class SegmentReport:
    segment: str
    arms: tuple[ArmReport, ...]
    winner: str | None  # arm id, once the stopping rule fires
    reason: str


@dataclass(frozen=True)
class TestReport:
    __test__ = False

    test_id: str
    policy: str
    status: str
    stop_probability: float
    credible_level: float
    segments: tuple[SegmentReport, ...]

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Estimate:
    """An off-policy estimate of a candidate policy's value with a bootstrap confidence interval."""

    method: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    level: float
    note: str = ""


@dataclass(frozen=True)
class SimulationResult:
    """A simulated run: expected cumulative regret and how often the best arm was shown."""

    policy: str
    rounds: int
    regret: float
    best_arm_share: float
    reward: float
    checkpoints: tuple[int, ...] = ()  # rounds at which the curves below were taken
    cumulative_regret: tuple[float, ...] = ()
    cumulative_reward: tuple[float, ...] = ()
    arm_share: tuple[tuple[float, ...], ...] = ()  # per checkpoint, the share of each arm in that window

    def to_json(self) -> dict[str, object]:
        return {"policy": self.policy, "rounds": self.rounds, "regret": self.regret,
                "best_arm_share": self.best_arm_share}


from genart.types import Exposure  # noqa: E402  (for the Assignment annotation)
