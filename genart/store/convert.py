"""One converter between the store's rows (and the JSON it keeps) and the typed values of ``genart.types``.

Everything that turns a stored key frame, variant or ranking back into a value goes through here, so a
field added to a type is written and read in one place. Readers are tolerant: a row written by an
older genart (fewer fields, absolute paths) still reads; a field this genart does not know is dropped.
"""

from __future__ import annotations

import json
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Mapping

from genart.errors import ManifestError
from genart.types import (
    Arm,
    BatchUnit,
    Box,
    Contribution,
    FaceFacts,
    GenerationParams,
    KeyFrame,
    ModelRef,
    RankedVariant,
    Region,
    RunManifest,
    RunSummary,
    ScoreSet,
    Variant,
)

#: Turns a stored path (and the image's sha256, when known) into a path on this machine.
Resolver = Callable[[str, "str | None"], Path]


def box_json(b: Box) -> list[float]:
    return [b.x, b.y, b.w, b.h, b.score]


def box_from(v: Any) -> Box:
    return Box(*(float(x) for x in v))


def region_json(r: Region) -> dict[str, object]:
    return {"box": box_json(r.box), "kind": r.kind, "text": r.text, "persistent": r.persistent}


def region_from(d: Mapping[str, Any]) -> Region:
    return Region(box=box_from(d["box"]), kind=str(d.get("kind", "text")), text=str(d.get("text", "")),
                  persistent=bool(d.get("persistent", False)))


def face_facts_json(f: FaceFacts) -> dict[str, object]:
    return {k.name: getattr(f, k.name) for k in fields(FaceFacts)}


def face_facts_from(d: Mapping[str, Any]) -> FaceFacts:
    names = {k.name for k in fields(FaceFacts)}
    return FaceFacts(**{k: v for k, v in d.items() if k in names})


def _area(v: Any) -> tuple[int, int, int, int] | None:
    return None if v is None else tuple(int(x) for x in v)  # type: ignore[return-value]


def keyframe_facts_json(kf: KeyFrame) -> dict[str, str | None]:
    """The JSON columns of a key frame's row beyond its scalars (scores, faces, bars, regions, people)."""
    return {
        "scores": json.dumps(kf.scores.as_dict()),
        "faces": json.dumps([box_json(f) for f in kf.faces]),
        "active_area": json.dumps(list(kf.active_area)) if kf.active_area is not None else None,
        "regions": json.dumps([region_json(r) for r in kf.regions]),
        "people": json.dumps([face_facts_json(p) for p in kf.people]),
    }


def _loads(text: str | None, default: Any) -> Any:
    return json.loads(text) if text else default


def keyframe_from_row(row: Any, source: str, path: Path | None) -> KeyFrame:
    """A ``KeyFrameRow`` as a ``KeyFrame`` (no pixels; ``path`` already resolved by the store)."""
    return KeyFrame(
        id=row.keyframe_id, source=source, t_s=row.t_s, frame_index=row.frame_index, shot=row.shot,
        width=row.width, height=row.height, scores=ScoreSet.of(_loads(row.scores, {})),
        faces=tuple(box_from(f) for f in _loads(row.faces, [])), path=path,
        active_area=_area(_loads(getattr(row, "active_area", None), None)),
        regions=tuple(region_from(r) for r in _loads(getattr(row, "regions", None), [])),
        people=tuple(face_facts_from(p) for p in _loads(getattr(row, "people", None), [])),
    )


def keyframe_json(kf: KeyFrame, base: Path | None = None) -> dict[str, object]:
    """A key frame as one JSON object (a staged source's ``stage.json``); ``path`` relative to ``base``."""
    path = None
    if kf.path is not None:
        path = str(Path(kf.path).relative_to(base)) if base is not None else str(kf.path)
    facts = keyframe_facts_json(kf)
    return {"id": kf.id, "source": kf.source, "t_s": kf.t_s, "frame_index": kf.frame_index, "shot": kf.shot,
            "width": kf.width, "height": kf.height, "path": path,
            **{k: (json.loads(v) if v is not None else None) for k, v in facts.items()}}


