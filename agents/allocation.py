"""The allocation problem every reference solves, and its solver.

Knowing a campaign's true parameters and a market for every channel-hour (the realized one for
the hindsight oracle, the expected one for the planners), a reference solves

    maximize   sum_{t,k} G_tk(a_tk)                       (expected attributed GMV, CNY)
    subject to sum_{t,k} C_tk(a_tk) <= budget              (spend, CNY)
               sum_{t,k} G_tk(a_tk) >= target_roi * sum_{t,k} C_tk(a_tk)

over the allocation ``a_tk`` of channel ``k`` in hour ``t``. For a paid channel the cost is the
allocation, ``C(a) = a``, and ``G(a) = g * win_curve(a)`` with ``g`` the expected attributed GMV
per impression, so ``G`` is concave. For a pay-per-sale channel (affiliate) the cost is the
commission on the GMV it sells, ``C(a) = c * G_purchase(a)``: a fixed cost per unit of GMV
(``per_sale_pricing: fixed``), or, priced by ``bid``, a commission budget whose rate ``c(a)``
rises with the allocation (:func:`~budgetgym.envs.core.commission_bid`): ``C(a) = min(a, full)``
and ``G(a) = f C(a) / c(a)`` (``f`` the attributed share), concave too.

Both constraints are linear in the ``C`` and ``G`` totals, so the Lagrangian separates into
independent channel-hour problems ``max_a G(a) - theta * C(a)`` with one price ``theta`` (the
marginal ROI every channel-hour is bought down to, the equal-marginal-return condition). A paid
channel-hour's solution has a closed form (see :func:`solve_allocation`); a pay-per-sale
channel-hour is bought out when its ROI exceeds ``theta`` and skipped otherwise. The optimum
is the smallest ``theta`` meeting both constraints, found by bisection on ``log(theta)``.

Expected GMV per impression includes the returning-customer mix, which grows as new customers
arrive; the plan iterates plan -> expected pool trajectory -> plan (a fixed point in two or
three passes), and discounts each channel-hour by the expected share of its conversions
attributed before the end of the attribution window (:func:`attributed_fracs`). Mechanisms with
a state (interest, fatigue, deposits) enter through shadow values, ``future_gmv_per_impression``
(:mod:`budgetgym.agents.intertemporal`). With the GMV and spend that already count as
offsets, the same solver re-plans the rest of the horizon in the closed-loop references
(:mod:`budgetgym.agents.planner`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numba
import numpy as np
from scipy.special import ndtr, ndtri

from budgetgym.envs.channels import channel_array
from budgetgym.envs.core import (
    HILL_REFERENCE_SHARE,
    MAX_WIN_FRAC,
    commission_bid,
    hill_factor,
    normal_cdf,
    pool_saturation,
    purchase_probabilities,
    reserve_constants,
    win_curve,
)
from budgetgym.envs.scenarios import CampaignParams

THETA_BOUNDS = (1e-3, 1e4)  # bracket of the marginal-ROI price theta
_BISECTION_STEPS = 40
_WARM_WIDTH = 0.1  # initial warm-start bracket in log(theta)
_WARM_TOLERANCE = 1e-4  # bracket width in log(theta) at which a warm bisection stops
X_CAP = float(ndtri(MAX_WIN_FRAC))  # quantile of the largest useful allocation
X_NONE = -40.0  # ``x`` of a channel-hour not bought (with competition): Phi(X_NONE) is 0
_NEWTON_STEPS = 6  # safeguarded Newton steps of the competitive first-order condition
_TANGENCY_STEPS = 32  # golden-section steps of the S-shaped response's tangency


@dataclass(frozen=True)
class AllocationProblem:
    """A batch of allocation problems over ``(n, H, k)`` channel-hours.

    Attributes:
        volume: ``(n, H, k)`` impressions on offer.
        max_spend_cny: ``(n, H, k)`` cost of buying the whole market.
        purchases_per_impression: ``(n, H, k)`` expected purchases per impression won.
        price_cny: ``(n,)`` average order value.
        attributed_frac: ``(n, H)`` or ``(n, H, k)`` expected share of an hour's (a
            channel-hour's) purchase GMV attributed to the campaign in time.
        sigma: ``(k,)`` log-sd of market prices (shape of the win curve).
        volume_sigma: ``(k,)`` log-sd of the hourly volume noise.
        commission_frac: ``(k,)`` cost per unit of purchase GMV; 0 for paid channels.
        budget_cny: ``(n,)``.
        target_roi: ``(n,)``.
        future_gmv_per_impression: ``(n, H, k)`` CNY (or 0): the shadow value of an impression,
            the attributed GMV it adds in later hours through the market's state (interest,
            fatigue, deposits, the returning pool; :mod:`budgetgym.agents.intertemporal`).
        reserve_frac: ``(k,)`` reserve price over the median price (None: 0, no reserve).
        price_impact: ``(k,)`` own-spend price impact (None: 0).
        hill_shape: ``(k,)`` Hill shape of the response (None: 1).
        bid_pricing: ``(k,)`` bool: pay-per-sale channels whose allocation sets the commission
            rate (``per_sale_pricing: bid``); None: none.
        commission_min: ``(k,)`` their lowest commission rate.
        commission_max: ``(k,)`` their highest.
        commission_elasticity: ``(k,)`` promoters' traffic grows as ``rate ** elasticity``.
    """

    volume: np.ndarray
    max_spend_cny: np.ndarray
    purchases_per_impression: np.ndarray
    price_cny: np.ndarray
    attributed_frac: np.ndarray
    sigma: np.ndarray
    volume_sigma: np.ndarray
    commission_frac: np.ndarray
    budget_cny: np.ndarray
    target_roi: np.ndarray
    future_gmv_per_impression: np.ndarray | float = 0.0
    reserve_frac: np.ndarray | None = None
    price_impact: np.ndarray | None = None
    hill_shape: np.ndarray | None = None

    @property
    def competes(self) -> bool:
        """Whether a competition mechanism (reserve, price impact, S-shape) is on."""
        return (
            (self.reserve_frac is not None and bool(np.any(self.reserve_frac > 0)))
            or (self.price_impact is not None and bool(np.any(self.price_impact > 0)))
            or (self.hill_shape is not None and bool(np.any(self.hill_shape != 1)))
        )

    bid_pricing: np.ndarray | None = None
    commission_min: np.ndarray | None = None
    commission_max: np.ndarray | None = None
    commission_elasticity: np.ndarray | None = None

    @property
    def bids(self) -> np.ndarray:
        """``(k,)`` bool: channels whose allocation sets their commission rate."""
        if self.bid_pricing is None:
            return np.zeros(self.commission_frac.shape, dtype=bool)
        return self.bid_pricing

    @property
    def pays_per_sale(self) -> np.ndarray:
        """``(k,)`` bool: channels billed by commission."""
        return self.commission_frac > 0

    @property
    def cap_cny(self) -> np.ndarray:
        """``(n, H, k)`` largest useful allocation: ``MAX_WIN_FRAC`` of the market."""
        return MAX_WIN_FRAC * self.max_spend_cny

    @property
    def gmv_per_purchase_cny(self) -> np.ndarray:
        """``(n, H, 1)`` or ``(n, H, k)`` expected *attributed* GMV per purchase."""
        frac = self.attributed_frac
        if frac.ndim == 3:
            return self.price_cny[:, None, None] * frac
        return (self.price_cny[:, None] * frac)[:, :, None]

    @property
    def gmv_per_impression_cny(self) -> np.ndarray:
        """``(n, H, k)`` attributed GMV an impression adds, now and (shadow value) later; at
        least 0 (a channel-hour worth less is never bought)."""
        own = self.purchases_per_impression * self.gmv_per_purchase_cny
        return np.maximum(own + self.future_gmv_per_impression, 0.0)


def expected_impressions(alloc_cny: np.ndarray, problem: AllocationProblem) -> np.ndarray:
    """Expected impressions ``(n, H, k)`` won with ``alloc_cny``: the core's win curve (times
    the S-shaped response's factor on their CTR where ``hill_shape`` is above 1: the
    impressions that respond, purchases are these times ``purchases_per_impression``), and on a
    ``bid`` channel what its commission budget brings (:func:`_bid_response`)."""
    if problem.competes:
        won = win_curve(
            alloc_cny, problem.volume, problem.max_spend_cny, problem.sigma, problem.reserve_frac,
            problem.price_impact,
        )  # fmt: skip
        hill = np.ones_like(problem.sigma) if problem.hill_shape is None else problem.hill_shape
        impressions = won * hill_factor(won, problem.volume, hill)
    else:
        impressions = win_curve(alloc_cny, problem.volume, problem.max_spend_cny, problem.sigma)
    if problem.bids.any():
        bid_impressions = _bid_response(np.maximum(alloc_cny, 0.0), problem)[0]
        impressions = np.where(problem.bids, bid_impressions, impressions)
    return impressions


def expected_response(
    alloc_cny: np.ndarray, problem: AllocationProblem
) -> tuple[np.ndarray, np.ndarray]:
    """Expected attributed GMV and cost, both ``(n, H, k)`` CNY, of an allocation.

    A pay-per-sale channel's allocation buys reach (``fixed``) or sets its commission rate
    (``bid``); its cost is the commission on what it sells (the core stops it only when the
    budget left cannot pay, which a plan within budget never meets).
    """
    requested = np.maximum(alloc_cny, 0.0)
    # A bid channel's allocation is a commission budget, not a share of its reach's cost.
    alloc = np.where(problem.bids, requested, np.minimum(requested, problem.cap_cny))
    impressions = expected_impressions(alloc, problem)
    purchases = impressions * problem.purchases_per_impression
    gmv = purchases * problem.gmv_per_purchase_cny + impressions * problem.future_gmv_per_impression
    price = problem.price_cny[:, None, None]
    rate = commission_rate(alloc, problem)
    cost = np.where(problem.pays_per_sale, rate * purchases * price, alloc)
    return gmv, cost


def _bid_response(alloc_cny: np.ndarray, problem: AllocationProblem):
    """:func:`~budgetgym.envs.core.commission_bid` of every channel-hour ``(n, H, k)``:
    expected impressions and commission rate (meaningful on the ``bid`` channels)."""
    gmv_per_impression = problem.purchases_per_impression * problem.price_cny[:, None, None]
    return commission_bid(
        alloc_cny, problem.volume, gmv_per_impression, problem.commission_min,
        problem.commission_max, problem.commission_elasticity,
    )  # fmt: skip


def commission_rate(alloc_cny: np.ndarray, problem: AllocationProblem) -> np.ndarray:
    """``(n, H, k)`` expected commission rate of each channel-hour's allocation: a ``fixed``
    channel's ``commission_frac``, a ``bid`` channel's rate for that budget (0 for paid
    channels)."""
    rate = np.broadcast_to(problem.commission_frac, alloc_cny.shape)
    if problem.bids.any():
        rate = np.where(problem.bids, _bid_response(alloc_cny, problem)[1], rate)
    return rate


class ResponseCells:
    """The solver's view of an :class:`AllocationProblem`: every channel-hour's response to the
    price ``theta``, hours ``start..H-1``.

    A paid channel-hour bought down to marginal ROI ``theta`` spends ``M Phi(x)`` and returns
    ``g V Phi(x + sigma)`` with ``x = min((log(g V / M) - sigma^2 / 2 - log theta) / sigma,
    Phi^-1(MAX_WIN_FRAC))`` (see :func:`solve_allocation`); a ``fixed`` pay-per-sale
    channel-hour is bought out (``gmv_full``, ``cost_full``) when its ROI beats ``theta``; a
    ``bid`` one is bought to the rate where its marginal ROI is ``theta`` (:meth:`bid_alloc`).

    With competition (``problem.competes``: a reserve, own-spend price impact or an S-shaped
    response) the paid channel-hour's response in ``x`` (the quantile of its spend share at
    the market's own prices, docs/simulator.md §2) is: cost share
    ``c = Phi(x) - q + c0`` (``c0``, ``q``: :func:`~budgetgym.envs.core.reserve_constants`),
    spend ``a = M c / (1 - eta c)``, GMV ``g V w (w / w_ref)^(s - 1)`` with ``w = Phi(x +
    sigma)``; its marginal ROI is ``dG/da = exp(f(x))``,
    ``f = log(g V / M) - sigma^2 / 2 - sigma x + log s + (s - 1) log(w / w_ref) + 2 log(1 -
    eta c)``. The channel-hour is bought at ``f(x) = log theta`` (safeguarded Newton), from its
    lowest useful ``x_t`` on: the reserve's quantile, or, for an S-shaped response (not
    concave), the tangency of its concave envelope (the spend of the largest average ROI,
    found once by golden section): below ``x_t`` it buys nothing.
    """

    def __init__(self, problem: AllocationProblem) -> None:
        per_sale, bids = problem.pays_per_sale, problem.bids
        self.paid_idx = np.flatnonzero(~per_sale)
        self.sale_idx, self.bid_idx = np.flatnonzero(per_sale & ~bids), np.flatnonzero(bids)
        self.sigma = problem.sigma[self.paid_idx]
        self.volume_sigma = problem.volume_sigma[self.paid_idx]
        g = problem.gmv_per_impression_cny[..., self.paid_idx]
        self.gv = g * problem.volume[..., self.paid_idx]  # (n, H, paid) GMV of the whole market
        self.m = problem.max_spend_cny[..., self.paid_idx]
        with np.errstate(divide="ignore"):
            self.log_ratio = np.log(self.gv / np.maximum(self.m, 1e-12)) - 0.5 * self.sigma**2
        self.cap = problem.cap_cny
        self.competes = problem.competes
        self._floor: np.ndarray | None = None  # see _floor_log_marginal
        if self.competes:
            self._competition(problem)
        gmv_full, cost_full = expected_response(problem.cap_cny, problem)
        self.sale_gmv, self.sale_cost = gmv_full[..., self.sale_idx], cost_full[..., self.sale_idx]
        self.sale_worth = np.divide(
            self.sale_gmv,
            self.sale_cost,
            out=np.zeros_like(self.sale_gmv),
            where=self.sale_cost > 0,
        )
        # Bid channels: the commission of the whole reach at the top rate, and the attributed
        # value (shadow values included) per unit of purchase GMV.
        bid = self.bid_idx
        self.bid_frac = self.bid_full = np.zeros((*problem.volume.shape[:2], 0))
        if bid.size:
            price = problem.price_cny[:, None, None]
            gmv_per_impression = problem.purchases_per_impression[..., bid] * price
            self.bid_frac = problem.gmv_per_impression_cny[..., bid] / np.maximum(
                gmv_per_impression, 1e-300
            )
            self.bid_full = (
                problem.commission_max[bid] * gmv_per_impression * MAX_WIN_FRAC
            ) * problem.volume[..., bid]
            self.bid_rates = (problem.commission_min[bid], problem.commission_max[bid])
            self.bid_elasticity = problem.commission_elasticity[bid]

    def bid_alloc(self, log_theta: np.ndarray, start: int = 0, stop: int | None = None):
        """Allocation ``(n, stop - start, bid)`` CNY of the ``bid`` channel-hours at
        ``log_theta (n,)``, and its commission rate.

        With attributed value ``f`` per unit of purchase GMV (shadow values included), the
        attributed GMV of the commission budget ``a`` is ``f a / c(a)``, whose marginal ROI is
        ``f epsilon / ((1 + epsilon) c)`` above the lowest rate's budget and ``f / c_min`` below
        it: the rate where it is ``theta`` is
        ``c* = f epsilon / ((1 + epsilon) theta)``, clipped to ``[c_min, c_max]``, bought with
        ``a = full (c* / c_max) ** (1 + epsilon)``; nothing where ``f / c_min <= theta``.
        """
        hours = slice(start, stop)
        theta = np.exp(log_theta)[:, None, None]
        frac, (rate_min, rate_max) = self.bid_frac[:, hours], self.bid_rates
        eps = self.bid_elasticity
        rate = np.clip(frac * eps / ((1.0 + eps) * theta), rate_min, rate_max)
        alloc = self.bid_full[:, hours] * (rate / rate_max) ** (1.0 + eps)
        return np.where(frac > theta * rate_min, alloc, 0.0), rate

    def bid_totals(self, log_theta: np.ndarray, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Attributed GMV and commission ``(n,)`` of the ``bid`` channel-hours from ``start``."""
        if not self.bid_idx.size:
            zero = np.zeros(log_theta.shape)
            return zero, zero
        alloc, rate = self.bid_alloc(log_theta, start)
        gmv = self.bid_frac[:, start:] * alloc / rate
        return gmv.sum(axis=(1, 2)), alloc.sum(axis=(1, 2))

    def _competition(self, problem: AllocationProblem) -> None:
        """The paid channels' competition constants ``(paid,)`` and tangencies ``x_t``."""
        paid, k = self.paid_idx, problem.sigma.size
        reserve = np.zeros(k) if problem.reserve_frac is None else problem.reserve_frac
        impact = np.zeros(k) if problem.price_impact is None else problem.price_impact
        hill = np.ones(k) if problem.hill_shape is None else problem.hill_shape
        share, quantile, _ = reserve_constants(reserve[paid], self.sigma)
        self.reserve_share, self.reserve_quantile = share, quantile
        self.impact, self.hill = impact[paid], hill[paid]
        # The kernel caps the allocation at MAX_WIN_FRAC of M: the cost share's largest value.
        top = MAX_WIN_FRAC / (1.0 + self.impact * MAX_WIN_FRAC)
        self.x_cap = ndtri(top - share + quantile)
        with np.errstate(divide="ignore"):
            x_reserve = np.maximum(ndtri(quantile), X_NONE + 1.0)  # the reserve's quantile
        self.x_t = np.broadcast_to(x_reserve, self.m.shape).copy()
        if (self.hill > 1.0).any():
            self.x_t = self._tangency(x_reserve)
        # Channels whose first-order condition has no closed form (the reserve's has one).
        self.iterative = np.flatnonzero((self.hill != 1.0) | (self.impact > 0.0))

    def _spend_gmv(self, x: np.ndarray, hours: slice) -> tuple[np.ndarray, np.ndarray]:
        """Spend and GMV ``(n, len(hours), paid)`` of the paid channel-hours ``hours`` at ``x``
        (0 where ``x`` is ``X_NONE``: not bought)."""
        spend, gmv = np.empty(x.shape), np.empty(x.shape)
        _competitive_response(
            np.ascontiguousarray(x, dtype=np.float64),
            np.ascontiguousarray(self.m[:, hours]),
            np.ascontiguousarray(self.gv[:, hours]),
            *self._channel_constants(),
            spend,
            gmv,
        )
        return spend, gmv

    def _log_marginal(self, x: np.ndarray, hours: slice, cols=slice(None)):
        """Cost share ``c``, the marginal ROI's log, the won share and the log of the S-shape's
        factor of the paid channel-hours ``hours`` of the paid channels ``cols`` at ``x``."""
        hill, impact, sigma = self.hill[cols], self.impact[cols], self.sigma[cols]
        c = (ndtr(x) - self.reserve_quantile[cols]) + self.reserve_share[cols]
        won = ndtr(x + sigma)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_hill = np.where(hill != 1.0, (hill - 1.0) * np.log(won / HILL_REFERENCE_SHARE), 0.0)
        log_marginal = self.log_ratio[:, hours][..., cols] - sigma * x + np.log(hill) + log_hill
        return c, log_marginal + 2.0 * np.log(1.0 - impact * c), won, log_hill

    def _log_marginal_slope(self, x: np.ndarray, c: np.ndarray, cols=slice(None)) -> np.ndarray:
        """``df/dx`` of the marginal ROI's log at ``x`` and cost share ``c`` of the paid
        channels ``cols`` (negative where the response is concave)."""
        hill, impact, sigma = self.hill[cols], self.impact[cols], self.sigma[cols]
        won = np.maximum(ndtr(x + sigma), 1e-300)
        shape = (hill - 1.0) * _normal_pdf(x + sigma) / won
        return shape - sigma - 2.0 * impact * _normal_pdf(x) / (1.0 - impact * c)

    def _tangency(self, x_reserve: np.ndarray) -> np.ndarray:
        """``x (n, H, paid)`` of the largest average ROI ``G / a`` on ``[x_reserve, x_cap]``
        (golden section; the concave envelope's tangency of an S-shaped response)."""
        cols = np.flatnonzero(self.hill > 1.0)
        shape = (*self.m.shape[:2], cols.size)
        lo = np.broadcast_to(np.maximum(x_reserve[cols], -8.0), shape).copy()
        hi = np.broadcast_to(self.x_cap[cols], shape).copy()
        ratio = (np.sqrt(5.0) - 1.0) / 2.0
        impact, m, gv = self.impact[cols], self.m[..., cols], self.gv[..., cols]

        def average(x: np.ndarray) -> np.ndarray:
            c, _, won, log_hill = self._log_marginal(x, slice(None), cols)
            spend = m * c / (1.0 - impact * c)
            return gv * won * np.exp(log_hill) / np.maximum(spend, 1e-300)

        for _ in range(_TANGENCY_STEPS):
            a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
            left = average(a) >= average(b)
            hi, lo = np.where(left, b, hi), np.where(left, lo, a)
        x_t = np.broadcast_to(x_reserve, self.m.shape).copy()
        x_t[..., cols] = 0.5 * (lo + hi)
        return x_t

    def _competitive_x(self, log_theta: np.ndarray, hours: slice) -> np.ndarray:
        """``x`` of the paid channel-hours ``hours`` at ``log_theta (n,)``: the root of the
        marginal ROI's first-order condition on ``[x_t, x_cap]``, ``X_NONE`` where it is below
        ``theta`` already at ``x_t``."""
        target = log_theta[:, None, None]
        x_t = np.minimum(self.x_t[:, hours], self.x_cap)
        # Closed form where neither impact nor an S-shape: the lognormal's, from the reserve on.
        x = np.minimum((self.log_ratio[:, hours] - target) / self.sigma, self.x_cap)
        bought = x >= x_t
        cols = self.iterative
        if cols.size:
            root = np.empty(x_t[..., cols].shape)
            _competitive_roots(
                np.ascontiguousarray(self.log_ratio[:, hours][..., cols]),
                np.ascontiguousarray(log_theta, dtype=np.float64),
                np.ascontiguousarray(x_t[..., cols]),
                np.ascontiguousarray(self._floor_log_marginal()[:, hours]),
                np.ascontiguousarray(x[..., cols]),
                np.ascontiguousarray(self.x_cap[cols]),
                *(np.ascontiguousarray(v[cols]) for v in self._channel_constants()),
                root,
            )
            x[..., cols] = root
            bought[..., cols] = root > X_NONE
        return np.where(bought, x, X_NONE)

    def _floor_log_marginal(self) -> np.ndarray:
        """The marginal ROI's log ``(n, H, iterative)`` at the bottom of each iterative
        channel-hour's range, ``min(x_t, x_cap)``: it does not depend on the price, so a
        bisection's every step reuses it (computed at the first)."""
        if self._floor is None:
            cols = self.iterative
            x_low = np.minimum(self.x_t, self.x_cap)[..., cols]
            self._floor = np.empty(x_low.shape)
            _log_marginals(
                np.ascontiguousarray(self.log_ratio[..., cols]),
                np.ascontiguousarray(x_low),
                *(np.ascontiguousarray(v[cols]) for v in self._channel_constants()),
                self._floor,
            )
        return self._floor

    def _channel_constants(self) -> tuple[np.ndarray, ...]:
        """The paid channels' ``(paid,)`` response constants of the kernels
        (:func:`_competitive_response`, :func:`_competitive_roots`)."""
        return (
            self.sigma,
            self.hill,
            self.impact,
            self.reserve_quantile,
            self.reserve_share,
        )

    def paid_x(self, log_theta: np.ndarray, start: int = 0) -> np.ndarray:
        """``x (n, H - start, paid)`` of the paid channel-hours at ``log_theta (n,)``."""
        if self.competes:
            return self._competitive_x(log_theta, slice(start, None))
        x = (self.log_ratio[:, start:] - log_theta[:, None, None]) / self.sigma
        return np.minimum(x, X_CAP)

    def paid_spend(self, x: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Spend ``(n, hours, paid)`` of the paid channel-hours ``start..stop-1`` at ``x``."""
        if not self.competes:
            return self.m[:, start:stop] * ndtr(x)
        return self._spend_gmv(x, slice(start, stop))[0]

    def paid_totals(
        self, log_theta: np.ndarray, start: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-hour GMV, spend and ``d spend / d log(theta)`` ``(n, H - start)`` of the paid
        channels at ``log_theta (n,)``.

        The slope is ``-M phi(x) / sigma`` below the cap (0 at it); the GMV's slope is
        ``theta`` times the spend's (every channel-hour is bought down to marginal ROI theta).
        """
        x = self.paid_x(log_theta, start)
        density = np.exp(-0.5 * x**2) / np.sqrt(2.0 * np.pi)
        if not self.competes:
            gmv = self.paid_gmv(x, start).sum(axis=2)
            spend = self.paid_spend(x, start).sum(axis=2)
            slope = -(np.where(x < X_CAP, self.m[:, start:] * density / self.sigma, 0.0))
            return gmv, spend, slope.sum(axis=2)
        spend, gmv = (v.sum(axis=2) for v in self._spend_gmv(x, slice(start, None)))
        # d spend / d log(theta) = (d spend / dx) / (d f / dx) inside [x_t, x_cap].
        c = (ndtr(x) - self.reserve_quantile) + self.reserve_share
        df = np.minimum(self._log_marginal_slope(x, c), -1e-12)
        dspend = self.m[:, start:] * density / (1.0 - self.impact * c) ** 2
        inside = (x > X_NONE) & (x < self.x_cap) & (x > self.x_t[:, start:])
        return gmv, spend, np.where(inside, dspend / df, 0.0).sum(axis=2)

    def paid_gmv(self, x: np.ndarray, start: int = 0) -> np.ndarray:
        """GMV ``(n, H - start, paid)`` of the paid channel-hours at ``x`` (from :meth:`paid_x`)."""
        if self.competes:
            return self._spend_gmv(x, slice(start, None))[1]
        return self.gv[:, start:] * ndtr(x + self.sigma)

    def take(self, rows: np.ndarray) -> ResponseCells:
        """The cells of campaigns ``rows`` only."""
        taken = copy.copy(self)
        names = ["gv", "m", "log_ratio", "cap", "sale_gmv", "sale_cost", "sale_worth", "bid_full",
                 "bid_frac"]  # fmt: skip
        for name in names + (["x_t"] if self.competes else []):
            setattr(taken, name, getattr(self, name)[rows])
        taken._floor = None if self._floor is None else self._floor[rows]
        return taken

    def sale_totals(self, log_theta: np.ndarray, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """GMV and commission ``(n,)`` of the pay-per-sale channel-hours from ``start`` on."""
        buy = self.sale_worth[:, start:] > np.exp(log_theta)[:, None, None]
        gmv = (self.sale_gmv[:, start:] * buy).sum(axis=(1, 2))
        bid_gmv, bid_cost = self.bid_totals(log_theta, start)
        return gmv + bid_gmv, (self.sale_cost[:, start:] * buy).sum(axis=(1, 2)) + bid_cost

    def totals(self, log_theta: np.ndarray, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Expected GMV and spend ``(n,)`` CNY of hours ``start..H-1`` at ``log_theta (n,)``."""
        x = self.paid_x(log_theta, start)
        if self.competes:  # one pass of the kernel gives both
            spend, gmv = (v.sum(axis=(1, 2)) for v in self._spend_gmv(x, slice(start, None)))
        else:
            gmv = self.paid_gmv(x, start).sum(axis=(1, 2))
            spend = self.paid_spend(x, start).sum(axis=(1, 2))
        sale_gmv, sale_spend = self.sale_totals(log_theta, start)
        return gmv + sale_gmv, spend + sale_spend

    def allocation(self, log_theta: np.ndarray, start: int = 0, stop: int | None = None):
        """The allocation ``(n, stop - start, k)`` CNY at ``log_theta (n,)`` of hours
        ``start..stop-1`` (to the end by default)."""
        hours = slice(start, stop)
        cap = self.cap[:, hours]
        alloc = np.zeros_like(cap)
        if self.competes:
            x = self._competitive_x(log_theta, hours)
        else:
            x = (self.log_ratio[:, hours] - log_theta[:, None, None]) / self.sigma
            x = np.minimum(x, X_CAP)
        spend = self.paid_spend(x, start, stop)
        alloc[..., self.paid_idx] = np.minimum(spend, cap[..., self.paid_idx])
        buy = self.sale_worth[:, hours] > np.exp(log_theta)[:, None, None]
        alloc[..., self.sale_idx] = np.where(buy, cap[..., self.sale_idx], 0.0)
        if self.bid_idx.size:
            alloc[..., self.bid_idx] = self.bid_alloc(log_theta, start, stop)[0]
        return alloc


def _normal_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _marginal_terms(x, sigma, hill, impact, quantile, share):
    """What :meth:`ResponseCells._log_marginal` of one channel-hour adds to its market's
    ``log_ratio - sigma x + log(hill)`` at ``x``, with what the derivative reuses: the cost
    share ``c``, the won share, the S-shape's log factor and the price impact's
    ``2 log(1 - impact c)``. They depend on ``x`` and the channel only, so the value at a
    channel's cap is computed once for all its hours."""
    c = (normal_cdf(x) - quantile) + share
    won = normal_cdf(x + sigma)
    log_hill = 0.0
    if hill != 1.0:
        log_hill = (hill - 1.0) * np.log(won / HILL_REFERENCE_SHARE)
    return c, won, log_hill, 2.0 * np.log(1.0 - impact * c)


@numba.njit(cache=True, error_model="numpy")
def _competitive_response(x, m, gv, sigma, hill, impact, quantile, share, spend, gmv):
    """``spend`` and ``gmv`` ``(n, h, c)`` of the paid channel-hours at ``x (n, h, c)``, of
    market spend ``m`` and market GMV ``gv`` ``(n, h, c)`` (:class:`ResponseCells`), 0 where
    ``x`` is ``X_NONE``; the rest per channel ``(c,)``."""
    n, hours, cols = x.shape
    for i in range(n):
        for t in range(hours):
            for j in range(cols):
                v = x[i, t, j]
                if v <= X_NONE:
                    spend[i, t, j] = gmv[i, t, j] = 0.0
                    continue
                c = (normal_cdf(v) - quantile[j]) + share[j]
                won = normal_cdf(v + sigma[j])
                scale = 1.0
                if hill[j] != 1.0:
                    scale = math.exp((hill[j] - 1.0) * np.log(won / HILL_REFERENCE_SHARE))
                spend[i, t, j] = m[i, t, j] * c / (1.0 - impact[j] * c)
                gmv[i, t, j] = gv[i, t, j] * won * scale


@numba.njit(cache=True, error_model="numpy")
def _log_marginals(log_ratio, x, sigma, hill, impact, quantile, share, out):
    """``out (n, h, c)``: the marginal ROI's log ``f(x)`` of every channel-hour at
    ``x (n, h, c)`` (:meth:`ResponseCells._log_marginal`); ``log_ratio``: ``(n, h, c)``, the rest
    per channel ``(c,)``."""
    n, hours, cols = x.shape
    log_shape = np.log(hill)
    for i in range(n):
        for t in range(hours):
            for j in range(cols):
                v, s = x[i, t, j], sigma[j]
                _, _, log_hill, crowding = _marginal_terms(
                    v, s, hill[j], impact[j], quantile[j], share[j]
                )
                out[i, t, j] = log_ratio[i, t, j] - s * v + log_shape[j] + log_hill + crowding


@numba.njit(cache=True, error_model="numpy")
def _competitive_roots(
    log_ratio, log_theta, x_low, f_low, x_start, x_cap, sigma, hill, impact, quantile, share, out
):
    """``out (n, h, c)``: per channel-hour, the root of ``f(x) = log theta`` on
    ``[x_low, x_cap]`` by safeguarded Newton from ``x_start`` (``_NEWTON_STEPS`` steps), ``x_cap``
    where ``f`` is still above ``log theta`` there and ``X_NONE`` where it is below it already at
    ``x_low`` (``f_low = f(x_low)``, :func:`_log_marginals`). ``log_ratio``, ``x_low``,
    ``f_low``, ``x_start``: ``(n, h, c)``; ``log_theta``: ``(n,)``; the rest per channel
    ``(c,)``."""
    pdf_norm = 1.0 / math.sqrt(2.0 * math.pi)
    n, hours, cols = log_ratio.shape
    log_shape = np.log(hill)
    cap_terms = np.empty((cols, 2))  # the S-shape's and the impact's terms at the cap
    for j in range(cols):
        _, _, cap_hill, cap_impact = _marginal_terms(
            x_cap[j], sigma[j], hill[j], impact[j], quantile[j], share[j]
        )
        cap_terms[j, 0], cap_terms[j, 1] = cap_hill, cap_impact
    for i in range(n):
        target = log_theta[i]
        for t in range(hours):
            for j in range(cols):
                lr, s, h, eta = log_ratio[i, t, j], sigma[j], hill[j], impact[j]
                q, c0, log_h = quantile[j], share[j], log_shape[j]
                lo, hi = x_low[i, t, j], x_cap[j]
                if f_low[i, t, j] < target:
                    out[i, t, j] = X_NONE
                    continue
                if lr - s * hi + log_h + cap_terms[j, 0] + cap_terms[j, 1] >= target:
                    out[i, t, j] = hi
                    continue
                root = min(max(x_start[i, t, j], lo), hi)
                for _ in range(_NEWTON_STEPS):
                    c, won, log_hill, crowding = _marginal_terms(root, s, h, eta, q, c0)
                    f = lr - s * root + log_h + log_hill + crowding - target
                    if f > 0:
                        lo = root
                    else:
                        hi = root
                    won = max(won, 1e-300)
                    pdf_won = math.exp(-0.5 * (root + s) * (root + s)) * pdf_norm
                    pdf = math.exp(-0.5 * root * root) * pdf_norm
                    slope = (h - 1.0) * pdf_won / won - s - 2.0 * eta * pdf / (1.0 - eta * c)
                    step = root - f / min(slope, -1e-12)
                    if step == root:  # converged: the remaining steps would not move it
                        break
                    root = step if lo <= step <= hi else 0.5 * (lo + hi)
                out[i, t, j] = root


def meets_constraints(
    gmv_cny: np.ndarray,
    spend_cny: np.ndarray,
    log_theta: np.ndarray,
    budget_cny: np.ndarray,
    target_roi: np.ndarray,
    gmv_offset_cny: np.ndarray | float = 0.0,
    spend_offset_cny: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Whether a plan's expected ``gmv_cny`` and ``spend_cny`` ``(n,)`` at ``log_theta`` are
    admissible (see :func:`solve_allocation`): monotone in ``log_theta``, false below the
    optimum, true above it."""
    within_budget = spend_cny <= budget_cny * (1.0 + 1e-9)
    required = target_roi * (spend_cny + spend_offset_cny) * (1.0 - 1e-9)
    meets = gmv_cny + gmv_offset_cny >= required
    return within_budget & (meets | (log_theta >= np.log(target_roi)))


def solve_allocation(
    problem: AllocationProblem,
    gmv_offset_cny: np.ndarray | float = 0.0,
    spend_offset_cny: np.ndarray | float = 0.0,
    log_theta_start: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Optimal allocation ``(n, H, k)`` CNY and its price ``theta`` ``(n,)`` by bisection.

    Solves ``max G`` subject to ``C <= budget`` and
    ``gmv_offset + G >= target_roi * (spend_offset + C)``: the oracle's problem with offsets 0,
    the planner's rest of the horizon with the GMV and spend that count already (``(n,)`` CNY).

    Every channel-hour maximizes ``G(a) - theta * C(a)``. Paid channel: with
    ``x = Phi^-1(a / M)`` the marginal GMV of spend is ``g V / M * exp(-sigma x - sigma^2 / 2)``
    (``g`` attributed GMV per impression); setting it to ``theta`` gives
    ``x = (log(g V / (M theta)) - sigma^2 / 2) / sigma`` and ``a = M Phi(x)``, capped at
    ``MAX_WIN_FRAC * M``. Pay-per-sale channel: its ROI does not depend on the allocation, so it
    is bought out when that ROI beats ``theta`` and skipped otherwise.

    Spend falls with ``theta``; the surplus ``G - R C`` rises with ``theta`` below the target
    ``R`` and falls above it (its derivative is ``(theta - R) dC/dtheta``), so it peaks at
    ``theta = R``. The optimum is therefore the smallest ``theta`` that keeps spend within budget
    and either meets the ROI constraint or is at least ``R`` (:func:`meets_constraints`):
    ``max(theta_budget, theta_roi)``, where ``theta_roi <= R`` is the smallest price meeting the
    ROI constraint. With offsets 0 (the oracle) the constraint holds at every ``theta >= R``;
    with a deficit to make up it may hold nowhere, and the plan at ``max(theta_budget, R)`` buys
    only the channel-hours whose marginal ROI reaches the target: the largest expected surplus
    ``G - R C`` the budget allows, the plan that comes closest to the target.

    ``log_theta_start (n,)`` warm-starts the bisection (see :func:`smallest_log_theta`).
    """
    cells = ResponseCells(problem)

    def feasible(log_theta: np.ndarray) -> np.ndarray:
        gmv, spend = cells.totals(log_theta)
        return meets_constraints(
            gmv, spend, log_theta, problem.budget_cny, problem.target_roi,
            gmv_offset_cny, spend_offset_cny,
        )  # fmt: skip

    n = problem.budget_cny.shape[0]
    log_theta = smallest_log_theta(feasible, *_log_bounds(n), log_theta_start)
    return cells.allocation(log_theta), np.exp(log_theta)


def _log_bounds(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``log(THETA_BOUNDS)`` as two ``(n,)`` arrays."""
    return np.full(n, np.log(THETA_BOUNDS[0])), np.full(n, np.log(THETA_BOUNDS[1]))


def smallest_log_theta(
    predicate, low: np.ndarray, high: np.ndarray, start: np.ndarray | None = None
) -> np.ndarray:
    """Smallest ``log(theta)`` ``(n,)`` in ``[low, high]`` where the monotone ``predicate``
    (false below, true above; ``(n,) -> (n,)`` bool) holds, by bisection; ``high`` where it never
    does.

    Cold (``start`` None): ``_BISECTION_STEPS`` halvings of ``[low, high]``. Warm: a bracket of
    ``_WARM_WIDTH`` around ``start`` (the last hour's price), moved and doubled where it does
    not hold the answer, then halved to ``_WARM_TOLERANCE``. Each row's bracket moves and
    halves on its own predicate only, so a campaign's answer does not depend on the batch it
    is solved in.
    """
    if start is None:
        lo, hi, steps = low.copy(), high.copy(), _BISECTION_STEPS
        tolerance = 0.0
    else:
        lo = np.clip(start - 0.5 * _WARM_WIDTH, low, high)
        hi = np.clip(start + 0.5 * _WARM_WIDTH, low, high)
        width = np.full_like(lo, _WARM_WIDTH)
        while True:
            down = (lo > low) & predicate(lo)  # the answer lies below lo
            up = ~down & (hi < high) & ~predicate(hi)  # the answer lies above hi
            if not (down.any() or up.any()):
                break
            width = np.where(down | up, 2.0 * width, width)
            hi, lo = np.where(down, lo, hi), np.where(down, np.maximum(lo - width, low), lo)
            lo, hi = np.where(up, hi, lo), np.where(up, np.minimum(hi + width, high), hi)
        steps = int(np.ceil(np.log2(max(float((hi - lo).max()), 1e-12) / _WARM_TOLERANCE)))
        tolerance = _WARM_TOLERANCE
    at_low = lo <= low
    ok_low = at_low & predicate(lo) if at_low.any() else at_low
    for _ in range(max(steps, 0)):
        mid = 0.5 * (lo + hi)
        ok = predicate(mid)
        halve = hi - lo >= tolerance  # rows at their tolerance stop (the same step on any batch)
        hi = np.where(halve & ok, mid, hi)
        lo = np.where(halve & ~ok, mid, lo)
    return np.where(ok_low, lo, hi)


def channel_delays(params: CampaignParams) -> tuple[np.ndarray, np.ndarray]:
    """The delay model of every channel-campaign, ``(n, k)`` each: the share of purchases that
    arrives at once (``immediate_frac * immediate_mult``, at most 1) and the hazard per hour of
    the rest (``delay_hazard_per_hour / delay_mult``, at most 1), as the core draws them."""
    immediate = params.immediate_frac[:, None] * channel_array("immediate_mult", params.channels)
    hazard = params.delay_hazard_per_hour[:, None] / channel_array("delay_mult", params.channels)
    return np.minimum(immediate, 1.0), np.minimum(hazard, 1.0)


def presale_warmup(params: CampaignParams) -> np.ndarray:
    """``(n, H)`` bool: the hours of a pre-sale's warm-up, whose purchases are deposits."""
    hours = np.arange(params.horizon_hours)
    start = params.presale_start_hour[:, None]
    return (start - params.presale_warmup_hours[:, None] <= hours) & (hours < start)


def deposits_attributed(params: CampaignParams) -> np.ndarray:
    """``(n,)`` bool: whether a pre-sale's deposits arrive within the attribution window (the
    event opens at most ``attribution_window_hours`` after the last hour)."""
    last = params.horizon_hours - 1
    return params.presale_start_hour <= last + params.attribution_window_hours


def attributed_fracs(params: CampaignParams) -> np.ndarray:
    """``(n, H, k)`` expected share of a channel-hour's purchases attributed by the end of the
    window.

    A purchase in hour ``t`` on channel ``k`` arrives at once with probability ``i_k``,
    otherwise with hazard ``h_k`` in each of the ``H - 1 - t`` later hours, and at the end
    within the attribution window ``W`` with probability ``1 - (1 - h_k)^W``
    (:func:`channel_delays`); the rest is never counted:
    ``1 - (1 - i_k) (1 - h_k)^(H - 1 - t) (1 - h_k)^W``. A deposit of a pre-sale's warm-up
    arrives whole when the event opens: 1 if that is within the window, else 0.
    """
    immediate, hazard = channel_delays(params)
    hours_after = (params.horizon_hours - 1 - np.arange(params.horizon_hours))[None, :, None]
    late = (1.0 - immediate[:, None, :]) * (1.0 - hazard[:, None, :]) ** hours_after
    window = params.attribution_window_hours[:, None, None]
    frac = 1.0 - late * (1.0 - hazard[:, None, :]) ** window
    deposit = np.where(deposits_attributed(params), 1.0, 0.0)[:, None, None]
    return np.where(presale_warmup(params)[:, :, None], deposit, frac)


def build_problem(
    params: CampaignParams, markets: dict[str, np.ndarray], pool: np.ndarray
) -> tuple[AllocationProblem, np.ndarray]:
    """The allocation problem of real campaigns given a returning-pool trajectory ``pool (n, H)``.

    Returns the problem and the expected *new-customer* purchases per impression ``(n, H, k)``
    (used to update the pool).
    """
    saturation = pool_saturation(pool, params.pool_half_saturation[:, None])[:, :, None]
    # Without interested customers or fatigue: the static problem (agents/intertemporal.py's twin
    # models them).
    p_buy, p_returning, _ = purchase_probabilities(
        params.cvr_new[:, None, :], params.cvr_returning[:, None, :],
        params.cvr_interested[:, None, :], markets["cvr_mult"],
        channel_array("returning_affinity", params.channels), saturation, 0.0, 0.0,
    )  # fmt: skip
    ctr = params.ctr[:, None, :]
    problem = AllocationProblem(
        volume=markets["volume"],
        max_spend_cny=markets["max_spend_cny"],
        purchases_per_impression=ctr * p_buy,
        price_cny=params.price_cny,
        attributed_frac=attributed_fracs(params),
        sigma=channel_array("price_sigma", params.channels),
        volume_sigma=channel_array("volume_noise_sigma", params.channels),
        commission_frac=channel_array("commission_frac", params.channels),
        budget_cny=params.budget_cny,
        target_roi=params.target_roi,
        reserve_frac=channel_array("reserve_price_frac", params.channels),
        price_impact=channel_array("price_impact", params.channels),
        hill_shape=channel_array("hill_shape", params.channels),
        bid_pricing=np.array([c.per_sale_pricing == "bid" for c in params.channels]),
        commission_min=channel_array("commission_min", params.channels),
        commission_max=channel_array("commission_max", params.channels),
        commission_elasticity=channel_array("commission_elasticity", params.channels),
    )
    return problem, ctr * (p_buy - p_returning)


def expected_pool(params: CampaignParams, new_purchases: np.ndarray) -> np.ndarray:
    """Returning pool ``(n, H)`` at the start of each hour given new-customer purchases ``(n, H)``.

    New customers join the pool when their conversion arrives (same delay model as the core).
    """
    n, horizon = new_purchases.shape
    imm, h = params.immediate_frac, params.delay_hazard_per_hour
    pool = np.empty((n, horizon))
    current, pending = params.returning_pool_init.astype(np.float64).copy(), np.zeros(n)
    for t in range(horizon):  # a recursion over time, vectorized over campaigns
        pool[:, t] = current
        arrived = imm * new_purchases[:, t] + h * pending
        pending = pending * (1.0 - h) + (1.0 - imm) * new_purchases[:, t]
        current = current + arrived
    return pool


def plan_problem(
    params: CampaignParams, markets: dict[str, np.ndarray], pool_iterations: int = 2
) -> tuple[AllocationProblem, dict[str, np.ndarray]]:
    """The allocation problem of campaigns facing ``markets`` (as ``hourly_markets`` returns)
    with the expected returning-pool trajectory of its own plan, and that plan: ``alloc_cny
    (n, H, k)`` (spend per paid channel-hour; allocation of pay-per-sale channels), ``theta
    (n,)``, ``expected_gmv_cny (n,)`` and ``expected_spend_cny (n,)``.

    The pool and the plan are a fixed point: plan -> expected pool -> plan, ``pool_iterations``
    times (two or three passes converge), each pass after the first warm-started from the last
    one's price.
    """
    pool = np.repeat(params.returning_pool_init[:, None], params.horizon_hours, axis=1)
    log_theta = None
    for _ in range(max(pool_iterations, 1)):
        problem, new_per_impression = build_problem(params, markets, pool)
        alloc, theta = solve_allocation(problem, log_theta_start=log_theta)
        log_theta = np.log(theta)
        # New customers in proportion to the expected purchases.
        gmv, _ = expected_response(alloc, problem)
        new_share = new_per_impression / np.maximum(problem.purchases_per_impression, 1e-300)
        new_purchases = (gmv / problem.gmv_per_purchase_cny * new_share).sum(axis=2)
        pool = expected_pool(params, new_purchases)
    problem, _ = build_problem(params, markets, pool)
    alloc, theta = solve_allocation(problem, log_theta_start=log_theta)
    gmv, cost = expected_response(alloc, problem)
    return problem, {
        "alloc_cny": alloc,
        "theta": theta,
        "expected_gmv_cny": gmv.sum(axis=(1, 2)),
        "expected_spend_cny": cost.sum(axis=(1, 2)),
    }


def within_budget(
    alloc_cny: np.ndarray, budget_left_cny: np.ndarray, per_sale: np.ndarray
) -> np.ndarray:
    """An hour's planned allocation ``(n, k)`` as a spend request within ``budget_left_cny (n,)``.

    Paid channels get their planned spend; pay-per-sale channels (``per_sale`` ``(k,)`` bool)
    their planned allocation, reduced so that the request stays within the budget left after
    the paid channels.
    """
    paid_total = np.where(per_sale, 0.0, alloc_cny).sum(axis=1)
    room = np.maximum(budget_left_cny - paid_total, 0.0)
    per_sale_total = np.maximum(np.where(per_sale, alloc_cny, 0.0).sum(axis=1), 1e-12)
    shrink = np.minimum(room / per_sale_total, 1.0)
    return np.where(per_sale, alloc_cny * shrink[:, None], alloc_cny)
