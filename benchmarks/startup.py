"""Benchmark: how fast genart starts and how fast it says that weights are missing, against peers.

These figures were once wall-clock assertions inside tests (``import genart`` timed in test_core, the
preset check and the absent-weights error timed in test_models and test_pipeline); the project's rule
is that speed lives here, so the tests now assert the behaviour (nothing heavy is imported, the error
names the fix) and this script measures the time, each figure against a peer in the same run:

- start-up: a fresh interpreter running ``import genart, genart.api, genart.cli`` against one running
  ``import scenedetect`` (PySceneDetect's one-call facade, the kind of package a user compares a
  command-line tool with). ``ratio_startup`` = peer seconds / genart seconds.
- preset check: ``genart.models.check_preset("turbo")`` on an empty Hugging Face cache against
  ``huggingface_hub.snapshot_download(..., local_files_only=True)`` for the same repo and revision
  (what a user would call to ask "is it here?"). ``ratio_check``.
- absent weights: ``genart.models.load_diffusion`` raising ``ModelLoadError`` against diffusers'
  ``AutoPipelineForImage2Image.from_pretrained(..., local_files_only=True)`` raising its own error, both
  in a fresh interpreter, import included (what a user waits for). ``ratio_absent``.

``ratio`` is the smallest of the three (genart's speed over the peer's; above 1 is faster). Medians of
``--reps`` runs; the machine's other load counts, so say so with the figures:

    python benchmarks/startup.py --reps 5 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

GENART_IMPORT = "import genart, genart.api, genart.cli"
PEER_IMPORT = "import scenedetect"

CHECK = """
import time
t = time.perf_counter()
{body}
print(time.perf_counter() - t)
"""

# the hub functions both sides call are imported up front (huggingface_hub imports them lazily, ~1 s on
# this machine), so the figure is the look-up itself, not that import
HUB = "from huggingface_hub import snapshot_download, try_to_load_from_cache, hf_hub_download\n"
GENART_CHECK = HUB + "from genart.models import check_preset\nfrom genart.config import load_models_config\n" \
    "assert not check_preset(load_models_config().preset('turbo')).ok"
PEER_CHECK = HUB + textwrap.dedent("""
    from genart.config import load_models_config
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    g = load_models_config().preset('turbo').generator
    try:
        snapshot_download(g.model_id, revision=g.revision, local_files_only=True)
        raise SystemExit('found weights: run with an empty cache')
    except LocalEntryNotFoundError:
        pass
""")

GENART_ABSENT = textwrap.dedent("""
    from genart.config import load_models_config
    from genart.errors import ModelLoadError
    from genart.models import load_diffusion
    try:
        load_diffusion(load_models_config().preset('turbo'))
        raise SystemExit('loaded weights: run with an empty cache')
    except ModelLoadError:
        pass
""")
PEER_ABSENT = textwrap.dedent("""
    from genart.config import load_models_config
    g = load_models_config().preset('turbo').generator
    from diffusers import AutoPipelineForImage2Image
    try:
        AutoPipelineForImage2Image.from_pretrained(g.model_id, revision=g.revision, local_files_only=True)
        raise SystemExit('loaded weights: run with an empty cache')
    except (OSError, EnvironmentError):
        pass
""")


def _env(hf_home: str) -> dict[str, str]:
    env = dict(os.environ, HF_HOME=hf_home, HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("HF_HUB_CACHE", None)
    env.pop("HUGGINGFACE_HUB_CACHE", None)
    return env


def fresh_process(code: str, env: dict[str, str]) -> float:
    """Seconds a fresh interpreter takes to run ``code`` (start-up and imports included)."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.perf_counter() - t


def in_process(body: str, env: dict[str, str]) -> float:
    """Seconds ``body`` itself takes, its imports warmed first (timed inside the child)."""
    warm = "\n".join(line for line in body.splitlines() if line.startswith(("from ", "import ")))
    out = subprocess.run([sys.executable, "-c", warm + "\n" + CHECK.format(body=body)], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="genart-bench-hf-") as hf_home:
        env = _env(hf_home)
        fresh_process(GENART_IMPORT, env)  # warm the file cache for both sides
        fresh_process(PEER_IMPORT, env)
        runs: dict[str, list[float]] = {k: [] for k in ("g_start", "p_start", "g_check", "p_check",
                                                        "g_absent", "p_absent")}
        for _ in range(args.reps):
            runs["g_start"].append(fresh_process(GENART_IMPORT, env))
            runs["p_start"].append(fresh_process(PEER_IMPORT, env))
            runs["g_check"].append(in_process(GENART_CHECK, env))
            runs["p_check"].append(in_process(PEER_CHECK, env))
            runs["g_absent"].append(fresh_process(GENART_ABSENT, env))
            runs["p_absent"].append(fresh_process(PEER_ABSENT, env))
    med = {k: statistics.median(v) for k, v in runs.items()}
    result = {
        "reps": args.reps, "cpus": os.cpu_count(),
        "genart_startup_s": round(med["g_start"], 3), "peer_startup_s": round(med["p_start"], 3),
        "ratio_startup": round(med["p_start"] / med["g_start"], 2),
        "genart_check_s": round(med["g_check"], 4), "peer_check_s": round(med["p_check"], 4),
        "ratio_check": round(med["p_check"] / med["g_check"], 2),
        "genart_absent_s": round(med["g_absent"], 3), "peer_absent_s": round(med["p_absent"], 3),
        "ratio_absent": round(med["p_absent"] / med["g_absent"], 2),
    }
    result["ratio"] = min(result["ratio_startup"], result["ratio_check"], result["ratio_absent"])
    print(f"start-up    genart {med['g_start']:.2f} s   scenedetect {med['p_start']:.2f} s   "
          f"ratio {result['ratio_startup']}")
    print(f"check       genart {med['g_check'] * 1000:.1f} ms  snapshot_download {med['p_check'] * 1000:.1f} ms  "
          f"ratio {result['ratio_check']}")
    print(f"no weights  genart {med['g_absent']:.2f} s   diffusers {med['p_absent']:.2f} s   "
          f"ratio {result['ratio_absent']}  (fresh interpreter, imports included)")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
