"""Which rule is "the best rule", and how another policy fares against it.

One criterion ranks a scenario's policies for every table and verdict (:func:`rank_key`): the
policies whose ROI-miss rate is at most ``planner_cc``'s plus ``MISS_MARGIN`` come first, by
mean GMV; the others follow by AuctionNet score (``GMV x min(1, (ROI / target)^2)``); without a
``planner_cc`` row every policy is ranked by that score. GMV bought by missing the target thus
never lifts a rule above one that keeps it: the best rule (:func:`best_rule`) is the first rule
of that ranking. :func:`add_paired_differences` pairs each contender with it campaign by
campaign, :func:`versus_best_rule` gives the verdicts and :func:`outcome` is their one word.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from budgetgym.agents.baselines import BASELINE_NAMES
from budgetgym.agents.metrics import bootstrap_ci
from budgetgym.agents.policy import PLANNER_CC, PRIVILEGED

#: Points of ROI-miss rate a policy may exceed ``planner_cc``'s by and still rank by GMV.
MISS_MARGIN = 0.05
#: Outcomes of :func:`outcome` (the verdict's first word).
OUTCOMES = ("won", "lost", "tie", "trade-off")


def miss_limit(group: list[dict[str, Any]]) -> float | None:
    """The highest ROI-miss rate ranked by GMV in one scenario's summary rows: ``planner_cc``'s
    rate + ``MISS_MARGIN`` (None without a ``planner_cc`` row)."""
    reference = next((r for r in group if r["policy"] == PLANNER_CC), None)
    return None if reference is None else reference["roi_violation_rate"] + MISS_MARGIN


def within_limit(row: dict[str, Any], limit: float | None) -> bool:
    """Whether a summary row's ROI-miss rate is within ``limit`` (:func:`miss_limit`)."""
    return limit is not None and row["roi_violation_rate"] <= limit + 1e-12


def rank_key(row: dict[str, Any], limit: float | None) -> tuple[int, float]:
    """Sort key of the criterion (smaller is better): within ``limit``, by mean GMV; beyond it
    (or without a limit), after them, by AuctionNet score."""
    if within_limit(row, limit):
        return (0, -row["gmv_mean"])
    return (1, -row["auctionnet_score_mean"])


