"""Benchmark verbs: ``evaluate`` (one policy, one scenario) and ``compare`` (a leaderboard)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console

from budgetgym.agents.baselines import MMMStaticPolicy
from budgetgym.agents.limits import (
    check_campaigns,
    check_episodes,
    check_horizon,
    oracle_market_bytes,
)
from budgetgym.agents.mmm import MMMFits, plot_curves
from budgetgym.agents.pareto import PARETO_EPISODES, PARETO_MULTS
from budgetgym.envs import EVAL_SEED_START, check_scenario
from budgetgym.scripts.cli_common import (
    EVAL_ROOT,
    add_verb,
    check_positive,
    check_writable,
    compile_simulator,
    default_eval_dir,
)
from budgetgym.scripts.cli_mmm import curves_table


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` and ``compare`` verbs."""
    p = add_verb(
        subparsers,
        "evaluate",
        help="Evaluate one policy on one scenario; write episodes.csv and summary.json.",
        description=(
            "Run one policy on held-out campaigns of one scenario (the same seeds for every "
            "policy) and write one row per campaign (episodes.csv) and the mean metrics with "
            "their 95% intervals, the ROI-miss rate and the share of the hindsight oracle's "
            "GMV (summary.json)."
        ),
    )
    p.add_argument(
        "--policy",
        required=True,
        help="Baseline name, 'oracle', a training run directory or an exported .onnx file.",
    )
    p.add_argument(
        "--scenario",
        default="mixed",
        help="Scenario name (see 'budgetgym scenario list') or a scenario file's path.",
    )
    p.add_argument(
        "--roi-guard",
        metavar="TAU:GAIN:AFTER",
        help="Play the policy with this ROI guard on its pace in place of its run's own, or "
        "'none' without one (budgetgym.agents.roi_guard; not an .onnx file with a guard inside).",
    )
    _add_campaign_options(p, f"{EVAL_ROOT}/<policy>-<YYYYmmdd-HHMMSS>")
    p.set_defaults(handler=evaluate_cmd)

    p = add_verb(
        subparsers,
        "compare",
        help="Evaluate the references (oracle, planner, planner_cc), every rule and given "
        "policies on the same seeds; write leaderboard.json, leaderboard.md and plots.",
        description=(
            "Evaluate the privileged references (the hindsight oracle, the planner and its "
            "chance-constrained variant planner_cc), every rule-based baseline and the policies "
            "given with --policy on the same held-out campaigns of each scenario; sweep each "
            "rule's planned target (x0.9 to x1.3) for the GMV-vs-ROI-miss Pareto plots; write "
            "the leaderboard (leaderboard.md with the command that made it, leaderboard.json), "
            "the timing (timing.json) and plots. Prints the elapsed time at the end."
        ),
    )
    p.add_argument(
        "--scenarios",
        default="all",
        help="'all' or comma-separated scenario names or scenario files' paths.",
    )
    p.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="P",
        help="Extra policy (run directory or .onnx file); repeat for several.",
    )
    p.add_argument(
        "--no-pareto",
        action="store_true",
        help="Skip the rules' target sweep and the Pareto plots (pareto_<scenario>.png).",
    )
    p.add_argument(
        "--pareto-episodes",
        type=int,
        default=PARETO_EPISODES,
        help="Campaigns of the target sweep per scenario: the first of the evaluated seeds.",
    )
    _add_campaign_options(p, f"{EVAL_ROOT}/compare-<YYYYmmdd-HHMMSS>")
    p.set_defaults(handler=compare_cmd)


def _add_campaign_options(p: argparse.ArgumentParser, default_out: str) -> None:
    """Options shared by evaluate and compare: which campaigns, where to write, how to run."""
    p.add_argument("--episodes", type=int, default=256, help="Campaigns (per scenario).")
    p.add_argument(
        "--seed-start",
        type=int,
        default=EVAL_SEED_START,
        help="First campaign seed (the held-out evaluation range starts at 1,000,000).",
    )
    p.add_argument("--out", type=Path, help=f"Output directory (default: {default_out}).")
    p.add_argument("--batch-size", type=int, default=256, help="Campaigns simulated together.")
    p.add_argument("--horizon-hours", type=int, default=168, help="Episode length in hours.")
    p.add_argument("--no-progress", action="store_true", help="Hide the progress bars.")


def _prepare(args: argparse.Namespace, label: str, console: Console) -> Path:
    """Check the shared options and the output directory before the long work; load (or
    compile) the simulator's kernels. Returns the output directory."""
    check_positive("--episodes", args.episodes)
    check_positive("--batch-size", args.batch_size)
    check_positive("--horizon-hours", args.horizon_hours)
    check_episodes(args.episodes, key="--episodes")
    check_horizon(args.horizon_hours, key="--horizon-hours")
    market = oracle_market_bytes(args.batch_size, args.horizon_hours)
    check_campaigns(args.batch_size, "the oracle's hourly market", market, key="--batch-size")
    out = args.out if args.out is not None else default_eval_dir(label)
    check_writable(out)
    batch = min(args.episodes, args.batch_size)
    compile_simulator(console, (batch, args.episodes % batch))
    return out


def _policy_label(spec: str) -> str:
    """A short name for a policy argument: the baseline's name, the run directory's, or the
    .onnx file's stem (the run's name for ``budgetgym export``'s RUN/export/policy.onnx)."""
    path = Path(spec)
    if path.suffix == ".onnx":
        return path.parent.parent.name if path.parent.name == "export" else path.stem
    return path.name


