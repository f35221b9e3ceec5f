"""Tests from every surface, and the loop that learns from them.

An orchestrator beside ``genart.pipeline`` and ``genart.review`` (the bandit stage knows arms and
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
3. the settings are made through the preset's own generator (:func:`genart.review.make_variants`,
   the one engine a reviewer's regeneration uses too), ranked and gated with the rest of the
   profile's variants, and queued for review (or approved by ``auto-approve`` when the test was
   started that way);
4. a later step adds the approved ones as arms, with priors from the model.

Every step is a row (``genart.store.bandit_tables``): trigger -> proposal -> candidates -> variant
-> arm, so any arm can be traced to the outcome that asked for it.

Importing this module is cheap; stages load when a function needs them.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from genart.progress import ProgressFn
from genart.types import Arm, KeyFrame, RankedVariant, Variant, stable_id

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from genart.bandit.preferences import PreferenceModel, SegmentTaste
    from genart.bandit.types import Evaluation, LoopStep, ProposalRecord, TestConfig, TestInfo, TestReport
    from genart.store.db import Store

LOOP_REVIEWER = "genart loop"
AUTO_APPROVER = "auto-approve"
PREVIEW_SIDE = 160  # px: what a candidate setting would show is measured on a thumbnail this wide
PROMPT_EDITS = ("", "an expressive face showing strong emotion", "a close-up on the face",
                "bright vivid colour", "dark low-key moody light")
MAX_PREVIEWS = 300  # thumbnails finished per proposal (a run has at most this many frame x face x aspect x grade)
GRADE_STEPS = (0.65, 1.0, 1.3)  # the grade strengths the loop tries (the classic preset)


def _tester(out: str | Path | None, db: str | None = None):
    from genart.review import _tester as review_tester

    return review_tester(out, db)


# --- what an artwork shows ------------------------------------------------------------------------------
def _kept_faces(kf: KeyFrame, crop: tuple[int, int, int, int] | None) -> list[int]:
    """Indices of the key frame's faces a crop keeps (60 % of the face inside, as the ranking counts them)."""
    x, y, w, h = crop if crop is not None else (0, 0, kf.width, kf.height)
    kept = []
    for i, f in enumerate(kf.faces):
        ix = max(0.0, min(f.x + f.w, x + w) - max(f.x, x))
        iy = max(0.0, min(f.y + f.h, y + h) - max(f.y, y))
        if f.area > 0 and ix * iy >= 0.6 * f.area:
            kept.append(i)
    return kept


def lead_character(keyframes: Sequence[KeyFrame]) -> str | None:
    """The character seen most often across a run's key frames (its protagonist), if faces were clustered."""
    seen = Counter(p.character for kf in keyframes for p in kf.people if p.character)
    return seen.most_common(1)[0][0] if seen else None


def artwork_facts(kf: KeyFrame, crop: tuple[int, int, int, int] | None, aspect: str, rgb, *, grade_amount: float = 1.0,
                  titled: bool = False, generated: float = 0.0, lead: str | None = None,
                  clip: Sequence[float] | None = None) -> dict[str, float]:
    """The facts (:data:`genart.bandit.preferences.FACTS`) of an artwork cut from ``kf`` at ``crop``,
    from what the frames stage found in the key frame and the artwork's own pixels (``rgb``)."""
    from genart import imaging
    from genart.rank.features import face_presence

    kept = _kept_faces(kf, crop)
    n = len(kept)
    facts: dict[str, float] = {"face": float(n > 0), "close_up": face_presence(kf, crop), "two_shot": float(n == 2),
                               "group": float(n >= 3)}
    expr = [kf.people[i].expression for i in kept if i < len(kf.people) and kf.people[i].expression is not None]
    if expr:
        facts["expressive"] = float(max(expr))
    if lead is not None and kept:
        largest = max(kept, key=lambda i: kf.faces[i].area)
        who = kf.people[largest].character if largest < len(kf.people) else None
        facts["protagonist"] = float(who == lead)
    stats = imaging.features(rgb)
    facts["dark"] = 1.0 - stats["brightness"]
    facts["saturated"] = stats["saturation"]
    facts["warm"] = stats["warmth"]
    x, y, w, h = crop if crop is not None else (0, 0, kf.width, kf.height)
    covered = 0.0
    for r in kf.regions:
        b = r.box
        covered += max(0.0, min(b.x + b.w, x + w) - max(b.x, x)) * max(0.0, min(b.y + b.h, y + h) - max(b.y, y))
    facts["text"] = float(min(1.0, covered / max(1.0, w * h)))
    facts["title"] = float(titled)
    try:
        aw, ah = (float(v) for v in aspect.split(":"))
    except ValueError:
        aw = ah = 1.0
    facts["portrait"] = float(ah > aw * 1.05)
    facts["square"] = float(abs(aw - ah) <= 0.05 * max(aw, ah))
    facts["strong_grade"] = float(grade_amount)
    facts["generated"] = float(generated)
    for j, v in enumerate(clip or ()):
        facts[f"clip_{j + 1}"] = float(v)
    return facts


