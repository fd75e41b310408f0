"""Leaderboard plots (PNG): GMV vs the planner, the GMV-vs-ROI-miss Pareto front, pacing,
spend by channel over time, a typical episode.

All functions take the rows and traces produced by ``budgetgym.agents.evaluation.compare`` and
write files; they import matplotlib with the non-interactive ``Agg`` backend. Every policy keeps
its colour and line style across plots and runs (:func:`policy_styles`): the rules thin, in
fixed styles, the privileged references black and the trained policies thick, in colours no
rule uses, drawn on top. Privileged references carry "†" in every legend and title
(:func:`~budgetgym.agents.leaderboard.display_name`). Legends sit outside the axes, below the
panels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from budgetgym.agents.baselines import BASELINE_NAMES
from budgetgym.agents.channel_set import scenario_channels
from budgetgym.agents.leaderboard import PRIVILEGED_NOTE, display_name
from budgetgym.agents.policy import ORACLE, PLANNER, PLANNER_CC, PRIVILEGED
from budgetgym.agents.verdict import miss_limit
from budgetgym.envs.scenarios import resolve_scenario

#: The privileged references, drawn black and thick: line style, Pareto marker and bar hatch.
REFERENCE_STYLES: dict[str, tuple[str, str, str]] = {
    ORACLE: ("-", "*", "//"),
    PLANNER: ("--", "D", "xx"),
    PLANNER_CC: (":", "s", ".."),
}
#: Colour and line style of each rule: thin lines, so the policies that matter stand out.
RULE_STYLES: dict[str, tuple[str, str]] = {
    "uniform": ("#7f7f7f", ":"),
    "best_channel": ("#bcbd22", "--"),
    "roi_proportional": ("#17becf", "-."),
    "greedy_marginal": ("#8c564b", "-"),
    "pid_pacing": ("#9467bd", "--"),
    "obs_pacing": ("#1f77b4", "-"),
    "obs_pacing_unthrottled": ("#6baed6", "--"),
    "obs_thompson": ("#2ca02c", "-"),
    "obs_price_aware": ("#98df8a", "--"),
    "bandit": ("#e377c2", ":"),
    "dual_pacing": ("#c49c94", "-."),
    "calendar_pacing": ("#c5b0d5", "-"),
    "mmm_static": ("#dbdb8d", "-"),
}
#: Colours of the trained (and any other) policies, in order of appearance: none is a rule's.
LEARNED_COLORS = ("#d62728", "#ff7f0e", "#7b0000", "#f781bf", "#b8860b", "#3f007d")
LEARNED_LINESTYLES = ("-", "--", "-.", ":")
RULE_WIDTH, PROMINENT_WIDTH = 1.1, 2.6


def policy_styles(labels: list[str]) -> dict[str, dict[str, Any]]:
    """Matplotlib line keywords (``color``, ``linestyle``, ``linewidth``, ``zorder``) per policy.

    The privileged references are black (``REFERENCE_STYLES``); each rule has its fixed entry
    of ``RULE_STYLES`` (thin, below); every
    other label (trained policies) takes the next of ``LEARNED_COLORS``, thick and on top, with
    the next line style once the colours run out. A rule without an entry is an error, so that
    no two rules can come to share a style.
    """
    styles: dict[str, dict[str, Any]] = {}
    learned = 0
    for label in labels:
        if label in PRIVILEGED:
            styles[label] = {"color": "black", "linestyle": REFERENCE_STYLES[label][0],
                             "linewidth": PROMINENT_WIDTH, "zorder": 4}  # fmt: skip
        elif label in BASELINE_NAMES:
            if label not in RULE_STYLES:
                raise ValueError(f"Rule {label!r} has no entry in RULE_STYLES (plots.py).")
            color, linestyle = RULE_STYLES[label]
            styles[label] = {"color": color, "linestyle": linestyle, "linewidth": RULE_WIDTH,
                             "zorder": 2}  # fmt: skip
        else:
            color = LEARNED_COLORS[learned % len(LEARNED_COLORS)]
            linestyle = LEARNED_LINESTYLES[learned // len(LEARNED_COLORS) % len(LEARNED_LINESTYLES)]
            styles[label] = {"color": color, "linestyle": linestyle,
                             "linewidth": PROMINENT_WIDTH, "zorder": 3}  # fmt: skip
            learned += 1
    return styles


def _prominent_first(labels: list[str]) -> list[str]:
    """The references, then the trained policies, then the rules (order kept within each)."""
    return sorted(labels, key=lambda label: (label not in PRIVILEGED, label in BASELINE_NAMES))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _panel_grid(n_panels: int, panel_inches: tuple[float, float]):
    """pyplot, a figure (constrained layout, room for a legend below) and a grid of
    ``n_panels`` panels (at most 4 a row, shared y axis); grid cells beyond ``n_panels`` are
    hidden."""
    plt = _pyplot()
    cols = min(4, n_panels)
    rows_n = int(np.ceil(n_panels / cols))
    width, height = panel_inches
    fig, axes = plt.subplots(
        rows_n,
        cols,
        figsize=(width * cols, height * rows_n + 1.0),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat[n_panels:]:
        ax.axis("off")
    return plt, fig, axes


def _legend_below(fig, handles: list, labels: list[str]) -> None:  # noqa: ANN001
    """One legend for the figure, outside the panels, below them; the references and trained
    policies lead it."""
    by_label = dict(zip(labels, handles, strict=True))
    order = _prominent_first(list(by_label))
    ncol = min(6, len(order), max(2, int(fig.get_figwidth() / 1.7)))  # about 1.7 in a column
    fig.legend([by_label[k] for k in order], [display_name(k) for k in order],
               loc="outside lower center", ncol=ncol, fontsize=8)  # fmt: skip


def plot_gmv_vs_planner(rows: list[dict], path: Path) -> None:
    """Grouped bars: total GMV as % of the planner's total (ratio of totals, 95% bootstrap CI)
    per scenario and policy; the trained policies' bars outlined, the privileged references'
    hatched."""
    plt = _pyplot()
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    policies = [p for p in dict.fromkeys(r["policy"] for r in rows) if p != PLANNER]
    styles = policy_styles(policies)
    table = {(r["scenario"], r["policy"]): r for r in rows}
    width = 0.8 / max(len(policies), 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(scenarios)), 5.5), layout="constrained")
    x = np.arange(len(scenarios))
    for j, policy in enumerate(policies):
        found = [table.get((s, policy)) for s in scenarios]
        mean = np.array([r["gmv_ratio_to_planner_pct"] if r else np.nan for r in found])
        lo = np.array([r["gmv_ratio_to_planner_ci95"][0] if r else np.nan for r in found])
        hi = np.array([r["gmv_ratio_to_planner_ci95"][1] if r else np.nan for r in found])
        learned = policy not in BASELINE_NAMES
        ax.bar(
            x + (j - (len(policies) - 1) / 2) * width,
            mean,
            width,
            label=policy,
            color="white" if policy in PRIVILEGED else styles[policy]["color"],
            hatch=REFERENCE_STYLES[policy][2] if policy in PRIVILEGED else None,
            edgecolor="black" if learned else "none",
            linewidth=1.2 if learned else 0,
            yerr=np.stack([mean - lo, hi - mean]),
            error_kw={"elinewidth": 0.8},
            capsize=1.5,
        )
    ax.axhline(100.0, color="black", linewidth=1.5, linestyle="--", label=PLANNER)
    ax.set_ylim(0.0, 1.05 * max(100.0, ax.get_ylim()[1]))  # the planner's line off the frame
    ax.set_xticks(x, scenarios, rotation=20, ha="right")
    ax.set_ylabel("total GMV, % of the planner's (same seeds)")
    ax.set_title(
        f"GMV relative to the planner: ratio of totals (95% bootstrap CI)\n{PRIVILEGED_NOTE}",
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    _legend_below(fig, *ax.get_legend_handles_labels())
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pareto(rows: list[dict], scenario: str, path: Path) -> None:
    """GMV (% of the planner's, ratio of totals) against the ROI-miss rate in one scenario, from
    the rows' ``pareto`` points: each rule a curve over its planned target multipliers (the
    bolder end labelled), every other policy a point (the privileged references black, marked
    †); a dotted vertical line at the best-rule criterion's miss limit."""
    plt = _pyplot()
    group = [r for r in rows if r["scenario"] == scenario and r.get("pareto")]
    if not group:
        raise ValueError(f"No row of {scenario!r} has Pareto points (compare ran without them).")
    styles = policy_styles([r["policy"] for r in group])
    fig, ax = plt.subplots(figsize=(8.5, 6.5), layout="constrained")
    for row in group:
        label, style = row["policy"], styles[row["policy"]]
        points = sorted(row["pareto"], key=lambda p: p["target_mult"])
        x = [100.0 * p["roi_violation_rate"] for p in points]
        y = [p["gmv_ratio_to_planner_pct"] for p in points]
        if label in PRIVILEGED:
            ax.scatter(x, y, marker=REFERENCE_STYLES[label][1], s=110, color="black",
                       zorder=5, label=label)  # fmt: skip
        elif label in BASELINE_NAMES:
            ax.plot(x, y, marker="o", markersize=3, label=label, **style)
            bold_end = f"x{points[0]['target_mult']:g}"
            ax.annotate(bold_end, (x[0], y[0]), fontsize=6, color=style["color"],
                        xytext=(3, 3), textcoords="offset points")  # fmt: skip
        else:
            ax.scatter(x, y, marker="P", s=120, color=style["color"], edgecolor="black",
                       zorder=5, label=label)  # fmt: skip
    limit = miss_limit([r for r in rows if r["scenario"] == scenario])
    if limit is not None:
        ax.axvline(100.0 * limit, color="grey", linestyle=":", linewidth=1.2)
    n = group[0]["pareto"][0]["episodes"]
    ax.set_xlabel("ROI-miss rate, % of campaigns")
    ax.set_ylabel("total GMV, % of the planner's")
    mults = sorted({p["target_mult"] for r in group for p in r["pareto"]})
    ax.set_title(
        f"{scenario}: GMV vs ROI misses on {n} campaigns\n"
        f"rules plan to x{mults[0]:g}-x{mults[-1]:g} their target (labelled: the lowest); "
        "dotted: the best-rule criterion's miss limit\n"
        f"{PRIVILEGED_NOTE}",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    _legend_below(fig, *ax.get_legend_handles_labels())
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_channel_spend(
    traces: dict[str, dict], scenario: str, path: Path, channel_names: Sequence[str]
) -> None:
    """Stacked per-channel spend per hour (mean share of budget) over ``channel_names`` (the
    scenario's channels), one panel per policy (the references and trained policies first)."""
    labels = _prominent_first(list(traces))
    plt, fig, axes = _panel_grid(len(labels), (3.6, 2.8))
    for ax, label in zip(axes.flat, labels, strict=False):
        frac = 100.0 * traces[label]["spend_frac_by_hour"]  # (H, k) % of budget per hour
        ax.stackplot(np.arange(frac.shape[0]), frac.T, labels=channel_names)
        bold = label not in BASELINE_NAMES
        ax.set_title(display_name(label), fontsize=9, fontweight="bold" if bold else "normal")
        ax.set_xlabel("hour")
    axes[0, 0].set_ylabel("spend, % of budget per hour")
    _legend_below(fig, *axes[0, 0].get_legend_handles_labels())
    fig.suptitle(f"{scenario}: mean spend by channel over the horizon")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_pacing(traces: dict[str, dict[str, dict]], path: Path) -> None:
    """Budget spent so far minus even pacing's, in points of the budget (mean over episodes),
    one panel per scenario and one line per policy: above 0 a policy is ahead of schedule
    (front-loads), below it holds back; the end value is the budget left unspent (negative).
    The curves of good policies lie within a few points of each other, too close to tell apart
    as cumulative spend."""
    scenarios = list(traces)
    plt, fig, axes = _panel_grid(len(scenarios), (3.8, 3.2))
    for ax, scenario in zip(axes.flat, scenarios, strict=False):
        styles = policy_styles(list(traces[scenario]))
        for label, trace in traces[scenario].items():
            spent = 100.0 * np.cumsum(trace["spend_frac_by_hour"].sum(axis=1))
            hours = np.arange(1, spent.size + 1)
            ax.plot(hours, spent - 100.0 * hours / spent.size, label=label, **styles[label])
        ax.axhline(0.0, color="grey", linestyle=":", linewidth=1)
        ax.set_xticks(np.arange(0, spent.size + 1, 24))
        ax.grid(alpha=0.3)
        ax.set_title(scenario, fontsize=9)
        ax.set_xlabel("hour")
    axes[0, 0].set_ylabel("spent - even pacing, % of budget")
    _legend_below(fig, *axes[0, 0].get_legend_handles_labels())
    fig.suptitle("Pacing: budget spent so far relative to even pacing (mean over episodes)")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def typical_episode(traces: dict[str, dict]) -> int:
    """Index of the episode whose oracle GMV is the median (else policy 0's)."""
    ref = traces.get(ORACLE, next(iter(traces.values())))
    final = ref["cum_gmv_cny"][:, -1]
    return int(np.argsort(final)[len(final) // 2])


def plot_typical_episode(traces: dict[str, dict], scenario: str, path: Path) -> None:
    """Cumulative spend and GMV over the horizon of one typical episode, one line per policy."""
    plt = _pyplot()
    i = typical_episode(traces)
    styles = policy_styles(list(traces))
    fig, (ax_s, ax_g) = plt.subplots(1, 2, figsize=(11, 5), layout="constrained")
    for label, trace in traces.items():
        ax_s.plot(trace["cum_spend_cny"][i], label=label, **styles[label])
        ax_g.plot(trace["cum_gmv_cny"][i], label=label, **styles[label])
    ax_s.set_title("cumulative spend (CNY)")
    ax_g.set_title("cumulative attributed GMV (CNY)")
    for ax in (ax_s, ax_g):
        ax.set_xlabel("hour")
        ax.grid(alpha=0.3)
    _legend_below(fig, *ax_g.get_legend_handles_labels())
    fig.suptitle(f"{scenario}: typical episode (median oracle GMV), episode #{i}")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_plots(rows: list[dict], traces: dict[str, dict[str, dict]], out_dir: Path) -> list[Path]:
    """Write all leaderboard plots into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    paths = [out_dir / "gmv_vs_planner.png", out_dir / "pacing.png"]
    plot_gmv_vs_planner(rows, paths[0])
    plot_pacing(traces, paths[1])
    for scenario, per_policy in traces.items():
        if any(r.get("pareto") for r in rows if r["scenario"] == scenario):
            paths.append(out_dir / f"pareto_{resolve_scenario(scenario).name}.png")
            plot_pareto(rows, scenario, paths[-1])
        label = resolve_scenario(scenario).name  # a file's scenario: its name, not its path
        spend_path = out_dir / f"channel_spend_{label}.png"
        episode_path = out_dir / f"typical_episode_{label}.png"
        plot_channel_spend(per_policy, scenario, spend_path, scenario_channels(scenario).names)
        plot_typical_episode(per_policy, scenario, episode_path)
        paths += [spend_path, episode_path]
    return paths
