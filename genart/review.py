"""Kept so existing imports keep working: review, hand-off and test watching live in ``genart.usecases``
(one module per use case); ``genart.api`` is the public facade over them."""

from genart.usecases.choices import CHOICES_FILE, TITLE_POSITIONS, list_grades
from genart.usecases.handoff import CONTROL_VARIANT_ID, handoff_to_test, handoffs, rank_artwork
from genart.usecases.regenerate import make_variants, regenerate_variant
from genart.usecases.review import approved_variants, decisions, record_decision, review_states, score_breakdown
from genart.usecases.runs import list_runs, load_run
from genart.usecases.staging import create_run_from_stage, load_stage, stage_source
from genart.usecases.testing import simulate_test, test_report, test_timeline

__all__ = [
    "CHOICES_FILE", "CONTROL_VARIANT_ID", "TITLE_POSITIONS", "approved_variants", "create_run_from_stage",
    "decisions", "handoff_to_test", "handoffs", "list_grades", "list_runs", "load_run", "load_stage",
    "make_variants", "rank_artwork", "record_decision", "regenerate_variant", "review_states", "score_breakdown",
    "simulate_test", "stage_source", "test_report", "test_timeline",
]
