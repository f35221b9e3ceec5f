"""Review: reviewers' decisions in the run's append-only log, a variant's state, what is approved, and
why a variant got its total."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from genart.config import load_models_config
from genart.types import REVIEW_ACTIONS, Contribution, RankedVariant, ReviewDecision, ReviewState, ScoreSet
from genart.usecases._store import _check_reviewer, _review_store, _write_lock
from genart.usecases.runs import load_run
from genart.errors import GenartError, InvalidArgumentError

if TYPE_CHECKING:  # pragma: no cover
    from genart.store.db import Store

_MAX_NOTE = 4000


def _append_decision(store: "Store", run_id: str, variant_id: str, action: str, reviewer: str, note: str,
                     expected_version: int | None) -> ReviewDecision:
    """Append one log entry (``review_queries.append_decision``) under this process's write lock of the store."""
    from genart.store import review_queries

    return review_queries.append_decision(store, run_id, variant_id, action, reviewer, note, expected_version,
                                          lock=_write_lock(store))


def record_decision(out: str | Path, run_id: str, variant_id: str, action: str, reviewer: str, note: str = "", *,
                    expected_version: int | None = None, db: str | None = None) -> ReviewDecision:
    """Approve, reject or flag a variant: appended to the run's review log with reviewer and time.

    Nothing is ever overwritten: every decision is a new log entry, and a variant's status is its
    latest one. Pass ``expected_version`` (the ``ReviewState.version`` the reviewer saw) to have a
    decision refused when someone else decided in the meantime.

    Returns:
        The stored ``ReviewDecision`` (with its new ``version``).

    Raises:
        InvalidArgumentError: an unknown action, no reviewer name, or a note over 4000 characters.
        UnknownRunError, UnknownVariantError: no such run, or no such variant in it.
        DecisionConflictError: ``expected_version`` is not the variant's current version.
    """

    if action not in REVIEW_ACTIONS:
        raise InvalidArgumentError("action", action, "one of " + ", ".join(REVIEW_ACTIONS))
    name = _check_reviewer(reviewer)
    note = (note or "").strip()
    if len(note) > _MAX_NOTE:
        raise InvalidArgumentError("note", note[:40] + "...", f"at most {_MAX_NOTE} characters")
    if expected_version is not None and (isinstance(expected_version, bool) or not isinstance(expected_version, int)
                                         or expected_version < 0):
        raise InvalidArgumentError("expected_version", expected_version, "None or an integer >= 0")
    with _review_store(out, db) as store:
        return _append_decision(store, run_id, variant_id, action, name, note, expected_version)


def decisions(out: str | Path, run_id: str, *, variant_id: str | None = None,
              db: str | None = None) -> list[ReviewDecision]:
    """A run's review log (or one variant's), oldest first: the audit trail.

    Raises:
        UnknownRunError: no such run.
    """
    from genart.store import review_queries

    with _review_store(out, db) as store:
        return review_queries.decisions(store, run_id, variant_id)


def review_states(out: str | Path, run_id: str, *, db: str | None = None) -> dict[str, ReviewState]:
    """Per variant id of a run: its status (latest approve/reject/flag, else ``pending``) and version."""
    from genart.store import review_queries

    log = decisions(out, run_id, db=db)
    with _review_store(out, db) as store:
        ids = review_queries.variant_ids(store, run_id)
    states = {vid: ReviewState(variant_id=vid, status="pending", version=0) for vid in ids}
    for d in log:  # oldest first: the last decision wins the status, every entry bumps the version
        st = states.get(d.variant_id) or ReviewState(variant_id=d.variant_id, status="pending", version=0)
        if d.action in REVIEW_ACTIONS:
            st = ReviewState(variant_id=d.variant_id, status=d.action, version=d.version, reviewer=d.reviewer,
                             note=d.note, at=d.created_at)
        else:
            st = ReviewState(variant_id=st.variant_id, status=st.status, version=d.version, reviewer=st.reviewer,
                             note=st.note, at=st.at)
        states[d.variant_id] = st
    return states


def approved_variants(out: str | Path, run_id: str, *, db: str | None = None) -> list[RankedVariant]:
    """The run's variants whose latest decision is ``approve`` (never a rejected-by-ranking one), best first."""
    run = load_run(out, run_id, db=db)
    states = review_states(out, run_id, db=db)
    return [rv for _, items in run.ranked for rv in items
            if rv.variant.id in states and states[rv.variant.id].status == "approve"]


def score_breakdown(rv: RankedVariant, preset: str | None = None) -> tuple[Contribution, ...]:
    """Why a variant got its total: every score with the weight it counted with and its contribution,
    largest first; the contributions add up to ``rv.total``.

    The ranking's own explanation when it stored one (``RankedVariant.explanation``), else worked out
    the way ``genart.rank.combine`` combines scores (the profile's weights, then the preset's extra
    weights; a score nobody weights, a safety gate, counts 0).

    Raises:
        UnknownPresetError: ``preset`` is not in models.yaml.
    """
    from genart.profiles import get_profiles
    from genart.rank.combine import explain

    if rv.explanation:
        return tuple(rv.explanation)
    spec = load_models_config().preset(preset)
    try:
        weights = get_profiles([rv.profile_id])[0].weights
    except GenartError:  # a profile removed since the run: the default weights, as the ranking would use
        weights = ScoreSet()
    return tuple(explain(rv.scores, weights, ScoreSet.of(spec.ranker.extra_weights)))