def _clip_facts(store: "Store", variants: Sequence[Variant], dims: int = 4) -> dict[str, list[float]]:
    """A fixed projection of each variant's CLIP image embedding (where the ranking stored one), so
    the same direction means the same on every title scored by that model."""
    import numpy as np
    from sqlalchemy import select

    from genart.imaging import load_rgb
    from genart.rank.embed import image_key
    from genart.store.embedding_tables import EmbeddingRow

    keys: dict[str, str] = {}
    for v in variants:
        if v.path is not None and Path(v.path).is_file():
            with load_rgb(v.path) as im:
                keys[v.id] = image_key(im)
    if not keys:
        return {}
    with store.session() as s:
        rows = list(s.scalars(select(EmbeddingRow).where(EmbeddingRow.image_key.in_(list(set(keys.values()))))))
    if not rows:
        return {}
    fp = Counter(r.fingerprint for r in rows).most_common(1)[0][0]
    vecs = {r.image_key: np.frombuffer(r.vector, dtype="<f4").astype(float) for r in rows if r.fingerprint == fp}
    dim = next(iter(vecs.values())).shape[0]
    proj = np.random.default_rng(int(stable_id("clip facts", fp, length=8), 16)).standard_normal((dim, dims))
    proj /= np.linalg.norm(proj, axis=0, keepdims=True)
    out = {}
    for vid, key in keys.items():
        e = vecs.get(key)
        if e is not None and np.linalg.norm(e) > 0:
            z = (e / np.linalg.norm(e)) @ proj * math.sqrt(dim)
            out[vid] = [float(v) for v in np.clip(z / 2.0, -1.0, 1.0)]
    return out


def variant_facts(out: str | Path, run_id: str, variant_ids: Sequence[str] | None = None, *,
                  db: str | None = None) -> dict[str, dict[str, float]]:
    """The facts of a run's variants (all, or ``variant_ids``), measured from the store.

    Raises:
        UnknownRunError: no such run.
    """
    from genart.review import _review_store, load_run

    run = load_run(out, run_id, db=db)  # raises UnknownRunError
    with _review_store(out, db) as store:
        return _variant_facts(store, run_id, variant_ids, keyframes=list(run.keyframes))


def _rgb(path: Path):
    from genart import imaging

    with imaging.load_rgb(path) as im:
        return imaging.to_array(im)


def _variant_facts(store: "Store", run_id: str, variant_ids: Sequence[str] | None,
                   keyframes: Sequence[KeyFrame]) -> dict[str, dict[str, float]]:
    kfs = {k.id: k for k in keyframes}
    wanted = None if variant_ids is None else set(variant_ids)
    variants = [v for v in store.variants(run_id, keyframes=kfs) if wanted is None or v.id in wanted]
    lead = lead_character(keyframes)
    clip = _clip_facts(store, variants)
    out: dict[str, dict[str, float]] = {}
    for v in variants:
        if v.path is None or not Path(v.path).is_file():
            continue
        p = v.params
        titled = p.title_status == "placed" or (p.title_status is None and bool(p.title))
        generated = max(p.synthetic_share, p.strength or 0.0 if p.method != "classic" else 0.0)
        out[v.id] = artwork_facts(v.keyframe, p.crop, p.aspect, _rgb(v.path), grade_amount=grade_strength(p),
                                  titled=titled, generated=generated, lead=lead, clip=clip.get(v.id))
    return out


