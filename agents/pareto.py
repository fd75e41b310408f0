"""The GMV-vs-ROI-miss trade-off: a rule planning to a multiple of its target, and its points.

Any rule that reads its target from the observation gets a risk knob from
:func:`~budgetgym.envs.campaigns.plan_to_target`: :class:`PlanToTarget` shows it the campaign
as if the target ROI were ``mult`` times the real one (``mult > 1``: safer, less GMV). The
comparison (:func:`budgetgym.agents.evaluation.compare`) sweeps ``PARETO_MULTS`` on the first
``PARETO_EPISODES`` campaigns of the leaderboard's seeds and records one :func:`pareto_point`
per multiplier; :func:`budgetgym.agents.plots.plot_pareto` draws them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from budgetgym.agents.metrics import ratio_of_totals_pct
from budgetgym.envs.campaigns import BatchedCampaigns, plan_to_target

#: Target multipliers of the sweep: each rule's curve, from bolder (0.9) to safer (1.3).
PARETO_MULTS = (0.9, 1.0, 1.1, 1.2, 1.3)
#: Campaigns of the sweep per scenario (the first of the leaderboard's seeds).
PARETO_EPISODES = 64


class PlanToTarget:
    """``rule`` acting on :func:`~budgetgym.envs.campaigns.plan_to_target`'s view: it plans to
    ``mult`` times each campaign's target ROI (the campaign and its compensation still use the
    real target).

    Args:
        rule: a policy that acts on observations (``predict``), such as every rule baseline.
        mult: target multiplier, a scalar or one per campaign of the batch ``(n,)``.
    """

    acts_in_spend = False

    def __init__(self, rule: Any, mult: float | np.ndarray) -> None:
        if getattr(rule, "acts_in_spend", False):
            raise ValueError(f"{rule.name} plans spend, not actions: it has no observed target.")
        self.rule = rule
        self.mult = np.asarray(mult, dtype=np.float64)
        self.name = f"{rule.name} x target"

    def reset(self, campaigns: BatchedCampaigns) -> None:
        """Start a batch of episodes (the rule's reset)."""
        self.rule.reset(campaigns)

    def predict(
        self,
        obs: np.ndarray,
        state: object = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, object]:
        """The rule's actions ``(n, k + 1)`` for the observations ``(n, obs_dim)`` seen with
        the planned target."""
        planned = plan_to_target(obs, self.mult, self.rule.channels.layout)
        return self.rule.predict(planned, state, episode_start, deterministic)


def pareto_point(
    rows: list[dict[str, Any]], mult: float, references: tuple[str, ...]
) -> dict[str, float]:
    """One point of a policy's curve from its episode rows, which carry ``<ref>_gmv`` for each
    of ``references`` (:func:`~budgetgym.agents.evaluation.attach_references`):
    ``target_mult``, ``episodes``, ``roi_violation_rate``, ``gmv_ratio_to_<ref>_pct`` (ratios
    of totals) and ``gmv_mean`` (CNY)."""
    gmv = np.array([row["gmv"] for row in rows])
    return {
        "target_mult": float(mult),
        "episodes": len(rows),
        "roi_violation_rate": float(np.mean([row["roi_violation"] for row in rows])),
        **{
            f"gmv_ratio_to_{ref}_pct": ratio_of_totals_pct(gmv, [row[f"{ref}_gmv"] for row in rows])
            for ref in references
        },
        "gmv_mean": float(gmv.mean()),
    }
