"""``genart bandit``: create, approve, report, stop, evaluate and loop tests; simulate; serve.

Mounted by ``genart/cli.py`` as ``app.add_typer(bandit_app, name="bandit")``. Every command finds
its store the way the rest of genart does: ``--out DIR`` is the output folder ``genart run``,
``genart app`` and ``genart batch`` wrote (its ``genart.sqlite``; a folder inside it, such as
``runs/runs/<run id>``, works too), ``--store`` a database URL or SQLite file, and with neither
the store of ``./genart.sqlite`` or ``./runs/genart.sqlite`` (or ``$GENART_BANDIT_URL``).

A ``GenartError`` prints as one line plus its hint and exits with its code, never a traceback.
Tables go to stdout through Rich; ``--json`` prints one JSON document instead. Every string a
user or the store supplied is escaped before Rich sees it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table


from genart import api
from genart.cli_errors import handles_errors as _friendly  # genart's one way to say an error
from genart.errors import BackendUnavailableError, InvalidArgumentError
from genart.bandit.types import POLICY_NAMES

app = typer.Typer(help="Bandit tests of approved artwork: create, report, stop, evaluate, loop, simulate, serve.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

STORE_HELP = "Database URL or SQLite file of the store (instead of --out)."
OUT_HELP = ("The output folder genart run / app / batch wrote (its genart.sqlite). "
            "Default: ./genart.sqlite, else ./runs/genart.sqlite.")
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _where(store: Optional[str], out: Optional[Path], *, must_exist: bool) -> tuple[Optional[Path], str]:
    """(the output folder, when the store is a SQLite file in one; the database URL)."""

    url = api.locate_store(store, out, must_exist=must_exist)
    if url.startswith("sqlite:///") and "mode=memory" not in url and url != "sqlite:///:memory:":
        return Path(url[len("sqlite:///"):].split("?", 1)[0]).parent, url
    return None, url


TITLE_HELP = "Instead of TEST_ID: the test of a catalogue title's run (what genart batch made for it)."


def _test_id(test_id: Optional[str], title: Optional[str], folder: Optional[Path], url: str) -> str:
    """The test a command is about: its id, or the newest test of a catalogue title's run."""

    if test_id is not None and title is None:
        return test_id
    if title is None or test_id is not None:  # neither, or both
        raise InvalidArgumentError("TEST_ID / --title", test_id or title,
                                   "a test id or --title TITLE (a catalogue title's test), one of them")
    run_id = api.title_run(_needs_folder(folder, "--title"), title, db=url)
    mine = [i for i in api.list_tests(folder, db=url) if i.run_id == run_id]
    if not mine:
        raise InvalidArgumentError("--title", title, f"a title with a test (its run {run_id} has none: "
                                   f"`genart bandit create {run_id} --reviewer NAME --out DIR` makes one)")
    return max(mine, key=lambda i: i.created_at).test_id


def _needs_folder(folder: Optional[Path], what: str) -> Path:
    if folder is None:
        raise InvalidArgumentError("--store", "a database URL", f"--out DIR: {what} needs the run's output folder "
                                   "(its images and runs), not only a database")
    return folder


def _pct(x: float, sign: bool = True) -> str:
    """A rate as a percentage with the digits a small CTR needs (2.41%, 12.3%)."""
    text = f"{x * 100:.2f}" if x < 0.1 else f"{x * 100:.1f}"
    return text + ("%" if sign else "")


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _settings_options(policy, reward, floor, change_cap, change_interval, stop_at, min_impressions, context_dim,
                      loop, loop_variants, loop_min_impressions):
    from genart.bandit.settings import test_settings

    return test_settings(policy=policy, reward=reward, floor=floor, change_cap=change_cap,
                         change_interval=change_interval, stop_at=stop_at, min_impressions=min_impressions,
                         context_dim=context_dim, loop=loop, loop_variants=loop_variants,
                         loop_min_impressions=loop_min_impressions)


