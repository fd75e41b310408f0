"""Draw ``bench_roi_guard.py``'s figures: GMV against ROI misses, per scenario, beside the target.

Each panel is one scenario: the student and each guard at their mean over the reports given
(one per training seed; every seed's point drawn faintly), ``planner_cc`` at 100% of its own GMV
and its miss rate, and the band a policy must reach: at least ``CC_GMV_SHARE`` of
``planner_cc``'s GMV at a miss rate of at most ``PLANNER_CC_ALPHA + CC_MISS_MARGIN``.
``--planners`` adds ``bench_population_planner.py``'s reports on the same campaigns: the planner
at each margin, reading the true parameters and the population's mean campaign::

    .venv/bin/python scripts/plot_roi_guard.py docs/results/roi_guard_s0.json \\
        docs/results/roi_guard_s1.json docs/results/roi_guard_s2.json \\
        --planners docs/results/population_planner_a.json docs/results/population_planner_b.json \\
        --out docs/results/roi_guard.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from budgetgym.agents.policy import PLANNER_CC_ALPHA
from budgetgym.scripts.bench_methods import CC_GMV_SHARE, CC_MISS_MARGIN


def read_reports(paths: list[Path]) -> list[dict[str, Any]]:
    """The reports, checked to hold the same scenarios and guards in the same order."""
    reports: list[dict[str, Any]] = []
    first: tuple | None = None
    for path in paths:
        try:
            report = json.loads(path.read_text())
            key = ([row["scenario"] for row in report["rows"]], report["guards"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{path} is not a bench_roi_guard.py report ({err}).") from None
        if first is not None and key != first:
            raise ValueError(f"{path} measures other scenarios or guards than {paths[0]}.")
        first = key
        reports.append(report)
    if not reports:
        raise ValueError("Give at least one report.")
    return reports


#: How the planner's margin ladder is drawn, per what it knows (bench_population_planner.py).
PLANNER_LINES = {
    "true": ("planner, true parameters", "tab:gray", "-"),
    "population": ("planner, population's mean campaign", "tab:brown", "--"),
}


def read_planner_reports(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """Scenario to its margin ladders, ``{knows: [(miss_pct, pct_of_planner_cc) per kappa]}`` for
    each key of :data:`PLANNER_LINES`, and ``"kappas"``: the margins' labels; from
    ``bench_population_planner.py`` reports without ``--reveal``."""
    ladders: dict[str, dict[str, Any]] = {}
    for path in paths:
        try:
            report = json.loads(path.read_text())
            reveal = report["reveal"]
            for row in report["rows"]:
                ladders[row["scenario"]] = {
                    knows: [
                        (float(f[knows]["miss_pct"]), float(f[knows]["pct_of_planner_cc"]))
                        for f in row["kappas"].values()
                    ]
                    for knows in PLANNER_LINES
                } | {"kappas": list(row["kappas"])}
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"{path} is not a bench_population_planner.py report ({err})."
            ) from None
        if reveal:
            raise ValueError(f"{path} reveals {', '.join(reveal)}: give reports without --reveal.")
    return ladders


def plot(
    reports: list[dict[str, Any]], path: Path, planners: dict[str, dict[str, Any]] | None = None
) -> None:
    """One panel per scenario of ``reports`` (see the module's docstring), written to ``path``;
    ``planners`` (:func:`read_planner_reports`) adds the planner's margin ladders."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [row["scenario"] for row in reports[0]["rows"]]
    labels = ["student", *reports[0]["guards"]]
    colors = plt.get_cmap("tab10")(np.arange(len(labels)))
    cols = min(4, len(scenarios))
    n_rows = int(np.ceil(len(scenarios) / cols))
    fig, axes = plt.subplots(n_rows, cols, figsize=(3.6 * cols, 3.4 * n_rows + 0.8),
                             squeeze=False, layout="constrained")  # fmt: skip
    max_miss = 100 * (PLANNER_CC_ALPHA + CC_MISS_MARGIN)
    for ax, (i, scenario) in zip(axes.flat, enumerate(scenarios), strict=False):
        rows = [report["rows"][i] for report in reports]
        ax.fill_between([0, max_miss], 100 * CC_GMV_SHARE, 101, color="tab:green", alpha=0.15,
                        label="target", zorder=0)  # fmt: skip
        cc_miss = np.mean([row["planner_cc_miss_pct"] for row in rows])
        ax.scatter([cc_miss], [100.0], marker="*", s=140, color="black", label="planner_cc")
        ladders = (planners or {}).get(scenario)
        for knows, (label, color, style) in PLANNER_LINES.items() if ladders else ():
            miss, gmv = zip(*ladders[knows], strict=True)
            ax.plot(miss, gmv, style, marker="o", ms=3, color=color, lw=1,
                    label=f"{label}, κ {', '.join(ladders['kappas'])}")  # fmt: skip
        for label, color in zip(labels, colors, strict=True):
            miss = [row[label]["miss_pct"] for row in rows]
            gmv = [row[label]["pct_of_planner_cc"] for row in rows]
            ax.scatter(miss, gmv, s=12, color=color, alpha=0.35)
            ax.scatter([np.mean(miss)], [np.mean(gmv)], s=60, color=color, edgecolor="black",
                       label=label, zorder=3)  # fmt: skip
        ax.set_title(scenario, fontsize=10)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(scenarios) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("GMV, % of planner_cc's")
    for ax in axes[-1, :]:
        ax.set_xlabel("ROI misses, % of campaigns")
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(5, len(names)), fontsize=8)
    fig.suptitle(
        f"Guards on the student's pace{'' if planners is None else ' and the planner margins'}, "
        f"held out ({len(reports)} training seeds: faint, "
        "each seed; bold, their mean)",
        fontsize=10,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help="bench_roi_guard.py --json files.")
    parser.add_argument(
        "--planners", nargs="*", type=Path, default=[], help="bench_population_planner.py files."
    )
    parser.add_argument("--out", type=Path, required=True, help="The PNG to write.")
    args = parser.parse_args(argv)
    try:
        reports = read_reports(args.reports)
        planners = read_planner_reports(args.planners) if args.planners else None
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    plot(reports, args.out, planners)
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
