"""The command line: JSON shape, listings, and every user mistake as one line and a non-zero exit."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genart.cli import app
from genart.store.exposure_log import SqlExposureLog

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def invoke(*args, env=None):
    result = runner.invoke(app, [str(a) for a in args], env=env)
    # a typed error must exit through typer.Exit, never as an unhandled exception
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.slow
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
    assert data["warnings"] == []  # what was worked around (none here)


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


@pytest.mark.slow
def test_frames_command(stills_dir, tmp_path):
    r = invoke("frames", stills_dir, "--max", "2", "--out", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert len(data["keyframes"]) == 2 and Path(data["contact_sheet"]).exists()
    assert all(Path(k["path"]).exists() for k in data["keyframes"])


@pytest.mark.slow
def test_real_process_exit_code_and_no_traceback(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    p = subprocess.run([sys.executable, "-m", "genart.cli", "run", str(tmp_path / "nope.mp4")], capture_output=True,
                       text=True, env=env, timeout=120)
    assert p.returncode == 2 and "source not found" in p.stderr and "Traceback" not in p.stderr


# --- the command line as a newcomer meets it: real processes, an 80-column terminal ---------------------
def cli(*args, columns: int = 80, env: dict | None = None, cwd: Path | None = None, timeout: int = 600):
    """``genart ARGS`` in a real process with a terminal of ``columns``; (exit code, stdout, stderr)."""
    full = dict(os.environ, HF_HUB_OFFLINE="1", COLUMNS=str(columns), **(env or {}))
    p = subprocess.run([sys.executable, "-m", "genart.cli", *map(str, args)], capture_output=True, text=True,
                       env=full, cwd=cwd, timeout=timeout)
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    return p.returncode, p.stdout, p.stderr


def _widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def _table_rows(stdout: str, profile: str) -> tuple[str, list[str], list[list[str]]]:
    """(title line, header cells, row cells) of one profile's table in ``genart run``'s output."""
    lines = stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"{profile}: "))
    header = lines[at + 1].split()
    rows = []
    for line in lines[at + 3:]:
        if not line.strip() or not line.split()[0].isdigit():
            break
        rows.append(line.split())
    return lines[at].strip(), header, rows


@pytest.mark.parametrize("columns", [80, 160])
@pytest.mark.slow
def test_run_table_reads_at_80_and_160_columns(stills_dir, tmp_path, columns):
    rc, out, err = cli("run", stills_dir, "-p", "romance,thriller", "--preset", "classic", "--frames", "2",
                       "--variants", "4", "--out", tmp_path / "runs", columns=columns, cwd=tmp_path)
    assert rc == 0, err
    assert _widest(out) <= columns, out  # nothing wraps or is cut
    data = json.loads(next((tmp_path / "runs" / "runs").glob("*/result.json")).read_text())
    folder = next(line for line in out.splitlines() if line.startswith("files: ")).split()[1]
    assert folder.startswith("runs/runs/") and folder.endswith("/<profile>/")  # relative to where we are
    for pid in ("romance", "thriller"):
        title, header, rows = _table_rows(out, pid)
        n = len(data["profiles"][pid])
        assert f"{n} ranked, {min(n, 5)} shown" in title and len(rows) == min(n, 5)
        if columns == 160:  # full score names when they fit
            assert {"affinity", "fidelity", "quality", "legibility", "safety", "aspect", "frame", "file"} <= set(header)
        else:  # short ones, and the legend says what they are
            assert {"aff", "fid", "qual", "leg", "safe", "aspect", "file"} <= set(header)
            assert "aff = affinity" in out and "fid = fidelity" in out
        assert "rank" in header  # the ranking sets the order's own score on every row
        keys = [float(r[header.index("rank")]) for r in rows]
        for r, item in zip(rows, data["profiles"][pid]):
            assert r[header.index("aspect")] == item["params"]["aspect"]
            assert float(r[header.index("rank")]) == pytest.approx(item["rank_score"], abs=5e-4)
            assert (tmp_path / folder.replace("<profile>", pid) / r[header.index("file")]).is_file()
        # "best first" only when the rows follow the score shown; otherwise it says rank order, and why
        if all(a >= b for a, b in zip(keys, keys[1:])):
            assert title.endswith("best first by rank score"), title
        else:
            assert title.endswith("in rank order*") and "* rank order: the top places go to a variety" in out
            assert "best first" not in title


@pytest.mark.slow
def test_run_table_shows_the_orders_own_score_and_its_notes(stills_dir, tmp_path, monkeypatch):
    """Where the ranking sets ``rank_score``, ``placed_by`` and ``needs_review``, the table shows the score
    the order follows and a note per moved or doubtful row, still within 80 columns."""
    import dataclasses
    import io

    from rich.console import Console

    import genart.cli as cli_module
    from genart import api

    monkeypatch.chdir(tmp_path)  # paths print relative to here, as for someone in their project folder
    result = api.create_variants(stills_dir, profiles="romance", preset="classic", frames=2, variants_per_frame=3,
                                 out="runs")
    items = result["romance"]
    moved = tuple(dataclasses.replace(rv, rank_score=round(0.9 - 0.05 * i, 4),
                                      placed_by="diversity: a different key frame than #1" if i == 1 else None,
                                      needs_review="safety 0.71 is in the needs-review band" if i == 2 else None)
                  for i, rv in enumerate(items))
    buf = io.StringIO()
    old = cli_module.out
    cli_module.out = Console(file=buf, width=80)
    try:
        cli_module._print_result(dataclasses.replace(result, ranked=(("romance", moved),)))
    finally:
        cli_module.out = old
    text = buf.getvalue()
    title, header, rows = _table_rows(text, "romance")
    assert title.endswith("best first by rank score") and header[:2] == ["#", "rank"]
    assert [float(r[1]) for r in rows] == [rv.rank_score for rv in moved[:5]]
    assert "#2: diversity: a different key frame than #1" in text
    assert "#3 needs review: safety 0.71 is in the needs-review band" in text
    assert "rank = the rank score, the number the order follows" in text and _widest(text) <= 80


@pytest.mark.slow
def test_help_has_no_type_noise():
    for args in (["--help"], ["run", "--help"], ["frames", "--help"], ["models", "--help"], ["app", "--help"],
                 ["batch", "--help"], ["bandit", "simulate", "--help"]):
        rc, out, _ = cli(*args)
        assert rc == 0
        for noise in ("<bool>", "<str>", "<path>", "<int", "<float", "list[str]", "{source}", "{catalog}"):
            assert noise not in out, (args, noise, out)
    _, out, _ = cli("run", "--help")
    assert "Usage: genart run [OPTIONS] SOURCE" in out and "--frames" in out and " N " in out


@pytest.mark.parametrize("args, option, bad", [
    (["run", "{stills}", "--variants", "0"], "--variants", "variants_per_frame"),
    (["run", "{stills}", "--frames", "0"], "--frames", None),
    (["run", "{stills}", "--top-k", "0"], "--top-k", "None"),
    (["frames", "{stills}", "--max", "0"], "--max", "max_frames"),
    (["frames", "{stills}", "--sample-fps", "0"], "--sample-fps", "sample_fps"),
])
@pytest.mark.slow
def test_errors_name_the_option_typed(stills_dir, tmp_path, args, option, bad):
    rc, out, err = cli(*[a.replace("{stills}", str(stills_dir)) for a in args], "--out", tmp_path)
    lines = err.splitlines()
    assert rc == 2 and lines[0].startswith(f"error: invalid {option}: 0"), err  # first line: no empty bar above
    assert bad is None or bad not in err


@pytest.mark.slow
def test_title_for_checks_the_locale_and_says_when_it_is_unused(stills_dir, tmp_path):
    rc, _, err = cli("run", stills_dir, "--title-for", "xx=foo", "--out", tmp_path)
    assert rc == 2 and "invalid --title-for: 'xx'" in err and "not a known language" in err
    assert not (tmp_path / "runs").exists()  # refused before anything was written
    rc, out, err = cli("run", stills_dir, "-p", "romance", "--preset", "classic", "--frames", "1", "--variants", "1",
                       "--title", "Night Train", "--title-for", "ja-JP=夜行列車", "--out", tmp_path, "--json")
    assert rc == 0, err
    said = [line for line in err.splitlines() if "ja-JP" in line]
    assert said == ["warning: no profile of this run has the locale ja-JP, so its title is not used "
                    "(profiles: romance en-US)"], err
    assert json.loads(out)["warnings"] == [said[0].removeprefix("warning: ")]


@pytest.mark.slow
def test_warnings_are_genarts_one_line_each_and_kept_in_the_run(stills_dir, tmp_path):
    """A TitleWarning (no font has these code points) prints as genart's one line, never Python's
    ``file.py:NN: TitleWarning`` with the source line under it, and lands in the run's warnings."""
    rc, out, err = cli("run", stills_dir, "-p", "romance", "--preset", "classic", "--frames", "1", "--variants", "2",
                       "--title", "\u0378\u0379", "--out", tmp_path, "--json")
    assert rc == 0, err
    said = [line for line in err.splitlines() if "no font covering the title" in line]
    assert len(said) == 1 and said[0].startswith("warning: no font covering the title"), err
    assert "TitleWarning" not in err and ".py:" not in err and "warn(" not in err
    warned = json.loads(out)["warnings"]
    assert len(warned) == 1 and warned[0] == said[0].removeprefix("warning: ")
    result = json.loads(next((tmp_path / "runs").glob("*/result.json")).read_text())
    assert result["warnings"] == warned