# --- the preference model over a store ------------------------------------------------------------------
def _observations(tester, reward: "TestConfig | None" = None, exclude: Sequence[str] = ()):
    """Every arm with facts and traffic, from the tests whose reward rule is ``reward``'s."""
    from sqlalchemy import select

    from genart.bandit.preferences import Observation
    from genart.bandit.store import read_txn
    from genart.bandit.types import TestConfig
    from genart.store.bandit_tables import BanditArmRow, BanditTestRow

    with read_txn(tester.engine) as conn:
        tests = {r.test_id: TestConfig.from_json(r.config) for r in conn.execute(select(BanditTestRow))}
        arms = conn.execute(select(BanditArmRow).where(BanditArmRow.facts.is_not(None))).all()
    obs = []
    for a in arms:
        cfg = tests.get(a.test_id)
        if cfg is None or a.test_id in exclude or (reward is not None and cfg.reward != reward.reward):
            continue
        trials = a.impressions if cfg.reward.implicit_zero else a.outcomes
        if trials > 0:
            obs.append(Observation(segment=a.segment, group=a.test_id, facts=json.loads(a.facts), trials=float(trials),
                                   rewards=float(min(a.reward_sum, trials))))
    return obs


def _unit(cfg: "TestConfig | None") -> str:
    if cfg is None or cfg.reward.kind == "click":
        return "CTR"
    return "quality-play rate" if cfg.reward.kind == "threshold" else "watch value"


def preference_model(out: str | Path | None = None, *, db: str | None = None, reward: str = "click",
                     exclude: Sequence[str] = ()) -> "PreferenceModel":
    """The segment preference model fitted on every test of the store whose reward is ``reward``
    (``click``, ``play:N``, ``watch:M``): with no traffic yet, the prior alone.

    Raises:
        InvalidArgumentError: a malformed ``reward``.
    """
    from genart.bandit.preferences import PreferenceModel
    from genart.bandit.settings import test_settings

    cfg = test_settings(reward=reward)
    return PreferenceModel.fit(_observations(_tester(out, db), cfg, exclude), unit=_unit(cfg))


def segment_preferences(out: str | Path | None = None, *, db: str | None = None, reward: str = "click",
                        level: float = 0.95) -> tuple["SegmentTaste", ...]:
    """What each segment responds to, learned from every test of the store (see
    :meth:`genart.bandit.preferences.PreferenceModel.tastes`): per fact and a few combinations,
    percentage points of the rate with a credible interval, and one sentence per segment."""
    return tuple(preference_model(out, db=db, reward=reward).tastes(level=level))


def rerank_for_segments(out: str | Path, run_id: str, segments: Sequence[str], *, db: str | None = None,
                        reward: str = "click") -> dict[str, list[tuple[str, float, float, float]]]:
    """A run's accepted variants ordered for each segment by the preference model's predicted rate:
    per segment, ``(variant id, mean, low, high)`` best first.

    Raises:
        UnknownRunError: no such run.
    """
    from genart.review import load_run

    run = load_run(out, run_id, db=db)
    accepted = {rv.variant.id for _, items in run.ranked for rv in items}
    facts = {k: v for k, v in variant_facts(out, run_id, sorted(accepted), db=db).items()}
    model = preference_model(out, db=db, reward=reward)
    return {seg: model.rank(seg, facts) for seg in segments}


# --- tests from every surface ---------------------------------------------------------------------------
def open_test(out: str | Path, run_id: str, arms: Sequence[Arm], config: "TestConfig", *, db: str | None = None,
              draft: bool = False, approved_by: str | None = None, auto_approve: bool = False,
              origin: str = "api", priors: str = "model") -> "TestInfo":
    """Creates a test from a run's arms: what each arm shows is measured and kept with it, and with
    ``priors="model"`` every arm of a segment the preference model has seen starts from the
    model's prediction (the cold start) instead of the ranking's.

    Raises:
        InvalidArgumentError: a bad ``priors`` and whatever ``Tester.create_test`` raises.
    """
    from genart.errors import InvalidArgumentError
    from genart.review import _review_store, load_run

    if priors not in ("model", "ranking"):
        raise InvalidArgumentError("priors", priors, "model (the segment preference model) or ranking")
    run = load_run(out, run_id, db=db)
    with _review_store(out, db) as store:
        facts = _variant_facts(store, run_id, [a.variant_id for a in arms if a.variant_id], list(run.keyframes))
    arm_facts = {a.arm_id: facts[a.variant_id] for a in arms if a.variant_id in facts}
    if priors == "model" and arms:
        arms = _model_priors(out, db, arms, arm_facts, config, exclude=(arms[0].test_id,))
    tester = _tester(out, db)
    test_id = arms[0].test_id if arms else ""
    if not draft and test_id in tester.tests() and tester.info(test_id).status == "draft":
        # the batch job's draft, waiting for a person: start it with the arms the person approved
        if tester.config(test_id) != config:
            from genart.errors import TestConflictError

            raise TestConflictError(test_id, "other settings (a draft: hand off with its settings, or use a new id)")
        tester.approve(test_id, approved_by or "api", arms=arms, arm_facts=arm_facts)
        return tester.info(test_id)
    tester.create_test(test_id, arms, config, arm_facts=arm_facts, draft=draft,
                       approved_by=approved_by, auto_approve=auto_approve, run_id=run_id, origin=origin)
    return tester.info(test_id)


