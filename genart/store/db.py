"""The run store: SQLite by default (SQLAlchemy, so a PostgreSQL URL works too); images as files named
by the sha256 of their bytes.

Every stage's result lands here as soon as it exists, so a failure later in a run loses nothing
already done: the run row says ``failed`` with the error, and its key frames and variants stay.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from sqlalchemy import (
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    insert,
    select,
    tuple_,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from genart.errors import StoreError
from genart.files import sweep_stale, write_bytes
from genart.imaging import image_format, image_jpeg, png_bytes, sha256_bytes, with_jpeg_text
from genart.store import convert
from genart.store.schema import Base, create_schema
from genart.types import KeyFrame, RankedVariant, RunManifest, Variant
from genart.provenance import c2pa_sign_png, c2pa_signer_from_env, png_text_chunks
from genart.workers import pmap

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

IPTC_DST = "http://cv.iptc.org/newscodes/digitalsourcetype/"
IMAGE_EXTS = {"png": "png", "jpeg": "jpg"}  # a stored file's format -> its extension
_SIGN_LOCK = threading.Lock()
_SWEPT: set[str] = set()  # store folders whose stale temporary files this process removed already
_SWEPT_LOCK = threading.Lock()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunRow(Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[str] = mapped_column(String(40))
    finished_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # running | done | failed
    preset: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    source_sha256: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    resume_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # genart.pipeline.resume_key


class KeyFrameRow(Base):
    __tablename__ = "keyframes"
    __table_args__ = (UniqueConstraint("run_id", "keyframe_id"),)
    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    keyframe_id: Mapped[str] = mapped_column(String(64))
    t_s: Mapped[float] = mapped_column(Float)
    frame_index: Mapped[int] = mapped_column(Integer)
    shot: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    image_sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    scores: Mapped[str] = mapped_column(Text)
    faces: Mapped[str] = mapped_column(Text)
    active_area: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON [x, y, w, h] in source pixels
    regions: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list of text/logo regions
    people: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list of FaceFacts, one per face


class VariantRow(Base):
    __tablename__ = "variants"
    __table_args__ = (UniqueConstraint("run_id", "variant_id"),)
    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    variant_id: Mapped[str] = mapped_column(String(64), index=True)
    profile_id: Mapped[str] = mapped_column(String(64))
    profile_version: Mapped[str] = mapped_column(String(64))
    keyframe_id: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(Integer)
    params: Mapped[str] = mapped_column(Text)
    digital_source_type: Mapped[str] = mapped_column(String(64))
    image_sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)


class ScoreRow(Base):
    __tablename__ = "scores"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    variant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    profile_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class RankingRow(Base):
    __tablename__ = "rankings"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    variant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    profile_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rank: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total: Mapped[float] = mapped_column(Float)
    rejected: Mapped[str | None] = mapped_column(Text, nullable=True)
    rank_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    explanation: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON [[score, value, weight, contribution]]
    placed_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    needs_review: Mapped[str | None] = mapped_column(Text, nullable=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover - exercised through every test
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class Store:
    """A run store rooted at a folder: ``genart.sqlite`` (unless a URL is given) and ``images/``."""

    def __init__(self, root: Path | str, url: str | None = None) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the output folder {self.root}: {exc.strerror}") from None
        self.images_dir = self.root / "images"
        self.url = url or f"sqlite:///{(self.root / 'genart.sqlite').resolve()}"
        try:
            self.engine = create_engine(self.url, future=True)
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", _sqlite_pragmas)
            create_schema(self.engine)
        except (SQLAlchemyError, ImportError) as exc:
            raise StoreError(f"cannot open the store at {self.url}: {exc}",
                             hint="--db takes an SQLAlchemy URL, e.g. sqlite:///runs/genart.sqlite "
                                  "or postgresql+psycopg://user@host/db") from None
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self.sweep_stale_files(once=True)

    def sweep_stale_files(self, once: bool = False) -> list[Path]:
        """Remove the temporary files a killed writer left where the store writes atomically (image
        folders, run folders, staged uploads); a live writer's are kept (``genart.files.is_stale``).

        ``once``: only the first time this process opens this folder (opening a store stays cheap)."""
        key = str(self.root.resolve())
        with _SWEPT_LOCK:
            if once and key in _SWEPT:
                return []
            _SWEPT.add(key)
        folders = [self.root]
        for sub in ("images", "runs", "uploads"):
            try:
                folders += [Path(e.path) for e in os.scandir(self.root / sub) if e.is_dir(follow_symlinks=False)]
            except FileNotFoundError:
                continue
        folders += [self.root / "demo"]
        return sweep_stale(folders)

    def session(self) -> Session:
        return self._session()

    # --- paths: stored relative to the store's folder, so a runs folder can be moved or copied -------
    def rel(self, path: Path | str) -> str:
        """How a file's path is stored: relative to the store's folder when it lies inside it, else absolute."""
        p, root = Path(path).resolve(), self.root.resolve()
        return p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p)

    def resolve(self, stored: str, sha256: str | None = None) -> Path:
        """A stored path on this machine: the store's own copy of the image (by its hash) first, then the
        path relative to the store's folder, then the path as written (old rows hold absolute paths, or
        paths relative to wherever the writer ran)."""
        if sha256:
            for ext in IMAGE_EXTS.values():
                own = self.images_dir / sha256[:2] / f"{sha256}.{ext}"
                if own.exists():
                    return own
        p = Path(stored)
        if not p.is_absolute():
            inside = self.root / p
            if inside.exists() or not p.exists():
                return inside
        return p

    # --- files ---------------------------------------------------------------------------------
    def save_image(self, image: Image.Image, text: dict[str, str] | None = None,
                   sign: Callable[[bytes], bytes] | None = None) -> tuple[str, Path]:
        """Write a PNG named by the sha256 of its bytes (atomically; an existing one is reused).

        ``sign`` (bytes -> bytes) adds C2PA Content Credentials to the encoded PNG (genart.provenance).
        """
        data = png_bytes(image, text)
        if sign is not None:
            data = sign(data)
        return self.write_image(data)

    def write_image(self, data: bytes) -> tuple[str, Path]:
        """Write encoded image bytes (PNG or JPEG) under their sha256, with their format's extension
        (atomically; an existing file is reused)."""
        sha = sha256_bytes(data)
        path = self.images_dir / sha[:2] / f"{sha}.{IMAGE_EXTS[image_format(data)]}"
        if not path.exists():
            write_bytes(path, data)
        return sha, path

    # --- runs ----------------------------------------------------------------------------------
    def start_run(self, manifest: RunManifest, resume_key: str | None = None) -> None:
        """Add the run's row (``running``); ``resume_key`` lets the same command find it again after a kill."""
        with self.session() as s, s.begin():
            s.add(RunRow(id=manifest.run_id, created_at=manifest.created_at, status="running", preset=manifest.preset,
                         source=manifest.source, source_sha256=manifest.source_sha256,
                         manifest=json.dumps(manifest.to_json(), sort_keys=True), resume_key=resume_key))

    def reopen_run(self, run_id: str) -> None:
        """A killed or failed run taken up again: ``running``, its old error cleared."""
        with self.session() as s, s.begin():
            row = s.get(RunRow, run_id)
            if row is None:
                raise StoreError(f"unknown run id: {run_id}")
            row.status, row.error, row.finished_at = "running", None, None

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        with self.session() as s, s.begin():
            row = s.get(RunRow, run_id)
            if row is None:
                raise StoreError(f"unknown run id: {run_id}")
            row.status, row.error, row.finished_at = status, error, _now()

    def run_status(self, run_id: str) -> tuple[str, str | None]:
        with self.session() as s:
            row = s.get(RunRow, run_id)
            if row is None:
                raise StoreError(f"unknown run id: {run_id}")
            return row.status, row.error

    def add_keyframes(self, run_id: str, keyframes: Sequence[KeyFrame]) -> list[KeyFrame]:
        """Persist key frames (image files and rows); returns them with ``path`` set."""
        from dataclasses import replace

        out = []
        with self.session() as s, s.begin():
            for kf in keyframes:
                meta = {"genart:keyframe": json.dumps({"id": kf.id, "source": kf.source, "t_s": kf.t_s,
                                                        "frame": kf.frame_index, "shot": kf.shot})}
                sha, path = self.save_image(kf.image, meta) if kf.image is not None else ("", kf.path)
                if path is None:
                    raise StoreError(f"key frame {kf.id} has neither pixels nor a file")
                s.add(KeyFrameRow(run_id=run_id, keyframe_id=kf.id, t_s=kf.t_s, frame_index=kf.frame_index,
                                  shot=kf.shot, width=kf.width, height=kf.height, image_sha256=sha,
                                  path=self.rel(path), **convert.keyframe_facts_json(kf)))
                out.append(replace(kf, path=Path(path)))
        return out

    def add_variants(self, run_id: str, variants: Sequence[Variant], software: str = "genart", *,
                     fmt: str = "png", quality: int = 92) -> list[Variant]:
        """Persist variants in one transaction: each file (``fmt``: png or jpeg, a preset's
        ``delivery``) carries its generation parameters and AI-provenance label."""

        signer = c2pa_signer_from_env()  # C2PA Content Credentials when a certificate is configured
        files = pmap(lambda v: self.variant_bytes(v, software, signer, fmt=fmt, quality=quality), variants)
        with self.session() as s, s.begin():
            return [self.stage_variant(s, run_id, v, software, signer, data=data)
                    for v, data in zip(variants, files, strict=True)]

    def stage_variant(self, session: Session, run_id: str, v: Variant, software: str = "genart",
                      signer: object = None, data: bytes | None = None) -> Variant:
        """Write one variant's image (atomically, named by its hash) and add its row to ``session``.

        The caller owns the transaction, so other rows (a batch ledger entry, say) commit with it.
        ``data``: the file ``variant_bytes`` made for it already (the batch job encodes on its CPU
        threads); default: a PNG made here. Returns the variant with ``path`` set.
        """
        from dataclasses import replace

        data = data if data is not None else self.variant_bytes(v, software, signer)
        sha, path = self.write_image(data)
        params = v.params.as_dict()
        session.add(VariantRow(run_id=run_id, variant_id=v.id, profile_id=v.profile_id,
                               profile_version=v.params.profile_version, keyframe_id=v.params.keyframe_id,
                               seed=v.params.seed, params=json.dumps(params, sort_keys=True),
                               digital_source_type=v.digital_source_type, image_sha256=sha, path=self.rel(path)))
        return replace(v, path=path)

    @staticmethod
    def variant_bytes(v: Variant, software: str = "genart", signer: object = None, *, fmt: str = "png",
                      quality: int = 92) -> bytes:
        """The file of a variant as the store keeps it (``fmt``: png or jpeg): its generation
        parameters, source frame and timecode, and the IPTC AI-provenance label in text and XMP (a
        JPEG's in APP1 and COM segments), C2PA-signed when ``signer``. A JPEG the device encoded
        already (``Variant.encoded``) is used as it is. Pure (no store state): safe on several threads.

        Raises:
            StoreError: no pixels, or an unknown format.
        """

        if fmt not in IMAGE_EXTS:
            raise StoreError(f"unknown image format '{fmt}'", hint="one of " + ", ".join(IMAGE_EXTS))
        encoded = v.encoded if v.encoded is not None and image_format(v.encoded) == fmt else None
        if v.image is None and encoded is None:
            raise StoreError(f"variant {v.id} has no pixels to store")
        params = v.params.as_dict()
        kf = v.keyframe
        # provenance (genart.provenance): params + source frame and timecode + IPTC label, also as XMP
        fields = {"variant_id": v.id, "profile_id": v.profile_id, "params": params,
                  "keyframe": {"id": kf.id, "source": kf.source, "t_s": kf.t_s, "timecode": kf.timecode,
                               "frame": kf.frame_index, "shot": kf.shot}}
        text = png_text_chunks(v.digital_source_type, software=software, genart=fields)
        if encoded is not None and fmt == "jpeg":
            data = with_jpeg_text(encoded, text)
        elif v.image is None:  # device-encoded bytes of another format: nothing to re-encode from
            raise StoreError(f"variant {v.id} has no pixels to store as {fmt}")
        elif fmt == "png":
            data = png_bytes(v.image, text)
        else:
            data = with_jpeg_text(image_jpeg(v.image, quality), text)
        if signer is not None:
            with _SIGN_LOCK:  # one signer, shared by the CPU threads: its thread safety is not documented
                data = c2pa_sign_png(data, v.digital_source_type, signer=signer, software=software,
                                     title=f"{v.id}.{IMAGE_EXTS[fmt]}", genart=fields, mime=f"image/{fmt}")
        return data

    def add_rankings(self, run_id: str, ranked: Iterable[RankedVariant]) -> None:
        """Store rankings and their scores, replacing what a variant had for that profile (a re-ranking after
        a kill rewrites the same rows). In bulk: one delete and one insert per table, not a query per row."""
        last = {(rv.variant.id, rv.profile_id): rv for rv in ranked}  # a variant given twice: the last counts
        if not last:
            return
        keys = sorted(last)
        with self.session() as s, s.begin():
            for table in (RankingRow, ScoreRow):
                for i in range(0, len(keys), 400):  # well under SQLite's limit on bound parameters
                    part = keys[i:i + 400]
                    s.execute(delete(table).where(table.run_id == run_id,
                                                  tuple_(table.variant_id, table.profile_id).in_(part)))
            s.execute(insert(RankingRow), [dict(run_id=run_id, variant_id=v, profile_id=p, rank=rv.rank, total=rv.total,
                                                rejected=rv.rejected, rank_score=rv.rank_score,
                                                explanation=convert.explanation_json(rv.explanation),
                                                placed_by=rv.placed_by, needs_review=rv.needs_review)
                                           for (v, p), rv in last.items()])
            scores = [dict(run_id=run_id, variant_id=v, profile_id=p, name=name, value=value)
                      for (v, p), rv in last.items() for name, value in rv.scores.items]
            if scores:
                s.execute(insert(ScoreRow), scores)

    # --- reading back --------------------------------------------------------------------------
    def count(self, table: type[Base], run_id: str) -> int:
        with self.session() as s:
            return len(s.scalars(select(table).where(table.run_id == run_id)).all())  # type: ignore[attr-defined]

    def rankings(self, run_id: str, profile_id: str) -> list[tuple[str, int | None, float, str | None]]:
        """(variant id, rank, total, rejection reason) for a profile, best first."""
        with self.session() as s:
            rows = s.scalars(select(RankingRow).where(RankingRow.run_id == run_id, RankingRow.profile_id == profile_id)).all()
            rows = sorted(rows, key=lambda r: (r.rank is None, r.rank or 0, -r.total))
            return [(r.variant_id, r.rank, r.total, r.rejected) for r in rows]

    def keyframes(self, run_id: str, source: str | None = None) -> list[KeyFrame]:
        """A run's key frames as stored (no pixels; ``path`` on this machine), in the order they were added.

        ``source``: what to put in ``KeyFrame.source`` (default: the run's source)."""
        with self.session() as s:
            if source is None:
                run = s.get(RunRow, run_id)
                source = run.source if run is not None else ""
            rows = s.scalars(select(KeyFrameRow).where(KeyFrameRow.run_id == run_id).order_by(KeyFrameRow.pk)).all()
            return [convert.keyframe_from_row(r, source, self.resolve(r.path, r.image_sha256)) for r in rows]

    def variants(self, run_id: str, profile_id: str | None = None,
                 keyframes: dict[str, KeyFrame] | None = None) -> list[Variant]:
        """A run's variants as stored (all profiles, or one), in the order they were added, each with its
        key frame (``keyframes`` by id, else read here)."""
        if keyframes is None:
            keyframes = {k.id: k for k in self.keyframes(run_id)}
        with self.session() as s:
            q = select(VariantRow).where(VariantRow.run_id == run_id)
            if profile_id is not None:
                q = q.where(VariantRow.profile_id == profile_id)
            return [convert.variant_from_row(r, keyframes[r.keyframe_id], self.resolve(r.path, r.image_sha256))
                    for r in s.scalars(q.order_by(VariantRow.pk))]

    def ranked(self, run_id: str, variants: dict[str, Variant] | None = None) -> dict[str, list[RankedVariant]]:
        """Every stored ranking of a run, per profile, in the stored order: accepted by rank, then rejected
        by total. Rankings of variants not in ``variants`` (default: all of the run's) are skipped."""
        if variants is None:
            variants = {v.id: v for v in self.variants(run_id)}
        with self.session() as s:
            scores: dict[tuple[str, str], dict[str, float]] = {}
            for sr in s.scalars(select(ScoreRow).where(ScoreRow.run_id == run_id)):
                scores.setdefault((sr.variant_id, sr.profile_id), {})[sr.name] = sr.value
            per: dict[str, list[RankedVariant]] = {}
            for r in s.scalars(select(RankingRow).where(RankingRow.run_id == run_id)):
                if r.variant_id in variants:
                    per.setdefault(r.profile_id, []).append(
                        convert.ranked_from_row(r, variants[r.variant_id], scores.get((r.variant_id, r.profile_id), {})))
        return {pid: sorted(rows, key=lambda r: (r.rejected is not None, r.rank is None, r.rank or 0, -r.total))
                for pid, rows in per.items()}

    def scores(self, run_id: str, variant_id: str, profile_id: str) -> dict[str, float]:
        with self.session() as s:
            rows = s.scalars(select(ScoreRow).where(ScoreRow.run_id == run_id, ScoreRow.variant_id == variant_id,
                                                    ScoreRow.profile_id == profile_id)).all()
            return {r.name: r.value for r in rows}
