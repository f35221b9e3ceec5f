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
            scores = " ".join(f"{k[:3]} {v:.2f}" for k, v in rv.scores.items)
            ranked_copy = result.out_dir / pid / f"{rv.rank:02d}_{rv.variant.id[:8]}.png"
            table.add_row(str(rv.rank), f"{rv.total:.3f}", scores, rv.variant.keyframe.timecode,
                          str(ranked_copy if ranked_copy.exists() else rv.path))
        out.print(table)
    rejected = sum(len(items) for _, items in result.rejected)
    if rejected:
        out.print(f"[yellow]{rejected} variant(s) rejected[/] (reasons in result.json and the store)")
    out.print(f"ranked variants: [bold]{result.out_dir}[/]  (overview: {result.out_dir / 'overview.png'})")


def _locale_titles(pairs: list[str]) -> dict[str, str] | None:
    from genart.errors import InvalidArgumentError

    titles = {}
    for pair in pairs:
        locale, sep, text = pair.partition("=")
        if not sep or not locale.strip() or not text.strip():
            raise InvalidArgumentError("--title-for", pair, "LOCALE=TEXT, e.g. ja-JP=タイトル")
        titles[locale.strip()] = text.strip()
    return titles or None


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
    title_overlay: Optional[bool] = typer.Option(None, "--title-overlay/--no-title-overlay",
                                                 help="Lay the title into the artwork (default: when --title is given)."),
    title_for: list[str] = typer.Option([], "--title-for", help="LOCALE=TEXT, the title for a regional profile "
                                        "(repeatable), e.g. --title-for ja-JP=ビッグ・バック・バニー"),
) -> None:
    """Pick key frames, make variants for each profile, rank them, and store the run."""
    titles = _locale_titles(title_for)
    with rich_progress(True) as progress:
        result = api.create_variants(source, profiles=profiles, preset=preset, frames=frames,
                                     variants_per_frame=variants, out=out_dir, db=db, seed=seed, title=title,
                                     genre=genre, top_k=top_k, progress=progress, title_overlay=title_overlay,
                                     titles=titles)
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
    if video is None:
        clip = api.make_demo_clip(out_dir / "demo_clip.mp4")
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
    out_dir: Path = typer.Option(Path("runs/frames"), "--out", help="Folder for the PNGs and the contact sheet."),
    as_json: bool = typer.Option(False, "--json", help="Print shots, cuts and key frames as JSON on stdout."),
    sample_fps: float = typer.Option(2.0, "--sample-fps", help="Candidate frames analysed per second of video."),
    detector: str = typer.Option("content", "--detector", help="PySceneDetect detector: content or adaptive."),
    cast: list[str] = typer.Option([], "--cast", help="Casting note NAME=IMAGE (repeatable): a reference photo "
                                   "of a person; matching faces are named."),
) -> None:
    """Shots and key frames: PNGs, a contact sheet (faces and who, text and logos, bars, transitions,
    characters), and (--json) everything found."""
    # the frames stage's full result (shots, cuts) is not in genart.api yet: imported here until it is
    from genart.errors import InvalidArgumentError
    from genart.sheets import frames_sheet

    notes: dict[str, list[str]] = {}
    for item in cast:
        name, sep, image = item.partition("=")
        if not sep or not name.strip() or not image.strip():
            raise InvalidArgumentError("--cast", item, "NAME=IMAGE, e.g. --cast 'Ada Lovelace=ada.jpg'")
        notes.setdefault(name.strip(), []).append(image.strip())
    with rich_progress(not as_json) as progress:
        result = api.analyse_frames(source, max_frames, sample_fps=sample_fps, detector=detector, progress=progress,
                                    cast=notes or None)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = result.to_json()
    for i, (kf, row) in enumerate(zip(result.keyframes, data["keyframes"])):
        path = out_dir / f"{i + 1:02d}_{kf.timecode.replace(':', '-')}.png"
        kf.image.save(path)
        row["path"] = str(path)
    sheet_path = out_dir / "contact_sheet.png"
    frames_sheet(result, title=f"key frames of {source.name}").save(sheet_path)
    if as_json:
        _print_json({"source": str(source), "contact_sheet": str(sheet_path), **{k: v for k, v in data.items()
                                                                                if k != "source"}})
        return
    out.print(f"{len(result.shots)} shots, cuts at {', '.join(f'{t:.2f}' for t in result.cuts_s) or 'none'} s")
    if result.active_area is not None:
        x, y, w, h = result.active_area
        bars = (w, h) != (result.width, result.height)
        out.print(f"bars cropped: picture {w}x{h} at ({x}, {y}) of {result.width}x{result.height}" if bars
                  else "no bars")
    for tr in result.transitions:
        out.print(f"{tr.kind} {tr.start_s:.2f}-{tr.end_s:.2f} s (no key frame inside)")
    for c in result.characters:
        out.print(f"character {c.label}: {c.screen_time_s:.1f} s on screen, {len(c.appearances)} appearance(s)")
    for r in result.regions:
        out.print(f"{r.kind} at ({r.box.x:.0f}, {r.box.y:.0f}, {r.box.w:.0f}x{r.box.h:.0f}) in every frame")
    for kf, row in zip(result.keyframes, data["keyframes"]):
        who = ", ".join(p.character or "?" for p in kf.people)
        marks = ", ".join(sorted({r.kind for r in kf.regions}))
        out.print(f"{kf.timecode}  frame {kf.frame_index:>6}  shot {kf.shot:>3}  faces {len(kf.faces)}"
                  + (f" ({who})" if who else "") + (f"  marks: {marks}" if marks else "")
                  + f"  quality {kf.scores.get('quality', 0):.2f}  {row['path']}", highlight=False)
    for msg in result.warnings:
        out.print(f"[yellow]note:[/] {msg}", highlight=False)
    out.print(f"contact sheet: {sheet_path}")


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
    api.pull_preset(preset)
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
    for path in paths:
        p = api.validate_profile(path)
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


