"""Kept so existing imports keep working: bandit tests from every surface and the learning loop live in
``genart.usecases`` (``facts``, ``preferences``, ``tests``, ``settings``, ``loop``); ``genart.api`` is the public facade."""

from genart.usecases.facts import (
    GRADE_MARK,
    artwork_facts,
    grade_strength,
    lead_character,
    scaled_grade,
    variant_facts,
)
from genart.usecases.loop import LOOP_REVIEWER, loop_step, proposals
from genart.usecases.preferences import preference_model, rerank_for_segments, segment_preferences
from genart.usecases.runs import title_run
from genart.usecases.settings import (
    GRADE_STEPS,
    MAX_PREVIEWS,
    PREVIEW_SIDE,
    PROMPT_EDITS,
    candidate_settings,
    setting_words,
)
from genart.usecases.tests import AUTO_APPROVER, approve_test, evaluate_test, list_tests, open_test, stop_test

__all__ = [
    "AUTO_APPROVER", "GRADE_MARK", "GRADE_STEPS", "LOOP_REVIEWER", "MAX_PREVIEWS", "PREVIEW_SIDE", "PROMPT_EDITS",
    "approve_test", "artwork_facts", "candidate_settings", "evaluate_test", "grade_strength", "lead_character",
    "list_tests", "loop_step", "open_test", "preference_model", "proposals", "rerank_for_segments", "scaled_grade",
    "segment_preferences", "setting_words", "stop_test", "title_run", "variant_facts",
]

#: The old private name, still imported by ``genart.bandit.cli`` until it uses ``genart.api.setting_words``.
_setting_words = setting_words
