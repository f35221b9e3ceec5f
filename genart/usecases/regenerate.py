"""Regenerate: new variants of a stored run through the preset's own generator (a reviewer's
re-roll and the learning loop's proposals alike), stored and ranked with the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from genart.config import load_models_config
from genart.progress import ProgressFn
from genart.types import RankedVariant, RunResult, TasteProfile
from genart.usecases._store import _check_reviewer, _review_store
from genart.usecases.choices import _check_prompt, _edited_profile, _run_choices
from genart.usecases.review import _append_decision
from genart.usecases.runs import load_run


def regenerate_variant(out: str | Path, run_id: str, variant_id: str, *, reviewer: str, seed: int | None = None,
                       strength: float | None = None, prompt: str | None = None, db: str | None = None,
                       progress: ProgressFn | None = None, aspect: str | None = None,
                       grade_amount: float | None = None) -> RankedVariant:
    """Make one variant again from the same key frame with a new seed, strength or prompt.

    The new variant is stored next to the old one (which stays, with its decisions), the profile's
    variants are ranked again, and a ``regenerated`` entry by ``reviewer`` starts the new one's log.
    Everything not given is made as the run made its variants (its look, aspects and title choices).

    Args:
        seed: the new variant's seed (None: a random one: the one-click re-roll).
        strength: img2img strength in (0, 1] (diffusion presets only; None keeps the variant's).
        prompt: a prompt template (diffusion presets only; None keeps the variant's).
        aspect: the new variant's aspect ratio (classic only; None keeps the variant's).
        grade_amount: the look's strength, 0 to 2 (classic only; None keeps the run's).

    Returns:
        The new variant, ranked among its profile's variants.

    Raises:
        InvalidArgumentError: a bad seed, strength or prompt, or strength/prompt with the classic preset
            (it has neither: its variety comes from the seed).
        UnknownRunError, UnknownVariantError, ModelLoadError: as their names say.
    """
    import secrets

    from genart.usecases.stages import ensure_weights, load_stages
    from genart.errors import InvalidArgumentError, UnknownVariantError
    from genart.profiles import get_profiles

    name = _check_reviewer(reviewer)
    run = load_run(out, run_id, db=db)
    rejected = dict(run.rejected)
    everything = {pid: list(items) + list(rejected.get(pid, ())) for pid, items in run.ranked}
    old = next((rv for items in everything.values() for rv in items if rv.variant.id == variant_id), None)
    if old is None:
        raise UnknownVariantError(run_id, variant_id)
    if seed is None:
        seed = secrets.randbelow(2**31)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise InvalidArgumentError("seed", seed, "an integer from 0 to 2**63 - 1")
    if strength is not None and (isinstance(strength, bool) or not isinstance(strength, (int, float))
                                 or not 0.0 < float(strength) <= 1.0):
        raise InvalidArgumentError("strength", strength, "a number in (0, 1]")
    spec = load_models_config().preset(run.preset)
    v = old.variant
    choices = _run_choices(run)
    look: dict[str, Any] = {k: choices.get(k) for k in ("grade", "grade_amount", "title_position")}
    if grade_amount is not None:
        look["grade_amount"] = grade_amount
    profile = _edited_profile(get_profiles([v.profile_id])[0], **look)
    if spec.kind == "classic":
        if strength is not None or prompt:
            raise InvalidArgumentError("strength" if strength is not None else "prompt", strength or prompt,
                                       "nothing with the classic preset (it has no strength or prompt; a new seed "
                                       "gives a new framing and grade)")
        # the classic generator's first variant of a frame is its plain framing; the second is seeded
        profile, n = _edited_profile(profile, aspects=(aspect or v.params.aspect,)), 2
    elif aspect is not None or grade_amount is not None:
        raise InvalidArgumentError("aspect" if aspect is not None else "grade amount", aspect or grade_amount,
                                   "nothing with a diffusion preset (regenerate with a new seed, strength or prompt)")
    else:
        if prompt:
            template = _check_prompt(prompt)
        elif v.params.prompt:  # the prompt this variant was made with (a run may have edited it)
            template = v.params.prompt.replace("{", "{{").replace("}", "}}")
        else:
            template = profile.prompt
        profile, n = _edited_profile(profile, template, strength if strength is not None else v.params.strength), 1
    ensure_weights(spec)
    stages = load_stages(spec)
    kf = v.keyframe
    made, rows = make_variants(out, run, stages, [(kf, profile, n, seed)], profile, pool=everything[v.profile_id],
                               db=db, progress=progress)
    if made[0] is None:
        raise InvalidArgumentError("seed", seed, "a seed that makes a new variant (this one exists already)")
    what = [f"seed {seed}"]
    if aspect is not None:
        what.append(f"aspect {made[0].params.aspect}")
    if grade_amount is not None:
        what.append(f"look {made[0].params.grade}")
    if made[0].params.strength is not None:
        what.append(f"strength {made[0].params.strength:g}")
    if prompt:
        what.append(f"prompt: {made[0].params.prompt}")
    with _review_store(out, db) as store:
        _append_decision(store, run_id, made[0].id, "regenerated", name,
                         f"regenerated from {variant_id}: " + ", ".join(what), None)
    return next(r for r in rows if r.variant.id == made[0].id)


def make_variants(out: str | Path, run: RunResult, stages, jobs: Sequence[tuple], rank_profile: TasteProfile, *,
                  pool: Sequence[RankedVariant], db: str | None = None,
                  progress: ProgressFn | None = None) -> tuple[list, list[RankedVariant]]:
    """New variants of a stored run through the preset's own generator, stored and ranked with the rest.

    The one way a variant is made after a run: a reviewer's regeneration and the learning loop's
    proposals both come through here.

    Args:
        run: the run (``load_run``); its manifest's title and genre fill the prompts.
        stages: the preset's stages (``genart.usecases.stages.load_stages``).
        jobs: ``(key frame, profile, n, seed)`` each, optionally with a fifth item, the key frame
            as the generator should see it (the learning loop keeps only the face it frames): the
            generator makes ``n`` variants of the key frame for the (possibly edited) profile and
            the last is kept (so the classic preset's grade ladder and framing variety are
            reachable by ``n``).
        rank_profile: the profile the pool is ranked for.
        pool: the profile's ranked variants so far (ranked again together with the new ones).

    Returns:
        (per job its stored ``Variant``, or None where it made a variant the run has already;
        the new ranking of the whole pool).
    """
    from dataclasses import replace

    from genart.imaging import load_rgb
    from genart.store.convert import read_manifest

    from genart import __version__

    manifest = read_manifest(run.manifest_path)
    title, genre = (manifest.title, manifest.genre) if manifest is not None else ("", "")
    overlay = _run_choices(run).get("title_overlay")  # the run's own title choice (the app's step 2)
    have = {rv.variant.id for rv in pool}
    made = []
    for job in jobs:
        kf, profile, n, seed = job[:4]
        seen_as = job[4] if len(job) > 4 and job[4] is not None else kf
        kf_px = replace(seen_as, image=load_rgb(kf.path))
        v = stages.generator.generate([kf_px], profile, n, seed=seed, title=title,
                                      genre=genre, progress=progress,
                                      title_overlay=overlay)[-1]
        v = replace(v, keyframe=replace(kf, image=None))
        made.append(None if v.id in have else v)
        have.add(v.id)
    fresh = [v for v in made if v is not None]
    if not fresh:
        return made, list(pool)
    with _review_store(out, db) as store:
        stored = {v.id: v for v in store.add_variants(run.run_id, fresh, software=f"genart {__version__}")}
        rows = stages.rank([rv.variant for rv in pool] + list(stored.values()), rank_profile)
        store.add_rankings(run.run_id, rows)
    return [stored.get(v.id) if v is not None else None for v in made], rows