def ranked(group: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One scenario's summary rows in the criterion's order (best first)."""
    limit = miss_limit(group)
    return sorted(group, key=lambda r: rank_key(r, limit))


def best_rule(group: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best rule baseline among one scenario's summary rows by the criterion (None without
    rules)."""
    rules = [r for r in ranked(group) if r["policy"] in BASELINE_NAMES]
    return rules[0] if rules else None


def criterion_text(group: list[dict[str, Any]]) -> str:
    """How the best rule of one scenario's summary rows was chosen, for tables and verdicts:
    within the miss limit by GMV, or by AuctionNet score and why."""
    limit, rule = miss_limit(group), best_rule(group)
    if limit is None:
        return "best AuctionNet score; no planner_cc row to set a miss limit"
    bound = f"ROI miss <= {100 * limit:.1f}%, planner_cc's + {100 * MISS_MARGIN:.0f} points"
    if rule is not None and within_limit(rule, limit):
        return f"most GMV with {bound}"
    return f"best AuctionNet score: no rule has {bound}"


def is_contender(row: dict[str, Any]) -> bool:
    """A policy judged against the best rule: neither a rule nor a privileged reference."""
    return row["policy"] not in BASELINE_NAMES and row["policy"] not in PRIVILEGED


def _scenario_groups(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["scenario"], []).append(row)
    return groups


def add_paired_differences(
    rows: list[dict[str, Any]], episode_rows: dict[tuple[str, str], list[dict[str, Any]]]
) -> None:
    """Add ``paired`` to each contender's summary row (:func:`is_contender`): its per-campaign
    difference from the best rule (:func:`best_rule`) on the same seeds (common random numbers,
    so the campaigns' own luck cancels and the interval is far narrower than the two GMV
    intervals suggest).

    ``paired``: ``rule``, ``gmv_diff_mean`` (CNY per campaign), ``gmv_diff_ci95`` (bootstrap),
    ``gmv_diff_pct`` and ``gmv_diff_pct_ci95`` (the same in % of the rule's mean GMV),
    ``missed_only_policy`` / ``missed_only_rule`` (campaigns below their ROI target under one
    of the two only). An interval containing 0 is a tie at this many campaigns.

    Args:
        rows: summaries, one per (scenario, policy); changed in place.
        episode_rows: ``(scenario, policy) -> evaluate(...).episodes``, in seed order.
    """
    for scenario, group in _scenario_groups(rows).items():
        rule = best_rule(group)
        if rule is None:
            continue
        theirs = episode_rows[(scenario, rule["policy"])]
        for row in filter(is_contender, group):
            ours = episode_rows[(scenario, row["policy"])]
            if [e["seed"] for e in ours] != [e["seed"] for e in theirs]:
                raise ValueError(f"{row['policy']} and {rule['policy']} met different seeds.")
            pairs = list(zip(ours, theirs, strict=True))
            diff = np.array([a["gmv"] - b["gmv"] for a, b in pairs])
            missed = np.array([[a["roi_violation"], b["roi_violation"]] for a, b in pairs])
            ci = bootstrap_ci(diff)
            scale = 100.0 / rule["gmv_mean"] if rule["gmv_mean"] > 0 else float("nan")
            row["paired"] = {
                "rule": rule["policy"],
                "gmv_diff_mean": float(diff.mean()),
                "gmv_diff_ci95": ci,
                "gmv_diff_pct": float(diff.mean() * scale),
                "gmv_diff_pct_ci95": [c * scale for c in ci],
                "missed_only_policy": int((missed[:, 0] & ~missed[:, 1]).sum()),
                "missed_only_rule": int((missed[:, 1] & ~missed[:, 0]).sum()),
            }


def outcome(verdict: dict[str, Any]) -> str:
    """A policy's result against the best rule in one word (one of ``OUTCOMES``), from the
    paired GMV difference's 95% interval and the ROI-miss rates of the two:

    ``won``: more GMV (the interval above 0) and no more ROI misses; ``lost``: less GMV (the
    interval below 0), or more ROI misses without more GMV; ``trade-off``: more GMV and more
    ROI misses; ``tie``: the interval contains 0 and no more ROI misses.

    Args:
        verdict: a dict with ``paired["gmv_diff_ci95"]``, ``roi_violation_rate`` and
            ``rule_roi_violation_rate`` (an item of :func:`versus_best_rule`).
    """
    lo, hi = verdict["paired"]["gmv_diff_ci95"]
    more_misses = verdict["roi_violation_rate"] > verdict["rule_roi_violation_rate"]
    if hi < 0 or (more_misses and lo <= 0):
        return "lost"
    if lo > 0:
        return "trade-off" if more_misses else "won"
    return "tie"


def versus_best_rule(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each contender with paired differences (:func:`add_paired_differences`) against the best
    rule (:func:`best_rule`), per scenario: the bar a learned policy has to clear.

    Returns one dict per (policy, scenario): ``policy, scenario, rule, criterion`` (how the rule
    was chosen), ``gmv_ratio`` (policy's mean GMV / the rule's), ``roi_violation_rate,
    rule_roi_violation_rate, paired``, ``outcome`` (:func:`outcome`) and ``beats_rule``
    (``outcome == "won"``).
    """
    out = []
    for scenario, group in _scenario_groups(rows).items():
        rule = best_rule(group)
        if rule is None:
            continue
        for row in (r for r in group if is_contender(r) and "paired" in r):
            if row["paired"]["rule"] != rule["policy"]:
                raise ValueError(
                    f"{row['policy']} was paired with {row['paired']['rule']}, but the best rule "
                    f"in {scenario} is {rule['policy']}."
                )
            verdict = {
                "policy": row["policy"],
                "scenario": scenario,
                "rule": rule["policy"],
                "criterion": criterion_text(group),
                "gmv_ratio": row["gmv_mean"] / rule["gmv_mean"],
                "roi_violation_rate": row["roi_violation_rate"],
                "rule_roi_violation_rate": rule["roi_violation_rate"],
                "paired": row["paired"],
            }
            verdict["outcome"] = outcome(verdict)
            verdict["beats_rule"] = verdict["outcome"] == "won"
            out.append(verdict)
    return out