def keyframe_from_json(d: Mapping[str, Any], base: Path | None = None) -> KeyFrame:
    path = d.get("path")
    return KeyFrame(
        id=str(d["id"]), source=str(d["source"]), t_s=float(d["t_s"]), frame_index=int(d["frame_index"]),
        shot=int(d["shot"]), width=int(d["width"]), height=int(d["height"]),
        scores=ScoreSet.of(d.get("scores") or {}), faces=tuple(box_from(f) for f in d.get("faces") or ()),
        path=(base / str(path) if base is not None else Path(str(path))) if path else None,
        active_area=_area(d.get("active_area")),
        regions=tuple(region_from(r) for r in d.get("regions") or ()),
        people=tuple(face_facts_from(p) for p in d.get("people") or ()),
    )


def _tuple_fields(cls: type) -> set[str]:
    hints = typing.get_type_hints(cls)
    return {name for name, hint in hints.items() if "tuple" in str(hint)}


_PARAM_NAMES = {f.name for f in fields(GenerationParams)}
_PARAM_TUPLES = _tuple_fields(GenerationParams)


def params_from(d: Mapping[str, Any]) -> GenerationParams:
    """Generation parameters from their JSON (``GenerationParams.as_dict``); JSON lists back to tuples."""
    p = {k: v for k, v in d.items() if k in _PARAM_NAMES}
    for k in _PARAM_TUPLES:
        if isinstance(p.get(k), list):
            p[k] = tuple(p[k])
    return GenerationParams(**p)


def variant_from_row(row: Any, keyframe: KeyFrame, path: Path | None) -> Variant:
    """A ``VariantRow`` as a ``Variant`` of ``keyframe`` (no pixels; ``path`` resolved by the store)."""
    return Variant(id=row.variant_id, profile_id=row.profile_id, keyframe=keyframe,
                   params=params_from(json.loads(row.params)), digital_source_type=row.digital_source_type, path=path)


def explanation_json(rows: tuple[Contribution, ...]) -> str:
    return json.dumps([[c.score, c.value, c.weight, c.contribution] for c in rows])


def ranked_from_row(row: Any, variant: Variant, scores: Mapping[str, float]) -> RankedVariant:
    """A ``RankingRow`` (with its score rows) as a ``RankedVariant``."""
    expl = tuple(Contribution(str(n), float(v), float(w), float(c))
                 for n, v, w, c in _loads(getattr(row, "explanation", None), []))
    return RankedVariant(variant=variant, profile_id=row.profile_id, scores=ScoreSet.of(dict(sorted(scores.items()))),
                         total=row.total, rank=row.rank, rejected=row.rejected,
                         rank_score=getattr(row, "rank_score", None), explanation=expl,
                         placed_by=getattr(row, "placed_by", None), needs_review=getattr(row, "needs_review", None))


def arm_json(a: Arm, rel: Callable[[Path], str]) -> dict[str, object]:
    """A hand-off's arm as the review log keeps it: its picture's path relative to the store (``rel``)."""
    return {"test_id": a.test_id, "arm_id": a.arm_id, "segment": a.segment, "variant_id": a.variant_id,
            "image_path": rel(a.image_path) if a.image_path else None, "is_control": a.is_control,
            "prior_mean": a.prior_mean, "profile_id": a.profile_id}


def arm_from_json(d: Mapping[str, Any], resolve: Resolver) -> Arm:
    """An arm kept by ``arm_json``, its picture's path resolved on this machine."""
    return Arm(test_id=str(d["test_id"]), arm_id=str(d["arm_id"]), segment=str(d["segment"]),
               variant_id=d.get("variant_id"),
               image_path=resolve(str(d["image_path"]), None) if d.get("image_path") else None,
               is_control=bool(d.get("is_control")), prior_mean=float(d.get("prior_mean", 0.5)),
               profile_id=d.get("profile_id"))


#: What every genart version has written into a run's manifest. The fields added since (``title`` and
#: ``genre`` may be empty, ``checks`` came with the ranking's gates, ``profile_order`` with the app's
#: profile choice) read back with their defaults when an older manifest lacks them.
_MANIFEST_REQUIRED = ("run_id", "created_at", "genart_version", "source", "source_sha256", "preset", "preset_spec",
                      "models", "profiles", "frames", "variants_per_frame", "seed")
_MODEL_REF_NAMES = {f.name for f in fields(ModelRef)}


