"""The ``mmm-fit`` verb: the ``mmm_static`` rule's exploratory history and its fitted curves."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from budgetgym.agents.mmm import ResponseCurves, shipped_fits_path
from budgetgym.agents.mmm_history import FIT_CAMPAIGNS, FIT_SEED_START
from budgetgym.envs.scenarios import TRAIN_SEED_LIMIT
from budgetgym.scripts.cli_common import add_verb, check_training_seeds, check_writable


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``mmm-fit`` verb."""
    p = add_verb(
        subparsers,
        "mmm-fit",
        help="Fit the mmm_static rule's response curves on its exploratory history.",
        description=(
            "Roll the mmm_static rule's exploration policy out on training campaigns of each "
            "scenario, fit one adstocked Hill curve per paid channel on the logged daily spend "
            "and GMV, and write the curves (beta, ec, s, decay, R^2, the seeds used) as JSON. "
            "The default output is the file shipped with the package, which the rule reads."
        ),
    )
    p.add_argument("--scenarios", default="all", help="'all' or comma-separated scenario names.")
    p.add_argument(
        "--campaigns", type=int, default=FIT_CAMPAIGNS, help="Training campaigns per scenario."
    )
    p.add_argument(
        "--seed-start",
        type=int,
        default=FIT_SEED_START,
        help=f"First campaign seed (training seeds: below {TRAIN_SEED_LIMIT:,}).",
    )
    p.add_argument("--out", type=Path, help="Output JSON (default: the shipped fits file).")
    p.set_defaults(handler=mmm_fit)


def curves_table(curves: ResponseCurves, title: str) -> Table:
    """A rich table of the fitted curves: channel, beta, ec, s, decay, R^2."""
    table = Table(title=title)
    for column in ("channel", "beta (B/H)", "ec (B/H)", "s", "decay", "R²"):
        table.add_column(column, justify="left" if column == "channel" else "right")
    for row in curves.rows():
        table.add_row(
            row["channel"],
            *(f"{row[key]:.3f}" for key in ("beta", "ec", "s")),
            f"{row['decay']:.1f}",
            f"{row['r2']:.3f}",
        )
    return table


def mmm_fit(args: argparse.Namespace) -> int:
    """Handler of ``budgetgym mmm-fit``."""
    from budgetgym.agents.evaluation import parse_scenarios
    from budgetgym.agents.mmm_history import fit_all

    console = Console(soft_wrap=True)
    scenarios = parse_scenarios(args.scenarios)
    check_training_seeds(args.seed_start, args.campaigns)
    out = args.out if args.out is not None else shipped_fits_path()
    check_writable(out, directory=False)
    started = time.perf_counter()

    def report(scenario: str, curves: ResponseCurves, seconds: float) -> None:
        console.print(curves_table(curves, f"{scenario} (history and fit: {seconds:.1f} s)"))

    fits = fit_all(scenarios, args.seed_start, args.campaigns, on_scenario=report)
    fits.save(out)
    console.print(
        f"Fitted {len(scenarios)} scenarios in {time.perf_counter() - started:.1f} s; wrote {out}",
        highlight=False,
    )
    return 0