def _model_priors(out, db, arms: Sequence[Arm], arm_facts: Mapping[str, Mapping[str, float]], config: "TestConfig",
                  exclude: Sequence[str] = (), model: "PreferenceModel | None" = None) -> list[Arm]:
    from genart.bandit.preferences import PreferenceModel

    if model is None:
        model = PreferenceModel.fit(_observations(_tester(out, db), config, exclude), unit=_unit(config))
    out_arms = []
    for a in arms:
        f = arm_facts.get(a.arm_id)
        if a.segment not in model.segments or (f is None and not a.is_control):
            out_arms.append(a)
            continue
        seed = int(stable_id(a.test_id, a.segment, a.arm_id, length=6), 16)
        if f is None:  # the control: what it shows is not measured; the segment's usual rate, held loosely
            base = model.prior(a.segment, model.average_facts(a.segment), seed=seed)
            out_arms.append(replace(a, prior_mean=base.mean, prior_strength=2.0))
            continue
        p = model.prior(a.segment, f, seed=seed)
        out_arms.append(replace(a, prior_mean=p.mean, prior_strength=p.strength))
    return out_arms


def list_tests(out: str | Path | None = None, *, db: str | None = None) -> list["TestInfo"]:
    """Every test of the store: status (draft, running, stopped), who approved it, its traffic."""
    return _tester(out, db).infos()


def stop_test(out: str | Path | None, test_id: str, *, db: str | None = None) -> "TestReport":
    """Stops a test: each segment is served its winner (or best posterior mean) from now on.

    Raises:
        UnknownTestError: no such test.
    """
    return _tester(out, db).stop(test_id)


def approve_test(out: str | Path | None, test_id: str, *, reviewer: str, db: str | None = None) -> "TestInfo":
    """Starts a draft test (the batch job's top-k) on a person's word: the approval is kept in the
    test, and each of its variants still pending review gets an ``approve`` by ``reviewer`` in the
    run's review log.

    Raises:
        UnknownTestError: no such test. InvalidArgumentError: no reviewer name.
        TestNotRunningError: the test was stopped.
    """
    from genart.review import _check_reviewer, record_decision, review_states

    name = _check_reviewer(reviewer)
    tester = _tester(out, db)
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
    from genart.errors import InvalidArgumentError

    tester = _tester(out, db)
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


def title_run(out: str | Path, title_id: str, *, catalog: str | Path | None = None, db: str | None = None) -> str:
    """The run a batch job made for a catalogue title (the newest, when it ran more than once).

    Raises:
        InvalidArgumentError: no such title in the store (the message lists the titles there are).
    """
    from sqlalchemy import select

    from genart.errors import InvalidArgumentError
    from genart.review import _review_store
    from genart.store.batch_tables import BatchTitleRow

    with _review_store(out, db) as store, store.session() as s:
        q = select(BatchTitleRow).where(BatchTitleRow.title_id == title_id)
        if catalog is not None:
            q = q.where(BatchTitleRow.catalog == str(Path(catalog).resolve()))
        rows = list(s.scalars(q.order_by(BatchTitleRow.created_at.desc())))
        if not rows:
            known = sorted(set(s.scalars(select(BatchTitleRow.title_id))))
            raise InvalidArgumentError("title", title_id, "a catalogue title this store ran: " + (", ".join(known)
                                       or "(none: `genart batch CATALOG --out DIR` runs one)"))
        return rows[0].run_id


# --- the loop --------------------------------------------------------------------------------------------
def _segment_profile(arms: Sequence[Arm], segment: str, run_profiles: Sequence[str]) -> str | None:
    made = [a.profile_id for a in arms if a.segment == segment and not a.is_control and a.profile_id]
    if made:
        return Counter(made).most_common(1)[0][0]
    return segment if segment in run_profiles else None


