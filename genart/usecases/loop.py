"""Tests from every surface, and the loop that learns from them.

A use case beside ``genart.usecases.run`` and the review use cases (the bandit stage knows arms and
numbers, not images or runs): it measures what each arm's artwork shows from the stored key
frames and variants, opens, approves, stops and evaluates tests on a run store, fits the segment
preference model (:mod:`genart.bandit.preferences`) on every test's outcomes, and turns a weak
segment into new artwork:

1. :func:`loop_step` reads the test's report; a segment whose generated arms are weak
   (:func:`genart.bandit.loop.weakness`) makes one *trigger* per state of its arms, and only
   after ``loop_min_impressions`` more impressions than at its previous trigger (so new arms
   are given their chance first);
2. the trigger makes exactly one *proposal*: generation settings (key frame, which face to frame,
   aspect, grade, strength, prompt edit) sampled by Thompson sampling under the preference model,
   each previewed at thumbnail size through the classic finishing to know what it would show;
3. the settings are made through the preset's own generator (:func:`genart.usecases.regenerate.make_variants`,
   the one engine a reviewer's regeneration uses too), ranked and gated with the rest of the
   profile's variants, and queued for review (or approved by ``auto-approve`` when the test was
   started that way);
4. a later step adds the approved ones as arms, with priors from the model.

Every step is a row (``genart.store.bandit_tables``): trigger -> proposal -> candidates -> variant
-> arm, so any arm can be traced to the outcome that asked for it.

Importing this module is cheap; stages load when a function needs them.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from genart.progress import ProgressFn
from genart.types import Arm, RankedVariant, stable_id
from genart.usecases._store import _review_store
from genart.usecases.facts import lead_character, variant_facts
from genart.usecases.preferences import _model_priors, _reward_text, _unit, preference_model
from genart.usecases.review import _append_decision, review_states
from genart.usecases.runs import load_run
from genart.usecases.settings import _existing_setting_keys, _job, candidate_settings, setting_words
from genart.usecases.tests import AUTO_APPROVER
from genart.usecases.tester import open_tester
from genart.config import load_models_config
from genart.usecases.regenerate import make_variants

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from genart.bandit.tester import Tester
    from genart.bandit.types import LoopStep, ProposalRecord


LOOP_REVIEWER = "genart loop"


def _segment_profile(arms: Sequence[Arm], segment: str, run_profiles: Sequence[str]) -> str | None:
    made = [a.profile_id for a in arms if a.segment == segment and not a.is_control and a.profile_id]
    if made:
        return Counter(made).most_common(1)[0][0]
    return segment if segment in run_profiles else None


def loop_step(out: str | Path, test_id: str, *, db: str | None = None, progress: ProgressFn | None = None,
              force: bool = False) -> "LoopStep":
    """One turn of the learning loop on a test (see the module docstring): approved proposals become
    arms, and each segment that is weak, or for which the preference model expects an untried
    setting to beat the leader by ``loop_min_gain``, gets one proposal for its present arms.

    Args:
        force: look at the segments even when the test's ``loop`` setting is off.

    Returns:
        A ``LoopStep``: the segments checked (weak or not, and why), the proposals made now, the
        arms added now, and how many proposed variants wait for a person's review.

    Raises:
        UnknownTestError: no such test. ModelLoadError: the run's preset has no weights here.
    """
    import numpy as np

    from genart.bandit.loop import opportunity
    from genart.bandit.types import LoopStep

    tester = open_tester(out, db)
    info = tester.info(test_id)
    cfg = tester.config(test_id)
    if info.status != "running":
        return LoopStep(test_id=test_id, checked=(), proposals=(), added=(), waiting=0,
                        note=f"the test is {info.status}: the loop works on running tests")
    added = _add_approved(out, db, tester, test_id, cfg)
    report = tester.report(test_id)
    checked = []
    made: list = []
    note = ""
    if not (cfg.loop or force):
        note = "the test's loop setting is off: segments checked, nothing proposed"
        checked = [(s.segment, s.weak, s.weak_reason) for s in report.segments]
    elif info.run_id is None:
        note = "the test has no run to make new variants in"
        checked = [(s.segment, s.weak, s.weak_reason) for s in report.segments]
    else:
        ctx = _Context(out, db, tester, test_id, info.run_id, cfg)
        for seg in report.segments:
            blocked = _blocked(tester, test_id, seg, cfg)
            reason = seg.weak_reason if seg.weak else None
            text = seg.weak_reason
            if reason is None and blocked is None and cfg.loop_min_gain is not None:
                found = ctx.setup(seg.segment)
                if found is not None:
                    model, candidates, exclude = found
                    ok, said, _ = opportunity(model, seg.segment, candidates, seg.arms, cfg,
                                              np.random.default_rng(int(stable_id(test_id, seg.segment, length=8), 16)),
                                              exclude=exclude, group=test_id)
                    reason = said if ok else None
                    text = f"{text}; {said}"
            wants = reason is not None
            checked.append((seg.segment, wants, (reason or text) + (f" ({blocked})" if wants and blocked else "")))
            if reason is not None and blocked is None:
                rec = _trigger(ctx, seg, reason, progress)
                if rec is not None:
                    made.append(rec)
        added = added + _add_approved(out, db, tester, test_id, cfg)  # auto-approved proposals
    waiting = sum(1 for p in proposals(out, test_id, db=db) for c in p.candidates if c.status == "queued")
    return LoopStep(test_id=test_id, checked=tuple(checked), proposals=tuple(made), added=tuple(added),
                    waiting=waiting, note=note)


def _blocked(tester, test_id: str, seg, cfg) -> str | None:
    """Why a segment may not trigger now, or None: a proposal of its still waits for review, its
    present arms triggered already, or it has not had ``loop_min_impressions`` more impressions
    since its last trigger."""
    from genart.bandit.loop import arms_key
    from genart.store.bandit_engine import read_txn
    from genart.store import learning_queries

    key = arms_key([a.arm_id for a in seg.arms])
    impressions = sum(a.impressions for a in seg.arms)
    with read_txn(tester.engine) as conn:
        seen = learning_queries.segment_history(conn, test_id, seg.segment, key)
    if seen.waiting:
        return "waiting: proposed variants wait for review"
    if seen.seen_arms:
        return "proposed for these arms already"
    if seen.last_impressions is not None:
        since = impressions - seen.last_impressions
        if since < cfg.loop_min_impressions:
            return f"collecting: {since} of {cfg.loop_min_impressions} impressions since the last proposal"
    return None


class _Context:
    """What the loop needs about a test's run, loaded once per step: the run, its preset, each
    segment's profile and candidate settings, the preference model, the settings already made."""

    def __init__(self, out, db, tester, test_id: str, run_id: str, cfg) -> None:
        self.out, self.db, self.tester, self.test_id, self.run_id, self.cfg = out, db, tester, test_id, run_id, cfg
        self._run = self._spec = self._model = None
        self._candidates: dict[str, list] = {}

    @property
    def run(self):
        if self._run is None:

            self._run = load_run(self.out, self.run_id, db=self.db)
        return self._run

    @property
    def spec(self):
        if self._spec is None:
            self._spec = load_models_config().preset(self.run.preset)
        return self._spec

    @property
    def model(self):
        if self._model is None:
            self._model = preference_model(self.out, db=self.db, reward=_reward_text(self.cfg))
        return self._model

    def profile_id(self, segment: str) -> str | None:
        return _segment_profile(self.tester.arms(self.test_id), segment, [pid for pid, _ in self.run.ranked])

    def pool(self, profile_id: str) -> list[RankedVariant]:
        return list(dict(self.run.ranked).get(profile_id, ())) + list(dict(self.run.rejected).get(profile_id, ()))

    def setup(self, segment: str):
        """(model, candidate settings with their expected facts, setting keys already made), or None
        when no profile of the run goes with the segment."""
        from genart.store.bandit_engine import read_txn
        from genart.profiles import get_profiles
        from genart.store import learning_queries

        pid = self.profile_id(segment)
        if pid is None:
            return None
        if pid not in self._candidates:
            profile = get_profiles([pid])[0]
            self._candidates[pid] = candidate_settings(self.run, profile, self.spec, lead=lead_character(self.run.keyframes))
        with read_txn(self.tester.engine) as conn:
            tried = learning_queries.tried_setting_keys(conn, self.test_id)
        exclude = sorted(tried | _existing_setting_keys(self.pool(pid)))
        return self.model, self._candidates[pid], exclude