def _segments(text: Optional[str]):
    """``comedy,drama`` (segments named after profiles) or ``fans=comedy+animation-fan;others=drama``."""

    if not text:
        return None
    if "=" not in text:
        return {s.strip(): [s.strip()] for s in text.split(",") if s.strip()}
    plan = {}
    for part in text.replace(";", ",").split(","):
        name, sep, profiles = part.partition("=")
        if not sep or not name.strip() or not profiles.strip():
            raise InvalidArgumentError("--segments", text, "NAME,NAME (segments named after profiles) or "
                                       "SEGMENT=PROFILE+PROFILE;SEGMENT=PROFILE")
        plan[name.strip()] = [p.strip() for p in profiles.split("+") if p.strip()]
    return plan


# --- create / approve / stop / list ----------------------------------------------------------------
@app.command()
@_friendly
def create(
    run_id: Optional[str] = typer.Argument(None, help="The run whose approved variants become the arms."),
    title: Optional[str] = typer.Option(None, "--title", help="Instead of RUN_ID: a catalogue title's run "
                                                              "(what genart batch made for it)."),
    reviewer: str = typer.Option(..., "--reviewer", help="Who hands the variants off (kept in the test)."),
    out: Optional[Path] = typer.Option(None, "--out", help=OUT_HELP),
    test_id: Optional[str] = typer.Option(None, "--test-id", help="The test's id (default RUN_ID-test)."),
    segments: Optional[str] = typer.Option(None, "--segments",
                                           help="comedy,drama (one segment per profile) or "
                                                "fans=comedy+family;rest=drama. Default: one per approved profile."),
    control: Optional[Path] = typer.Option(None, "--control", help="Today's artwork, shown as the control arm."),
    no_control: bool = typer.Option(False, "--no-control", help="No control arm."),
    policy: str = typer.Option("ts", "--policy", help="ts, egreedy, ucb1, lints, linucb or vw."),
    reward: str = typer.Option("click", "--reward", help="click, play:MINUTES (plays at least that long) or "
                                                        "watch:MINUTES (watch time capped there)."),
    floor: float = typer.Option(0.01, "--floor", help="Every arm's least probability while the test runs."),
    change_cap: Optional[float] = typer.Option(None, "--change-cap",
                                               help="Change-effect cap: an arm's share moves at most this much per "
                                                    "interval (0.1 = 10 points)."),
    change_interval: str = typer.Option("1h", "--change-interval", help="The cap's interval: 1h, 30m, 3600s or "
                                                                       "'500 exposures'."),
    stop_at: float = typer.Option(0.95, "--stop-at", help="Stopping rule: declare a winner at this P(best) ..."),
    min_impressions: int = typer.Option(100, "--min-impressions", help="... once every arm has this many."),
    context_dim: int = typer.Option(0, "--context-dim", help="Member features per request (lints, linucb, vw)."),
    loop: bool = typer.Option(False, "--loop", help="Propose new artwork for weak segments (genart bandit loop)."),
    loop_variants: int = typer.Option(3, "--loop-variants", help="New variants per weak segment."),
    loop_min_impressions: int = typer.Option(1000, "--loop-after", help="Impressions a segment needs before it "
                                                                        "can be called weak."),
    priors: str = typer.Option("model", "--priors", help="model (what the segment preference model predicts for "
                                                        "each arm) or ranking (the ranking's totals)."),
    as_json: bool = typer.Option(False, "--json", help="Print the test as JSON."),
) -> None:
    """Create a test from a run's approved variants (or a catalogue title's run), with its settings."""

    folder, url = _where(None, out, must_exist=True)
    folder = _needs_folder(folder, "create")
    if title is not None and run_id is None:
        run_id = api.title_run(folder, title, db=url)
    elif run_id is None or title is not None:  # neither, or both
        raise InvalidArgumentError("RUN_ID / --title", run_id or title, "a run id or --title TITLE, one of them")
    cfg = _settings_options(policy, reward, floor, change_cap, change_interval, stop_at, min_impressions, context_dim,
                            loop, loop_variants, loop_min_impressions)
    rec = api.handoff_to_test(folder, run_id, reviewer=reviewer, test_id=test_id, segments=_segments(segments),
                              include_control=not no_control, control_image=control, config=cfg, priors=priors,
                              origin="cli", db=url)
    info = api.test_info(folder, rec.test_id, db=url)
    if as_json:
        arms = api.open_tester(None, url).arms(rec.test_id)
        _print_json({**info.to_json(), "arms": [dict(segment=a.segment, arm_id=a.arm_id, variant_id=a.variant_id,
                                                     is_control=a.is_control, prior_mean=a.prior_mean,
                                                     prior_strength=a.prior_strength) for a in arms]})
        return
    _print_info(info)
    console.print(f"next: [bold]genart bandit report {escape(rec.test_id)} --out {escape(str(folder))}[/]")


