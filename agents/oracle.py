"""Hindsight oracle: the best expected-GMV policy knowing the ground truth, market included.

The oracle reads what no policy can see — the campaign's true parameters and the realized
market of every channel-hour (``budgetgym.envs.core.hourly_markets``; the market does not
depend on actions, so it is exactly what every policy meets on the same seed) — and solves the
allocation problem of :mod:`budgetgym.agents.allocation` on it, re-planning every hour from
the observed state (:class:`OraclePolicy`). :func:`plan_campaigns` is its plan at hour 0.
"""

from __future__ import annotations

import numpy as np

from budgetgym.agents.intertemporal import plan_market
from budgetgym.agents.planner import PlannerPolicy
from budgetgym.envs.campaigns import BatchedCampaigns
from budgetgym.envs.mechanisms import check_modelled, unmodelled_reason
from budgetgym.envs.scenarios import CampaignParams


def plan_campaigns(params: CampaignParams, pool_iterations: int = 2) -> dict[str, np.ndarray]:
    """The oracle's plan at hour 0 for a batch of campaigns, on their realized markets (the
    plan of :func:`~budgetgym.agents.intertemporal.plan_market`). Raises ``ValueError`` if
    they switch on a mechanism the plan does not model."""
    check_modelled("oracle", params, ", ".join(params.members), OraclePolicy.models)
    return plan_market(params, True, pool_iterations).plan


class OraclePolicy:
    """The hindsight oracle as a policy (``acts_in_spend``): model-predictive on the realized
    market.

    Planning once and replaying the plan (open loop) is not an upper bound on what a policy can
    reach: the closed-loop ``planner`` adapts to the conversions it sees and, where few large
    orders decide the ROI (``high_price_long_cycle``), beats an open-loop plan on the true
    market. The oracle therefore runs the planner's machinery
    (:class:`~budgetgym.agents.planner.PlannerPolicy`) with the realized market of every
    channel-hour: ``reset`` reads ``campaigns.params`` (ground truth) and plans, ``spend``
    re-plans every ``replan_hours`` from the observed state and returns the hour's spend
    ``(n, k)`` CNY, within the budget left. ``plan`` holds the plan at hour 0.
    """

    name = "oracle"
    acts_in_spend = True
    models = PlannerPolicy.models

    def __init__(self, replan_hours: int = 1, pool_iterations: int = 2) -> None:
        self.replan_hours = replan_hours
        self.pool_iterations = pool_iterations
        self.plan: dict[str, np.ndarray] | None = None
        self._mpc: PlannerPolicy | None = None

    def unavailable_on(self, scenario: str) -> str | None:
        """Why the oracle cannot run on ``scenario`` (a mechanism it does not model), or None."""
        return unmodelled_reason(scenario, self.models)

    def reset(self, campaigns: BatchedCampaigns) -> None:
        self._mpc = PlannerPolicy(self.replan_hours, None, self.pool_iterations, hindsight=True)
        self._mpc.reset(campaigns)
        self.plan = self._mpc.initial_plan

    def spend(self, obs: np.ndarray) -> np.ndarray:
        """Spend request ``(n, k)`` CNY for the current hour (obs supplies the observed state)."""
        if self._mpc is None:
            raise RuntimeError("Call reset(campaigns) before spend().")
        return self._mpc.spend(obs)

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        raise TypeError("The oracle plans spend: step campaigns.step_spend(oracle.spend(obs)).")
