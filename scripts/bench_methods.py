"""Learning methods against the best rule and ``planner_cc``, over training seeds.

A method is one configuration trained with several seeds (one run directory per seed, or a
checkpoint directory such as ``RUN/final``, labelled so by ``compare``). One
held-out comparison with every run as a policy gives, per run and scenario, the GMV in % of the
planner's, the ROI-miss rate and the compensation in % of spend, beside the best rule
(``agents/verdict.py``'s criterion) and ``planner_cc``. This script groups the runs by method and
writes the table: method x scenario, mean and 95% interval over seeds (Student t), with the
training wall time of each run (from its ``command.txt`` to its ``final/`` checkpoint)::

    budgetgym compare --scenarios all --episodes 256 --no-pareto --out runs/methods/eval \\
        --policy runs/dagger_s0 --policy runs/dagger_s1 ...
    .venv/bin/python scripts/bench_methods.py runs/methods/eval/leaderboard.json \\
        --method dagger=runs/dagger_s0,runs/dagger_s1,runs/dagger_s2 --method ... \\
        --json docs/results/methods.json

Several comparisons of the same campaigns (a method trained later, compared on its own) are
merged: the first one's rows, then the policies each other one adds.

It checks the targets of a learned method, per scenario:

- **beats the best rule** on a seed, and on the seed mean (the mean GMV and mean miss rate over
  the seeds): more mean GMV, and a miss rate at most the rule's + ``RULE_MISS_MARGIN``;
- **near planner_cc** on the seed mean: at least ``CC_GMV_SHARE`` of ``planner_cc``'s GMV, at a
  miss rate at most ``PLANNER_CC_ALPHA`` (5%) + ``CC_MISS_MARGIN``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from budgetgym.agents.checkpoints import run_policy_name
from budgetgym.agents.policy import PLANNER, PLANNER_CC, PLANNER_CC_ALPHA
from budgetgym.agents.training import mean_ci
from budgetgym.agents.verdict import best_rule

#: Points of miss rate a method may exceed the best rule's by and still beat it.
RULE_MISS_MARGIN = 0.02
#: Share of planner_cc's GMV a method must reach, and the points above planner_cc's alpha its
#: miss rate may reach.
CC_GMV_SHARE = 0.95
CC_MISS_MARGIN = 0.03


def train_minutes(run_dir: Path) -> float | None:
    """Minutes from a run's first command (``command.txt``) to its ``final/`` checkpoint (of
    the run a checkpoint directory belongs to); None when either is missing. A resumed run
    counts the pause between its commands too."""
    if (run_dir / "meta.json").is_file():  # a checkpoint: its run's time
        run_dir = run_dir.parent
    command, meta = run_dir / "command.txt", run_dir / "final" / "meta.json"
    if not (command.is_file() and meta.is_file()):
        return None
    started = datetime.strptime(command.read_text()[:19], "%Y-%m-%d %H:%M:%S")
    saved = datetime.strptime(json.loads(meta.read_text())["saved_at"][:19], "%Y-%m-%dT%H:%M:%S")
    return (saved - started).total_seconds() / 60


def parse_method(spec: str) -> tuple[str, list[Path]]:
    """``NAME=RUN[,RUN...]`` -> (name, run directories)."""
    name, sep, runs = spec.partition("=")
    if not sep or not name or not runs:
        raise argparse.ArgumentTypeError(f"--method takes NAME=RUN[,RUN...], got {spec!r}")
    return name, [Path(r) for r in runs.split(",")]


def merge(leaderboards: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The rows of several comparisons of the same campaigns: the first one's, then each
    (scenario, policy) the others add. A method trained later is compared without running the
    references and rules again.

    Raises:
        ValueError: a row present in two comparisons differs (other seeds, episodes or code).
    """
    rows = {(r["scenario"], r["policy"]): r for r in leaderboards[0]}
    for board in leaderboards[1:]:
        for r in board:
            key = (r["scenario"], r["policy"])
            if key not in rows:
                rows[key] = r
            elif (rows[key]["episodes"], rows[key]["gmv_mean"]) != (r["episodes"], r["gmv_mean"]):
                raise ValueError(
                    f"the comparisons differ on {key[1]} in {key[0]}: not the same campaigns"
                )
    return list(rows.values())


def beats_rule(gmv_mean: float, miss_rate: float, rule: dict[str, Any]) -> bool:
    """More mean GMV than the ``rule``'s leaderboard row, at a miss rate at most its own +
    ``RULE_MISS_MARGIN``."""
    margin = rule["roi_violation_rate"] + RULE_MISS_MARGIN + 1e-12
    return gmv_mean > rule["gmv_mean"] and miss_rate <= margin


def _stat(values: list[float]) -> dict[str, Any]:
    """Mean and 95% interval over seeds; one seed has no interval (``ci95`` None)."""
    mean, half = mean_ci(values)
    return {"mean": mean, "ci95": half if len(values) > 1 else None, "seeds": values}


