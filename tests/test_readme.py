"""The README as a newcomer meets it: every command of its code blocks is run, in order, so it cannot drift.

The commands run in a scratch folder that stands in for the checkout's root (``prompts/`` and
``examples/`` are linked in), with ``genart`` on the PATH as ``make demo``'s environment puts it there,
``HF_HUB_OFFLINE=1`` and an 80-column terminal. The files a reader brings along are made up front:
``my_trailer.mp4`` and ``trailer.mp4`` are the demo clip, ``current_thumbnail.jpg`` a public-domain photo.

A ``sh`` block's line is one command (comments are the reader's notes, and mark what is special):
``# needs the network`` / ``# needs weights`` / ``# needs a GPU`` skip it with that reason;
``# serves until Ctrl-C`` runs it until it prints its URL and stops it; ``# exits N`` expects that
exit status (``# exits N while ...``: N, or 0 where the condition does not hold on this machine). ``make demo`` runs the Makefile's own recipe; ``make test`` would run this very suite and
is skipped, saying so. ``python`` blocks run as scripts.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
NEEDS = re.compile(r"#\s*(needs (?:the network|weights|a GPU)\b[^#]*)")
EXITS = re.compile(r"#.*\bexits (\d+)( while)?")
SERVES = "serves until Ctrl-C"


@dataclass(frozen=True)
class Step:
    kind: str  # "sh" | "python"
    text: str
    line: int  # where it starts in README.md

    def __str__(self) -> str:
        return f"README:{self.line} {self.text.splitlines()[0][:70]}"


def readme_steps(text: str) -> list[Step]:
    """The commands of the README's ``sh`` blocks (one per line, ``\\`` continuations joined) and its
    ``python`` blocks, in reading order."""
    steps: list[Step] = []
    kind, buf, start, pending = None, [], 0, ""
    for n, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence and kind is None:
            kind, buf, start = fence.group(1) or "text", [], n + 1
        elif fence:
            if kind == "python":
                steps.append(Step("python", "\n".join(buf), start))
            kind = None
        elif kind == "python":
            buf.append(line)
        elif kind in ("sh", "bash") and (pending or (line.strip() and not line.lstrip().startswith("#"))):
            if not pending:
                start = n
            pending += line.strip()
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
            else:
                steps.append(Step("sh", pending, start))
                pending = ""
    return steps


def make_recipe(target: str) -> str:
    """The command of a Makefile target, as the reader's shell would run it once ``.venv`` exists."""
    lines = (REPO / "Makefile").read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if re.match(rf"^{target}:", line))
    recipe = lines[at + 1].strip()
    return recipe.replace("$(TEST_ENV) ", "").replace("$(VENV)/bin/", "").replace("$(PY)", "python")


STEPS = readme_steps(README.read_text(encoding="utf-8"))


# --- what the README promises, checked fast -----------------------------------------------------------
def test_readme_starts_with_the_two_commands_and_both_are_real_targets():
    first = STEPS[:2]
    assert [s.text.split("#")[0].strip() for s in first] == ["make demo", "make test"]
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert make_recipe("demo").startswith("genart demo --out runs/demo")


def test_the_pictures_are_there_and_small():
    text = README.read_text(encoding="utf-8")
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(pictures) >= 2, pictures
    assert text.index(pictures[0]) < text.index("## Quick start")  # the picture comes before the reading
    for rel in pictures:
        path = REPO / rel
        assert path.is_file(), rel
        assert path.stat().st_size < 200_000, (rel, path.stat().st_size)
        from PIL import Image

        with Image.open(path) as im:
            assert im.width >= 800, (rel, im.size)  # a picture a person can read, not a thumbnail


def _command_path(line: str) -> str:
    """``genart models pull turbo --x`` -> ``genart models pull``: the words that name a (sub)command."""
    import typer

    from genart.cli import app

    node, words = typer.main.get_command(app), ["genart"]
    for w in line.split()[1:]:
        sub = getattr(node, "commands", {}).get(w)
        if sub is None:
            break
        node, words = sub, words + [w]
    return " ".join(words)


@pytest.mark.slow
def test_every_command_named_in_the_text_is_one_the_blocks_run():
    """An inline `genart ...` in the prose names a command some block runs (so none is untried)."""
    text = README.read_text(encoding="utf-8")
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    run = {_command_path(s.text) for s in STEPS if s.kind == "sh" and s.text.startswith("genart ")}
    named = {_command_path(span) for span in re.findall(r"`(genart [^`]+)`", prose)}
    assert named, "the text names no command"
    assert named <= run, f"named in the text, run by no block: {sorted(named - run)}"


# --- every command, run -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reader(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The reader's folder and environment."""
    from PIL import Image
    from skimage import data

    from genart.demo import make_demo_clip

    root = tmp_path_factory.mktemp("readme")
    for name in ("prompts", "examples"):
        (root / name).symlink_to(REPO / name)
    bin_dir = root / ".bin"
    bin_dir.mkdir()
    (bin_dir / "genart").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m genart.cli "$@"\n')
    (bin_dir / "genart").chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    clip = make_demo_clip(root / "my_trailer.mp4")
    shutil.copyfile(clip.path, root / "trailer.mp4")
    Image.fromarray(data.astronaut()).save(root / "current_thumbnail.jpg", quality=90)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", HF_HUB_OFFLINE="1",
               COLUMNS="80", PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return root, env


def _serve(command: str, cwd: Path, env: dict[str, str], wait_s: float = 300.0) -> str:
    """Start a server command, wait for the URL it prints, stop it as Ctrl-C would; its output."""
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    up = threading.Event()

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            seen.append(line)
            if "http://" in line:
                up.set()

    reader_thread = threading.Thread(target=read, daemon=True)
    reader_thread.start()
    up.wait(wait_s)
    still_running = proc.poll() is None
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    reader_thread.join(10)
    output = "".join(seen)
    assert up.is_set() and still_running, f"{command!r} did not come up serving:\n{output}"
    return output


@pytest.mark.slow
@pytest.mark.parametrize("step", STEPS, ids=str)
def test_readme_command(step: Step, reader):
    root, env = reader
    if step.kind == "python":
        p = subprocess.run([sys.executable, "-c", step.text], cwd=root, env=env, capture_output=True, text=True,
                           timeout=900)
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stdout + p.stderr
        return
    command = step.text
    needs = NEEDS.search(command)
    if needs:
        pytest.skip(f"{needs.group(1).strip()}: not on a test machine")
    bare = command.split("#")[0].strip()
    if bare == "make test":
        pytest.skip("`make test` runs this whole suite, the README test included: not from inside it")
    if bare.startswith(". .venv/bin/activate") or bare.startswith("source .venv/bin/activate"):
        pytest.skip("the test puts `genart` on the PATH itself (as the .venv's activate script does)")
    if bare == "make demo":
        command = make_recipe("demo")
    if SERVES in command:
        output = _serve(command.split("#")[0].strip(), root, env)
        assert "Traceback" not in output and "share=True" not in output, output
        return
    said = EXITS.search(command)
    expect = {int(said.group(1))} | ({0} if said.group(2) else set()) if said else {0}
    p = subprocess.run(["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    output = p.stdout + p.stderr
    assert p.returncode in expect, f"{command!r} exited {p.returncode}, README says {expect}:\n{output}"
    assert "Traceback" not in output, output
