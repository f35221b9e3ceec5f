"""The generation settings the learning loop may ask of a run (key frame, face to frame, aspect, grade
strength, img2img strength, prompt edit), each with the facts its artwork is expected to show, and
how a picked setting becomes a job for ``genart.usecases.regenerate.make_variants``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from genart.types import KeyFrame, RankedVariant
from genart.usecases.choices import _edited_profile
from genart.usecases.facts import artwork_facts, grade_strength, scaled_grade

if TYPE_CHECKING:  # pragma: no cover
    from genart.bandit.loop import Setting

PREVIEW_SIDE = 160  # px: what a candidate setting would show is measured on a thumbnail this wide
PROMPT_EDITS = ("", "an expressive face showing strong emotion", "a close-up on the face",
                "bright vivid colour", "dark low-key moody light")
MAX_PREVIEWS = 300  # thumbnails finished per proposal (a run has at most this many frame x face x aspect x grade)
GRADE_STEPS = (0.65, 1.0, 1.3)  # the grade strengths the loop tries (the classic preset)


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
        with load_rgb(kf.path) as opened:
            im = opened.convert("RGB")
        scale = PREVIEW_SIDE / max(im.width, 1)
        small = np.asarray(im.resize((PREVIEW_SIDE, max(1, round(im.height * scale))), Image.Resampling.BILINEAR))
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


def _job(setting, kf: KeyFrame, profile, spec, seed: int):
    """(key frame, profile, n, seed, key frame as the generator sees it) for ``regenerate.make_variants``:
    the setting's aspect only, its grade strength, the face it frames (the others left out of the
    generator's view, so the reframing centres that one), and for img2img its strength and prompt."""
    seen = kf
    if setting.face is not None and setting.face < len(kf.faces):
        i = setting.face
        seen = replace(kf, faces=(kf.faces[i],), people=(kf.people[i],) if i < len(kf.people) else ())
    prof = scaled_grade(replace(profile, aspects=(setting.aspect,)), setting.grade_amount)
    if spec.kind == "classic":
        return kf, prof, 1, seed, seen  # the first variant of a frame: the plain framing, no random zoom
    prompt = profile.prompt + (f", {setting.prompt_edit}" if setting.prompt_edit else "")
    return kf, _edited_profile(prof, prompt, setting.strength), 1, seed, seen


def setting_words(s: "Setting") -> str:
    """A loop setting in words, as the review log's notes and the bandit commands show it."""
    parts = [f"key frame {s.keyframe_id[:8]}", f"aspect {s.aspect}", f"grade x{s.grade_amount:g}"]
    if s.face is not None:
        parts.append(f"framed on face {s.face + 1}" + (f" ({s.character})" if s.character else ""))
    if s.strength is not None:
        parts.append(f"strength {s.strength:g}")
    if s.prompt_edit:
        parts.append(f"prompt + '{s.prompt_edit}'")
    return ", ".join(parts)
