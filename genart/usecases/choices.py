"""A run's creative choices: the profile edited by prompt, strength, look, aspects and title position,
and the choices kept beside the run so a regeneration makes its variant the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from genart.types import Grade, RunResult, TasteProfile, stable_id
from genart.errors import InvalidArgumentError


def _check_prompt(prompt: str) -> str:
    text = " ".join(str(prompt).split())
    if not text:
        raise InvalidArgumentError("prompt", prompt, "some text")
    try:
        text.format(title="t", genre="g", subject="s")
    except (KeyError, IndexError, ValueError):
        raise InvalidArgumentError("prompt", prompt, "text whose only {placeholders} are {title}, {genre} and "
                                   "{subject} (write {{ and }} for literal braces)") from None
    return text


TITLE_POSITIONS = ("auto", "bottom", "top")


def list_grades() -> dict[str, Grade]:
    """Every colour look the profiles define, by name (``classic`` and finishing grade with these)."""
    from genart.profiles import load_profiles

    grades: dict[str, Grade] = {}
    for _, p in sorted(load_profiles().items()):
        grades.setdefault(p.grade.name, p.grade)
    return grades


def _scaled_grade(grade: Grade, amount: float) -> Grade:
    """``grade`` at ``amount`` of its strength. Every adjustment of ``apply_grade`` is linear in its amount,
    so scaling the look's fields is exactly grading at that amount, and the generators' own variation of
    the amount (classic's ladder) still applies on top."""
    from dataclasses import fields, replace

    changes: dict[str, Any] = {}
    for f in fields(grade):
        value = getattr(grade, f.name)
        if isinstance(value, tuple):
            changes[f.name] = tuple(float(v) * amount for v in value)
        elif isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
            changes[f.name] = float(value) * amount
    return replace(grade, name=f"{grade.name} {amount * 100:.0f}%", **changes)


def _edited_profile(profile: TasteProfile, prompt: str | None = None, strength: float | None = None, *,
                    grade: str | None = None, grade_amount: float | None = None,
                    aspects: Sequence[str] | None = None, title_position: str | None = None) -> TasteProfile:
    """A profile with this run's creative choices; any change gives it its own version (the manifest and
    every variant's provenance then say the stock profile was not what made them).

    Args:
        prompt: the prompt template (diffusion presets).
        strength: one img2img strength in (0, 1] instead of the profile's list (diffusion presets).
        grade: another profile's look by name, ``"none"`` for no grade, None for the profile's own.
        grade_amount: the look's strength, 0 to 2 (1 = as designed).
        aspects: the aspect ratios to make, cycled per key frame, instead of the profile's.
        title_position: where the title goes: ``auto`` (the profile's style: the quietest free place),
            ``bottom`` or ``top`` (that edge whenever faces, text and the subject leave it free).

    Raises:
        InvalidArgumentError: an unknown grade, aspect or position, an amount or strength out of range.
    """
    from dataclasses import replace

    from genart.profiles import ASPECTS

    changes: dict[str, Any] = {}
    if prompt is not None and prompt != profile.prompt:
        changes["prompt"] = prompt
    if strength is not None:
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 < float(strength) <= 1.0:
            raise InvalidArgumentError("strength", strength, "a number in (0, 1]")
        changes["strengths"] = (float(strength),)
    look = profile.grade
    if grade is not None and grade != "" and grade != profile.grade.name:
        known = list_grades()
        if grade == "none":
            look = Grade(name="none")
        elif grade in known:
            look = known[grade]
        else:
            raise InvalidArgumentError("grade", grade, "none, or one of the profiles' looks: " + ", ".join(known))
    if grade_amount is not None:
        if isinstance(grade_amount, bool) or not isinstance(grade_amount, (int, float)) \
                or not 0.0 <= float(grade_amount) <= 2.0:
            raise InvalidArgumentError("grade amount", grade_amount, "a number from 0 to 2 (1 = the look as designed)")
        if float(grade_amount) != 1.0 and look.name != "none":
            look = _scaled_grade(look, float(grade_amount))
    if look != profile.grade:
        changes["grade"] = look
    if aspects:
        chosen = tuple(dict.fromkeys(str(a) for a in aspects))
        for a in chosen:
            if a not in ASPECTS:
                raise InvalidArgumentError("aspect ratio", a, "one of " + ", ".join(ASPECTS))
        if chosen != profile.aspects:
            changes["aspects"] = chosen
    if title_position is not None and title_position != profile.title_style.position:
        if title_position not in TITLE_POSITIONS:
            raise InvalidArgumentError("title position", title_position, "one of " + ", ".join(TITLE_POSITIONS))
        changes["title_style"] = replace(profile.title_style, position=title_position)
    if not changes:
        return profile
    what = {k: (v.__dict__ if hasattr(v, "__dataclass_fields__") else v) for k, v in sorted(changes.items())}
    return replace(profile, **changes, version=stable_id(profile.version, what, length=12))


CHOICES_FILE = "choices.json"


def _write_json(path: Path, data: object) -> None:
    import json

    from genart.files import write_text

    write_text(path, json.dumps(data, indent=2))


def _run_choices(run: RunResult) -> dict[str, object]:
    """The creative choices a run was made with (``create_run_from_stage``); {} for runs made elsewhere."""
    import json

    path = run.out_dir / CHOICES_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
