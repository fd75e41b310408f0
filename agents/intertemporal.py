"""The references' model of the deeper market's state: hidden CVR drift, and the expected twin
of the intertemporal mechanisms with the sequential linearisation that plans on it.

Drift (docs/simulator.md): the planner plans on ``E[exp(d_t)]`` of the AR(1) from ``d = 0``
(:func:`drift_factor`), the hindsight oracle on the realized path, drawn from the kernel's own
stream.

Interest, pre-sale deposits, creative fatigue and the returning pool make a channel-hour's
value depend on every earlier hour. :class:`ExpectedTwin` rolls their expected states forward
over a plan (numpy, vectorized over campaigns and channels, one step per hour);
:func:`plan_linearised` solves the planning problem by sequential linearisation around a plan
(docs/benchmark.md derives it):

1. roll the twin over the plan's expected impressions: every hour's states give each
   channel-hour its purchases per impression (CTR x fatigue, CVR x interest and pool);
2. one backward pass (the roll's adjoint, :meth:`ExpectedTwin.gmv_gradient`) gives
   ``dG / d imp``, the total attributed GMV an impression adds, now and through the states
   later; less its own GMV, the shadow value;
3. fold both into the concave cells (``AllocationProblem.future_gmv_per_impression``) and
   solve with the one-price solver, the budget and ROI constraints as always, the ROI's GMV
   linearised (the twin's GMV at the plan plus the slope times the change);
4. evaluate the answer on the twin, move the plan a damped step towards it, and repeat; keep,
   per campaign, the answer with the most twin GMV among those within the budget that meet the
   ROI target on the twin (else the one closest to it).

A later mechanism with a state joins the twin as one more state in :meth:`ExpectedTwin.roll`
and its adjoint (:meth:`ExpectedTwin._backward`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from budgetgym.agents.allocation import (
    AllocationProblem,
    channel_delays,
    expected_impressions,
    meets_constraints,
    plan_problem,
    presale_warmup,
    solve_allocation,
)
from budgetgym.envs import random as crn
from budgetgym.envs.channels import channel_array
from budgetgym.envs.core import (
    CVR_CAP,
    DYNAMICS_DOMAIN,
    MAX_WIN_FRAC,
    expected_markets,
    hourly_markets,
    learning_multiplier,
    pool_saturation,
    purchase_probabilities,
)
from budgetgym.envs.mechanisms import switched_on
from budgetgym.envs.reference import CVR_DRIFT, N_STREAMS, ndtri
from budgetgym.envs.scenarios import CampaignParams

#: Mechanisms with a state carried from hour to hour that the twin models (the static problem
#: models the rest exactly); per-channel delays join them since they time the pool's arrivals.
STATEFUL = (
    "interested customers",
    "a pre-sale event",
    "creative fatigue",
    "per-channel conversion delays",
    "the platform's learning of a new product",
)
#: Sequential linearisation: linearised solves, and the step towards each answer.
ITERATIONS = 4
DAMPING = 0.5


def drift_factor(params: CampaignParams, realized: bool) -> np.ndarray:
    """``(n, H)`` factor of the hidden CVR drift on every CVR.

    ``d_t = rho d_(t-1) + sigma eps_t`` from ``d_(-1) = 0``. Realized (the hindsight oracle):
    ``exp(d_t)`` from the kernel's draws. Expected (the planner):
    ``E[exp(d_t)] = exp(sigma^2 (1 - rho^(2 (t + 1))) / (2 (1 - rho^2)))`` (a geometric sum
    for ``rho = 1``). 1 exactly where ``sigma`` is 0.
    """
    n, horizon = params.n_envs, params.horizon_hours
    sigma, rho = params.cvr_drift_sigma[:, None], params.cvr_drift_persistence[:, None]
    if not realized:
        steps = np.arange(1, horizon + 1)[None, :]
        rho2 = rho * rho
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(rho2 < 1.0, (1.0 - rho2**steps) / (1.0 - rho2), steps)
        return np.where(sigma > 0.0, np.exp(0.5 * sigma**2 * terms), 1.0)
    keys = crn.campaign_keys(params.seeds, DYNAMICS_DOMAIN)
    log_drift, out = np.zeros(n), np.ones((n, horizon))
    for t in range(horizon):
        u = crn.uniforms(keys, crn.counters(t, N_STREAMS, params.n_channels))[:, CVR_DRIFT, 0]
        log_drift = rho[:, 0] * log_drift + sigma[:, 0] * ndtri(u)
        out[:, t] = np.exp(log_drift)
    return np.where(sigma > 0.0, out, 1.0)


def with_drift(params: CampaignParams, markets: dict, realized: bool) -> dict[str, np.ndarray]:
    """``markets`` (as ``hourly_markets`` returns) with the drift's factor on ``cvr_mult``."""
    factor = drift_factor(params, realized)
    if np.all(factor == 1.0):
        return markets
    return {**markets, "cvr_mult": markets["cvr_mult"] * factor[:, :, None]}


