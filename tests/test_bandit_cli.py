"""`genart bandit simulate | report` through the Typer sub-app."""

from __future__ import annotations

import importlib.util
import json

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