def candidate_settings(run, profile, spec, *, lead: str | None = None) -> list[tuple[object, dict]]:
    """Every generation setting the loop may ask of a run's key frames for a profile, each with the
    facts its artwork is expected to show, measured on a thumbnail made by the classic finishing
    (the framing and grade every preset applies; img2img's own changes are only known after)."""
    import numpy as np
    from PIL import Image

    from genart.bandit.loop import Setting
    from genart.generate.finish import faces_in, finish, regions_in
    from genart.imaging import load_rgb

    classic = spec.kind == "classic"
    grades = GRADE_STEPS if classic else (1.0,)
    strengths: tuple[float | None, ...] = (None,) if classic else tuple(profile.strengths) or (0.4,)
    edits: tuple[str | None, ...] = (None,) if classic else PROMPT_EDITS
    out: list[tuple[object, dict]] = []
    previews = 0
    for kf in run.keyframes:
        if kf.path is None or not Path(kf.path).is_file():
            continue
        with load_rgb(kf.path) as im:
            im = im.convert("RGB")
            scale = PREVIEW_SIDE / max(im.width, 1)
            small = np.asarray(im.resize((PREVIEW_SIDE, max(1, round(im.height * scale))), Image.BILINEAR))
        h, w = small.shape[:2]
        faces, regions = faces_in(kf, w, h), regions_in(kf, w, h)
        choices: list[int | None] = [None] + (list(range(min(3, len(faces)))) if len(faces) >= 2 else [])
        for face in choices:
            use = faces if face is None else [faces[face]]
            who = kf.people[face].character if face is not None and face < len(kf.people) else None
            for aspect in profile.aspects:
                for amount in grades:
                    if previews >= MAX_PREVIEWS:
                        return out
                    previews += 1
                    # the delivery size at the preview's scale, so the framing (and its upscale and fill
                    # limits) is the one the preset's finishing picks at full size
                    dw, dh = spec.finish.size(aspect)
                    done = finish(small, use, aspect, scaled_grade(profile, amount).grade, 1.0,
                                  size=(max(16, round(dw * scale)), max(16, round(dh * scale))), regions=regions,
                                  max_upscale=spec.finish.max_upscale, max_synthetic=spec.finish.max_synthetic)
                    cx, cy, cw, ch = done.framing.crop
                    crop = (int(cx / scale), int(cy / scale), int(cw / scale), int(ch / scale))
                    # the share of the crop outside the frame: filled in (blur-extend, outpainting)
                    inside = max(0, min(cx + cw, w) - max(cx, 0)) * max(0, min(cy + ch, h) - max(cy, 0))
                    filled = 1.0 - inside / float(max(1, cw * ch))
                    for strength in strengths:  # img2img's own changes are unknown until made: same facts
                        for edit in edits:
                            s = Setting(keyframe_id=kf.id, aspect=aspect, grade_amount=amount, face=face,
                                        character=who, strength=strength, prompt_edit=edit or None)
                            out.append((s, artwork_facts(kf, crop, aspect, done.pixels, grade_amount=amount,
                                                         generated=max(filled, strength or 0.0), lead=lead)))
    return out


def _existing_setting_keys(ranked: Sequence[RankedVariant]) -> set[str]:
    """Settings the run has made already (the plain framing of each frame, aspect and grade)."""
    from genart.bandit.loop import Setting

    keys = set()
    for rv in ranked:
        p = rv.variant.params
        keys.add(Setting(keyframe_id=p.keyframe_id, aspect=p.aspect, grade_amount=grade_strength(p),
                         strength=p.strength if p.method != "classic" else None).key)
    return keys


GRADE_MARK = "@"  # a grade scaled by the loop is named "<grade>@<scale>" (kept in the variant's parameters)


def scaled_grade(profile, amount: float):
    """The profile with its grade at ``amount`` times its strength (every grade parameter acts
    linearly in the amount, see ``genart.generate.grade.apply_grade``), under its own version and a
    grade name that says so; the profile itself at 1."""
    if amount == 1.0:
        return profile
    g = profile.grade
    g = replace(g, name=f"{g.name}{GRADE_MARK}{amount:g}", exposure=g.exposure * amount, contrast=g.contrast * amount,
                saturation=g.saturation * amount, warmth=g.warmth * amount, tint=g.tint * amount,
                shadows_tint=tuple(v * amount for v in g.shadows_tint),
                highlights_tint=tuple(v * amount for v in g.highlights_tint), vignette=g.vignette * amount,
                fade=g.fade * amount)
    return replace(profile, grade=g, version=stable_id(profile.version, g.name, length=12))


