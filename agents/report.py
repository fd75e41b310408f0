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
from budgetgym.agents.evaluation import compare, versus_best_rule
from budgetgym.agents.policy import ORACLE
from budgetgym.envs import EVAL_SEED_START, SCENARIO_NAMES

#: Outcomes of :func:`outcome` (the verdict's first word).
OUTCOMES = ("won", "lost", "tie", "trade-off")


def compare_run(
    paths: RunPaths,
    config: TrainConfig,
    policy_specs: list[str],
    progress: bool,
) -> list[dict[str, Any]]:
    """Compare trained policies with every rule and the oracle on held-out campaigns.

    Writes ``eval/`` (leaderboard.json/.md and plots, as ``budgetgym compare``) and
    ``report.md``; returns the leaderboard rows.
    """
    scenarios = list(config.eval.final_scenarios or [s for s in SCENARIO_NAMES if s != "mixed"])
    rows = compare(
        list(policy_specs),  # compare adds every rule and the oracle
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
    policies = [*used, *BASELINE_NAMES, ORACLE]
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


def outcome(verdict: dict[str, Any]) -> str:
    """A policy's result against the best rule in one word (one of ``OUTCOMES``), from the
    paired GMV difference's 95% interval and the ROI-miss rates of the two:

    ``won``: more GMV (the interval above 0) and no more ROI misses; ``lost``: less GMV (the
    interval below 0), or more ROI misses without more GMV; ``trade-off``: more GMV and more
    ROI misses; ``tie``: the interval contains 0 and no more ROI misses.

    Args:
        verdict: one item of :func:`~budgetgym.agents.evaluation.versus_best_rule` with its
            ``paired`` differences.
    """
    lo, hi = verdict["paired"]["gmv_diff_ci95"]
    more_misses = verdict["roi_violation_rate"] > verdict["rule_roi_violation_rate"]
    if hi < 0 or (more_misses and lo <= 0):
        return "lost"
    if lo > 0:
        return "trade-off" if more_misses else "won"
    return "tie"


def verdict_lines(rows: list[dict[str, Any]], name_checkpoints: bool = True) -> list[str]:
    """One line per (trained policy, scenario) against the best rule by GMV on the same
    campaigns: the outcome (:func:`outcome`), the paired GMV difference in % of the rule's GMV
    with its 95% interval, and the campaigns each left below its ROI target. The policy's name
    leads each line when several are compared; with ``name_checkpoints`` a line per policy from
    a run names its checkpoint first. Empty without such a policy."""
    verdicts = [v for v in versus_best_rule(rows) if "paired" in v]
    if not verdicts:
        return []
    episodes = {(r["policy"], r["scenario"]): r["episodes"] for r in rows}
    several = len({v["policy"] for v in verdicts}) > 1
    used = checkpoints_used(rows) if name_checkpoints else {}
    lines = [f"Evaluated {policy}: {text}" for policy, text in used.items()]
    lines.append(
        "Against the best rule by GMV on the same held-out campaigns "
        "(paired GMV difference, 95% interval; ROI target missed: policy vs rule):"
    )
    width = max(len(v["scenario"]) for v in verdicts)
    for v in verdicts:
        n = episodes[(v["policy"], v["scenario"])]
        paired = v["paired"]
        lo, hi = paired["gmv_diff_pct_ci95"]
        missed = round(n * v["roi_violation_rate"]), round(n * v["rule_roi_violation_rate"])
        name = f"{v['policy']} " if several else ""
        lines.append(
            f"  {name}{v['scenario']:<{width}}  {outcome(v):<9}  "
            f"GMV {paired['gmv_diff_pct']:+.1f}% [{lo:+.1f}, {hi:+.1f}] vs {v['rule']}; "
            f"ROI missed {missed[0]} vs {missed[1]} of {n}"
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