@pytest.mark.slow
def test_a_damaged_video_warns_in_one_line(tmp_path):
    from tests.media import make_clip

    full = make_clip(tmp_path / "full.mp4", [("texture", 24)] * 4, fps=24, container_options={"movflags": "faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.path.read_bytes()[: int(full.path.stat().st_size * 0.6)])
    rc, out, err = cli("frames", cut, "--max", "2", "--out", tmp_path / "f")
    assert rc == 0, err
    said = [line for line in err.splitlines() if "truncated" in line]
    assert len(said) == 1 and said[0].startswith("warning: video ") and "RuntimeWarning" not in err, err


@pytest.mark.slow
def test_names_with_brackets_print_as_they_are(tmp_path):
    """Paths are text, never Rich markup: ``[red]`` prints as it is and ``[/x]`` does not crash."""
    from PIL import Image
    from skimage import data

    folder = tmp_path / "[bold]in"
    folder.mkdir()
    Image.fromarray(data.coffee()).save(folder / "[red]cup.png")
    out_dir = tmp_path / "[/x]"
    rc, out, err = cli("frames", folder / "[red]cup.png", "--out", out_dir)
    assert rc == 0, err
    assert out.startswith("[red]cup.png: 1 still; 1 key frame in ") and "[/x]" in out
    assert "MarkupError" not in err
    rc, _, err = cli("run", out_dir / "[/missing].mp4", "--out", out_dir)
    assert rc == 2 and f"source not found: {out_dir / '[/missing].mp4'}" in err


@pytest.mark.slow
def test_frames_speaks_plain_english(stills_dir, tmp_path):
    from tests.media import make_clip

    one = make_clip(tmp_path / "one.mp4", [("texture", 48)], fps=24)
    rc, out, err = cli("frames", one.path, "--max", "1", "--out", tmp_path / "a")
    assert rc == 0, err
    assert out.startswith("one.mp4: 1 shot, no cuts; 1 key frame in "), out
    three = make_clip(tmp_path / "three.mp4", [("texture", 24)] * 3, fps=24)
    rc, out, _ = cli("frames", three.path, "--max", "2", "--out", tmp_path / "b")
    assert rc == 0 and re.match(r"three\.mp4: 3 shots, 2 cuts at \d\.\d\d, \d\.\d\d s; 2 key frames in ", out), out
    rc, out, _ = cli("frames", stills_dir, "--max", "2", "--out", tmp_path / "c")
    assert rc == 0 and out.startswith(f"{stills_dir.name}: 3 stills; 2 key frames in "), out


@pytest.mark.slow
def test_profiles_list_cuts_descriptions_at_a_word(tmp_path):
    from genart import api

    full = {p.id: p.description for p in api.list_profiles()}
    for columns in (80, 160):
        rc, out, _ = cli("profiles", "list", columns=columns)
        assert rc == 0 and _widest(out) <= columns, out
        rows = [line for line in out.splitlines() if line.split() and line.split()[0] in full]
        assert len(rows) == len(full)
        for line in rows:
            pid = line.split()[0]
            desc = full[pid]
            shown = line[line.index(" ".join(desc.split()[:2])):].rstrip()  # the description cell
            if shown != desc:
                assert shown.endswith(" …"), line
                kept = shown[:-2]
                assert desc.startswith(kept) and desc[len(kept)] == " ", (kept, desc)  # cut between words


@pytest.mark.slow
def test_models_list_names_full_ids_and_what_is_here(tmp_path):
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")}
    rc, out, _ = cli("models", "list", env=env)
    assert rc == 0 and _widest(out) <= 80, out
    assert "stabilityai/sd-turbo @ b261bac6fd2cf515557d5d0707481eafa0485ec2" in out
    assert "laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in out and "laion/CLIP-ViT-L-14-laion2B-s32B-b82K" in out
    blocks = dict(re.findall(r"^(\w+)(?: \(default\))?\n((?:  .*\n)+)", out, re.M))
    assert "weights none needed" in " ".join(blocks["classic"].split())
    assert "weights absent: diffusion, clip" in " ".join(blocks["turbo"].split())
    assert "random weights" in blocks["tiny"]


@pytest.mark.slow
def test_models_pull_offline_says_so_and_how_to_turn_it_off(tmp_path):
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")}
    rc, out, err = cli("models", "pull", "turbo", env=env)
    assert rc == 2, err
    assert err.splitlines()[0].startswith("error: cannot download stabilityai/sd-turbo")
    assert "offline mode is on (HF_HUB_OFFLINE=1)" in err and "HF_HUB_OFFLINE=0 genart models pull turbo" in err
    assert "Couldn't connect" not in err and "Will try to load" not in err  # the hub was never asked
    assert not (tmp_path / "hf" / "hub").exists() or not any((tmp_path / "hf" / "hub").iterdir())
    rc, out, _ = cli("models", "pull", "classic", env=env)
    assert rc == 0 and "classic: ready" in out


@pytest.mark.slow
def test_app_on_a_busy_port_is_one_line(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rc, out, err = cli("app", "--port", port, "--out", tmp_path, timeout=120)
    assert rc == 2, err
    assert err.splitlines() == [f"error: port {port} on 127.0.0.1 is in use (Address already in use)",
                                f"hint: pass another --port (e.g. --port {port + 1}), or stop what is serving on {port}"]


@pytest.mark.slow
def test_app_says_where_it_is_and_not_to_set_share(tmp_path):
    """`genart app` prints its own line with the URL, not Gradio's "set share=True in launch()"."""
    import signal
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "genart.cli", "app", "--port", str(port), "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, HF_HUB_OFFLINE="1", COLUMNS="80"))
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "http://" in line:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    text = "".join(lines)
    assert f"genart review app on http://127.0.0.1:{port}/" in text, text
    assert "share=True" not in text and "Traceback" not in text


# --- front ends: `genart app` finds the review app through the genart.frontends entry points -------------
def _installed_frontend(root: Path, name: str, value: str, module: str = "", code: str = "") -> None:
    """An installed package (a dist-info folder, what pip writes) registering a front end, as another
    distribution would; ``module`` / ``code``: its code beside it."""
    info = root / "genart_fake_frontend-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: genart-fake-frontend\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[genart.frontends]\n{name} = {value}\n")
    if module:
        (root / f"{module}.py").write_text(code)


def test_genart_app_is_the_review_app_pyproject_registers():
    """The launcher `genart app` runs is app.launch, found through pyproject.toml's entry point (which
    the checkout declares even where the installed metadata predates it), not an import in genart/."""
    import app as review_app
    from genart.cli import FRONTENDS, _checkout_frontends, frontend

    assert frontend("app") is review_app.launch
    declared = _checkout_frontends(REPO / "pyproject.toml")
    assert declared["app"].value == "app:launch" and declared["app"].group == FRONTENDS == "genart.frontends"
    assert "from app" not in (REPO / "genart" / "cli.py").read_text()


def test_a_front_end_an_installed_package_registers_is_launched(tmp_path, monkeypatch):
    """A front end another package registers (in its installed metadata) is what `genart app` would run."""
    from genart.cli import frontend

    _installed_frontend(tmp_path, "kiosk", "genart_kiosk:launch", "genart_kiosk",
                        "def launch(*args, **kwargs):\n    return ('kiosk', args)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    launch = frontend("kiosk")
    assert launch("runs") == ("kiosk", ("runs",))


def test_a_missing_or_broken_front_end_is_a_typed_error_with_the_fix(tmp_path, monkeypatch):
    from genart.cli import _checkout_frontends, frontend
    from genart.errors import FrontendUnavailableError

    with pytest.raises(FrontendUnavailableError) as missing:
        frontend("kiosk")
    assert "front end 'kiosk' is not available (registered front ends: app" in missing.value.message
    assert "pip install -e ." in missing.value.hint
    _installed_frontend(tmp_path, "broken", "genart_no_such_module:launch")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(FrontendUnavailableError, match="genart_no_such_module:launch does not load"):
        frontend("broken")
    # a pyproject.toml that is not genart's (or not TOML) declares nothing
    other = tmp_path / "pyproject.toml"
    other.write_text('[project]\nname = "other"\n[project.entry-points."genart.frontends"]\napp = "x:y"\n')
    assert _checkout_frontends(other) == {}
    other.write_text("not = [toml")
    assert _checkout_frontends(other) == {}


@pytest.mark.slow
def test_bandit_plots_of_a_test_without_traffic_warn_nothing(tmp_path):
    """matplotlib says "No artists with labels found" for a legend of nothing: genart draws none."""
    import warnings

    from genart.bandit.report import plot_test
    from genart.bandit.tester import Tester
    from genart.types import Arm

    tester = Tester(SqlExposureLog(f"sqlite:///{tmp_path / 'b.sqlite'}"))
    arms = [Arm("t", f"{seg}-{k}", seg, None, None) for seg in ("a", "b") for k in range(2)]
    tester.create_test("t", arms)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paths = plot_test(tester, "t", tmp_path / "plots")
    assert all(p.is_file() for p in paths)