def grade_strength(params) -> float:
    """How strongly a variant was graded: the generator's amount times the loop's scale of the grade."""
    name = params.grade or ""
    scale = 1.0
    if GRADE_MARK in name:
        try:
            scale = float(name.rsplit(GRADE_MARK, 1)[1])
        except ValueError:
            scale = 1.0
    return float(params.grade_amount) * scale


def _job(setting, kf: KeyFrame, profile, spec, seed: int):
    """(key frame, profile, n, seed, key frame as the generator sees it) for ``review.make_variants``:
    the setting's aspect only, its grade strength, the face it frames (the others left out of the
    generator's view, so the reframing centres that one), and for img2img its strength and prompt."""
    from genart.review import _edited_profile

    seen = kf
    if setting.face is not None and setting.face < len(kf.faces):
        i = setting.face
        seen = replace(kf, faces=(kf.faces[i],), people=(kf.people[i],) if i < len(kf.people) else ())
    prof = scaled_grade(replace(profile, aspects=(setting.aspect,)), setting.grade_amount)
    if spec.kind == "classic":
        return kf, prof, 1, seed, seen  # the first variant of a frame: the plain framing, no random zoom
    prompt = profile.prompt + (f", {setting.prompt_edit}" if setting.prompt_edit else "")
    return kf, _edited_profile(prof, prompt, setting.strength), 1, seed, seen


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

    tester = _tester(out, db)
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
            if wants and blocked is None:
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
    from sqlalchemy import select

    from genart.bandit.loop import arms_key
    from genart.bandit.store import read_txn
    from genart.store.bandit_tables import BanditCandidateRow, BanditTriggerRow

    key = arms_key([a.arm_id for a in seg.arms])
    impressions = sum(a.impressions for a in seg.arms)
    with read_txn(tester.engine) as conn:
        if conn.execute(select(BanditCandidateRow.candidate_id).where(
                BanditCandidateRow.test_id == test_id, BanditCandidateRow.segment == seg.segment,
                BanditCandidateRow.status.in_(("proposed", "queued"))).limit(1)).first() is not None:
            return "waiting: proposed variants wait for review"
        if conn.execute(select(BanditTriggerRow.trigger_id).where(
                BanditTriggerRow.test_id == test_id, BanditTriggerRow.segment == seg.segment,
                BanditTriggerRow.arms_key == key)).first() is not None:
            return "proposed for these arms already"
        last = conn.execute(select(BanditTriggerRow.evidence).where(
            BanditTriggerRow.test_id == test_id, BanditTriggerRow.segment == seg.segment)
            .order_by(BanditTriggerRow.t.desc()).limit(1)).first()
    if last is not None:
        since = impressions - json.loads(last[0])["impressions"]
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
            from genart.review import load_run

            self._run = load_run(self.out, self.run_id, db=self.db)
        return self._run

    @property
    def spec(self):
        if self._spec is None:
            from genart.config import load_models_config

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
        from sqlalchemy import select

        from genart.bandit.store import read_txn
        from genart.profiles import get_profiles
        from genart.store.bandit_tables import BanditCandidateRow

        pid = self.profile_id(segment)
        if pid is None:
            return None
        if pid not in self._candidates:
            profile = get_profiles([pid])[0]
            self._candidates[pid] = candidate_settings(self.run, profile, self.spec, lead=lead_character(self.run.keyframes))
        with read_txn(self.tester.engine) as conn:
            tried = {r[0] for r in conn.execute(select(BanditCandidateRow.setting_key)
                                                .where(BanditCandidateRow.test_id == self.test_id))}
        exclude = sorted(tried | _existing_setting_keys(self.pool(pid)))
        return self.model, self._candidates[pid], exclude


