"""The leaderboard as Markdown: one table per scenario in the criterion's order, then each
contender against the best rule.

Every table leads with GMV as % of the planner's (ratio of totals), the headline, and ranks
its rows by the criterion of :mod:`budgetgym.agents.verdict`. Privileged references (they read
the campaign's ground truth) are marked with ``PRIVILEGED_MARK`` wherever they appear.
"""

from __future__ import annotations

from typing import Any

from budgetgym.agents.policy import PRIVILEGED
from budgetgym.agents.verdict import (
    MISS_MARGIN,
    best_rule,
    criterion_text,
    miss_limit,
    ranked,
    versus_best_rule,
    within_limit,
)

PRIVILEGED_MARK = "†"
PRIVILEGED_NOTE = f"{PRIVILEGED_MARK} privileged: reads ground truth; not a deployable policy."
OVER_LIMIT_MARK = "‡"


def display_name(policy: str) -> str:
    """A policy's name for tables and plots (a privileged one's with ``PRIVILEGED_MARK``)."""
    return f"{policy} {PRIVILEGED_MARK}" if policy in PRIVILEGED else policy


def ranking_text() -> str:
    """How the tables are ordered and what their marks mean (one paragraph)."""
    return (
        "GMV is measured against two references on the same campaigns, as ratios of totals "
        "(sum of GMV / sum of the reference's): the planner, which knows each campaign's "
        "parameters and expected market but not its realized noise (its gap is reachable), "
        "and the oracle, which also knows the realized market. Rows are ranked by the "
        f"constrained criterion: the policies whose ROI-miss rate is at most planner_cc's + "
        f"{100 * MISS_MARGIN:.0f} points first, by mean GMV; then the others "
        f"(ROI miss marked {OVER_LIMIT_MARK}) by AuctionNet score, GMV x min(1, (ROI / "
        "target)^2). The best rule, the bar of every verdict, is the first rule of that "
        f"ranking. {PRIVILEGED_NOTE}"
    )


def versus_best_rule_markdown(rows: list[dict[str, Any]]) -> str:
    """:func:`~budgetgym.agents.verdict.versus_best_rule` as a Markdown section ("" when no
    contender was evaluated)."""
    verdicts = versus_best_rule(rows)
    if not verdicts:
        return ""
    lines = [
        "### Against the best rule",
        "",
        "Each policy against the scenario's best rule by the constrained criterion. Paired: "
        "the per-campaign difference on the same seeds, with its 95% bootstrap interval in % "
        "of the rule's GMV, and the campaigns only one of the two left below target. Outcome: "
        "won (interval above 0, no more ROI misses), trade-off (above 0, more misses), tie "
        "(interval across 0, no more misses), lost (otherwise).",
        "",
        "| policy | scenario | best rule (criterion) | GMV / rule's GMV | "
        "GMV difference, paired [95% CI] | ROI miss (policy vs rule) | "
        "missed by policy only / rule only | outcome |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        paired = v["paired"]
        lo, hi = paired["gmv_diff_pct_ci95"]
        lines.append(
            f"| {v['policy']} | {v['scenario']} | {v['rule']} ({v['criterion']}) | "
            f"{v['gmv_ratio']:.3f}x | {paired['gmv_diff_pct']:+.2f}% [{lo:+.2f}, {hi:+.2f}] | "
            f"{100 * v['roi_violation_rate']:.1f}% vs {100 * v['rule_roi_violation_rate']:.1f}% | "
            f"{paired['missed_only_policy']} / {paired['missed_only_rule']} | {v['outcome']} |"
        )
    lines.append("")
    return "\n".join(lines)


def _pct(value: float) -> str:
    return "–" if value != value else f"{value:.1f}%"  # NaN: the reference earned nothing


def _cny(value: float) -> str:
    return "–" if value != value else f"{value:,.0f}"  # NaN: no campaign met its target


def leaderboard_markdown(rows: list[dict[str, Any]], header: str = "") -> str:
    """One Markdown table per scenario in the criterion's order
    (:func:`~budgetgym.agents.verdict.ranked`), then each contender against the best rule
    (:func:`versus_best_rule_markdown`). The checkpoint of each policy from a run is named
    under ``header``."""
    lines = [header, ""] if header else []
    checkpoints = {r["policy"]: r["checkpoint"] for r in rows if r.get("checkpoint")}
    if checkpoints:
        lines += ["Checkpoints evaluated:", ""]
        lines += [f"- `{policy}`: `{text}`" for policy, text in checkpoints.items()]
        lines.append("")
    lines += [ranking_text(), ""]
    for scenario in dict.fromkeys(row["scenario"] for row in rows):
        group = [r for r in rows if r["scenario"] == scenario]
        limit = miss_limit(group)
        rule = best_rule(group)
        lines += [f"### {scenario} ({group[0]['episodes']} episodes)", ""]
        if rule is not None:
            lines += [f"Best rule: `{rule['policy']}` ({criterion_text(group)}).", ""]
        lines += [
            "| # | policy | GMV % of planner [95% CI] | GMV % of oracle [95% CI] | ROI miss | "
            "compensation, % of spend | AuctionNet score | GMV of campaigns that met the target "
            "| GMV mean [95% CI] | ROI | budget used | new customers |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for rank, r in enumerate(ranked(group), 1):
            lo, hi = r["gmv_ci95"]
            over = "" if limit is None or within_limit(r, limit) else f" {OVER_LIMIT_MARK}"
            ratios = [
                f"{_pct(r[f'gmv_ratio_to_{ref}_pct'])} "
                f"[{r[f'gmv_ratio_to_{ref}_ci95'][0]:.1f}, {r[f'gmv_ratio_to_{ref}_ci95'][1]:.1f}]"
                for ref in ("planner", "oracle")
            ]
            lines.append(
                f"| {rank} | {display_name(r['policy'])} | {ratios[0]} | {ratios[1]} | "
                f"{100 * r['roi_violation_rate']:.0f}%{over} | "
                f"{r['compensation_pct_of_spend']:.2f}% | {r['auctionnet_score_mean']:,.0f} | "
                f"{_cny(r['gmv_of_met_campaigns'])} | "
                f"{r['gmv_mean']:,.0f} [{lo:,.0f}, {hi:,.0f}] | "
                f"{r['roi_mean']:.2f} | {100 * r['budget_utilization_mean']:.0f}% | "
                f"{r['new_customers_mean']:,.0f} |"
            )
        lines.append("")
    versus = versus_best_rule_markdown(rows)
    return "\n".join([*lines, versus] if versus else lines)