def models_state(params: CampaignParams) -> bool:
    """Whether the campaigns switch on a mechanism the twin models (:data:`STATEFUL`)."""
    return any(name in STATEFUL for name in switched_on(params))


class TwinState(NamedTuple):
    """Expected state at the start of an hour: ``interest (n,)``, ``fatigue (n, k)``,
    ``pool (n,)`` returning customers, ``pending_new (n, k)`` new customers whose purchase has
    not arrived, ``deposit_new (n,)`` those in pre-sale deposits, ``clicks (n,)`` the
    campaign's clicks so far (the platform's learning)."""

    interest: np.ndarray
    fatigue: np.ndarray
    pool: np.ndarray
    pending_new: np.ndarray
    deposit_new: np.ndarray
    clicks: np.ndarray


class TwinRoll(NamedTuple):
    """A roll of the twin over hours ``start..H-1`` (``(n, H - start, k)`` unless said):
    attributed ``gmv`` and commission ``sale_cost`` CNY, own purchases per impression ``ppi``
    (the states' multipliers folded in), and the state after the last hour."""

    gmv: np.ndarray
    sale_cost: np.ndarray
    ppi: np.ndarray
    state: TwinState


class _Hour(NamedTuple):
    """What the adjoint needs of one hour of the forward roll: the state at its start, its
    impressions and clicks ``(n, k)``, the purchase probabilities before the learning factor
    ``p_buy``, ``p_returning``, ``p_interested`` ``(n, k)``, and that factor ``(n,)``."""

    state: TwinState
    imp: np.ndarray
    clicks: np.ndarray
    p_buy: np.ndarray
    p_returning: np.ndarray
    p_interested: np.ndarray
    learned: np.ndarray