def _trigger(ctx: _Context, seg, reason: str, progress) -> "ProposalRecord | None":
    """The trigger and its one proposal for a segment (``_blocked`` said it may), made in one
    transaction under a unique (test, segment, arms) key: two processes make one."""
    import numpy as np

    from genart.bandit.loop import arms_key
    from genart.store.bandit_engine import write_txn
    from genart.store import learning_queries

    tester, test_id = ctx.tester, ctx.test_id
    key = arms_key([a.arm_id for a in seg.arms])
    trigger_id = stable_id("trigger", test_id, seg.segment, key)
    proposal_id = stable_id("proposal", trigger_id)
    evidence = {"impressions": sum(a.impressions for a in seg.arms),
                "arms": [{"arm_id": a.arm_id, "control": a.is_control, "impressions": a.impressions,
                          "mean": round(a.posterior_mean, 6), "p_beats_control": a.prob_beats_control,
                          "lift": a.lift} for a in seg.arms]}
    if not learning_queries.add_trigger(write_txn(tester.engine), trigger_id=trigger_id, proposal_id=proposal_id,
                                        test_id=test_id, segment=seg.segment, arms_key=key, reason=reason,
                                        evidence=evidence, run_id=ctx.run_id):
        return None  # another process triggered the same segment state first
    try:
        _propose(ctx, seg.segment, proposal_id, np.random.default_rng(int(stable_id(proposal_id, length=12), 16)),
                 progress)
    except Exception as exc:  # the proposal is kept, failed, with why; the trigger does not fire again
        _set_proposal(tester, proposal_id, "failed", f"{type(exc).__name__}: {getattr(exc, 'message', exc)}")
        raise
    return next(p for p in proposals(ctx.out, test_id, db=ctx.db) if p.proposal_id == proposal_id)


