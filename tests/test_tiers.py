"""The unit tier's guard (tests/conftest.py): a test not marked ``slow`` that starts a Python process fails
and says to mark it; the same test marked ``slow`` runs. Run in a scratch pytest session (pytester) with
this repository's conftest, so the guard is the one every test here runs under."""

from __future__ import annotations

from pathlib import Path

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")

BODY = """
import subprocess
import sys

import pytest


def test_unit_starts_python():
    subprocess.run([sys.executable, "-c", "pass"], check=True)


@pytest.mark.slow
def test_integration_starts_python():
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_unit_starts_another_program():
    subprocess.run(["true"], check=True)
"""


def test_a_unit_test_that_starts_python_fails_and_says_to_mark_it_slow(pytester):
    pytester.makeconftest(CONFTEST.read_text(encoding="utf-8"))
    pytester.makeini("[pytest]\nmarkers =\n    slow: the integration tier\n")
    pytester.makepyfile(test_guarded=BODY)
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_unit_starts_python starts a Python process*mark it @pytest.mark.slow*"])
    assert "test_integration_starts_python starts" not in result.stdout.str()
    assert "test_unit_starts_another_program starts" not in result.stdout.str()
