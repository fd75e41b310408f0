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
    plt = _pyplot()
    labels = list(traces)
    cols = min(4, len(labels))
    rows_n = int(np.ceil(len(labels) / cols))
    fig, axes = plt.subplots(
        rows_n, cols, figsize=(3.6 * cols, 2.8 * rows_n), sharey=True, squeeze=False
    )
    for ax, label in zip(axes.flat, labels, strict=False):
        frac = 100.0 * traces[label]["spend_frac_by_hour"]  # (H, k) % of budget per hour
        ax.stackplot(np.arange(frac.shape[0]), frac.T, labels=CHANNEL_NAMES)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("hour")
    for ax in axes.flat[len(labels) :]:
        ax.axis("off")
    axes[0, 0].set_ylabel("spend, % of budget per hour")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{scenario}: mean spend by channel over the horizon")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_pacing(traces: dict[str, dict[str, dict]], path: Path) -> None:
    """Cumulative share of the budget spent over the horizon (mean over episodes), one panel per
    scenario and one line per policy, against even pacing: where a policy front-loads, holds
    back or leaves budget unspent."""
    plt = _pyplot()
    scenarios = list(traces)
    cols = min(4, len(scenarios))
    rows_n = int(np.ceil(len(scenarios) / cols))
    fig, axes = plt.subplots(
        rows_n, cols, figsize=(3.8 * cols, 3.2 * rows_n), sharey=True, squeeze=False
    )
    for ax, scenario in zip(axes.flat, scenarios, strict=False):
        for label, trace in traces[scenario].items():
            spent = 100.0 * np.cumsum(trace["spend_frac_by_hour"].sum(axis=1))
            style = {"color": "black", "linewidth": 2} if label == "oracle" else {"linewidth": 1}
            ax.plot(np.arange(1, spent.size + 1), spent, label=label, **style)
        horizon = spent.size
        ax.plot([0, horizon], [0, 100], color="grey", linestyle=":", label="even pacing")
        ax.set_xticks(np.arange(0, horizon + 1, 24))
        ax.grid(alpha=0.3)
        ax.set_title(scenario, fontsize=9)
        ax.set_xlabel("hour")
    for ax in axes.flat[len(scenarios) :]:
        ax.axis("off")
    axes[0, 0].set_ylabel("budget spent so far, %")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Pacing: mean cumulative spend over the horizon")
    fig.tight_layout()
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
