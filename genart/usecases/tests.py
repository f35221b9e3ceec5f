"""Bandit tests from every surface: open one from a run's arms (what each shows measured and kept),
list, approve, stop, and evaluate other policies offline on a test's own log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from genart.types import Arm
from genart.usecases._store import _check_reviewer, _review_store
from genart.usecases.facts import _variant_facts
from genart.usecases.preferences import _model_priors
from genart.usecases.review import record_decision, review_states
from genart.usecases.runs import load_run
from genart.usecases.tester import open_tester
from genart.errors import InvalidArgumentError, TestConflictError

if TYPE_CHECKING:  # pragma: no cover
    from genart.bandit.types import Evaluation, TestConfig, TestInfo, TestReport

#: Who approves the loop's proposals on a test started with ``--auto-approve`` (the batch job's option).
AUTO_APPROVER = "auto-approve"


def open_test(out: str | Path, run_id: str, arms: Sequence[Arm], config: "TestConfig", *, db: str | None = None,
              draft: bool = False, approved_by: str | None = None, auto_approve: bool = False,
              origin: str = "api", priors: str = "model") -> "TestInfo":
    """Creates a test from a run's arms: what each arm shows is measured and kept with it, and with
    ``priors="model"`` every arm of a segment the preference model has seen starts from the
    model's prediction (the cold start) instead of the ranking's.

    Raises:
        InvalidArgumentError: a bad ``priors`` and whatever ``Tester.create_test`` raises.
    """

    if priors not in ("model", "ranking"):
        raise InvalidArgumentError("priors", priors, "model (the segment preference model) or ranking")
    run = load_run(out, run_id, db=db)
    with _review_store(out, db) as store:
        facts = _variant_facts(store, run_id, [a.variant_id for a in arms if a.variant_id], list(run.keyframes))
    arm_facts = {a.arm_id: facts[a.variant_id] for a in arms if a.variant_id in facts}
    if priors == "model" and arms:
        arms = _model_priors(out, db, arms, arm_facts, config, exclude=(arms[0].test_id,))
    tester = open_tester(out, db)
    test_id = arms[0].test_id if arms else ""
    if not draft and test_id in tester.tests() and tester.info(test_id).status == "draft":
        # the batch job's draft, waiting for a person: start it with the arms the person approved
        if tester.config(test_id) != config:
            raise TestConflictError(test_id, "other settings (a draft: hand off with its settings, or use a new id)")
        tester.approve(test_id, approved_by or "api", arms=arms, arm_facts=arm_facts)
        return tester.info(test_id)
    tester.create_test(test_id, arms, config, arm_facts=arm_facts, draft=draft,
                       approved_by=approved_by, auto_approve=auto_approve, run_id=run_id, origin=origin)
    return tester.info(test_id)


def list_tests(out: str | Path | None = None, *, db: str | None = None) -> list["TestInfo"]:
    """Every test of the store: status (draft, running, stopped), who approved it, its traffic."""
    return open_tester(out, db).infos()


def stop_test(out: str | Path | None, test_id: str, *, db: str | None = None) -> "TestReport":
    """Stops a test: each segment is served its winner (or best posterior mean) from now on.

    Raises:
        UnknownTestError: no such test.
    """
    return open_tester(out, db).stop(test_id)


def approve_test(out: str | Path | None, test_id: str, *, reviewer: str, db: str | None = None) -> "TestInfo":
    """Starts a draft test (the batch job's top-k) on a person's word: the approval is kept in the
    test, and each of its variants still pending review gets an ``approve`` by ``reviewer`` in the
    run's review log.

    Raises:
        UnknownTestError: no such test. InvalidArgumentError: no reviewer name.
        TestNotRunningError: the test was stopped.
    """

    name = _check_reviewer(reviewer)
    tester = open_tester(out, db)
    info = tester.info(test_id)
    if info.status == "draft" and info.run_id and out is not None:
        states = review_states(out, info.run_id, db=db)
        for vid in dict.fromkeys(a.variant_id for a in tester.arms(test_id) if a.variant_id):
            st = states.get(vid)
            if st is not None and st.status == "pending":
                record_decision(out, info.run_id, vid, "approve", reviewer=name,
                                note=f"approved with test {test_id}", db=db)
    tester.approve(test_id, name)
    return tester.info(test_id)


def evaluate_test(out: str | Path | None, test_id: str, *, candidates: Sequence[str] = ("uniform", "greedy", "control"),
                  methods: Sequence[str] = ("ips", "snips", "dr"), n_boot: int = 500, level: float = 0.95,
                  seed: int = 0, db: str | None = None) -> "Evaluation":
    """Offline estimates, on the test's own log, of what other policies would have earned.

    Candidates: ``uniform`` (every arm of a segment equally often), ``greedy`` (each segment's
    best posterior mean; chosen on this very log, so its estimate is optimistic), ``control``
    (the current artwork everywhere), ``arm:ID`` (that arm wherever a segment has it, else
    uniform). Methods: ``replay``, ``ips``, ``snips``, ``dr`` (see :mod:`genart.bandit.offline`),
    each with a bootstrap interval. Unbiased because every exposure logged the probability it was
    drawn with, caps and floors included.

    Raises:
        UnknownTestError: no such test. InvalidArgumentError: an unknown candidate or method, or
            a test with no logged exposures.
    """
    import numpy as np

    from genart.bandit.offline import METHODS, estimate, logged_data, segment_policy
    from genart.bandit.types import Evaluation

    tester = open_tester(out, db)
    logged = logged_data(tester, test_id)
    if logged.n == 0:
        raise InvalidArgumentError("test", test_id, "a test with logged exposures (it has none yet)")
    for m in methods:
        if m not in METHODS:
            raise InvalidArgumentError("method", m, "one of " + ", ".join(METHODS))
    rep = tester.report(test_id)
    by_seg = {s.segment: s for s in rep.segments}
    k = logged.n_actions
    mask = np.zeros((len(logged.segments), k), dtype=bool)
    for si, ids in enumerate(logged.action_ids):
        mask[si, :len(ids)] = True
    uniform = mask / mask.sum(axis=1, keepdims=True)
    tables: list[tuple[str, str, np.ndarray]] = []
    for name in candidates:
        table = np.zeros((len(logged.segments), k))
        if name == "uniform":
            table, words = uniform, "every arm of a segment equally often"
        elif name == "greedy":
            for si, seg in enumerate(logged.segments):
                best = max(by_seg[seg].arms, key=lambda a: a.posterior_mean).arm_id
                table[si, logged.action_ids[si].index(best)] = 1.0
            words = "each segment's best posterior mean (picked on this log: optimistic)"
        elif name == "control":
            for si, ids in enumerate(logged.action_ids):
                if "control" in ids:
                    table[si, ids.index("control")] = 1.0
                else:
                    table[si] = uniform[si]
            words = "the current artwork (the control) everywhere"
        elif name.startswith("arm:"):
            arm = name[4:]
            if not any(arm in ids for ids in logged.action_ids):
                raise InvalidArgumentError("candidate", name, "arm:ID with an arm id of the test")
            for si, ids in enumerate(logged.action_ids):
                if arm in ids:
                    table[si, ids.index(arm)] = 1.0
                else:
                    table[si] = uniform[si]
            words = f"arm {arm} wherever a segment has it"
        else:
            raise InvalidArgumentError("candidate", name, "uniform, greedy, control or arm:ID")
        tables.append((name, words, table))
    estimates = []
    for name, _, table in tables:
        dist = segment_policy(logged, table)
        for m in methods:
            estimates.append((name, estimate(logged, dist, m, n_boot=n_boot, level=level, seed=seed)))
    return Evaluation(test_id=test_id, n=logged.n, logged_value=float(logged.rewards.mean()),
                      candidates=tuple((n, w) for n, w, _ in tables), estimates=tuple(estimates))