class ExpectedTwin:
    """The campaigns' expected market with its states (docs/simulator.md §3-4), on the markets
    ``markets`` (expected or realized, drift folded in) and the static problem ``problem``
    (attributed shares per channel-hour, prices, commission).

    Every count is its expectation given the expected states (a certainty-equivalent roll):
    impressions ``imp``, clicks ``imp * ctr / (1 + f_k F_k)``, purchases ``clicks * p_buy``
    (``purchase_probabilities`` at the pool's and interest's saturation); then
    ``I' = r_t max(I - sum_k clicks p_int, 0) + sum_k c_k (clicks - purchases)`` (``r_t = 1``
    in a warm-up), ``F' = (1 - rec_k) F + imp / V_k``, new customers join the pool when their
    purchase arrives (the channel's delays; deposits when the pre-sale opens).

    :meth:`gmv_gradient` differentiates the roll's total attributed GMV with respect to the
    impressions by its adjoint (reverse mode): one backward sweep over the hours that carries
    ``dG / d(state after hour t)`` to ``dG / d(state at its start)`` and reads off
    ``dG / d imp_t`` on the way (:meth:`_backward`).
    """

    def __init__(self, params: CampaignParams, markets: dict, problem: AllocationProblem) -> None:
        ch = params.channels
        self.horizon = params.horizon_hours
        self.ctr = params.ctr
        self.cvr = [params.cvr_new, params.cvr_returning, params.cvr_interested]
        self.cvr_mult = markets["cvr_mult"]
        # The capped CVRs ``(n, H, k)`` (new, returning, interested), as purchase_probabilities
        # caps them: the adjoint's constants.
        self.capped = [np.minimum(cvr[:, None, :] * self.cvr_mult, CVR_CAP) for cvr in self.cvr]
        self.affinity = channel_array("returning_affinity", ch)
        self.interest_affinity = channel_array("interest_affinity", ch)
        self.interest_per_click = channel_array("interest_per_click", ch)
        self.fatigue_strength = channel_array("fatigue_strength", ch)
        self.fatigued = self.fatigue_strength > 0.0
        self.recovery = channel_array("fatigue_recovery", ch)
        self.commission = problem.commission_frac
        self.volume_per_hour = params.volume_per_hour
        self.pool_half = params.pool_half_saturation
        self.interest_half = params.interest_half_saturation
        self.price = params.price_cny[:, None]
        frac = problem.attributed_frac
        self.attributed = np.asarray(frac if frac.ndim == 3 else frac[:, :, None], dtype=float)
        self.immediate, self.hazard = channel_delays(params)
        self.warmup = presale_warmup(params)
        self.retention = params.interest_retention
        self.opens = params.presale_start_hour
        n, k = params.n_envs, params.n_channels
        self.initial = TwinState(
            np.zeros(n), np.zeros((n, k)), np.asarray(params.returning_pool_init, dtype=float),
            np.zeros((n, k)), np.zeros(n), np.zeros(n),
        )  # fmt: skip
        # The platform's learning (core.learning_multiplier) and the bid channels' commission
        # rate at the impressions their budget brings (core.commission_bid, inverted).
        self.learning_gap = params.learning_gap
        self.learning_clicks = params.learning_clicks
        self.bids = problem.bids
        self.reach = MAX_WIN_FRAC * markets["volume"]
        self.rate_min = channel_array("commission_min", ch)
        self.rate_max = channel_array("commission_max", ch)
        self.rate_power = 1.0 / channel_array("commission_elasticity", ch)

    def roll(
        self,
        impressions: np.ndarray,
        start: int,
        state: TwinState,
        clicks: np.ndarray | None = None,
    ) -> TwinRoll:
        """Roll hours ``start..start+T-1`` from ``state`` over ``impressions (n, T, k)`` (and
        ``clicks (n, T, k)`` where given, as observed: else their expectation)."""
        return self._roll(impressions, start, state, clicks, None)

    def observed_state(self, impressions: np.ndarray, clicks: np.ndarray) -> TwinState:
        """The expected state after the hours observed so far, rolled over their impressions
        and clicks ``(n, hours, k)``."""
        return self.roll(impressions, 0, self.initial, clicks).state

    def gmv_gradient(
        self, impressions: np.ndarray, start: int, state: TwinState
    ) -> tuple[TwinRoll, np.ndarray]:
        """The roll of hours ``start..H-1`` over ``impressions (n, H - start, k)`` and
        ``dG / d impressions`` of the same shape, ``G`` each campaign's total attributed GMV
        over those hours (CNY per impression): the campaigns are independent, so one sweep
        gives every row its own gradient."""
        tape: list[_Hour] = []
        rolled = self._roll(impressions, start, state, None, tape)
        return rolled, self._backward(tape, start)

    def _roll(
        self,
        impressions: np.ndarray,
        start: int,
        state: TwinState,
        observed_clicks: np.ndarray | None,
        tape: list[_Hour] | None,
    ) -> TwinRoll:
        """The forward roll; each hour's :class:`_Hour` appended to ``tape`` where given."""
        interest, fatigue, pool, pending, deposit, clicks_so_far = state
        gmv, sale_cost, ppi = [], [], []
        for t in range(start, start + impressions.shape[1]):
            imp = impressions[:, t - start]
            ctr = self.ctr / (1.0 + self.fatigue_strength * fatigue)
            clicks = imp * ctr if observed_clicks is None else observed_clicks[:, t - start]
            p_buy, p_returning, p_interested = purchase_probabilities(
                self.cvr[0], self.cvr[1], self.cvr[2], self.cvr_mult[:, t], self.affinity,
                pool_saturation(pool, self.pool_half)[:, None], self.interest_affinity,
                pool_saturation(interest, self.interest_half)[:, None],
            )  # fmt: skip
            # The platform's learning scales every CVR (exact while none reaches CVR_CAP; a
            # factor on the capped probabilities).
            learned = learning_multiplier(self.learning_gap, clicks_so_far, self.learning_clicks)
            if tape is not None:
                hour_state = TwinState(interest, fatigue, pool, pending, deposit, clicks_so_far)
                tape.append(
                    _Hour(hour_state, imp, clicks, p_buy, p_returning, p_interested, learned)
                )
            p_buy, p_returning, p_interested = (
                p * learned[:, None] for p in (p_buy, p_returning, p_interested)
            )
            purchases = clicks * p_buy
            ppi.append(ctr * p_buy)
            gmv.append(purchases * self.price * self.attributed[:, t])
            rate = self.commission
            if self.bids.any():
                offered = self.rate_max * (imp / self.reach[:, t]) ** self.rate_power
                rate = np.where(self.bids, np.maximum(offered, self.rate_min), rate)
            sale_cost.append(rate * purchases * self.price)
            clicks_so_far = clicks_so_far + clicks.sum(axis=1)
            new = clicks * (p_buy - p_returning)
            warm = self.warmup[:, t, None]
            arrived = np.where(warm, 0.0, self.immediate * new) + self.hazard * pending
            waiting = np.where(warm, 0.0, (1.0 - self.immediate) * new)
            pending = pending * (1.0 - self.hazard) + waiting
            deposit = deposit + np.where(warm, new, 0.0).sum(axis=1)
            opens = self.opens == t
            pool = pool + arrived.sum(axis=1) + np.where(opens, deposit, 0.0)
            deposit = np.where(opens, 0.0, deposit)
            bought = (clicks * p_interested).sum(axis=1)
            gain = (self.interest_per_click * (clicks - purchases)).sum(axis=1)
            kept = np.where(self.warmup[:, t], 1.0, self.retention)
            interest = kept * np.maximum(interest - bought, 0.0) + gain
            worn = (1.0 - self.recovery) * fatigue + imp / self.volume_per_hour
            fatigue = np.where(self.fatigued, worn, fatigue)
        stack = lambda xs: np.stack(xs, axis=1)  # noqa: E731
        return TwinRoll(
            stack(gmv), stack(sale_cost), stack(ppi),
            TwinState(interest, fatigue, pool, pending, deposit, clicks_so_far),
        )  # fmt: skip

    def _backward(self, tape: list[_Hour], start: int) -> np.ndarray:
        """The adjoint of :meth:`_roll`'s total attributed GMV over ``tape``'s hours:
        ``dG / d imp (n, T, k)``.

        With ``a_X`` the adjoint ``dG / dX`` of the state after hour ``t`` (zero after the
        last), the sweep from the last hour to ``start`` takes, per hour, the adjoints of the
        hour's intermediates (new customers, purchases, clicks, probabilities, saturations)
        from ``a_X`` and the hour's own GMV (``dG / d purchases = price f_tk``), and returns
        ``a_X`` at the hour's start and ``dG / d imp_t``: the chain rule of every line of the
        roll, in reverse (``max(x, 0)`` passes the adjoint where ``x >= 0``).
        """
        n, k = tape[0].imp.shape
        a_interest, a_fatigue, a_pool = np.zeros(n), np.zeros((n, k)), np.zeros(n)
        a_pending, a_deposit, a_clicks_so_far = np.zeros((n, k)), np.zeros(n), np.zeros(n)
        slope = np.empty((n, len(tape), k))
        for step in range(len(tape) - 1, -1, -1):
            hour, t = tape[step], start + step
            interest, fatigue, pool, _, _, clicks_so_far = hour.state
            imp, clicks, learned = hour.imp, hour.clicks, hour.learned[:, None]
            p_buy, p_returning = hour.p_buy * learned, hour.p_returning * learned
            p_interested = hour.p_interested * learned
            warm, opens = self.warmup[:, t], self.opens == t
            # Pool, deposits and pending new customers: a_new, dG / d new customers (n, k).
            a_deposit_after = np.where(opens, a_pool, a_deposit)
            a_new = np.where(
                warm[:, None],
                a_deposit_after[:, None],
                self.immediate * a_pool[:, None] + (1.0 - self.immediate) * a_pending,
            )
            a_pending = a_pending * (1.0 - self.hazard) + self.hazard * a_pool[:, None]
            a_deposit = a_deposit_after
            # Interest: I' = kept max(I - bought, 0) + gain.
            kept = np.where(warm, 1.0, self.retention)
            a_unclamped = np.where(interest - (clicks * p_interested).sum(axis=1) >= 0.0,
                                   kept * a_interest, 0.0)  # fmt: skip
            a_purchases = self.price * self.attributed[:, t] - (
                self.interest_per_click * a_interest[:, None]
            )
            a_clicks = (
                a_clicks_so_far[:, None]
                + self.interest_per_click * a_interest[:, None]
                - a_unclamped[:, None] * p_interested
                + a_new * (p_buy - p_returning)
                + a_purchases * p_buy
            )
            a_buy = a_purchases * clicks + a_new * clicks
            a_returning = -a_new * clicks
            a_interested = -a_unclamped[:, None] * clicks
            # The learning factor on the three probabilities, then the uncapped mix
            # p_ret = rf c_R, p_int = if c_I, p_new = (1 - rf - if) c_N.
            a_learned = (
                a_buy * hour.p_buy + a_returning * hour.p_returning
                + a_interested * hour.p_interested
            ).sum(axis=1)  # fmt: skip
            a_buy, a_returning, a_interested = (
                a * learned for a in (a_buy, a_returning, a_interested)
            )
            cvr_new, cvr_returning, cvr_interested = (c[:, t] for c in self.capped)
            a_rf = (a_returning + a_buy) * cvr_returning - a_buy * cvr_new
            a_if = (a_interested + a_buy) * cvr_interested - a_buy * cvr_new
            interest_sat = pool_saturation(interest, self.interest_half)[:, None]
            pool_sat = pool_saturation(pool, self.pool_half)[:, None]
            a_rf = a_rf - a_if * self.interest_affinity * interest_sat
            a_interest_sat = a_if * (1.0 - self.affinity * pool_sat) * self.interest_affinity
            a_pool_sat = (a_rf * self.affinity).sum(axis=1)
            a_interest = (
                a_unclamped
                + a_interest_sat.sum(axis=1)
                * self.interest_half
                / (interest + self.interest_half) ** 2
            )
            a_pool = a_pool + a_pool_sat * self.pool_half / (pool + self.pool_half) ** 2
            gap_decay = self.learning_gap * np.exp(-clicks_so_far / self.learning_clicks)
            a_clicks_so_far = a_clicks_so_far + a_learned * gap_decay / self.learning_clicks
            # Clicks = imp ctr / (1 + phi F); F' = (1 - rec) F + imp / V where fatigued.
            damped = 1.0 + self.fatigue_strength * fatigue
            ctr = self.ctr / damped
            slope[:, step] = a_clicks * ctr + np.where(
                self.fatigued, a_fatigue / self.volume_per_hour, 0.0
            )
            a_fatigue = np.where(self.fatigued, (1.0 - self.recovery) * a_fatigue, a_fatigue) - (
                a_clicks * imp * ctr * self.fatigue_strength / damped
            )
        return slope