def _trigger(ctx: _Context, seg, reason: str, progress) -> "ProposalRecord | None":
    """The trigger and its one proposal for a segment (``_blocked`` said it may), made in one
    transaction under a unique (test, segment, arms) key: two processes make one."""
    import numpy as np
    from sqlalchemy.exc import IntegrityError

    from genart.bandit.loop import arms_key
    from genart.bandit.store import write_txn
    from genart.store.bandit_tables import BanditProposalRow, BanditTriggerRow

    tester, test_id = ctx.tester, ctx.test_id
    key = arms_key([a.arm_id for a in seg.arms])
    trigger_id = stable_id("trigger", test_id, seg.segment, key)
    proposal_id = stable_id("proposal", trigger_id)
    evidence = {"impressions": sum(a.impressions for a in seg.arms),
                "arms": [{"arm_id": a.arm_id, "control": a.is_control, "impressions": a.impressions,
                          "mean": round(a.posterior_mean, 6), "p_beats_control": a.prob_beats_control,
                          "lift": a.lift} for a in seg.arms]}
    now = time.time()
    try:
        with write_txn(tester.engine) as conn:
            conn.execute(BanditTriggerRow.__table__.insert().values(
                trigger_id=trigger_id, test_id=test_id, segment=seg.segment, arms_key=key, t=now, reason=reason,
                evidence=json.dumps(evidence)))
            conn.execute(BanditProposalRow.__table__.insert().values(
                proposal_id=proposal_id, trigger_id=trigger_id, test_id=test_id, segment=seg.segment,
                run_id=ctx.run_id, profile_id=None, status="open", created_at=now))
    except IntegrityError:  # another process triggered the same segment state first
        return None
    try:
        _propose(ctx, seg.segment, proposal_id, np.random.default_rng(int(stable_id(proposal_id, length=12), 16)),
                 progress)
    except Exception as exc:  # the proposal is kept, failed, with why; the trigger does not fire again
        _set_proposal(tester, proposal_id, "failed", f"{type(exc).__name__}: {getattr(exc, 'message', exc)}")
        raise
    return next(p for p in proposals(ctx.out, test_id, db=ctx.db) if p.proposal_id == proposal_id)


def _set_proposal(tester, proposal_id: str, status: str, note: str | None = None, **values) -> None:
    from sqlalchemy import update

    from genart.bandit.store import write_txn
    from genart.store.bandit_tables import BanditProposalRow

    with write_txn(tester.engine) as conn:
        conn.execute(update(BanditProposalRow).where(BanditProposalRow.proposal_id == proposal_id)
                     .values(status=status, note=note, **values))


def _set_candidate(tester, candidate_id: str, status: str, **values) -> None:
    from sqlalchemy import update

    from genart.bandit.store import write_txn
    from genart.store.bandit_tables import BanditCandidateRow

    with write_txn(tester.engine) as conn:
        conn.execute(update(BanditCandidateRow).where(BanditCandidateRow.candidate_id == candidate_id)
                     .values(status=status, updated_at=time.time(), **values))


def _propose(ctx: _Context, segment: str, proposal_id: str, rng: "np.random.Generator", progress) -> None:
    """Thompson over the settings, generation through the one engine, ranking, the review queue."""
    from genart import pipeline
    from genart.bandit.loop import Setting, thompson_settings
    from genart.bandit.store import write_txn
    from genart.profiles import get_profiles
    from genart.review import _append_decision, _review_store, make_variants
    from genart.store.bandit_tables import BanditCandidateRow

    tester, test_id, cfg, run = ctx.tester, ctx.test_id, ctx.cfg, ctx.run
    found = ctx.setup(segment)
    if found is None:
        _set_proposal(tester, proposal_id, "failed", f"no profile of run {ctx.run_id} goes with segment {segment}")
        return
    model, candidates, exclude = found
    profile_id = ctx.profile_id(segment)
    _set_proposal(tester, proposal_id, "open", None, profile_id=profile_id)
    profile = get_profiles([profile_id])[0]
    picks = thompson_settings(model, segment, candidates, cfg.loop_variants, rng, exclude=exclude, group=test_id)
    if not picks:
        _set_proposal(tester, proposal_id, "done", "every setting this run allows was tried already")
        return
    now = time.time()
    rows = [dict(candidate_id=stable_id(proposal_id, p.setting.key), proposal_id=proposal_id, test_id=test_id,
                 segment=segment, setting_key=p.setting.key, setting=p.setting.to_json(), predicted=p.predicted,
                 predicted_low=p.low, predicted_high=p.high, sampled=p.sampled, status="proposed", updated_at=now)
            for p in picks]
    with write_txn(tester.engine) as conn:
        conn.execute(BanditCandidateRow.__table__.insert(), rows)
    pipeline.ensure_weights(ctx.spec)
    stages = pipeline.load_stages(ctx.spec)
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
            words = _setting_words(Setting.from_json(row["setting"]))
            note = (f"proposed by the learning loop for segment {segment} (proposal {proposal_id}): {words}; "
                    f"predicted {_unit(cfg)} {row['predicted']:.2%} ({row['predicted_low']:.2%} to "
                    f"{row['predicted_high']:.2%})")
            _append_decision(store, ctx.run_id, v.id, "proposed", LOOP_REVIEWER, note, None)
            if auto and not rv.needs_review:  # a doubtful safety score waits for a person, auto-approve or not
                _append_decision(store, ctx.run_id, v.id, "approve", AUTO_APPROVER,
                                 f"test {test_id} was started with --auto-approve", None)
            _set_candidate(tester, cid, "queued", variant_id=v.id)


