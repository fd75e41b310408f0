"""Leaderboard plots (PNG): GMV vs oracle, pacing, spend by channel over time, a typical episode.

All functions take the rows and traces produced by ``budgetgym.agents.evaluation.compare`` and
write files; they import matplotlib with the non-interactive ``Agg`` backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from budgetgym.envs.channels import CHANNEL_NAMES


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _panel_grid(n_panels: int, panel_inches: tuple[float, float]):
    """pyplot, a figure and a grid of ``n_panels`` panels (at most 4 a row, shared y axis);
    grid cells beyond ``n_panels`` are hidden."""
    plt = _pyplot()
    cols = min(4, n_panels)
    rows_n = int(np.ceil(n_panels / cols))
    width, height = panel_inches
    fig, axes = plt.subplots(
        rows_n, cols, figsize=(width * cols, height * rows_n), sharey=True, squeeze=False
    )
    for ax in axes.flat[n_panels:]:
        ax.axis("off")
    return plt, fig, axes


def plot_gmv_vs_oracle(rows: list[dict], path: Path) -> None:
    """Grouped bars: mean GMV as % of the oracle (95% bootstrap CI) per scenario and policy."""
    plt = _pyplot()
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    policies = [p for p in dict.fromkeys(r["policy"] for r in rows) if p != "oracle"]
    table = {(r["scenario"], r["policy"]): r for r in rows}
    width = 0.8 / max(len(policies), 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(scenarios)), 4.5))
    x = np.arange(len(scenarios))
    for j, policy in enumerate(policies):
        found = [table.get((s, policy)) for s in scenarios]
        mean = np.array([r["pct_of_oracle_mean"] if r else np.nan for r in found])
        lo = np.array([r["pct_of_oracle_ci95"][0] if r else np.nan for r in found])
        hi = np.array([r["pct_of_oracle_ci95"][1] if r else np.nan for r in found])
        ax.bar(
            x + (j - (len(policies) - 1) / 2) * width,
            mean,
            width,
            label=policy,
            yerr=np.stack([mean - lo, hi - mean]),
            capsize=2,
        )
    ax.axhline(100.0, color="black", linewidth=1, linestyle="--", label="oracle")
    ax.set_xticks(x, scenarios, rotation=20, ha="right")
    ax.set_ylabel("GMV, % of hindsight oracle (same seeds)")
    ax.set_title("GMV relative to the oracle (mean, 95% bootstrap CI)")
    ax.legend(ncol=4, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_channel_spend(traces: dict[str, dict], scenario: str, path: Path) -> None:
    """Stacked per-channel spend per hour (mean share of budget), one panel per policy."""
    labels = list(traces)
    plt, fig, axes = _panel_grid(len(labels), (3.6, 2.8))
    for ax, label in zip(axes.flat, labels, strict=False):
        frac = 100.0 * traces[label]["spend_frac_by_hour"]  # (H, k) % of budget per hour
        ax.stackplot(np.arange(frac.shape[0]), frac.T, labels=CHANNEL_NAMES)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("hour")
    axes[0, 0].set_ylabel("spend, % of budget per hour")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{scenario}: mean spend by channel over the horizon")
    fig.tight_layout()
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
        for label, trace in traces[scenario].items():
            spent = 100.0 * np.cumsum(trace["spend_frac_by_hour"].sum(axis=1))
            hours = np.arange(1, spent.size + 1)
            style = {"color": "black", "linewidth": 2} if label == "oracle" else {"linewidth": 1}
            ax.plot(hours, spent - 100.0 * hours / spent.size, label=label, **style)
        ax.axhline(0.0, color="grey", linestyle=":", linewidth=1)
        ax.set_xticks(np.arange(0, spent.size + 1, 24))
        ax.grid(alpha=0.3)
        ax.set_title(scenario, fontsize=9)
        ax.set_xlabel("hour")
    axes[0, 0].set_ylabel("spent - even pacing, % of budget")
    # One legend beside the grid: inside a panel it would hide the curves.
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="center right", fontsize=8)
    fig.suptitle("Pacing: budget spent so far relative to even pacing (mean over episodes)")
    fig.tight_layout(rect=(0.0, 0.0, 0.88, 1.0))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def typical_episode(traces: dict[str, dict]) -> int:
    """Index of the episode whose oracle GMV is the median (else policy 0's)."""
    ref = traces.get("oracle", next(iter(traces.values())))
    final = ref["cum_gmv_cny"][:, -1]
    return int(np.argsort(final)[len(final) // 2])


def plot_typical_episode(traces: dict[str, dict], scenario: str, path: Path) -> None:
    """Cumulative spend and GMV over the horizon of one typical episode, one line per policy."""
    plt = _pyplot()
    i = typical_episode(traces)
    fig, (ax_s, ax_g) = plt.subplots(1, 2, figsize=(11, 4))
    for label, trace in traces.items():
        style = {"color": "black", "linewidth": 2} if label == "oracle" else {}
        ax_s.plot(trace["cum_spend_cny"][i], label=label, **style)
        ax_g.plot(trace["cum_gmv_cny"][i], label=label, **style)
    ax_s.set_title("cumulative spend (CNY)")
    ax_g.set_title("cumulative attributed GMV (CNY)")
    for ax in (ax_s, ax_g):
        ax.set_xlabel("hour")
    ax_g.legend(fontsize=8)
    fig.suptitle(f"{scenario}: typical episode (median oracle GMV), episode #{i}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_plots(rows: list[dict], traces: dict[str, dict[str, dict]], out_dir: Path) -> list[Path]:
    """Write all leaderboard plots into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    paths = [out_dir / "gmv_vs_oracle.png", out_dir / "pacing.png"]
    plot_gmv_vs_oracle(rows, paths[0])
    plot_pacing(traces, paths[1])
    for scenario, per_policy in traces.items():
        spend_path = out_dir / f"channel_spend_{scenario}.png"
        episode_path = out_dir / f"typical_episode_{scenario}.png"
        plot_channel_spend(per_policy, scenario, spend_path)
        plot_typical_episode(per_policy, scenario, episode_path)
        paths += [spend_path, episode_path]
    return paths
