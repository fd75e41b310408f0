"""Benchmark verbs: ``evaluate`` (one policy, one scenario) and ``compare`` (a leaderboard)."""

from __future__ import annotations

import argparse
from pathlib import Path

EVAL_SEED_START = 1_000_000  # = budgetgym.envs.EVAL_SEED_START (kept literal: cheap parser)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="Evaluate one policy on one scenario; write episodes.csv and summary.json.",
    )
    p.add_argument(
        "--policy",
        required=True,
        help="Baseline name, 'oracle', a training run directory or an exported .onnx file.",
    )
    p.add_argument("--scenario", default="mixed", help="Scenario name (see list-scenarios).")
    _add_campaign_options(p)
    p.set_defaults(handler=evaluate_cmd)

    p = subparsers.add_parser(
        "compare",
        help="Evaluate every baseline, the oracle and given policies on the same seeds; "
        "write leaderboard.json, leaderboard.md and plots.",
    )
    p.add_argument("--scenarios", default="all", help="'all' or comma-separated scenario names.")
    p.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="P",
        help="Extra policy (run directory or .onnx file); repeat for several.",
    )
    _add_campaign_options(p)
    p.set_defaults(handler=compare_cmd)


def _add_campaign_options(p: argparse.ArgumentParser) -> None:
    """Options shared by evaluate and compare: which campaigns, where to write, how to run."""
    p.add_argument("--episodes", type=int, default=256, help="Campaigns (per scenario).")
    p.add_argument(
        "--seed-start",
        type=int,
        default=EVAL_SEED_START,
        help="First campaign seed (default: the held-out evaluation range).",
    )
    p.add_argument("--out", type=Path, required=True, help="Output directory.")
    p.add_argument("--batch-size", type=int, default=256, help="Campaigns simulated together.")
    p.add_argument("--horizon-hours", type=int, default=168, help="Episode length in hours.")
    p.add_argument("--no-progress", action="store_true", help="Hide the progress bars.")


def evaluate_cmd(args: argparse.Namespace) -> int:
    from rich.console import Console

    from budgetgym.agents.evaluation import evaluate, write_evaluation
    from budgetgym.agents.policy import load_policy
    from budgetgym.envs import check_scenario

    check_scenario(args.scenario)
    policy = load_policy(args.policy)
    result = evaluate(
        policy,
        args.scenario,
        args.episodes,
        args.seed_start,
        args.batch_size,
        progress=not args.no_progress,
        horizon_hours=args.horizon_hours,
    )
    write_evaluation(result, args.out)
    s = result.summary
    lo, hi = s["gmv_ci95"]
    checkpoint = f" ({s['checkpoint']})" if "checkpoint" in s else ""
    Console(soft_wrap=True).print(  # soft wrap: no line break inside the path
        f"{s['policy']}{checkpoint} on {s['scenario']} ({s['episodes']} episodes): GMV "
        f"{s['gmv_mean']:,.0f} [{lo:,.0f}, {hi:,.0f}], total GMV "
        f"{s['gmv_ratio_to_oracle_pct']:.1f}% of the oracle's, ROI {s['roi_mean']:.2f}, ROI "
        f"missed in {100 * s['roi_violation_rate']:.0f}% -> {args.out}",
        highlight=False,
    )
    return 0


def compare_cmd(args: argparse.Namespace) -> int:
    from rich.console import Console

    from budgetgym.agents.evaluation import compare, parse_scenarios
    from budgetgym.agents.report import verdict_lines

    scenarios = parse_scenarios(args.scenarios)
    rows = compare(
        args.policy,
        scenarios,
        args.episodes,
        args.seed_start,
        args.out,
        progress=not args.no_progress,
        horizon_hours=args.horizon_hours,
        batch_size=args.batch_size,
    )
    command = (
        f"budgetgym compare --scenarios {args.scenarios} --episodes {args.episodes} "
        f"--seed-start {args.seed_start} --out {args.out}"
        + "".join(f" --policy {p}" for p in args.policy)
        + (f" --horizon-hours {args.horizon_hours}" if args.horizon_hours != 168 else "")
    )
    board = args.out / "leaderboard.md"
    board.write_text(leaderboard_header(command, args.out / "timing.json") + board.read_text())
    console = Console(soft_wrap=True)  # no line breaks inside paths
    for scenario in scenarios:
        group = [r for r in rows if r["scenario"] == scenario and r["policy"] != "oracle"]
        best = max(group, key=lambda r: r["score_mean"])
        console.print(
            f"{scenario}: best by score {best['policy']} (score {best['score_mean']:,.0f}, "
            f"total GMV {best['gmv_ratio_to_oracle_pct']:.1f}% of the oracle's)",
            highlight=False,
        )
    for line in verdict_lines(rows):
        console.print(line, highlight=False, markup=False)
    console.print(f"leaderboard -> {args.out / 'leaderboard.md'}", highlight=False)
    console.print(f"plots -> {args.out}/*.png", highlight=False)
    return 0


def leaderboard_header(command: str, timing_path: Path) -> str:
    """Title, reproduction command and timing line placed above the leaderboard tables."""
    import json

    timing = json.loads(timing_path.read_text())
    return (
        "# budgetgym leaderboard\n\n"
        f"Generated by the shipped code with:\n\n```\n{command}\n```\n\n"
        f"{timing['campaign_steps']:,} campaign-steps in {timing['elapsed_s']:.0f} s "
        f"({timing['campaign_steps_per_s']:,.0f} campaign-steps/s). Rows are sorted by the "
        "ROI-penalized score GMV x min(1, (ROI / target)^2) (AuctionNet's penalty). GMV is "
        "compared with the hindsight oracle's on the same seeds in two ratios: the ratio of "
        "totals (sum of GMV / sum of the oracle's), and the mean over campaigns of each one's "
        "ratio. A rule that overspends below its ROI target buys GMV the oracle is not allowed "
        "to buy, so the per-campaign ratio can exceed 100% where the oracle, bound by the "
        "target, spends little. ROI miss: "
        "share of episodes below the target. See docs/benchmark.md.\n\n"
    )