def _set_proposal(tester: "Tester", proposal_id: str, status: str, note: str | None = None, **values: Any) -> None:
    from genart.store.bandit_engine import write_txn
    from genart.store import learning_queries

    with write_txn(tester.engine) as conn:
        learning_queries.set_proposal(conn, proposal_id, status, note, **values)


def _set_candidate(tester: "Tester", candidate_id: str, status: str, **values: Any) -> None:
    from genart.store.bandit_engine import write_txn
    from genart.store import learning_queries

    with write_txn(tester.engine) as conn:
        learning_queries.set_candidate(conn, candidate_id, status, **values)


def _propose(ctx: _Context, segment: str, proposal_id: str, rng: "np.random.Generator", progress) -> None:
    """Thompson over the settings, generation through the one engine, ranking, the review queue."""
    from genart.usecases.stages import ensure_weights, load_stages
    from genart.bandit.loop import Setting, thompson_settings
    from genart.store.bandit_engine import write_txn
    from genart.profiles import get_profiles
    from genart.store import learning_queries

    tester, test_id, cfg, run = ctx.tester, ctx.test_id, ctx.cfg, ctx.run
    found = ctx.setup(segment)
    profile_id = ctx.profile_id(segment)
    if found is None or profile_id is None:
        _set_proposal(tester, proposal_id, "failed", f"no profile of run {ctx.run_id} goes with segment {segment}")
        return
    model, candidates, exclude = found
    _set_proposal(tester, proposal_id, "open", None, profile_id=profile_id)
    profile = get_profiles([profile_id])[0]
    picks = thompson_settings(model, segment, candidates, cfg.loop_variants, rng, exclude=exclude, group=test_id)
    if not picks:
        _set_proposal(tester, proposal_id, "done", "every setting this run allows was tried already")
        return
    now = time.time()
    rows: list[dict[str, Any]] = [dict(candidate_id=stable_id(proposal_id, p.setting.key), proposal_id=proposal_id, test_id=test_id,
                 segment=segment, setting_key=p.setting.key, setting=p.setting.to_json(), predicted=p.predicted,
                 predicted_low=p.low, predicted_high=p.high, sampled=p.sampled, status="proposed", updated_at=now)
            for p in picks]
    with write_txn(tester.engine) as conn:
        learning_queries.add_candidates(conn, rows)
    ensure_weights(ctx.spec)
    stages = load_stages(ctx.spec)
    kfs = {k.id: k for k in run.keyframes}
    jobs = [_job(p.setting, kfs[p.setting.keyframe_id], profile, ctx.spec,
                 seed=int(stable_id(proposal_id, p.setting.key, length=7), 16)) for p in picks]
    made, ranked_rows = make_variants(ctx.out, run, stages, jobs, profile, pool=ctx.pool(profile_id), db=ctx.db,
                                      progress=progress)
    ctx._run = None  # the run has new variants now
    by_id = {r.variant.id: r for r in ranked_rows}
    auto = bool(tester.info(test_id).auto_approve)
    with _review_store(ctx.out, ctx.db) as store:
        for row, v in zip(rows, made):
            cid = row["candidate_id"]
            if v is None:
                _set_candidate(tester, cid, "failed", note="it made a variant the run has already")
                continue
            rv = by_id[v.id]
            if rv.rejected is not None:
                _set_candidate(tester, cid, "rejected", variant_id=v.id, note=f"rejected by the ranking: {rv.rejected}")
                continue
            words = setting_words(Setting.from_json(row["setting"]))
            note = (f"proposed by the learning loop for segment {segment} (proposal {proposal_id}): {words}; "
                    f"predicted {_unit(cfg)} {row['predicted']:.2%} ({row['predicted_low']:.2%} to "
                    f"{row['predicted_high']:.2%})")
            _append_decision(store, ctx.run_id, v.id, "proposed", LOOP_REVIEWER, note, None)
            if auto and not rv.needs_review:  # a doubtful safety score waits for a person, auto-approve or not
                _append_decision(store, ctx.run_id, v.id, "approve", AUTO_APPROVER,
                                 f"test {test_id} was started with --auto-approve", None)
            _set_candidate(tester, cid, "queued", variant_id=v.id)


