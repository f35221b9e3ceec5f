"""Delivery: a run's approved artwork as the package a streamer takes (``genart export``, the app's button).

Only approved variants go in (the review's latest decision is ``approve``), one folder per profile
(the audience segment it is personalised for) and aspect, each picture at the fixed delivery size of its
aspect (the run's preset's ``finish.sizes`` in models.yaml, which finishing already makes them at) and
named for its profile, aspect, locale and rank. ``manifest.json`` lists
every file with its profile, segment, aspect, size, locale, source timecode, sha256 and provenance
label (IPTC DigitalSourceType), and counts the pictures per artwork type and language against what
the streamer accepts (Prime Video: 3 to 20 per type and language, 5 to 7 recommended), with a warning
for each count outside that range. Each PNG keeps the provenance the store wrote (XMP and text chunks)
plus where it was delivered from.

A use case beside ``genart.usecases.review`` (whose log decides what is approved); ``genart.api``
re-exports ``export_package``. Imports stay cheap: Pillow and the store load inside the function.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from genart.progress import ProgressFn, report
from genart.types import DeliveryCount, DeliveryFile, DeliveryPackage

ARTWORK_TYPES: dict[str, str] = {
    "16:9": "cover", "2:3": "poster", "1:1": "square", "9:16": "vertical", "4:3": "landscape-4x3",
    "3:4": "portrait-3x4", "4:5": "portrait-4x5", "21:9": "banner",
}
#: Types that carry the title treatment (Prime Video: cover and poster; hero art is text-free).
TITLED_TYPES = ("cover", "poster")
#: Past this enlargement a picture looks soft (ARTWORK.md): said in the warnings, never hidden.
MAX_CLEAN_UPSCALE = 1.5
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class StreamerRule:
    """How many personalised variants per artwork type and language a streamer accepts."""

    name: str
    minimum: int
    maximum: int
    recommended: tuple[int, int]


STREAMERS: dict[str, StreamerRule] = {
    "prime-video": StreamerRule("Prime Video", 3, 20, (5, 7)),
}


def delivery_sizes(preset: str | None = None) -> dict[str, tuple[int, int]]:
    """The fixed delivery size per aspect of a preset (models.yaml's ``finish.sizes``)."""
    from genart.config import load_models_config

    return {a: (int(w), int(h)) for a, (w, h) in load_models_config().preset(preset).finish.sizes.items()}


def _aspect_dir(aspect: str) -> str:
    return aspect.replace(":", "x")


def _count_status(n: int, rule: StreamerRule) -> str:
    if n < rule.minimum:
        return "below the minimum"
    if n > rule.maximum:
        return "above the maximum"
    lo, hi = rule.recommended
    return "ok" if lo <= n <= hi else "outside the recommended range"


def export_package(out: str | Path, run_id: str, to: str | Path, *, streamer: str = "prime-video",
                   db: str | None = None, progress: ProgressFn | None = None) -> DeliveryPackage:
    """Write the run's approved variants as a delivery package (a zip with ``manifest.json``).

    Args:
        out: the store folder the run is in (``genart.sqlite``, ``images/``, ``runs/``).
        run_id: the run.
        to: the zip to write (replaced atomically when it exists; its folder is created).
        streamer: whose count rule the manifest checks (``prime-video``).
        db: an SQLAlchemy URL for the store instead of the SQLite file in ``out``.
        progress: ``progress("export", done, total)`` per picture written.

    Returns:
        A ``DeliveryPackage``: the zip's path, every file, the counts per artwork type and language,
        and the warnings (counts outside the streamer's range, enlarged pictures, titles missing on
        types that carry one).

    Raises:
        UnknownRunError: no such run. NothingApprovedError: the run has no approved variant.
        InvalidArgumentError: an unknown ``streamer``, a ``to`` that is a folder, or an aspect with no
            delivery size.
        ImageReadError: a stored picture is missing or unreadable (``genart.imaging.load_rgb``).
        StoreError: a variant has no stored picture, or the zip cannot be written; ManifestError (one)
            where the run's ``manifest.json`` is not a manifest.
    """
    from datetime import datetime, timezone

    from PIL import Image, ImageOps

    from genart import __version__
    from genart.errors import InvalidArgumentError, NothingApprovedError, StoreError
    from genart.imaging import load_rgb, png_bytes, sha256_bytes
    from genart.profiles import load_profiles
    from genart.provenance import DST_TERMS, IPTC_DST, png_text_chunks
    from genart.store.convert import read_manifest
    from genart.usecases.review import approved_variants
    from genart.usecases.runs import load_run

    rule = STREAMERS.get(streamer)
    if rule is None:
        raise InvalidArgumentError("streamer", streamer, "one of " + ", ".join(STREAMERS))
    target = Path(to).expanduser()
    if target.is_dir():
        raise InvalidArgumentError("--to", str(target), "a .zip file to write, not a folder")
    run = load_run(out, run_id, db=db)
    approved = approved_variants(out, run_id, db=db)
    if not approved:
        raise NothingApprovedError(run_id, "export")
    manifest_in = read_manifest(run.manifest_path)
    title, genre = (manifest_in.title, manifest_in.genre) if manifest_in is not None else ("", "")
    profiles = load_profiles()
    software = f"genart {__version__}"
    sizes = delivery_sizes(run.preset)

    # rank within (profile, aspect, locale), in the ranking's order
    places: dict[tuple[str, str, str], int] = {}
    plan = []
    for rv in sorted(approved, key=lambda r: (r.profile_id, r.rank if r.rank is not None else 10**9)):
        p = rv.variant.params
        if p.aspect not in sizes:
            raise InvalidArgumentError("aspect", p.aspect, "one with a delivery size: " + ", ".join(sizes))
        locale = profiles[rv.profile_id].locale if rv.profile_id in profiles else "und"
        key = (rv.profile_id, p.aspect, locale)
        places[key] = places.get(key, 0) + 1
        plan.append((rv, locale, places[key]))

    files: list[DeliveryFile] = []
    warnings: list[str] = []
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            for i, (rv, locale, rank) in enumerate(plan):
                v, p, kf = rv.variant, rv.variant.params, rv.variant.keyframe
                size = sizes[p.aspect]
                kind = ARTWORK_TYPES[p.aspect]
                name = f"{rv.profile_id}_{_aspect_dir(p.aspect)}_{locale}_{rank:02d}.png"
                arc = f"{rv.profile_id}/{_aspect_dir(p.aspect)}/{name}"
                if v.path is None:
                    raise StoreError(f"variant {v.id} has no stored picture")
                try:
                    with load_rgb(v.path) as im:
                        src = im.convert("RGB")
                except (OSError, TypeError) as exc:
                    raise StoreError(f"the stored picture of variant {v.id} cannot be read ({v.path}): {exc}") from None
                upscale = round(max(size[0] / src.width, size[1] / src.height) * float(p.upscale or 1.0), 3)
                pixels = ImageOps.fit(src, size, method=Image.Resampling.LANCZOS)
                fields = {"variant_id": v.id, "profile_id": rv.profile_id, "params": p.as_dict(),
                          "keyframe": {"id": kf.id, "source": kf.source, "t_s": kf.t_s, "timecode": kf.timecode,
                                       "frame": kf.frame_index, "shot": kf.shot},
                          "delivery": {"run_id": run_id, "file": arc, "width": size[0], "height": size[1],
                                       "from": [src.width, src.height]}}
                data = png_bytes(pixels, png_text_chunks(v.digital_source_type, software=software, genart=fields))
                zf.writestr(zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0)), data,
                            compress_type=zipfile.ZIP_STORED)
                files.append(DeliveryFile(
                    path=arc, profile_id=rv.profile_id, segment=rv.profile_id, aspect=p.aspect, artwork_type=kind,
                    width=size[0], height=size[1], locale=locale, rank=rank, variant_id=v.id,
                    source_timecode=kf.timecode, sha256=sha256_bytes(data), digital_source_type=v.digital_source_type,
                    provenance_label=DST_TERMS.get(v.digital_source_type, v.digital_source_type), upscale=upscale,
                    title_status=p.title_status or ("placed" if p.title else None)))
                if upscale > MAX_CLEAN_UPSCALE:
                    warnings.append(f"{arc}: enlarged {upscale:.1f}x to {size[0]}x{size[1]} (past "
                                    f"{MAX_CLEAN_UPSCALE}x it looks soft); a larger source frame would be sharper")
                if kind in TITLED_TYPES and not p.title and title:
                    why = f" ({p.title_reason})" if p.title_reason else ""
                    warnings.append(f"{arc}: a {kind} without the title treatment{why}")
                report(progress, "export", i + 1, len(plan))

            groups: dict[tuple[str, str, str], int] = {}
            for f in files:
                groups[(f.artwork_type, f.aspect, f.locale)] = groups.get((f.artwork_type, f.aspect, f.locale), 0) + 1
            counts = tuple(DeliveryCount(artwork_type=k, aspect=a, locale=loc, count=n, minimum=rule.minimum,
                                         maximum=rule.maximum, recommended=rule.recommended,
                                         status=_count_status(n, rule))
                           for (k, a, loc), n in sorted(groups.items()))
            for c in counts:
                if c.status != "ok":
                    lo, hi = c.recommended
                    warnings.append(f"{c.count} {c.artwork_type} ({c.aspect}) picture(s) for {c.locale}: "
                                    f"{c.status} of {rule.name} ({c.minimum} to {c.maximum} per type and language, "
                                    f"{lo} to {hi} recommended)")
            manifest = {
                "package": "genart delivery package", "format": 1, "run_id": run_id,
                "title": title, "genre": genre, "preset": run.preset,
                "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "software": software,
                "streamer": {"id": streamer, "name": rule.name, "min_per_type_and_language": rule.minimum,
                             "max_per_type_and_language": rule.maximum, "recommended": list(rule.recommended)},
                "files": [{**asdict(f), "profile": f.profile_id, "size": f"{f.width}x{f.height}",
                           "provenance": {"digital_source_type": f.digital_source_type,
                                          "iptc_uri": IPTC_DST + f.digital_source_type,
                                          "label": f.provenance_label}} for f in files],
                "counts": [asdict(c) for c in counts],
                "warnings": warnings,
            }
            zf.writestr(MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False), compress_type=zipfile.ZIP_DEFLATED)
        os.replace(tmp, target)
    except OSError as exc:
        raise StoreError(f"cannot write the package {target}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return DeliveryPackage(run_id=run_id, zip_path=target.resolve(), streamer=rule.name, files=tuple(files),
                           counts=counts, warnings=tuple(warnings))
