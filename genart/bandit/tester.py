"""The tester: decides which arm a member sees, logs it before answering, and learns from rewards.

Guarantees:

- ``assign`` commits the exposure (arm, propensity, the full distribution over the segment's arms,
  the context) to the exposure log (:mod:`genart.bandit.log`) *before* it returns; an exposure that was returned is never lost.
- ``record`` is idempotent by exposure id: the outcomes table holds at most one row per exposure
  (a unique constraint), so a duplicate reward, a retried request or a second process changes
  nothing twice. A reward later than the test's ``window_s`` is stored but not counted. An unknown
  exposure id raises ``UnknownExposureError`` and writes nothing.
- The Beta policies (``ts``, ``egreedy``, ``ucb1``) decide from per-arm totals that change in the
  same transaction as the exposure or outcome, so every process sees the same posterior.
- The contextual policies (``lints``, ``linucb``, ``vw``) keep their model in memory and bring it
  up to date from the log (by sequence number) before each decision, so several processes on one
  store converge on the same model; a restarted service rebuilds it from the store.
- While a test runs, every arm of a segment keeps at least the ``floor`` probability. After
  ``stop`` each segment is served its winner (propensity 1, still logged).
- Stickiness (``TestConfig.sticky``): a member who saw an arm of this test in this segment (within
  ``sticky_ttl_s``) sees it again; the repeat is logged with ``sticky_of`` naming the original
  exposure and the original's propensity, and offline evaluation skips repeats.
- The change-effect cap (``TestConfig.change_cap``): each segment's allocation moves by at most
  the cap per interval from the one served last (stored per segment, read and written in the
  exposure's transaction, so several processes share one budget); the logged distribution and
  propensity are the capped ones.
- A test made as a *draft* (the batch job without ``--auto-approve``) serves nobody until
  :meth:`Tester.approve` names who approved it. Arms may be added to a running test
  (:meth:`Tester.add_arms`, the learning loop); every process notices through the test's
  ``arms_version`` and rebuilds its view from the store.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from genart.bandit.contextual import LinearState, LinTS, LinUCB
from genart.bandit.log import ExposureLog, LogTxn
from genart.bandit.policies import BetaState, apply_floor, cap_change, choose, extend_reference, make_beta_policy
from genart.bandit.types import (
    BETA_POLICIES,
    FEATURE_LIMIT,
    Assignment,
    Context,
    RecordResult,
    TestConfig,
    TestInfo,
    TestReport,
)
from genart.errors import (
    InvalidArgumentError,
    StoreConflictError,
    TestConflictError,
    TestNotRunningError,
    UnknownExposureError,
    UnknownSegmentError,
    UnknownTestError,
)
from genart.ids import check_id
from genart.types import Arm, Exposure, LoggedAllocation, LoggedArm, LoggedExposure, LoggedOutcome, LoggedTest, Outcome

_log = logging.getLogger("genart.bandit")
#: How far a reward's time may precede its exposure's (clocks of two servers on one store differ a little);
#: within it the reward is stamped with the exposure's time, beyond it the reward is refused.
CLOCK_SKEW_S = 2.0
# Sequence numbers a cursor re-reads behind the newest by default (a tester takes its log's ExposureLog.lookback).
_LOOKBACK_DEFAULT = 1000


@dataclass(frozen=True)
class _ArmInfo:
    arm_id: str
    segment: str
    position: int
    variant_id: str | None
    image_path: str | None
    is_control: bool
    prior_mean: float
    profile_id: str | None
    features: tuple[float, ...]
    prior_strength: float | None = None
    proposal_id: str | None = None

    @property
    def key(self) -> str:
        """The artwork this arm shows, shared across segments by the contextual models."""
        if self.variant_id is not None:
            return "v:" + self.variant_id
        return "control" if self.is_control else "a:" + self.arm_id


class _SeqCursor:
    """Remembers which sequence numbers were applied, re-reading a window behind the newest."""

    def __init__(self, lookback: int = _LOOKBACK_DEFAULT) -> None:
        self.last = 0
        self.lookback = lookback
        self.applied: set[int] = set()

    def start(self) -> int:
        return max(0, self.last - self.lookback)

    def take(self, seqs: Sequence[int]) -> list[int]:
        """Indices of the not yet applied ``seqs``; marks them applied."""
        fresh = [i for i, s in enumerate(seqs) if s not in self.applied]
        for i in fresh:
            self.applied.add(seqs[i])
        if seqs:
            self.last = max(self.last, max(seqs))
            floor = self.last - self.lookback
            if len(self.applied) > 4 * self.lookback + 1024:
                self.applied = {s for s in self.applied if s > floor}
        return fresh


@dataclass
class _Test:
    test_id: str
    config: TestConfig
    segments: list[str]
    arms: dict[str, list[_ArmInfo]]  # per segment, by position
    keys: list[str]  # contextual model columns
    key_index: dict[str, int]
    rng: np.random.Generator
    arms_version: int = 0
    stale: bool = False  # its arms changed in the store: reload (keeping the random stream)
    lock: threading.RLock = field(default_factory=threading.RLock)
    model: object | None = None
    exp_cursor: _SeqCursor = field(default_factory=_SeqCursor)
    out_cursor: _SeqCursor = field(default_factory=_SeqCursor)

    @property
    def contextual(self) -> bool:
        return self.config.policy not in BETA_POLICIES

    def seg_index(self, segment: str) -> int:
        try:
            return self.segments.index(segment)
        except ValueError:
            raise UnknownSegmentError(self.test_id, segment, self.segments) from None

    def context_row(self, segment: str, features: Sequence[float]) -> np.ndarray:
        x = np.zeros(len(self.segments) + len(features) + 1)
        x[self.segments.index(segment)] = 1.0
        x[len(self.segments):len(self.segments) + len(features)] = features
        x[-1] = 1.0
        return x

    def key_mask(self, segment: str) -> np.ndarray:
        m = np.zeros(len(self.keys), dtype=bool)
        for a in self.arms[segment]:
            m[self.key_index[a.key]] = True
        return m


#: What a contextual model learns from: a logged exposure and, for a reward update, its outcome.
_Event = tuple[LoggedExposure, LoggedOutcome | None]


def _clean(test: _Test, rows: Sequence[_Event]) -> list[_Event]:
    """The log rows a contextual model may learn from: features of the test's dimension, finite and
    within ``FEATURE_LIMIT``; rewards in [0, 1]; propensities in (0, 1]. A row outside that (one
    logged before the service validated its input, say) is skipped, so a restarted service rebuilds
    a model poisoned by it from the clean rows alone: one bad request never turns a model into NaN.
    (An exposure without an outcome is a design update: its reward and propensity are not used.)"""
    kept = []
    for exp, out in rows:
        feats = exp.features
        if feats is None or len(feats) != test.config.context_dim or not all(
                isinstance(v, (int, float)) and math.isfinite(v) and abs(v) <= FEATURE_LIMIT for v in feats):
            continue
        reward, propensity = (out.reward, exp.propensity) if out is not None else (0.0, 1.0)
        if not (math.isfinite(reward) and 0.0 <= reward <= 1.0 and math.isfinite(propensity) and 0.0 < propensity <= 1.0):
            continue
        kept.append((exp, out))
    if len(kept) < len(rows):
        _log.warning("test %s: skipped %d log row(s) with features or rewards out of range", test.test_id,
                     len(rows) - len(kept))
    return kept


class Tester:
    """Runs bandit tests on an exposure log (:class:`genart.bandit.log.ExposureLog`; the SQL one is
    :class:`genart.store.exposure_log.SqlExposureLog`, which :func:`genart.api.open_tester` builds).

    Thread-safe: one instance serves a multi-threaded web service.

    Args:
        log: where the tests are kept.
        seed: the decisions' random stream (a test's own ``TestConfig.seed`` wins).
        root: the folder arms' image paths are kept relative to (default: the log's folder).
        clock: seconds; what exposure times and the change cap's intervals are measured in.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, log: ExposureLog, *, seed: int | None = None, root: str | Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if isinstance(log, (str, Path)) or not hasattr(log, "write"):
            raise InvalidArgumentError("log", type(log).__name__, "a genart.bandit.log.ExposureLog (genart.api."
                                       "open_tester builds a tester on a store URL)")
        self.log = log
        # arms' image paths are kept relative to this folder (default: a SQLite file's own folder, which
        # for a run store is the store's folder), so a copied or moved folder serves its own images
        self.root = Path(root).resolve() if root is not None else log.folder
        # its own stream of the seed (spawn key "TE"), so a simulated audience seeded with the same
        # number (genart.bandit.simulator.streams) never draws in lockstep with the tester
        self._seed_seq = np.random.SeedSequence(seed, spawn_key=(0x5445,))
        self.clock = clock  # seconds; what exposure times and the change cap's intervals are measured in
        self._tests: dict[str, _Test] = {}
        self._lock = threading.RLock()

    @property
    def engine(self) -> Any:
        """The SQL log's engine (None for a log without one): the learning loop's tables share the
        tester's database, and its queries open their own transactions on it."""
        return getattr(self.log, "engine", None)

    # ------------------------------------------------------------------ tests
    def create_test(self, test_id: str, arms: Sequence[Arm], config: TestConfig | None = None, *,
                    arm_features: Mapping[str, Sequence[float]] | None = None,
                    arm_facts: Mapping[str, Mapping[str, float]] | None = None, draft: bool = False,
                    approved_by: str | None = None, auto_approve: bool = False, run_id: str | None = None,
                    origin: str | None = None) -> None:
        """Creates a test from its arms (see :func:`genart.bandit.handoff`). Re-creating an
        existing test with the same arms and config is a no-op, so a job can be re-run.

        Args:
            test_id: the test's id.
            arms: the arms, each with ``test_id == test_id``; arm ids unique per segment.
            config: policy, floor, reward rule, stopping rule; ``TestConfig()`` by default.
            arm_features: numeric features per arm id (a reduced variant embedding, see
                :func:`genart.bandit.handoff.arm_features`), for the contextual policies.
            arm_facts: what each arm's artwork shows, by arm id ({fact: value}, see
                :mod:`genart.bandit.preferences`), which the segment preference model learns from.
            draft: make it a draft that serves nobody until :meth:`approve` (the batch job's
                top-k that no person has looked at).
            approved_by: who let it run (a reviewer, or ``"auto-approve"``), kept in the test.
            auto_approve: the test was started without a person (``--auto-approve``), and the
                learning loop may add its proposals as arms without review.
            run_id, origin: the run the arms came from and the surface that made it (cli, app, batch, api).

        Raises:
            InvalidArgumentError: no arms, an arm of another test, a repeated arm, a prior outside
                (0, 1), or a floor no segment can respect.
            TestConflictError: the test exists with other arms or settings.
        """
        config = config or TestConfig()
        if not isinstance(config, TestConfig):
            raise InvalidArgumentError("config", type(config).__name__, "a genart.bandit.TestConfig")
        check_id("test id", test_id)  # the service's pattern: a test it could not address gets no traffic
        if not arms:
            raise InvalidArgumentError("arms", arms, "at least one Arm (see genart.bandit.handoff)")
        rows = self._arm_rows(test_id, arms, arm_features, arm_facts, {}, run_id=run_id)
        self._check_arms(config, rows)
        now = self.clock()
        with self.log.write() as txn:
            existing = txn.test(test_id)
            if existing is not None:
                if TestConfig.from_json(existing.config) != config:
                    raise TestConflictError(test_id, "a different config")
                old = [a for a in txn.arms(test_id) if a.proposal_id is None]
                if {(r.segment, r.arm_id, r.variant_id) for r in old} != {(r.segment, r.arm_id, r.variant_id)
                                                                           for r in rows}:
                    raise TestConflictError(test_id, "different arms")
                return
            txn.insert_test(LoggedTest(
                test_id=test_id, policy=config.policy, config=config.to_json(),
                status="draft" if draft else "running", created_at=now,
                approved_by=None if draft else approved_by, approved_at=None if draft or not approved_by else now,
                auto_approve=bool(auto_approve), run_id=run_id, origin=origin, arms_version=0))
            txn.insert_arms(rows)
        self._forget(test_id)

    def _arm_rows(self, test_id: str, arms: Sequence[Arm], arm_features: Mapping[str, Sequence[float]] | None,
                  arm_facts: Mapping[str, Mapping[str, float]] | None, start: Mapping[str, int], *,
                  run_id: str | None = None, proposal_ids: Mapping[str, str] | None = None,
                  taken: set[tuple[str, str]] | None = None) -> list[LoggedArm]:
        """Validated rows for new arms; ``start[segment]`` is the next free position."""
        arm_features = dict(arm_features or {})
        arm_facts = dict(arm_facts or {})
        proposal_ids = dict(proposal_ids or {})
        seen: set[tuple[str, str]] = set(taken or ())
        nxt = dict(start)
        rows: list[LoggedArm] = []
        now = self.clock()
        for arm in arms:
            if not isinstance(arm, Arm):
                raise InvalidArgumentError("arm", type(arm).__name__, "genart.types.Arm values")
            if arm.test_id != test_id:
                raise InvalidArgumentError("arm.test_id", arm.test_id, f"'{test_id}' (the test being created)")
            if (arm.segment, arm.arm_id) in seen:
                raise InvalidArgumentError("arm", f"{arm.segment}/{arm.arm_id}", "arm ids unique within a segment")
            check_id("segment", arm.segment)
            check_id("arm id", arm.arm_id)
            if not (0.0 < arm.prior_mean < 1.0):
                raise InvalidArgumentError("arm.prior_mean", arm.prior_mean, "a number strictly between 0 and 1")
            if arm.prior_strength is not None and not (0.0 < arm.prior_strength < 1e7):
                raise InvalidArgumentError("arm.prior_strength", arm.prior_strength, "None or a positive number")
            seen.add((arm.segment, arm.arm_id))
            pos = nxt.get(arm.segment, 0)
            nxt[arm.segment] = pos + 1
            feats = tuple(float(v) for v in arm_features.get(arm.arm_id, ()))
            facts = arm_facts.get(arm.arm_id)
            rows.append(LoggedArm(test_id=test_id, segment=arm.segment, arm_id=arm.arm_id, position=pos,
                                  variant_id=arm.variant_id,
                                  image_path=self._rel(arm.image_path) if arm.image_path else None,
                                  is_control=bool(arm.is_control), prior_mean=float(arm.prior_mean),
                                  profile_id=arm.profile_id, features=feats, prior_strength=arm.prior_strength,
                                  facts={str(k): float(v) for k, v in facts.items()} if facts else None,
                                  run_id=run_id, proposal_id=proposal_ids.get(arm.arm_id), added_at=now))
        return rows

    @staticmethod
    def _check_arms(config: TestConfig, rows: Sequence[LoggedArm], existing: Mapping[str, int] | None = None) -> None:
        if config.policy == "vw":
            from genart.bandit.vw import import_vw

            import_vw()  # fail now, not at the first assign
        per_segment = dict(existing or {})
        for r in rows:
            per_segment[r.segment] = per_segment.get(r.segment, 0) + 1
        most = max(per_segment.values())
        if config.floor * most > 1.0:
            raise InvalidArgumentError("floor", config.floor, f"at most 1 / {most} (the largest segment has {most} arms)")

    def approve(self, test_id: str, approved_by: str, *, arms: Sequence[Arm] | None = None,
                arm_features: Mapping[str, Sequence[float]] | None = None,
                arm_facts: Mapping[str, Mapping[str, float]] | None = None) -> None:
        """Starts a draft test: from now on it serves members. ``arms`` replaces the draft's arms
        first (a person approved other variants than the ranking's top-k); a draft has no traffic,
        so nothing logged is lost. Approving a running test again changes nothing.

        Raises:
            UnknownTestError: no such test.
            InvalidArgumentError: an empty ``approved_by`` or bad arms.
            TestNotRunningError: the test was stopped.
            TestConflictError: ``arms`` for a test that is already running.
        """
        if not isinstance(approved_by, str) or not approved_by.strip():
            raise InvalidArgumentError("approved_by", approved_by, "who approves the test (a name)")
        test = self._load(test_id)
        rows = None
        if arms is not None:
            rows = self._arm_rows(test_id, arms, arm_features, arm_facts, {})
            self._check_arms(test.config, rows)
        with self.log.write() as txn:
            row = txn.test(test_id)
            if row is None:  # deleted since it was loaded
                raise UnknownTestError(test_id, txn.test_ids(50))
            if row.status == "stopped":
                raise TestNotRunningError(test_id, "stopped", hint="a stopped test cannot start again; create a new one")
            if row.status == "running":
                if rows is not None:
                    raise TestConflictError(test_id, "traffic already: its arms can no longer be replaced")
                return
            if rows is not None:
                txn.replace_arms(test_id, [replace(r, run_id=row.run_id) for r in rows])
            txn.mark_running(test_id, approved_by.strip()[:128], self.clock(), arms_changed=rows is not None)
        self._forget(test_id)

    def add_arms(self, test_id: str, arms: Sequence[Arm], *, arm_features: Mapping[str, Sequence[float]] | None = None,
                 arm_facts: Mapping[str, Mapping[str, float]] | None = None,
                 proposal_ids: Mapping[str, str] | None = None, run_id: str | None = None) -> None:
        """Adds arms to a draft or running test (new artwork the learning loop made for a segment).

        The new arms take the next positions, so logged distributions stay aligned with the arms
        they were drawn over; every process's view of the test is rebuilt from the store on its
        next decision. Under a change-effect cap the new arms start at the exploration floor and
        gain traffic no faster than the cap allows.

        Raises:
            UnknownTestError, UnknownSegmentError: no such test or segment.
            TestNotRunningError: the test was stopped.
            InvalidArgumentError: an arm id the segment has already, a bad prior, a floor the
                larger segment cannot respect.
        """
        test = self._load(test_id)
        if not arms:
            return
        for a in arms:
            if isinstance(a, Arm):
                test.seg_index(a.segment)
        with self.log.write() as txn:
            head = txn.test(test_id)
            if head is None:  # deleted since it was loaded
                raise UnknownTestError(test_id, txn.test_ids(50))
            if head.status == "stopped":
                raise TestNotRunningError(test_id, "stopped", hint="a stopped test takes no new arms; create a new one")
            have = txn.arms(test_id)
            start: dict[str, int] = {}
            counts: dict[str, int] = {}
            for r in have:
                start[r.segment] = max(start.get(r.segment, 0), r.position + 1)
                counts[r.segment] = counts.get(r.segment, 0) + 1
            rows = self._arm_rows(test_id, arms, arm_features, arm_facts, start, run_id=run_id,
                                  proposal_ids=proposal_ids, taken={(r.segment, r.arm_id) for r in have})
            self._check_arms(test.config, rows, counts)
            txn.insert_arms(rows)
            txn.bump_arms_version(test_id)
        self._forget(test_id)

    def _forget(self, test_id: str) -> None:
        with self._lock:
            cached = self._tests.get(test_id)
            if cached is not None:
                cached.stale = True

    def info(self, test_id: str) -> TestInfo:
        """Who approved the test, where it came from, its traffic so far.

        Raises:
            UnknownTestError: no such test.
        """
        found = self.infos([test_id])
        if not found:
            self._load(test_id)  # raises UnknownTestError with the known ids
        return found[0]

    def infos(self, test_ids: Sequence[str] | None = None) -> list[TestInfo]:
        """:meth:`info` of every test of the store (or of ``test_ids``), by test id."""
        with self.log.read() as txn:
            tests = txn.tests(test_ids)
            arms: dict[str, list[LoggedArm]] = {}
            found = txn.arms(None) if test_ids is None else [a for tid in test_ids for a in txn.arms(tid)]
            for arm in found:
                arms.setdefault(arm.test_id, []).append(arm)
        out = []
        for r in tests:
            mine = arms.get(r.test_id, [])
            out.append(TestInfo(test_id=r.test_id, policy=r.policy, status=r.status, created_at=float(r.created_at),
                                segments=tuple(sorted({x.segment for x in mine})), arms=len(mine),
                                impressions=int(sum(x.impressions for x in mine)),
                                rewards=float(sum(x.reward_sum for x in mine)),
                                settings=TestConfig.from_json(r.config).describe(), approved_by=r.approved_by,
                                approved_at=r.approved_at, auto_approve=bool(r.auto_approve), run_id=r.run_id,
                                origin=r.origin))
        return out

    def _rel(self, path: str | Path) -> str:
        """How an image path is stored: relative to ``root`` when it lies inside it, else absolute."""
        p = Path(path)
        if self.root is not None:
            full = (p if p.is_absolute() else Path.cwd() / p).resolve()
            if full.is_relative_to(self.root):
                return full.relative_to(self.root).as_posix()
        return str(p.resolve()) if not p.is_absolute() else str(p)

    def _resolve(self, stored: str | None) -> str | None:
        """A stored image path on this machine (relative ones against ``root``; old rows are absolute)."""
        if not stored:
            return None
        p = Path(stored)
        return str(self.root / p) if self.root is not None and not p.is_absolute() else stored

    def tests(self) -> list[str]:
        """The ids of the log's tests, sorted."""
        with self.log.read() as txn:
            return txn.test_ids()

    def config(self, test_id: str) -> TestConfig:
        return self._load(test_id).config

    def arms(self, test_id: str) -> list[Arm]:
        """The test's arms, per segment in position order."""
        t = self._load(test_id)
        return [Arm(test_id=test_id, arm_id=a.arm_id, segment=a.segment, variant_id=a.variant_id,
                    image_path=Path(a.image_path) if a.image_path else None, is_control=a.is_control,
                    prior_mean=a.prior_mean, profile_id=a.profile_id, prior_strength=a.prior_strength)
                for s in t.segments for a in t.arms[s]]

    def arm_facts(self, test_id: str) -> dict[tuple[str, str], dict[str, float]]:
        """What each arm's artwork shows, by (segment, arm id), as stored with the arm (empty where unknown)."""
        self._load(test_id)
        with self.log.read() as txn:
            rows = txn.arms(test_id)
        return {(r.segment, r.arm_id): dict(r.facts) if r.facts else {} for r in rows}

    def _load(self, test_id: str, txn: LogTxn | None = None) -> _Test:
        """The test's (immutable) arms and config, cached; ``txn`` reuses an open transaction so a
        write transaction never waits on a second pooled connection."""
        with self._lock:
            cached = self._tests.get(test_id)
        if cached is not None and not cached.stale:
            return cached
        if txn is None:
            with self.log.read() as t:
                return self._load(test_id, t)
        row = txn.test(test_id)
        if row is None:
            raise UnknownTestError(test_id, txn.test_ids(50))
        config = TestConfig.from_json(row.config)
        arms: dict[str, list[_ArmInfo]] = {}
        for r in txn.arms(test_id):
            arms.setdefault(r.segment, []).append(_ArmInfo(
                arm_id=r.arm_id, segment=r.segment, position=r.position, variant_id=r.variant_id,
                image_path=self._resolve(r.image_path), is_control=bool(r.is_control), prior_mean=float(r.prior_mean),
                profile_id=r.profile_id, features=tuple(r.features),
                prior_strength=r.prior_strength, proposal_id=r.proposal_id))
        keys: list[str] = []
        for seg_arms in arms.values():
            for a in seg_arms:
                if a.key not in keys:
                    keys.append(a.key)
        seed = config.seed if config.seed is not None else self._seed_seq.spawn(1)[0]
        lookback = self.log.lookback
        test = _Test(test_id=test_id, config=config, segments=sorted(arms), arms=arms, keys=keys,
                     key_index={k: i for i, k in enumerate(keys)}, rng=np.random.default_rng(seed),
                     arms_version=int(row.arms_version),
                     exp_cursor=_SeqCursor(lookback), out_cursor=_SeqCursor(lookback))
        with self._lock:
            cached = self._tests.get(test_id)
            if cached is not None and not cached.stale and cached.arms_version >= test.arms_version:
                return cached
            if cached is not None:  # arms changed: a new view, drawing on from the same stream
                test.rng = cached.rng
            self._tests[test_id] = test
            return test

    # ------------------------------------------------------------------ decisions
    def assign(self, test_id: str, context: Context | str) -> Exposure:
        """Chooses an arm for one member and logs it; returns only once the exposure is committed.

        Args:
            test_id: the test.
            context: the member's :class:`Context`, or just a segment name.

        Raises:
            UnknownTestError, UnknownSegmentError: the test or segment does not exist.
            InvalidArgumentError: ``context.features`` do not have the test's ``context_dim``.
        """
        return self.assign_many(test_id, [context])[0]

    def assign_detail(self, test_id: str, context: Context | str) -> Assignment:
        """Like :meth:`assign`, with the arm's variant, image and the full distribution."""
        return self._assign(test_id, [context])[0]

    def assign_many(self, test_id: str, contexts: Sequence[Context | str]) -> list[Exposure]:
        """Decides for a batch of members in one transaction (the posterior is the same for all of
        them), which is how the simulator and a batch job push many decisions through quickly."""
        return [a.exposure for a in self._assign(test_id, contexts)]

    def assign_many_detail(self, test_id: str, contexts: Sequence[Context | str]) -> list[Assignment]:
        """:meth:`assign_many` with each arm's variant, image and distribution (the service's group
        commit: concurrent requests decided in one transaction)."""
        return self._assign(test_id, contexts)

    def _assign(self, test_id: str, contexts: Sequence[Context | str]) -> list[Assignment]:
        ctxs = [Context(c) if isinstance(c, str) else c for c in contexts]
        if not ctxs:
            return []
        for attempt in range(4):
            test = self._load(test_id)
            self._check_contexts(test, ctxs)
            if test.contextual:
                self._sync(test)
            try:
                done = self._assign_once(test, ctxs)
            except StoreConflictError:  # PostgreSQL: another process made the segment's first allocation row
                if attempt == 3:
                    raise
                continue
            if done is not None:
                return done
            self._forget(test_id)  # arms were added meanwhile: decide again on the new arms
        raise TestConflictError(test_id, "arms that kept changing while deciding")  # pragma: no cover

    @staticmethod
    def _check_contexts(test: _Test, ctxs: Sequence[Context]) -> None:
        cfg = test.config
        for c in ctxs:
            if not isinstance(c, Context):
                raise InvalidArgumentError("context", c, "a genart.bandit.Context or a segment name")
            test.seg_index(c.segment)
            if len(c.features) != cfg.context_dim:
                raise InvalidArgumentError("context.features", c.features,
                                           f"{cfg.context_dim} numbers (the test's context_dim)")

    def _assign_once(self, test: _Test, ctxs: Sequence[Context]) -> list[Assignment] | None:
        """One decision transaction; None when the test's arms changed since ``test`` was loaded."""
        cfg = test.config
        test_id = test.test_id
        now = self.clock()
        out: list[Assignment] = []
        with self.log.write() as txn:
            row = txn.test(test_id)
            if row is None:
                raise UnknownTestError(test_id, txn.test_ids(50))
            if row.arms_version != test.arms_version:
                return None
            if row.status == "draft":
                raise TestNotRunningError(test_id, "draft")
            winners = row.winners
            stopped = row.status == "stopped"  # a stopped test serves its winners, sticky or not
            sticky = self._sticky_lookup(txn, test, ctxs, now) if cfg.sticky and not stopped else {}
            probs = self._probabilities(txn, test, ctxs, stopped, winners)
            if cfg.change_cap is not None and not stopped:
                fresh = np.array([not (c.user_id and (c.user_id, c.segment) in sticky) for c in ctxs])
                probs = self._cap(txn, test, ctxs, probs, fresh, now)
            with test.lock:
                arms_idx, props = choose(probs, None, test.rng)
            rows: list[LoggedExposure] = []
            counts: dict[tuple[str, str], int] = {}
            for i, c in enumerate(ctxs):
                seg_arms = test.arms[c.segment]
                k = len(seg_arms)
                row_probs = probs[i, :k]
                sticky_hit = sticky.get((c.user_id, c.segment)) if c.user_id else None
                if sticky_hit is not None:
                    arm = next(a for a in seg_arms if a.arm_id == sticky_hit[0])
                    propensity, sticky_of = sticky_hit[1], sticky_hit[2]
                else:
                    arm = seg_arms[int(arms_idx[i])]
                    propensity, sticky_of = float(props[i]), None
                exp = Exposure(exposure_id=uuid.uuid4().hex, test_id=test_id, arm_id=arm.arm_id,
                               segment=c.segment, user_id=c.user_id, propensity=propensity, t=now)
                rows.append(LoggedExposure(exposure_id=exp.exposure_id, test_id=test_id, segment=c.segment,
                                           arm_id=arm.arm_id, user_id=c.user_id, propensity=propensity,
                                           probs=tuple(float(p) for p in row_probs),
                                           features=tuple(float(v) for v in c.features), policy=cfg.policy, t=now,
                                           sticky_of=sticky_of))
                counts[(c.segment, arm.arm_id)] = counts.get((c.segment, arm.arm_id), 0) + 1
                if c.user_id and cfg.sticky and not stopped and sticky_hit is None:
                    sticky[(c.user_id, c.segment)] = (arm.arm_id, propensity, exp.exposure_id)
                out.append(Assignment(exposure=exp, variant_id=arm.variant_id, image_path=arm.image_path,
                                      is_control=arm.is_control,
                                      probabilities=tuple((a.arm_id, float(p)) for a, p in zip(seg_arms, row_probs))))
            txn.insert_exposures(rows)
            txn.add_impressions(test_id, counts)
        return out

    def _cap(self, txn: LogTxn, test: _Test, ctxs: Sequence[Context], probs: np.ndarray, fresh: np.ndarray,
             now: float) -> np.ndarray:
        """The change-effect cap, per segment of the batch, against the allocation served last."""
        cfg = test.config
        segs = sorted({c.segment for c in ctxs})
        refs = txn.allocations(test.test_id, segs, for_update=True)  # one budget for every process
        seg_of = np.array([c.segment for c in ctxs])
        probs = probs.copy()
        for seg in segs:
            idx = np.flatnonzero(seg_of == seg)
            k = len(test.arms[seg])
            ref_row = refs.get(seg)
            ref: np.ndarray | None
            if ref_row is None or cfg.change_cap is None:
                ref, budget = None, np.inf
            else:
                ref = extend_reference(np.asarray(ref_row.probs, dtype=float), k, cfg.floor)
                spent = (now - ref_row.t) if cfg.change_unit == "seconds" else float(ref_row.served)
                budget = cfg.change_cap * max(0.0, spent) / cfg.change_interval
            served, alloc = cap_change(probs[idx, :k], ref, budget)
            probs[idx, :k] = served
            txn.save_allocation(LoggedAllocation(test_id=test.test_id, segment=seg,
                                                 probs=tuple(float(p) for p in alloc), t=now,
                                                 served=int(fresh[idx].sum())), new=ref_row is None)
        return probs

    def allocation(self, test_id: str) -> dict[str, tuple[tuple[str, float], ...]]:
        """Per segment, the allocation the change-effect cap last served, by arm id (empty without a cap)."""
        test = self._load(test_id)
        with self.log.read() as txn:
            rows = txn.allocations(test_id)
        return {seg: tuple((arm.arm_id, float(p)) for arm, p in zip(test.arms[seg], r.probs))
                for seg, r in rows.items() if seg in test.arms}

    def _sticky_lookup(self, txn: LogTxn, test: _Test, ctxs: Sequence[Context],
                       now: float) -> dict[tuple[str, str], tuple[str, float, str]]:
        users = sorted({c.user_id for c in ctxs if c.user_id})
        if not users:
            return {}
        ttl = test.config.sticky_ttl_s
        found: dict[tuple[str, str], tuple[str, float, str]] = {}
        for r in txn.user_exposures(test.test_id, users):
            if ttl is not None and now - r.t > ttl or r.user_id is None:
                continue
            found.setdefault((r.user_id, r.segment), (r.arm_id, float(r.propensity), r.sticky_of or r.exposure_id))
        return found

    def _probabilities(self, txn: LogTxn, test: _Test, ctxs: Sequence[Context], stopped: bool,
                       winners: Mapping[str, str]) -> np.ndarray:
        """(n, K_max) choice distribution per context over its segment's arms (position order)."""
        cfg = test.config
        kmax = max(len(a) for a in test.arms.values())
        n = len(ctxs)
        mask = np.zeros((n, kmax), dtype=bool)
        for i, c in enumerate(ctxs):
            mask[i, :len(test.arms[c.segment])] = True
        if stopped:
            probs = np.zeros((n, kmax))
            for i, c in enumerate(ctxs):
                arm_ids = [a.arm_id for a in test.arms[c.segment]]
                win = winners.get(c.segment)
                probs[i, arm_ids.index(win) if win in arm_ids else 0] = 1.0
            return probs
        if not test.contextual:
            segs = sorted({c.segment for c in ctxs})
            state = self._beta_state(txn, test, segs, kmax)
            with test.lock:
                policy = make_beta_policy(cfg.policy, epsilon=cfg.epsilon, ucb_c=cfg.ucb_c, mc_samples=cfg.mc_samples)
                seg_probs = apply_floor(policy.probabilities(state, test.rng), state.mask, cfg.floor)
            rows = np.array([segs.index(c.segment) for c in ctxs])
            return seg_probs[rows]
        X = np.stack([test.context_row(c.segment, c.features) for c in ctxs])
        kmask = np.stack([test.key_mask(c.segment) for c in ctxs])
        with test.lock:
            p_keys = self._model(test).probabilities(X, kmask, test.rng)
        probs = np.zeros((n, kmax))
        for i, c in enumerate(ctxs):
            for j, a in enumerate(test.arms[c.segment]):
                probs[i, j] = p_keys[i, test.key_index[a.key]]
        return apply_floor(probs, mask, cfg.floor)

    def _beta_state(self, txn: LogTxn, test: _Test, segments: Sequence[str], kmax: int) -> BetaState:
        cfg = test.config
        s = len(segments)
        means = np.full((s, kmax), 0.5)
        mask = np.zeros((s, kmax), dtype=bool)
        succ = np.zeros((s, kmax))
        trials = np.zeros((s, kmax))
        weight = np.full((s, kmax), float(cfg.prior_weight))
        for r in txn.arms(test.test_id, segments):
            i = segments.index(r.segment)
            means[i, r.position] = r.prior_mean
            if r.prior_strength is not None:
                weight[i, r.position] = r.prior_strength
            mask[i, r.position] = True
            succ[i, r.position] = r.reward_sum
            trials[i, r.position] = r.impressions if cfg.reward.implicit_zero else r.outcomes
        state = BetaState.from_prior_means(means, weight, mask)
        state.successes = np.minimum(succ, trials)
        state.trials = trials
        return state

    # ------------------------------------------------------------------ contextual models
    def _model(self, test: _Test):
        if test.model is None:
            cfg = test.config
            dim = len(test.segments) + cfg.context_dim + 1
            if cfg.policy == "vw":
                from genart.bandit.vw import VWModel

                tags, feats = [], []
                by_key = {a.key: a for seg in test.arms.values() for a in seg}
                width = max(len(a.features) for a in by_key.values())
                for key in test.keys:
                    a = by_key[key]
                    tags.append(f"arm={key} profile={a.profile_id or 'none'}" + (" control" if a.is_control else ""))
                    feats.append(tuple(a.features) + (0.0,) * (width - len(a.features)))
                test.model = VWModel(tags, feats if width else None, args=cfg.vw_args, seed=cfg.seed)
            else:
                state = LinearState(len(test.keys), dim, cfg.ridge)
                pol = LinUCB(cfg.lin_alpha) if cfg.policy == "linucb" else LinTS(cfg.lin_v, cfg.mc_samples)
                test.model = _LinearModel(state, pol)
        return test.model

    def _sync(self, test: _Test) -> None:
        """Brings the test's in-memory contextual model up to date with the log."""
        cfg = test.config
        with self.log.read() as txn:
            new_exp: list[_Event] = []
            if cfg.policy != "vw" and cfg.reward.implicit_zero:
                new_exp = [(x, None) for x in txn.exposures_after(test.test_id, test.exp_cursor.start(),
                                                                  fresh_only=True)]
            new_out: list[_Event] = [(x, o) for o, x in txn.outcomes_after(test.test_id, test.out_cursor.start())]
        with test.lock:
            model = self._model(test)

            def rows(items: Sequence[_Event]) -> tuple[np.ndarray, np.ndarray]:
                X = np.stack([test.context_row(x.segment, x.features or ()) for x, _ in items])
                arms = np.array([test.key_index[next(a.key for a in test.arms[x.segment] if a.arm_id == x.arm_id)]
                                 for x, _ in items])
                return X, arms

            fresh_e = _clean(test, [new_exp[i] for i in test.exp_cursor.take([x.seq for x, _ in new_exp])])
            if fresh_e:
                X, arms = rows(fresh_e)
                model.add_design(X, arms)
            fresh_o = _clean(test, [new_out[i] for i in test.out_cursor.take([o.seq for _, o in new_out if o])])
            if fresh_o:
                X, arms = rows(fresh_o)
                r = np.array([o.reward for _, o in fresh_o if o], dtype=float)
                p = np.array([x.propensity for x, _ in fresh_o], dtype=float)
                if cfg.policy == "vw":
                    kmask = np.stack([test.key_mask(x.segment) for x, _ in fresh_o])
                    model.update(X, arms, r, p, kmask)
                else:
                    model.add_reward(X, arms, r, with_design=not cfg.reward.implicit_zero)

    # ------------------------------------------------------------------ feedback
    def record(self, outcome: Outcome) -> RecordResult:
        """Records the reward for an exposure, once.

        ``outcome.reward`` is the observed value (a click 0/1, minutes watched); the test's
        :class:`RewardRule` maps it to a reward in [0, 1].

        Returns:
            A :class:`RecordResult` whose status is ``recorded``, ``duplicate`` (an outcome for this
            exposure was already stored: nothing changed) or ``late`` (stored, not counted).

        Raises:
            UnknownExposureError: no exposure has this id (nothing is written).
            InvalidArgumentError: the value is not a finite number in range, or ``outcome.t`` is before
                the exposure (by more than ``CLOCK_SKEW_S``, the clock difference tolerated between servers).
        """
        return self.record_many([outcome])[0]

    def record_many(self, outcomes: Sequence[Outcome]) -> list[RecordResult]:
        """Records a batch atomically: if any exposure id is unknown, nothing is written."""
        for o in outcomes:
            if not isinstance(o, Outcome):
                raise InvalidArgumentError("outcome", o, "a genart.types.Outcome")
            if not isinstance(o.exposure_id, str) or not o.exposure_id:
                raise InvalidArgumentError("exposure_id", o.exposure_id, "the id assign returned")
            if not isinstance(o.reward, (int, float)) or isinstance(o.reward, bool) or not math.isfinite(o.reward) \
                    or o.reward < 0:
                raise InvalidArgumentError("reward", o.reward, "a finite number >= 0")
            if not isinstance(o.t, (int, float)) or not math.isfinite(o.t):
                raise InvalidArgumentError("outcome.t", o.t, "a finite timestamp in seconds")
        if not outcomes:
            return []
        for attempt in range(3):
            try:
                return self._record(outcomes)
            except StoreConflictError:  # a concurrent writer (PostgreSQL) stored one first: re-read as duplicates
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _record(self, outcomes: Sequence[Outcome]) -> list[RecordResult]:
        ids = list(dict.fromkeys(x.exposure_id for x in outcomes))
        results: list[RecordResult] = []
        with self.log.write() as txn:
            exps = txn.exposures_by_id(ids)
            missing = [i for i in ids if i not in exps]
            if missing:
                raise UnknownExposureError(missing)
            done: dict[str, tuple[float, bool]] = {
                i: (float(r.reward), bool(r.counted)) for i, r in txn.outcomes_by_id(ids).items()}
            rows: list[LoggedOutcome] = []
            counts: dict[tuple[str, str, str], int] = {}
            sums: dict[tuple[str, str, str], float] = {}
            for x in outcomes:
                if x.exposure_id in done:
                    results.append(RecordResult(x.exposure_id, "duplicate", done[x.exposure_id][0]))
                    continue
                exp = exps[x.exposure_id]
                if x.t < exp.t - CLOCK_SKEW_S:  # a reward cannot come before what it rewards
                    raise InvalidArgumentError("outcome.t", x.t, f"a time at or after exposure {x.exposure_id}'s "
                                                                  f"({exp.t:.3f}); omit it to use the current time")
                t_reward = max(float(x.t), float(exp.t))
                rule = self._load(exp.test_id, txn).config.reward
                reward = rule.reward(float(x.reward))
                late = rule.window_s is not None and (t_reward - exp.t) > rule.window_s
                rows.append(LoggedOutcome(exposure_id=x.exposure_id, test_id=exp.test_id, value=float(x.reward),
                                          reward=reward, counted=not late, t=t_reward))
                done[x.exposure_id] = (reward, not late)
                results.append(RecordResult(x.exposure_id, "late" if late else "recorded", reward))
                if not late:
                    key = (exp.test_id, exp.segment, exp.arm_id)
                    counts[key] = counts.get(key, 0) + 1
                    sums[key] = sums.get(key, 0.0) + reward
            txn.insert_outcomes(rows)
            by_test: dict[str, dict[tuple[str, str], int]] = {}
            for (tid, seg, arm), n in counts.items():
                by_test.setdefault(tid, {})[(seg, arm)] = n
            for tid, c in by_test.items():
                txn.add_outcomes(tid, c, {(s, a): sums[(tid, s, a)] for (s, a) in c})
        return results

    # ------------------------------------------------------------------ results
    def report(self, test_id: str, *, samples: int = 20_000, seed: int = 0) -> TestReport:
        """Per segment, each arm's impressions, rewards, posterior and probability of being best,
        with the stopping rule applied (see :func:`genart.bandit.report.build_report`)."""
        from genart.bandit.report import build_report

        return build_report(self, test_id, samples=samples, seed=seed)

    def stop(self, test_id: str) -> TestReport:
        """Stops a test: each segment is served its winner from now on (the declared winner, or the
        best posterior mean where the stopping rule has not fired)."""
        rep = self.report(test_id)
        winners = {}
        for seg in rep.segments:
            winners[seg.segment] = seg.winner or max(seg.arms, key=lambda a: a.posterior_mean).arm_id
        with self.log.write() as txn:
            txn.mark_stopped(test_id, self.clock(), winners)
        return self.report(test_id)

    def counts(self, test_id: str) -> tuple[int, int]:
        """(exposures, outcomes) stored for the test."""
        self._load(test_id)
        with self.log.read() as txn:
            return txn.counts(test_id)


class _LinearModel:
    """LinTS / LinUCB over a :class:`LinearState`, split into design and reward updates so that
    exposures without a reward count as reward 0 (``implicit_zero``) as soon as they are logged."""

    def __init__(self, state: LinearState, policy) -> None:
        self.state = state
        self.policy = policy

    def probabilities(self, X, mask, rng):
        return self.policy.probabilities(self.state, X, mask, rng)

    def add_design(self, X: np.ndarray, arms: np.ndarray) -> None:
        self.state.update(X, arms, np.zeros(len(arms)))

    def add_reward(self, X: np.ndarray, arms: np.ndarray, rewards: np.ndarray, *, with_design: bool) -> None:
        if with_design:
            self.state.update(X, arms, rewards)
            return
        st = self.state
        for k in np.unique(arms):
            sel = arms == k
            st.b[k] += X[sel].T @ rewards[sel]
            st.theta[k] = st.A_inv[k] @ st.b[k]
