"""Hand off: a run's approved variants become a bandit test, logged with who did it; today's artwork
ranked among them sets the control's prior."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from genart.types import HandoffRecord, RankedVariant
from genart.usecases._store import _check_reviewer, _review_store
from genart.usecases.ranking import rank_variants, variant_from_image
from genart.usecases.review import approved_variants
from genart.usecases.runs import load_run
from genart.usecases.tests import open_test
from genart.errors import InvalidArgumentError, NothingApprovedError


def handoff_to_test(out: str | Path, run_id: str, *, reviewer: str, test_id: str | None = None,
                    segments: Sequence[str] | Mapping[str, Sequence[str]] | None = None, include_control: bool = True,
                    control_image: str | Path | None = None, policy: str | None = None, config=None,
                    priors: str = "model", origin: str = "app", db: str | None = None,
                    options: Mapping[str, object] | None = None) -> HandoffRecord:
    """Send a run's approved variants to a bandit test (``genart.bandit.handoff``) and log who did it.

    Args:
        reviewer: who hands off (goes in the audit trail, and in the test as who approved it).
        test_id: the new test's id (default ``<run_id>-test``). A *draft* test of that id (the batch
            job's, waiting for a person) is started with these arms instead.
        segments: segment names, or {segment: [profile ids]}; default one segment per profile with
            approved variants, getting that profile's variants.
        include_control: add the current artwork as a control arm in every segment.
        control_image: today's artwork (the control's picture). It is ranked like any variant
            (``rank_artwork``), and its place among the approved ones sets the control's prior.
        policy: the test's policy (``ts``, ``egreedy``, ``ucb1``, ...); or give the whole
            ``config`` (``genart.api.test_settings(...)``: reward, floor, change cap, stopping rule).
        priors: ``model`` (the segment preference model's prediction for each arm, where it has
            seen the segment) or ``ranking`` (the ranking's totals).
        origin: which surface handed off (app, cli, api), kept in the test.
        options: further ``genart.bandit.types.TestConfig`` settings by name (exploration floor,
            stopping rule, reward rule, ...), applied on top of ``config``.

    Returns:
        The ``HandoffRecord`` with the arms created. Handing the same arms to the same test again
        (or at the same moment, from two sessions) changes nothing and returns the first record.

    Raises:
        InvalidArgumentError: a test id or segment the bandit service would refuse (``genart.ids``).
        NothingApprovedError: nothing approved in the run.
        SourceNotFoundError, UnsupportedMediaError: ``control_image`` is not a readable picture.
        InvalidArgumentError, UnknownPolicyError, TestConflictError: from the bandit stage.
    """
    from genart.bandit.handoff import handoff
    from genart.bandit.types import TestConfig
    from genart.ids import check_id
    from genart.store import review_queries

    name = _check_reviewer(reviewer)
    test_id = check_id("test id", test_id or f"{run_id}-test")  # the service's pattern, or it never gets traffic
    for seg in (segments or ()):
        check_id("segment", seg)
    if config is None:
        config = TestConfig(policy=policy or "ts")
    elif not isinstance(config, TestConfig):
        raise InvalidArgumentError("config", type(config).__name__, "a TestConfig (genart.api.test_settings)")
    elif policy is not None and policy != config.policy:
        raise InvalidArgumentError("policy", policy, f"the config's own policy '{config.policy}' (or leave it out)")
    approved = approved_variants(out, run_id, db=db)
    if not approved:
        raise NothingApprovedError(run_id, "hand off")
    if segments is None:
        segments = {pid: [pid] for pid in dict.fromkeys(rv.profile_id for rv in approved)}
    control_prior = None
    if include_control and control_image is not None:
        control_prior = _control_prior(rank_artwork(out, run_id, control_image, db=db), approved)
    # every variant here was approved by a person, so those the ranking marked needs_review may go too
    arms = handoff(approved, test_id, segments, include_control=include_control, control_image=control_image,
                   control_prior=control_prior, approved=[rv.variant.id for rv in approved])
    if options:
        from dataclasses import replace as _with

        try:
            config = _with(config, **dict(options))
        except TypeError as exc:  # a setting this TestConfig does not know
            raise InvalidArgumentError("test option", sorted(options), f"TestConfig fields ({exc})") from None
    open_test(out, run_id, arms, config, db=db, approved_by=name, origin=origin, priors=priors)

    with _review_store(out, db) as store:
        return review_queries.record_handoff(store, run_id, test_id, name, arms)


CONTROL_VARIANT_ID = "control"


def rank_artwork(out: str | Path, run_id: str, image: "str | Path", *, profiles: Sequence[str] | None = None,
                 db: str | None = None) -> dict[str, RankedVariant]:
    """Today's artwork (a human-made thumbnail, say) ranked for each profile among the run's approved
    variants, with the run's preset: where it would place, and by which scores.

    Args:
        image: the picture.
        profiles: the profiles to rank it for (default: those with approved variants, else all the run's).

    Returns:
        Per profile id, the artwork's ``RankedVariant`` (its ``rank`` among the approved ones and itself;
        None when the ranking rejects it, with the reason).

    Raises:
        SourceNotFoundError, UnsupportedMediaError: ``image`` is not a readable picture.
        UnknownRunError: no such run. ModelLoadError: the run's preset's rankers are not on this machine.
    """
    run = load_run(out, run_id, db=db)
    approved = approved_variants(out, run_id, db=db)
    wanted = list(profiles or dict.fromkeys(rv.profile_id for rv in approved) or [pid for pid, _ in run.ranked])
    control = variant_from_image(image, variant_id=CONTROL_VARIANT_ID)
    pool = [rv.variant for rv in approved if rv.profile_id in wanted] + [control]
    ranked = rank_variants(pool, wanted, preset=run.preset, out=out, db=db)
    return {pid: next(r for r in rows if r.variant.id == CONTROL_VARIANT_ID) for pid, rows in ranked.items()}


def _control_prior(ranked: Mapping[str, RankedVariant], approved: Sequence[RankedVariant],
                   prior_range: tuple[float, float] = (0.4, 0.6)) -> float:
    """The control's cold-start prior on the scale ``genart.bandit.handoff`` puts the approved variants on
    (their totals min-max scaled into ``prior_range``): its total placed among theirs, averaged over the
    profiles that did not reject it; the middle of the range when every one did."""
    lo, hi = prior_range
    totals = [rv.total for rv in approved]
    t_lo, t_hi = (min(totals), max(totals)) if totals else (0.0, 0.0)
    values = []
    for rv in ranked.values():
        if rv.rejected is not None:
            continue
        if t_hi > t_lo:
            values.append(lo + (min(max(rv.total, t_lo), t_hi) - t_lo) / (t_hi - t_lo) * (hi - lo))
        else:
            values.append((lo + hi) / 2)
    return float(sum(values) / len(values)) if values else (lo + hi) / 2


def handoffs(out: str | Path, run_id: str, *, db: str | None = None) -> list[HandoffRecord]:
    """The bandit tests a run's variants were handed to, oldest first."""
    from genart.store import review_queries

    with _review_store(out, db) as store:
        return review_queries.handoffs(store, run_id)
