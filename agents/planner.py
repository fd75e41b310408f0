"""Information-fair references: a closed-loop planner on the expected market, and its
chance-constrained variant.

The hindsight oracle (:mod:`budgetgym.agents.oracle`) knows the realized market of every hour.
The planner knows what a perfectly informed advertiser could know in advance and no more: the
campaign's true parameters (``campaigns.params``: CVRs, CTRs, delays, the pool), the public
calendar and the hour and weekday profiles. It plans on the certainty-equivalent market
(:func:`budgetgym.envs.core.expected_markets`: the same market model with the hourly volume
noise at its mean and the price noise at its median) and never reads the realized noise of any
hour (volume, prices, conversion, order-value and delay draws, the realized pool).

It is model-predictive. Every ``replan_hours`` hours it re-solves the oracle's concave problem
(:func:`~budgetgym.agents.oracle.solve_allocation`) over the rest of the horizon from the
current state, all of it observable: the budget left, the spend and attributed GMV so far, and
the expected GMV still pending (conversions of its past spend not yet attributed, predicted
from that spend under the expected response and delay model):

    maximize   G_future
    subject to C_future <= budget left
               GMV so far + expected pending + G_future - margin >= R * (spend so far + C_future)

``margin`` is 0 for ``planner``. ``planner_cc`` (``alpha`` given) plans to a margin that makes
the realized final ROI meet the target with probability ``1 - alpha``: ``z_{1-alpha}`` times the
predicted standard deviation of the GMV still to be attributed (docs/benchmark.md derives it).
When no plan meets the constraint any more (bad luck early on), the planner buys only the
channel-hours whose marginal ROI reaches the target: the plan that comes closest.

The returning-customer pool follows the expected trajectory of the first plan (the oracle's
fixed point on the expected market), not re-iterated at every replan.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.special import log_ndtr, ndtri

from budgetgym.agents.oracle import (
    AllocationProblem,
    expected_impressions,
    expected_response,
    plan_problem,
    solve_allocation,
    within_budget,
)
from budgetgym.agents.policy import PLANNER, PLANNER_CC
from budgetgym.envs.campaigns import BatchedCampaigns, channel_slice, obs_index
from budgetgym.envs.channels import channel_array
from budgetgym.envs.core import ORDER_VALUE_SIGMA, PRICE_NOISE_SIGMA, expected_markets
from budgetgym.envs.scenarios import ATTRIBUTION_WINDOW_HOURS

_VOLUME_SIGMA = channel_array("volume_noise_sigma")  # (k,) log-sd of the hourly volume noise


class PlannerPolicy:
    """Model-predictive reference on the expected market (``acts_in_spend``, privileged).

    Args:
        replan_hours: hours between two solves (>= 1); in between it follows the last plan.
        alpha: ``None`` for ``planner`` (expected ROI at the target); a risk level in
            ``(0, 0.5)`` for ``planner_cc`` (realized ROI at the target with probability
            ``1 - alpha``).
        pool_iterations: passes of the plan -> expected pool fixed point at reset.

    Raises:
        ValueError: ``replan_hours < 1`` or ``alpha`` outside ``(0, 0.5)``.
    """

    acts_in_spend = True

    def __init__(
        self, replan_hours: int = 1, alpha: float | None = None, pool_iterations: int = 2
    ) -> None:
        if int(replan_hours) != replan_hours or replan_hours < 1:
            raise ValueError(f"replan_hours must be an integer >= 1, got {replan_hours!r}.")
        if alpha is not None and not 0.0 < alpha < 0.5:
            raise ValueError(f"alpha must lie in (0, 0.5), got {alpha!r}.")
        self.replan_hours = int(replan_hours)
        self.alpha = alpha
        self.pool_iterations = pool_iterations
        self.name = PLANNER if alpha is None else PLANNER_CC
        self._z = 0.0 if alpha is None else float(ndtri(1.0 - alpha))
        self._problem: AllocationProblem | None = None

    def reset(self, campaigns: BatchedCampaigns) -> None:
        """Plan the whole horizon on the expected market (reads ``campaigns.params``)."""
        params = campaigns.params
        if params is None:
            raise RuntimeError("Reset the campaigns before the planner: it plans from params.")
        self._params = params
        self._problem, _, theta = plan_problem(
            params, expected_markets(params), self.pool_iterations
        )
        n = params.n_envs
        self._log_theta = np.log(theta)
        self._pending_gmv = np.zeros(n)  # expected purchase GMV made, not yet arrived, CNY
        self._margin = np.zeros(n)
        self._hour = 0
        self._plan = self._problem.volume[:, :0]
        self._plan_start = 0

    def spend(self, obs: np.ndarray) -> np.ndarray:
        """Spend request ``(n, k)`` CNY for the current hour, from the observation ``obs``."""
        if self._problem is None:
            raise RuntimeError("Call reset(campaigns) before spend().")
        obs = np.asarray(obs, dtype=np.float64)
        params, hour = self._params, self._hour
        budget = params.budget_cny
        if hour > 0:
            last_spend = obs[:, channel_slice("spend_rate")] * budget[:, None]
            self._add_pending(last_spend / params.horizon_hours, hour - 1)
        budget_left = obs[:, obs_index("budget_left_frac")] * budget
        if hour - self._plan_start >= self._plan.shape[1] or hour % self.replan_hours == 0:
            gmv_so_far = obs[:, channel_slice("cum_gmv_frac")].sum(axis=1) * budget
            self._replan(hour, budget_left, gmv_so_far * params.target_roi)
        self._hour += 1
        return within_budget(self._plan[:, hour - self._plan_start], budget_left)

    def _add_pending(self, spend_cny: np.ndarray, hour: int) -> None:
        """Add the expected purchase GMV of ``spend_cny (n, k)`` in ``hour`` to what is pending.

        Paid channels: expected purchases of that spend on the expected market. Pay-per-sale
        channels: the commission paid is ``commission * purchase GMV``, so the GMV is known.
        """
        problem, params = self._problem, self._params
        cell = replace(
            problem,
            **{f: getattr(problem, f)[:, hour : hour + 1] for f in _HOURLY_FIELDS},
        )
        purchases = (
            expected_impressions(spend_cny[:, None], cell)[:, 0]
            * (problem.purchases_per_impression[:, hour])
        )
        per_sale = problem.pays_per_sale
        gmv = np.where(
            per_sale,
            spend_cny / np.where(per_sale, problem.commission_frac, 1.0),
            purchases * params.price_cny[:, None],
        ).sum(axis=1)
        h = params.delay_hazard_per_hour
        self._pending_gmv = self._pending_gmv * (1.0 - h) + (1.0 - params.immediate_frac) * gmv

    def _replan(self, hour: int, budget_left: np.ndarray, gmv_so_far: np.ndarray) -> None:
        """Solve hours ``hour..H-1`` from the current state; keep the plan and its price."""
        params = self._params
        rest = replace(
            self._problem,
            budget_cny=budget_left,
            **{f: getattr(self._problem, f)[:, hour:] for f in _HOURLY_FIELDS},
        )
        h = params.delay_hazard_per_hour
        remaining = params.horizon_hours - hour + ATTRIBUTION_WINDOW_HOURS
        pending = self._pending_gmv * (1.0 - (1.0 - h) ** remaining)
        spend_so_far = params.budget_cny - budget_left
        for _ in range(2 if self.alpha is not None and hour == 0 else 1):
            alloc, theta = solve_allocation(
                rest, gmv_so_far + pending - self._margin, spend_so_far, self._log_theta
            )
            self._log_theta = np.log(theta)
            if self.alpha is not None:
                self._margin = self._z * np.sqrt(gmv_variance(alloc, rest, pending))
        self._plan, self._plan_start = alloc, hour


_HOURLY_FIELDS = ("volume", "max_spend_cny", "purchases_per_impression", "attributed_frac")


def gmv_variance(
    alloc_cny: np.ndarray, problem: AllocationProblem, pending_gmv_cny: np.ndarray
) -> np.ndarray:
    """Predicted variance ``(n,)`` CNY^2 of the GMV still to be attributed under a plan.

    Orders: the attributed conversions of the plan and of what is pending are Poisson (thinned
    binomials with small probabilities), each with a lognormal order value of mean ``price``
    and log-sd ``ORDER_VALUE_SIGMA``; a compound Poisson sum of mean ``G`` has variance
    ``E[N] E[X^2] = (G / price) price^2 exp(s^2) = price exp(s^2) G``.

    Market: the hour's volume ``V e^u`` and price ``p e^v`` scale the cost of the whole market
    ``M``; a fixed spend ``a`` wins ``V Phi(x + sigma)`` impressions with ``x = Phi^-1(a / M)``,
    whose elasticity to ``M`` is ``e = -lambda(x + sigma) Phi(x) / phi(x)`` (``lambda = phi/Phi``).
    To first order a cell's GMV varies by ``(1 + e) u + e v``: variance
    ``G^2 ((1 + e)^2 s_V^2 + e^2 s_p^2)``, independent across channel-hours.
    """
    gmv, _ = expected_response(alloc_cny, problem)
    orders = (
        problem.price_cny * np.exp(ORDER_VALUE_SIGMA**2) * (gmv.sum(axis=(1, 2)) + pending_gmv_cny)
    )
    z = np.clip(alloc_cny / np.maximum(problem.max_spend_cny, 1e-12), 1e-12, 0.95)
    x = ndtri(z)
    elasticity = -_mills(x + problem.sigma) * z / np.exp(-0.5 * x**2) * np.sqrt(2 * np.pi)
    market = gmv**2 * (
        (1 + elasticity) ** 2 * _VOLUME_SIGMA**2 + elasticity**2 * PRICE_NOISE_SIGMA**2
    )
    return orders + market.sum(axis=(1, 2))


def _mills(x: np.ndarray) -> np.ndarray:
    """``phi(x) / Phi(x)``, the inverse Mills ratio of the lower tail."""
    return np.exp(-0.5 * x**2 - log_ndtr(x)) / np.sqrt(2.0 * np.pi)
