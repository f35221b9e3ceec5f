"""Rank any picture beside generated ones: an existing thumbnail wrapped as a variant, any variants
ranked per profile with a preset's scorers (``genart.api`` re-exports both)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from genart.config import load_models_config
from genart.types import GenerationParams, KeyFrame, RankedVariant, Variant, stable_id
from genart.errors import InvalidArgumentError, SourceNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image


def rank_variants(variants: Sequence[Variant], profiles: Sequence[str] | str, *, preset: str | None = None,
                  top_k: int | None = None, out: str | Path | None = None,
                  db: str | None = None) -> dict[str, list[RankedVariant]]:
    """Rank any variants (generated, or an existing thumbnail wrapped by ``variant_from_image``) for each profile.

    A variant whose ``profile_id`` names one of ``profiles`` is ranked for that profile only; any other
    variant (an existing human-made thumbnail, say) is ranked for every profile. Every score is named
    in each ``RankedVariant`` (affinity, fidelity, aesthetic where the preset has a head, quality,
    legibility, safety) and each total is explained (``explanation``); misleading or unsafe ones are
    rejected with the reason, doubtful ones kept with ``needs_review``. The list is placed for diversity
    (``genart.rank.diversity``): it follows ``rank_score``, and ``placed_by`` says where diversity moved
    a variant, so the first places show different frames and looks.

    Args:
        variants: what to rank; each needs pixels (``image``) or a file (``path``).
        profiles: profile ids, as a list or a comma-separated string.
        preset: whose scorers to use (None = the default preset).
        top_k: keep at most this many accepted variants per profile.
        out, db: a store (folder or SQLAlchemy URL) to cache CLIP embeddings in across calls.

    Returns:
        Per profile id, accepted variants best first (at most ``top_k``), then the rejected ones.

    Raises:
        UnknownProfileError, UnknownPresetError, InvalidArgumentError: a bad argument.
        ModelLoadError: the preset's weights (or the NSFW classifier) are not on this machine.
    """
    from genart.usecases.stages import ensure_weights, load_rankers
    from genart.profiles import get_profiles
    from genart.rank.combine import rank_for_profile

    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise InvalidArgumentError("top_k", top_k, "a positive integer or None")
    for v in variants:
        if not isinstance(v, Variant):
            raise InvalidArgumentError("variants", type(v).__name__, "genart.types.Variant values (see variant_from_image)")
    spec = load_models_config().preset(preset)
    profs = get_profiles(profiles)
    ids = {p.id for p in profs}
    ensure_weights(spec)
    store = None
    if out is not None or db is not None:
        from genart.store.db import Store

        store = Store(out if out is not None else "runs", db)
    scorers, options = load_rankers(spec, store)
    result: dict[str, list[RankedVariant]] = {}
    for p in profs:
        mine = [v for v in variants if v.profile_id == p.id or v.profile_id not in ids]
        result[p.id] = rank_for_profile(mine, p, scorers, fidelity_threshold=spec.ranker.fidelity_threshold,
                                        top_k=top_k, options=options)
    return result


def variant_from_image(image: "str | Path | Image.Image", *, profile_id: str = "", variant_id: str | None = None,
                       source: "str | Path | Image.Image | None" = None,
                       digital_source_type: str = "humanEdits") -> Variant:
    """Wrap any picture (an existing human-made thumbnail, say) as a ``Variant`` that ``rank_variants``
    scores beside generated ones.

    Args:
        image: an image file, or PIL pixels.
        profile_id: the profile it is meant for; empty = rank it for every profile asked for.
        variant_id: its id (default: a hash of its pixels).
        source: the frame it was made from, for fidelity; None = the picture is its own source (fidelity 1).
        digital_source_type: its IPTC DigitalSourceType term (``humanEdits`` for artwork made by people).

    Raises:
        SourceNotFoundError: ``image`` or ``source`` is a path that does not exist.
        UnsupportedMediaError: it is not a readable image, or more pixels than genart decodes
            (``ImageTooLargeError``, see ``genart.imaging.max_image_pixels``).
        InvalidArgumentError: ``image`` is neither a path nor PIL pixels.
    """
    from PIL import Image as _Image

    from genart.imaging import load_rgb
    from genart.rank.embed import image_key

    def opened(x) -> "tuple[_Image.Image, Path | None]":
        if isinstance(x, _Image.Image):
            return x.convert("RGB"), None
        if not isinstance(x, (str, Path)):
            raise InvalidArgumentError("image", type(x).__name__, "an image file's path or PIL pixels")
        path = Path(x).expanduser()
        if not path.is_file():
            raise SourceNotFoundError(path)
        return load_rgb(path), path  # within genart's pixel limit (ImageTooLargeError, an UnsupportedMediaError)

    pixels, path = opened(image)
    key = image_key(pixels)
    if source is None:
        src_px, src_path, src_key = pixels, path, key
    else:
        src_px, src_path = opened(source)
        src_key = image_key(src_px)
    kf = KeyFrame(id=src_key[:16], source=str(src_path or "image"), t_s=0.0, frame_index=0, shot=0,
                  width=src_px.width, height=src_px.height, path=src_path, image=src_px)
    vid = variant_id or stable_id("external", key, profile_id)
    params = GenerationParams(preset="external", method="external", profile_id=profile_id, profile_version="",
                              keyframe_id=kf.id, seed=0, width=pixels.width, height=pixels.height,
                              aspect=f"{pixels.width}:{pixels.height}", grade="none")
    return Variant(id=vid, profile_id=profile_id, keyframe=kf, params=params,
                   digital_source_type=digital_source_type, path=path, image=pixels)