def method_rows(rows: list[dict[str, Any]], methods: dict[str, list[Path]]) -> list[dict[str, Any]]:
    """One row per (method, scenario): the seed statistics and the targets' verdicts.

    Args:
        rows: ``leaderboard.json`` of a comparison holding every run as a policy (labelled by
            its run directory's name, ``RUN/CHECKPOINT`` for a checkpoint directory).
        methods: method name -> its run (or checkpoint) directories.

    Raises:
        ValueError: a run is missing from the comparison in some scenario.
    """
    by_key = {(r["scenario"], r["policy"]): r for r in rows}
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    out = []
    for scenario in scenarios:
        group = [r for r in rows if r["scenario"] == scenario]
        rule = best_rule(group)
        cc = by_key.get((scenario, PLANNER_CC))
        planner = by_key[(scenario, PLANNER)]
        if rule is None or cc is None:
            raise ValueError(f"{scenario}: the comparison has no rules or no {PLANNER_CC} row.")
        for name, run_dirs in methods.items():
            runs = []
            for label in map(run_policy_name, run_dirs):
                row = by_key.get((scenario, label))
                if row is None:
                    raise ValueError(f"{label} is not in the comparison on {scenario}.")
                runs.append(row)
            miss_pct = _stat([100 * r["roi_violation_rate"] for r in runs])
            vs_cc = _stat([r["gmv_mean"] / cc["gmv_mean"] for r in runs])
            vs_rule = [100 * (r["gmv_mean"] / rule["gmv_mean"] - 1) for r in runs]
            beats = [beats_rule(r["gmv_mean"], r["roi_violation_rate"], rule) for r in runs]
            out.append({
                "method": name,
                "scenario": scenario,
                "runs": [run_policy_name(d) for d in run_dirs],
                "pct_of_planner": _stat([100 * r["gmv_mean"] / planner["gmv_mean"] for r in runs]),
                "miss_pct": miss_pct,
                "compensation_pct_of_spend": _stat([r["compensation_pct_of_spend"] for r in runs]),
                "gmv_vs_rule_pct": _stat(vs_rule),
                "rule": rule["policy"],
                "rule_pct_of_planner": 100 * rule["gmv_mean"] / planner["gmv_mean"],
                "rule_miss_pct": 100 * rule["roi_violation_rate"],
                "rule_compensation_pct_of_spend": rule["compensation_pct_of_spend"],
                "cc_pct_of_planner": 100 * cc["gmv_mean"] / planner["gmv_mean"],
                "cc_miss_pct": 100 * cc["roi_violation_rate"],
                "seeds_beating_rule": sum(beats),
                "beats_rule_every_seed": all(beats),
                "beats_rule_on_seed_mean": beats_rule(
                    float(np.mean([r["gmv_mean"] for r in runs])), miss_pct["mean"] / 100, rule
                ),
                "near_planner_cc": vs_cc["mean"] >= CC_GMV_SHARE
                and miss_pct["mean"] <= 100 * (PLANNER_CC_ALPHA + CC_MISS_MARGIN) + 1e-9,
                "train_minutes": [train_minutes(d) for d in run_dirs],
            })  # fmt: skip
    return out


def _cell(stat: dict[str, Any], sign: str = "") -> str:
    """``mean ± half-width``, or the mean alone for one seed."""
    mean = f"{stat['mean']:{sign}.1f}"
    return mean if stat["ci95"] is None else f"{mean} ± {stat['ci95']:.1f}"


def markdown(table: list[dict[str, Any]]) -> str:
    """The table as markdown: one line per (method, scenario), then the references."""
    lines = [
        "| method | scenario | % of planner | ROI misses % | compensation % of spend "
        "| GMV vs best rule % | seeds beating the rule | seed mean beats it "
        "| best rule (% of planner, misses %, compensation %) "
        "| planner_cc (% of planner, misses %) | train min per seed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        minutes = ", ".join("?" if m is None else f"{m:.1f}" for m in r["train_minutes"])
        lines.append(
            f"| {r['method']} | {r['scenario']} | {_cell(r['pct_of_planner'])} "
            f"| {_cell(r['miss_pct'])} | {_cell(r['compensation_pct_of_spend'])} "
            f"| {_cell(r['gmv_vs_rule_pct'], '+')} "
            f"| {r['seeds_beating_rule']} of {len(r['runs'])} "
            f"| {'yes' if r['beats_rule_on_seed_mean'] else 'no'} "
            f"| `{r['rule']}` ({r['rule_pct_of_planner']:.1f}, {r['rule_miss_pct']:.1f}, "
            f"{r['rule_compensation_pct_of_spend']:.1f}) "
            f"| {r['cc_pct_of_planner']:.1f}, {r['cc_miss_pct']:.1f} | {minutes} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "leaderboard", type=Path, nargs="+",
        help="leaderboard.json of the comparison; several of the same campaigns are merged",
    )  # fmt: skip
    parser.add_argument(
        "--method", type=parse_method, action="append", required=True, metavar="NAME=RUN,...",
        help="a method and its run directories (one per training seed); repeat for several",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the table here as JSON")
    args = parser.parse_args(argv)
    methods = dict(args.method)
    if len(methods) != len(args.method):
        parser.error("each --method needs its own name")
    try:
        rows = merge([json.loads(path.read_text()) for path in args.leaderboard])
        table = method_rows(rows, methods)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"error: {', '.join(map(str, args.leaderboard))}: {exc}", file=sys.stderr)
        return 2
    print(markdown(table))
    miss_limit = PLANNER_CC_ALPHA + CC_MISS_MARGIN
    for name in methods:
        mine = [r for r in table if r["method"] == name]
        every = all(r["beats_rule_every_seed"] for r in mine)
        near = all(r["near_planner_cc"] for r in mine)
        print(
            f"{name}: beats the best rule on every seed in every scenario: {every}; "
            f">= {CC_GMV_SHARE:.0%} of planner_cc's GMV at <= {miss_limit:.0%} "
            f"misses in every scenario: {near}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(table, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
