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
(:func:`~budgetgym.agents.allocation.solve_allocation`) over the rest of the horizon from the
current state, all of it observable: the budget left, the spend and attributed GMV so far, and
the expected GMV still pending (conversions of its past spend not yet attributed, predicted
from that spend under the expected response and delay model):

    maximize   G_future
    subject to C_future <= budget left
               GMV so far + expected pending + G_future - margin >= R * (spend so far + C_future)

``margin`` is 0 for ``planner``. ``planner_cc`` plans to a margin of ``kappa`` times the
predicted standard deviation of the GMV still to be attributed, re-imposed at every replan, with
one ``kappa`` per scenario calibrated on training campaigns so that a share ``alpha`` of the
campaigns ends below its target (:mod:`budgetgym.agents.cc_calibration`; docs/benchmark.md
derives it).
When no plan meets the constraint any more (bad luck early on), the planner buys only the
channel-hours whose marginal ROI reaches the target: the plan that comes closest.

It models every mechanism of the deeper market (docs/benchmark.md). Per-channel delays, the
attribution window and pre-sale deposits set the share of each channel-hour's GMV attributed
in time (:func:`~budgetgym.agents.allocation.attributed_fracs`); the hidden CVR drift enters at
its expectation (the oracle: its realized path;
:func:`~budgetgym.agents.intertemporal.drift_factor`).
Without a mechanism with a state, the returning-customer pool follows the expected trajectory
of the first plan (the oracle's fixed point on the expected market). With one (interest,
pre-sale deposits, creative fatigue, per-channel delays), the plan is the sequential
linearisation on the expected twin (:mod:`budgetgym.agents.intertemporal`), pool included;
every ``relinearise_hours`` it is linearised again from the twin's state at that hour, rolled
over the impressions and clicks observed so far (fatigue is a function of the impressions,
interest of the clicks and the expected purchases among them: fair to compute), the hidden
drift at its expectation. In between, the replans solve the linearised problem, its GMV
corrected by the twin's (``LinearPlan.correction_cny``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.special import log_ndtr

from budgetgym.agents.allocation import (
    THETA_BOUNDS,
    X_CAP,
    AllocationProblem,
    ResponseCells,
    channel_delays,
    commission_rate,
    deposits_attributed,
    expected_impressions,
    meets_constraints,
    presale_warmup,
    smallest_log_theta,
    solve_allocation,
    within_budget,
)
from budgetgym.agents.cc_calibration import CCCalibration, load_calibration
from budgetgym.agents.channel_set import (
    ChannelSet,
    channel_feature,
    channels_of,
    feature,
    unscale,
)
from budgetgym.agents.intertemporal import (
    LinearPlan,
    plan_linearised,
    plan_market,
    problem_hours,
)
from budgetgym.envs.campaigns import BatchedCampaigns
from budgetgym.envs.core import (
    ORDER_VALUE_SIGMA,
    PRICE_NOISE_SIGMA,
)
from budgetgym.envs.mechanisms import MECHANISM_NAMES, check_modelled, unmodelled_reason

#: Offsets in log(theta) of the tabulated prices around a campaign's centre (step 0.1).
_GRID = np.linspace(-1.0, 1.0, 21)
_STEP = float(_GRID[1] - _GRID[0])
_LOG_THETA_LIMITS = np.log(THETA_BOUNDS)  # the solver's bracket


