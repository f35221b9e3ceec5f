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
CHANGE_UNITS: tuple[str, ...] = ("seconds", "exposures")
TEST_STATUSES: tuple[str, ...] = ("draft", "running", "stopped")


def _finite(name: str, value: float, *, lo: float | None = None, hi: float | None = None, expected: str = "") -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and lo is not None and value < lo:
        ok = False
    if ok and hi is not None and value > hi:
        ok = False
    if not ok:
        raise InvalidArgumentError(name, value, expected or f"a finite number in [{lo}, {hi}]")



def interval_text(amount: float, unit: str) -> str:
    """A change-cap interval as a person writes it (``1h``, ``90s``, ``500 exposures``); the settings
    parser (:func:`genart.bandit.settings.parse_interval`) reads it back."""
    if unit == "exposures":
        return f"{amount:g} exposures"
    for suffix, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if amount >= n and amount % n == 0:
            return f"{amount / n:g}{suffix}"
    return f"{amount:g}s"

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

    ``change_cap`` is the change-effect cap: while the test runs, the share of each arm in a
    segment (its probability, averaged over the segment's members) moves by at most this much per
    ``change_interval`` seconds or exposures (``change_unit``), so a burst of noisy rewards cannot
    swing what an audience sees, and members keep recognising the title. The cap is applied to the
    distribution the decision is drawn from, so the logged propensities are the capped ones and
    offline estimators stay unbiased. ``None``: no cap.

    ``loop``: when a segment's generated arms are weak after ``loop_min_impressions`` impressions
    (none beats the control with probability above ``loop_beat_probability``, or the leader's
    lift over the control is below ``loop_min_lift``), or the segment preference model expects an
    untried setting to beat the leader by ``loop_min_gain`` (relative; None: never on that
    ground) with that probability, :func:`genart.learning.loop_step` proposes ``loop_variants``
    new variants for it.
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
    change_cap: float | None = None
    change_interval: float = 3600.0
    change_unit: Literal["seconds", "exposures"] = "seconds"
    loop: bool = False
    loop_min_impressions: int = 1000
    loop_beat_probability: float = 0.5
    loop_min_lift: float = 0.05
    loop_variants: int = 3
    loop_min_gain: float | None = 0.2

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
        if self.change_cap is not None:
            _finite("change_cap", self.change_cap, lo=1e-6, hi=1.0,
                    expected="None or the largest move of an arm's share per interval, in (0, 1] (0.1 = 10 points)")
        _finite("change_interval", self.change_interval, lo=1e-9, expected="a positive number of seconds or exposures")
        if self.change_unit not in CHANGE_UNITS:
            raise InvalidArgumentError("change_unit", self.change_unit, "one of " + ", ".join(CHANGE_UNITS))
        if not isinstance(self.loop, bool):
            raise InvalidArgumentError("loop", self.loop, "true or false")
        if not isinstance(self.loop_min_impressions, int) or self.loop_min_impressions < 1:
            raise InvalidArgumentError("loop_min_impressions", self.loop_min_impressions, "an integer >= 1")
        _finite("loop_beat_probability", self.loop_beat_probability, lo=0.0, hi=1.0)
        _finite("loop_min_lift", self.loop_min_lift, lo=-1.0, hi=10.0)
        if self.loop_min_gain is not None:
            _finite("loop_min_gain", self.loop_min_gain, lo=0.0, hi=10.0,
                    expected="None or the relative gain over the leader worth new artwork (0.2 = 20 %)")
        if not isinstance(self.loop_variants, int) or not 1 <= self.loop_variants <= 32:
            raise InvalidArgumentError("loop_variants", self.loop_variants, "an integer from 1 to 32")
        if isinstance(self.reward, dict):  # from JSON
            object.__setattr__(self, "reward", RewardRule(**self.reward))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TestConfig":
        data = json.loads(text)
        data["reward"] = RewardRule(**data.get("reward", {}))
        return cls(**data)

    def describe(self) -> str:
        """The settings a person chose, in words (for tables and the app)."""
        r = self.reward
        reward = {"click": "clicks", "threshold": f"plays of at least {r.threshold:g} min",
                  "value": f"watch minutes capped at {r.scale:g}"}[r.kind]
        parts = [f"policy {self.policy}", f"reward {reward}", f"floor {self.floor:g}"]
        if self.change_cap is not None:
            parts.append(f"change cap {self.change_cap * 100:g} pts per "
                         f"{interval_text(self.change_interval, self.change_unit)}")
        parts.append(f"stop at P(best) >= {self.stop_probability:g} after {self.min_impressions} impressions per arm")
        if self.loop:
            parts.append(f"loop: {self.loop_variants} new variant(s) for a weak segment after "
                         f"{self.loop_min_impressions} impressions")
        return "; ".join(parts)


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
    prob_beats_control: float | None = None  # P(this arm's rate > the control's); None for the control
    lift: float | None = None  # posterior mean / the control's - 1
    prior_mean: float = 0.5
    prior_strength: float = 0.0  # pseudo-observations the prior is worth
    proposal_id: str | None = None  # the loop's proposal this arm came from


@dataclass(frozen=True)
class SegmentReport:
    segment: str
    arms: tuple[ArmReport, ...]
    winner: str | None  # arm id, once the stopping rule fires
    reason: str
    weak: bool = False  # the generated arms are weak (the loop's trigger rule), see ``weak_reason``
    weak_reason: str = ""


@dataclass(frozen=True)
class TestReport:
    __test__ = False

    test_id: str
    policy: str
    status: str
    stop_probability: float
    credible_level: float
    segments: tuple[SegmentReport, ...]
    settings: str = ""  # TestConfig.describe()
    approved_by: str | None = None
    auto_approve: bool = False

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class TestInfo:
    """One test of a store, for lists: who approved it, where it came from, how much traffic it had."""

    __test__ = False

    test_id: str
    policy: str
    status: str  # draft | running | stopped
    created_at: float
    segments: tuple[str, ...]
    arms: int
    impressions: int
    rewards: float
    settings: str
    approved_by: str | None = None
    approved_at: float | None = None
    auto_approve: bool = False
    run_id: str | None = None
    origin: str | None = None  # "cli" | "app" | "batch" | "api"

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Evaluation:
    """Offline estimates of what candidate policies would have earned on a test's log."""

    test_id: str
    n: int  # logged (fresh, non-sticky) exposures
    logged_value: float  # mean reward of what was actually shown
    candidates: tuple[tuple[str, str], ...]  # (name, what it does in words)
    estimates: tuple[tuple[str, "Estimate"], ...]  # (candidate name, estimate)

    def to_json(self) -> dict[str, object]:
        return {"test_id": self.test_id, "n": self.n, "logged_value": self.logged_value,
                "candidates": [{"name": n, "description": d} for n, d in self.candidates],
                "estimates": [{"candidate": c, **asdict(e)} for c, e in self.estimates]}


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


@dataclass(frozen=True)
class CandidateRecord:
    """One generation setting a proposal sampled, and what became of it."""

    candidate_id: str
    setting: str  # JSON (genart.bandit.loop.Setting)
    predicted: float
    predicted_low: float
    predicted_high: float
    status: str  # proposed | queued | added | rejected | failed
    variant_id: str | None = None
    arm_id: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class ProposalRecord:
    """What a weak segment's trigger asked for: the evidence, and each candidate's fate."""

    proposal_id: str
    trigger_id: str
    test_id: str
    segment: str
    reason: str  # the trigger's, in words
    created_at: float
    status: str  # open | done | failed
    run_id: str | None
    profile_id: str | None
    candidates: tuple[CandidateRecord, ...]
    note: str | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class LoopStep:
    """One turn of the loop on a test: segments checked, proposals made, approved artwork added."""

    test_id: str
    checked: tuple[tuple[str, bool, str], ...]  # (segment, wants new artwork, why)
    proposals: tuple[ProposalRecord, ...]  # made in this step
    added: tuple[tuple[str, str, str], ...]  # (segment, arm id, proposal id) added in this step
    waiting: int  # proposed variants waiting for a person's review
    note: str = ""

    def to_json(self) -> dict[str, object]:
        return asdict(self)