def problem_hours(
    problem: AllocationProblem, start: int, stop: int | None = None, rows=slice(None)
) -> AllocationProblem:
    """``problem`` over hours ``start..stop-1`` (to the end by default) of campaigns ``rows``
    (an index; ``budget_cny`` and ``target_roi`` taken with them)."""
    hourly = {
        f: getattr(problem, f)[rows, start:stop]
        for f in HOURLY_FIELDS
        if np.ndim(getattr(problem, f)) >= 2
    }
    per_campaign = {f: getattr(problem, f)[rows] for f in ("price_cny", "budget_cny", "target_roi")}
    return replace(problem, **hourly, **per_campaign)


#: ``AllocationProblem`` fields with an hour axis (the second).
HOURLY_FIELDS = (
    "volume",
    "max_spend_cny",
    "purchases_per_impression",
    "attributed_frac",
    "future_gmv_per_impression",
)


@dataclass(frozen=True)
class LinearPlan:
    """A plan of hours ``start..H-1`` and the linearised problem it solves.

    Attributes:
        problem: the linearised problem (own purchases per impression at the twin's states,
            shadow values in ``future_gmv_per_impression``), hours ``start..H-1``.
        alloc_cny: ``(n, H - start, k)`` the plan; ``theta`` ``(n,)`` its price.
        gmv_cny, spend_cny: ``(n,)`` the twin's expected attributed GMV and spend of the plan.
        correction_cny: ``(n, H - start)`` per hour, the twin's GMV less the linearised
            problem's at the plan: what a replan on the linearised problem adds to its GMV.
    """

    problem: AllocationProblem
    alloc_cny: np.ndarray
    theta: np.ndarray
    gmv_cny: np.ndarray
    spend_cny: np.ndarray
    correction_cny: np.ndarray


