"""The command line: JSON shape, listings, and every user mistake as one line and a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genart.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def invoke(*args, env=None):
    result = runner.invoke(app, [str(a) for a in args], env=env)
    # a typed error must exit through typer.Exit, never as an unhandled exception
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_run_json_shape(stills_dir, tmp_path):
    r = invoke("run", stills_dir, "--profiles", "romance,thriller", "--preset", "classic", "--frames", "2",
               "--variants", "2", "--out", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert {"run_id", "preset", "profiles"} <= set(data) and data["preset"] == "classic"
    assert set(data["profiles"]) == {"romance", "thriller"}
    item = data["profiles"]["romance"][0]
    assert {"variant_id", "path", "total", "scores", "keyframe", "params"} <= set(item)
    assert {"t_s", "path"} <= set(item["keyframe"]) and Path(item["path"]).exists()
    assert item["params"]["profile_id"] == "romance" and "affinity" in item["scores"]


def test_models_list_and_check(tmp_path):
    r = invoke("models", "list")
    assert r.exit_code == 0 and all(p in r.stdout for p in ("turbo", "quality", "classic", "tiny"))
    assert invoke("models", "check", "classic").exit_code == 0
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")}
    r = invoke("models", "check", "turbo", env=env)
    assert r.exit_code == 1 and "absent" in r.stdout and "stabilityai/sd-turbo" in r.stdout


def test_profiles_list_show_validate(tmp_path):
    r = invoke("profiles", "list")
    assert r.exit_code == 0 and "romance" in r.stdout and "thriller" in r.stdout
    r = invoke("profiles", "show", "romance")
    assert r.exit_code == 0 and json.loads(r.stdout)["id"] == "romance"
    assert invoke("profiles", "validate", REPO / "prompts" / "comedy.yaml").exit_code == 0
    bad = tmp_path / "comedy.yaml"
    bad.write_text((REPO / "prompts" / "comedy.yaml").read_text().replace("saturation: 0.7", "saturation: 7"))
    r = invoke("profiles", "validate", bad)
    assert r.exit_code == 2 and "targets.saturation" in r.stderr and str(bad) in r.stderr


@pytest.mark.parametrize("make, expect", [
    (lambda d: d / "missing.mp4", "source not found"),
    (lambda d: (d / "notes.mp4").write_text("not a video") and d / "notes.mp4", "not a readable video"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "empty"),
])
def test_bad_sources(tmp_path, make, expect):
    source = make(tmp_path)
    r = invoke("run", source, "--preset", "classic", "--out", tmp_path / "out")
    assert r.exit_code == 2 and expect in r.stderr.lower() and "Traceback" not in r.output


def test_unknown_profile_and_preset(stills_dir, tmp_path):
    r = invoke("run", stills_dir, "--profiles", "romcom", "--out", tmp_path)
    assert r.exit_code == 2 and "romcom" in r.stderr and "romance" in r.stderr
    r = invoke("run", stills_dir, "--preset", "fastest", "--out", tmp_path)
    assert r.exit_code == 2 and "fastest" in r.stderr and "classic" in r.stderr


def test_malformed_models_yaml(stills_dir, tmp_path):
    bad = tmp_path / "models.yaml"
    bad.write_text((REPO / "models.yaml").read_text().replace("steps: 2\n", "steps: lots\n", 1))
    r = invoke("run", stills_dir, "--out", tmp_path / "o", env={"GENART_MODELS": str(bad)})
    assert r.exit_code == 2 and str(bad) in r.stderr and "presets.turbo.generator.steps" in r.stderr


def test_frames_command(stills_dir, tmp_path):
    r = invoke("frames", stills_dir, "--max", "2", "--out", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert len(data["keyframes"]) == 2 and Path(data["contact_sheet"]).exists()
    assert all(Path(k["path"]).exists() for k in data["keyframes"])


def test_real_process_exit_code_and_no_traceback(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    p = subprocess.run([sys.executable, "-m", "genart.cli", "run", str(tmp_path / "nope.mp4")], capture_output=True,
                       text=True, env=env, timeout=120)
    assert p.returncode == 2 and "source not found" in p.stderr and "Traceback" not in p.stderr
