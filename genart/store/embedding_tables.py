"""The embedding cache table: a model's vector for an image, by (model fingerprint, image pixel hash).

Re-ranking the same pictures (a second run, the app re-scoring after an edit, an existing thumbnail
scored again) reads the vectors back instead of running the model. The fingerprint names the model and
its exact weights, so a different checkpoint never reuses another's vectors.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
from sqlalchemy import Integer, LargeBinary, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from genart.store.schema import Base

if TYPE_CHECKING:  # pragma: no cover
    from genart.store.db import Store


class EmbeddingRow(Base):
    __tablename__ = "embeddings"
    fingerprint: Mapped[str] = mapped_column(String(255), primary_key=True)
    image_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # little-endian float32
    created_at: Mapped[str] = mapped_column(String(40))


class StoreEmbeddingCache:
    """``genart.rank.embed.EmbeddingCache`` on a store (anything with ``session()``, e.g. ``Store``)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get_many(self, fingerprint: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        keys = list(dict.fromkeys(keys))
        with self.store.session() as s:
            for start in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
                chunk = keys[start : start + 500]
                rows = s.scalars(select(EmbeddingRow).where(EmbeddingRow.fingerprint == fingerprint,
                                                            EmbeddingRow.image_key.in_(chunk)))
                for r in rows:
                    vec = np.frombuffer(r.vector, dtype="<f4")
                    if vec.shape == (r.dim,):
                        out[r.image_key] = vec.astype(np.float32)
        return out

    def put_many(self, fingerprint: str, items: Mapping[str, np.ndarray]) -> None:
        if not items:
            return
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        have = set(self.get_many(fingerprint, list(items)))
        rows = [EmbeddingRow(fingerprint=fingerprint, image_key=k, dim=int(np.asarray(v).shape[-1]),
                             vector=np.asarray(v, dtype="<f4").tobytes(), created_at=now)
                for k, v in items.items() if k not in have]
        if not rows:
            return
        with self.store.session() as s:
            try:
                s.add_all(rows)
                s.commit()
            except IntegrityError:  # another process stored the same vectors meanwhile: theirs are equal
                s.rollback()
                for r in rows:
                    try:
                        s.merge(r)
                        s.commit()
                    except IntegrityError:
                        s.rollback()
