"""Test helpers shipped with the package: torch-free fakes and contract suites.

Other implementations (a new scorer, a new embedder) reuse the contract suites in their own tests,
the way diffusers' pipelines share ``PipelineTesterMixin``.
"""
