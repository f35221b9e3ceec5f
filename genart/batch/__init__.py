"""``genart batch``: a whole catalogue through frames, generation, ranking and the bandit hand-off.

Resumable and exactly-once (a ledger row per finished unit, committed with its results), fast on a
GPU (batches across frames, profiles and titles; OOM back-off), and able to scale out: ``local``,
``accelerate`` (several GPUs of one machine) and ``ray`` (several machines) engines.

    from genart.batch import load_catalog, run_catalog
    report = run_catalog("examples/catalog.yaml", "runs/season1", engine="local")

Importing this package is cheap: torch, accelerate and Ray load when a job runs.
"""

from __future__ import annotations

from genart.batch.catalog import Catalog, CatalogTitle, load_catalog, parse_catalog
from genart.batch.job import ENGINES, run_catalog

__all__ = ["Catalog", "CatalogTitle", "ENGINES", "load_catalog", "parse_catalog", "run_catalog"]
