"""`genart bandit simulate | report` through the Typer sub-app."""

from __future__ import annotations

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from genart.bandit.cli import app

runner = CliRunner()


def test_simulate_json_shape():
    r = runner.invoke(app, ["simulate", "--arms", "6", "--segments", "4", "--rounds", "5000", "--policy", "ts", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(out) == {"policy", "rounds", "regret", "best_arm_share"}
    assert out["policy"] == "ts" and out["rounds"] == 5000
    assert out["regret"] > 0 and 0 < out["best_arm_share"] <= 1


def test_simulate_human_output_and_unknown_policy():
    r = runner.invoke(app, ["simulate", "--rounds", "1000", "--policy", "ucb1"])
    assert r.exit_code == 0 and "cumulative regret" in r.stdout
    bad = runner.invoke(app, ["simulate", "--rounds", "10", "--policy", "thompson"])
    assert bad.exit_code == 2
    assert "unknown bandit policy 'thompson'; known policies:" in bad.output
    assert "Traceback" not in bad.output


@pytest.mark.slow
def test_simulate_through_a_store_then_report(tmp_path):
    db = str(tmp_path / "cli.db")
    plots = importlib.util.find_spec("matplotlib") is not None  # plots are optional
    r = runner.invoke(app, ["simulate", "--rounds", "1500", "--arms", "3", "--segments", "2", "--store", db,
                            "--test-id", "demo", "--json"] + (["--plots", str(tmp_path / "plots")] if plots else []))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["rounds"] == 1500
    if plots:
        names = sorted(p.name for p in (tmp_path / "plots").iterdir())
        assert names == ["demo_arm_share.png", "demo_cumulative_reward.png"]
    rep = runner.invoke(app, ["report", "demo", "--store", db, "--json"])
    assert rep.exit_code == 0, rep.output
    data = json.loads(rep.stdout)
    assert data["test_id"] == "demo" and len(data["segments"]) == 2
    assert sum(a["impressions"] for s in data["segments"] for a in s["arms"]) == 1500
    table = runner.invoke(app, ["report", "demo", "--store", db])
    assert table.exit_code == 0 and "P(best)" in table.stdout
    missing = runner.invoke(app, ["report", "nope", "--store", db])
    assert missing.exit_code == 2 and "unknown bandit test 'nope'; known tests: demo" in missing.output


# --- through a real subprocess, as a person types them ---------------------------------------------
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


REPO = Path(__file__).resolve().parents[1]


def genart(*args, cwd=None, columns: int = 80):
    env = {**os.environ, "COLUMNS": str(columns), "PYTHONPATH": str(REPO)}
    env.pop("GENART_BANDIT_URL", None)
    r = subprocess.run([sys.executable, "-m", "genart.cli", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd, env=env, timeout=300)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    return r


def one_error(r, *needles: str) -> None:
    """Exit 2, one 'error:' line (and at most a hint line), naming what was wrong."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines[0].startswith("error: ") and len(lines) <= 2, r.stderr
    if len(lines) == 2:
        assert lines[1].startswith("hint: ")
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An output folder the way `genart run` leaves it, two variants approved, and a test made by
    `genart bandit create` with traffic."""
    from PIL import Image
    from skimage import data

    from genart import api

    d = tmp_path_factory.mktemp("cli")
    src = d / "stills"
    src.mkdir()
    Image.fromarray(data.astronaut()).save(src / "astronaut.png")
    Image.fromarray(data.coffee()).save(src / "coffee.png")
    out = d / "runs"
    run = api.create_variants(src, profiles=["comedy"], preset="classic", frames=2, variants_per_frame=2, out=out)
    for rv in run["comedy"][:2]:
        api.record_decision(out, run.run_id, rv.variant.id, "approve", reviewer="ana")
    r = genart("bandit", "create", run.run_id, "--reviewer", "ana", "--out", out, "--policy", "ts", "--reward",
               "play:15", "--floor", "0.05", "--change-cap", "0.1", "--change-interval", "1h", "--stop-at", "0.9",
               "--min-impressions", "50", "--loop")
    assert r.returncode == 0, r.stderr
    test_id = f"{run.run_id}-test"
    assert test_id in r.stdout and "plays of at least 15 min" in r.stdout
    api.simulate_test(out, test_id, impressions=1200, seed=1)
    return d, out, run.run_id, test_id


@pytest.mark.slow
def test_every_bandit_command_finds_the_store_the_run_wrote(store):
    d, out, run_id, test_id = store
    for where in (["--out", out], ["--store", out], ["--out", out / "runs" / run_id]):  # also the runs folder
        r = genart("bandit", "report", test_id, *where)
        assert r.returncode == 0, (where, r.stderr)
        assert "segment comedy" in r.stdout and "what each segment responds to" in r.stdout
        assert all(len(line) <= 80 for line in r.stdout.splitlines()), r.stdout
    r = genart("bandit", "report", test_id, cwd=d)  # no option: ./runs/genart.sqlite, where `genart run` wrote
    assert r.returncode == 0 and "segment comedy" in r.stdout
    assert not (d / "genart_bandit.db").exists()  # no stray store made elsewhere
    r = genart("bandit", "list", cwd=out)  # inside the output folder: ./genart.sqlite
    assert r.returncode == 0 and "running" in r.stdout and "ana" in r.stdout


@pytest.mark.slow
def test_report_json_has_the_settings_the_comparison_with_the_control_and_the_preferences(store):
    _, out, _, test_id = store
    r = genart("bandit", "report", test_id, "--out", out, "--json")
    data = json.loads(r.stdout)
    assert data["approved_by"] == "ana" and "change cap 10 pts per 1h" in data["settings"]
    (seg,) = data["segments"]
    control = next(a for a in seg["arms"] if a["is_control"])
    made = [a for a in seg["arms"] if not a["is_control"]]
    assert control["prob_beats_control"] is None and all(0 <= a["prob_beats_control"] <= 1 for a in made)
    assert sum(a["impressions"] for a in seg["arms"]) == 1200
    assert [p["segment"] for p in data["preferences"]] == ["comedy"] and data["preferences"][0]["summary"]


@pytest.mark.slow
def test_evaluate_prints_estimates_with_intervals(store):
    _, out, _, test_id = store
    r = genart("bandit", "evaluate", test_id, "--out", out, "--json", "--bootstrap", "100")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["n"] == 1200 and {c["name"] for c in data["candidates"]} == {"uniform", "greedy", "control"}
    for e in data["estimates"]:
        assert e["method"] in ("ips", "snips", "dr") and e["ci_low"] <= e["value"] <= e["ci_high"]
    r = genart("bandit", "evaluate", test_id, "--out", out, "--candidate", "control", "--method", "snips")
    assert r.returncode == 0 and "snips" in r.stdout and "unbiased" in r.stdout


@pytest.mark.slow
def test_mistakes_are_one_line_with_a_cli_hint(store, tmp_path):
    d, out, run_id, test_id = store
    r = genart("bandit", "report", "nope", "--out", out)
    one_error(r, "unknown bandit test 'nope'", test_id, "genart bandit list")
    assert "create_test" not in r.stderr  # hints are commands, not Python calls
    one_error(genart("bandit", "report", test_id, "--out", tmp_path / "empty"), "no genart store at")
    one_error(genart("bandit", "report", test_id, cwd=tmp_path), "no genart store here")
    one_error(genart("bandit", "report", test_id, "--out", out, "--store", out), "--store and --out")
    base = ["bandit", "create", run_id, "--reviewer", "ana", "--out", out, "--test-id", "t2"]
    one_error(genart(*base, "--reward", "plays"), "invalid --reward: 'plays'", "play:MINUTES")  # the option typed
    one_error(genart(*base, "--change-interval", "soon"), "invalid --change-interval: 'soon'")
    one_error(genart(*base, "--policy", "thompson"), "unknown bandit policy 'thompson'")
    one_error(genart(*base, "--floor", "0.9"), "invalid --floor")
    one_error(genart("bandit", "create", "no-such-run", "--reviewer", "ana", "--out", out), "unknown run 'no-such-run'")
    one_error(genart("bandit", "create", "--title", "bunny", "--reviewer", "ana", "--out", out), "invalid --title")
    one_error(genart("bandit", "report", "--out", out), "TEST_ID / --title")


@pytest.mark.slow
def test_stop_then_the_test_serves_its_winner(store, tmp_path):
    _, out, _, test_id = store
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(out, copy)
    r = genart("bandit", "stop", test_id, "--out", copy)
    assert r.returncode == 0 and "stopped" in r.stdout
    r = genart("bandit", "report", test_id, "--out", copy, "--json")
    assert json.loads(r.stdout)["status"] == "stopped"
    one_error(genart("bandit", "approve", test_id, "--reviewer", "x", "--out", copy), "is stopped")


@pytest.mark.slow
def test_simulate_compare_puts_policies_side_by_side_and_says_what_regret_is():
    r = genart("bandit", "simulate", "--compare", "--rounds", "3000", "--arms", "4", "--segments", "2")
    assert r.returncode == 0, r.stderr
    for policy in ("ts", "egreedy", "ucb1", "lints", "linucb"):
        assert f" {policy} " in r.stdout or r.stdout.count(policy) > 0
    assert "Regret is the expected clicks a policy lost" in r.stdout and "lost the fewest" in r.stdout
    assert all(len(line) <= 80 for line in r.stdout.splitlines())
    r = genart("bandit", "simulate", "--compare", "--rounds", "2000", "--json")
    rows = json.loads(r.stdout.strip().splitlines()[-1])
    assert {row["policy"] for row in rows} >= {"ts", "egreedy", "ucb1", "lints", "linucb"}
    one_error(genart("bandit", "simulate", "--compare", "--store", "x.db"), "--compare")


@pytest.mark.slow
def test_preferences_and_loop_commands(store):
    _, out, _, test_id = store
    r = genart("bandit", "preferences", "--out", out, "--reward", "play:15", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["segment"] == "comedy"
    r = genart("bandit", "preferences", "--out", out, "--reward", "play:15")
    assert r.returncode == 0 and "comedy:" in r.stdout
    one_error(genart("bandit", "preferences", "--out", out, "--reward", "minutes"), "invalid --reward")
    r = genart("bandit", "loop", test_id, "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    step = json.loads(r.stdout)
    assert step["test_id"] == test_id and [c[0] for c in step["checked"]] == ["comedy"]
