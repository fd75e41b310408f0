"""The ``planner-cc-calibrate`` verb: ``planner_cc``'s miss-rate curves on training campaigns."""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.console import Console

from budgetgym.agents.cc_calibration import (
    CALIBRATE_COMMAND,
    KAPPA_BOUNDS,
    KAPPA_GRID,
    SATURATION_POINTS,
    CCCalibration,
    MissRateCurve,
    load_calibration,
    shipped_calibration_path,
)
from budgetgym.agents.cc_sweep import (
    CALIBRATION_BLOCK,
    CALIBRATION_CAMPAIGNS,
    CALIBRATION_SEED_START,
)
from budgetgym.envs.scenarios import HORIZON_HOURS, TRAIN_SEED_LIMIT
from budgetgym.scripts.cli_common import (
    CLIError,
    add_verb,
    check_positive,
    check_training_seeds,
    check_writable,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``planner-cc-calibrate`` verb."""
    p = add_verb(
        subparsers,
        CALIBRATE_COMMAND.split()[-1],
        help="Calibrate planner_cc's margin per scenario to a population ROI-miss rate.",
        description=(
            "Roll planner_cc out on training campaigns of each scenario at a grid of margins "
            "(kappa, in standard deviations of the GMV still to be attributed), all margins in "
            f"one batch per block of {CALIBRATION_BLOCK} campaigns, and write each scenario's "
            "share of campaigns below target as a function of kappa (pooled and per block, with "
            "the seeds used) as JSON. planner_cc inverts it for its alpha. Scenarios not "
            "measured are kept from an existing file measured on the same campaigns. The default "
            "output is the file shipped with the package, which planner_cc reads."
        ),
    )
    p.add_argument("--scenarios", default="all", help="'all' or comma-separated scenario names.")
    p.add_argument(
        "--campaigns",
        type=int,
        default=CALIBRATION_CAMPAIGNS,
        help="Training campaigns per scenario (the same at every kappa).",
    )
    p.add_argument(
        "--seed-start",
        type=int,
        default=CALIBRATION_SEED_START,
        help=f"First campaign seed (training seeds: below {TRAIN_SEED_LIMIT:,}).",
    )
    p.add_argument(
        "--kappas",
        help=(
            "Comma-separated margins to measure, increasing (--kappas=-1,0,1 when the first is "
            f"negative); without it, the {len(KAPPA_GRID)} margins "
            f"{', '.join(f'{k:g}' for k in KAPPA_GRID)}."
        ),
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Processes measuring blocks at once (each block x scenario is one rollout of "
        "several minutes; the curves do not depend on this).",
    )
    p.add_argument("--out", type=Path, help="Output JSON (default: the shipped calibration).")
    p.set_defaults(handler=planner_cc_calibrate)


def parse_kappas(text: str) -> list[float]:
    """``"-1,0,1.5"`` -> ``[-1.0, 0.0, 1.5]``: at least ``SATURATION_POINTS``,
    increasing, within ``KAPPA_BOUNDS``."""
    try:
        kappas = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise CLIError(f"--kappas must be comma-separated numbers, got {text!r}.") from err
    if len(kappas) < SATURATION_POINTS or any(b <= a for a, b in itertools.pairwise(kappas)):
        raise CLIError(
            f"--kappas must hold at least {SATURATION_POINTS} increasing numbers, got {text!r}."
        )
    low, high = KAPPA_BOUNDS
    if not (low <= kappas[0] and kappas[-1] <= high):
        raise CLIError(f"--kappas must lie in [{low:g}, {high:g}], got {text!r}.")
    return kappas


def existing_calibration(path: Path) -> CCCalibration | None:
    """The calibration at ``path`` (None when there is none). Read before measuring, so that a
    file that cannot be kept fails in seconds, not after hours, and again before writing, so
    that two commands measuring different scenarios side by side into one file keep each
    other's curves.

    Raises:
        CLIError: the file is not a valid calibration.
    """
    if not path.exists():
        return None
    try:
        return load_calibration(path)
    except ValueError as err:
        raise CLIError(f"{err} Move it away or write elsewhere with --out.") from err


def kept_curves(old: CCCalibration | None, calibration: CCCalibration) -> dict[str, MissRateCurve]:
    """The curves of ``old`` measured on the same campaigns as ``calibration`` (none without
    ``old``)."""
    if old is None:
        return {}
    same = (old.seed_start, old.campaigns, old.block_campaigns, old.horizon_hours) == (
        calibration.seed_start,
        calibration.campaigns,
        calibration.block_campaigns,
        calibration.horizon_hours,
    )
    return old.curves if same else {}


def planner_cc_calibrate(args: argparse.Namespace) -> int:
    """Handler of ``budgetgym planner-cc-calibrate``."""
    from budgetgym.agents.cc_sweep import calibrate
    from budgetgym.agents.evaluation import parse_scenarios

    console = Console(soft_wrap=True)
    scenarios = parse_scenarios(args.scenarios)
    kappas = list(KAPPA_GRID) if args.kappas is None else parse_kappas(args.kappas)
    check_training_seeds(args.seed_start, args.campaigns)
    check_positive("--workers", args.workers)
    out = args.out if args.out is not None else shipped_calibration_path()
    check_writable(out, directory=False)
    existing_calibration(out)
    started = time.perf_counter()

    def points(rates: np.ndarray) -> str:
        return "  ".join(f"{k:+.2g}:{100 * r:.1f}%" for k, r in zip(kappas, rates, strict=True))

    def report(
        scenario: str, first_seed: int, campaigns: int, rates: np.ndarray, seconds: float
    ) -> None:
        seeds = f"{first_seed:,}-{first_seed + campaigns - 1:,}"
        console.print(
            f"{scenario} seeds {seeds} ({seconds:.1f} s) kappa:miss  {points(rates)}",
            highlight=False,
        )

    calibration = calibrate(
        scenarios,
        args.seed_start,
        args.campaigns,
        kappas,
        HORIZON_HOURS,
        on_block=report,
        workers=args.workers,
    )
    for scenario, curve in calibration.curves.items():
        console.print(f"{scenario} pooled kappa:miss  {points(curve.measured)}", highlight=False)
    curves = {**kept_curves(existing_calibration(out), calibration), **calibration.curves}
    replace(calibration, curves=curves).save(out)
    console.print(
        f"Calibrated {len(scenarios)} scenarios on {len(kappas)} margins x {args.campaigns} "
        f"campaigns in {time.perf_counter() - started:.1f} s; wrote {out}",
        highlight=False,
    )
    return 0
