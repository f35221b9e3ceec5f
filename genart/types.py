"""The typed values that cross stage boundaries.

Every stage takes and returns these frozen dataclasses; no ``dict[str, Any]`` crosses a module
boundary. Images travel as ``PIL.Image.Image`` in the ``image`` fields (excluded from equality and
repr) until the pipeline persists them, after which ``path`` points at the stored file.

This module imports nothing heavy: it is part of the torch-free core.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, overload

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from genart.bandit.types import TestReport


def stable_id(*parts: object, length: int = 16) -> str:
    """A short, stable content id: sha256 over the JSON of ``parts``."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def timecode(t_s: float) -> str:
    """Seconds as ``HH:MM:SS.mmm``."""
    ms = int(round(t_s * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels of the image it was found in."""

    x: float
    y: float
    w: float
    h: float
    score: float = 1.0

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @property
    def area(self) -> float:
        return self.w * self.h

    def scaled(self, sx: float, sy: float | None = None) -> "Box":
        sy = sx if sy is None else sy
        return Box(self.x * sx, self.y * sy, self.w * sx, self.h * sy, self.score)

    def contains(self, other: "Box", tol: float = 0.5) -> bool:
        return (
            other.x >= self.x - tol
            and other.y >= self.y - tol
            and other.x + other.w <= self.x + self.w + tol
            and other.y + other.h <= self.y + self.h + tol
        )


@dataclass(frozen=True)
class ScoreSet:
    """Named scores, in a stable order. Mapping-like, but frozen and hashable."""

    items: tuple[tuple[str, float], ...] = ()

    @classmethod
    def of(cls, scores: Mapping[str, float]) -> "ScoreSet":
        return cls(tuple((str(k), float(v)) for k, v in scores.items()))

    def as_dict(self) -> dict[str, float]:
        return dict(self.items)

    def __getitem__(self, name: str) -> float:
        for key, value in self.items:
            if key == name:
                return value
        raise KeyError(name)

    @overload
    def get(self, name: str) -> float | None: ...

    @overload
    def get(self, name: str, default: float) -> float: ...

    @overload
    def get(self, name: str, default: float | None) -> float | None: ...

    def get(self, name: str, default: float | None = None) -> float | None:
        for key, value in self.items:
            if key == name:
                return value
        return default

    def __contains__(self, name: object) -> bool:
        return any(key == name for key, _ in self.items)

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self.items)

    def __len__(self) -> int:
        return len(self.items)

    def merged(self, other: "ScoreSet | Mapping[str, float]") -> "ScoreSet":
        merged = self.as_dict()
        merged.update(other.as_dict() if isinstance(other, ScoreSet) else other)
        return ScoreSet.of(merged)


@dataclass(frozen=True)
class Region:
    """Something in a frame that is not the picture's own: burned-in text, a logo, a watermark, a screen of
    UI text. Crops keep it out and titles keep clear of it. ``box`` is in the pixels of the key frame."""

    box: Box
    kind: str = "text"  # "text" | "logo" | "watermark" | "subtitle" | "screen"
    text: str = ""  # what the recogniser read in it, when it read anything
    persistent: bool = False  # at the same place across the clip (a broadcaster's logo, a watermark)


@dataclass(frozen=True)
class FaceFacts:
    """What is known about one face beyond its box. ``KeyFrame.people[i]`` describes ``KeyFrame.faces[i]``.

    ``None`` means not measured (no landmark model on this machine), not "no".
    """

    confidence: float = 1.0  # the detector's, after the false-face checks (0..1)
    eyes_open: float | None = None  # 0 closed .. 1 wide open, from landmarks
    expression: float | None = None  # 0 neutral .. 1 strongly expressive, from landmarks
    frontal: float | None = None  # 0 profile .. 1 facing the camera
    roll: float = 0.0  # degrees the face is turned in the picture's plane
    character: str | None = None  # the character this face was clustered into ("c1", or a casting note's name)


@dataclass(frozen=True)
class KeyFrame:
    """A still picked from the source, with where it came from and why it was picked.

    ``active_area`` is the picture without letterbox/pillarbox bars, (x, y, w, h) in the source frame's
    display pixels; the key frame's own pixels (``width`` x ``height``) are that area, bars already cut
    away. ``regions`` (text, logos) and ``faces``/``people`` are in the key frame's pixels.
    """

    id: str
    source: str
    t_s: float
    frame_index: int
    shot: int
    width: int
    height: int
    scores: ScoreSet = ScoreSet()
    faces: tuple[Box, ...] = ()
    path: Path | None = None
    image: "Image.Image | None" = field(default=None, compare=False, repr=False)
    active_area: tuple[int, int, int, int] | None = None
    regions: tuple[Region, ...] = ()
    people: tuple[FaceFacts, ...] = ()

    @property
    def timecode(self) -> str:
        """``HH:MM:SS.mmm`` of this frame in the source."""
        return timecode(self.t_s)


@dataclass(frozen=True)
class VisualTargets:
    """What the ``classic`` preset aims a profile's look at; each value in [0, 1]."""

    brightness: float = 0.5
    warmth: float = 0.5
    saturation: float = 0.5
    contrast: float = 0.5
    faces: float = 0.5
    sharpness: float = 0.5


WANT_TERMS: tuple[str, ...] = ("look", "people", "face_size", "two_shot", "eyes_open", "expression", "casting",
                               "darkness", "colour", "motion", "screen")
"""The terms of a profile's ``wants`` (and the names its ``weights`` may use)."""


@dataclass(frozen=True)
class Wants:
    """What a profile's audience wants a frame to show, in measured terms (``wants:`` in
    ``prompts/<id>.yaml``); the ``classic`` preset's affinity is the weighted match of these.

    Each target is in [0, 1] on the scale of its measure (see ``genart.rank.features.content``):
    ``people`` is the (fewest, most) faces the crop should show; ``face_size`` the largest face's
    presence (1: it fills about 6% of the picture); ``two_shot`` two faces close together; ``eyes_open``
    and ``expression`` from the faces' landmarks; ``darkness``, ``colour`` and ``motion``
    of the source frame; ``screen`` a screen (a region of kind "screen") in the crop. ``weights`` says
    how much each counts (``look``: the graded picture against the profile's visual ``targets``;
    ``casting``: the frames stage's ``genart.casting.casting_match`` of the profile's ``casting``, who
    the audience wants to see: the lead, a pair, a named character); a measure the frames stage did not
    provide drops out of the mean instead of counting as a miss.
    """

    people: tuple[int, int] = (0, 3)
    face_size: float = 0.5
    two_shot: float = 0.0
    eyes_open: float = 1.0
    expression: float = 0.5
    darkness: float = 0.5
    colour: float = 0.5
    motion: float = 0.3
    screen: float = 0.0
    weights: ScoreSet = ScoreSet((("look", 1.0),))


@dataclass(frozen=True)
class Grade:
    """A colour look. Each field is a signed adjustment at full strength (``amount`` = 1)."""

    name: str = "neutral"
    exposure: float = 0.0  # stops
    contrast: float = 0.0  # -1 .. 1
    saturation: float = 0.0  # -1 .. 1
    warmth: float = 0.0  # -1 (cool) .. 1 (warm)
    tint: float = 0.0  # -1 (green) .. 1 (magenta)
    shadows_tint: tuple[float, float, float] = (0.0, 0.0, 0.0)  # RGB offset added in shadows
    highlights_tint: tuple[float, float, float] = (0.0, 0.0, 0.0)  # RGB offset added in highlights
    vignette: float = 0.0  # 0 .. 1
    fade: float = 0.0  # 0 .. 1 lifted blacks


@dataclass(frozen=True)
class TitleStyle:
    """A profile's title treatment (``title_style:`` in its YAML): typography that fits the genre.

    ``font`` names a family (``sans`` DejaVu Sans, ``serif`` Noto Serif, ``condensed`` Bebas Neue,
    ``geometric`` League Spartan; Japanese and Devanagari titles take their script's font); ``treatment``
    is what keeps the letters readable on any picture: ``plate`` (a soft translucent box), ``scrim`` (a
    gradient darkening from the picture's edge), ``shadow`` (a soft drop shadow) or ``outline`` (a dark
    stroke), each strengthened where the picture behind is too bright for 4.5:1. ``max_share`` caps the
    part of a portrait or square picture the title's box may cover, ``max_share_wide`` that of a wide one
    (at 160 px wide a 16:9 tile is 90 px tall: a line of 8 px capitals takes more of it). ``required_for`` names the aspects whose artwork type
    carries the title (16:9 cover, 2:3 poster): a variant there whose title could not be placed does not
    compete with titled ones (``TasteProfile.may_compete``).
    """

    font: str = "sans"  # "sans" | "serif" | "condensed" | "geometric"
    weight: str = "bold"  # "regular" | "bold" | "black"
    case: str = "as-is"  # "as-is" | "upper"
    treatment: str = "plate"  # "plate" | "scrim" | "shadow" | "outline"
    color: tuple[int, int, int] = (255, 255, 255)
    max_share: float = 0.15  # portrait and square pictures
    max_share_wide: float = 0.25  # pictures wider than tall: a legible line takes more of a low tile
    required_for: tuple[str, ...] = ("16:9", "2:3")
    # "auto": wherever the picture is quietest; "bottom" | "top": that edge whenever it is free (a creative
    # team's choice in the review app); faces, text regions and the subject are kept clear either way
    position: str = "auto"


@dataclass(frozen=True)
class TasteProfile:
    """A target audience taste, loaded from ``prompts/<id>.yaml``.

    ``version`` is the hash of the normalised file, stamped on every variant made for it.
    """

    id: str
    name: str
    description: str
    version: str
    prompt: str
    negative_prompt: str
    anchors_positive: tuple[str, ...]
    anchors_negative: tuple[str, ...]
    strengths: tuple[float, ...]
    steps: int | None
    guidance: float | None
    targets: VisualTargets
    grade: Grade
    aspects: tuple[str, ...]
    locale: str
    weights: ScoreSet
    path: Path | None = None
    wants: Wants = Wants()
    mmr_lambda: float | None = None  # diversity's trade-off for this profile (None: the preset's)
    title_style: TitleStyle = TitleStyle()
    casting: str | None = None  # who the audience wants in the art: "lead", "pair", or a character's name

    def may_compete(self, params: "GenerationParams") -> bool:
        """Whether a variant may rank against the others for this profile: not when its title was asked for
        but skipped on an aspect whose artwork type carries the title (``title_style.required_for``)."""
        return not (params.title_status == "skipped" and params.aspect in self.title_style.required_for)

    def render_prompt(self, title: str = "", genre: str = "", subject: str = "") -> str:
        """The prompt with ``{title}``, ``{genre}`` and ``{subject}`` filled in, spaces tidied."""
        text = self.prompt.format(title=title or "the title", genre=genre or "film", subject=subject or "the scene")
        return " ".join(text.split())


@dataclass(frozen=True)
class GenerationParams:
    """Everything needed to make a variant again, bit for bit on the same hardware."""

    preset: str
    method: str  # "img2img" | "classic"
    profile_id: str
    profile_version: str
    keyframe_id: str
    seed: int
    width: int
    height: int
    aspect: str
    grade: str
    grade_amount: float = 1.0
    model_id: str | None = None
    revision: str | None = None
    scheduler: str | None = None
    strength: float | None = None
    steps: int | None = None
    guidance: float | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    crop: tuple[int, int, int, int] | None = None  # x, y, w, h in the source frame
    # (generate stage) how the crop was filled where it left the frame: "crop" | "mirror-fill" | "outpaint:<model>"
    reframe: str | None = None
    title: str | None = None  # the title text laid on the image (None: no overlay)
    title_font: str | None = None  # font file name the title was set in
    controlnet: str | None = None  # "model_id@revision canny scale=..." when a ControlNet guided the img2img
    # what finishing did (generate stage), so ranking, review and delivery can see it:
    synthetic_share: float = 0.0  # fraction of the output's pixels not from the source frame (fill, outpaint)
    upscale: float = 1.0  # output pixels per source pixel along each side (> 1: enlarged)
    title_status: str | None = None  # None: no title asked for; "placed"; "skipped" (see title_reason)
    title_reason: str | None = None  # why a title was skipped, in words
    title_box: tuple[int, int, int, int] | None = None  # the title's plate, (x, y, w, h) in output pixels
    watermark: str | None = None  # the imperceptible watermark's payload, when one was embedded

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Variant:
    """One artwork candidate for one profile, made from one key frame."""

    id: str
    profile_id: str
    keyframe: KeyFrame
    params: GenerationParams
    digital_source_type: str  # IPTC DigitalSourceType term
    path: Path | None = None
    image: "Image.Image | None" = field(default=None, compare=False, repr=False)
    # the delivery file's bytes as the device encoded them (a JPEG without metadata yet), so the pixels
    # are not encoded again on the CPU; the store adds the provenance and writes them. In memory only.
    encoded: bytes | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Contribution:
    """One line of a total's explanation: ``contribution`` = the score's share of ``total``; the
    contributions of a ranked row add up to its total."""

    score: str
    value: float
    weight: float
    contribution: float


@dataclass(frozen=True)
class RankedVariant:
    """A variant with its scores for one profile, its combined total, and its place.

    ``rank_score`` is the number the order follows (non-increasing down a profile's list); it differs
    from ``total`` where diversity moved the variant, and ``placed_by`` then says why in words.
    ``needs_review``: kept, but a person must look before it is shown to an audience (the reason).
    """

    variant: Variant
    profile_id: str
    scores: ScoreSet
    total: float
    rank: int | None  # 1 = best; None when rejected
    rejected: str | None = None  # the reason, when the variant must never be shown as a winner
    rank_score: float | None = None
    explanation: tuple[Contribution, ...] = ()
    placed_by: str | None = None
    needs_review: str | None = None

    @property
    def path(self) -> Path | None:
        return self.variant.path


@dataclass(frozen=True)
class Arm:
    """One artwork in a bandit test: a variant (or the current artwork as control) for a segment."""

    test_id: str
    arm_id: str
    segment: str
    variant_id: str | None
    image_path: Path | None
    is_control: bool = False
    prior_mean: float = 0.5
    profile_id: str | None = None
    # how many pseudo-observations the prior is worth; None: the test's ``prior_weight``. The segment
    # preference model sets it from its own certainty (genart.bandit.preferences).
    prior_strength: float | None = None


@dataclass(frozen=True)
class Exposure:
    """One decision: which arm a member saw, and the probability the policy chose it with."""

    exposure_id: str
    test_id: str
    arm_id: str
    segment: str
    user_id: str | None
    propensity: float
    t: float


@dataclass(frozen=True)
class Outcome:
    """The reward observed for an exposure."""

    exposure_id: str
    reward: float
    t: float


# --- the bandit's exposure log: what a test keeps, as its log stores it (genart.bandit.log) ---------
@dataclass(frozen=True)
class LoggedTest:
    """A bandit test as its exposure log keeps it. ``config`` is the bandit stage's JSON (the log
    stores it, only the stage reads it); ``status`` is draft, running or stopped."""

    test_id: str
    policy: str
    config: str
    status: str
    created_at: float
    stopped_at: float | None = None
    winners: Mapping[str, str] = field(default_factory=dict)  # per segment, once stopped
    approved_by: str | None = None
    approved_at: float | None = None
    auto_approve: bool = False
    run_id: str | None = None
    origin: str | None = None
    arms_version: int = 0  # bumped whenever arms are added or replaced


@dataclass(frozen=True)
class LoggedArm:
    """An arm as the log keeps it, with the running totals the Beta policies decide from (they move in
    the same transaction as the exposure or outcome that moves them). ``image_path`` is as stored:
    relative to the store's folder, or absolute."""

    test_id: str
    segment: str
    arm_id: str
    position: int
    variant_id: str | None = None
    image_path: str | None = None
    is_control: bool = False
    prior_mean: float = 0.5
    profile_id: str | None = None
    features: tuple[float, ...] = ()
    impressions: int = 0
    outcomes: int = 0
    reward_sum: float = 0.0
    prior_strength: float | None = None
    facts: Mapping[str, float] | None = None
    run_id: str | None = None
    proposal_id: str | None = None
    added_at: float | None = None


@dataclass(frozen=True)
class LoggedExposure:
    """One logged decision: the arm, its propensity, the full distribution over the segment's arms (in
    arm position order) and the context's features. ``features`` is None where the stored value cannot
    be read (a row written before input was validated); ``sticky_of`` names the exposure a sticky
    repeat reuses; ``seq`` is the log's order (0 before it is stored)."""

    exposure_id: str
    test_id: str
    segment: str
    arm_id: str
    user_id: str | None
    propensity: float
    probs: tuple[float, ...]
    features: tuple[float, ...] | None
    policy: str
    t: float
    sticky_of: str | None = None
    seq: int = 0


@dataclass(frozen=True)
class LoggedOutcome:
    """The reward stored for an exposure (at most one each): the observed ``value``, the test's reward
    rule applied (``reward``, in [0, 1]), and whether it counted (not late)."""

    exposure_id: str
    test_id: str
    value: float
    reward: float
    counted: bool
    t: float
    seq: int = 0


@dataclass(frozen=True)
class LoggedAllocation:
    """Per (test, segment): the distribution over arms the change-effect cap last served, when, and how
    many fresh decisions were drawn from it."""

    test_id: str
    segment: str
    probs: tuple[float, ...]
    t: float
    served: int = 0


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: what a run used, enough to fetch the same weights again."""

    role: str  # "diffusion" | "clip" | ...
    model_id: str
    revision: str | None
    local_path: str | None = None
    random_weights: bool = False


@dataclass(frozen=True)
class RunManifest:
    """What a run used: presets, models and revisions, profile versions, seeds, genart version."""

    run_id: str
    created_at: str
    genart_version: str
    source: str
    source_sha256: str
    preset: str
    preset_spec: str  # the resolved preset as canonical JSON
    models: tuple[ModelRef, ...]
    profiles: tuple[tuple[str, str], ...]  # (profile id, version)
    frames: int
    variants_per_frame: int
    seed: int
    title: str = ""
    genre: str = ""
    checks: tuple[str, ...] = ()  # the gates the ranking ran, one line each (``pipeline.ranking_checks``)

    def to_json(self) -> dict[str, Any]:  # a JSON document
        data = asdict(self)
        data["preset_spec"] = json.loads(self.preset_spec)
        data["profiles"] = {pid: version for pid, version in self.profiles}
        # the order the profiles were chosen in (stores write this JSON with sorted keys)
        data["profile_order"] = [pid for pid, _ in self.profiles]
        return data


@dataclass(frozen=True)
class RunResult:
    """What ``create_variants`` returns: per profile, the ranked variants, best first."""

    run_id: str
    preset: str
    out_dir: Path
    manifest_path: Path
    keyframes: tuple[KeyFrame, ...]
    ranked: tuple[tuple[str, tuple[RankedVariant, ...]], ...]  # (profile id, ranked best first)
    rejected: tuple[tuple[str, tuple[RankedVariant, ...]], ...] = ()
    warnings: tuple[str, ...] = ()  # what went wrong and was worked around (GenartWarning messages)

    @property
    def profiles(self) -> dict[str, tuple[RankedVariant, ...]]:
        return dict(self.ranked)

    def __getitem__(self, profile_id: str) -> tuple[RankedVariant, ...]:
        return self.profiles[profile_id]

    def to_json(self) -> dict[str, Any]:  # a JSON document
        """The CLI's ``--json`` shape (and ``result.json``'s).

        Per row: ``rank_score``, the number the order follows (``total`` less what diversity took off;
        ``placed_by`` says where diversity moved the row), ``explanation``, one line per score with
        ``contribution = value * weight`` (the weights sum to 1, the contributions to ``total``),
        ``needs_review`` (kept, but a person must approve it before any test) and ``rejected``.
        """

        def one(rv: RankedVariant) -> dict[str, object]:
            kf = rv.variant.keyframe
            return {
                "variant_id": rv.variant.id,
                "path": str(rv.variant.path) if rv.variant.path else None,
                "rank": rv.rank,
                "rank_score": round(rv.rank_score, 6) if rv.rank_score is not None else None,
                "total": round(rv.total, 6),
                "explanation": [{"score": c.score, "value": round(c.value, 6), "weight": round(c.weight, 6),
                                 "contribution": round(c.contribution, 6)} for c in rv.explanation],
                "placed_by": rv.placed_by,
                "needs_review": rv.needs_review,
                "scores": {k: round(v, 6) for k, v in rv.scores.items},
                "rejected": rv.rejected,
                "keyframe": {
                    "id": kf.id,
                    "t_s": round(kf.t_s, 3),
                    "timecode": kf.timecode,
                    "frame": kf.frame_index,
                    "path": str(kf.path) if kf.path else None,
                },
                "params": rv.variant.params.as_dict(),
            }

        return {
            "run_id": self.run_id,
            "preset": self.preset,
            "out_dir": str(self.out_dir),
            "manifest": str(self.manifest_path),
            "profiles": {pid: [one(rv) for rv in items] for pid, items in self.ranked},
            "rejected": {pid: [one(rv) for rv in items] for pid, items in self.rejected},
            "warnings": list(self.warnings),
        }


# --- review (the app) ---------------------------------------------------------------------------
REVIEW_ACTIONS: tuple[str, ...] = ("approve", "reject", "flag")
"""What a reviewer can decide about a variant. ``regenerated`` is logged, never chosen."""


@dataclass(frozen=True)
class StagedSource:
    """A source with its key frames picked and stored, waiting for a person to choose which to use.

    ``keyframes`` carry ``path`` (a PNG under ``<out>/uploads/<stage_id>/``), not pixels.
    """

    stage_id: str
    source: Path
    keyframes: tuple[KeyFrame, ...]
    warnings: tuple[str, ...] = ()  # the frames stage's: what went wrong but was worked around


@dataclass(frozen=True)
class RunSummary:
    """One run of a store, for pickers and lists."""

    run_id: str
    created_at: str
    status: str  # running | done | failed
    preset: str
    source: str
    title: str
    genre: str
    profiles: tuple[str, ...]
    error: str | None = None
    finished_at: str | None = None  # when it last finished (done or failed); None while it runs



@dataclass(frozen=True)
class ReviewDecision:
    """One entry of a variant's append-only review log.

    ``version`` counts the entries of that variant (1 = first): a reviewer's decision names the
    version it saw, and one made on a stale view is refused instead of overwriting another's.
    """

    decision_id: int
    run_id: str
    variant_id: str
    profile_id: str
    action: str  # approve | reject | flag | regenerated
    note: str
    reviewer: str
    created_at: str
    version: int


@dataclass(frozen=True)
class ReviewState:
    """Where a variant stands: its latest decision (``pending`` when none) and its log version."""

    variant_id: str
    status: str  # pending | approve | reject | flag
    version: int
    reviewer: str = ""
    note: str = ""
    at: str = ""


@dataclass(frozen=True)
class HandoffRecord:
    """Approved variants sent to a bandit test: who sent which arms, and when."""

    run_id: str
    test_id: str
    reviewer: str
    created_at: str
    arms: tuple[Arm, ...]


@dataclass(frozen=True)
class TestSnapshot:
    """A bandit test as it stands: the bandit stage's report, and its plots (PNG) when they could be drawn."""

    __test__ = False  # not a pytest test class

    test_id: str
    report: "TestReport"  # the bandit stage's (imported for type-checking only: types.py imports no stage)
    plots: tuple[Path, ...] = ()  # cumulative reward, allocation over time
    preferences: tuple = ()  # genart.bandit.preferences.SegmentTaste per segment: what it responds to
    preferences_plot: Path | None = None  # each segment's effects with their intervals (PNG)


# --- frames: shots and the full analysis of a source ----------------------------------------------
@dataclass(frozen=True)
class Shot:
    """One shot of a video: frames ``[start_frame, end_frame)``, seconds ``[start_s, end_s)``.

    Frame numbers count decoded frames from 0 (exact for variable frame rate too); seconds come
    from the frames' own timestamps. For a folder of stills every still is a shot of one "frame".
    """

    index: int
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int


@dataclass(frozen=True)
class Transition:
    """A gradual change between pictures, seconds ``[start_s, end_s)``: no key frame is taken inside it.

    ``kind`` is ``"fade-in"`` (from black or white), ``"fade-out"`` (to black or white), ``"dissolve"``
    (one picture blended into the next) or ``"wipe"`` (an edge sweeping the next picture in).
    """

    start_s: float
    end_s: float
    kind: str

    def covers(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.end_s


@dataclass(frozen=True)
class Character:
    """One person recognised across a title: faces whose embeddings cluster together.

    ``id`` is ``"c1"``, ``"c2"``, ... in order of screen time (``c1`` is the lead); ``name`` is the
    casting note's name when a reference image matched, else None. ``screen_time_s`` is the sampled
    time the character is on screen; ``appearances`` the spans ``(start_s, end_s)`` they are seen in;
    ``chip`` a 150x150 aligned face picture (for contact sheets; not compared).
    """

    id: str
    screen_time_s: float
    appearances: tuple[tuple[float, float], ...] = ()
    name: str | None = None
    faces: int = 0  # face sightings (sampled frames) that went into the cluster
    chip: "Image.Image | None" = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        """What ``FaceFacts.character`` says for this character: its name, else its id."""
        return self.name or self.id


@dataclass(frozen=True)
class FramesResult:
    """What the frames stage found in a source: its shots, the cuts between them, the key frames.

    ``detector`` names the PySceneDetect detector that found the cuts (empty for stills);
    ``n_frames`` is the number of frames actually decoded (fewer than the container says for a
    damaged file); ``warnings`` are the messages of what went wrong but was worked around, and why
    fewer key frames came back than were asked for. ``active_area`` is the picture without bars
    ((x, y, w, h) in display pixels, the whole frame when there are none), ``transitions`` the fades,
    dissolves and wipes found, ``characters`` the people recognised (lead first), ``regions`` the
    burned-in marks that persist across the title (logos, watermarks; display pixels of the active
    area) and ``timings`` CPU seconds spent per part of the analysis, then ``wall`` and ``cpu`` for the call.
    """

    source: str
    kind: str  # "video" | "stills"
    shots: tuple[Shot, ...]
    cuts_s: tuple[float, ...]
    cut_frames: tuple[int, ...]
    keyframes: tuple[KeyFrame, ...]
    fps: float
    n_frames: int
    duration_s: float
    width: int
    height: int
    detector: str = ""
    warnings: tuple[str, ...] = ()
    active_area: tuple[int, int, int, int] | None = None
    transitions: tuple[Transition, ...] = ()
    characters: tuple[Character, ...] = ()
    regions: tuple[Region, ...] = ()
    timings: tuple[tuple[str, float], ...] = ()
    asked: int = 0  # the key frames asked for

    def to_json(self) -> dict[str, Any]:  # a JSON document
        """Everything but the pixels, as the ``frames`` command's ``--json`` prints it."""

        def box(b: Box) -> list[float]:
            return [round(b.x, 1), round(b.y, 1), round(b.w, 1), round(b.h, 1)]

        def region(r: Region) -> dict[str, object]:
            return {"box": box(r.box), "kind": r.kind, "text": r.text, "persistent": r.persistent}

        def person(p: FaceFacts) -> dict[str, object]:
            return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(p).items()}

        return {
            "source": self.source, "kind": self.kind, "fps": round(self.fps, 6), "n_frames": self.n_frames,
            "duration_s": round(self.duration_s, 3), "width": self.width, "height": self.height,
            "detector": self.detector, "asked": self.asked,
            "active_area": list(self.active_area) if self.active_area is not None else None,
            "shots": [{"start_s": round(s.start_s, 3), "end_s": round(s.end_s, 3), "start_frame": s.start_frame,
                       "end_frame": s.end_frame} for s in self.shots],
            "cuts_s": [round(t, 3) for t in self.cuts_s],
            "transitions": [{"start_s": round(t.start_s, 3), "end_s": round(t.end_s, 3), "kind": t.kind}
                            for t in self.transitions],
            "characters": [{"id": c.id, "name": c.name, "label": c.label, "screen_time_s": round(c.screen_time_s, 3),
                            "faces": c.faces, "appearances": [[round(a, 3), round(b, 3)] for a, b in c.appearances]}
                           for c in self.characters],
            "regions": [region(r) for r in self.regions],
            "keyframes": [{
                "id": kf.id, "t_s": round(kf.t_s, 3), "timecode": kf.timecode, "frame": kf.frame_index,
                "shot": kf.shot, "width": kf.width, "height": kf.height,
                "active_area": list(kf.active_area) if kf.active_area is not None else None,
                "faces": [box(b) for b in kf.faces], "people": [person(p) for p in kf.people],
                "regions": [region(r) for r in kf.regions],
                "scores": {k: round(v, 4) for k, v in kf.scores.items},
            } for kf in self.keyframes],
            "warnings": list(self.warnings),
            "timings": {k: v for k, v in self.timings},
        }


# --- batch (genart batch): what one title of a catalogue came to -----------------------------------
@dataclass(frozen=True)
class BatchTitleReport:
    """One title of a batch job, as the ledger says it stands (across every resume of the job).

    ``images`` counts the title's stored variants; ``made_now`` those this invocation made (0 for a
    title finished earlier). ``device_s`` is the accelerator (or CPU) time its units took, summed
    over every attempt that finished them (generation and ranking); ``images_per_s`` is images per
    second of generation alone.
    """

    title_id: str
    run_id: str
    status: str  # done | partial | pending | failed
    keyframes: int
    images: int
    expected: int
    made_now: int
    device_s: float
    images_per_s: float
    test_id: str | None = None
    arms: int = 0
    best: tuple[tuple[str, str, float], ...] = ()  # (profile id, variant id, total) of each profile's #1
    error: str | None = None


@dataclass(frozen=True)
class BatchUnit:
    """One finished unit of a batch job, as its ledger row says (``genart.store.batch_tables``).

    ``kind``: ``variant`` (one slot: ``profile_id``, ``keyframe_id``, ``idx``, the ``variant_id`` made),
    ``rank`` (one profile of a title ranked), ``handoff`` (the title handed to the bandit stage, with
    ``detail``: its test and arms). A title-level unit has ``keyframe_id`` "" and ``idx`` -1.
    """

    run_id: str
    kind: str  # variant | rank | handoff
    profile_id: str = ""
    keyframe_id: str = ""
    idx: int = -1
    variant_id: str | None = None
    device_s: float = 0.0
    worker: str = ""
    finished_at: str = ""
    # the hand-off's JSON detail (test id, arms, status); not part of equality (a mapping has no hash)
    detail: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, str, str, int]:
        """What makes the unit one of a kind (the ledger's unique constraint, less the kind)."""
        return self.run_id, self.profile_id, self.keyframe_id, self.idx


