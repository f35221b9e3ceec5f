# make demo: the main job on the offline default preset (classic), on a short built-in clip.
# make test: the whole test suite.
# Both create the project's environment in .venv first if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.genart-installed
TEST_ENV := HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False TOKENIZERS_PARALLELISM=false

.PHONY: venv demo test test-fast bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,ray,provenance]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(TEST_ENV) $(VENV)/bin/genart demo --out runs/demo

test: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -q

test-fast: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(TEST_ENV) $(PY) benchmarks/generate.py --json

clean:
	rm -rf runs .pytest_cache