def _add_approved(out, db, tester, test_id: str, cfg) -> list[tuple[str, str, str]]:
    """Queued candidates a person approved become arms (priors from the model); rejected ones are
    marked so. Returns (segment, arm id, proposal id) of the arms added."""
    from genart.store.bandit_engine import read_txn
    from genart.store import learning_queries

    with read_txn(tester.engine) as conn:
        queued = learning_queries.queued_candidates(conn, test_id)
    if not queued:
        return []
    by_run: dict[str, list] = {}
    for r in queued:
        by_run.setdefault(r.run_id, []).append(r)
    existing = {(a.segment, a.arm_id) for a in tester.arms(test_id)}
    added: list[tuple[str, str, str]] = []
    for run_id, items in by_run.items():
        states = review_states(out, run_id, db=db)
        approved = [r for r in items if states.get(r.variant_id) is not None and states[r.variant_id].status == "approve"]
        for r in items:
            st = states.get(r.variant_id)
            if st is not None and st.status == "reject":
                _set_candidate(tester, r.candidate_id, "rejected", note=f"rejected by {st.reviewer}: {st.note}".strip())
        if not approved:
            continue
        facts = variant_facts(out, run_id, [r.variant_id for r in approved], db=db)

        run = load_run(out, run_id, db=db)
        paths = {rv.variant.id: rv.variant.path for _, items_ in run.ranked for rv in items_}
        arms, proposal_of, arm_facts = [], {}, {}
        for r in approved:
            if (r.segment, r.variant_id) in existing:
                _set_candidate(tester, r.candidate_id, "added", arm_id=r.variant_id)
                continue
            arm = Arm(test_id=test_id, arm_id=r.variant_id, segment=r.segment, variant_id=r.variant_id,
                      image_path=paths.get(r.variant_id), is_control=False,
                      profile_id=next((rv.profile_id for _, it in run.ranked for rv in it
                                       if rv.variant.id == r.variant_id), None))
            arms.append(arm)
            proposal_of[arm.arm_id] = r.proposal_id
            if r.variant_id in facts:
                arm_facts[arm.arm_id] = facts[r.variant_id]
        if arms:
            arms = _model_priors(out, db, arms, arm_facts, cfg)
            tester.add_arms(test_id, arms, arm_facts=arm_facts, proposal_ids=proposal_of, run_id=run_id)
            for r in approved:
                if r.variant_id in proposal_of:
                    _set_candidate(tester, r.candidate_id, "added", arm_id=r.variant_id)
                    added.append((r.segment, r.variant_id, r.proposal_id))
    _close_done_proposals(tester, test_id)
    return added


def _close_done_proposals(tester: "Tester", test_id: str) -> None:
    from genart.store.bandit_engine import write_txn
    from genart.store import learning_queries

    with write_txn(tester.engine) as conn:
        learning_queries.close_done_proposals(conn, test_id)


def proposals(out: str | Path | None, test_id: str, *, db: str | None = None) -> list["ProposalRecord"]:
    """Every proposal the loop made for a test, oldest first, with its trigger's reason and each
    candidate's fate (proposed, queued for review, added as an arm, rejected, failed).

    Raises:
        UnknownTestError: no such test.
    """
    from genart.store.bandit_engine import read_txn
    from genart.bandit.types import CandidateRecord, ProposalRecord
    from genart.store import learning_queries

    tester = open_tester(out, db)
    tester.info(test_id)
    with read_txn(tester.engine) as conn:
        props, cands = learning_queries.proposal_rows(conn, test_id)
    per: dict[str, list] = {}
    for c in cands:
        per.setdefault(c.proposal_id, []).append(CandidateRecord(
            candidate_id=c.candidate_id, setting=c.setting, predicted=c.predicted, predicted_low=c.predicted_low,
            predicted_high=c.predicted_high, status=c.status, variant_id=c.variant_id, arm_id=c.arm_id, note=c.note))
    return [ProposalRecord(proposal_id=p.proposal_id, trigger_id=p.trigger_id, test_id=p.test_id, segment=p.segment,
                           reason=p.reason, created_at=p.created_at, status=p.status, run_id=p.run_id,
                           profile_id=p.profile_id, candidates=tuple(per.get(p.proposal_id, ())), note=p.note)
            for p in props]