def manifest_from_json(d: Any, where: object) -> RunManifest:
    """A run's manifest from its JSON document (``RunManifest.to_json``), so readers use typed fields.

    Args:
        d: the parsed document.
        where: what an error names: the file, or the run whose stored row it is.

    Returns:
        The manifest; the profiles in the order they were chosen (``profile_order``; a manifest older
        than that keeps the order its ``profiles`` object has).

    Raises:
        ManifestError: ``d`` is not an object, lacks a field every genart version wrote, or a field
            has the wrong shape.
    """
    if not isinstance(d, Mapping):
        raise ManifestError(where, f"a JSON object expected, found {type(d).__name__}")
    missing = [k for k in _MANIFEST_REQUIRED if k not in d]
    if missing:
        raise ManifestError(where, "no " + ", ".join(missing))
    try:
        versions = {str(k): str(v) for k, v in dict(d["profiles"]).items()}
        order = [p for p in map(str, d.get("profile_order") or ()) if p in versions]
        order += [p for p in versions if p not in order]
        spec = d["preset_spec"]
        return RunManifest(
            run_id=str(d["run_id"]), created_at=str(d["created_at"]), genart_version=str(d["genart_version"]),
            source=str(d["source"]), source_sha256=str(d["source_sha256"]), preset=str(d["preset"]),
            preset_spec=spec if isinstance(spec, str) else json.dumps(spec, sort_keys=True, separators=(",", ":")),
            models=tuple(ModelRef(**{k: v for k, v in m.items() if k in _MODEL_REF_NAMES}) for m in d["models"]),
            profiles=tuple((p, versions[p]) for p in order), frames=int(d["frames"]),
            variants_per_frame=int(d["variants_per_frame"]), seed=int(d["seed"]),
            title=str(d.get("title") or ""), genre=str(d.get("genre") or ""),
            checks=tuple(str(c) for c in d.get("checks") or ()))
    except (TypeError, ValueError, AttributeError) as exc:
        raise ManifestError(where, f"a field has the wrong shape ({exc})") from None


def manifest_from_text(text: str | None, where: object) -> RunManifest:
    """A run's manifest from its JSON text (a ``manifest.json``, or the ``runs`` row's copy).

    Raises:
        ManifestError: the text is not JSON, or not a manifest (``manifest_from_json``).
    """
    try:
        d = json.loads(text or "")
    except ValueError as exc:
        raise ManifestError(where, f"not JSON ({exc})") from None
    return manifest_from_json(d, where)


def read_manifest(path: Path) -> RunManifest | None:
    """A run folder's ``manifest.json``; None where the folder has none (a run's title and genre then
    read as empty, as they always have).

    Raises:
        ManifestError: the file cannot be read, or is not a manifest (the message names the file).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(path, f"unreadable ({exc})") from None
    return manifest_from_text(text, path)


def run_manifest_from_row(row: Any) -> RunManifest:
    """The manifest a ``RunRow`` keeps (written by ``Store.start_run``).

    Raises:
        ManifestError: the row's copy is not a manifest (the message names the run).
    """
    return manifest_from_text(row.manifest, f"of run {row.id} in the store")


def run_summary_from_row(row: Any) -> RunSummary:
    """A ``RunRow`` as a ``RunSummary`` (title, genre and profiles from its stored manifest).

    Raises:
        ManifestError: the row's manifest is not one (the message names the run).
    """
    m = run_manifest_from_row(row)
    return RunSummary(run_id=row.id, created_at=row.created_at, status=row.status, preset=row.preset,
                      source=row.source, title=m.title, genre=m.genre, profiles=tuple(p for p, _ in m.profiles),
                      error=row.error, finished_at=row.finished_at)


def batch_unit_from_row(row: Any) -> BatchUnit:
    """A ``BatchUnitRow`` (the batch job's ledger) as a ``BatchUnit``; its JSON detail parsed."""
    return BatchUnit(run_id=row.run_id, kind=row.kind, profile_id=row.profile_id, keyframe_id=row.keyframe_id,
                     idx=row.idx, variant_id=row.variant_id, device_s=row.device_s, worker=row.worker,
                     finished_at=row.finished_at, detail=_loads(row.detail, None))


def batch_unit_row_fields(u: BatchUnit) -> dict[str, Any]:
    """The columns of a ``BatchUnitRow`` for ``u`` (its detail as JSON)."""
    return {"run_id": u.run_id, "kind": u.kind, "profile_id": u.profile_id, "keyframe_id": u.keyframe_id,
            "idx": u.idx, "variant_id": u.variant_id, "device_s": u.device_s, "worker": u.worker,
            "finished_at": u.finished_at, "detail": json.dumps(u.detail) if u.detail is not None else None}
