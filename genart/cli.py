"""The ``genart`` command line: the batch job and the tools around it.

Imports ``genart.api`` and ``genart.types`` only. User mistakes print one line and a hint, never a
traceback, and exit non-zero. Progress goes to stderr so ``--json`` output on stdout stays clean.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from pathlib import Path
from typing import Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from genart import api
from genart.errors import GenartError

app = typer.Typer(help="genart: personalised thumbnail artwork from a title's video.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
models_app = typer.Typer(help="Model presets (models.yaml).", no_args_is_help=True)
profiles_app = typer.Typer(help="Taste profiles (prompts/*.yaml).", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(profiles_app, name="profiles")

err = Console(stderr=True)
out = Console()

STAGE_LABELS = {"frames": "key frames", "models": "loading models", "generate": "generating", "rank": "ranking"}


def handles_errors(fn: Callable) -> Callable:
    """Turn genart's typed errors into one red line plus hint and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GenartError as exc:
            err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
            if exc.hint:
                err.print(f"[dim]hint: {exc.hint}[/]", highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]: everything finished so far is in the store")
            raise typer.Exit(130) from None

    return wrapper


@contextlib.contextmanager
def rich_progress(enabled: bool = True) -> Iterator[Optional[Callable[[str, int, int], None]]]:
    """A ``progress(stage, done, total)`` callback drawing one Rich bar per stage on stderr."""
    if not enabled:
        yield None
        return
    bars = Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=False)
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(STAGE_LABELS.get(stage, stage), total=max(total, 1))
        bars.update(tasks[stage], completed=done, total=max(total, 1))

    with bars:
        yield update


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _print_result(result) -> None:
    out.print(f"[bold]run {result.run_id}[/] (preset {result.preset})")
    for pid, items in result.ranked:
        table = Table(title=f"{pid}: best first", title_justify="left", show_lines=False)
        for col in ("#", "total", "scores", "key frame", "file"):
            table.add_column(col)
        for rv in items[:5]:
            scores = " ".join(f"{k}={v:.2f}" for k, v in rv.scores.items)
            table.add_row(str(rv.rank), f"{rv.total:.3f}", scores, rv.variant.keyframe.timecode, str(rv.path))
        out.print(table)
    rejected = sum(len(items) for _, items in result.rejected)
    if rejected:
        out.print(f"[yellow]{rejected} variant(s) rejected[/] (reasons in result.json and the store)")
    out.print(f"ranked variants: [bold]{result.out_dir}[/]  (overview: {result.out_dir / 'overview.png'})")


