"""Taste profiles: ``prompts/<id>.yaml``, validated with pydantic, versioned by the hash of the file.

A creative team adds a profile by adding a file; ``genart profiles validate PATH`` checks it without
running anything. Errors name the file, the field and the line.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from genart._yaml import explain_validation_error, parse_mapping
from genart.config import prompts_dir
from genart.errors import InvalidArgumentError, ProfileValidationError, UnknownProfileError
from genart.types import WANT_TERMS, Grade, ScoreSet, TasteProfile, TitleStyle, VisualTargets, Wants

ASPECTS = ("16:9", "2:3", "1:1", "9:16", "4:3", "3:4", "4:5", "21:9")
SCORE_NAMES = ("affinity", "fidelity", "quality", "aesthetic", "safety", "legibility", "faces")
LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"  # a BCP 47 language tag: ja, ja-JP, zh-Hant-TW


@lru_cache(maxsize=1)
def _languages() -> frozenset[str]:
    """Language codes the C library knows locales for (Python's own table, ``locale.locale_alias``):
    every widely used language is there, a made-up code such as ``xx`` is not."""
    import locale
    import re

    codes = (re.split(r"[_.@]", key)[0] for key in locale.locale_alias)
    return frozenset(c for c in codes if re.fullmatch(r"[a-z]{2,3}", c))


def check_locale(tag: str, name: str = "locale") -> str:
    """``tag`` if it is a language tag genart can use (``ja-JP``, ``hi-IN``, ``en``).

    Raises:
        InvalidArgumentError: not of the form ``language[-REGION]``, or an unknown language.
    """
    import re

    expected = "a language tag such as ja-JP, hi-IN or en-US"
    if not isinstance(tag, str) or not re.fullmatch(LOCALE_PATTERN, tag):
        raise InvalidArgumentError(name, tag, expected)
    if tag.split("-")[0] not in _languages():
        raise InvalidArgumentError(name, tag, expected + f" ('{tag.split('-')[0]}' is not a known language)")
    return tag


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_aspects(v: tuple[str, ...]) -> tuple[str, ...]:
    for a in v:
        if a not in ASPECTS:
            raise ValueError(f"unknown aspect ratio '{a}'; choose from {', '.join(ASPECTS)}")
    return v


def _check_weights(v: dict[str, float], names: tuple[str, ...], what: str) -> dict[str, float]:
    """Weights by name: known names, finite and >= 0, at least one positive."""
    for k, w in v.items():
        if k not in names:
            raise ValueError(f"unknown {what} '{k}'; choose from {', '.join(names)}")
        if not 0 <= w < float("inf"):
            raise ValueError(f"weight of '{k}' must be a finite number >= 0, got {w}")
    if not any(w > 0 for w in v.values()):
        raise ValueError(f"at least one {what} weight must be positive")
    return v


class DiffusionSettings(_Strict):
    strengths: tuple[float, ...] = Field((), description="img2img strength ladder; empty = the preset's")
    steps: int | None = Field(None, ge=1, le=150)
    guidance: float | None = Field(None, ge=0.0, le=30.0)

    @field_validator("strengths")
    @classmethod
    def _strengths(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        for s in v:
            if not 0.0 < s <= 1.0:
                raise ValueError(f"each strength must be in (0, 1], got {s}")
        return v


class Anchors(_Strict):
    positive: tuple[str, ...] = Field(min_length=1)
    negative: tuple[str, ...] = ()


class Targets(_Strict):
    brightness: float = Field(0.5, ge=0, le=1)
    warmth: float = Field(0.5, ge=0, le=1)
    saturation: float = Field(0.5, ge=0, le=1)
    contrast: float = Field(0.5, ge=0, le=1)
    faces: float = Field(0.5, ge=0, le=1)
    sharpness: float = Field(0.5, ge=0, le=1)


class WantsSpec(_Strict):
    """What the audience wants a frame to show, in measured terms (see ``genart.types.Wants``)."""

    people: tuple[int, int] = Field((0, 3), description="(fewest, most) faces the crop should show")
    face_size: float = Field(0.5, ge=0, le=1, description="largest face's presence: 1 = it fills ~6% of the picture")
    two_shot: float = Field(0.0, ge=0, le=1, description="two faces of similar size close together")
    eyes_open: float = Field(1.0, ge=0, le=1)
    expression: float = Field(0.5, ge=0, le=1, description="0 neutral .. 1 strongly expressive")
    darkness: float = Field(0.5, ge=0, le=1, description="1 - mean luma of the source frame's crop")
    colour: float = Field(0.5, ge=0, le=1, description="colourfulness of the source frame's crop")
    motion: float = Field(0.3, ge=0, le=1, description="1 = a fast-moving frame")
    screen: float = Field(0.0, ge=0, le=1, description="1 = a screen in the picture")
    weights: dict[str, float] = Field(default_factory=lambda: {"look": 1.0})

    @field_validator("people")
    @classmethod
    def _people(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] < 0 or v[1] < v[0]:
            raise ValueError(f"people must be [fewest, most] with 0 <= fewest <= most, got {list(v)}")
        return v

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        return _check_weights(v, WANT_TERMS, "want")


class RankingSettings(_Strict):
    """How this profile's list is placed (``genart.rank.combine``). Which aspects must carry the title is
    the title style's ``required_for`` (``TasteProfile.may_compete``), not a ranking setting."""

    mmr_lambda: float | None = Field(None, gt=0, le=1, description="diversity's trade-off; default: the preset's")


class GradeSpec(_Strict):
    name: str = Field(min_length=1)
    exposure: float = Field(0.0, ge=-2, le=2)
    contrast: float = Field(0.0, ge=-1, le=1)
    saturation: float = Field(0.0, ge=-1, le=1)
    warmth: float = Field(0.0, ge=-1, le=1)
    tint: float = Field(0.0, ge=-1, le=1)
    shadows_tint: tuple[float, float, float] = (0.0, 0.0, 0.0)
    highlights_tint: tuple[float, float, float] = (0.0, 0.0, 0.0)
    vignette: float = Field(0.0, ge=0, le=1)
    fade: float = Field(0.0, ge=0, le=1)


class TitleStyleSpec(_Strict):
    """``title_style:``: the genre's typography (see ``genart.types.TitleStyle``)."""

    font: Literal["sans", "serif", "condensed", "geometric"] = "sans"
    weight: Literal["regular", "bold", "black"] = "bold"
    case: Literal["as-is", "upper"] = "as-is"
    treatment: Literal["plate", "scrim", "shadow", "outline"] = "plate"
    color: str = Field("#ffffff", pattern=r"^#[0-9a-fA-F]{6}$", description="the letters' colour, #rrggbb")
    max_share: float = Field(0.15, gt=0.02, le=0.4, description="most of a portrait/square picture the title may cover")
    max_share_wide: float = Field(0.25, gt=0.02, le=0.5, description="most of a wide picture the title may cover")
    required_for: tuple[str, ...] = Field(("16:9", "2:3"), description="aspects where an untitled variant may not compete")

    @field_validator("required_for")
    @classmethod
    def _aspects(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_aspects(v)

    def typed(self) -> TitleStyle:
        rgb = (int(self.color[1:3], 16), int(self.color[3:5], 16), int(self.color[5:7], 16))
        return TitleStyle(font=self.font, weight=self.weight, case=self.case, treatment=self.treatment,
                          color=rgb, max_share=self.max_share,
                          max_share_wide=self.max_share_wide, required_for=self.required_for)


class ProfileFile(_Strict):
    """The schema of ``prompts/<id>.yaml``."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    prompt: str = Field(min_length=1, description="template with {title}, {genre}, {subject}")
    negative_prompt: str = ""
    diffusion: DiffusionSettings = DiffusionSettings()
    anchors: Anchors
    targets: Targets = Targets()
    wants: WantsSpec = WantsSpec()
    ranking: RankingSettings = RankingSettings()
    grade: GradeSpec
    aspects: tuple[str, ...] = ("16:9", "2:3", "1:1")
    locale: str = Field("en-US", pattern=LOCALE_PATTERN)
    weights: dict[str, float] = Field(default_factory=lambda: {"affinity": 1.0, "fidelity": 0.5, "quality": 0.3})
    title_style: TitleStyleSpec = TitleStyleSpec()
    casting: str | None = Field(None, min_length=1, max_length=80,
                                description="who this audience wants to see: 'lead', 'pair' (two characters "
                                            "together) or a character named in the title's casting notes")

    @field_validator("prompt")
    @classmethod
    def _template(cls, v: str) -> str:
        try:
            v.format(title="t", genre="g", subject="s")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"prompt may only use {{title}}, {{genre}} and {{subject}} placeholders ({exc})") from None
        return v

    @field_validator("aspects")
    @classmethod
    def _aspects(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one aspect ratio is needed")
        return _check_aspects(v)

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        return _check_weights(v, SCORE_NAMES, "score")


def _version(data: object) -> str:
    """Hash of the normalised file: key order and formatting don't change it, any value does."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def parse_profile(text: str, path: Path | str = "<profile>") -> TasteProfile:
    """Validate a profile's YAML text. Raises ``ProfileValidationError`` naming file, field and line."""
    path = Path(path)
    doc = parse_mapping(text, path, ProfileValidationError, "a mapping of fields (id, name, prompt, anchors, grade, ...)")
    data = dict(doc.data)
    data.setdefault("id", path.stem)
    try:
        pf = ProfileFile.model_validate(data)
    except ValidationError as exc:
        msg, field, line = explain_validation_error(exc, doc)
        raise ProfileValidationError(msg, path=path, field=field, line=line) from None
    if path.suffix in (".yaml", ".yml") and pf.id != path.stem:
        raise ProfileValidationError(f"id '{pf.id}' must match the file name '{path.stem}'", path=path, field="id",
                                     line=doc.line_of(("id",)))
    return TasteProfile(
        id=pf.id,
        name=pf.name,
        description=" ".join(pf.description.split()),
        version=_version(doc.data),
        prompt=pf.prompt,
        negative_prompt=pf.negative_prompt,
        anchors_positive=pf.anchors.positive,
        anchors_negative=pf.anchors.negative,
        strengths=pf.diffusion.strengths,
        steps=pf.diffusion.steps,
        guidance=pf.diffusion.guidance,
        targets=VisualTargets(**pf.targets.model_dump()),
        grade=Grade(**pf.grade.model_dump()),
        aspects=pf.aspects,
        locale=pf.locale,
        weights=ScoreSet.of(pf.weights),
        path=path,
        wants=Wants(**{**pf.wants.model_dump(), "people": tuple(pf.wants.people),
                       "weights": ScoreSet.of(pf.wants.weights)}),
        mmr_lambda=pf.ranking.mmr_lambda,
        title_style=pf.title_style.typed(),
        casting=pf.casting.strip() if pf.casting else None,
    )


def load_profile(path: Path | str) -> TasteProfile:
    """Load one profile file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileValidationError("file not found", path=path) from None
    except IsADirectoryError:
        raise ProfileValidationError("is a folder, not a profile file", path=path) from None
    except UnicodeDecodeError:
        raise ProfileValidationError("not a UTF-8 text file", path=path) from None
    except OSError as exc:
        raise ProfileValidationError(f"cannot read it: {exc.strerror or exc}", path=path) from None
    return parse_profile(text, path)


@lru_cache(maxsize=16)
def _load_dir(directory: str, stamp: tuple[tuple[str, int], ...]) -> dict[str, TasteProfile]:
    out: dict[str, TasteProfile] = {}
    for name, _ in stamp:
        profile = load_profile(Path(directory) / name)
        out[profile.id] = profile
    return out


def load_profiles(directory: Path | str | None = None) -> dict[str, TasteProfile]:
    """Every profile in ``directory`` (default: the project's ``prompts/``), by id; cached per file version."""
    d = Path(directory) if directory is not None else prompts_dir()
    files = sorted(p for p in d.glob("*.y*ml") if p.suffix in (".yaml", ".yml")) if d.is_dir() else []
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in files)
    return dict(_load_dir(str(d.resolve()), stamp))


def get_profiles(ids: Sequence[str] | str, directory: Path | str | None = None) -> list[TasteProfile]:
    """The profiles named by ``ids`` (a list or a comma-separated string), in that order.

    Raises:
        UnknownProfileError: an id is not a file in the profiles folder; the message lists the known ones.
        InvalidArgumentError: ``ids`` is neither a string nor a list of strings (None, say).
    """
    if isinstance(ids, str):
        ids = [i for i in (s.strip() for s in ids.split(",")) if i]
    if not isinstance(ids, (list, tuple)) or not all(isinstance(i, str) for i in ids):
        raise InvalidArgumentError("profiles", ids, "profile ids: a list of strings, or one comma-separated string")
    known = load_profiles(directory)
    out = []
    for pid in ids:
        if pid not in known:
            raise UnknownProfileError(pid, known)
        out.append(known[pid])
    if not out:
        raise UnknownProfileError("", known)
    return out
