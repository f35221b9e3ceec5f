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
) -> None:
    """Shots and key frames: PNGs, a contact sheet with timecodes and scores, and (--json) the shot list."""
    # the frames stage's full result (shots, cuts) is not in genart.api yet: imported here until it is
    from genart.sheets import contact_sheet

    with rich_progress(not as_json) as progress:
        result = api.analyse_frames(source, max_frames, sample_fps=sample_fps, detector=detector, progress=progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, cells = [], []
    for i, kf in enumerate(result.keyframes):
        path = out_dir / f"{i + 1:02d}_{kf.timecode.replace(':', '-')}.png"
        kf.image.save(path)
        sc = kf.scores.as_dict()
        rows.append({"t_s": round(kf.t_s, 3), "frame": kf.frame_index, "shot": kf.shot, "path": str(path),
                     "timecode": kf.timecode, "faces": [[round(v, 1) for v in (b.x, b.y, b.w, b.h)] for b in kf.faces],
                     "scores": {k: round(v, 4) for k, v in sc.items()}})
        g = sc.get
        cells.append((kf.image, [
            f"{kf.timecode}  frame {kf.frame_index}  shot {kf.shot}",
            f"quality {g('quality', 0):.2f}  sharp {g('sharpness', 0):.2f}  expo {g('exposure', 0):.2f}  "
            f"contr {g('contrast', 0):.2f}",
            f"colour {g('colourfulness', 0):.2f}  natural {g('naturalness', 0):.2f}  thirds {g('thirds', 0):.2f}",
            f"faces {len(kf.faces)}  frontal {g('face_frontal', 0):.2f}  blur {g('motion_blur', 0):.2f}  "
            f"fade {g('fade', 0):.2f}  card {g('title_card', 0):.2f}",
        ], [(b.x, b.y, b.w, b.h) for b in kf.faces]))
    sheet_path = out_dir / "contact_sheet.png"
    footer = (f"{len(result.shots)} shots, {len(result.cuts_s)} cuts ({result.detector or 'stills'}), "
              f"{result.n_frames} frames, {result.duration_s:.2f} s")
    contact_sheet(cells, title=f"key frames of {source.name}", footer=footer).save(sheet_path)
    if as_json:
        _print_json({
            "source": str(source), "contact_sheet": str(sheet_path), "fps": round(result.fps, 6),
            "n_frames": result.n_frames, "duration_s": round(result.duration_s, 3), "detector": result.detector,
            "shots": [{"start_s": round(s.start_s, 3), "end_s": round(s.end_s, 3), "start_frame": s.start_frame,
                       "end_frame": s.end_frame} for s in result.shots],
            "cuts_s": [round(t, 3) for t in result.cuts_s],
            "keyframes": rows,
            "warnings": list(result.warnings),
        })
    else:
        out.print(f"{len(result.shots)} shots, cuts at {', '.join(f'{t:.2f}' for t in result.cuts_s) or 'none'} s")
        for r in rows:
            out.print(f"{r['timecode']}  frame {r['frame']:>6}  shot {r['shot']:>3}  faces {len(r['faces'])}  "
                      f"quality {r['scores'].get('quality', 0):.2f}  {r['path']}")
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


# --- export: the approved artwork as a delivery package (genart.export) -----------------------------
@app.command("export")
@handles_errors
def export_cmd(
    run_id: str = typer.Argument(..., help="The run whose approved variants go in the package."),
    out_dir: Path = typer.Option(Path("runs"), "--out", help="The store folder the run is in."),
    to: Path = typer.Option(..., "--to", help="The zip to write, e.g. delivery.zip."),
    streamer: str = typer.Option("prime-video", "--streamer", help="Whose count rule to check (prime-video)."),
    db: Optional[str] = typer.Option(None, "--db", help="SQLAlchemy URL of the store (default: SQLite in --out)."),
    as_json: bool = typer.Option(False, "--json", help="Print the package's files and counts as JSON on stdout."),
) -> None:
    """Write the run's approved variants at the delivery sizes, with manifest.json, as one zip."""
    import dataclasses

    pkg = api.export_package(out_dir, run_id, to, streamer=streamer, db=db)
    for w in pkg.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    if as_json:
        _print_json(dataclasses.asdict(pkg))
        return
    kinds = ", ".join(f"{c.count} {c.artwork_type} {c.locale}" for c in pkg.counts)
    out.print(f"wrote {pkg.zip_path}: {len(pkg.files)} picture(s) ({kinds}) and manifest.json", highlight=False)


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
