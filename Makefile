# make demo: the main job on the offline default preset (classic), on a short built-in clip.
# make test: the whole test suite, both tiers in one session (the tiny preset is built once).
# make test-fast: the unit tier alone (-m "not slow", under a minute on 2 cores).
# make test-slow: the integration tier alone (tests marked `slow`: real torch models, Ray, accelerate,
# browsers, subprocess runs and kills, video decoding, real media).
# make lint: ruff and mypy, configured in pyproject.toml; .ci/run runs it before the tests.
# Each creates the project's environment in .venv first if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.genart-installed
# installed without their declared dependencies, which name opencv-python: a second OpenCV beside ours
NODEPS := rapidocr-onnxruntime==1.4.4 invisible-watermark==0.2.0
TEST_ENV := HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False TOKENIZERS_PARALLELISM=false

.PHONY: venv demo test test-fast test-slow lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# one OpenCV only: an older .venv has the non-contrib build, whose cv2/ files the contrib build shares
	@if $(PY) -m pip show -q opencv-python-headless >/dev/null 2>&1 || $(PY) -m pip show -q opencv-python >/dev/null 2>&1; then \
	  $(PY) -m pip uninstall -y -q opencv-python-headless opencv-python opencv-contrib-python-headless; fi
	$(PY) -m pip install -q -e '.[dev,ray,provenance]'
	$(PY) -m pip install -q --no-deps $(NODEPS)
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(TEST_ENV) $(VENV)/bin/genart demo --out runs/demo

test: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -q

test-fast: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(TEST_ENV) $(PY) benchmarks/generate.py --json

clean:
	rm -rf runs .pytest_cache
