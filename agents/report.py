"""The held-out comparison at the end of a training run, its report and the terminal verdict.

``compare_run`` evaluates the trained policies beside every rule and the oracle on held-out
campaigns and writes ``eval/`` (the full tables, plots) and ``report.md``. The terminal gets
only :func:`verdict_lines` (one line per scenario against the best rule) and
:func:`closing_lines` (where the files are, how to open TensorBoard).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from budgetgym.agents.baselines import BASELINE_NAMES
from budgetgym.agents.checkpoints import RunPaths
from budgetgym.agents.config import TrainConfig
from budgetgym.agents.evaluation import compare
from budgetgym.agents.policy import PRIVILEGED
from budgetgym.agents.verdict import versus_best_rule
from budgetgym.envs import EVAL_SEED_START, SCENARIO_NAMES


def compare_run(
    paths: RunPaths,
    config: TrainConfig,
    policy_specs: list[str],
    progress: bool,
) -> list[dict[str, Any]]:
    """Compare trained policies with the references and every rule on held-out campaigns.

    Writes ``eval/`` (leaderboard.json/.md and plots, as ``budgetgym compare``) and
    ``report.md``; returns the leaderboard rows.
    """
    scenarios = list(config.eval.final_scenarios or [s for s in SCENARIO_NAMES if s != "mixed"])
    rows = compare(
        list(policy_specs),  # compare adds the references and every rule
        scenarios,
        config.eval.final_episodes,
        EVAL_SEED_START,
        paths.eval,
        progress=progress,
        horizon_hours=config.env.horizon_hours,
        title=f"# Held-out comparison: {paths.root.name}",
    )
    write_report(paths, config, rows, scenarios)
    return rows


def checkpoints_used(rows: list[dict[str, Any]]) -> dict[str, str]:
    """``policy -> checkpoint description`` of the trained policies among ``rows`` (those that
    came from a run: :class:`~budgetgym.agents.checkpoints.CheckpointInfo`)."""
    return {row["policy"]: row["checkpoint"] for row in rows if row.get("checkpoint")}


def write_report(
    paths: RunPaths, config: TrainConfig, rows: list[dict[str, Any]], scenarios: list[str]
) -> None:
    """``report.md``: the commands, the checkpoint evaluated, the verdict against the best rule
    and the full held-out leaderboard (``eval/leaderboard.md``)."""
    commands = paths.command.read_text().strip() if paths.command.is_file() else ""
    used = checkpoints_used(rows)
    checkpoints = [f"- `{policy}`: `{text}`" for policy, text in used.items()]
    policies = [*used, *PRIVILEGED, *BASELINE_NAMES]
    text = [
        f"# Run report: {paths.root.name}",
        "",
        f"Algorithm `{config.algorithm}`, seed {config.seed}, "
        f"{config.total_timesteps:,} env steps, trained on `{', '.join(config.env.scenarios)}`.",
        "",
        "Commands:",
        "",
        "```",
        commands,
        "```",
        "",
        "Checkpoint evaluated (`best/`: the best mean validation reward, on seeds from "
        "900,000; `final/`: the last):",
        "",
        *checkpoints,
        "",
        f"Held-out evaluation: {config.eval.final_episodes} campaigns per scenario, seeds from "
        f"{EVAL_SEED_START:,}; scenarios {', '.join(scenarios)}; policies {', '.join(policies)}.",
        "",
        "## Verdict against the best rule",
        "",
        "```",
        *verdict_lines(rows, name_checkpoints=False),
        "```",
        "",
        (paths.eval / "leaderboard.md").read_text(),
        "",
        "Files: `eval/leaderboard.json`, `eval/leaderboard.md`, plots in `eval/`; "
        f"TensorBoard: `tensorboard --logdir {paths.tensorboard}`.",
        "",
    ]
    paths.report.write_text("\n".join(text))


def verdict_lines(rows: list[dict[str, Any]], name_checkpoints: bool = True) -> list[str]:
    """One line per (trained policy, scenario) against the best rule by the constrained
    criterion (:mod:`budgetgym.agents.verdict`) on the same campaigns: the outcome
    (:func:`~budgetgym.agents.verdict.outcome`), the paired GMV difference in % of the rule's
    GMV with its 95% interval, the campaigns each left below its ROI target and the policy's
    total GMV as % of the planner's. The policy's name leads each line when several are
    compared; with ``name_checkpoints`` a line per policy from a run names its checkpoint
    first. Empty without such a policy."""
    verdicts = versus_best_rule(rows)
    if not verdicts:
        return []
    by_key = {(r["policy"], r["scenario"]): r for r in rows}
    several = len({v["policy"] for v in verdicts}) > 1
    used = checkpoints_used(rows) if name_checkpoints else {}
    lines = [f"Evaluated {policy}: {text}" for policy, text in used.items()]
    lines.append(
        "Against the best rule (most GMV within planner_cc's ROI-miss rate + 5 points, else "
        "the best AuctionNet score) on the same held-out campaigns (paired GMV difference, "
        "95% interval; ROI target missed: policy vs rule; total GMV as % of the planner's):"
    )
    width = max(len(v["scenario"]) for v in verdicts)
    for v in verdicts:
        row = by_key[(v["policy"], v["scenario"])]
        n = row["episodes"]
        paired = v["paired"]
        lo, hi = paired["gmv_diff_pct_ci95"]
        missed = round(n * v["roi_violation_rate"]), round(n * v["rule_roi_violation_rate"])
        name = f"{v['policy']} " if several else ""
        lines.append(
            f"  {name}{v['scenario']:<{width}}  {v['outcome']:<9}  "
            f"GMV {paired['gmv_diff_pct']:+.1f}% [{lo:+.1f}, {hi:+.1f}] vs {v['rule']}; "
            f"ROI missed {missed[0]} vs {missed[1]} of {n}; "
            f"{row['gmv_ratio_to_planner_pct']:.1f}% of the planner's GMV"
        )
    return lines


def closing_lines(run_dir: Path, compared: bool) -> list[str]:
    """Where a run's results are and how to watch its curves: run directory, ``report.md``,
    the leaderboard and plots (when ``compared``), the TensorBoard command."""
    paths = RunPaths(Path(run_dir))
    lines = [f"Run directory: {paths.root}"]
    if compared:
        lines += [
            f"Report: {paths.report}",
            f"Leaderboard (every policy, every metric): {paths.eval / 'leaderboard.md'}",
            f"Plots: {paths.eval}/*.png",
        ]
    lines.append(f"TensorBoard: tensorboard --logdir {paths.tensorboard}")
    return lines