def _print_info(info) -> None:
    who = f"approved by {escape(info.approved_by)}" if info.approved_by else "waiting for approval"
    console.print(f"[bold]{escape(info.test_id)}[/]: {info.status}, {who}; {len(info.segments)} segment(s), "
                  f"{info.arms} arm(s), {info.impressions} impressions")
    console.print(f"  {escape(info.settings)}")


@app.command()
@_friendly
def approve(
    test_id: Optional[str] = typer.Argument(None, help="A draft test (the batch job's top-k, waiting for a person)."),
    title: Optional[str] = typer.Option(None, "--title", help=TITLE_HELP),
    reviewer: str = typer.Option(..., "--reviewer", help="Who approves (kept in the test and the review log)."),
    out: Optional[Path] = typer.Option(None, "--out", help=OUT_HELP),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Start a draft test: its arms begin serving members."""

    folder, url = _where(store, out, must_exist=True)
    info = api.approve_test(folder, _test_id(test_id, title, folder, url), reviewer=reviewer, db=url)
    if as_json:
        _print_json(info.to_json())
    else:
        _print_info(info)


@app.command()
@_friendly
def stop(
    test_id: Optional[str] = typer.Argument(None, help="The test to stop."),
    title: Optional[str] = typer.Option(None, "--title", help=TITLE_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help=OUT_HELP),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Stop a test: each segment is served its winner (or its best posterior mean) from now on."""

    folder, url = _where(store, out, must_exist=True)
    test_id = _test_id(test_id, title, folder, url)
    rep = api.stop_test(folder, test_id, db=url)
    if as_json:
        _print_json(rep.to_json())
        return
    console.print(f"[bold]{escape(test_id)}[/] stopped. Serving from now on:")
    for seg in rep.segments:
        console.print(f"  {escape(seg.segment)}: {escape(seg.winner or '-')}  ({escape(seg.reason)})")


@app.command("list")
@_friendly
def list_cmd(
    out: Optional[Path] = typer.Option(None, "--out", help=OUT_HELP),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The store's tests: status, who approved them, traffic."""

    folder, url = _where(store, out, must_exist=True)
    infos = api.list_tests(folder, db=url)
    if as_json:
        _print_json([i.to_json() for i in infos])
        return
    if not infos:
        console.print(f"no tests in {escape(url)} yet: [bold]genart bandit create RUN_ID --reviewer NAME "
                      f"--out DIR[/] makes one")
        return
    table = Table(title=f"tests in {escape(url)}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for col in ("test", "status", "approved by", "segments", "arms", "shown", "rate"):
        table.add_column(col, overflow="fold", no_wrap=col == "test",
                         justify="right" if col in ("arms", "shown", "rate") else "left")
    for i in infos:
        rate = _pct(i.rewards / i.impressions) if i.impressions else "-"
        table.add_row(escape(i.test_id), i.status, escape(i.approved_by or "-"), escape(", ".join(i.segments)),
                      str(i.arms), f"{i.impressions:,}", rate)
    console.print(table)


# --- report -------------------------------------------------------------------------------------------
@app.command()
@_friendly
def report(
    test_id: Optional[str] = typer.Argument(None, help="The test to report on."),
    title: Optional[str] = typer.Option(None, "--title", help=TITLE_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help=OUT_HELP),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the report (and the segments' preferences) as JSON."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Write PNG plots to this folder."),
) -> None:
    """Each segment's arms (traffic, rate, P(best), against the control), its winner, and what it responds to.

    What each segment responds to is learned from every test of the store.
    """

    folder, url = _where(store, out, must_exist=True)
    test_id = _test_id(test_id, title, folder, url)
    tester = api.open_tester(None, url)
    rep = tester.report(test_id)
    written = []
    if plots is not None:
        from genart.bandit.report import plot_test

        written = list(plot_test(tester, test_id, plots))
        for p in written:
            err.print(f"wrote {escape(str(p))}")
    from genart.bandit.settings import reward_text

    segs = {s.segment for s in rep.segments}
    tastes = [t for t in api.segment_preferences(folder, db=url, reward=reward_text(tester.config(test_id).reward))
              if t.segment in segs]
    if as_json:
        _print_json({**rep.to_json(), "preferences": [t.to_json() for t in tastes]})
        return
    pct = int(round(rep.credible_level * 100))
    who = f"approved by {escape(rep.approved_by)}" if rep.approved_by else "not approved yet"
    console.print(f"[bold]{escape(rep.test_id)}[/]: {rep.status}, {who}")
    console.print(f"  {escape(rep.settings)}")
    for seg in rep.segments:
        head = f"{escape(seg.winner)} wins" if seg.winner else "no winner"
        table = Table(title=f"segment {escape(seg.segment)}: {head} ({escape(seg.reason)})", title_justify="left",
                      box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
        for col in ("arm", "shown", "reward", "rate", f"{pct}% CI", "P(best)", "vs control", "prior"):
            table.add_column(col, justify="left" if col == "arm" else "right", no_wrap=col != "arm")
        for a in seg.arms:
            name = "control" if a.is_control else escape(a.arm_id[:10]) + ("*" if a.proposal_id else "")
            vs = "" if a.lift is None else f"{a.lift:+.0%} P{a.prob_beats_control:.2f}"
            table.add_row(name, f"{a.impressions:,}", f"{a.rewards:g}", _pct(a.posterior_mean),
                          f"{_pct(a.ci_low, False)}-{_pct(a.ci_high)}", f"{a.prob_best:.2f}", vs,
                          f"{_pct(a.prior_mean)}x{a.prior_strength:.0f}")
        console.print(table)
        if seg.weak:
            console.print(f"  [yellow]weak:[/] {escape(seg.weak_reason)}; `genart bandit loop {escape(test_id)}` "
                          "proposes new artwork for it")
    console.print("  vs control: lift over the control and P(better than it); prior: the cold-start rate and "
                  "the impressions it is worth (xN)")
    if any(a.proposal_id for s in rep.segments for a in s.arms):
        console.print("  * made by the learning loop (`genart bandit loop TEST` lists its proposals)")
    console.print("[bold]what each segment responds to[/] (every test of the store):")
    for t in tastes:
        console.print(f"  {escape(t.summary)}")
    if not tastes:
        console.print("  nothing yet: the arms have no measured facts or no traffic")


@app.command()
@_friendly
def preferences(
    out: Optional[Path] = typer.Option(None, "--out", help=OUT_HELP),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    reward: str = typer.Option("click", "--reward", help="Learn from the tests with this reward: click, play:N, "
                                                        "watch:M."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG of each segment's effects here."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """What each audience segment responds to, learned across every title the store tested."""

    folder, url = _where(store, out, must_exist=True)
    tastes = api.segment_preferences(folder, db=url, reward=reward)
    if plot is not None:
        from genart.bandit.report import plot_preferences

        err.print(f"wrote {escape(str(plot_preferences(tastes, plot)))}")
    if as_json:
        _print_json([t.to_json() for t in tastes])
        return
    if not tastes:
        console.print("no segment has traffic on arms with measured facts yet")
        return
    for t in tastes:
        console.print(escape(t.summary))
        table = Table(show_header=True, box=None, padding=(0, 1))
        for col in ("what", "points", "95% interval", "P(> 0)"):
            table.add_column(col, justify="left" if col == "what" else "right")
        for e in [e for e in t.effects if not e.what.startswith("clip_")][:8]:
            table.add_row(escape(e.label), f"{e.points:+.2f}", f"[{e.low:+.2f}, {e.high:+.2f}]",
                          f"{e.prob_positive:.2f}")
        console.print(table)


# --- evaluate ------------------------------------------------------------------------------------------
@app.command()
@_friendly
def evaluate(
    test_id: Optional[str] = typer.Argument(None, help="The test whose log to evaluate on."),
    title: Optional[str] = typer.Option(None, "--title", help=TITLE_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help=OUT_HELP),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    candidate: Optional[list[str]] = typer.Option(None, "--candidate",
                                                  help="uniform, greedy, control or arm:ID (repeat it); "
                                                       "default the first three."),
    method: Optional[list[str]] = typer.Option(None, "--method", help="replay, ips, snips or dr (repeat it); "
                                                                      "default ips, snips, dr."),
    boot: int = typer.Option(500, "--bootstrap", min=10, help="Bootstrap resamples for the intervals."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """What other policies would have earned on this test's log (off-policy estimates with intervals)."""

    folder, url = _where(store, out, must_exist=True)
    test_id = _test_id(test_id, title, folder, url)
    ev = api.evaluate_test(folder, test_id, candidates=tuple(candidate or ("uniform", "greedy", "control")),
                           methods=tuple(method or ("ips", "snips", "dr")), n_boot=boot, db=url)
    if as_json:
        _print_json(ev.to_json())
        return
    console.print(f"[bold]{escape(test_id)}[/]: {ev.n:,} logged exposures; what was shown earned "
                  f"{ev.logged_value:.2%} per exposure")
    table = Table(title="what each candidate would have earned per exposure", title_justify="left")
    for col in ("candidate", "method", "estimate", "95% interval", "vs logged"):
        table.add_column(col, justify="left" if col in ("candidate", "method") else "right")
    for name, e in ev.estimates:
        table.add_row(escape(name), e.method, f"{e.value:.2%}", f"[{e.ci_low:.2%}, {e.ci_high:.2%}]",
                      f"{e.value - ev.logged_value:+.2%}")
    console.print(table)
    for name, words in ev.candidates:
        console.print(f"  {escape(name)}: {escape(words)}")
    console.print("  ips weighs each logged reward by candidate / logged probability; snips normalises those "
                  "weights; dr adds a reward model (lower variance). The logged probabilities are the ones the "
                  "arms were drawn with, floors and caps included, so the estimates are unbiased.")


# --- the loop ------------------------------------------------------------------------------------------
@app.command("loop")
@_friendly
def loop_cmd(
    test_id: Optional[str] = typer.Argument(None, help="A running test."),
    title: Optional[str] = typer.Option(None, "--title", help=TITLE_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help=OUT_HELP),
    force: bool = typer.Option(False, "--force", help="Look for weak segments even if the test's loop is off."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One turn of the learning loop: new artwork for weak segments, approved proposals added as arms.

    Proposed variants are made by the run's preset, ranked, and queued for review in the app (or
    added at once when the test was auto-approved).
    """

    folder, url = _where(None, out, must_exist=True)
    folder = _needs_folder(folder, "the loop")
    test_id = _test_id(test_id, title, folder, url)
    step = api.loop_step(folder, test_id, db=url, force=force)
    props = api.proposals(folder, test_id, db=url)
    if as_json:
        _print_json({**step.to_json(), "all_proposals": [p.to_json() for p in props]})
        return
    for seg, wants, why in step.checked:
        mark = "[yellow]new artwork wanted[/]" if wants else "ok"
        console.print(f"{escape(seg)}: {mark} ({escape(why)})")
    if step.note:
        console.print(escape(step.note))
    for seg, arm, pid in step.added:
        console.print(f"added arm [bold]{escape(arm)}[/] to {escape(seg)} (proposal {escape(pid)})")
    if props:
        table = Table(title="proposals (trigger -> settings -> variant -> review -> arm)", title_justify="left",
                      box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
        for col in ("proposal", "segment", "setting", "predicted", "status"):
            table.add_column(col, overflow="fold")
        for p in props:
            for c in p.candidates:
                from genart.bandit.loop import Setting

                status = c.status + (f": {c.note}" if c.note and c.status in ("rejected", "failed") else "")
                table.add_row(escape(p.proposal_id[:8]), escape(p.segment),
                              escape(api.setting_words(Setting.from_json(c.setting))),
                              f"{_pct(c.predicted)} ({_pct(c.predicted_low, False)}-{_pct(c.predicted_high)})",
                              escape(status + (f" {c.variant_id[:10]}" if c.variant_id and status == "queued" else "")))
        console.print(table)
    if step.waiting:
        console.print(f"{step.waiting} proposed variant(s) wait for review: [bold]genart app --out "
                      f"{escape(str(folder))}[/], then run this command again")


# --- simulate ------------------------------------------------------------------------------------------
@app.command()
@_friendly
def simulate(
    arms: int = typer.Option(6, "--arms", min=2, help="Arms per segment."),
    segments: int = typer.Option(4, "--segments", min=1, help="Audience segments."),
    rounds: int = typer.Option(50_000, "--rounds", min=1, help="Decisions to simulate."),
    policy: str = typer.Option("ts", "--policy", help="ts, egreedy, ucb1, lints, linucb or vw."),
    compare: bool = typer.Option(False, "--compare", help="Run every policy on the same members, side by side."),
    seed: int = typer.Option(0, "--seed"),
    floor: float = typer.Option(0.0, "--floor", min=0.0, max=0.5, help="Exploration floor per arm."),
    as_json: bool = typer.Option(False, "--json", help='Print {"policy", "rounds", "regret", "best_arm_share"} '
                                                       "(a list of them with --compare)."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Write PNG plots to this folder."),
    store: Optional[str] = typer.Option(None, "--store", help="Run through a real tester on this store "
                                                              "(a database URL or SQLite file)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run through a real tester on this output folder's store."),
    test_id: Optional[str] = typer.Option(None, "--test-id", help="Test id to create (default sim-POLICY-SEED)."),
    change_cap: Optional[float] = typer.Option(None, "--change-cap", help="With --store/--out: the change-effect "
                                                                         "cap (0.1 = 10 points per interval)."),
    change_interval: str = typer.Option("500 exposures", "--change-interval", help="The cap's interval."),
    batch: int = typer.Option(500, "--batch", min=1, help="With --store/--out: members decided per request batch."),
    test: Optional[str] = typer.Option(None, "--test", help="Rehearse this existing test of --out with simulated "
                                                            "members (made-up true rates per arm) instead."),
    title: Optional[str] = typer.Option(None, "--title", help="Rehearse a catalogue title's test instead."),
) -> None:
    """Simulate a policy (or --compare them all) on a random audience and say what it cost."""
    if test is not None or title is not None:
        folder, url = _where(store, out, must_exist=True)
        tid = _test_id(test, title, folder, url)
        result = api.simulate_test(_needs_folder(folder, "--test"), tid, impressions=rounds, seed=seed, db=url)
        if as_json:
            typer.echo(json.dumps({**result.to_json(), "test_id": tid}))
            return
        console.print(f"{escape(tid)}: {rounds:,} simulated members went through the test (each arm with a made-up "
                      f"true rate); `genart bandit report {escape(tid)} --out DIR` shows where it stands")
        return
    from genart.bandit.simulator import POLICY, Population, drive_tester, stream_seed, streams
    from genart.bandit.simulator import simulate as run

    pop = Population.random(arms, segments, seed=seed)
    through_store = store is not None or out is not None
    if compare:
        if through_store:
            raise InvalidArgumentError("--compare", "with --store/--out", "in memory only (leave --store out)")
        _compare(pop, rounds, seed, floor, as_json)
        return
    if through_store:
        _, url = _where(store, out, must_exist=False)
        tester = api.open_tester(None, url)
        tid = test_id or f"sim-{policy}-{seed}"
        # the tester draws from the policy stream of the seed, the audience from its own stream
        from genart.bandit.settings import test_settings

        cfg = test_settings(policy=policy, floor=floor, change_cap=change_cap, change_interval=change_interval,
                            seed=stream_seed(streams(seed)[POLICY]))
        tester.create_test(tid, pop.arms_for(tid), cfg)
        result = drive_tester(tester, tid, pop, rounds, seed=seed, batch_size=batch)
        if plots is not None:
            from genart.bandit.report import plot_test

            for p in plot_test(tester, tid, plots):
                err.print(f"wrote {escape(str(p))}")
    else:
        result = run(pop, policy, rounds, seed=seed, floor=floor)
        if plots is not None:
            from genart.bandit.report import plot_simulation

            for p in plot_simulation(result, plots, pop.arms):
                err.print(f"wrote {escape(str(p))}")
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    best = float((pop.rate_array.max(axis=1)[pop.environment(rounds, seed).segments]).sum())
    console.print(f"{result.policy}: cumulative regret {result.regret:.2f} over {result.rounds:,} rounds "
                  f"({segments} segments x {arms} arms); best-arm share {result.best_arm_share:.3f}")
    console.print(f"  regret: the clicks lost against always showing each segment its truly best artwork "
                  f"(about {best:,.0f} expected clicks; this policy got {result.reward:,.0f}). "
                  f"`--compare` runs every policy on the same members.")


def _compare(pop, rounds: int, seed: int, floor: float, as_json: bool) -> None:
    from genart.bandit.simulator import simulate as run

    env = pop.environment(rounds, seed)
    results, skipped = [], []
    for policy in POLICY_NAMES:
        try:
            results.append(run(pop, policy, rounds, seed=seed, floor=floor, env=env, checkpoints=0))
        except BackendUnavailableError as exc:
            skipped.append(f"{policy} ({exc.message})")
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in results]))
        return
    best_possible = float(pop.rate_array.max(axis=1)[env.segments].sum())
    ranked = sorted(results, key=lambda r: r.regret)
    table = Table(title=f"{rounds:,} simulated members, {len(pop.segments)} segments x {len(pop.arms)} arms, "
                        f"the same members for every policy", title_justify="left")
    for col in ("policy", "regret", "per 1,000", "best-arm share", "clicks"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for r in ranked:
        table.add_row(r.policy, f"{r.regret:,.1f}", f"{1000 * r.regret / r.rounds:.2f}", f"{r.best_arm_share:.1%}",
                      f"{r.reward:,.0f}")
    console.print(table)
    top, last = ranked[0], ranked[-1]
    console.print(f"Regret is the expected clicks a policy lost against always showing each segment its truly "
                  f"best artwork, which only a simulation knows: {best_possible:,.0f} clicks were possible. "
                  f"{top.policy} lost the fewest ({top.regret:,.1f}, {top.regret / best_possible:.1%}); "
                  f"{last.policy} the most ({last.regret:,.1f}). Lower is better; the best-arm share is how "
                  f"often each segment saw its best artwork.")
    for s in skipped:
        console.print(f"  skipped {escape(s)}")


# --- serve ---------------------------------------------------------------------------------------------
@app.command()
@_friendly
def serve(
    out: Optional[Path] = typer.Option(None, "--out", help=OUT_HELP),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind; anything but loopback needs API tokens"),
    port: int = typer.Option(8765, "--port", min=1, max=65535),
    token_file: Optional[Path] = typer.Option(None, "--token-file",
                                              help="API tokens, one per line (default: $GENART_BANDIT_TOKENS, "
                                                   "comma-separated); with tokens every route but /health needs "
                                                   "'Authorization: Bearer TOKEN'"),
) -> None:
    """Serve POST /assign and POST /reward (FastAPI + uvicorn) on the store; /assign answers with a
    URL of the arm's image that the client can fetch."""
    from genart.bandit.service import serve as run

    _, url = _where(store, out, must_exist=False)
    run(lambda: api.open_tester(None, url), host=host, port=port, token_file=token_file)


def main() -> None:  # pragma: no cover - for `python -m genart.bandit.cli`
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
