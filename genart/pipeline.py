"""Kept so existing imports (``from genart import pipeline``, ``genart.pipeline.run``) keep working.

The run lives in ``genart.usecases.run``, the run's overview picture in ``genart.usecases.overview``, the
run folder's names in ``genart.usecases.layout`` and what a preset runs (``Stages``, ``load_stages``, the
scorer wiring) in ``genart.usecases.stages``. New code imports those modules; this one only re-exports
their public names.
"""

from __future__ import annotations

from genart.usecases.overview import overview
from genart.usecases.layout import ranked_name, run_lock_path
from genart.usecases.run import resolve_profiles, resume_key, run
from genart.usecases.stages import Stages, ensure_weights, load_rankers, load_stages, ranking_checks

__all__ = ["Stages", "ensure_weights", "load_rankers", "load_stages", "overview", "ranked_name", "ranking_checks",
           "resolve_profiles", "resume_key", "run", "run_lock_path"]
