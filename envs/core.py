"""Batched simulator core: steps ``n_envs`` campaigns at once over ``(n_envs, n_channels)`` arrays.

The dynamics live in one compiled function (numba), :func:`simulate_campaigns`: a pure function
of the campaign parameters, the state, the spend requests and the hour, stepping a chunk of
campaigns in two passes (what can run in SIMD lanes, then the sequential draws; see
docs/simulator.md section 9). Numpy vectorization alone cannot reach the speed targets: one
step needs ~150 array operations, each costing a microsecond of call overhead even for one
campaign, and the exact small-count binomial draws need data-dependent loops. Every view (the
single ``gymnasium.Env``, the gymnasium ``VectorEnv``, the SB3 ``VecEnv``, the oracle) goes
through :class:`~budgetgym.envs.campaigns.BatchedCampaigns`, which adds actions, observations and
rewards, and runs all of it for every campaign in one parallel loop per hour.

Randomness is counter-based (see ``random.py``): the uniform of (campaign, hour, stream, channel)
is ``splitmix64(key[campaign] ^ splitmix64(hour * 4096 + stream * n_channels + channel))``, so
a campaign's trajectory does not depend on its batch, and the market it meets (volume, prices)
does not depend on the policy.

Units: money in CNY (``_cny``), time in hours, counts are integer-valued float64.
docs/simulator.md states the model with its equations.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import types
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba.core import types as nbtypes
from numba.extending import intrinsic

from budgetgym.envs import random as crn
from budgetgym.envs.channels import (
    CHANNEL_NAMES,
    DEFAULT_CHANNELS,
    HOURS_PER_WEEK,
    ChannelSpec,
    channel_array,
)
from budgetgym.envs.features import action_dim
from budgetgym.envs.scenarios import CampaignParams

N_CHANNELS = len(CHANNEL_NAMES)
ACTION_DIM = action_dim(N_CHANNELS)
MAX_PACE_MULT = 5.0  # action[0] = +1 spends 5x the even-pacing rate
SHARE_TEMPERATURE = 3.0  # action logits are multiplied by this before the softmax
_LN4 = math.log(4.0)  # the pace 4**a0 is computed as exp(a0 ln 4)
MAX_WIN_FRAC = 0.95  # spend can buy at most this share of a channel-hour's market
CVR_CAP = 0.95  # a click buys with at most this probability, whatever the calendar's multiplier
#: Won share of a channel-hour at which an S-shaped response (``hill_shape`` > 1) has the
#: channel's own CTR: below it fewer clicks per impression, above it more.
HILL_REFERENCE_SHARE = 0.5
#: A channel's ``billing`` as the kernels read it (``ChannelTable.billing``).
BILLING_CODES = ("cpc", "cpm", "per_sale")
BILLING_CPC, BILLING_CPM, BILLING_PER_SALE = (float(i) for i in range(len(BILLING_CODES)))
REWARD_MODES = ("gmv", "gmv_roi_penalty", "profit")
DYNAMICS_DOMAIN = 2

# Metrics tracked per channel, hourly and cumulatively: the first axis of CampaignState arrays.
HOURLY_METRICS = ("spend_cny", "impressions", "clicks", "conversions", "new_customers", "gmv_cny")
SPEND, IMPRESSIONS, CLICKS, CONVERSIONS, NEW_CUSTOMERS, GMV = range(len(HOURLY_METRICS))

# Stream indices of the per-step counter-based draws.
_S_VOLUME, _S_PRICE, _S_CLICKS, _S_PURCHASES, _S_RETURNING_BUYERS = range(5)
_S_ORDER_VALUE, _S_IMMEDIATE, _S_ARRIVAL, _S_SETTLE, _S_INTERESTED_BUYERS = range(5, 10)
_S_CVR_DRIFT = 10  # one draw per campaign-hour, in the first channel's cell
_N_STREAMS = 11

PRICE_SIGMA = channel_array("price_sigma")  # the reference six's, the default of win_curve


class ChannelTable(NamedTuple):
    """What the compiled kernels read of each channel: ``(n_channels,)`` float64 arrays.

    Constants from channels.py and scenarios.py reach the compiled kernels as arguments, never
    as globals: numba's on-disk cache is keyed on this file alone, so a global edited elsewhere
    would be silently stale.
    """

    price_sigma: np.ndarray  # log-sd of the competing prices (shape of the win curve)
    volume_noise_sigma: np.ndarray  # log-sd of the hourly volume
    diurnal_strength: np.ndarray  # 0: flat volume, 1: the full daily profile
    returning_affinity: np.ndarray  # maximum share of clicks from the store's customers
    billing: np.ndarray  # BILLING_CPC, BILLING_CPM or BILLING_PER_SALE
    commission_frac: np.ndarray  # commission per unit of GMV (> 0: paid per sale)
    launch_support: np.ndarray  # 1.0 where the platform's launch boost reaches the channel
    mean_price_factor: np.ndarray  # mean over median of the lognormal price, exp(sigma^2 / 2)
    immediate_mult: np.ndarray  # factor on the campaign's immediate share of purchases
    delay_mult: np.ndarray  # factor on the campaign's mean delay (divides the hazard)
    interest_per_click: np.ndarray  # share of non-buying clicks that become interested
    interest_affinity: np.ndarray  # largest share of non-returning clicks from the interested
    fatigue_strength: np.ndarray  # CTR / (1 + strength * fatigue)
    fatigue_recovery: np.ndarray  # share of the fatigue that wears off per hour
    # Competition (docs/simulator.md §2): the reserve price's constants (see
    # ``reserve_constants``), the own-spend price impact and the response's Hill shape.
    reserve_share: np.ndarray  # cost share of the impressions below the reserve, at the reserve
    reserve_quantile: np.ndarray  # their cost share at their own prices
    reserve_won_per_share: np.ndarray  # won share per cost share below the reserve
    price_impact: np.ndarray  # price level times 1 + impact * spend / max_spend
    hill_shape: np.ndarray  # CTR times the won share ** (hill_shape - 1)
    # ``(n_channels, 168)``: factors of each hour of the week on volume (the live broadcast
    # schedule) and on price (rival depletion through the day).
    clock_volume: np.ndarray
    clock_price: np.ndarray
    bid_pricing: np.ndarray  # 1.0 where the allocation sets the commission rate (per_sale bid)
    commission_min: np.ndarray  # lowest commission rate of a bid channel
    commission_max: np.ndarray  # highest commission rate of a bid channel
    commission_elasticity: np.ndarray  # promoters' traffic grows as rate ** elasticity


def reserve_constants(
    reserve_frac: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A reserve price ``rho`` times the median price of lognormal prices of log-sd ``sigma``
    (``(k,)`` arrays), in units of the market's cost ``M = V m exp(sigma^2 / 2)``:
    ``c0 = rho exp(-sigma^2 / 2) Phi(ln rho / sigma)``, the cost of every impression priced
    below the reserve paid at the reserve; ``q = Phi(ln rho / sigma - sigma)``, their cost at
    their own prices; ``K = exp(sigma^2 / 2) / rho``, the won share per cost share below the
    reserve. All 0 without a reserve (``rho = 0``)."""
    rho, sigma = np.asarray(reserve_frac, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
    on = rho > 0.0
    with np.errstate(divide="ignore"):
        y = np.where(on, np.log(np.where(on, rho, 1.0)) / sigma, -np.inf)
    ndtr = np.vectorize(lambda v: 0.5 * math.erfc(-v / math.sqrt(2.0)), otypes=[np.float64])
    share = np.where(on, rho * np.exp(-0.5 * sigma**2) * ndtr(y), 0.0)
    quantile = np.where(on, ndtr(y - sigma), 0.0)
    won = np.where(on, np.exp(0.5 * sigma**2) / np.where(on, rho, 1.0), 0.0)
    return share, quantile, won


def clock_multipliers(channels: tuple[ChannelSpec, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Factors ``(k, 168)`` of each hour of the week on each channel's volume (off air:
    ``broadcast.off_air_traffic``; 1 without a schedule) and price (rival depletion,
    ``1 + delta (23 - 2 h) / 23`` at hour of day ``h``: mean 1 over the day)."""
    hour_of_day = np.arange(HOURS_PER_WEEK) % 24
    volume = np.ones((len(channels), HOURS_PER_WEEK))
    for k, c in enumerate(channels):
        if c.broadcast is not None:
            volume[k] = np.where(c.broadcast.on_air(), 1.0, c.broadcast.off_air_traffic)
    depletion = channel_array("rival_depletion", channels)[:, None]
    price = 1.0 + depletion * ((23.0 - 2.0 * hour_of_day) / 23.0)
    return volume, price


def channel_table(channels: tuple[ChannelSpec, ...] = DEFAULT_CHANNELS) -> ChannelTable:
    """The kernels' :class:`ChannelTable` of a channel list."""
    sigma = channel_array("price_sigma", channels)
    reserve_share, reserve_quantile, won_per_share = reserve_constants(
        channel_array("reserve_price_frac", channels), sigma
    )
    clock_volume, clock_price = clock_multipliers(channels)
    launch = np.array([c.launch_support for c in channels], dtype=np.float64)
    return ChannelTable(
        price_sigma=sigma,
        volume_noise_sigma=channel_array("volume_noise_sigma", channels),
        diurnal_strength=channel_array("diurnal_strength", channels),
        returning_affinity=channel_array("returning_affinity", channels),
        billing=np.array([BILLING_CODES.index(c.billing) for c in channels], dtype=np.float64),
        commission_frac=channel_array("commission_frac", channels),
        launch_support=launch,
        mean_price_factor=np.exp(0.5 * sigma**2),
        immediate_mult=channel_array("immediate_mult", channels),
        delay_mult=channel_array("delay_mult", channels),
        interest_per_click=channel_array("interest_per_click", channels),
        interest_affinity=channel_array("interest_affinity", channels),
        fatigue_strength=channel_array("fatigue_strength", channels),
        fatigue_recovery=channel_array("fatigue_recovery", channels),
        reserve_share=reserve_share,
        reserve_quantile=reserve_quantile,
        reserve_won_per_share=won_per_share,
        price_impact=channel_array("price_impact", channels),
        hill_shape=channel_array("hill_shape", channels),
        clock_volume=clock_volume,
        clock_price=clock_price,
        bid_pricing=np.array([c.per_sale_pricing == "bid" for c in channels], dtype=np.float64),
        commission_min=channel_array("commission_min", channels),
        commission_max=channel_array("commission_max", channels),
        commission_elasticity=channel_array("commission_elasticity", channels),
    )


# Memory of the observed recent spend: spend whose conversions have mostly not arrived yet at the
# reference delay (24 h mean), so that observed ROI can be corrected for attribution lag.
RECENT_SPEND_DECAY = 1.0 - 1.0 / 24.0
ORDER_VALUE_SIGMA = 0.3  # log-sd of one order's value around the product price
PRICE_NOISE_SIGMA = 0.1  # log-sd of the hourly price level


def action_to_spend_request(
    action: np.ndarray, budget_left_cny: np.ndarray, hours_left: int
) -> np.ndarray:
    """Map actions in ``[-1, 1]`` to the spend requested per channel this hour.

    ``action[:, 0]`` sets the pace relative to even pacing of what is left,
    ``pace = (4**a0 - 1/4) / (3/4)``: -1 spends nothing, 0 spends ``budget_left / hours_left``,
    +1 spends five times that. ``action[:, 1:]`` are channel logits; the split is
    ``softmax(3 * logits)``, so one channel can take 99.9% of the hour's spend.

    Args:
        action: ``(n_envs, n_channels + 1)`` float64.
        budget_left_cny: ``(n_envs,)``.
        hours_left: hours until the end of the horizon, including this one (>= 1).

    Returns:
        ``(n_envs, n_channels)`` requested spend in CNY, summing to at most ``budget_left_cny``.

    Raises:
        ValueError: NaN/inf in the actions, or values outside ``[-1, 1]`` (never clipped).
    """
    action = np.ascontiguousarray(action, dtype=np.float64)
    check_actions(action)
    request = np.empty((action.shape[0], action.shape[1] - 1))
    _requests_kernel(action, budget_left_cny, float(hours_left), request)
    return request


def check_actions(action: np.ndarray) -> None:
    """Raise ``ValueError`` for NaN/inf or values outside ``[-1, 1]`` in ``(n, dim)`` actions.

    The bounds are exact, with no tolerance: float32 holds -1 and 1 exactly, so actions clipped
    in float32 (SB3's ``predict``, the ONNX export, the residual wrapper) or in float64 are
    inside. The message names the first offending entry and its exact value.
    """
    status = _check_actions_kernel(action)
    if status == 0:
        return
    bad = ~np.isfinite(action) if status == 1 else np.abs(action) > 1.0
    where = np.argwhere(bad)
    row, col = where[0]
    first = f"actions[{row}, {col}] = {float(action[row, col])!r}"
    more = f" (and {len(where) - 1} more)" if len(where) > 1 else ""
    if status == 1:
        raise ValueError(f"Actions contain NaN or inf: {first}{more}.")
    raise ValueError(f"Actions must lie in [-1, 1] (they are never clipped): {first}{more}.")


@numba.njit(cache=True, error_model="numpy")
def _check_actions_kernel(action):
    """Returns 0 (ok), 1 (NaN/inf somewhere) or 2 (finite, but out of [-1, 1] somewhere)."""
    status = 0
    for a in action.ravel():
        if not np.isfinite(a):
            return 1
        if abs(a) > 1.0:
            status = 2
    return status


@numba.njit(cache=True, error_model="numpy")
def _requests_kernel(action, budget_left, hours_left, out):
    for i in range(action.shape[0]):
        action_row_to_request(action, i, budget_left[i], hours_left, out)


@numba.njit(cache=True, error_model="numpy", inline="always")
def action_row_to_request(action, i, budget_left, hours_left, out):
    """Fill ``out[i]`` with the spend request of the checked action ``action[i]`` (see above)."""
    dim = action.shape[1]
    a0 = min(max(action[i, 0], -1.0), 1.0)
    # The pace mapping; :func:`pace_action` is its inverse.
    pace = (inline_exp(a0 * _LN4) - 0.25) / 0.75
    total = max(min(pace * budget_left / hours_left, budget_left), 0.0)
    top = -np.inf
    for j in range(1, dim):
        top = max(top, action[i, j])
    norm = 0.0
    for j in range(1, dim):
        w = inline_exp(SHARE_TEMPERATURE * (action[i, j] - top))
        out[i, j - 1] = w
        norm += w
    for j in range(1, dim):
        out[i, j - 1] *= total / norm


def pace_action(pace: np.ndarray) -> np.ndarray:
    """``action[:, 0]`` that spends ``pace`` times even pacing (inverse of the pace mapping):
    ``log4(0.75 pace + 0.25)``, for ``pace`` in ``[0, MAX_PACE_MULT]`` (outside: ``ValueError``).
    """
    pace = np.asarray(pace, dtype=np.float64)
    if not (np.isfinite(pace).all() and (pace >= 0).all() and (pace <= MAX_PACE_MULT).all()):
        raise ValueError(f"pace must lie in [0, {MAX_PACE_MULT}], got {pace}.")
    return np.clip(np.log(0.75 * pace + 0.25) / _LN4, -1.0, 1.0)


def share_logits(shares: np.ndarray) -> np.ndarray:
    """Channel logits ``(n, k)`` whose split ``softmax(SHARE_TEMPERATURE * logits)`` is
    ``shares (n, k)`` (rows >= 0 with a positive sum; normalized here).

    The largest share gets logit 1; a share below ``exp(-2 * SHARE_TEMPERATURE)`` (0.25%) of the
    largest gets -1, the smallest the action can express, so such a split is approximated.
    """
    shares = np.asarray(shares, dtype=np.float64)
    if shares.ndim != 2 or not np.isfinite(shares).all() or (shares < 0).any():
        raise ValueError("shares must be a finite (n, k) array >= 0.")
    total = shares.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise ValueError("Every row of shares needs a positive sum.")
    with np.errstate(divide="ignore"):
        log_share = np.log(shares / total)
    logits = 1.0 + (log_share - log_share.max(axis=1, keepdims=True)) / SHARE_TEMPERATURE
    return np.clip(logits, -1.0, 1.0)


def spend_to_action(
    spend_cny: np.ndarray, budget_left_cny: np.ndarray, hours_left: int
) -> np.ndarray:
    """The action ``(n, k + 1)`` that requests ``spend_cny (n, k)`` this hour: the inverse of
    :func:`action_to_spend_request` (up to the shares :func:`share_logits` approximates).

    The pace is the total over even pacing ``budget_left / hours_left`` (at most
    ``MAX_PACE_MULT``); a row that spends nothing gets pace -1 and equal logits.

    Raises:
        ValueError: negative or non-finite spend, or a total above ``MAX_PACE_MULT`` times even
            pacing (not expressible).
    """
    spend_cny = np.asarray(spend_cny, dtype=np.float64)
    budget_left_cny = np.asarray(budget_left_cny, dtype=np.float64)
    if spend_cny.ndim != 2 or not np.isfinite(spend_cny).all() or (spend_cny < 0).any():
        raise ValueError("spend_cny must be a finite (n, k) array >= 0.")
    total = spend_cny.sum(axis=1)
    even = budget_left_cny / hours_left
    pace = np.divide(total, even, out=np.zeros_like(total), where=even > 0)
    if (pace > MAX_PACE_MULT * (1.0 + 1e-9)).any():
        raise ValueError(
            f"A spend of more than {MAX_PACE_MULT} times even pacing has no action: "
            f"pace {pace.max()!r}."
        )
    action = np.zeros((spend_cny.shape[0], spend_cny.shape[1] + 1))
    action[:, 0] = pace_action(np.minimum(pace, MAX_PACE_MULT))
    spends = total > 0
    if spends.any():
        action[spends, 1:] = share_logits(spend_cny[spends])
    return action


@dataclass
class CampaignState:
    """What changes during an episode.

    ``last`` and ``totals`` are ``(len(HOURLY_METRICS), n_envs, n_channels)``: the last hour's
    metrics (lagged inputs of the observation) and the totals since reset, with conversions and
    GMV attributed when they arrive (what the advertiser sees).
    """

    hour: int
    keys: np.ndarray  # (n,) uint64 counter-based random keys
    budget_left_cny: np.ndarray  # (n,)
    returning_pool: np.ndarray  # (n,) store customers who can come back
    interest: np.ndarray  # (n,) interested customers (AIPL), hidden
    fatigue: np.ndarray  # (n, k) creative fatigue: recent impressions in hours of volume, hidden
    cvr_drift_log: np.ndarray  # (n,) log of the drift's factor on every CVR, hidden
    pending_conversions: np.ndarray  # (n, k) purchases made, not yet arrived
    pending_new_customers: np.ndarray  # (n, k) of which by new customers
    pending_gmv_cny: np.ndarray  # (n, k)
    # Pre-sale deposits: purchases of the warm-up, arriving in the event's first hour.
    deposit_conversions: np.ndarray  # (n, k)
    deposit_new_customers: np.ndarray  # (n, k)
    deposit_gmv_cny: np.ndarray  # (n, k)
    last: np.ndarray  # (6, n, k)
    totals: np.ndarray  # (6, n, k)
    recent_spend_cny: np.ndarray  # (n, k) spend with a 24 h exponential memory
    # Conversions the attribution window did not reach at the end (reported, never counted).
    unattributed_conversions: np.ndarray  # (n,)
    unattributed_gmv_cny: np.ndarray  # (n,)

    @property
    def spend_cny(self) -> np.ndarray:
        """Cumulative spend per channel ``(n, k)``."""
        return self.totals[SPEND]

    @property
    def gmv_cny(self) -> np.ndarray:
        """Cumulative attributed GMV per channel ``(n, k)``."""
        return self.totals[GMV]


def initial_state(params: CampaignParams) -> CampaignState:
    """State at hour 0: full budget, nothing pending, the scenario's customer pool."""
    n, k = params.n_envs, params.n_channels
    return CampaignState(
        hour=0,
        keys=crn.campaign_keys(params.seeds, DYNAMICS_DOMAIN),
        budget_left_cny=params.budget_cny.copy(),
        returning_pool=params.returning_pool_init.copy(),
        interest=np.zeros(n),
        fatigue=np.zeros((n, k)),
        cvr_drift_log=np.zeros(n),
        pending_conversions=np.zeros((n, k)),
        pending_new_customers=np.zeros((n, k)),
        pending_gmv_cny=np.zeros((n, k)),
        deposit_conversions=np.zeros((n, k)),
        deposit_new_customers=np.zeros((n, k)),
        deposit_gmv_cny=np.zeros((n, k)),
        last=np.zeros((len(HOURLY_METRICS), n, k)),
        totals=np.zeros((len(HOURLY_METRICS), n, k)),
        recent_spend_cny=np.zeros((n, k)),
        unattributed_conversions=np.zeros(n),
        unattributed_gmv_cny=np.zeros(n),
    )


# ----------------------------------------------------------------------------------------------
# exp and log in plain float64 arithmetic, inlined into the kernels. glibc's exp and log took ~30%
# of a step: opaque calls, one after another, that keep the loops around them from using SIMD.
# These polynomials are inlined, scheduled and vectorized by the compiler. They are IEEE
# arithmetic with explicit fused multiply-adds (one rounding, and numba never fuses a * b + c
# on its own without ``fastmath``), so they give the same bits in a SIMD lane as in scalar code
# and a campaign's trajectory still does not depend on its batch. Within 2 ulp of glibc's
# (tests/envs/test_core.py). Here, not in a module of their own: numba's cache of a kernel
# checks only the kernel's own file.


@intrinsic
def _float_bits(typingctx, x):
    """The IEEE-754 bits of a float64 as an int64 (a register move, no memory)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return nbtypes.int64(nbtypes.float64), codegen


@intrinsic
def _bits_float(typingctx, bits):
    """The float64 whose IEEE-754 bits are the int64 ``bits``."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return nbtypes.float64(nbtypes.int64), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (IEEE-754 fusedMultiplyAdd: the same bits on any machine)."""

    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        fma = builder.module.declare_intrinsic(
            "llvm.fma", [double], ir.FunctionType(double, [double, double, double])
        )
        return builder.call(fma, args)

    return nbtypes.float64(nbtypes.float64, nbtypes.float64, nbtypes.float64), codegen


@intrinsic
def _sqrt(typingctx, x):
    """Square root (IEEE-754, correctly rounded) as an LLVM intrinsic: ``math.sqrt`` compiles to
    a libm call that loops cannot vectorize."""

    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        signature = ir.FunctionType(double, [double])
        sqrt = builder.module.declare_intrinsic("llvm.sqrt", [double], signature)
        return builder.call(sqrt, args)

    return nbtypes.float64(nbtypes.float64), codegen


_EXP_TABLE_BITS = 7
_EXP_TABLE_SIZE = 1 << _EXP_TABLE_BITS
#: Bits of 2^(j/128), j < 128; adding n << 52 to them multiplies by 2^n.
_EXP2_TABLE_BITS = np.array([2.0 ** (j / _EXP_TABLE_SIZE) for j in range(_EXP_TABLE_SIZE)]).view(
    np.int64
)
_INV_LN2_N = _EXP_TABLE_SIZE / math.log(2.0)
_LN2_HI = 6.93147180369123816490e-01  # fdlibm's split of ln2: n * _LN2_HI is exact for |n| < 2^20
_LN2_LO = 1.90821492927058770002e-10
_LN2_N_HI, _LN2_N_LO = _LN2_HI / _EXP_TABLE_SIZE, _LN2_LO / _EXP_TABLE_SIZE  # exact scalings
_ROUND_SHIFT = 1.5 * 2.0**52  # adding it rounds to an integer, held in the low bits
_ROUND_SHIFT_BITS = 0x4338000000000000
_EXP_MAX = 709.0  # exp(709) < max float64; above: inf
_EXP_MIN = -708.0  # exp(-708) > smallest normal; below: 0 (no subnormal results)


@numba.njit(cache=True, error_model="numpy", inline="always")
def inline_exp(x):
    """``e^x`` for a float64 (inf above 709, 0 below -708, NaN for NaN)."""
    clamped = min(max(x, _EXP_MIN), _EXP_MAX)
    shifted = clamped * _INV_LN2_N + _ROUND_SHIFT
    k = _float_bits(shifted) - _ROUND_SHIFT_BITS  # round(x * 128 / ln2)
    kd = shifted - _ROUND_SHIFT
    r = _fma(kd, -_LN2_N_LO, _fma(kd, -_LN2_N_HI, clamped))  # |r| <= ln2 / 256
    r2 = r * r
    # e^r - 1, Taylor to degree 5 (truncation < 1e-18), evaluated pairwise for a short latency.
    tail = _fma(r2 * r2, _fma(r, 1.0 / 120.0, 1.0 / 24.0), _fma(r2, _fma(r, 1.0 / 6.0, 0.5), r))
    exponent = (k >> _EXP_TABLE_BITS) << 52  # 2^n, added to the exponent bits of 2^(j/128)
    scale = _bits_float(_EXP2_TABLE_BITS[k & (_EXP_TABLE_SIZE - 1)] + exponent)
    result = _fma(scale, tail, scale)  # NaN for NaN: the clamp keeps it
    # Comparisons, not equality tests with inf (which compile to class tests that stop SIMD).
    return np.inf if x >= _EXP_MAX else (0.0 if x < _EXP_MIN else result)


_LOG_TABLE_BITS = 7
_LOG_OFFSET_BITS = 0x3FE6000000000000  # 0.6875: x is reduced to z = x / 2^k in [0.6875, 1.375)


def _log_table() -> tuple[np.ndarray, np.ndarray]:
    """``1/c`` and ``log(c)`` for the 128 intervals of ``z`` indexed by its top mantissa bits
    (``c`` their midpoints; ``c = 1`` on the two intervals next to 1, where ``log`` is small)."""
    size = 1 << _LOG_TABLE_BITS
    edges = (_LOG_OFFSET_BITS + (np.arange(size + 1, dtype=np.int64) << 45)).view(np.float64)
    inv_c = 1.0 / (0.5 * (edges[:-1] + edges[1:]))
    inv_c[(edges[:-1] >= 1.0 - 2.0**-8) & (edges[1:] <= 1.0 + 2.0**-7)] = 1.0
    return inv_c, np.array([-math.log(v) for v in inv_c])


_LOG_INV_C, _LOG_C = _log_table()
_MIN_NORMAL = 2.2250738585072014e-308
_TWO_POW_54 = 2.0**54
_MAX_FLOAT = float(np.finfo(np.float64).max)


@numba.njit(cache=True, error_model="numpy", inline="always")
def inline_log(x):
    """Natural log of a float64 (-inf at 0, NaN below 0 or for NaN, inf at inf)."""
    # Selects, not branches, for the special cases: the loops around stay vectorizable.
    subnormal = x < _MIN_NORMAL
    bits = _float_bits(x * _TWO_POW_54 if subnormal else x)
    offset = bits - _LOG_OFFSET_BITS
    index = (offset >> (52 - _LOG_TABLE_BITS)) & ((1 << _LOG_TABLE_BITS) - 1)
    k = (offset >> 52) - (54 if subnormal else 0)  # x = 2^k z
    z = _bits_float(bits - ((offset >> 52) << 52))
    r = _fma(z, _LOG_INV_C[index], -1.0)  # |r| < 0.008: log(z) = log(1 + r) + log(c)
    r2 = r * r
    # log(1 + r) = r + r^2 q(r), Taylor to degree 9 (truncation < 1e-20), pairwise.
    q = _fma(
        r2 * r2,
        _fma(r2, _fma(r, 1.0 / 9.0, -0.125), _fma(r, 1.0 / 7.0, -1.0 / 6.0)),
        _fma(r2, _fma(r, 0.2, -0.25), _fma(r, 1.0 / 3.0, -0.5)),
    )
    kd = float(k)
    result = (kd * _LN2_HI + _LOG_C[index]) + (r + _fma(r2, q, kd * _LN2_LO))
    if (x > 0.0) & (x <= _MAX_FLOAT):
        return result
    return -np.inf if x == 0.0 else (np.inf if x > _MAX_FLOAT else np.nan)


# ----------------------------------------------------------------------------------------------
# Scalar building blocks, compiled.

_splitmix = numba.njit(cache=True, error_model="numpy", inline="always")(crn.splitmix64_mix)
_bits_to_uniform = numba.njit(cache=True, error_model="numpy", inline="always")(crn.bits_to_uniform)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _uniform(key, counter):
    """Uniform in (0, 1) of one campaign key and one mixed counter (see ``hour_counters``)."""
    return _bits_to_uniform(_splitmix(key ^ counter))


@numba.njit(cache=True, error_model="numpy", inline="always")
def hour_counters(hour, n_channels):
    """Mixed counters of one hour, ``(n_streams, n_channels)``, as ``random.counters``."""
    out = np.empty((_N_STREAMS, n_channels), dtype=np.uint64)
    for stream in range(_N_STREAMS):
        for k in range(n_channels):
            out[stream, k] = _splitmix(
                np.uint64(hour * crn.COUNTER_STRIDE + stream * n_channels + k)
            )
    return out


@numba.njit(cache=True, error_model="numpy")
def hour_profile(hour):
    """Factors of an hour of the week (0: Monday 00:00) shared by every campaign: daily cycle,
    weekend."""
    evening = math.cos(2.0 * math.pi * (hour % 24 - 20) / 24.0)  # peak 20:00, trough 08:00
    weekly = 1.15 if (hour // 24) % 7 >= 5 else 1.0
    return evening, weekly


def week_profile() -> np.ndarray:
    """``(HOURS_PER_WEEK, 2)``: :func:`hour_profile` of every hour of the week, the table the
    kernels index with a campaign's hour of the week (its ``start_hour_of_week`` plus its
    hour)."""
    return np.array([hour_profile(h) for h in range(HOURS_PER_WEEK)])


#: :func:`week_profile`, computed once.
WEEK_PROFILE = week_profile()


@numba.njit(cache=True, error_model="numpy", inline="always")
def week_hour(params, i, hour):
    """Campaign ``i``'s hour of the week (0: Monday 00:00) at its ``hour``."""
    return (hour + params.start_hour_of_week[i]) % HOURS_PER_WEEK


@numba.njit(cache=True, error_model="numpy", inline="always")
def launch_boost(params, i, hour):
    """Campaign ``i``'s launch boost at ``hour``: ``coldstart_boost * exp(-hour / decay)``
    (extra volume, as a share, on channels with launch support)."""
    return params.coldstart_boost[i] * inline_exp(-hour / params.coldstart_decay_hours[i])


# Inverse standard normal CDF: Acklam's rational approximation (relative error < 1.2e-9), with
# a central region and two tails. ``_ndtri`` branches between them (scalar code), ``_ndtri_lanes``
# computes both and selects (vectorized loops); the two give the same bits.
_ACKLAM_LOW = 0.02425


@numba.njit(cache=True, error_model="numpy", inline="always")
def _ndtri_central(p):
    q = p - 0.5
    r = q * q
    num = (
        (
            (
                ((-3.969683028665376e01 * r + 2.209460984245205e02) * r - 2.759285104469687e02) * r
                + 1.383577518672690e02
            )
            * r
            - 3.066479806614716e01
        )
        * r
        + 2.506628277459239e00
    ) * q
    den = (((((-5.447609879822406e01 * r + 1.615858368580409e02) * r - 1.556989798598866e02) * r
             + 6.680131188771972e01) * r - 1.328068155288572e01) * r + 1.0)  # fmt: skip
    return num / den


@numba.njit(cache=True, error_model="numpy", inline="always")
def _ndtri_tail(p):
    q = _sqrt(-2.0 * inline_log(min(p, 1.0 - p)))
    num = (
        (
            ((-7.784894002430293e-03 * q - 3.223964580411365e-01) * q - 2.400758277161838e00) * q
            - 2.549732539343734e00
        )
        * q
        + 4.374664141464968e00
    ) * q + 2.938163982698783e00
    den = (((7.784695709041462e-03 * q + 3.224671290700398e-01) * q + 2.445134137142996e00) * q
           + 3.754408661907416e00) * q + 1.0  # fmt: skip
    x = num / den
    return -x if p > 0.5 else x


@numba.njit(cache=True, error_model="numpy", inline="always")
def _ndtri(p):
    """Inverse standard normal CDF of ``p`` (``-inf`` at 0, ``inf`` at 1)."""
    if p <= 0.0:
        return -np.inf
    if p >= 1.0:
        return np.inf
    if p < _ACKLAM_LOW or p > 1.0 - _ACKLAM_LOW:
        return _ndtri_tail(p)
    return _ndtri_central(p)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _ndtri_lanes(p):
    """``_ndtri`` for ``p`` in (0, 1), without branches."""
    tail = p < _ACKLAM_LOW or p > 1.0 - _ACKLAM_LOW
    return _ndtri_tail(p) if tail else _ndtri_central(p)


@numba.njit(cache=True, error_model="numpy", inline="always")
def normal_cdf(x):
    """The standard normal CDF of a scalar, for compiled code (scipy's ``ndtr`` within a few
    ulp)."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


@numba.njit(cache=True, error_model="numpy", inline="always")
def _binomial(n, p, u):
    """Binomial(n, p) by inversion of one uniform: exact (sequential search) for means < 12,
    normal approximation with continuity correction above (error far below the model's noise)."""
    return _binomial_draw(n, p, _log_q(p), u, _Z_LAZY)


_Z_LAZY = np.nan  # ``z`` not given: computed only if the normal approximation needs it


@numba.njit(cache=True, error_model="numpy", inline="always")
def _log_q(p):
    """``log(1 - p)``, by the inlined ``log`` (vectorizable): the extra precision ``log1p``
    keeps for tiny ``p`` (relative 1e-16 / p) is far below what the draws need."""
    return inline_log(1.0 - p) if p < 1.0 else -np.inf


@numba.njit(cache=True, error_model="numpy", inline="always")
def _binomial_draw(n, p, log_q, u, z):
    """``_binomial`` given ``log_q = log(1 - p)`` and ``z = _ndtri(u)`` (computed beforehand in
    SIMD lanes), or ``_Z_LAZY``."""
    if n <= 0.0 or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return n
    mean = n * p
    if mean >= 12.0:
        if z != z:  # _Z_LAZY
            z = _ndtri(u)
        x = np.floor(mean + _sqrt(mean * (1.0 - p)) * z + 0.5)
        return min(max(x, 0.0), n)
    pmf = inline_exp(n * log_q)
    cdf = pmf
    odds = p / (1.0 - p)
    k = 0.0
    while u > cdf and k < n and pmf > 1e-300:
        pmf *= (n - k) / (k + 1.0) * odds
        k += 1.0
        cdf += pmf
    return k


@numba.njit(cache=True, error_model="numpy", inline="always")
def _win_impressions(spend, volume, max_spend, sigma):
    """Expected impressions won: ``volume * Phi(Phi^-1(spend / max_spend) + sigma)``."""
    if spend <= 0.0 or max_spend <= 0.0:
        return 0.0
    z = min(spend / max_spend, MAX_WIN_FRAC)
    return volume * normal_cdf(_ndtri(z) + sigma)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _win_quantile(share, sigma, reserve_share, reserve_quantile, won_per_share, impact):
    """``Phi^-1`` of the won share of a channel-hour whose allocation is ``share`` of the
    market's cost (at most ``MAX_WIN_FRAC``), with competition (docs/simulator.md §2): the own
    spend raises the price level by ``1 + impact * share``; below the reserve's cost share
    every impression costs the reserve (the won share is linear in spend), above it the
    lognormal landscape. Without either it is ``Phi^-1(share) + sigma``, to the bit. Without
    branches: it runs in SIMD lanes."""
    base = share / (1.0 + impact * share)
    rationed = base < reserve_share
    arg = base * won_per_share if rationed else (base - reserve_share) + reserve_quantile
    return _ndtri_lanes(arg) + (0.0 if rationed else sigma)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _competitive_impressions(
    spend, volume, max_spend, sigma, reserve_share, reserve_quantile, won_per_share, impact
):  # fmt: skip
    """Expected impressions won with competition (see :func:`_win_quantile`)."""
    if spend <= 0.0 or max_spend <= 0.0:
        return 0.0
    share = min(spend / max_spend, MAX_WIN_FRAC)
    z = _win_quantile(share, sigma, reserve_share, reserve_quantile, won_per_share, impact)
    return volume * normal_cdf(z)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _channel_market(ch, counter, k):
    """What every campaign's market cell in channel ``k`` shares this hour, as a tuple of scalars
    (an array passed into the cell's loop would be reference-counted at every campaign)."""
    return (
        ch.launch_support[k], ch.volume_noise_sigma[k], ch.diurnal_strength[k],
        ch.mean_price_factor[k], counter[_S_VOLUME, k], counter[_S_PRICE, k],
    )  # fmt: skip


@numba.njit(cache=True, error_model="numpy", inline="always")
def _market_cell(
    profile, channel, key, volume_ref, price_ref, traffic, price_mult, cvr, boost, noise
):  # fmt: skip
    """Volume, cost of the whole market and CVR multiplier of one channel-hour (``channel``
    from ``_channel_market``; ``traffic``, ``price_mult``, ``cvr`` the campaign-hour's calendar
    multipliers, ``boost`` its :func:`launch_boost`). ``noise`` scales the hour's volume and
    price noise: 1.0 for the realized market, 0.0 for the certainty-equivalent one (volume
    noise at its mean 1, price noise at its median 1). Without branches: it runs in SIMD
    lanes."""
    evening, weekly = profile
    boosted, vs, diurnal, mean_price, counter_volume, counter_price = channel
    launch = 1.0 + boost * boosted
    vs = vs * noise
    volume_noise = inline_exp(vs * _ndtri_lanes(_uniform(key, counter_volume)) - 0.5 * vs * vs)
    volume = volume_ref * (1.0 + 0.6 * diurnal * evening) * weekly * traffic
    volume *= launch * volume_noise
    price_noise = PRICE_NOISE_SIGMA * noise * _ndtri_lanes(_uniform(key, counter_price))
    price = price_ref * (1.0 + 0.25 * evening) * price_mult * inline_exp(price_noise)
    return volume, volume * price * mean_price, cvr


@numba.njit(cache=True, error_model="numpy", inline="always")
def _split(count, new, gmv, taken):
    """Of ``count`` conversions take ``taken``: new customers among them (rounded), GMV pro rata."""
    if taken >= count:
        return new, gmv
    if count <= 0.0:
        return 0.0, 0.0
    ratio = taken / count
    new_taken = min(max(np.floor(new * ratio + 0.5), taken - (count - new)), min(new, taken))
    return new_taken, gmv * ratio


class KernelParams(NamedTuple):
    """The campaign parameters the compiled kernels read (the fields of
    :class:`~budgetgym.envs.scenarios.CampaignParams` of the same names)."""

    budget_cny: np.ndarray  # (n,)
    target_roi: np.ndarray  # (n,)
    price_cny: np.ndarray  # (n,)
    volume_per_hour: np.ndarray  # (n, k)
    price_median_cny: np.ndarray  # (n, k)
    ctr: np.ndarray  # (n, k)
    cvr_new: np.ndarray  # (n, k)
    cvr_returning: np.ndarray  # (n, k)
    cvr_interested: np.ndarray  # (n, k)
    immediate_frac: np.ndarray  # (n,)
    delay_hazard_per_hour: np.ndarray  # (n,)
    attribution_window_hours: np.ndarray  # (n,)
    pool_half_saturation: np.ndarray  # (n,)
    interest_retention: np.ndarray  # (n,)
    interest_half_saturation: np.ndarray  # (n,)
    cvr_drift_sigma: np.ndarray  # (n,)
    cvr_drift_persistence: np.ndarray  # (n,)
    event_start_hour: np.ndarray  # (n,) int64
    event_length_hours: np.ndarray  # (n,) int64
    warmup_hours: np.ndarray  # (n,) int64
    presale_start_hour: np.ndarray  # (n,) int64
    presale_warmup_hours: np.ndarray  # (n,) int64
    hourly_traffic_mult: np.ndarray  # (n, horizon)
    hourly_price_mult: np.ndarray  # (n, horizon)
    hourly_cvr_mult: np.ndarray  # (n, horizon)
    coldstart_boost: np.ndarray  # (n,)
    coldstart_decay_hours: np.ndarray  # (n,)
    gross_margin_frac: np.ndarray  # (n,)
    new_customer_value_cny: np.ndarray  # (n,)
    start_hour_of_week: np.ndarray  # (n,) int64
    learning_gap: np.ndarray  # (n,)
    learning_clicks: np.ndarray  # (n,)


class KernelState(NamedTuple):
    """The state arrays the compiled kernels read and write in place (the fields of
    :class:`CampaignState` of the same names)."""

    keys: np.ndarray  # (n,) uint64
    budget_left_cny: np.ndarray  # (n,)
    returning_pool: np.ndarray  # (n,)
    interest: np.ndarray  # (n,)
    fatigue: np.ndarray  # (n, k)
    cvr_drift_log: np.ndarray  # (n,)
    pending_conversions: np.ndarray  # (n, k)
    pending_new_customers: np.ndarray  # (n, k)
    pending_gmv_cny: np.ndarray  # (n, k)
    deposit_conversions: np.ndarray  # (n, k)
    deposit_new_customers: np.ndarray  # (n, k)
    deposit_gmv_cny: np.ndarray  # (n, k)
    last: np.ndarray  # (6, n, k)
    totals: np.ndarray  # (6, n, k)
    recent_spend_cny: np.ndarray  # (n, k)
    unattributed_conversions: np.ndarray  # (n,)
    unattributed_gmv_cny: np.ndarray  # (n,)


def pool_saturation(pool: np.ndarray, pool_half_saturation: np.ndarray) -> np.ndarray:
    """Share of a channel's affinity a pool of customers reaches (the store's returning
    customers, or the interested ones): ``pool / (pool + pool_half_saturation)`` (numpy
    arrays, or compiled on scalars)."""
    return pool / (pool + pool_half_saturation)


def purchase_probabilities(
    cvr_new, cvr_returning, cvr_interested, cvr_mult, affinity, saturation, interest_affinity,
    interest_saturation,
):  # fmt: skip
    """The response of a click: ``(p_buy, p_returning, p_interested)``, the probability that
    it buys, that a returning customer buys and that an interested customer buys.

    A click is a returning customer's with probability ``affinity * saturation``, else an
    interested customer's with probability ``interest_affinity * interest_saturation``, else a
    new customer's (saturations: :func:`pool_saturation`); each buys at its true CVR times the
    calendar's ``cvr_mult``, capped at ``CVR_CAP``. Broadcasting numpy arrays, or compiled on
    scalars (the kernels): one definition for the simulator, the oracle and the planners."""
    returning_frac = affinity * saturation
    interested_frac = (1.0 - returning_frac) * (interest_affinity * interest_saturation)
    p_returning = returning_frac * np.minimum(cvr_returning * cvr_mult, CVR_CAP)
    p_interested = interested_frac * np.minimum(cvr_interested * cvr_mult, CVR_CAP)
    p_new = ((1.0 - returning_frac) - interested_frac) * np.minimum(cvr_new * cvr_mult, CVR_CAP)
    return p_returning + p_interested + p_new, p_returning, p_interested


def learning_multiplier(gap, clicks, clicks_to_learn):
    """The factor on every CVR of a campaign whose platform is still learning its product:
    ``1 - gap * exp(-clicks / clicks_to_learn)``, ``1 - gap`` before its first click and 1 in
    the limit (``clicks``: the campaign's cumulative clicks over every channel before the hour;
    numpy arrays, or compiled on scalars). A state-dependent multiplier: the planners can
    evaluate it along a planned click trajectory."""
    return 1.0 - gap * np.exp(-clicks / clicks_to_learn)


def commission_bid(alloc, volume, gmv_per_impression, rate_min, rate_max, elasticity):
    """What a commission budget buys on a ``per_sale`` channel priced by ``bid``: the expected
    impressions promoters bring and the commission rate, ``(impressions, rate)``.

    Promoters bring ``MAX_WIN_FRAC * volume * (rate / rate_max) ** elasticity`` impressions at
    the rate ``rate``, each selling ``gmv_per_impression`` (CTR times purchase probability times
    the order value) in expectation, so the expected commission at the top rate is ``full =
    rate_max * gmv_per_impression * MAX_WIN_FRAC * volume``. The platform offers the rate whose
    expected commission is the allocation ``a``: ``rate = rate_max * (min(a, full) / full) **
    (1 / (1 + elasticity))``, at least ``rate_min``; below the budget of ``rate_min``, promoters
    take part of the programme (impressions ``a / (rate_min * gmv_per_impression)``). Either
    way the expected commission is ``min(a, full)`` and the expected GMV ``min(a, full) /
    rate``. Numpy arrays (broadcast), or compiled on scalars (the kernel)."""
    full = rate_max * gmv_per_impression * MAX_WIN_FRAC * volume
    spent = np.minimum(alloc, full)
    share = spent / np.maximum(full, 1e-300)
    rate = np.maximum(rate_max * share ** (1.0 / (1.0 + elasticity)), rate_min)
    return spent / (rate * np.maximum(gmv_per_impression, 1e-300)), rate


_commission_bid = numba.njit(cache=True, error_model="numpy", inline="always")(commission_bid)
_learning_multiplier = numba.njit(cache=True, error_model="numpy", inline="always")(
    learning_multiplier
)
_pool_saturation = numba.njit(cache=True, error_model="numpy", inline="always")(pool_saturation)
_purchase_probabilities = numba.njit(cache=True, error_model="numpy", inline="always")(
    purchase_probabilities
)


def kernel_params(params: CampaignParams) -> tuple[np.ndarray, ...]:
    """The fields of :class:`KernelParams`, in order, as a plain tuple: numba's dispatcher types
    a plain tuple in C, a named one in Python (~10 us a call). The kernels name it at once:
    ``params = KernelParams(*params)``."""
    return tuple([getattr(params, name) for name in KernelParams._fields])


def kernel_state(state: CampaignState) -> tuple[np.ndarray, ...]:
    """The fields of :class:`KernelState`, in order, as a plain tuple (see
    :func:`kernel_params`); the kernels read and write its arrays in place."""
    return tuple([getattr(state, name) for name in KernelState._fields])


# The vectorized pass of ``simulate_campaigns`` reads a chunk's inputs from and writes its
# results to one ``(n_channels, _N_LANE_FIELDS, CAMPAIGNS_PER_CHUNK)`` scratch array: rows the
# compiler can load into SIMD registers, at constant distances it can prove do not overlap.
(_L_VOLUME_REF, _L_PRICE_REF, _L_REQUEST, _L_CTR, _L_CVR_NEW, _L_CVR_RET, _L_TRAFFIC,
 _L_PRICE_MULT, _L_CVR_MULT, _L_BOOST, _L_RETURNING_BASE, _L_IMMEDIATE, _L_HAZARD, _L_CVR_INT,
 _L_INTEREST_BASE) = range(15)  # fmt: skip
(_C_VOLUME, _C_MAX_SPEND, _C_ALLOCATED, _C_WIN_Z, _C_U_CLICKS, _C_Z_CLICKS, _C_LOGQ_CLICKS,
 _C_P_BUY, _C_LOGQ_BUY, _C_RET_SHARE, _C_LOGQ_RET, _C_U_BUY, _C_U_RET, _C_Z_ORDER, _C_U_IMM,
 _C_U_ARR, _C_P_IMM, _C_LOGQ_IMM, _C_HAZARD, _C_LOGQ_ARR, _C_INT_SHARE, _C_LOGQ_INT,
 _C_U_INT) = range(15, 38)  # fmt: skip
_L_EVENING, _L_WEEKLY = 38, 39  # the campaign-hour's daily cycle and weekend (hour_profile)
_C_BID_IMPRESSIONS, _C_BID_RATE = 40, 41  # what a bid channel's commission budget buys
_N_LANE_FIELDS = 42


# Not cached on its own: numba would key its build on this file alone, though it inlines
# random.py's SplitMix64. It is compiled into the kernels that call it (``BatchKernel``), whose
# cached builds carry a digest of every source file they contain.
@numba.njit(error_model="numpy")
def simulate_campaigns(
    start, stop, hour, settle, counter, profile, params, state, ch, request,
    purchases_out, purchase_gmv_out,
):  # fmt: skip
    """Advance campaigns ``start:stop`` by one hour in place (``state`` and ``params`` as
    :func:`kernel_state` / :func:`kernel_params`; ``counter`` of the hour, ``profile`` the
    :data:`WEEK_PROFILE` table, read at each campaign's hour of the week).

    Two passes: what depends only on the market, the request and the uniforms (market, win
    curve, uniforms and normal quantiles, purchase probabilities) for every channel-campaign in
    SIMD lanes, then the draws that depend on earlier draws (counts by sequential search,
    delays, the budget), one campaign after another."""
    volume_ref, price_ref = params.volume_per_hour, params.price_median_cny
    ctr, cvr_new, cvr_ret = params.ctr, params.cvr_new, params.cvr_returning
    cvr_int, interest, fatigue = params.cvr_interested, state.interest, state.fatigue
    drift_log = state.cvr_drift_log
    interest_retention, interest_half = params.interest_retention, params.interest_half_saturation
    immediate_frac, hazard = params.immediate_frac, params.delay_hazard_per_hour
    window_hours = params.attribution_window_hours
    pool_half = params.pool_half_saturation
    traffic_mult, price_mult, cvr_mult = (params.hourly_traffic_mult, params.hourly_price_mult,
                                          params.hourly_cvr_mult)  # fmt: skip
    price_cny = params.price_cny
    keys, budget_left, pool = state.keys, state.budget_left_cny, state.returning_pool
    pend_conv, pend_new, pend_gmv = (state.pending_conversions, state.pending_new_customers,
                                     state.pending_gmv_cny)  # fmt: skip
    last, totals, recent_spend = state.last, state.totals, state.recent_spend_cny
    unattr_conv, unattr_gmv = state.unattributed_conversions, state.unattributed_gmv_cny
    dep_conv, dep_new, dep_gmv = (state.deposit_conversions, state.deposit_new_customers,
                                  state.deposit_gmv_cny)  # fmt: skip
    presale_start, presale_warmup = params.presale_start_hour, params.presale_warmup_hours
    n_ch, m = request.shape[1], stop - start
    if m > CAMPAIGNS_PER_CHUNK:
        raise ValueError("simulate_campaigns steps at most CAMPAIGNS_PER_CHUNK campaigns a call")
    lanes = np.empty((n_ch, _N_LANE_FIELDS, CAMPAIGNS_PER_CHUNK))
    for j in range(m):
        i = start + j
        total_request = 0.0
        for k in range(n_ch):
            total_request += max(request[i, k], 0.0)
        # The share of each request the budget left covers.
        scale = budget_left[i] / total_request if total_request > budget_left[i] else 1.0
        returning_base = _pool_saturation(pool[i], pool_half[i])
        interest_base = _pool_saturation(interest[i], interest_half[i])
        boost = launch_boost(params, i, hour)
        week = week_hour(params, i, hour)
        evening, weekly = profile[week, 0], profile[week, 1]
        # The hidden drift of the campaign's CVRs: an AR(1) in logs, one normal per hour.
        drift_sigma, drift_mult = params.cvr_drift_sigma[i], 1.0
        if drift_sigma > 0.0:
            z = _ndtri(_uniform(keys[i], counter[_S_CVR_DRIFT, 0]))
            drift = params.cvr_drift_persistence[i] * drift_log[i] + drift_sigma * z
            drift_log[i] = drift
            drift_mult = inline_exp(drift)
        # The platform's learning of a new product (none without a gap).
        gap = params.learning_gap[i]
        if gap > 0.0:
            clicks = 0.0
            for k in range(n_ch):
                clicks += totals[CLICKS, i, k]
            drift_mult *= _learning_multiplier(gap, clicks, params.learning_clicks[i])
        for k in range(n_ch):
            lanes[k, _L_VOLUME_REF, j] = volume_ref[i, k]
            lanes[k, _L_PRICE_REF, j] = price_ref[i, k]
            lanes[k, _L_REQUEST, j] = max(request[i, k], 0.0) * scale
            # Creative fatigue lowers the CTR (none without ``fatigue_strength``).
            strength = ch.fatigue_strength[k]
            fatigued = ctr[i, k] / (1.0 + strength * fatigue[i, k])
            lanes[k, _L_CTR, j] = fatigued if strength > 0.0 else ctr[i, k]
            lanes[k, _L_CVR_NEW, j] = cvr_new[i, k]
            lanes[k, _L_CVR_RET, j] = cvr_ret[i, k]
            # The calendar's multipliers, times the clock's: the live broadcast schedule on
            # the volume, rival depletion through the day on the price (1 without them).
            lanes[k, _L_TRAFFIC, j] = traffic_mult[i, hour] * ch.clock_volume[k, week]
            lanes[k, _L_PRICE_MULT, j] = price_mult[i, hour] * ch.clock_price[k, week]
            lanes[k, _L_CVR_MULT, j] = cvr_mult[i, hour] * drift_mult
            lanes[k, _L_BOOST, j] = boost
            lanes[k, _L_RETURNING_BASE, j] = returning_base
            lanes[k, _L_IMMEDIATE, j] = immediate_frac[i]
            lanes[k, _L_HAZARD, j] = hazard[i]
            lanes[k, _L_CVR_INT, j] = cvr_int[i, k]
            lanes[k, _L_INTEREST_BASE, j] = interest_base
            lanes[k, _L_EVENING, j] = evening
            lanes[k, _L_WEEKLY, j] = weekly
    chunk_keys, chunk_price = keys[start:stop], price_cny[start:stop]
    for k in range(n_ch):
        sigma, affinity = ch.price_sigma[k], ch.returning_affinity[k]
        immediate_mult, delay_mult = ch.immediate_mult[k], ch.delay_mult[k]
        interest_affinity = ch.interest_affinity[k]
        channel = _channel_market(ch, counter, k)
        reserve_share, reserve_quantile = ch.reserve_share[k], ch.reserve_quantile[k]
        won_per_share, impact = ch.reserve_won_per_share[k], ch.price_impact[k]
        # The counters of the draws, as scalars (see ``_channel_market``).
        c_clicks, c_buy, c_ret = (counter[_S_CLICKS, k], counter[_S_PURCHASES, k],
                                  counter[_S_RETURNING_BUYERS, k])  # fmt: skip
        c_order, c_imm, c_arr = (counter[_S_ORDER_VALUE, k], counter[_S_IMMEDIATE, k],
                                 counter[_S_ARRIVAL, k])  # fmt: skip
        c_int = counter[_S_INTERESTED_BUYERS, k]
        for j in range(m):
            key = chunk_keys[j]
            profile_cell = (lanes[k, _L_EVENING, j], lanes[k, _L_WEEKLY, j])
            volume, max_spend, cvr_mult = _market_cell(
                profile_cell, channel, key, lanes[k, _L_VOLUME_REF, j], lanes[k, _L_PRICE_REF, j],
                lanes[k, _L_TRAFFIC, j], lanes[k, _L_PRICE_MULT, j], lanes[k, _L_CVR_MULT, j],
                lanes[k, _L_BOOST, j], 1.0,
            )  # fmt: skip
            allocated = min(lanes[k, _L_REQUEST, j], MAX_WIN_FRAC * max_spend)
            lanes[k, _C_VOLUME, j] = volume
            lanes[k, _C_MAX_SPEND, j] = max_spend
            lanes[k, _C_ALLOCATED, j] = allocated
            # Quantile of the win curve (see ``_win_quantile``; unused when nothing is spent).
            lanes[k, _C_WIN_Z, j] = _win_quantile(
                min(allocated / max_spend, MAX_WIN_FRAC), sigma, reserve_share, reserve_quantile,
                won_per_share, impact,
            )  # fmt: skip
            u_clicks = _uniform(key, c_clicks)
            lanes[k, _C_U_CLICKS, j] = u_clicks
            lanes[k, _C_Z_CLICKS, j] = _ndtri_lanes(u_clicks)
            lanes[k, _C_LOGQ_CLICKS, j] = _log_q(lanes[k, _L_CTR, j])
            # Each click is a returning, an interested or a new customer's purchase, or none: a
            # multinomial, drawn as purchases, the returning buyers among them, then the
            # interested buyers among the others.
            p_buy, p_ret, p_int = _purchase_probabilities(
                lanes[k, _L_CVR_NEW, j], lanes[k, _L_CVR_RET, j], lanes[k, _L_CVR_INT, j],
                cvr_mult, affinity, lanes[k, _L_RETURNING_BASE, j], interest_affinity,
                lanes[k, _L_INTEREST_BASE, j],
            )  # fmt: skip
            ret_share = p_ret / p_buy if p_buy > 0.0 else 0.0
            p_other = p_buy - p_ret
            int_share = 0.0
            if interest_affinity > 0.0:  # the same for every campaign: a loop-invariant test
                int_share = min(p_int / p_other, 1.0) if p_other > 0.0 else 0.0
                lanes[k, _C_LOGQ_INT, j] = _log_q(int_share)
                lanes[k, _C_U_INT, j] = _uniform(key, c_int)
            lanes[k, _C_INT_SHARE, j] = int_share  # 0: no draw reads the two above
            lanes[k, _C_P_BUY, j] = p_buy
            if ch.bid_pricing[k] > 0.0:  # the same for every campaign: a loop-invariant test
                bid_impressions, bid_rate = _commission_bid(
                    lanes[k, _L_REQUEST, j], volume, lanes[k, _L_CTR, j] * p_buy * chunk_price[j],
                    ch.commission_min[k], ch.commission_max[k], ch.commission_elasticity[k],
                )  # fmt: skip
                lanes[k, _C_BID_IMPRESSIONS, j] = bid_impressions
                lanes[k, _C_BID_RATE, j] = bid_rate
            lanes[k, _C_LOGQ_BUY, j] = _log_q(p_buy)
            lanes[k, _C_RET_SHARE, j] = ret_share
            lanes[k, _C_LOGQ_RET, j] = _log_q(ret_share)
            lanes[k, _C_U_BUY, j] = _uniform(key, c_buy)
            lanes[k, _C_U_RET, j] = _uniform(key, c_ret)
            lanes[k, _C_Z_ORDER, j] = _ndtri_lanes(_uniform(key, c_order))
            lanes[k, _C_U_IMM, j] = _uniform(key, c_imm)
            lanes[k, _C_U_ARR, j] = _uniform(key, c_arr)
            # The channel's delays: its immediate share and arrival hazard per hour.
            p_immediate = lanes[k, _L_IMMEDIATE, j] * immediate_mult
            p_arrival = lanes[k, _L_HAZARD, j] / delay_mult
            lanes[k, _C_P_IMM, j] = p_immediate
            lanes[k, _C_LOGQ_IMM, j] = _log_q(p_immediate)
            lanes[k, _C_HAZARD, j] = p_arrival
            lanes[k, _C_LOGQ_ARR, j] = _log_q(p_arrival)
    for j in range(m):
        i = start + j
        key = keys[i]
        # What is left to pay with: the channels billed per click or impression pay first, in
        # channel order, then the commissions of the channels paid per sale.
        room = max(budget_left[i], 0.0)
        spent, new_arrived = 0.0, 0.0
        interest_gain, interested_buyers = 0.0, 0.0
        # A pre-sale's warm-up takes deposits; its first hour receives them.
        presale = presale_start[i] - presale_warmup[i] <= hour < presale_start[i]
        release = hour == presale_start[i]
        for phase in range(2):
            for k in range(n_ch):
                if (ch.billing[k] == BILLING_PER_SALE) != (phase == 1):
                    continue
                # What the allocation buys and what it costs, by the channel's billing: ``cpm``
                # pays the realized impressions at the average price per impression won
                # (allocation / expected impressions), ``cpc`` the realized clicks at the
                # expected cost per click (allocation / expected clicks), ``per_sale`` the
                # commission on its sales (``fixed``: its allocation buys reach, free; ``bid``:
                # its allocation sets the rate, see ``commission_bid``). What ``room``
                # cannot pay for is not bought: fewer impressions, clicks or sales.
                billing = ch.billing[k]
                allocated = lanes[k, _C_ALLOCATED, j]
                expected_impressions = 0.0
                bid = ch.bid_pricing[k] > 0.0
                if bid:  # promoters drawn by the commission rate the allocation offers
                    expected_impressions = lanes[k, _C_BID_IMPRESSIONS, j]
                elif allocated > 0.0 and lanes[k, _C_MAX_SPEND, j] > 0.0:
                    win_share = normal_cdf(lanes[k, _C_WIN_Z, j])
                    expected_impressions = lanes[k, _C_VOLUME, j] * win_share
                impressions = np.floor(expected_impressions + 0.5)
                cost = 0.0
                if billing == BILLING_CPM and impressions > 0.0:
                    price = allocated / expected_impressions
                    if impressions * price > room:
                        impressions = np.floor(room / price)
                    cost = impressions * price
                ctr_k, log_q_clicks = lanes[k, _L_CTR, j], lanes[k, _C_LOGQ_CLICKS, j]
                hill = ch.hill_shape[k]
                if hill != 1.0 and expected_impressions > 0.0:
                    # S-shaped response: the CTR times (won share / HILL_REFERENCE_SHARE) **
                    # (hill - 1).
                    won = expected_impressions / (HILL_REFERENCE_SHARE * lanes[k, _C_VOLUME, j])
                    ctr_k *= inline_exp((hill - 1.0) * inline_log(won))
                    log_q_clicks = _log_q(ctr_k)
                clicks = _binomial_draw(
                    impressions, ctr_k, log_q_clicks, lanes[k, _C_U_CLICKS, j],
                    lanes[k, _C_Z_CLICKS, j],
                )  # fmt: skip
                if billing == BILLING_CPC and clicks > 0.0:
                    cost_per_click = allocated / (expected_impressions * ctr_k)
                    if clicks * cost_per_click > room:
                        clicks = np.floor(room / cost_per_click)
                    cost = clicks * cost_per_click
                purchases = _binomial_draw(
                    clicks, lanes[k, _C_P_BUY, j], lanes[k, _C_LOGQ_BUY, j], lanes[k, _C_U_BUY, j],
                    _Z_LAZY,
                )  # fmt: skip
                conv_ret = _binomial_draw(
                    purchases, lanes[k, _C_RET_SHARE, j], lanes[k, _C_LOGQ_RET, j],
                    lanes[k, _C_U_RET, j], _Z_LAZY,
                )  # fmt: skip
                conv_new = purchases - conv_ret
                order_value = price_cny[i]
                if purchases > 0.0:
                    # Mean order value of the cohort: lognormal per order, averaged over it.
                    sigma = ORDER_VALUE_SIGMA / _sqrt(purchases)
                    z = lanes[k, _C_Z_ORDER, j]
                    order_value *= inline_exp(sigma * z - 0.5 * sigma * sigma)
                purchase_gmv = purchases * order_value
                if billing == BILLING_PER_SALE:
                    # The cost is commission x GMV. Sales that the budget left could not pay
                    # for are not made (the programme stops).
                    commission_frac = lanes[k, _C_BID_RATE, j] if bid else ch.commission_frac[k]
                    commission = commission_frac * purchase_gmv
                    if commission > 0.0 and commission > room:
                        keep = room / commission
                        conv_new = np.floor(conv_new * keep)
                        conv_ret = np.floor(conv_ret * keep)
                        purchases = conv_new + conv_ret
                        purchase_gmv = purchases * order_value
                    cost = commission_frac * purchase_gmv
                # The interested customers among the new buyers leave the interest pool; the
                # clicks that did not buy leave interested customers behind.
                interested_buyers += _binomial_draw(
                    conv_new, lanes[k, _C_INT_SHARE, j], lanes[k, _C_LOGQ_INT, j],
                    lanes[k, _C_U_INT, j], _Z_LAZY,
                )  # fmt: skip
                interest_gain += ch.interest_per_click[k] * (clicks - purchases)
                if ch.fatigue_strength[k] > 0.0:  # else the CTR ignores it: left at 0
                    recovery = ch.fatigue_recovery[k]
                    fatigue[i, k] = (1.0 - recovery) * fatigue[i, k] + impressions / volume_ref[
                        i, k
                    ]
                # Delays (Chapelle 2014): a share arrives this hour, the rest geometrically later.
                p_arrival = lanes[k, _C_HAZARD, j]
                old = _binomial_draw(
                    pend_conv[i, k], p_arrival, lanes[k, _C_LOGQ_ARR, j], lanes[k, _C_U_ARR, j],
                    _Z_LAZY,
                )  # fmt: skip
                old_new, old_gmv = _split(pend_conv[i, k], pend_new[i, k], pend_gmv[i, k], old)
                if presale:
                    # Deposits: nothing arrives now, nothing waits in the delay pool.
                    dep_conv[i, k] += purchases
                    dep_new[i, k] += conv_new
                    dep_gmv[i, k] += purchase_gmv
                    immediate, imm_new, imm_gmv = 0.0, 0.0, 0.0
                    wait_conv, wait_new, wait_gmv = 0.0, 0.0, 0.0
                else:
                    immediate = _binomial_draw(
                        purchases, lanes[k, _C_P_IMM, j], lanes[k, _C_LOGQ_IMM, j],
                        lanes[k, _C_U_IMM, j], _Z_LAZY,
                    )  # fmt: skip
                    imm_new, imm_gmv = _split(purchases, conv_new, purchase_gmv, immediate)
                    wait_conv, wait_new = purchases - immediate, conv_new - imm_new
                    wait_gmv = purchase_gmv - imm_gmv
                conv = immediate + old
                new = imm_new + old_new
                gmv = imm_gmv + old_gmv
                # Each part leaves its pool exactly once: a pool taken whole is left at exactly
                # zero, so rounding never leaves a negative residue of GMV.
                pend_conv[i, k] = (pend_conv[i, k] - old) + wait_conv
                pend_new[i, k] = (pend_new[i, k] - old_new) + wait_new
                pend_gmv[i, k] = (pend_gmv[i, k] - old_gmv) + wait_gmv
                if release or (settle and presale_start[i] <= hour + window_hours[i]):
                    # The pre-sale opens (or will, within the attribution window): deposits pay.
                    conv += dep_conv[i, k]
                    new += dep_new[i, k]
                    gmv += dep_gmv[i, k]
                    dep_conv[i, k], dep_new[i, k], dep_gmv[i, k] = 0.0, 0.0, 0.0
                if settle:
                    # End of horizon: what arrives within the attribution window counts now.
                    p_window = 1.0 - (1.0 - p_arrival) ** window_hours[i]
                    u_set = _uniform(key, counter[_S_SETTLE, k])
                    settled = _binomial(pend_conv[i, k], p_window, u_set)
                    s_new, s_gmv = _split(pend_conv[i, k], pend_new[i, k], pend_gmv[i, k], settled)
                    conv += settled
                    new += s_new
                    gmv += s_gmv
                    unattr_conv[i] += (pend_conv[i, k] - settled) + dep_conv[i, k]
                    unattr_gmv[i] += (pend_gmv[i, k] - s_gmv) + dep_gmv[i, k]
                    dep_conv[i, k], dep_new[i, k], dep_gmv[i, k] = 0.0, 0.0, 0.0
                    pend_conv[i, k] = 0.0
                    pend_new[i, k] = 0.0
                    pend_gmv[i, k] = 0.0
                hourly = (cost, impressions, clicks, conv, new, gmv)
                for metric in range(6):
                    last[metric, i, k] = hourly[metric]
                    totals[metric, i, k] += hourly[metric]
                recent_spend[i, k] = RECENT_SPEND_DECAY * recent_spend[i, k] + cost
                purchases_out[i, k] = purchases
                purchase_gmv_out[i, k] = purchase_gmv
                room = max(room - cost, 0.0)
                spent += cost
                new_arrived += new
        budget_left[i] = max(budget_left[i] - spent, 0.0)
        pool[i] += new_arrived
        # The hour's interested buyers leave first (the saturating share of the clicks they
        # take can exceed the pool), the rest decays, the hour's new interest joins.
        remaining = max(interest[i] - interested_buyers, 0.0)
        retention = 1.0 if presale else interest_retention[i]  # carts and deposits persist
        interest[i] = retention * remaining + interest_gain


def sources_digest(*paths: str | Path) -> str:
    """Short digest of the contents of source files (names the cached builds of a kernel)."""
    digest = hashlib.sha1()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:12]


def prune_stale_builds(function, digest: str) -> None:
    """Delete ``function``'s cached builds under other digests from numba's in-tree cache
    (``__pycache__`` beside the source; a cache elsewhere, or a read-only one, is left alone)."""
    source = Path(function.__code__.co_filename)
    current = f"{source.stem}.{function.__qualname__}_{digest}"
    for path in (source.parent / "__pycache__").glob(f"{source.stem}.{function.__qualname__}_*"):
        if not path.name.startswith(current):
            path.unlink(missing_ok=True)


def _renamed(function, suffix: str):
    renamed = types.FunctionType(function.__code__, function.__globals__, function.__name__)
    renamed.__qualname__ = f"{function.__qualname__}_{suffix}"
    return renamed


class BatchKernel:
    """A numba kernel over a batch, compiled twice: serial for small batches (a single env pays
    no thread start-up), parallel over campaigns (``numba.prange``) for large ones.

    numba's on-disk cache names an entry after the function and checks only the file that
    defines it, although the machine code also contains every compiled function it calls: a
    kernel calling :func:`simulate_campaigns` from another module would keep running the old
    dynamics after this file is edited. Both builds are therefore cached under a name carrying
    a digest of this file, random.py and the kernel's own (and the parallel one under its own
    name: the cache does not tell compile flags apart either); builds under older digests are
    deleted.
    """

    def __init__(self, function) -> None:
        digest = sources_digest(__file__, crn.__file__, function.__code__.co_filename)
        with contextlib.suppress(OSError):
            prune_stale_builds(function, digest)
        self.serial = numba.njit(cache=True, error_model="numpy")(_renamed(function, digest))
        self.parallel = numba.njit(cache=True, error_model="numpy", parallel=True)(
            _renamed(function, f"{digest}_parallel")
        )

    def for_batch(self, n_envs: int):
        """The build to call for ``n_envs`` campaigns."""
        return self.parallel if n_envs >= PARALLEL_MIN_ENVS else self.serial


PARALLEL_MIN_ENVS = 256
#: Campaigns per iteration of the kernels' parallel loops. Each call of a per-campaign function
#: takes ~30 arrays out of its argument tuples, and numba counts a reference to each with an
#: atomic increment and decrement on counters both threads share: once per campaign that is
#: ~9% of a step on one thread (perf); once per 32 campaigns it is negligible.
CAMPAIGNS_PER_CHUNK = 32


@numba.njit(cache=True, error_model="numpy", inline="always")
def n_chunks(n_envs):
    """Number of ``CAMPAIGNS_PER_CHUNK`` chunks covering ``n_envs`` campaigns."""
    return (n_envs + CAMPAIGNS_PER_CHUNK - 1) // CAMPAIGNS_PER_CHUNK


@numba.njit(cache=True, error_model="numpy", inline="always")
def chunk_bounds(chunk, n_envs):
    """``(start, stop)`` of chunk ``chunk`` of ``n_envs`` campaigns."""
    start = chunk * CAMPAIGNS_PER_CHUNK
    return start, min(start + CAMPAIGNS_PER_CHUNK, n_envs)


# ----------------------------------------------------------------------------------------------
# Markets for the references: realized (the hindsight oracle) and expected (the planners).


def _markets_kernel(keys, params, ch, noise, out):
    params, ch = KernelParams(*params), ChannelTable(*ch)
    n, horizon, n_ch = out.shape[1], out.shape[2], out.shape[3]
    volume_ref, price_ref = params.volume_per_hour, params.price_median_cny
    for t in range(horizon):
        counter = hour_counters(t, n_ch)
        for k in range(n_ch):
            channel = _channel_market(ch, counter, k)
            for i in range(n):
                week = week_hour(params, i, t)
                profile = (WEEK_PROFILE[week, 0], WEEK_PROFILE[week, 1])
                volume, max_spend, cvr = _market_cell(
                    profile, channel, keys[i], volume_ref[i, k], price_ref[i, k],
                    params.hourly_traffic_mult[i, t] * ch.clock_volume[k, week],
                    params.hourly_price_mult[i, t] * ch.clock_price[k, week],
                    params.hourly_cvr_mult[i, t], launch_boost(params, i, t), noise,
                )  # fmt: skip
                out[0, i, t, k] = volume
                out[1, i, t, k] = max_spend
                out[2, i, t, k] = cvr


_MARKETS = BatchKernel(_markets_kernel)


def hourly_markets(params: CampaignParams, noise: bool = True) -> dict[str, np.ndarray]:
    """Market of every channel-hour, ``(n_envs, horizon_hours, n_channels)`` arrays.

    With ``noise`` (the default), the realized market: ground truth for the hindsight oracle
    (never observed by policies). The market does not depend on actions (common random
    numbers), so this is exactly what any policy meets: ``volume`` (impressions on offer),
    ``max_spend_cny`` (cost of the whole market; spend ``s`` buys
    ``win_curve(s, volume, max_spend_cny)`` impressions, at most ``MAX_WIN_FRAC`` of it),
    ``cvr_mult`` (calendar multiplier on the true CVRs). Without, the certainty-equivalent
    market of :func:`expected_markets`.
    """
    out = np.zeros((3, params.n_envs, params.horizon_hours, params.n_channels))
    keys = crn.campaign_keys(params.seeds, DYNAMICS_DOMAIN)
    _MARKETS.serial(
        keys,
        kernel_params(params),
        tuple(channel_table(params.channels)),
        1.0 if noise else 0.0,
        out,
    )
    return {"volume": out[0], "max_spend_cny": out[1], "cvr_mult": out[2]}


def expected_markets(params: CampaignParams) -> dict[str, np.ndarray]:
    """Certainty-equivalent market of every channel-hour, as :func:`hourly_markets` returns.

    What a planner that knows the campaign's parameters, the public calendar and the hour and
    weekday profiles expects, without the noise of any hour: the volume noise at its mean 1
    and the hourly price noise at its median 1 (the lognormal price level enters the win curve
    through ``max_spend_cny``; its median keeps the market's typical price). Same model, same
    function (``_market_cell``) as the realized market.
    """
    return hourly_markets(params, noise=False)


@numba.vectorize(["float64(float64, float64, float64, float64)"], cache=True)
def _win_curve_ufunc(spend, volume, max_spend, sigma):
    return _win_impressions(spend, volume, max_spend, sigma)


@numba.vectorize(["float64(" + ", ".join(["float64"] * 8) + ")"], cache=True)
def _competitive_curve_ufunc(spend, volume, max_spend, sigma, share, quantile, won, impact):
    return _competitive_impressions(spend, volume, max_spend, sigma, share, quantile, won, impact)


def win_curve(
    spend_cny: np.ndarray,
    volume: np.ndarray,
    max_spend_cny: np.ndarray,
    price_sigma: np.ndarray = PRICE_SIGMA,
    reserve_frac: np.ndarray | None = None,
    price_impact: np.ndarray | None = None,
) -> np.ndarray:
    """Expected impressions bought with ``spend_cny``; arrays broadcast to ``(..., n_channels)``
    (``price_sigma (n_channels,)``: ``channel_table(channels).price_sigma``; default: the
    reference six's). The same compiled function as the kernels'.

    Competing prices are lognormal with log-sd ``sigma_k``; bidding ``b`` wins every impression
    priced below ``b`` at its price (second price), so with ``z = min(spend / max_spend, 0.95)``
    the impressions won are ``volume * Phi(Phi^-1(z) + sigma_k)``: concave and saturating.
    With the channels' ``reserve_frac`` and ``price_impact`` ``(n_channels,)`` (None: 0), the
    win curve with competition (docs/simulator.md §2).
    """
    if reserve_frac is None and price_impact is None:
        return _win_curve_ufunc(spend_cny, volume, max_spend_cny, price_sigma)
    shape = np.shape(price_sigma)
    reserve = np.zeros(shape) if reserve_frac is None else reserve_frac
    impact = np.zeros(shape) if price_impact is None else price_impact
    share, quantile, won = reserve_constants(reserve, price_sigma)
    return _competitive_curve_ufunc(
        spend_cny, volume, max_spend_cny, price_sigma, share, quantile, won, impact
    )


def hill_factor(impressions: np.ndarray, volume: np.ndarray, hill_shape: np.ndarray) -> np.ndarray:
    """Factor on the CTR of ``impressions`` won of ``volume`` with the channels' ``hill_shape``
    ``(n_channels,)``: ``(impressions / (HILL_REFERENCE_SHARE volume)) ** (hill_shape - 1)``
    (1 where the shape is 1 or nothing is won)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        won = impressions / (HILL_REFERENCE_SHARE * volume)
        factor = np.exp((hill_shape - 1.0) * np.log(won))
    return np.where((hill_shape != 1.0) & (impressions > 0.0), factor, 1.0)