@app.command()
@handles_errors
def run(
    source: Path = typer.Argument(..., help="A video file, an image, or a folder of stills."),
    profiles: str = typer.Option("romance,thriller", "--profiles", "-p", help="Comma-separated profile ids."),
    preset: Optional[str] = typer.Option(None, "--preset", help="A preset of models.yaml (default: its default_preset)."),
    frames: int = typer.Option(4, "--frames", help="Key frames to pick."),
    variants: int = typer.Option(4, "--variants", help="Variants per key frame, per profile."),
    out_dir: Path = typer.Option(Path("runs"), "--out", help="Output folder."),
    db: Optional[str] = typer.Option(None, "--db", help="SQLAlchemy URL of the store (default: SQLite in --out)."),
    seed: int = typer.Option(0, "--seed"),
    title: str = typer.Option("", "--title", help="The title's name, for prompts."),
    genre: str = typer.Option("", "--genre"),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Keep the best k per profile in the result."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Pick key frames, make variants for each profile, rank them, and store the run."""
    with rich_progress(True) as progress:
        result = api.create_variants(source, profiles=profiles, preset=preset, frames=frames,
                                     variants_per_frame=variants, out=out_dir, db=db, seed=seed, title=title,
                                     genre=genre, top_k=top_k, progress=progress)
    if as_json:
        _print_json(result.to_json())
    else:
        _print_result(result)


@app.command()
@handles_errors
def demo(
    out_dir: Path = typer.Option(Path("runs/demo"), "--out", help="Output folder."),
    video: Optional[Path] = typer.Option(None, "--video", help="Your own video instead of the built-in demo clip."),
    preset: str = typer.Option("classic", "--preset"),
    profiles: str = typer.Option("romance,thriller,comedy,action", "--profiles", "-p"),
) -> None:
    """Run the main job on a short clip: the built-in one (public-domain photos, cut together) or yours."""
    from genart.demo import make_demo_clip

    if video is None:
        clip = make_demo_clip(out_dir / "demo_clip.mp4")
        video = clip.path
        err.print(f"demo clip: {video} ({clip.n_frames} frames, cuts at frames {list(clip.cut_frames)})")
    with rich_progress(True) as progress:
        result = api.create_variants(video, profiles=profiles, preset=preset, frames=4, variants_per_frame=3,
                                     out=out_dir, title="Genart Demo", genre="film", progress=progress)
    _print_result(result)


@app.command()
@handles_errors
def frames(
    source: Path = typer.Argument(..., help="A video file, an image, or a folder of stills."),
    max_frames: int = typer.Option(12, "--max", help="At most this many key frames."),
    out_dir: Path = typer.Option(Path("runs/frames"), "--out"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Pick key frames only: PNGs and a contact sheet with timecodes and scores."""
    from genart.sheets import grid

    with rich_progress(True) as progress:
        kfs = api.extract_keyframes(source, max_frames=max_frames, progress=progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, kf in enumerate(kfs):
        path = out_dir / f"{i + 1:02d}_{kf.timecode.replace(':', '-')}.png"
        kf.image.save(path)
        rows.append({"t_s": round(kf.t_s, 3), "frame": kf.frame_index, "shot": kf.shot, "path": str(path),
                     "timecode": kf.timecode, "faces": len(kf.faces),
                     "scores": {k: round(v, 4) for k, v in kf.scores.items}})
    cells = [(kf.image, [kf.timecode, f"shot {kf.shot}  q {kf.scores.get('quality', 0):.2f}  faces {len(kf.faces)}"])
             for kf in kfs]
    sheet_rows = [(f"{i * 4 + 1}-", cells[i * 4:(i + 1) * 4]) for i in range((len(cells) + 3) // 4)]
    sheet = grid(sheet_rows, title=f"key frames of {source.name}")
    sheet.save(out_dir / "contact_sheet.png")
    if as_json:
        _print_json({"source": str(source), "contact_sheet": str(out_dir / "contact_sheet.png"), "keyframes": rows})
    else:
        for r in rows:
            out.print(f"{r['timecode']}  shot {r['shot']:>3}  faces {r['faces']}  {r['path']}")
        out.print(f"contact sheet: {out_dir / 'contact_sheet.png'}")


# --- models -------------------------------------------------------------------------------------
@models_app.command("list")
@handles_errors
def models_list() -> None:
    """The presets of models.yaml."""
    table = Table("preset", "kind", "generator", "ranker", "description")
    for spec in api.list_presets():
        gen = f"{spec.generator.model_id}@{(spec.generator.revision or '-')[:10]}" if spec.generator else "reframe+grade"
        rank = spec.ranker.clip.pretrained if spec.ranker.clip else "measured features"
        table.add_row(spec.name, spec.kind + (" (random weights)" if spec.random_weights else ""), gen, rank,
                      spec.description)
    out.print(table)


@models_app.command("check")
@handles_errors
def models_check(preset: str = typer.Argument(..., help="A preset name.")) -> None:
    """Whether a preset's weights are on this machine (no network)."""
    check = api.check_preset(preset)
    if not check.items:
        out.print(f"[green]{preset}[/]: needs no downloaded weights")
    for item in check.items:
        mark = "[green]present[/]" if item.present else "[red]absent[/]"
        out.print(f"{item.role:<10} {item.model_id} @ {item.revision or '-'}: {mark}  ({item.where})")
        if not item.present:
            out.print(f"           get it: {item.how}")
    raise typer.Exit(0 if check.ok else 1)


@models_app.command("pull")
@handles_errors
def models_pull(preset: str = typer.Argument(..., help="A preset name.")) -> None:
    """Download a preset's weights into the Hugging Face cache (or build the tiny preset)."""
    from genart.config import load_models_config
    from genart.models import pull_preset

    pull_preset(load_models_config().preset(preset))
    out.print(f"[green]{preset}[/]: ready")


# --- profiles -----------------------------------------------------------------------------------
@profiles_app.command("list")
@handles_errors
def profiles_list() -> None:
    """The taste profiles in prompts/."""
    table = Table("id", "name", "locale", "aspects", "version", "description")
    for p in api.list_profiles():
        table.add_row(p.id, p.name, p.locale, " ".join(p.aspects), p.version, p.description[:70])
    out.print(table)


@profiles_app.command("show")
@handles_errors
def profiles_show(profile_id: str = typer.Argument(...)) -> None:
    """One profile, in full."""
    import dataclasses

    p = api.get_profile(profile_id)
    data = dataclasses.asdict(p)
    data["weights"] = p.weights.as_dict()
    data["path"] = str(p.path)
    _print_json(data)


@profiles_app.command("validate")
@handles_errors
def profiles_validate(paths: list[Path] = typer.Argument(..., help="Profile files to check.")) -> None:
    """Check profile files without running anything."""
    from genart.profiles import load_profile

    for path in paths:
        p = load_profile(path)
        out.print(f"[green]ok[/] {path}: {p.id} (version {p.version})")


@app.command("app")
@handles_errors
def app_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs --auth."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (default 7860 or the next free one)."),
    auth: Optional[str] = typer.Option(None, "--auth", envvar="GENART_APP_AUTH",
                                       help="USER:PASSWORD[,USER2:PASSWORD2] (or env GENART_APP_AUTH)."),
    out_dir: Path = typer.Option(Path("runs"), "--out", help="The runs folder the app reviews."),
) -> None:
    """Serve the review app (Gradio) on the runs folder: upload, generate, review, hand off."""
    from app import launch  # gradio loads only for this command

    launch(out_dir, host, port, auth)


def _mount_optional() -> None:
    try:
        from genart.bandit.cli import app as bandit_app
    except ImportError:  # the bandit stage's extras are not installed
        return
    app.add_typer(bandit_app, name="bandit")


_mount_optional()


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
