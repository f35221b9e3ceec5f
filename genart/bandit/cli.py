"""``genart bandit``: simulate a policy, report on a test, serve the tester.

Mounted by ``genart/cli.py`` as ``app.add_typer(bandit_app, name="bandit")``. A ``GenartError``
prints as one line plus its hint and exits with its code, never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Callable, Optional

import typer

from genart.errors import GenartError

app = typer.Typer(help="Bandit tests of approved artwork: simulate, report, serve.", no_args_is_help=True,
                  add_completion=False)

STORE_HELP = "database URL or SQLite path (default: $GENART_BANDIT_URL or sqlite:///genart_bandit.db)"


def _friendly(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GenartError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            if exc.hint:
                typer.echo(f"  hint: {exc.hint}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


@app.command()
@_friendly
def simulate(
    arms: int = typer.Option(6, "--arms", min=2, help="arms per segment"),
    segments: int = typer.Option(4, "--segments", min=1, help="audience segments"),
    rounds: int = typer.Option(50_000, "--rounds", min=1, help="decisions to simulate"),
    policy: str = typer.Option("ts", "--policy", help="ts | egreedy | ucb1 | lints | linucb | vw"),
    seed: int = typer.Option(0, "--seed"),
    floor: float = typer.Option(0.0, "--floor", min=0.0, max=0.5, help="exploration floor per arm"),
    as_json: bool = typer.Option(False, "--json", help='print {"policy", "rounds", "regret", "best_arm_share"}'),
    plots: Optional[Path] = typer.Option(None, "--plots", help="write PNG plots to this folder"),
    store: Optional[str] = typer.Option(None, "--store", help="run through a real tester on this store (" + STORE_HELP + ")"),
    test_id: Optional[str] = typer.Option(None, "--test-id", help="test id to create in --store (default sim-POLICY-SEED)"),
) -> None:
    """Simulate POLICY on a random audience and print its cumulative (expected) regret."""
    from genart.bandit.simulator import Population, drive_tester
    from genart.bandit.simulator import simulate as run
    from genart.bandit.types import TestConfig

    pop = Population.random(arms, segments, seed=seed)
    if store is not None:
        from genart.bandit.tester import Tester

        tester = Tester(store, seed=seed)
        tid = test_id or f"sim-{policy}-{seed}"
        tester.create_test(tid, pop.arms_for(tid), TestConfig(policy=policy, floor=floor, seed=seed))
        result = drive_tester(tester, tid, pop, rounds, seed=seed)
        if plots is not None:
            from genart.bandit.report import plot_test

            for p in plot_test(tester, tid, plots):
                typer.echo(f"wrote {p}", err=True)
    else:
        result = run(pop, policy, rounds, seed=seed, floor=floor)
        if plots is not None:
            from genart.bandit.report import plot_simulation

            for p in plot_simulation(result, plots, pop.arms):
                typer.echo(f"wrote {p}", err=True)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
    else:
        typer.echo(f"{result.policy}: cumulative regret {result.regret:.2f} over {result.rounds} rounds "
                   f"({segments} segments x {arms} arms); best-arm share {result.best_arm_share:.3f}")


@app.command()
@_friendly
def report(
    test_id: str = typer.Argument(..., help="the test to report on"),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    plots: Optional[Path] = typer.Option(None, "--plots", help="write PNG plots to this folder"),
) -> None:
    """Per segment: impressions, rewards, posterior mean and credible interval, P(best), winner."""
    from genart.bandit.tester import Tester

    tester = Tester(store)
    rep = tester.report(test_id)
    if plots is not None:
        from genart.bandit.report import plot_test

        for p in plot_test(tester, test_id, plots):
            typer.echo(f"wrote {p}", err=True)
    if as_json:
        typer.echo(json.dumps(rep.to_json()))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    pct = int(round(rep.credible_level * 100))
    console.print(f"[bold]{rep.test_id}[/] policy={rep.policy} status={rep.status} "
                  f"stop at P(best) >= {rep.stop_probability}")
    for seg in rep.segments:
        table = Table(title=f"segment {seg.segment}: {seg.winner or 'no winner'} ({seg.reason})")
        for col in ("arm", "variant", "impressions", "rewards", "mean", f"{pct}% CI", "P(best)"):
            table.add_column(col, justify="right" if col not in ("arm", "variant") else "left")
        for a in seg.arms:
            table.add_row(a.arm_id + (" (control)" if a.is_control else ""), a.variant_id or "-", str(a.impressions),
                          f"{a.rewards:g}", f"{a.posterior_mean:.4f}", f"[{a.ci_low:.4f}, {a.ci_high:.4f}]",
                          f"{a.prob_best:.3f}")
        console.print(table)


@app.command()
@_friendly
def serve(
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind; anything but loopback needs API tokens"),
    port: int = typer.Option(8765, "--port", min=1, max=65535),
    token_file: Optional[Path] = typer.Option(None, "--token-file",
                                              help="API tokens, one per line (default: $GENART_BANDIT_TOKENS, "
                                                   "comma-separated); with tokens every route but /health needs "
                                                   "'Authorization: Bearer TOKEN'"),
) -> None:
    """Serve POST /assign and POST /reward (FastAPI + uvicorn) on the store."""
    from genart.bandit.service import serve as run

    run(store, host=host, port=port, token_file=token_file)


def main() -> None:  # pragma: no cover - for `python -m genart.bandit.cli`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