@dataclass(frozen=True)
class BatchReport:
    """A batch job's outcome: one ``BatchTitleReport`` per title and where the summary files are."""

    catalog: Path
    out: Path
    engine: str
    preset: str
    titles: tuple[BatchTitleReport, ...]
    wall_s: float
    summary_csv: Path | None = None
    summary_json: Path | None = None
    oom_retries: int = 0
    batch_size: int | None = None  # the batch size generation ended at (after any OOM halving)
    # seconds per stage of generation (denoise, denoise_wait, decode, finish, embed, write): the stages
    # overlap (``genart.batch.gpu.Overlap``), so they add up to more than the wall time
    stage_s: tuple[tuple[str, float], ...] = ()

    @property
    def failed(self) -> tuple[BatchTitleReport, ...]:
        """The titles that failed (status ``failed``, the reason in ``error``); the others completed."""
        return tuple(t for t in self.titles if t.status == "failed")


# --- delivery (genart export): the approved artwork as a package a streamer takes ---------------------
@dataclass(frozen=True)
class DeliveryFile:
    """One picture of a delivery package: where it is in the package and everything delivery asks about it."""

    path: str  # inside the package, e.g. "romance/16x9/romance_16x9_en-US_01.png"
    profile_id: str
    segment: str  # the audience segment the picture is personalised for (the profile's id)
    aspect: str
    artwork_type: str  # "cover" (16:9), "poster" (2:3), "square" (1:1), "vertical" (9:16), ...
    width: int
    height: int
    locale: str
    rank: int  # 1 = the best approved picture of its profile, aspect and locale
    variant_id: str
    source_timecode: str
    sha256: str
    digital_source_type: str  # IPTC DigitalSourceType term
    provenance_label: str  # that term's IPTC label, in words
    upscale: float = 1.0  # delivered pixels per source pixel along each side (> 1.5 shows)
    title_status: str | None = None


@dataclass(frozen=True)
class DeliveryCount:
    """How many pictures of one artwork type and language a package holds, against the streamer's rule."""

    artwork_type: str
    aspect: str
    locale: str
    count: int
    minimum: int
    maximum: int
    recommended: tuple[int, int]
    status: str  # "ok" | "below the minimum" | "above the maximum" | "outside the recommended range"


@dataclass(frozen=True)
class DeliveryPackage:
    """What ``genart export`` wrote: the zip, its files and counts, and what delivery should know (warnings)."""

    run_id: str
    zip_path: Path
    streamer: str
    files: tuple[DeliveryFile, ...]
    counts: tuple[DeliveryCount, ...]
    warnings: tuple[str, ...] = ()


# --- a bandit test over time (the review app's plots) ---------------------------------------------
@dataclass(frozen=True)
class ArmTrend:
    """One arm of a segment over its exposures: the share it got, and its click rate so far."""

    segment: str
    arm_id: str
    exposures: tuple[int, ...]  # the segment's exposures so far, at each point
    share: tuple[float, ...]  # the arm's share of the segment's exposures in the window ending there
    click_rate: tuple[float | None, ...]  # its clicks / impressions up to there (None before it was shown)