def evaluate_cmd(args: argparse.Namespace) -> int:
    """Handler of ``budgetgym evaluate``."""
    from budgetgym.agents.evaluation import evaluate, write_evaluation
    from budgetgym.agents.policy import load_policy
    from budgetgym.agents.roi_guard import parse_guard, replace_guard

    console = Console(soft_wrap=True)  # no line breaks inside paths
    check_scenario(args.scenario)
    policy = load_policy(args.policy)
    if args.roi_guard is not None:
        policy, _ = replace_guard(policy, parse_guard(args.roi_guard))
    out = _prepare(args, _policy_label(args.policy), console)
    result = evaluate(
        policy,
        args.scenario,
        args.episodes,
        args.seed_start,
        args.batch_size,
        progress=not args.no_progress,
        horizon_hours=args.horizon_hours,
    )
    write_evaluation(result, out)
    if isinstance(policy, MMMStaticPolicy):  # show and keep the model the rule acted on
        write_curves(policy.fits, args.scenario, out, console)
    s = result.summary
    lo, hi = s["gmv_ci95"]
    checkpoint = f" ({s['checkpoint']})" if "checkpoint" in s else ""
    console.print(
        f"{s['policy']}{checkpoint} on {s['scenario']} ({s['episodes']} episodes): GMV "
        f"{s['gmv_mean']:,.0f} [{lo:,.0f}, {hi:,.0f}], total GMV "
        f"{s['gmv_ratio_to_planner_pct']:.1f}% of the planner's and "
        f"{s['gmv_ratio_to_oracle_pct']:.1f}% of the oracle's, ROI {s['roi_mean']:.2f}, ROI "
        f"missed in {100 * s['roi_violation_rate']:.0f}%",
        soft_wrap=True,
        highlight=False,
    )
    console.print(f"Wrote episodes.csv and summary.json to {out}", highlight=False, soft_wrap=True)
    return 0


def write_curves(fits: MMMFits, scenario: str, out: Path, console: Console) -> None:
    """Print ``mmm_static``'s fitted response curves of ``scenario`` and write them into
    ``out``: ``mmm_curves.json`` (the curves and the seeds of their history) and a plot,
    ``mmm_curves.png``."""
    curves = fits.scenarios[scenario]
    console.print(curves_table(curves, f"mmm_static's fitted curves on {scenario} (B/H units)"))
    record = {
        "scenario": scenario,
        "seed_start": fits.seed_start,
        "campaigns": fits.campaigns,
        "days_fitted": fits.days_fitted,
        "curves": curves.rows(),
    }
    (out / "mmm_curves.json").write_text(json.dumps(record, indent=2) + "\n")
    plot_curves(curves, out / "mmm_curves.png", f"mmm_static's fitted curves: {scenario}")
    console.print(f"Wrote mmm_curves.json and mmm_curves.png to {out}", highlight=False)


def compare_cmd(args: argparse.Namespace) -> int:
    """Handler of ``budgetgym compare``."""
    from budgetgym.agents.evaluation import compare, parse_scenarios
    from budgetgym.agents.report import verdict_lines
    from budgetgym.agents.verdict import best_rule, criterion_text

    started = time.perf_counter()
    console = Console(soft_wrap=True)  # no line breaks inside paths
    scenarios = parse_scenarios(args.scenarios)
    check_positive("--pareto-episodes", args.pareto_episodes)
    out = _prepare(args, "compare", console)
    rows = compare(
        args.policy,
        scenarios,
        args.episodes,
        args.seed_start,
        out,
        progress=not args.no_progress,
        horizon_hours=args.horizon_hours,
        batch_size=args.batch_size,
        pareto_mults=() if args.no_pareto else PARETO_MULTS,
        pareto_episodes=args.pareto_episodes,
    )
    command = (
        f"budgetgym compare --scenarios {args.scenarios} --episodes {args.episodes} "
        f"--seed-start {args.seed_start} --out {out}"
        + "".join(f" --policy {p}" for p in args.policy)
        + (f" --horizon-hours {args.horizon_hours}" if args.horizon_hours != 168 else "")
        + (" --no-pareto" if args.no_pareto else "")
        + (
            f" --pareto-episodes {args.pareto_episodes}"
            if args.pareto_episodes != PARETO_EPISODES
            else ""
        )
    )
    board = out / "leaderboard.md"
    board.write_text(leaderboard_header(command, out / "timing.json") + board.read_text())
    for scenario in scenarios:
        group = [r for r in rows if r["scenario"] == scenario]
        rule = best_rule(group)
        console.print(
            f"{scenario}: best rule {rule['policy']} ({criterion_text(group)}): "
            f"total GMV {rule['gmv_ratio_to_planner_pct']:.1f}% of the planner's, "
            f"{rule['gmv_ratio_to_oracle_pct']:.1f}% of the oracle's, ROI missed in "
            f"{100 * rule['roi_violation_rate']:.0f}%",
            highlight=False,
        )
    for line in verdict_lines(rows):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(
        f"Wrote the leaderboard (leaderboard.md, .json) and plots (*.png) to {out}",
        highlight=False,
        soft_wrap=True,
    )
    timing = json.loads((out / "timing.json").read_text())
    console.print(
        f"Done in {time.perf_counter() - started:.0f} s (evaluations {timing['evaluation_s']:.0f} "
        f"s, Pareto sweep {timing['pareto_s']:.0f} s; timing.json).",
        highlight=False,
    )
    return 0


def leaderboard_header(command: str, timing_path: Path) -> str:
    """Title, reproduction command and timing line placed above the leaderboard tables."""
    timing = json.loads(timing_path.read_text())
    return (
        "# budgetgym leaderboard\n\n"
        f"Generated by the shipped code with:\n\n```\n{command}\n```\n\n"
        f"{timing['campaign_steps']:,} campaign-steps in {timing['elapsed_s']:.0f} s "
        f"({timing['campaign_steps_per_s']:,.0f} campaign-steps/s). See docs/benchmark.md.\n\n"
    )