def _reward_text(cfg) -> str:
    from genart.bandit.settings import reward_text

    return reward_text(cfg.reward)


def _setting_words(s) -> str:
    parts = [f"key frame {s.keyframe_id[:8]}", f"aspect {s.aspect}", f"grade x{s.grade_amount:g}"]
    if s.face is not None:
        parts.append(f"framed on face {s.face + 1}" + (f" ({s.character})" if s.character else ""))
    if s.strength is not None:
        parts.append(f"strength {s.strength:g}")
    if s.prompt_edit:
        parts.append(f"prompt + '{s.prompt_edit}'")
    return ", ".join(parts)


def _add_approved(out, db, tester, test_id: str, cfg) -> list[tuple[str, str, str]]:
    """Queued candidates a person approved become arms (priors from the model); rejected ones are
    marked so. Returns (segment, arm id, proposal id) of the arms added."""
    from sqlalchemy import select

    from genart.bandit.store import read_txn
    from genart.review import review_states
    from genart.store.bandit_tables import BanditCandidateRow, BanditProposalRow

    with read_txn(tester.engine) as conn:
        queued = conn.execute(select(BanditCandidateRow, BanditProposalRow.run_id)
                              .join(BanditProposalRow, BanditProposalRow.proposal_id == BanditCandidateRow.proposal_id)
                              .where(BanditCandidateRow.test_id == test_id, BanditCandidateRow.status == "queued")).all()
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
        from genart.review import load_run

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


def _close_done_proposals(tester, test_id: str) -> None:
    from sqlalchemy import select, update

    from genart.bandit.store import write_txn
    from genart.store.bandit_tables import BanditCandidateRow, BanditProposalRow

    with write_txn(tester.engine) as conn:
        open_ids = [r[0] for r in conn.execute(select(BanditProposalRow.proposal_id).where(
            BanditProposalRow.test_id == test_id, BanditProposalRow.status == "open"))]
        for pid in open_ids:
            left = conn.execute(select(BanditCandidateRow.candidate_id).where(
                BanditCandidateRow.proposal_id == pid, BanditCandidateRow.status.in_(("proposed", "queued")))).first()
            if left is None:
                conn.execute(update(BanditProposalRow).where(BanditProposalRow.proposal_id == pid).values(status="done"))


def proposals(out: str | Path | None, test_id: str, *, db: str | None = None) -> list["ProposalRecord"]:
    """Every proposal the loop made for a test, oldest first, with its trigger's reason and each
    candidate's fate (proposed, queued for review, added as an arm, rejected, failed).

    Raises:
        UnknownTestError: no such test.
    """
    from sqlalchemy import select

    from genart.bandit.store import read_txn
    from genart.bandit.types import CandidateRecord, ProposalRecord
    from genart.store.bandit_tables import BanditCandidateRow, BanditProposalRow, BanditTriggerRow

    tester = _tester(out, db)
    tester.info(test_id)
    with read_txn(tester.engine) as conn:
        props = conn.execute(select(BanditProposalRow, BanditTriggerRow.reason)
                             .join(BanditTriggerRow, BanditTriggerRow.trigger_id == BanditProposalRow.trigger_id)
                             .where(BanditProposalRow.test_id == test_id).order_by(BanditProposalRow.created_at)).all()
        cands = conn.execute(select(BanditCandidateRow).where(BanditCandidateRow.test_id == test_id)
                             .order_by(BanditCandidateRow.candidate_id)).all()
    per: dict[str, list] = {}
    for c in cands:
        per.setdefault(c.proposal_id, []).append(CandidateRecord(
            candidate_id=c.candidate_id, setting=c.setting, predicted=c.predicted, predicted_low=c.predicted_low,
            predicted_high=c.predicted_high, status=c.status, variant_id=c.variant_id, arm_id=c.arm_id, note=c.note))
    return [ProposalRecord(proposal_id=p.proposal_id, trigger_id=p.trigger_id, test_id=p.test_id, segment=p.segment,
                           reason=p.reason, created_at=p.created_at, status=p.status, run_id=p.run_id,
                           profile_id=p.profile_id, candidates=tuple(per.get(p.proposal_id, ())), note=p.note)
            for p in props]
