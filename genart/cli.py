"""The ``genart`` command line: the batch job and the tools around it.

Imports ``genart.api``, ``genart.types`` and ``genart.errors`` only. User mistakes print one line and a
hint, never a traceback, and exit non-zero; warnings (genart's own and other libraries') print one line
each the same way. Progress goes to stderr so ``--json`` output on stdout stays clean. Every string that
comes from outside (paths, profile texts, messages) is printed as plain text, never read as Rich markup:
a file called ``[draft].png`` prints as it is.
"""

from __future__ import annotations

import contextlib
import json
import sys
import textwrap
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from genart import api
from genart.cli_errors import err, handles_errors, say  # noqa: F401  (err, say: what the commands print with)
from genart.errors import FrontendUnavailableError, GenartError, GenartWarning, InvalidArgumentError

if TYPE_CHECKING:  # pragma: no cover
    from importlib.metadata import EntryPoint

app = typer.Typer(help="genart: personalised thumbnail artwork from a title's video.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
models_app = typer.Typer(help="Model presets (models.yaml).", no_args_is_help=True)
profiles_app = typer.Typer(help="Taste profiles (prompts/*.yaml).", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(profiles_app, name="profiles")

out = Console()

#: ``genart batch``'s exit status when the job finished but some titles failed.
BATCH_SOME_FAILED = 3
STAGE_LABELS = {"frames": "key frames", "models": "loading models", "generate": "generating", "rank": "ranking"}

#: What each score means, for the legend under a run's tables: (short column name, meaning). Scores are
#: in [0, 1], 1 = better, except the unsafe-content probabilities (nsfw, gore, weapons), 1 = worse.
SCORE_WORDS: dict[str, tuple[str, str]] = {
    "affinity": ("aff", "fits the profile's taste"),
    "fidelity": ("fid", "true to the source frame"),
    "aesthetic": ("aes", "LAION aesthetic rating / 10"),
    "quality": ("qual", "sharp, well exposed, clean"),
    "legibility": ("leg", "still reads at 160 px wide"),
    "nsfw": ("nsfw", "P(nudity), Open-NSFW"),
    "gore": ("gore", "P(gore), CLIP zero-shot"),
    "weapons": ("weap", "P(weapons), CLIP zero-shot"),
    "safety": ("safe", "1 - the largest unsafe P"),
}
#: Tables without side borders, two spaces between columns: what lets a run's table fit 80 columns.
TABLE_STYLE: dict[str, Any] = {"box": box.SIMPLE_HEAD, "pad_edge": False, "padding": (0, 1, 0, 0), "show_edge": False}
#: The probabilities ``safety`` is made of (safety = 1 - the largest): the first columns to go when a
#: table is too wide for the terminal (result.json and --json keep them).
SAFETY_PARTS = ("nsfw", "gore", "weapons")
ROWS_SHOWN = 5  # rows per profile in `genart run`'s tables; result.json and --json hold every one


# --- one way to speak: errors, warnings, hints -----------------------------------------------------
def show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001
    """``warnings.showwarning`` for the command line: a warning is one line, never Python's two-line
    format with the source line under it. A library's own warning says which library it came from."""
    text = " ".join(str(message).split())
    if not issubclass(category, GenartWarning):
        origin = _package_of(filename)
        text += f" ({category.__name__} from {origin})" if origin else f" ({category.__name__})"
    say("warning", text)


def _package_of(filename: str) -> str:
    parts = Path(filename or "").parts
    if "site-packages" in parts and parts.index("site-packages") + 1 < len(parts):
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    return ""


def _quiet_help_types() -> None:
    """Typer prints each parameter's Python type in ``--help`` (``<bool>``, ``<str>``, ``<path>``,
    ``<list[str]>``, on ``--help`` itself too): noise to someone typing options. Options show their
    metavar instead (``--frames N``, ``--out FOLDER``), flags and arguments nothing.

    Typer has no setting for it, so its one method is replaced; on a Typer without it nothing changes.
    """
    try:
        from typer import core
    except ImportError:  # pragma: no cover
        return
    plain = {"int": "N", "int range": "N", "float": "NUMBER", "float range": "NUMBER", "str": "TEXT",
             "path": "PATH", "file": "FILE", "directory": "FOLDER", "list[str]": "TEXT"}

    def display_type_rich(self, ctx) -> str | None:
        if isinstance(self, core.TyperArgument) or getattr(self, "is_flag", False) or getattr(self, "count", False):
            return None
        if self.metavar:
            return self.metavar
        try:
            label = self.display_type(ctx).strip("<>")
        except Exception:  # noqa: BLE001 - a help screen must not fail over a type label
            return None
        return plain.get(label, label.upper())

    def usage_name(self) -> str:  # "run [OPTIONS] SOURCE", not "run [OPTIONS] {source}"
        name = (self.metavar or self.name or "").upper()
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    for cls in (core.TyperOption, core.TyperArgument):
        if hasattr(cls, "display_type_rich"):
            cls.display_type_rich = display_type_rich  # type: ignore[method-assign]  # typer's help, patched
    if hasattr(core.TyperArgument, "_usage_display_name"):
        core.TyperArgument._usage_display_name = usage_name  # type: ignore[method-assign]


_quiet_help_types()


def shown_path(path: Path | str | None) -> str:
    """A path as a person finds it from here: relative to the current folder when it lies below it,
    else absolute."""
    if path is None:
        return "-"
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def _fits(renderable) -> bool:
    """Whether ``renderable`` prints on ``out`` without wrapping a cell."""
    return out.measure(renderable, options=out.options.update_width(100_000)).maximum <= out.width


@contextlib.contextmanager
def rich_progress(enabled: bool = True) -> Iterator[Optional[Callable[[str, int, int], None]]]:
    """A ``progress(stage, done, total)`` callback drawing one Rich bar per stage on stderr.

    The bars start with the first report, so a mistake caught before any work prints its one line
    without an empty progress display above it.
    """
    if not enabled:
        yield None
        return
    bars = Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=False)
    tasks: dict[str, TaskID] = {}
    lock = threading.Lock()

    def update(stage: str, done: int, total: int) -> None:
        with lock:
            if not tasks:
                bars.start()
            if stage not in tasks:
                # a stage may be named by data (a catalogue's title id): text, never Rich markup
                tasks[stage] = bars.add_task(escape(STAGE_LABELS.get(stage, stage)), total=max(total, 1))
            bars.update(tasks[stage], completed=done, total=max(total, 1))

    try:
        yield update
    finally:
        if tasks:
            bars.stop()


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# --- a run's result as tables ----------------------------------------------------------------------
def _order_score(rv) -> float:
    """The number a profile's order follows: ``rank_score`` where the ranking sets it, else the total."""
    return rv.total if rv.rank_score is None else rv.rank_score


def _follows(rows: Sequence) -> bool:
    """Whether the score the order follows falls (or stays) down ``rows``: only then is it "best first"."""
    keys = [_order_score(rv) for rv in rows]
    return all(a >= b - 1e-9 for a, b in zip(keys, keys[1:]))


RANK_ORDER_NOTE = ("* rank order: the top places go to a variety of frames and looks (diversity), "
                   "so a lower total can come before a higher one")


def _frame_time(t_s: float, short: bool) -> str:
    """Where the key frame is in the source: ``00:06.875`` (minutes, seconds, ms), or ``0:06.9`` when short."""
    m, sec = divmod(t_s, 60.0)
    return f"{int(m)}:{sec:04.1f}" if short else f"{int(m):02d}:{sec:06.3f}"


def _ranked_table(pid: str, rows: Sequence, n_ranked: int, n_rejected: int, folder: Path,
                  names: Sequence[str], short: bool, lean: bool = False) -> Table:
    """One profile's ranked rows: place, the order's own score, total, every score, aspect, frame, file.

    ``short``: short score names (a legend follows) and a shorter time; ``lean``: where the order has
    its own score, that one and not the total (the narrowest terminals)."""
    has_rank = any(rv.rank_score is not None for rv in rows)
    count = f"{n_ranked} ranked, {len(rows)} shown" + (f", {n_rejected} rejected" if n_rejected else "")
    order = ("best first by rank score" if has_rank else "best first by total") if _follows(rows) else "in rank order*"
    table = Table(title=Text.assemble((pid, "bold"), f": {count}, {order}"),
                  title_justify="left", title_style="", **TABLE_STYLE)
    table.add_column("#", justify="right", no_wrap=True)
    if has_rank:
        table.add_column("rank", justify="right", no_wrap=True)
    if not (has_rank and lean):
        table.add_column("total", justify="right", no_wrap=True)
    for name in names:
        table.add_column(SCORE_WORDS.get(name, (name[:4], ""))[0] if short else name, justify="right", no_wrap=True)
    table.add_column("aspect", no_wrap=True)
    table.add_column("frame", no_wrap=True)
    table.add_column("file", overflow="fold")
    for rv in rows:
        copy = folder / pid / f"{rv.rank:02d}_{rv.variant.id[:8]}.png"
        cells = [str(rv.rank)]
        if has_rank:
            cells.append(f"{_order_score(rv):.3f}")
        if not (has_rank and lean):
            cells.append(f"{rv.total:.3f}")
        cells += [f"{rv.scores[n]:.2f}" if n in rv.scores else "-" for n in names]
        cells += [rv.variant.params.aspect, _frame_time(rv.variant.keyframe.t_s, short),
                  copy.name if copy.exists() else shown_path(rv.path)]
        table.add_row(*(Text(c) for c in cells))
    return table


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _print_result(result, shown: int = ROWS_SHOWN) -> None:
    """A run as a person reads it, at 80 columns as at 160: per profile a table of its best rows with the
    score the order follows, every score (full names when they fit, else short ones and a legend), the
    aspect, the key frame and the file; notes on rows diversity moved or that need a person to look."""
    rejected = {pid: len(items) for pid, items in result.rejected}
    names = list(dict.fromkeys(n for _, items in result.ranked for rv in items[:shown] for n in rv.scores))
    out.print(Text.assemble(("run ", "bold"), (result.run_id, "bold"),
                            f" (preset {result.preset}): {_plural(len(result.keyframes), 'key frame')}, "
                            f"{_plural(len(result.ranked), 'profile')}"))
    out.print(Text(f"files: {shown_path(result.out_dir)}/<profile>/"), soft_wrap=True)
    short_used = unordered = has_rank = False
    dropped: set[str] = set()
    for pid, items in result.ranked:
        rows = items[:shown]
        if not rows:
            out.print(Text.assemble((pid, "bold"), f": nothing ranked ({rejected.get(pid, 0)} rejected)"))
            continue
        # full score names if they fit; else short ones (and a legend); else safety without its parts
        compact = [n for n in names if n not in SAFETY_PARTS] if "safety" in names else names
        for cols, short, lean in ((names, False, False), (names, True, False), (compact, True, False),
                                  (compact, True, True)):
            table = _ranked_table(pid, rows, len(items), rejected.get(pid, 0), result.out_dir, cols, short, lean)
            if _fits(table):
                break
        short_used = short_used or short
        dropped.update(set(names) - set(cols))
        has_rank = has_rank or any(rv.rank_score is not None for rv in rows)
        if lean and has_rank:
            dropped.add("total")
        unordered = unordered or not _follows(rows)
        out.print()
        out.print(table)
        for rv in rows:
            if rv.placed_by:
                out.print(Text(f"  #{rv.rank}: {rv.placed_by}", style="dim"), soft_wrap=True)
            if rv.needs_review:
                out.print(Text.assemble((f"  #{rv.rank} needs review: ", "yellow"), rv.needs_review), soft_wrap=True)
    out.print()
    if has_rank:
        out.print(Text("rank = the rank score, the number the order follows: the total, adjusted where "
                       "diversity placed a variant (a note under the table says why)", style="dim"))
    if unordered:
        out.print(Text(RANK_ORDER_NOTE, style="dim"))
    if short_used:
        legend = "; ".join(f"{SCORE_WORDS[n][0]}" + (f" = {n}" if SCORE_WORDS[n][0] != n else "")
                           + f" ({SCORE_WORDS[n][1]})" for n in names if n in SCORE_WORDS and n not in dropped)
        out.print(Text(f"scores: {legend}", style="dim"))
    if dropped:
        parts = [n for n in names if n in dropped]
        why = " (safety is 1 - the largest of them)" if parts else ""
        out.print(Text(f"not shown at this width: {', '.join(sorted(dropped - set(parts)) + parts)}{why}; "
                       "all in result.json", style="dim"))
    n_rejected = sum(rejected.values())
    if n_rejected:
        out.print(Text(f"{n_rejected} variant(s) rejected (reasons in result.json and the store)", style="yellow"))
    if result.warnings:
        out.print(Text(f"{len(result.warnings)} warning(s), printed above and kept in result.json", style="yellow"))
    # paths are soft-wrapped: the terminal folds a long one, Rich does not break it, so it copies whole
    out.print(Text(f"overview: {shown_path(result.out_dir / 'overview.png')}"), soft_wrap=True)
    out.print(Text(f"all rows: {shown_path(result.out_dir / 'result.json')} (or --json)"), soft_wrap=True)


def _locale_titles(pairs: list[str]) -> dict[str, str] | None:
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
    profiles: str = typer.Option("romance,thriller", "--profiles", "-p", metavar="IDS",
                                 help="Comma-separated profile ids (`genart profiles list`)."),
    preset: Optional[str] = typer.Option(None, "--preset", metavar="NAME",
                                         help="A preset of models.yaml (default: its default_preset, classic)."),
    frames: int = typer.Option(4, "--frames", metavar="N", help="Key frames to pick."),
    variants_per_frame: int = typer.Option(4, "--variants", metavar="N", help="Variants per key frame, per profile."),
    out_dir: Path = typer.Option(Path("runs"), "--out", metavar="FOLDER", help="Output folder (the store)."),
    db: Optional[str] = typer.Option(None, "--db", metavar="URL",
                                     help="SQLAlchemy URL of the store (default: SQLite in --out)."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Same seed, same variants."),
    title: str = typer.Option("", "--title", metavar="TEXT", help="The title's name, for prompts and the overlay."),
    genre: str = typer.Option("", "--genre", metavar="TEXT", help="The title's genre, for prompts."),
    top_k: Optional[int] = typer.Option(None, "--top-k", metavar="N", help="Keep the best N per profile in the result."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    title_overlay: Optional[bool] = typer.Option(None, "--title-overlay/--no-title-overlay",
                                                 help="Lay the title into the artwork (default: when --title is given)."),
    titles: list[str] = typer.Option([], "--title-for", metavar="LOCALE=TEXT",
                                     help="The title for the profiles of one locale, e.g. the Japanese "
                                          "title for romance-ja (repeatable)."),
) -> None:
    """Pick key frames, make variants for each profile, rank them, and store the run."""
    by_locale = _locale_titles(titles)
    with rich_progress(True) as progress:
        result = api.create_variants(source, profiles=profiles, preset=preset, frames=frames,
                                     variants_per_frame=variants_per_frame, out=out_dir, db=db, seed=seed, title=title,
                                     genre=genre, top_k=top_k, progress=progress, title_overlay=title_overlay,
                                     titles=by_locale)
    if as_json:
        _print_json(result.to_json())
    else:
        _print_result(result)


@app.command()
@handles_errors
def demo(
    out_dir: Path = typer.Option(Path("runs/demo"), "--out", metavar="FOLDER", help="Output folder."),
    video: Optional[Path] = typer.Option(None, "--video", metavar="FILE",
                                         help="Your own video instead of the built-in demo clip."),
    preset: str = typer.Option("classic", "--preset", metavar="NAME", help="A preset of models.yaml."),
    profiles: str = typer.Option("romance,thriller,comedy,action", "--profiles", "-p", metavar="IDS",
                                 help="Comma-separated profile ids."),
) -> None:
    """Run the main job on a short clip: the built-in one (public-domain photos, cut together) or yours."""
    if video is None:
        clip = api.make_demo_clip(out_dir / "demo_clip.mp4")
        video = clip.path
        cuts = ", ".join(str(c) for c in clip.cut_frames)
        err.print(Text(f"demo clip: {shown_path(video)} ({clip.n_frames} frames, cuts at frames {cuts})"), soft_wrap=True)
    with rich_progress(True) as progress:
        result = api.create_variants(video, profiles=profiles, preset=preset, frames=4, variants_per_frame=3,
                                     out=out_dir, title="Genart Demo", genre="film", progress=progress)
    _print_result(result)


def _shots_words(result) -> str:
    """``1 shot, no cuts`` / ``5 shots, 4 cuts at 1.50, 3.00, 4.50, 6.00 s`` / ``3 stills``."""
    if result.kind == "stills":
        return _plural(len(result.shots), "still")
    cuts = result.cuts_s
    where = f" at {', '.join(f'{t:.2f}' for t in cuts)} s" if cuts else ""
    return f"{_plural(len(result.shots), 'shot')}, {_plural(len(cuts), 'cut') if cuts else 'no cuts'}{where}"


@app.command()
@handles_errors
def frames(
    source: Path = typer.Argument(..., help="A video file, an image, or a folder of stills."),
    max_frames: int = typer.Option(12, "--max", metavar="N", help="At most this many key frames."),
    out_dir: Path = typer.Option(Path("runs/frames"), "--out", metavar="FOLDER",
                                 help="Folder for the PNGs and the contact sheet."),
    as_json: bool = typer.Option(False, "--json", help="Print shots, cuts and key frames as JSON on stdout."),
    sample_fps: float = typer.Option(2.0, "--sample-fps", metavar="NUMBER",
                                     help="Candidate frames analysed per second of video."),
    detector: str = typer.Option("content", "--detector", metavar="NAME",
                                 help="PySceneDetect detector: content or adaptive."),
    cast: list[str] = typer.Option([], "--cast", metavar="NAME=IMAGE",
                                   help="Casting note (repeatable): a reference photo of a person; matching faces "
                                        "are named after them."),
) -> None:
    """Shots and key frames: PNGs, a contact sheet (faces and who, text and logos, bars, transitions,
    characters), and (--json) everything found."""
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
        if kf.image is None:  # analyse_frames hands back every key frame with its pixels
            raise GenartError(f"key frame {kf.timecode} of {source} came back without its pixels")
        kf.image.save(path)
        row["path"] = str(path)
    sheet_path = out_dir / "contact_sheet.png"
    api.contact_sheet(result, title=f"key frames of {source.name}").save(sheet_path)
    if as_json:
        _print_json({"source": str(source), "contact_sheet": str(sheet_path),
                     **{k: v for k, v in data.items() if k != "source"}})
        return
    out.print(Text(f"{source.name}: {_shots_words(result)}; {_plural(len(result.keyframes), 'key frame')} "
                   f"in {shown_path(out_dir)}/"), soft_wrap=True)
    if result.active_area is not None:
        x, y, w, h = result.active_area
        if (w, h) != (result.width, result.height):
            out.print(Text(f"bars cropped: the picture is {w}x{h} at ({x}, {y}) of {result.width}x{result.height}"))
    for tr in result.transitions:
        out.print(Text(f"{tr.kind} {tr.start_s:.2f}-{tr.end_s:.2f} s: no key frame inside"))
    for c in result.characters:
        out.print(Text(f"character {c.label}: {c.screen_time_s:.1f} s on screen, "
                       f"{_plural(len(c.appearances), 'appearance')}"))
    for r in result.regions:
        out.print(Text(f"{r.kind} in every frame at ({r.box.x:.0f}, {r.box.y:.0f}), {r.box.w:.0f}x{r.box.h:.0f}"))
    def short(words: list[str]) -> str:
        text = ",".join(words) or "-"
        return text if len(text) <= 9 else text[:8] + "…"

    cells = [(short([p.character or "?" for p in kf.people]), short(sorted({r.kind for r in kf.regions})))
             for kf in result.keyframes]
    cols = ["#", "time", "frame", "shot", "faces"]
    cols += [c for c, k in (("who", 0), ("marks", 1)) if any(cell[k] != "-" for cell in cells)]
    table = Table(**TABLE_STYLE)
    for col in cols + ["quality"]:
        table.add_column(col, justify="left" if col in ("time", "who", "marks") else "right", no_wrap=True)
    table.add_column("file", overflow="fold")
    for i, (kf, row, (who, marks)) in enumerate(zip(result.keyframes, data["keyframes"], cells)):
        extra = [v for c, v in (("who", who), ("marks", marks)) if c in cols]
        table.add_row(*(Text(c) for c in (str(i + 1), kf.timecode, str(kf.frame_index), str(kf.shot),
                                          str(len(kf.faces)), *extra, f"{kf.scores.get('quality', 0):.2f}",
                                          Path(row["path"]).name)))
    out.print(table)
    out.print(Text(f"contact sheet: {shown_path(sheet_path)}"), soft_wrap=True)


# --- models -------------------------------------------------------------------------------------
def _weights_words(spec) -> tuple[str, str]:
    """(what is on this machine, its style) for a preset: none needed, present, built, or what is absent."""
    check = api.check_preset(spec.name)
    if not check.items:
        return "none needed", "green"
    if spec.random_weights:
        built = all(i.present for i in check.items)
        return ("built (random weights)" if built else "built on first use (random weights)"), "green"
    absent = [i for i in check.items if not i.present]
    if not absent:
        return "present", "green"
    roles = ", ".join(i.role for i in absent)
    return f"absent: {roles} (`genart models check {spec.name}` says how to get them)", "red"


@models_app.command("list")
@handles_errors
def models_list() -> None:
    """The presets of models.yaml: what each makes variants and ranks with, and whether its weights are here."""
    default = api.list_presets()[0].name if api.list_presets() else ""
    for spec in api.list_presets():
        weights, style = _weights_words(spec)
        gen = spec.generator
        makes = (f"{gen.model_id}" + (f" @ {gen.revision}" if gen.revision else "")) if gen else "reframe + colour grade"
        ranks = spec.ranker.clip.pretrained if spec.ranker.clip else "measured image features"
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, style="dim")
        grid.add_column(overflow="fold")
        grid.add_row("makes", Text(makes))
        grid.add_row("ranks", Text(ranks))
        grid.add_row("weights", Text(weights, style=style))
        grid.add_row("", Text(spec.description, style="italic"))
        out.print(Text.assemble((spec.name, "bold cyan"), " (default)" if spec.name == default else ""))
        out.print(Padding(grid, (0, 0, 0, 2)))


@models_app.command("check")
@handles_errors
def models_check(preset: str = typer.Argument(..., help="A preset name.")) -> None:
    """Whether a preset's weights are on this machine (no network); exit 1 when something is missing."""
    check = api.check_preset(preset)
    if not check.items:
        out.print(Text.assemble((preset, "green"), ": needs no downloaded weights"))
    tiny = check.ok and all(i.how.startswith("built locally") for i in check.items)
    for item in check.items:
        if item.present:
            mark = Text("present", style="green")
        elif tiny:
            mark = Text("not built yet (built on first use)", style="yellow")
        else:
            mark = Text("absent", style="red")
        out.print(Text.assemble((f"{item.role:<10} ", "bold"), f"{item.model_id} @ {item.revision or '-'}: ", mark),
                  soft_wrap=True)
        out.print(Text(f"           in {item.where}", style="dim"), soft_wrap=True)
        if not item.present:
            out.print(Text(f"           get it: {item.how}"), soft_wrap=True)
    raise typer.Exit(0 if check.ok else 1)


@models_app.command("pull")
@handles_errors
def models_pull(preset: str = typer.Argument(..., help="A preset name.")) -> None:
    """Download a preset's weights into the Hugging Face cache (or build the tiny preset)."""
    api.pull_preset(preset)
    out.print(Text.assemble((preset, "green"), ": ready"))


# --- profiles -----------------------------------------------------------------------------------
def _shorten(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut at a word with an ellipsis."""
    return textwrap.shorten(text, width=max(width, 12), placeholder=" …")


@profiles_app.command("list")
@handles_errors
def profiles_list() -> None:
    """The taste profiles in prompts/ (`genart profiles show ID` prints one in full)."""
    found = api.list_profiles()
    wide = out.width >= 120  # name and version (in `profiles show`) only where they leave the description room
    heads = ["id"] + (["name"] if wide else []) + ["locale", "aspects"] + (["version"] if wide else [])
    rows = [[p.id] + ([p.name] if wide else []) + [p.locale, " ".join(p.aspects)] + ([p.version] if wide else [])
            for p in found]

    def table_of(last: Sequence[str] | None) -> Table:
        table = Table(**TABLE_STYLE)
        for h in heads:
            table.add_column(h, no_wrap=True, style="bold" if h == "id" else "")
        if last is not None:
            table.add_column("description", no_wrap=True)
        for i, row in enumerate(rows):
            table.add_row(*(Text(c) for c in row + ([last[i]] if last is not None else [])))
        return table

    room = out.width - out.measure(table_of(None), options=out.options.update_width(100_000)).maximum - 2  # what the other columns leave, less a gap
    out.print(table_of([_shorten(p.description, room) for p in found]))


@profiles_app.command("show")
@handles_errors
def profiles_show(profile_id: str = typer.Argument(..., help="A profile id.")) -> None:
    """One profile, in full (JSON)."""
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
        out.print(Text.assemble(("ok", "green"), f" {path}: {p.id} (version {p.version})"), soft_wrap=True)


@app.command("app")
@handles_errors
def app_cmd(
    host: str = typer.Option("127.0.0.1", "--host", metavar="ADDRESS",
                             help="Address to bind; anything but loopback needs --auth-file or --auth."),
    port: Optional[int] = typer.Option(None, "--port", metavar="N", help="Port (default 7860 or the next free one)."),
    auth: Optional[str] = typer.Option(None, "--auth", envvar="GENART_APP_AUTH", metavar="USER:PASSWORD",
                                       help="USER:PASSWORD[,USER2:PASSWORD2] (or env GENART_APP_AUTH; on the "
                                            "command line it shows in ps: prefer --auth-file)."),
    auth_file: Optional[Path] = typer.Option(None, "--auth-file", metavar="FILE",
                                             help="A file of USER:PASSWORD lines (kept off the command line)."),
    out_dir: Path = typer.Option(Path("runs"), "--out", metavar="FOLDER", help="The runs folder the app reviews."),
) -> None:
    """Serve the review app (Gradio) on the runs folder: upload, generate, review, hand off."""
    launch = frontend("app")  # gradio loads only for this command
    launch(out_dir, host, port, auth if auth_file is None else None, auth_file=auth_file)


#: The entry-point group front ends register their launcher in (``[project.entry-points."genart.frontends"]``
#: in pyproject.toml): ``genart app`` finds the review app there, so nothing in genart/ imports app/.
FRONTENDS = "genart.frontends"


def frontend(name: str) -> Callable[..., Any]:
    """The launcher the front end ``name`` registers in ``FRONTENDS``, imported.

    A source checkout's own pyproject.toml counts too (see ``_checkout_frontends``): an installed
    package's metadata is written at install time, so an editable install made before an entry
    point was declared lacks it until ``pip install -e .`` runs again.

    Raises:
        FrontendUnavailableError: no package registers ``name``, or its code does not import.
    """
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group=FRONTENDS)}
    found.update(_checkout_frontends())
    if name not in found:
        raise FrontendUnavailableError(name, known=found)
    try:
        launcher = found[name].load()
    except (ImportError, AttributeError) as exc:
        raise FrontendUnavailableError(name, detail=f"{found[name].value} does not load ({exc})") from exc
    if not callable(launcher):
        raise FrontendUnavailableError(name, detail=f"{found[name].value} is not a function")
    return launcher


def _checkout_frontends(pyproject: Path | None = None) -> dict[str, EntryPoint]:
    """The front ends declared by the pyproject.toml of the source checkout genart runs from (an editable
    install, or the tree on PYTHONPATH), as entry points; none for an installed wheel or on Python 3.10."""
    if sys.version_info >= (3, 11):  # tomllib is 3.11's: on 3.10 the installed metadata alone counts
        import tomllib

        return _declared_frontends(tomllib.loads, pyproject or Path(__file__).resolve().parents[1] / "pyproject.toml")
    return {}


def _declared_frontends(loads: Callable[[str], dict[str, Any]], pyproject: Path) -> dict[str, EntryPoint]:
    from importlib.metadata import EntryPoint

    if not pyproject.is_file():
        return {}
    try:
        project = loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (OSError, ValueError):  # unreadable, not UTF-8 or not TOML (tomllib.TOMLDecodeError is a ValueError)
        return {}
    if project.get("name") != "genart":  # a pyproject.toml that happens to sit beside site-packages' genart
        return {}
    declared = project.get("entry-points", {}).get(FRONTENDS, {})
    return {n: EntryPoint(n, v, FRONTENDS) for n, v in declared.items() if isinstance(v, str)}


# --- batch: a whole catalogue (genart.batch) --------------------------------------------------------
@app.command("batch")
@handles_errors
def batch_cmd(
    catalog: Path = typer.Argument(..., help="The catalogue YAML: titles (video or stills, title, genre), profiles, "
                                             "variants, preset (see examples/catalog.yaml)."),
    out_dir: Path = typer.Option(..., "--out", metavar="FOLDER",
                                 help="Output folder: the store, every title's run, the summary."),
    engine: str = typer.Option("local", "--engine", metavar="NAME",
                               help="local (this process), accelerate (accelerate launch, one process per GPU) "
                                    "or ray (Ray tasks with GPU resources)."),
    db: Optional[str] = typer.Option(None, "--db", metavar="URL",
                                     help="SQLAlchemy URL of the store (default: SQLite in --out)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", metavar="N",
                                             help="First batch size to try (halved on OOM)."),
    compile_unet: bool = typer.Option(False, "--compile", help="torch.compile the UNet and VAE decoder (slow first "
                                                               "batch of each shape, faster after; batches padded "
                                                               "to powers of two so few shapes compile)."),
    num_processes: Optional[int] = typer.Option(None, "--num-processes", metavar="N",
                                                help="accelerate: processes (default: one per GPU, else 2)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", metavar="ADDRESS",
                                              help="ray: a cluster's address (default local)."),
    ray_num_cpus: Optional[int] = typer.Option(None, "--ray-num-cpus", metavar="N", help="ray: CPUs of the local Ray."),
    auto_approve: bool = typer.Option(False, "--auto-approve",
                                      help="Start each title's bandit test from the ranking's top-k without a "
                                           "person (recorded in the test). Default: a draft test that starts when "
                                           "someone approves it (genart bandit approve, or the app)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Run (or resume) a whole catalogue: frames, variants, ranking and the bandit hand-off for every title.

    Killed at any point, the same command continues where it stopped and redoes nothing finished. A
    title that cannot be done (an unreadable source, say) is marked failed with its reason and the
    others complete; running the same command again retries it. One job per --out folder at a time.

    Exit status: 0 every title done; 2 nothing run (a bad catalogue or option, or another job holds
    the folder); 3 the job finished but some titles failed (see the status and error columns).
    """
    import dataclasses

    with rich_progress(True) as progress:
        report = api.run_catalog(catalog, out_dir, engine=engine, db=db, batch_size=batch_size, compile=compile_unet,
                                 num_processes=num_processes, ray_address=ray_address, ray_num_cpus=ray_num_cpus,
                                 progress=progress, auto_approve=auto_approve or None)
    if as_json:
        _print_json({**dataclasses.asdict(report), "titles": [dataclasses.asdict(t) for t in report.titles]})
        raise typer.Exit(BATCH_SOME_FAILED if report.failed else 0)
    table = Table(title=Text(f"batch {catalog.name}: {report.engine} engine, preset {report.preset}"),
                  title_justify="left", **TABLE_STYLE)
    table.add_column("title", no_wrap=True)
    for col in ("status", "frames", "images", "new", "device s", "img/s", "arms", "best total per profile"):
        table.add_column(col, overflow="fold")
    for t in report.titles:
        best = ", ".join(f"{p} {s:.3f}" for p, _, s in t.best)
        status = t.status if t.images >= t.expected else f"{t.status} {t.images}/{t.expected}"
        table.add_row(*(Text(c) for c in (t.title_id, status, str(t.keyframes), str(t.images), str(t.made_now),
                                          f"{t.device_s:.2f}", f"{t.images_per_s:.2f}", str(t.arms),
                                          best or (t.error or "-"))))  # a reason names paths: text, not markup
    out.print(table)
    extra = f"; {report.oom_retries} OOM back-off(s), batch size {report.batch_size}" if report.oom_retries else ""
    out.print(Text(f"{sum(t.images for t in report.titles)} variants in {len(report.titles)} titles, "
                   f"{report.wall_s:.1f} s wall{extra}; summary: {shown_path(report.summary_csv)}, "
                   f"{shown_path(report.summary_json)}"), soft_wrap=True)
    if report.failed:
        say("warning", f"{len(report.failed)} title(s) failed: {', '.join(t.title_id for t in report.failed)}; "
                       "the others are done", hint="fix their media and run the same command again to retry them")
        raise typer.Exit(BATCH_SOME_FAILED)


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
        say("warning", w)
    if as_json:
        _print_json(dataclasses.asdict(pkg))
        return
    kinds = ", ".join(f"{c.count} {c.artwork_type} {c.locale}" for c in pkg.counts)
    out.print(Text(f"wrote {shown_path(pkg.zip_path)}: {_plural(len(pkg.files), 'picture')} ({kinds}) and "
                   "manifest.json"), soft_wrap=True)


def _mount_optional() -> None:
    try:
        from genart.bandit.cli import app as bandit_app
    except ImportError:  # the bandit stage's extras are not installed
        return
    app.add_typer(bandit_app, name="bandit")


_mount_optional()


def main() -> None:
    """The ``genart`` command: warnings print as one line each (see ``show_warning``)."""
    warnings.showwarning = show_warning
    app(prog_name="genart")


if __name__ == "__main__":  # pragma: no cover
    main()