# --- batch: a whole catalogue (genart.batch) --------------------------------------------------------
@app.command("batch")
@handles_errors
def batch_cmd(
    catalog: Path = typer.Argument(..., help="The catalogue YAML: titles (video or stills, title, genre), profiles, "
                                             "variants, preset (see examples/catalog.yaml)."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder: the store, every title's run, the summary."),
    engine: str = typer.Option("local", "--engine", help="local (this process), accelerate (accelerate launch, "
                                                         "one process per GPU) or ray (Ray tasks with GPU resources)."),
    db: Optional[str] = typer.Option(None, "--db", help="SQLAlchemy URL of the store (default: SQLite in --out)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="First batch size to try (halved on OOM)."),
    compile_unet: bool = typer.Option(False, "--compile", help="torch.compile the UNet and VAE decoder (slow first "
                                                               "batch of each shape, faster after; batches padded "
                                                               "to powers of two so few shapes compile)."),
    num_processes: Optional[int] = typer.Option(None, "--num-processes",
                                                help="accelerate: processes (default: one per GPU, else 2)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="ray: a cluster's address (default local)."),
    ray_num_cpus: Optional[int] = typer.Option(None, "--ray-num-cpus", help="ray: CPUs of the local Ray."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Run (or resume) a whole catalogue: frames, variants, ranking and the bandit hand-off for every title.

    Killed at any point, the same command continues where it stopped and redoes nothing finished.
    """
    import dataclasses

    with rich_progress(True) as progress:
        report = api.run_catalog(catalog, out_dir, engine=engine, db=db, batch_size=batch_size, compile=compile_unet,
                             num_processes=num_processes, ray_address=ray_address, ray_num_cpus=ray_num_cpus,
                             progress=progress)
    if as_json:
        _print_json({**dataclasses.asdict(report), "titles": [dataclasses.asdict(t) for t in report.titles]})
        return
    table = Table(title=f"batch {catalog.name}: {report.engine} engine, preset {report.preset}", title_justify="left")
    table.add_column("title", no_wrap=True)
    for col in ("status", "frames", "images", "new", "device s", "img/s", "arms", "best total per profile"):
        table.add_column(col, overflow="fold")
    for t in report.titles:
        best = ", ".join(f"{p} {s:.3f}" for p, _, s in t.best)
        status = t.status if t.images >= t.expected else f"{t.status} {t.images}/{t.expected}"
        table.add_row(t.title_id, status, str(t.keyframes), str(t.images), str(t.made_now), f"{t.device_s:.2f}",
                      f"{t.images_per_s:.2f}", str(t.arms), best or (t.error or "-"))
    out.print(table)
    extra = f"; {report.oom_retries} OOM back-off(s), batch size {report.batch_size}" if report.oom_retries else ""
    out.print(f"{sum(t.images for t in report.titles)} variants in {len(report.titles)} titles, "
              f"{report.wall_s:.1f} s wall{extra}; summary: {report.summary_csv}, {report.summary_json}")


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