def _linearise(
    twin: ExpectedTwin, problem: AllocationProblem, alloc: np.ndarray, start: int, state
) -> tuple[AllocationProblem, np.ndarray]:
    """The problem linearised at ``alloc`` and the twin's GMV there less its linear part,
    ``(n,)`` CNY (the constant of the linearisation)."""
    impressions = expected_impressions(alloc, problem)
    rolled, slope = twin.gmv_gradient(impressions, start, state)
    own = replace(problem, purchases_per_impression=rolled.ppi, future_gmv_per_impression=0.0)
    shadow = slope - own.purchases_per_impression * own.gmv_per_purchase_cny
    linear = replace(own, future_gmv_per_impression=shadow)
    constant = rolled.gmv.sum(axis=(1, 2)) - (slope * impressions).sum(axis=(1, 2))
    return linear, constant


def _evaluate(
    twin: ExpectedTwin,
    linear: AllocationProblem,
    alloc: np.ndarray,
    start: int,
    state,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The twin's GMV and spend ``(n,)`` of ``alloc`` and its per-hour correction over
    ``linear`` ``(n, H - start)``."""
    impressions = expected_impressions(alloc, linear)
    rolled = twin.roll(impressions, start, state)
    gmv_hourly = rolled.gmv.sum(axis=2)
    paid = np.where(linear.pays_per_sale, 0.0, np.minimum(alloc, linear.cap_cny))
    spend = paid.sum(axis=(1, 2)) + rolled.sale_cost.sum(axis=(1, 2))
    correction = gmv_hourly - (linear.gmv_per_impression_cny * impressions).sum(axis=2)
    return gmv_hourly.sum(axis=1), spend, correction


def plan_linearised(
    twin: ExpectedTwin,
    problem: AllocationProblem,
    alloc_cny: np.ndarray,
    start: int = 0,
    state: TwinState | None = None,
    gmv_offset_cny: np.ndarray | float = 0.0,
    spend_offset_cny: np.ndarray | float = 0.0,
    log_theta: np.ndarray | None = None,
) -> LinearPlan:
    """Plan hours ``start..H-1`` of ``problem`` (those hours; ``budget_cny`` the budget left)
    from the twin's ``state`` (default: hour 0's) by sequential linearisation around the plan
    ``alloc_cny (n, H - start, k)`` (see the module docstring), with the GMV and spend that
    already count as offsets ``(n,)`` CNY."""
    state = twin.initial if state is None else state
    target = problem.target_roi
    best: dict[str, np.ndarray] | None = None
    alloc = alloc_cny
    for _ in range(ITERATIONS):
        linear, constant = _linearise(twin, problem, alloc, start, state)
        answer, theta = solve_allocation(
            linear, gmv_offset_cny + constant, spend_offset_cny, log_theta
        )
        log_theta = np.log(theta)
        gmv, spend, correction = _evaluate(twin, linear, answer, start, state)
        admissible = meets_constraints(
            gmv, spend, log_theta, problem.budget_cny, target, gmv_offset_cny, spend_offset_cny
        )
        score = np.where(admissible, gmv, gmv - target * spend - 1e15)  # admissible first
        found = {
            "ppi": linear.purchases_per_impression,
            "future": linear.future_gmv_per_impression,
            "alloc": answer, "theta": theta, "gmv": gmv, "spend": spend,
            "correction": correction, "score": score,
        }  # fmt: skip
        if best is None:
            best = found
        else:
            better = score > best["score"]
            best = {
                key: np.where(better.reshape((-1,) + (1,) * (value.ndim - 1)), value, best[key])
                for key, value in found.items()
            }
        alloc = alloc + DAMPING * (answer - alloc)
    chosen = replace(
        problem, purchases_per_impression=best["ppi"], future_gmv_per_impression=best["future"]
    )
    return LinearPlan(
        chosen, best["alloc"], best["theta"], best["gmv"], best["spend"], best["correction"]
    )


class MarketPlan(NamedTuple):
    """A reference's plan at hour 0 (:func:`plan_market`)."""

    problem: AllocationProblem  # linearised where ``twin`` is not None
    plan: dict[str, np.ndarray]  # as ``allocation.plan_problem`` returns it
    twin: ExpectedTwin | None
    linear: LinearPlan | None


def plan_market(
    params: CampaignParams, realized: bool, pool_iterations: int = 2, stateful: bool = True
) -> MarketPlan:
    """The plan at hour 0 on the expected market (``realized``: the realized one, drift
    included): the static problem's (``plan_problem``, the pool's fixed point), and where the
    campaigns switch on a mechanism with a state (:func:`models_state`) and ``stateful``, the
    sequential linearisation on the twin from it (``stateful`` False: the ablation that
    ignores the states)."""
    markets = hourly_markets(params) if realized else expected_markets(params)
    markets = with_drift(params, markets, realized)
    problem, plan = plan_problem(params, markets, pool_iterations)
    if not (stateful and models_state(params)):
        return MarketPlan(problem, plan, None, None)
    twin = ExpectedTwin(params, markets, problem)
    linear = plan_linearised(twin, problem, plan["alloc_cny"])
    plan = {
        "alloc_cny": linear.alloc_cny,
        "theta": linear.theta,
        "expected_gmv_cny": linear.gmv_cny,
        "expected_spend_cny": linear.spend_cny,
    }
    return MarketPlan(problem, plan, twin, linear)