class PlannerPolicy:
    """Model-predictive reference on the expected market (``acts_in_spend``, privileged).

    Args:
        replan_hours: hours between two solves (>= 1); in between it follows the last plan.
        alpha: ``None`` for ``planner`` (expected ROI at the target); for ``planner_cc``, the
            share of campaigns allowed to end below their target, in ``(0, 0.5)``: ``reset``
            reads the scenario's ``kappa`` for it from ``calibration``.
        pool_iterations: passes of the plan -> expected pool fixed point at reset.
        hindsight: plan on the realized market instead (``hourly_markets``): the closed-loop
            hindsight oracle (:class:`~budgetgym.agents.oracle.OraclePolicy`).
        kappa: ``planner_cc`` at a given margin instead of ``alpha``: a scalar or one value per
            campaign ``(n,)``, in standard deviations of the GMV still to be attributed
            (negative: plan below the target). Exclusive with ``alpha``.
        calibration: the miss-rate curves that map ``alpha`` to ``kappa`` (default: the shipped
            file, read at the first ``reset``).
        relinearise_hours: hours between two linearisations on the expected twin, where the
            campaigns switch on a mechanism with a state (>= 1).
        stateful: plan on the expected twin where they do; False: on the static problem, the
            ablation that ignores the states (interest, fatigue, deposits' interest).

    Attributes (after ``reset``):
        initial_plan: the plan at hour 0, as
            :func:`~budgetgym.agents.allocation.plan_problem` returns it.
        roi_bound: ``(n,)`` bool, whether the ROI constraint (not the budget or the market)
            set the last plan's price.

    Raises:
        ValueError: ``replan_hours`` not an integer >= 1, ``alpha`` outside ``(0, 0.5)``, or
            both ``alpha`` and ``kappa``.
    """

    acts_in_spend = True
    #: The mechanisms of the market it models (``envs.mechanisms``): every one.
    models = MECHANISM_NAMES

    def __init__(
        self,
        replan_hours: int = 1,
        alpha: float | None = None,
        pool_iterations: int = 2,
        hindsight: bool = False,
        *,
        kappa: float | np.ndarray | None = None,
        calibration: CCCalibration | None = None,
        relinearise_hours: int = 24,
        stateful: bool = True,
    ) -> None:
        for name, hours in (
            ("replan_hours", replan_hours),
            ("relinearise_hours", relinearise_hours),
        ):
            if isinstance(hours, bool) or int(hours) != hours or hours < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {hours!r}.")
        self.relinearise_hours = int(relinearise_hours)
        self.stateful = stateful
        if alpha is not None and not 0.0 < alpha < 0.5:
            raise ValueError(f"alpha must lie in (0, 0.5), got {alpha!r}.")
        if alpha is not None and kappa is not None:
            raise ValueError(f"Give alpha or kappa, not both (got {alpha!r} and {kappa!r}).")
        self.replan_hours = int(replan_hours)
        self.alpha = alpha
        self.kappa = None if kappa is None else np.asarray(kappa, dtype=np.float64)
        self.calibration = calibration
        self.pool_iterations = pool_iterations
        self.hindsight = hindsight
        self._hedged = alpha is not None or kappa is not None
        # The names of agents.policy's PRIVILEGED (it loads this module: no import back).
        self.name = "oracle" if hindsight else ("planner_cc" if self._hedged else "planner")
        self._problem: AllocationProblem | None = None

    def unavailable_on(self, scenario: str) -> str | None:
        """Why the planner cannot run on ``scenario``: a mechanism of the market it does not
        model switched on (:func:`~budgetgym.envs.mechanisms.unmodelled_mechanisms`), or
        ``planner_cc`` (an ``alpha``) without a calibration of its margin there; None if it
        can."""
        reason = unmodelled_reason(scenario, self.models)
        if reason is not None or self.alpha is None:
            return reason
        if self.calibration is None:
            self.calibration = load_calibration()
        try:
            self.calibration.kappa(scenario, self.alpha)
        except ValueError as err:
            return str(err).rstrip(".")
        return None

    def reset(self, campaigns: BatchedCampaigns) -> None:
        """Plan the whole horizon (reads ``campaigns.params``)."""
        params = campaigns.params
        if params is None:
            raise RuntimeError(f"Reset the campaigns before the {self.name}: it reads params.")
        check_modelled(self.name, params, campaigns.scenario, self.models)
        self._params = params
        self._channels: ChannelSet = channels_of(campaigns)
        if self.alpha is not None:
            if self.calibration is None:
                self.calibration = load_calibration()
            self._kappa = np.asarray(self.calibration.kappa(campaigns.scenario, self.alpha))
        elif self.kappa is not None:
            if self.kappa.ndim and self.kappa.shape != (params.n_envs,):
                raise ValueError(
                    f"kappa must be a scalar or one value per campaign ({params.n_envs},), "
                    f"got shape {self.kappa.shape}."
                )
            self._kappa = self.kappa
        market = plan_market(params, self.hindsight, self.pool_iterations, self.stateful)
        self._problem, self.initial_plan, self._twin = market.problem, market.plan, market.twin
        n, horizon = params.n_envs, params.horizon_hours
        # Suffix sums of the twin's GMV less the linearised problem's (0 without a twin).
        self._correction = np.zeros((n, horizon + 1))
        # Impressions and clicks observed in each past hour, (2, n, H, k).
        self._observed = np.zeros((2, n, horizon, params.n_channels))
        if market.linear is not None:
            self._adopt(market.linear, 0)
        self.roi_bound = np.zeros(n, dtype=bool)
        self._log_theta = np.log(self.initial_plan["theta"])
        self._table = _TotalsTable(ResponseCells(self._problem), self._hedged)
        self._table.build(np.arange(n), self._log_theta)
        self._delays = channel_delays(params)
        self._warmup = presale_warmup(params)
        self._deposits_count = deposits_attributed(params)
        self._pending_gmv = np.zeros((n, params.n_channels))  # expected GMV not yet arrived, CNY
        self._deposit_gmv = np.zeros(n)  # expected GMV in pre-sale deposits, CNY
        self._margin = np.zeros(params.n_envs)
        self._hour = 0
        self._plan = self._problem.volume[:, :0]
        self._plan_start = 0

    def spend(self, obs: np.ndarray) -> np.ndarray:
        """Spend request ``(n, k)`` CNY for the current hour, from the observation ``obs``."""
        if self._problem is None:
            raise RuntimeError("Call reset(campaigns) before spend().")
        obs = np.asarray(obs, dtype=np.float64)
        params, hour, channels = self._params, self._hour, self._channels
        channels.check_obs(obs)
        budget = params.budget_cny
        if hour > 0:
            last_spend = channel_feature(obs, "spend_rate", channels) * budget[:, None]
            for i, name in enumerate(("log_impressions", "log_clicks")):
                value = unscale(channel_feature(obs, name, channels), name, channels)
                self._observed[i, :, hour - 1] = np.expm1(value)
            self._add_pending(last_spend / params.horizon_hours, hour - 1)
        budget_left = feature(obs, "budget_left_frac", channels) * budget
        relinearise = self._twin is not None and hour > 0 and hour % self.relinearise_hours == 0
        plan_ended = hour - self._plan_start >= self._plan.shape[1]
        if relinearise or plan_ended or hour % self.replan_hours == 0:
            gmv_frac = channel_feature(obs, "cum_gmv_frac", channels).sum(axis=1)
            gmv_so_far = gmv_frac * budget * params.target_roi
            if relinearise:
                self._relinearise(hour, budget_left, gmv_so_far)
            self._replan(hour, budget_left, gmv_so_far)
        self._hour += 1
        plan = self._plan[:, hour - self._plan_start]
        return within_budget(plan, budget_left, self._problem.pays_per_sale)

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        raise TypeError(
            f"The {self.name} plans spend: step campaigns.step_spend(policy.spend(obs))."
        )

    def _add_pending(self, spend_cny: np.ndarray, hour: int) -> None:
        """Add the expected purchase GMV of ``spend_cny (n, k)`` in ``hour`` to what is pending.

        Paid channels: expected purchases of that spend on the expected market. Pay-per-sale
        channels: the commission paid is ``rate * purchase GMV``, so the GMV is known (a ``bid``
        channel's rate: the one its spend, the commission budget it met, sets).
        """
        problem, params = self._problem, self._params
        cell = problem_hours(problem, hour, hour + 1)
        impressions = expected_impressions(spend_cny[:, None], cell)[:, 0]
        purchases = impressions * problem.purchases_per_impression[:, hour]
        per_sale = problem.pays_per_sale
        gmv = np.where(
            per_sale,
            spend_cny / np.where(per_sale, commission_rate(spend_cny[:, None], cell)[:, 0], 1.0),
            purchases * params.price_cny[:, None],
        )
        immediate, hazard = self._delays
        warmup = self._warmup[:, hour, None]  # a pre-sale's deposits wait for the event
        waiting = np.where(warmup, 0.0, (1.0 - immediate) * gmv)
        self._pending_gmv = self._pending_gmv * (1.0 - hazard) + waiting
        self._deposit_gmv = self._deposit_gmv + np.where(warmup, gmv, 0.0).sum(axis=1)

    def _solve(
        self,
        hour: int,
        budget_left: np.ndarray,
        gmv_offset: np.ndarray,
        spend_offset: np.ndarray,
    ) -> np.ndarray:
        """``log(theta) (n,)`` of the plan for hours ``hour..H-1`` (see ``solve_allocation``),
        warm-started from the last one, on the tabulated totals."""
        params, table = self._params, self._table

        def feasible(log_theta: np.ndarray) -> np.ndarray:
            gmv, spend = table.totals(log_theta, hour)
            return meets_constraints(
                gmv, spend, log_theta, budget_left, params.target_roi, gmv_offset, spend_offset
            )

        low, high = table.window()
        log_theta = smallest_log_theta(feasible, low, high, np.clip(self._log_theta, low, high))
        # An answer at the edge of a campaign's table may lie outside it: solve those campaigns
        # exactly and tabulate around their answer.
        below = (log_theta <= low) & (low > _LOG_THETA_LIMITS[0])
        above = (log_theta >= high) & (high < _LOG_THETA_LIMITS[1])
        if above.any():
            above &= ~feasible(high)
        rows = np.flatnonzero(below | above)
        if rows.size:
            rest = _campaigns_hours(self._problem, rows, hour, budget_left[rows])
            _, theta = solve_allocation(rest, gmv_offset[rows], spend_offset[rows])
            log_theta[rows] = np.log(theta)
            table.build(rows, log_theta[rows])
        return log_theta

    def _pending(self, hour: int) -> np.ndarray:
        """Expected GMV ``(n,)`` CNY of past purchases still to be attributed: those in the
        delay pool that arrive within the window, and pre-sale deposits not yet paid."""
        params = self._params
        remaining = params.horizon_hours - hour + params.attribution_window_hours
        _, hazard = self._delays
        arriving = 1.0 - (1.0 - hazard) ** remaining[:, None]
        pending = (self._pending_gmv * arriving).sum(axis=1)
        unpaid = self._deposits_count & (hour <= params.presale_start_hour)
        return pending + np.where(unpaid, self._deposit_gmv, 0.0)

    def _adopt(self, linear: LinearPlan, start: int) -> None:
        """Take the linearised problem of hours ``start..H-1`` and its GMV correction."""
        full = self._problem
        fields = {}
        for name in ("purchases_per_impression", "future_gmv_per_impression"):
            values = np.broadcast_to(getattr(full, name), full.volume.shape).copy()
            values[:, start:] = getattr(linear.problem, name)
            fields[name] = values
        self._problem = replace(full, **fields)
        suffix = np.cumsum(linear.correction_cny[:, ::-1], axis=1)[:, ::-1]
        self._correction[:, start:-1] = suffix

    def _relinearise(self, hour: int, budget_left: np.ndarray, gmv_so_far: np.ndarray) -> None:
        """Linearise hours ``hour..H-1`` again from the twin's state at ``hour``, rolled over
        the impressions and clicks observed so far, around the current plan."""
        params, twin = self._params, self._twin
        state = twin.observed_state(*(x[:, :hour] for x in self._observed))
        rest = replace(problem_hours(self._problem, hour), budget_cny=budget_left)
        linear = plan_linearised(
            twin,
            rest,
            self._table.cells.allocation(self._log_theta, hour),
            hour,
            state,
            gmv_so_far + self._pending(hour) - self._margin,
            params.budget_cny - budget_left,
            self._log_theta,
        )
        self._adopt(linear, hour)
        self._log_theta = np.log(linear.theta)
        self._table = _TotalsTable(ResponseCells(self._problem), self._hedged)
        self._table.build(np.arange(params.n_envs), self._log_theta)

    def _replan(self, hour: int, budget_left: np.ndarray, gmv_so_far: np.ndarray) -> None:
        """Solve hours ``hour..H-1`` from the current state; keep the plan and its price."""
        params, table = self._params, self._table
        pending = self._pending(hour)  # expected to be attributed
        spend_so_far = params.budget_cny - budget_left
        gmv_offset = gmv_so_far + pending + self._correction[:, hour]
        for _ in range(2 if self._hedged and hour == 0 else 1):
            self._log_theta = self._solve(
                hour, budget_left, gmv_offset - self._margin, spend_so_far
            )
            _, spend = table.totals(self._log_theta, hour)
            self.roi_bound = (spend < budget_left * (1.0 - 1e-3)) & (
                self._log_theta > _LOG_THETA_LIMITS[0]
            )
            if self._hedged:
                variance = table.gmv_variance(self._log_theta, hour, pending, params.price_cny)
                self._margin = self._kappa * np.sqrt(variance)
        self._plan = table.cells.allocation(self._log_theta, hour, hour + self.replan_hours)
        self._plan_start = hour


