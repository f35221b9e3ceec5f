"""Orchestration as use cases: one small module per thing a user does (stage a source, create a run,
review, regenerate, hand off, test, export).

Each module wires stages and the store for one use case and is the only place that use case lives.
``genart.api`` is the thin public facade over them (the CLI, the app and notebooks call the facade);
use-case modules, and the batch job that schedules them (``genart.batch``, itself behind
``api.run_catalog``), call each other and the stages, never ``genart.api``, so the flow has no cycle
back through the facade.
"""
