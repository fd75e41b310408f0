"""The references' model of the deeper market's state: hidden CVR drift, and the expected twin
of the intertemporal mechanisms with the sequential linearisation that plans on it.

Drift (docs/simulator.md): the planner plans on ``E[exp(d_t)]`` of the AR(1) from ``d = 0``
(:func:`drift_factor`), the hindsight oracle on the realized path, drawn from the kernel's own
stream.

Interest, pre-sale deposits, creative fatigue and the returning pool make a channel-hour's
value depend on every earlier hour. :class:`ExpectedTwin` rolls their expected states forward
over a plan (torch, vectorized over campaigns and channels, one step per hour);
:func:`plan_linearised` solves the planning problem by sequential linearisation around a plan
(docs/benchmark.md derives it):

1. roll the twin over the plan's expected impressions: every hour's states give each
   channel-hour its purchases per impression (CTR x fatigue, CVR x interest and pool);
2. one backward pass (autograd) gives ``dG / d imp``, the total attributed GMV an impression
   adds, now and through the states later; less its own GMV, the shadow value;
3. fold both into the concave cells (``AllocationProblem.future_gmv_per_impression``) and
   solve with the one-price solver, the budget and ROI constraints as always, the ROI's GMV
   linearised (the twin's GMV at the plan plus the slope times the change);
4. evaluate the answer on the twin, move the plan a damped step towards it, and repeat; keep,
   per campaign, the answer with the most twin GMV among those within the budget that meet the
   ROI target on the twin (else the one closest to it).

A later mechanism with a state joins the twin as one more state in :meth:`ExpectedTwin.roll`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NamedTuple

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
    DYNAMICS_DOMAIN,
    MAX_WIN_FRAC,
    expected_markets,
    hourly_markets,
    pool_saturation,
    purchase_probabilities,
)
from budgetgym.envs.mechanisms import switched_on
from budgetgym.envs.reference import CVR_DRIFT, N_STREAMS, ndtri
from budgetgym.envs.scenarios import CampaignParams

if TYPE_CHECKING:
    import torch

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


def _import_torch():
    """torch, the twin's autograd (the ``train`` extra): only a scenario that switches on a
    mechanism with a state (:data:`STATEFUL`) needs it, so the references run without it on
    the default market."""
    try:
        import torch
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "The references' expected twin of a market with states (interest, pre-sale, "
            "fatigue, per-channel delays, learning) needs torch: "
            'pip install "budgetgym[train]".'
        ) from error
    return torch


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
    """Expected state at the start of an hour (arrays or tensors): ``interest (n,)``,
    ``fatigue (n, k)``, ``pool (n,)`` returning customers, ``pending_new (n, k)`` new customers
    whose purchase has not arrived, ``deposit_new (n,)`` those in pre-sale deposits,
    ``clicks (n,)`` the campaign's clicks so far (the platform's learning)."""

    interest: np.ndarray
    fatigue: np.ndarray
    pool: np.ndarray
    pending_new: np.ndarray
    deposit_new: np.ndarray
    clicks: np.ndarray


class TwinRoll(NamedTuple):
    """A roll of the twin over hours ``start..H-1`` (tensors, ``(n, H - start, k)`` unless said):
    attributed ``gmv`` and commission ``sale_cost`` CNY, own purchases per impression ``ppi``
    (the states' multipliers folded in), and the state after the last hour."""

    gmv: torch.Tensor
    sale_cost: torch.Tensor
    ppi: torch.Tensor
    state: TwinState


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread inside (restored after): the twin's tensors are small, ``(n, k)`` an
    hour, and its graph long, so threads cost more than they give (several times, measured)."""
    torch = _import_torch()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _t(x) -> torch.Tensor:
    torch = _import_torch()
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


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
    """

    def __init__(self, params: CampaignParams, markets: dict, problem: AllocationProblem) -> None:
        torch = _import_torch()
        ch = params.channels
        self.horizon = params.horizon_hours
        self.ctr = _t(params.ctr)
        self.cvr = [_t(params.cvr_new), _t(params.cvr_returning), _t(params.cvr_interested)]
        self.cvr_mult = _t(markets["cvr_mult"])
        self.affinity = _t(channel_array("returning_affinity", ch))
        self.interest_affinity = _t(channel_array("interest_affinity", ch))
        self.interest_per_click = _t(channel_array("interest_per_click", ch))
        fatigue = channel_array("fatigue_strength", ch)
        self.fatigue_strength = _t(fatigue)
        self.fatigued = torch.as_tensor(fatigue > 0.0)
        self.recovery = _t(channel_array("fatigue_recovery", ch))
        self.commission = _t(problem.commission_frac)
        self.volume_per_hour = _t(params.volume_per_hour)
        self.pool_half = _t(params.pool_half_saturation)[:, None]
        self.interest_half = _t(params.interest_half_saturation)[:, None]
        self.price = _t(params.price_cny)[:, None]
        frac = problem.attributed_frac
        self.attributed = _t(frac if frac.ndim == 3 else frac[:, :, None])
        immediate, hazard = channel_delays(params)
        self.immediate, self.hazard = _t(immediate), _t(hazard)
        self.warmup = torch.as_tensor(presale_warmup(params))
        self.retention = _t(params.interest_retention)
        self.opens = params.presale_start_hour
        n, k = params.n_envs, params.n_channels
        self.initial = TwinState(
            _t(np.zeros(n)), _t(np.zeros((n, k))), _t(params.returning_pool_init),
            _t(np.zeros((n, k))), _t(np.zeros(n)), _t(np.zeros(n)),
        )  # fmt: skip
        # The platform's learning (core.learning_multiplier) and the bid channels' commission
        # rate at the impressions their budget brings (core.commission_bid, inverted).
        self.learning_gap = _t(params.learning_gap)
        self.learning_clicks = _t(params.learning_clicks)
        self.bids = torch.as_tensor(problem.bids)
        self.reach = _t(MAX_WIN_FRAC * markets["volume"])
        self.rate_min = _t(channel_array("commission_min", ch))
        self.rate_max = _t(channel_array("commission_max", ch))
        self.rate_power = 1.0 / _t(channel_array("commission_elasticity", ch))

    def roll(
        self,
        impressions: torch.Tensor,
        start: int,
        state: TwinState,
        clicks: torch.Tensor | None = None,
    ) -> TwinRoll:
        """Roll hours ``start..start+T-1`` from ``state`` over ``impressions (n, T, k)`` (and
        ``clicks (n, T, k)`` where given, as observed: else their expectation)."""
        # purchase_probabilities caps the CVRs (constant tensors) with np.minimum, which calls
        # torch's __array_wrap__ in its pre-numpy-2 form: a DeprecationWarning, nothing else.
        with warnings.catch_warnings(), one_thread():
            warnings.simplefilter("ignore", DeprecationWarning)
            return self._roll(impressions, start, state, clicks)

    def observed_state(self, impressions: np.ndarray, clicks: np.ndarray) -> TwinState:
        """The expected state after the hours observed so far, rolled over their impressions
        and clicks ``(n, hours, k)`` (no gradient)."""
        torch = _import_torch()
        with torch.no_grad():
            impressions, clicks = torch.as_tensor(impressions), torch.as_tensor(clicks)
            return self.roll(impressions, 0, self.initial, clicks).state

    def _roll(self, impressions, start: int, state: TwinState, observed_clicks) -> TwinRoll:
        torch = _import_torch()
        interest, fatigue, pool, pending, deposit, clicks_so_far = state
        gmv, sale_cost, ppi = [], [], []
        for t in range(start, start + impressions.shape[1]):
            imp = impressions[:, t - start]
            ctr = self.ctr / (1.0 + self.fatigue_strength * fatigue)
            clicks = imp * ctr if observed_clicks is None else observed_clicks[:, t - start]
            p_buy, p_returning, p_interested = purchase_probabilities(
                self.cvr[0], self.cvr[1], self.cvr[2], self.cvr_mult[:, t], self.affinity,
                pool_saturation(pool[:, None], self.pool_half), self.interest_affinity,
                pool_saturation(interest[:, None], self.interest_half),
            )  # fmt: skip
            # The platform's learning scales every CVR (exact while none reaches CVR_CAP; a
            # factor on the capped probabilities, since the cap is numpy's and the factor, a
            # function of the clicks, carries the gradient).
            learned = 1.0 - self.learning_gap * torch.exp(-clicks_so_far / self.learning_clicks)
            p_buy, p_returning, p_interested = (
                p * learned[:, None] for p in (p_buy, p_returning, p_interested)
            )
            purchases = clicks * p_buy
            ppi.append(ctr * p_buy)
            gmv.append(purchases * self.price * self.attributed[:, t])
            rate = self.commission
            if self.bids.any():
                offered = self.rate_max * (imp / self.reach[:, t]) ** self.rate_power
                rate = torch.where(self.bids, torch.maximum(offered, self.rate_min), rate)
            sale_cost.append(rate * purchases * self.price)
            clicks_so_far = clicks_so_far + clicks.sum(dim=1)
            new = clicks * (p_buy - p_returning)
            warm = self.warmup[:, t, None]
            arrived = torch.where(warm, 0.0, self.immediate * new) + self.hazard * pending
            waiting = torch.where(warm, 0.0, (1.0 - self.immediate) * new)
            pending = pending * (1.0 - self.hazard) + waiting
            deposit = deposit + torch.where(warm, new, 0.0).sum(dim=1)
            opens = torch.as_tensor(self.opens == t)
            pool = pool + arrived.sum(dim=1) + torch.where(opens, deposit, 0.0)
            deposit = torch.where(opens, 0.0, deposit)
            bought = (clicks * p_interested).sum(dim=1)
            gain = (self.interest_per_click * (clicks - purchases)).sum(dim=1)
            kept = torch.where(self.warmup[:, t], 1.0, self.retention)
            interest = kept * torch.clamp(interest - bought, min=0.0) + gain
            worn = (1.0 - self.recovery) * fatigue + imp / self.volume_per_hour
            fatigue = torch.where(self.fatigued, worn, fatigue)
        stack = lambda xs: torch.stack(xs, dim=1)  # noqa: E731
        return TwinRoll(
            stack(gmv), stack(sale_cost), stack(ppi),
            TwinState(interest, fatigue, pool, pending, deposit, clicks_so_far),
        )  # fmt: skip


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
    torch = _import_torch()
    impressions = expected_impressions(alloc, problem)
    leaf = torch.tensor(impressions, requires_grad=True)
    rolled = twin.roll(leaf, start, state)
    with one_thread():
        rolled.gmv.sum().backward()  # campaigns are independent: each row's own gradient
    slope = leaf.grad.numpy()
    own = replace(problem, purchases_per_impression=rolled.ppi.detach().numpy(),
                  future_gmv_per_impression=0.0)  # fmt: skip
    shadow = slope - own.purchases_per_impression * own.gmv_per_purchase_cny
    linear = replace(own, future_gmv_per_impression=shadow)
    constant = rolled.gmv.detach().numpy().sum(axis=(1, 2)) - (slope * impressions).sum(axis=(1, 2))
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
    torch = _import_torch()
    impressions = expected_impressions(alloc, linear)
    with torch.no_grad():
        rolled = twin.roll(torch.as_tensor(impressions), start, state)
    gmv_hourly = rolled.gmv.numpy().sum(axis=2)
    paid = np.where(linear.pays_per_sale, 0.0, np.minimum(alloc, linear.cap_cny))
    spend = paid.sum(axis=(1, 2)) + rolled.sale_cost.numpy().sum(axis=(1, 2))
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
