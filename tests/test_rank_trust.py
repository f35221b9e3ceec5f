"""A ranking a creative team can trust (#15): one displayed order that follows its shown score, every
total explained, gates that fit their evidence, profiles that choose from what the frame shows, and a
quality that sees what a designer sees. Real photos and frames from ../shared/media throughout."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from genart.config import load_models_config
from genart.profiles import get_profiles, load_profiles, parse_profile
from genart.rank.combine import RankOptions, rank_for_profile
from genart.rank.diversity import FeatureEmbedder, diverse_order
from genart.testing.fakes import FixedScorer
from genart.types import Box, FaceFacts, GenerationParams, KeyFrame, Region, ScoreSet, Variant
from tests.media import need_media

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


def photo(name: str, width: int = 512) -> Image.Image:
    path = MEDIA / "images" / name
    need_media(path)
    with Image.open(path) as im:
        im = im.convert("RGB")
    return im.resize((width, max(1, round(width * im.height / im.width))), Image.Resampling.LANCZOS)


def keyframe(name: str, im: Image.Image | None = None, *, people: tuple[FaceFacts, ...] | None = None,
             regions: tuple[Region, ...] = (), scores: dict[str, float] | None = None, detect: bool = True,
             faces_of: Image.Image | None = None) -> KeyFrame:
    """A key frame of a real photo, its faces found by the real detector (on ``faces_of`` when given: the
    same picture before a grade), its other facts set as the frames stage would."""
    from genart.frames.faces import find_faces

    im = im if im is not None else photo(name)
    faces = tuple(f.box for f in find_faces(faces_of if faces_of is not None else im)) if detect else ()
    if people is not None:
        people = tuple(people[i % len(people)] for i in range(len(faces)))
    return KeyFrame(id=name, source=name, t_s=0.0, frame_index=0, shot=0, width=im.width, height=im.height,
                    image=im, faces=faces, people=people or (), regions=regions, scores=ScoreSet.of(scores or {}))


def classic_rankers():
    from genart.pipeline import load_rankers

    spec = load_models_config().preset("classic")
    scorers, options = load_rankers(spec)
    return scorers, options, spec.ranker.fidelity_threshold


def classic_variants(kfs, profile, n: int | None = None, title: str = "The Long Night"):
    from genart.generate.classic import ClassicGenerator

    return ClassicGenerator().generate(kfs, profile, n or len(profile.aspects), seed=0, title=title)


def check_order_and_explanations(rows) -> None:
    """What every ranked list promises: ranks 1..n in the order of a non-increasing rank_score, totals that
    add up, and a note wherever diversity moved a row."""
    ranked = [r for r in rows if r.rejected is None]
    assert [r.rank for r in ranked] == list(range(1, len(ranked) + 1))
    scores = [r.rank_score for r in ranked]
    assert all(s is not None for s in scores)
    assert all(a >= b for a, b in zip(scores, scores[1:])), scores
    by_total = sorted(ranked, key=lambda r: (-r.total, r.variant.id))
    for r in rows:
        assert sum(c.contribution for c in r.explanation) == pytest.approx(r.total, abs=1e-6)
        assert {c.score for c in r.explanation} == set(r.scores)
        weighted = [c for c in r.explanation if c.weight > 0]
        assert sum(c.weight for c in weighted) == pytest.approx(1.0, abs=1e-9)
        assert all(c.contribution == pytest.approx(c.value * c.weight, abs=1e-12) for c in r.explanation)
    for place, r in enumerate(ranked):
        assert r.rank_score <= r.total + 1e-12
        moved = place > by_total.index(r)
        if moved or r.total - r.rank_score >= 5e-4:
            assert r.placed_by and r.placed_by.startswith("diversity: "), (r.rank, r.placed_by)
        if moved:
            assert r.placed_by.endswith(f", moved from #{by_total.index(r) + 1} to #{place + 1}")
        if r.placed_by is None:
            assert r.rank_score == pytest.approx(r.total, abs=5e-4)


# --- one displayed order -------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["classic", "tiny"])
@pytest.mark.slow
def test_rank_score_is_the_order_and_every_total_adds_up(preset):
    """For every preset: real photos reframed, graded and titled for two profiles, ranked by the preset's
    own scorers; the list follows rank_score, every explanation sums to its total."""
    from genart.pipeline import load_rankers

    spec = load_models_config().preset(preset)
    scorers, options = load_rankers(spec)
    kfs = [keyframe(n) for n in ("astronaut.png", "coffee.png", "two_people.jpg", "chelsea.png", "rocket.jpg")]
    for profile in get_profiles(["romance", "thriller"]):
        variants = classic_variants(kfs, profile, n=4)
        rows = rank_for_profile(variants, profile, scorers, fidelity_threshold=spec.ranker.fidelity_threshold,
                                options=options)
        assert len([r for r in rows if r.rejected is None]) >= 10
        check_order_and_explanations(rows)
        if preset == "classic":
            assert {"aesthetic", "legibility", "quality"} <= {c.score for c in rows[0].explanation if c.weight > 0}


def test_a_near_copy_is_moved_with_a_note_and_a_clearly_better_variant_never_below_a_worse_one():
    profile = get_profiles(["romance"])[0]
    astro = photo("astronaut.png", 256)
    ims = {"astro": astro, "astro-copy": astro.rotate(0.5),  # a near-copy (similarity 0.95)
           "astro-zoom": astro.crop((30, 20, 226, 216)).resize((256, 256)),  # the same frame, reframed (0.67)
           "astro-dark": ImageEnhance.Brightness(astro).enhance(0.6),  # nearly a copy (0.87)
           "coffee": photo("coffee.png", 256), "chelsea": photo("chelsea.png", 256), "rocket": photo("rocket.jpg", 256)}
    totals = {"astro": 0.90, "astro-copy": 0.89, "astro-zoom": 0.85, "astro-dark": 0.72, "coffee": 0.70,
              "chelsea": 0.68, "rocket": 0.65}
    variants = [Variant(k, "romance", KeyFrame(id=k, source=k, t_s=0, frame_index=0, shot=0, width=im.width,
                                               height=im.height, image=im),
                        GenerationParams("t", "classic", "romance", "v", k, 0, im.width, im.height, "1:1", "none"),
                        "algorithmicallyEnhanced", image=im) for k, im in ims.items()]
    fixed = FixedScorer({k: {"affinity": t} for k, t in totals.items()})
    rows = rank_for_profile(variants, profile, [fixed], fidelity_threshold=-1.0,
                            options=RankOptions(diversity=FeatureEmbedder(), mmr_lambda=0.6))
    order = [r.variant.id for r in rows]
    check_order_and_explanations(rows)
    # the near-copy of #1 goes below every distinct variant, and says so
    assert order[-1] == "astro-copy"
    copy = rows[-1]
    assert copy.placed_by.startswith("diversity: a near-copy of #1 (similarity 0.9")
    assert copy.placed_by.endswith(", moved from #2 to #7") and copy.rank_score < copy.total
    # the reframe of the same frame is similar but clearly better than the rest: it keeps #2
    assert order[1] == "astro-zoom" and rows[1].placed_by.startswith("diversity: similar to #1")
    # a near-tie is broken for diversity: the darker copy of #1 yields to an unrelated picture 0.02 below it
    assert order.index("coffee") < order.index("astro-dark")
    # never buried: whatever diversity did, a distinct variant is placed above every one more than its margin worse
    placed = diverse_order([totals[k] for k in ims], FeatureEmbedder().embed_images(list(ims.values())), 0.6,
                           FeatureEmbedder.similarity_levels)
    for a, b in itertools.combinations(range(len(order)), 2):
        ra, rb = rows[a], rows[b]
        if rb.variant.id != "astro-copy":
            assert rb.total - ra.total <= placed.margin + 1e-12, (ra.variant.id, rb.variant.id)


def test_diversity_never_buries_a_clearly_better_distinct_variant_on_random_lists():
    rng = np.random.default_rng(7)
    for trial in range(200):
        n = int(rng.integers(2, 30))
        totals = rng.uniform(0.3, 0.9, n) if trial % 2 else 0.6 + rng.normal(0, 0.01, n)
        emb = rng.normal(size=(n, 8)) + (rng.normal(size=8) * rng.uniform(0, 3))
        lam = float(rng.uniform(0.2, 1.0))
        p = diverse_order(totals, emb, lam, (0.4, 0.9), k=None if trial % 3 else int(rng.integers(1, n + 1)))
        assert sorted(p.order) == list(range(n))
        assert all(a >= b for a, b in zip(p.rank_scores, p.rank_scores[1:]))
        for i, j in itertools.combinations(range(n), 2):  # place i above place j
            if not p.near_copy[j]:
                assert totals[p.order[j]] - totals[p.order[i]] <= p.margin + 1e-9


def test_reasons_print_values_at_the_precision_that_makes_them_true():
    from genart.rank.combine import fidelity_reason
    from genart.rank.reasons import pair
    from genart.rank.safety import SafetyScorer

    assert fidelity_reason(0.3498, 0.35) == ("fidelity 0.3498 below the preset's threshold 0.3500: "
                                             "misrepresents the source frame")
    assert fidelity_reason(0.2, 0.35).startswith("fidelity 0.200 below the preset's threshold 0.350")
    assert fidelity_reason(0.35, 0.35) is None
    assert pair(0.80004, 0.8) == ("0.80004", "0.80000") and pair(0.5, 0.5) == ("0.50", "0.50")
    gate = SafetyScorer(None, nsfw=True)
    assert gate.reject(ScoreSet.of({"nsfw": 0.80004, "safety": 0.2})) == \
        "unsafe: nsfw 0.80004 above the preset's threshold 0.80000"
    why = gate.review(ScoreSet.of({"nsfw": 0.2004, "safety": 0.8}))
    assert why.startswith("nsfw 0.2004 is above the review line 0.2000 (not above the rejection line 0.80)")
    assert gate.review(ScoreSet.of({"nsfw": 0.19, "safety": 0.81})) is None


# --- gates that fit their evidence ---------------------------------------------------------------------
HONEST = ("astronaut.png", "obama.jpg", "two_people.jpg", "chelsea.png", "coffee.png", "camera.png")


@pytest.mark.slow
def test_titled_and_padded_honest_variants_of_real_frames_pass_fidelity():
    """Graded, reframed (padded where the crop leaves the frame), zoomed and titled variants of real photos, in
    every aspect, for the darkest grade (horror's, which was rejected most) and a 9:16 profile: the pixels
    genart did not add still show the frame."""
    from genart.rank.features import FeatureScorer, structural_fidelity, synthetic_share

    scorers, options, threshold = classic_rankers()
    fidelity = FeatureScorer()
    masked, unmasked, padded = [], [], 0
    for name in HONEST:
        kf = keyframe(name)
        # finishing pads only when the subject is a little wider than the frame's window at the aspect: two
        # heads side by side, 3% wider than a full-height 2:3 window, make each 2:3 variant reach past the frame
        w, fh = 1.03 * kf.height * 2 / 3, 0.3 * kf.height
        wide = replace(kf, id=f"{name}-wide", faces=(Box((kf.width - w) / 2, 0.2 * kf.height, w, fh),), people=())
        for profile in get_profiles(["horror", "romance-ja"]):  # 16:9, 2:3, 1:1 and 9:16
            for v in classic_variants([kf, wide], profile, n=2 * len(profile.aspects)):
                s = fidelity.score([v], profile)[0]["fidelity"]
                assert s >= threshold, (name, profile.id, v.params.aspect, v.params.title_status, s)
                padded += synthetic_share(v) > 0.02
                if v.params.title_box is not None:
                    masked.append(s)
                    src = np.asarray(v.keyframe.image)
                    unmasked.append(structural_fidelity(np.asarray(v.image), src, v.params.crop))
    assert padded >= 5 and len(masked) >= 40
    assert min(masked) > 0.9  # a grade, a title and a fill of the true frame: close to 1
    assert min(unmasked) < 0.7  # what the title alone cost before it was masked


@pytest.mark.slow
def test_a_variant_made_from_another_titles_frame_fails_fidelity():
    from genart.rank.features import FeatureScorer

    threshold = load_models_config().preset("classic").ranker.fidelity_threshold
    profile = get_profiles(["romance"])[0]
    kfs = {n: keyframe(n) for n in HONEST}
    made = {n: classic_variants([kfs[n]], profile, n=3) for n in HONEST}
    for a, b in itertools.permutations(HONEST, 2):
        claimed = [replace(v, id=f"{v.id}-as-{b}", keyframe=kfs[b], params=replace(v.params, keyframe_id=b))
                   for v in made[a]]
        for row in rank_for_profile(claimed, profile, [FeatureScorer()], fidelity_threshold=threshold):
            assert row.rank is None and "misrepresents the source frame" in (row.rejected or ""), (a, b, row.scores)


@pytest.mark.slow
def test_clip_fidelity_compares_the_frame_without_its_title_plate():
    from genart.rank.clip import ClipScorer
    from genart.testing.fakes import FakeEmbedder

    profile = get_profiles(["romance"])[0]
    kf = keyframe("astronaut.png")
    # the square variant of a square frame: a crop of (nearly) all of it, so the embedding is compared with the
    # same picture and only the title plate differs
    v = next(v for v in classic_variants([kf], profile, n=3) if v.params.title_box is not None and v.params.aspect == "1:1")
    assert v.params.crop[2] >= 0.9 * kf.width
    # a heavy plate (solid black over the title's box: romance's own treatment is a light shadow)
    x, y, w, h = (int(round(c)) for c in v.params.title_box)
    plated = np.asarray(v.image).copy()
    plated[y:y + h, x:x + w] = 0
    v = replace(v, image=Image.fromarray(plated))
    bare = replace(v, id="no-box", params=replace(v.params, title_box=None))
    s = ClipScorer(FakeEmbedder()).score([v, bare], profile)
    assert s[0]["fidelity"] > s[1]["fidelity"]  # the plate no longer counts against it
    assert s[0]["affinity"] == pytest.approx(s[1]["affinity"])  # affinity still sees the whole picture


def _innocent_variants():
    """Every profile and aspect over every picture in ../shared/media: the stills and key frames of each video."""
    from genart.frames import extract_keyframes

    media = MEDIA
    need_media(media)
    kfs = [keyframe(p.name, detect=False) for p in sorted((media / "images").iterdir())
           if p.suffix.lower() in (".png", ".jpg", ".jpeg")]
    for video in sorted((media / "videos").iterdir()):
        kfs += extract_keyframes(video, max_frames=3)
    out = []
    for profile in load_profiles().values():
        out += classic_variants(kfs, profile, title="Night Train")
    return out


@pytest.mark.slow
def test_the_known_innocent_set_has_no_safety_rejections():
    from genart.rank.safety import SafetyScorer

    variants = _innocent_variants()
    profiles = load_profiles()
    assert len({v.params.aspect for v in variants}) >= 4 and len({v.profile_id for v in variants}) == len(profiles)
    gate = SafetyScorer(None, nsfw=True)  # the preset's lines: reject above 0.8, review above 0.2
    scores = gate.score(variants, profiles["drama"])
    rejected = [(v.profile_id, v.keyframe.id, v.params.aspect, s["nsfw"]) for v, s in zip(variants, scores) if gate.reject(s)]
    assert rejected == []
    assert max(s["nsfw"] for s in scores) < 0.8


@pytest.mark.slow
def test_a_doubtful_variant_is_kept_marked_for_review_and_held_from_tests_until_approved(tmp_path, monkeypatch):
    """The flagged band end to end: a preset whose review line sits low enough that real variants fall in it;
    they stay ranked with needs_review (stored, and read back as the app reads a run), the automatic
    hand-off leaves them out, and the reviewed hand-off sends one only after a person approved it."""
    import yaml

    from genart import api
    from genart.bandit.handoff import handoff
    from genart.errors import ReviewError
    from genart.usecases.handoff import handoff_to_test
    from genart.usecases.review import record_decision

    models = yaml.safe_load(Path(load_models_config().path).read_text())
    classic = models["presets"]["classic"]
    classic["ranker"]["safety"] = {"nsfw_threshold": 0.8, "nsfw_review": 0.0}  # every real score is above 0
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(models))
    monkeypatch.setenv("GENART_MODELS", str(path))
    stills = tmp_path / "stills"
    stills.mkdir()
    for n in ("obama.jpg", "coffee.png"):
        photo(n).save(stills / n.replace(".jpg", ".png"))
    result = api.create_variants(stills, ["romance"], preset="classic", frames=2, variants_per_frame=3,
                                 out=tmp_path / "runs")
    rows = result["romance"]
    assert rows and all(r.rank is not None and r.needs_review for r in rows)
    assert rows[0].needs_review.startswith("nsfw ") and "review line 0.0" in rows[0].needs_review
    back = api.load_run(tmp_path / "runs", result.run_id)["romance"]  # what the review app reads
    assert [(r.variant.id, r.needs_review) for r in back] == [(r.variant.id, r.needs_review) for r in rows]
    with pytest.raises(Exception, match="held back: marked needs_review"):
        handoff(back, "auto", ["romance"], top_k=3)  # the batch job's automatic hand-off
    with pytest.raises(ReviewError):
        handoff_to_test(tmp_path / "runs", result.run_id, reviewer="ana")  # nothing approved
    record_decision(tmp_path / "runs", result.run_id, back[1].variant.id, "approve", "ana")
    record = handoff_to_test(tmp_path / "runs", result.run_id, reviewer="ana", include_control=False)
    assert [a.variant_id for a in record.arms] == [back[1].variant.id]


def _video_frame(name: str, t_s: float) -> Image.Image:
    """The frame of a real clip ``t_s`` seconds after its first (decoded with PyAV; the frames stage's
    times count from the first frame too, whatever the stream's start time)."""
    import av

    path = MEDIA / "videos" / name
    need_media(path)
    with av.open(str(path)) as container:
        start = None
        for frame in container.decode(video=0):
            if frame.time is None:
                continue
            start = frame.time if start is None else start
            if frame.time - start >= t_s:
                return frame.to_image().convert("RGB")
    raise AssertionError(f"{name} has no frame at {t_s} s")


@pytest.mark.slow
def test_open_nsfws_doubtful_band_is_flagged_not_rejected_on_an_innocent_close_up():
    """The issue's case: an innocent close-up of a man's profile (the White House clip at 1 s) whose grades,
    crops and blurred fill lift Open-NSFW into its uncertain band (which crop lands where is the classifier's
    whim: it moves 0.3 to 0.8 with a few pixels of framing). With the preset's lines every variant, for
    every profile and aspect, is kept; those in the band are flagged for a person, with the score and line."""
    from genart.rank.safety import SafetyScorer

    im = _video_frame("whitehouse_poetry_jam_2009_short.mp4", 1.0)
    # framed both ways finishing may frame it: on the faces the detector finds (the profile close-up is not
    # one of them; a dim face in the audience is) and, with no faces, on the picture's saliency (the profile)
    kfs = [keyframe("whitehouse-1s", im), keyframe("whitehouse-1s-salient", im, detect=False)]
    spec = load_models_config().preset("classic").ranker.safety
    gate = SafetyScorer(None, nsfw=True, nsfw_threshold=spec.nsfw_threshold, nsfw_review=spec.nsfw_review)
    variants = [v for kf in kfs for p in load_profiles().values()
                for v in classic_variants([kf], p, n=2 * len(p.aspects), title="Poetry Jam")]
    scores = gate.score(variants, get_profiles(["drama"])[0])
    assert all(gate.reject(s) is None for s in scores) and max(s["nsfw"] for s in scores) <= 0.8
    flagged = [s for s in scores if gate.review(s)]
    assert len(flagged) >= 5 and all(0.2 < s["nsfw"] <= 0.8 for s in flagged)
    assert all(gate.review(s).startswith("nsfw 0.") and "is above the review line 0.20" in gate.review(s) for s in flagged)
    assert all(s["nsfw"] <= 0.2 for s in scores if not gate.review(s))


def test_classic_declares_no_check_it_cannot_run():
    from genart.config import parse_models_yaml
    from genart.errors import ConfigError

    spec = load_models_config().preset("classic")
    assert spec.ranker.safety.zero_shot is False and spec.ranker.safety.nsfw_threshold == 0.8
    assert load_models_config().preset("turbo").ranker.safety.zero_shot is True
    with pytest.raises(ConfigError, match="zero_shot"):
        parse_models_yaml("default_preset: x\npresets:\n  x:\n    kind: classic\n    ranker:\n      method: features\n"
                          "      safety: {zero_shot: true}\n")


# --- profiles that choose differently, from what the frame shows ----------------------------------------
def _night(im: Image.Image) -> Image.Image:
    """A real frame graded to night: dark and cold, as a thriller's interior at night reads."""
    arr = np.asarray(im).astype(np.float32) * np.array([0.42, 0.5, 0.6])
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _group() -> Image.Image:
    """Three real portraits side by side at one height: a bright group of three faces."""
    tiles = [photo(n, 300) for n in ("obama.jpg", "biden.jpg", "astronaut.png")]
    h = min(t.height for t in tiles)
    tiles = [t.crop((0, 0, t.width, h)) for t in tiles]
    out = Image.new("RGB", (sum(t.width for t in tiles), h))
    x = 0
    for t in tiles:
        out.paste(t, (x, 0))
        x += t.width
    return ImageEnhance.Brightness(out).enhance(1.15)


@pytest.mark.slow
def test_each_profile_leads_with_what_its_audience_wants():
    """One title, four key frames of real pictures: a two-shot, an expressive close-up, a dark frame with one
    face and a screen, a bright group. Each profile's #1 is its audience's frame: romance the two-shot, comedy
    the expressive face, thriller the tension, family the group."""
    calm = FaceFacts(confidence=0.95, eyes_open=0.9, expression=0.3, frontal=0.9)
    big = FaceFacts(confidence=0.95, eyes_open=1.0, expression=0.95, frontal=1.0)
    two = keyframe("two_people.jpg", people=(calm,))
    expressive = keyframe("astronaut.png", people=(big,))
    screen = Region(Box(280, 50, 200, 150), kind="screen")  # the frames stage's text/screen detector's finding
    dark = keyframe("camera.png", _night(photo("camera.png")), faces_of=photo("camera.png"), people=(calm,),
                    regions=(screen,))
    group = keyframe("group", _group(), people=(calm,))
    assert len(two.faces) == 2 and len(expressive.faces) == 1 and len(dark.faces) == 1 and len(group.faces) == 3
    kfs = [two, expressive, dark, group]
    scorers, options, threshold = classic_rankers()
    want = {"romance": two.id, "comedy": expressive.id, "thriller": dark.id, "family": group.id}
    firsts = {}
    for profile in get_profiles(list(want)):
        rows = rank_for_profile(classic_variants(kfs, profile, n=3), profile, scorers, fidelity_threshold=threshold,
                                options=options)
        firsts[profile.id] = rows[0].variant.keyframe.id
    assert firsts == want


@pytest.mark.slow
def test_affinity_uses_what_is_measured_and_degrades_gracefully_without_face_facts():
    from genart.rank.features import FeatureScorer, content

    profile = get_profiles(["comedy"])[0]
    kf = keyframe("astronaut.png")
    v = classic_variants([kf], profile, n=3)[2]  # 1:1
    bare = FeatureScorer().matches(v, profile)
    assert "expression" not in bare and "eyes_open" not in bare and "face_size" in bare  # not measured: left out
    facts = replace(v, keyframe=replace(kf, people=(FaceFacts(eyes_open=1.0, expression=0.95),)))
    dull = replace(v, keyframe=replace(kf, people=(FaceFacts(eyes_open=0.1, expression=0.05),)))
    s = FeatureScorer()
    assert s.matches(facts, profile)["expression"] > 0.9 and s.matches(dull, profile)["expression"] < 0.2
    assert s.score([facts], profile)[0]["affinity"] > s.score([v], profile)[0]["affinity"] > \
        s.score([dull], profile)[0]["affinity"]
    # a false face (low confidence after the frames stage's checks) counts for little
    sure = content(facts)
    doubtful = content(replace(facts, keyframe=replace(kf, people=(FaceFacts(confidence=0.1),))))
    assert doubtful["people"] == pytest.approx(0.1) and doubtful["face_size"] < 0.2 * sure["face_size"]
    # a screen counts only where the frames stage looked for text regions
    assert content(v)["screen"] is None
    screen = replace(v, keyframe=replace(kf, regions=(Region(Box(0, 0, 200, 150), kind="screen"),)))
    assert content(screen)["screen"] == 1.0
    assert FeatureScorer().matches(screen, get_profiles(["thriller"])[0])["screen"] == 1.0


def test_profiles_validate_their_wants(tmp_path):
    from genart.errors import ProfileValidationError

    text = (Path(load_models_config().path).parent / "prompts" / "romance.yaml").read_text()
    p = parse_profile(text, tmp_path / "romance.yaml")
    assert p.wants.people == (1, 2) and p.wants.weights["two_shot"] == 3.0 and p.title_style.required_for == ("16:9", "2:3")
    for bad, field in (("wants: {people: [3, 1]}", "wants.people"), ("wants: {weights: {charm: 1}}", "wants.weights"),
                       ("ranking: {mmr_lambda: 0}", "ranking.mmr_lambda"),
                       ("title_style: {required_for: ['5:4']}", "title_style.required_for")):
        with pytest.raises(ProfileValidationError) as err:
            parse_profile(text + bad + "\n", tmp_path / "romance.yaml")
        assert field in str(err.value) and re.search(r"romance\.yaml:\d+:", str(err.value))
    assert all(sum(p.wants.weights.as_dict().values()) > 1 for p in load_profiles().values())  # every profile says


# --- quality sees what a designer sees ------------------------------------------------------------------
@pytest.mark.slow
def test_quality_falls_with_enlargement_fill_burned_in_text_and_transitions():
    from genart.rank.features import TechnicalScorer

    profile = get_profiles(["drama"])[0]
    kf = keyframe("chelsea.png", detect=False)
    v = classic_variants([kf], profile, n=3, title="")[2]
    # finishing delivers a 512 px photo enlarged (recorded in params.upscale): the base here is the same
    # picture as if its crop had been delivered at its own size, so the enlargement below is the only one
    x, y, cw, ch = v.params.crop
    v = replace(v, params=replace(v.params, upscale=1.0, width=cw, height=ch))
    q = TechnicalScorer()

    def quality(x):
        return q.score([x], profile)[0]["quality"]

    base = quality(v)
    up = replace(v, params=replace(v.params, upscale=2.5))
    fill = replace(v, params=replace(v.params, synthetic_share=0.35, reframe="blur-extend"))
    text = replace(v, keyframe=replace(kf, regions=(Region(Box(0, 0, kf.width, 0.2 * kf.height), kind="subtitle"),)))
    fade = replace(v, keyframe=replace(kf, scores=ScoreSet.of({"transition": 0.8})))
    assert quality(replace(v, params=replace(v.params, upscale=1.4))) == pytest.approx(base)  # unseen below 1.5x
    for worse in (up, fill, text, fade):
        assert quality(worse) < 0.85 * base


@pytest.mark.slow
def test_an_untitled_variant_of_an_aspect_that_needs_a_title_does_not_compete():
    profile = get_profiles(["romance"])[0]
    kf = keyframe("coffee.png", detect=False)
    variants = classic_variants([kf], profile, n=3)
    skipped = [replace(v, id=f"{v.id}-untitled", params=replace(v.params, title_status="skipped", title_box=None,
                                                                title_reason="no clear zone"))
               for v in variants]
    table = {v.id: {"affinity": 0.9} for v in skipped} | {v.id: {"affinity": 0.5} for v in variants}
    rows = rank_for_profile(variants + skipped, profile, [FixedScorer(table)], fidelity_threshold=-1.0)
    out = {r.variant.id: r for r in rows}
    for v in skipped:
        r = out[v.id]
        if v.params.aspect in ("16:9", "2:3"):
            assert r.rank is None and r.rejected.startswith(f"untitled: {v.params.aspect} artwork for romance")
            assert "no clear zone" in r.rejected
        else:
            assert r.rank == 1  # a square may go untitled
    loose = replace(profile, title_style=replace(profile.title_style, required_for=()))
    assert all(r.rejected is None for r in rank_for_profile(variants + skipped, loose, [FixedScorer(table)],
                                                            fidelity_threshold=-1.0))


# --- classic's aesthetic score: BRISQUE ------------------------------------------------------------------
@pytest.mark.slow
def test_brisque_scores_clean_pictures_above_blurred_noisy_and_enlarged_ones():
    import cv2

    from genart.rank.aesthetic import BrisqueScorer

    scorer = BrisqueScorer()
    profile = get_profiles(["drama"])[0]
    for name in ("astronaut.png", "coffee.png", "two_people.jpg"):
        im = np.asarray(photo(name, 512))
        small = cv2.resize(im, (im.shape[1] // 3, im.shape[0] // 3), interpolation=cv2.INTER_AREA)
        damaged = {"blur": cv2.GaussianBlur(im, (0, 0), 3),
                   "noise": np.clip(im + np.random.default_rng(0).normal(0, 20, im.shape), 0, 255).astype(np.uint8),
                   "upscaled": cv2.resize(small, (im.shape[1], im.shape[0]), interpolation=cv2.INTER_CUBIC)}
        pics = [im] + list(damaged.values())
        vs = [Variant(f"{name}{i}", "drama", keyframe(name, detect=False),
                      GenerationParams("t", "classic", "drama", "v", name, 0, 512, 512, "1:1", "none"),
                      "algorithmicallyEnhanced", image=Image.fromarray(p)) for i, p in enumerate(pics)]
        clean, *worse = [s["aesthetic"] for s in scorer.score(vs, profile)]
        assert clean > 0.75 and all(w < clean - 0.2 for w in worse), (name, clean, worse)


def test_brisque_says_how_to_get_its_model_files(tmp_path):
    from genart.errors import ModelLoadError
    from genart.rank.aesthetic import BrisqueScorer

    with pytest.raises(ModelLoadError, match="opencv-data"):
        BrisqueScorer(tmp_path)


from genart.testing.contracts import ScorerContract  # noqa: E402


class TestBrisqueContract(ScorerContract):
    def make_scorer(self):
        from genart.rank.aesthetic import BrisqueScorer

        return BrisqueScorer()

    def make_variants(self):
        out = []
        for n in ("astronaut.png", "coffee.png", "rocket.jpg"):
            kf = keyframe(n, detect=False)
            out.append(Variant(n, "drama", kf, GenerationParams("t", "classic", "drama", "v", n, 0, kf.width, kf.height,
                                                                "x", "none"), "algorithmicallyEnhanced", image=kf.image))
        return out

    def make_profile(self):
        return get_profiles(["drama"])[0]