def _campaigns_hours(
    problem: AllocationProblem, rows: np.ndarray, start: int, budget_cny: np.ndarray
) -> AllocationProblem:
    """The problem of campaigns ``rows`` over hours ``start..H-1`` with ``budget_cny (n,)``."""
    return replace(problem_hours(problem, start, rows=rows), budget_cny=budget_cny)


class _TotalsTable:
    """Expected totals over hours ``t..H-1`` of every campaign's paid channel-hours, tabulated
    for every start hour ``t`` on a grid of ``log(theta)`` around the campaign's price.

    A replan needs the totals of the rest of the horizon at some thirty prices (the bisection);
    summed over the hours once per grid price, they cost ``O(1)`` per campaign and price
    instead of ``O(H k)``. Between grid prices, spend and GMV are cubic Hermite interpolants
    (exact values and slopes at the nodes: the spend's slope from
    :meth:`~budgetgym.agents.allocation.ResponseCells.paid_totals`, the GMV's ``theta`` times it).
    Pay-per-sale channel-hours (steps in ``theta``) are summed exactly.
    """

    def __init__(self, cells: ResponseCells, with_variance: bool) -> None:
        self.cells = cells
        n, horizon = cells.gv.shape[:2]
        shape = (n, horizon + 1, _GRID.size)  # suffix sums; row H is the empty sum
        self.center = np.zeros(n)
        self.gmv, self.spend, self.slope = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        self.market_var = np.zeros(shape) if with_variance else None

    def build(self, rows: np.ndarray, center: np.ndarray) -> None:
        """Tabulate campaigns ``rows`` around ``log(theta) = center`` (``rows.shape``)."""
        cells = self.cells.take(rows)
        self.center[rows] = center
        for j, offset in enumerate(_GRID):
            log_theta = center + offset
            gmv, spend, slope = cells.paid_totals(log_theta)
            columns = [(self.gmv, gmv), (self.spend, spend), (self.slope, slope)]
            if self.market_var is not None:
                columns.append((self.market_var, market_variance(cells, log_theta)))
            for table, per_hour in columns:
                table[rows, :-1, j] = np.cumsum(per_hour[:, ::-1], axis=1)[:, ::-1]

    def window(self) -> tuple[np.ndarray, np.ndarray]:
        """The tabulated range of ``log(theta)``, ``(n,)`` each, within the solver's bracket."""
        low = np.maximum(self.center + _GRID[0], _LOG_THETA_LIMITS[0])
        return low, np.minimum(self.center + _GRID[-1], _LOG_THETA_LIMITS[1])

    def _node(self, log_theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid interval ``j (n,)`` and position ``s`` in ``[0, 1]`` of ``log_theta (n,)``."""
        u = np.clip((log_theta - self.center - _GRID[0]) / _STEP, 0.0, _GRID.size - 1)
        j = np.minimum(np.floor(u).astype(np.int64), _GRID.size - 2)
        return j, u - j

    def totals(self, log_theta: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
        """Expected GMV and spend ``(n,)`` CNY of hours ``start..H-1`` at ``log_theta (n,)``."""
        j, s = self._node(log_theta)
        idx = np.arange(self.center.size)
        s2, s3 = s * s, s * s * s
        h00, h10, h01, h11 = 2 * s3 - 3 * s2 + 1, s3 - 2 * s2 + s, 3 * s2 - 2 * s3, s3 - s2
        node_theta = np.exp(self.center[:, None] + _GRID[np.stack([j, j + 1], axis=1)])
        d0 = self.slope[idx, start, j] * _STEP
        d1 = self.slope[idx, start, j + 1] * _STEP

        def hermite(values: np.ndarray, scale0, scale1) -> np.ndarray:
            return (
                h00 * values[idx, start, j]
                + h10 * scale0 * d0
                + h01 * values[idx, start, j + 1]
                + h11 * scale1 * d1
            )

        spend = hermite(self.spend, 1.0, 1.0)
        gmv = hermite(self.gmv, node_theta[:, 0], node_theta[:, 1])
        sale_gmv, sale_spend = self.cells.sale_totals(log_theta, start)
        return gmv + sale_gmv, spend + sale_spend

    def gmv_variance(
        self,
        log_theta: np.ndarray,
        start: int,
        pending_gmv_cny: np.ndarray,
        price_cny: np.ndarray,
    ) -> np.ndarray:
        """Predicted variance ``(n,)`` CNY^2 of the GMV still to be attributed (docs/benchmark.md):
        compound Poisson orders of the plan from ``start`` and of what is pending, plus the
        market noise of the plan's channel-hours."""
        gmv, _ = self.totals(log_theta, start)
        orders = price_cny * np.exp(ORDER_VALUE_SIGMA**2) * (gmv + pending_gmv_cny)
        j, s = self._node(log_theta)
        idx = np.arange(self.center.size)
        market = (1 - s) * self.market_var[idx, start, j] + s * self.market_var[idx, start, j + 1]
        return orders + market


def market_variance(cells: ResponseCells, log_theta: np.ndarray) -> np.ndarray:
    """Variance ``(n, H)`` CNY^2 of each hour's paid GMV at ``log_theta (n,)`` from the market's
    hourly volume and price noise (the planner plans on their mean and median).

    The hour's volume ``V e^u`` and price ``p e^v`` scale the cost of the whole market ``M``; a
    fixed spend ``a`` wins ``V Phi(x + sigma)`` impressions, ``x = Phi^-1(a / M)``, whose
    elasticity to ``M`` is ``e = -lambda(x + sigma) Phi(x) / phi(x)`` with
    ``lambda = phi / Phi``. To first order a channel-hour's GMV ``G`` varies by
    ``G ((1 + e) u + e v)``: variance ``G^2 ((1 + e)^2 s_V^2 + e^2 s_p^2)``, independent across
    channel-hours.
    """
    x = cells.paid_x(log_theta)
    gmv = cells.paid_gmv(x)
    # At the cap the spend is a share of M: the impressions scale with V alone (e = 0).
    elasticity = np.where(
        x < X_CAP,
        -np.exp(
            log_ndtr(x) - log_ndtr(x + cells.sigma) - 0.5 * (x + cells.sigma) ** 2 + 0.5 * x**2
        ),
        0.0,
    )
    volume_sigma = cells.volume_sigma
    cell_var = gmv**2 * (
        (1.0 + elasticity) ** 2 * volume_sigma**2 + elasticity**2 * PRICE_NOISE_SIGMA**2
    )
    return cell_var.sum(axis=2)
