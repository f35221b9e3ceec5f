"""The batch catalogue: which titles to run, with which profiles, preset and counts, validated at the edge.

A catalogue is YAML::

    version: 1
    preset: tiny                 # a preset of models.yaml (default: its default_preset)
    profiles: [romance, thriller]
    frames: 2                    # key frames per title
    variants_per_frame: 2        # variants per key frame, per profile
    top_k: 2                     # best variants per profile handed to the bandit test
    auto_approve: false          # true: start each title's test from the top-k with no person
                                 # (recorded in the test); false: a draft test waits for approval
    test:                        # the bandit test's settings (genart.bandit.settings)
      policy: ts                 # ts | egreedy | ucb1 | lints | linucb | vw
      reward: click              # click | play:15 (plays of 15+ minutes) | watch:60 (capped minutes)
      floor: 0.02
      change_cap: 0.1            # an arm's share moves at most 10 points ...
      change_interval: 1h        # ... per hour (or: 500 exposures)
      stop_at: 0.95
      min_impressions: 200
      loop: true                 # propose new artwork for weak segments (genart bandit loop)
    titles:
      - id: bunny
        source: ../shared/media/videos/big_buck_bunny_0_30.webm   # relative to this file's folder
        title: Big Buck Bunny
        genre: animation
      - id: demo
        demo: true               # genart's own demo clip (genart.demo.make_demo_clip), no media needed

Every title may override ``profiles``, ``frames``, ``variants_per_frame``, ``seed`` and ``top_k``, and
may carry casting notes: ``cast: {Ada Lovelace: ada.jpg, Charles Babbage: [cb1.jpg, cb2.jpg]}`` (reference
photos, relative to this file's folder); faces in the title that match are named after them, so a
profile can ask for that character (``casting:`` in ``prompts/*.yaml``).
The job hands each title's *approved* variants to its test (a re-run after a review), or, when
nobody approved any yet, makes a *draft* test of the ranking's top-k that starts when a person
approves it (``genart bandit approve``, or a hand-off in the app); ``auto_approve: true`` (or
``genart batch --auto-approve``) starts it at once, and the test says so.
Errors name the file and line, the entry (its id and index) and the field, like ``models.yaml``'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from genart._yaml import explain_validation_error, field_path, parse_mapping
from genart.bandit.settings import TestSettingsFile
from genart.bandit.types import POLICY_NAMES, TestConfig
from genart.errors import CatalogError, GenartError, UnknownPresetError, UnknownProfileError
from genart.types import TasteProfile
from genart.config import load_models_config
from genart.profiles import get_profiles

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TitleEntry(_Strict):
    """One title of the catalogue: its media (a video, an image, a folder of stills, or the demo clip)."""

    id: str | None = Field(None, description="a short unique id (letters, digits, _ . -); default: the file's stem")
    source: str | None = Field(None, min_length=1, description="video, image or folder of stills")
    demo: bool = False
    title: str = ""
    genre: str = ""
    profiles: list[str] | None = None
    frames: int | None = Field(None, ge=1, le=64)
    variants_per_frame: int | None = Field(None, ge=1, le=64)
    seed: int | None = Field(None, ge=0, lt=2**63)
    top_k: int | None = Field(None, ge=1, le=64)
    control_image: str | None = None
    cast: dict[str, str | list[str]] | None = Field(
        None, description="casting notes: a character's name -> reference photo(s) of that person")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str | None) -> str | None:
        if v is not None and not _ID.match(v):
            raise ValueError(f"'{v}' is not a valid id: 1 to 40 letters, digits, '_', '.' or '-', starting with a "
                             "letter or digit")
        return v


class CatalogFile(_Strict):
    version: Literal[1] = 1
    preset: str | None = None
    profiles: list[str] = Field(default_factory=lambda: ["romance", "thriller"], min_length=1)
    frames: int = Field(4, ge=1, le=64)
    variants_per_frame: int = Field(2, ge=1, le=64)
    top_k: int = Field(3, ge=1, le=64)
    seed: int = Field(0, ge=0, lt=2**63)
    policy: str | None = None  # the older spelling of test.policy
    auto_approve: bool = False
    test: TestSettingsFile | None = None
    titles: list[TitleEntry] = Field(min_length=1)


@dataclass(frozen=True)
class CatalogTitle:
    """A title as the batch runs it: every default applied, its source resolved to an absolute path."""

    id: str
    index: int
    source: Path | None  # None for the demo clip (made under the output folder)
    demo: bool
    title: str
    genre: str
    profiles: tuple[TasteProfile, ...]
    frames: int
    variants_per_frame: int
    seed: int
    top_k: int
    control_image: Path | None = None
    cast: tuple[tuple[str, tuple[Path, ...]], ...] = ()  # casting notes: (name, reference photos)

    @property
    def cast_notes(self) -> dict[str, list[str]] | None:
        """The casting notes as the frames stage takes them (None when there are none)."""
        return {name: [str(p) for p in paths] for name, paths in self.cast} or None

    @property
    def images(self) -> int:
        """Variants this title makes (at most: a source may have fewer key frames than asked)."""
        return self.frames * self.variants_per_frame * len(self.profiles)


@dataclass(frozen=True)
class Catalog:
    path: Path
    preset: str
    policy: str
    titles: tuple[CatalogTitle, ...]
    test: TestConfig = field(default_factory=TestConfig)  # every title's bandit test's settings
    auto_approve: bool = False  # start the tests without a person (recorded in each test)


def _entry_name(raw: object, index: int) -> str:
    tid = raw.get("id") if isinstance(raw, dict) else None
    return f"titles[{index}]" + (f" ('{tid}')" if isinstance(tid, str) and tid else "")


def parse_catalog(text: str, path: Path | str = "catalog.yaml", *, check_sources: bool = True) -> Catalog:
    """Validate a catalogue's text. Relative sources resolve against ``path``'s folder.

    Raises:
        CatalogError: malformed YAML, an unknown or bad field, a repeated id, a missing source, an
            unknown profile or preset; the message names the entry (``titles[i] ('id')``) and field.
    """

    path = Path(path)
    base = path.resolve().parent
    doc = parse_mapping(text, path, CatalogError,
                        "a mapping with 'titles' (and optionally preset, profiles, frames, ...)")
    try:
        parsed = CatalogFile.model_validate(doc.data)
    except ValidationError as exc:
        msg, field, line = explain_validation_error(exc, doc)
        loc = next((e["loc"] for e in exc.errors()), ())
        entry = None
        if len(loc) >= 2 and loc[0] == "titles" and isinstance(loc[1], int):
            raw = doc.data.get("titles") or []
            entry = _entry_name(raw[loc[1]] if loc[1] < len(raw) else None, loc[1])
            field = field_path(loc[2:]) or None
        raise CatalogError(msg, path=path, entry=entry, field=field, line=line) from None

    def fail(msg: str, index: int | None, field: str, hint: str | None = None) -> CatalogError:
        loc: tuple = ("titles", index, field) if index is not None else (field,)
        entry = _entry_name(doc.data["titles"][index], index) if index is not None else None
        return CatalogError(msg, path=path, entry=entry, field=field, line=doc.line_of(loc), hint=hint)

    try:
        preset = load_models_config().preset(parsed.preset).name
    except UnknownPresetError as exc:
        raise fail(exc.message, None, "preset") from None

    if parsed.policy is not None and parsed.policy not in POLICY_NAMES:
        raise fail(f"unknown policy '{parsed.policy}'; known: {', '.join(sorted(POLICY_NAMES))}", None, "policy")
    settings = parsed.test or TestSettingsFile(policy=parsed.policy or "ts")
    if parsed.test is not None and parsed.policy is not None and parsed.policy != parsed.test.policy:
        raise fail(f"policy '{parsed.policy}' disagrees with test.policy '{parsed.test.policy}'; give it once, "
                   "under test:", None, "policy")
    if parsed.test is not None and "policy" not in parsed.test.model_fields_set and parsed.policy:
        settings = settings.model_copy(update={"policy": parsed.policy})
    try:
        test_config = settings.config()
    except GenartError as exc:
        loc = ("test", getattr(exc, "name", "")) if getattr(exc, "name", "") in TestSettingsFile.model_fields else ("test",)
        raise CatalogError(exc.message, path=path, field=".".join(map(str, loc)), line=doc.line_of(loc),
                           hint=exc.hint) from None

    def profiles_of(ids: list[str], index: int | None) -> tuple[TasteProfile, ...]:
        if len(set(ids)) != len(ids):
            raise fail(f"a profile is listed twice: {ids}", index, "profiles")
        try:
            return tuple(get_profiles(list(ids)))
        except UnknownProfileError as exc:
            raise fail(exc.message, index, "profiles") from None
        except GenartError as exc:  # a malformed profile file
            raise fail(str(exc), index, "profiles") from None

    default_profiles = profiles_of(parsed.profiles, None)
    titles: list[CatalogTitle] = []
    seen: dict[str, int] = {}
    for i, t in enumerate(parsed.titles):
        if t.demo == bool(t.source):
            raise fail("give exactly one of 'source' (a video, image or folder of stills) or 'demo: true'", i,
                       "source")
        src: Path | None = None
        if t.source:
            src = Path(t.source).expanduser()
            src = (src if src.is_absolute() else base / src).resolve()
            if check_sources and not src.exists():
                raise fail(f"source not found: {src}", i, "source",
                           hint="relative paths are relative to the catalogue's folder; 'demo: true' makes a clip")
        tid = t.id or (re.sub(r"[^A-Za-z0-9_.-]", "-", src.stem)[:40].strip("-.") if src else "demo") or f"title{i}"
        if tid in seen:
            raise fail(f"id '{tid}' is used by titles[{seen[tid]}] too; ids must be unique", i, "id")
        seen[tid] = i
        control = None
        if t.control_image:
            control = Path(t.control_image).expanduser()
            control = (control if control.is_absolute() else base / control).resolve()
            if check_sources and not control.is_file():
                raise fail(f"control image not found: {control}", i, "control_image")
        cast: list[tuple[str, tuple[Path, ...]]] = []
        for name, refs in (t.cast or {}).items():
            if not name.strip():
                raise fail("a cast name is empty", i, "cast")
            paths = []
            for ref in [refs] if isinstance(refs, str) else refs:
                ref_path = Path(ref).expanduser()
                ref_path = (ref_path if ref_path.is_absolute() else base / ref_path).resolve()
                if check_sources and not ref_path.is_file():
                    raise fail(f"cast photo of '{name}' not found: {ref_path}", i, "cast")
                paths.append(ref_path)
            if not paths:
                raise fail(f"give '{name}' at least one reference photo", i, "cast")
            cast.append((name.strip(), tuple(paths)))
        titles.append(CatalogTitle(
            id=tid, index=i, source=src, demo=t.demo, title=t.title, genre=t.genre,
            profiles=profiles_of(t.profiles, i) if t.profiles is not None else default_profiles,
            frames=t.frames or parsed.frames, variants_per_frame=t.variants_per_frame or parsed.variants_per_frame,
            seed=parsed.seed if t.seed is None else t.seed, top_k=t.top_k or parsed.top_k, control_image=control,
            cast=tuple(cast)))
    return Catalog(path=path, preset=preset, policy=test_config.policy, titles=tuple(titles), test=test_config,
                   auto_approve=parsed.auto_approve)


def load_catalog(path: Path | str, *, check_sources: bool = True) -> Catalog:
    """Read and validate a catalogue file. Raises ``CatalogError`` (file, line, entry, field)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError("catalogue file not found", path=p, hint="genart batch CATALOG.yaml --out DIR") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"cannot read the catalogue: {exc}", path=p) from None
    return parse_catalog(text, p, check_sources=check_sources)
