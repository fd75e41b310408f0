"""One hour of the simulator in plain numpy: the executable specification of the model.

:func:`reference_step` advances a batch of campaigns by one hour, the way the compiled kernel
(:func:`budgetgym.envs.core.simulate_campaigns`) does, written to be read rather than to be fast:
arrays over campaigns ``(n,)`` or channel-campaigns ``(n, k)``, one line per equation of
docs/simulator.md, no numba. It draws the same counter-based uniforms (``random.py``) and turns
them into the same normals (Acklam's inverse CDF) and binomials (inversion by sequential search
below a mean of 12, normal approximation above), so it reproduces the kernel's trajectories:
counts exactly, money to the last few bits (numpy's ``exp``, ``log`` and ``erfc`` may differ from
the kernel's inlined ones by an ulp; tests/envs/test_reference.py states the tolerance).

What a channel buys and costs is computed channel by channel, since each channel pays from what
the ones before it left of the budget (those billed per impression or click first, in channel
order, then those paid per sale); every operation is vectorized over campaigns.
"""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import numpy as np
from scipy.special import erfc

from budgetgym.envs import random as crn
from budgetgym.envs.core import CLICKS as CLICKS_METRIC  # (the stream CLICKS is another index)
from budgetgym.envs.core import (
    CVR_CAP,
    GMV,
    HOURLY_METRICS,
    MAX_WIN_FRAC,
    NEW_CUSTOMERS,
    ORDER_VALUE_SIGMA,
    PRICE_NOISE_SIGMA,
    RECENT_SPEND_DECAY,
    REWARD_MODES,
    SPEND,
    CampaignState,
    channel_table,
    hill_factor,
    learning_multiplier,
)
from budgetgym.envs.scenario_specs import HOURS_PER_WEEK
from budgetgym.envs.scenarios import CampaignParams

# Streams of the hour's uniforms, ``uniforms[:, stream, channel]``, in the kernel's order.
(VOLUME, PRICE, CLICKS, PURCHASES, RETURNING, ORDER_VALUE, IMMEDIATE, ARRIVAL, SETTLE,
 INTERESTED, CVR_DRIFT) = range(11)  # fmt: skip
N_STREAMS = CVR_DRIFT + 1
EXACT_MEAN_LIMIT = 12.0  # binomials with a smaller mean are drawn exactly


class ReferenceStep(NamedTuple):
    """What one hour produces. Arrays are new (the inputs are never modified)."""

    state: CampaignState  # at the next hour; ``state.last`` holds the hour's metrics
    hourly: dict[str, np.ndarray]  # HOURLY_METRICS -> (n, k), attributed this hour
    purchases: np.ndarray  # (n, k) purchases of this hour's clicks (arriving now or later)
    purchase_gmv_cny: np.ndarray  # (n, k) their GMV


def ndtri(p: np.ndarray) -> np.ndarray:
    """Inverse standard normal CDF of ``p`` in (0, 1): Acklam's rational approximation
    (relative error < 1.2e-9), the kernel's and therefore the model's normal quantile."""
    p = np.asarray(p, dtype=np.float64)
    q = p - 0.5
    r = q * q
    central = ((((((-3.969683028665376e01 * r + 2.209460984245205e02) * r
                   - 2.759285104469687e02) * r + 1.383577518672690e02) * r
                 - 3.066479806614716e01) * r + 2.506628277459239e00) * q
               / (((((-5.447609879822406e01 * r + 1.615858368580409e02) * r
                     - 1.556989798598866e02) * r + 6.680131188771972e01) * r
                   - 1.328068155288572e01) * r + 1.0))  # fmt: skip
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.sqrt(-2.0 * np.log(np.minimum(p, 1.0 - p)))
        tail = ((((((-7.784894002430293e-03 * t - 3.223964580411365e-01) * t
                    - 2.400758277161838e00) * t - 2.549732539343734e00) * t
                  + 4.374664141464968e00) * t + 2.938163982698783e00)
                / ((((7.784695709041462e-03 * t + 3.224671290700398e-01) * t
                     + 2.445134137142996e00) * t + 3.754408661907416e00) * t + 1.0))  # fmt: skip
    tail = np.where(p > 0.5, -tail, tail)
    return np.where((p < 0.02425) | (p > 1.0 - 0.02425), tail, central)


def ndtr(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF."""
    return 0.5 * erfc(-x / math.sqrt(2.0))


def binomial(n: np.ndarray, p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Binomial(n, p) counts by inverting one uniform ``u`` each (arrays broadcast): exact
    (sequential search of the CDF) for means below 12, normal approximation with continuity
    correction above."""
    n, p, u = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (n, p, u)))
    mean = n * p
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        approx = np.floor(mean + np.sqrt(mean * (1.0 - p)) * ndtri(u) + 0.5)
        pmf = np.exp(n * np.log(1.0 - p))
        odds = p / (1.0 - p)
    cdf, k = pmf.copy(), np.zeros_like(n)
    searching = (mean < EXACT_MEAN_LIMIT) & (u > cdf) & (k < n) & (pmf > 1e-300)
    while searching.any():
        pmf = np.where(searching, pmf * ((n - k) / (k + 1.0) * odds), pmf)
        k = np.where(searching, k + 1.0, k)
        cdf = np.where(searching, cdf + pmf, cdf)
        searching &= (u > cdf) & (k < n) & (pmf > 1e-300)
    draw = np.where(mean < EXACT_MEAN_LIMIT, k, np.clip(approx, 0.0, n))
    return np.where((n <= 0.0) | (p <= 0.0), 0.0, np.where(p >= 1.0, n, draw))


def split(count: np.ndarray, new: np.ndarray, gmv: np.ndarray, taken: np.ndarray):
    """Of ``count`` conversions (``new`` of them by new customers, worth ``gmv``) take ``taken``:
    returns the new customers among them (rounded, consistent with both parts) and their GMV
    (pro rata). A part taken whole is exactly the whole."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = taken / count
    new_taken = np.minimum(
        np.maximum(np.floor(new * ratio + 0.5), taken - (count - new)), np.minimum(new, taken)
    )
    whole, empty = taken >= count, count <= 0.0
    return (
        np.where(whole, new, np.where(empty, 0.0, new_taken)),
        np.where(whole, gmv, np.where(empty, 0.0, gmv * ratio)),
    )


def channel_sum(x: np.ndarray, order) -> np.ndarray:
    """``(n, k) -> (n,)``: the channels added one by one in ``order``, as the kernel adds them
    (numpy's ``sum`` may associate them otherwise, and so differ in the last bit)."""
    total = np.zeros(x.shape[0])
    for k in order:
        total = total + x[:, k]
    return total


def market(params: CampaignParams, hour: int, u: np.ndarray):
    """Impressions on offer, cost of the whole market (CNY) and CVR multiplier of every
    channel-campaign this hour, ``(n, k)`` each (docs/simulator.md §2, §6)."""
    ch = channel_table(params.channels)
    # The campaign's hour of the week: its start's plus the hour.
    week = (hour + params.start_hour_of_week) % HOURS_PER_WEEK
    evening = np.array([math.cos(2.0 * math.pi * (h % 24 - 20) / 24.0) for h in week])[:, None]
    weekend = np.where((week // 24) % 7 >= 5, 1.15, 1.0)[:, None]  # Saturday and Sunday
    # The scenario's calendar: the multipliers of its events and their warm-ups this hour.
    # Times the clock's: the live broadcast schedule and rival depletion through the day.
    traffic = params.hourly_traffic_mult[:, hour, None] * ch.clock_volume[:, week].T
    price_mult = params.hourly_price_mult[:, hour, None] * ch.clock_price[:, week].T
    cvr_mult = params.hourly_cvr_mult[:, hour, None]
    decay = np.exp(-hour / params.coldstart_decay_hours)  # of the launch boost
    launch = 1.0 + (params.coldstart_boost * decay)[:, None] * ch.launch_support
    sigma = ch.volume_noise_sigma
    volume_noise = np.exp(sigma * ndtri(u[:, VOLUME]) - 0.5 * sigma * sigma)
    volume = params.volume_per_hour * (1.0 + 0.6 * ch.diurnal_strength * evening) * weekend
    volume = volume * traffic
    volume = volume * (launch * volume_noise)
    price = params.price_median_cny * (1.0 + 0.25 * evening) * price_mult
    price = price * np.exp(PRICE_NOISE_SIGMA * ndtri(u[:, PRICE]))
    # Cost of the whole market: volume times the mean of the lognormal prices.
    max_spend = volume * price * np.exp(0.5 * ch.price_sigma**2)
    return volume, max_spend, np.broadcast_to(cvr_mult, volume.shape)


def reference_step(
    params: CampaignParams, state: CampaignState, spend_request_cny: np.ndarray, hour: int
) -> ReferenceStep:
    """Advance every campaign by the hour ``hour`` with the spend requests ``(n, k)`` CNY.

    Pure: returns a new state (hour ``hour + 1``) and the hour's outputs; at the last hour of
    the horizon, the pending conversions are settled (docs/simulator.md §4).
    """
    if state.hour != hour:
        raise ValueError(f"hour must be the state's hour {state.hour}, got {hour}.")
    n, n_ch = spend_request_cny.shape
    s = copy.deepcopy(state)
    u = crn.uniforms(s.keys, crn.counters(hour, N_STREAMS, n_ch))  # (n, stream, k)
    ch = channel_table(params.channels)
    billing = [c.billing for c in params.channels]
    # Channels billed per impression or click pay first, in channel order, then those per sale.
    order = [k for k in range(n_ch) if billing[k] != "per_sale"]
    order += [k for k in range(n_ch) if billing[k] == "per_sale"]
    # Requests beyond the budget left are scaled down to it.
    request = np.maximum(spend_request_cny, 0.0)
    total = channel_sum(request, range(n_ch))
    over_budget = total > s.budget_left_cny
    request[over_budget] *= (s.budget_left_cny[over_budget] / total[over_budget])[:, None]
    # Auction: spend buys impressions along the win curve, at most MAX_WIN_FRAC of the market.
    volume, max_spend, cvr_mult = market(params, hour, u)
    # The hidden CVR drift: log m_t = rho log m_{t-1} + sigma eps_t (the first channel's draw).
    drifting = params.cvr_drift_sigma > 0.0
    drift = params.cvr_drift_persistence * s.cvr_drift_log
    drift = drift + params.cvr_drift_sigma * ndtri(u[:, CVR_DRIFT, 0])
    s.cvr_drift_log = np.where(drifting, drift, s.cvr_drift_log)
    # The platform's learning of a new product sharpens with the campaign's clicks so far.
    clicks_so_far = channel_sum(s.totals[CLICKS_METRIC], range(n_ch))
    learned = learning_multiplier(params.learning_gap, clicks_so_far, params.learning_clicks)
    cvr_mult = cvr_mult * (np.exp(s.cvr_drift_log) * learned)[:, None]
    allocated = np.minimum(request, MAX_WIN_FRAC * max_spend)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.minimum(allocated / max_spend, MAX_WIN_FRAC)
        # Own spend raises the price level; below the reserve's cost share every impression
        # costs the reserve, above it the lognormal landscape (docs/simulator.md §2).
        base = share / (1.0 + ch.price_impact * share)
        rationed = base < ch.reserve_share
        above = (base - ch.reserve_share) + ch.reserve_quantile
        arg = np.where(rationed, base * ch.reserve_won_per_share, above)
        z = ndtri(arg) + np.where(rationed, 0.0, ch.price_sigma)
    expected = np.where((allocated > 0.0) & (max_spend > 0.0), volume * ndtr(z), 0.0)
    # An S-shaped response: the CTR times (won share / HILL_REFERENCE_SHARE) ** (hill - 1).
    hill = hill_factor(expected, volume, ch.hill_shape)
    # Each click is a returning, an interested or a new customer's purchase, or none.
    pool_saturation = s.returning_pool / (s.returning_pool + params.pool_half_saturation)
    returning_frac = ch.returning_affinity * pool_saturation[:, None]
    interest_saturation = s.interest / (s.interest + params.interest_half_saturation)
    interested_frac = (1.0 - returning_frac) * (ch.interest_affinity * interest_saturation[:, None])
    p_ret = returning_frac * np.minimum(params.cvr_returning * cvr_mult, CVR_CAP)
    p_int = interested_frac * np.minimum(params.cvr_interested * cvr_mult, CVR_CAP)
    p_new = ((1.0 - returning_frac) - interested_frac) * np.minimum(
        params.cvr_new * cvr_mult, CVR_CAP
    )
    p_buy = p_ret + p_int + p_new
    with np.errstate(divide="ignore", invalid="ignore"):
        returning_share = np.where(p_buy > 0.0, p_ret / p_buy, 0.0)
        p_other = p_buy - p_ret
        interested_share = np.where(p_other > 0.0, np.minimum(p_int / p_other, 1.0), 0.0)
    order_z = ndtri(u[:, ORDER_VALUE])
    # Creative fatigue lowers the CTR.
    ctr = params.ctr / (1.0 + ch.fatigue_strength * s.fatigue) * hill
    # Channel by channel, what the allocation buys and what it costs, from the budget left.
    impressions, clicks, cost, purchases, conv_new, purchase_gmv = np.zeros((6, n, n_ch))
    interested_buyers = np.zeros((n, n_ch))
    room = s.budget_left_cny.copy()
    for k in order:
        room = np.maximum(room, 0.0)
        rate = ch.commission_frac[k]  # of a per_sale channel
        if ch.bid_pricing[k] > 0.0:
            # A commission budget: the rate whose expected commission is the allocation, at
            # most the top rate's on MAX_WIN_FRAC of the volume, at least the lowest rate.
            gmv_per_impression = ctr[:, k] * p_buy[:, k] * params.price_cny
            full = ch.commission_max[k] * gmv_per_impression * MAX_WIN_FRAC * volume[:, k]
            spent = np.minimum(request[:, k], full)
            share = spent / np.maximum(full, 1e-300)
            rate = ch.commission_max[k] * share ** (1.0 / (1.0 + ch.commission_elasticity[k]))
            rate = np.maximum(rate, ch.commission_min[k])
            # Promoters bring the impressions that sell that commission at that rate.
            expected[:, k] = spent / (rate * np.maximum(gmv_per_impression, 1e-300))
        imp = np.floor(expected[:, k] + 0.5)
        with np.errstate(divide="ignore", invalid="ignore"):
            unit_price = allocated[:, k] / expected[:, k]  # per impression won
            unit_cpc = allocated[:, k] / (expected[:, k] * ctr[:, k])  # per click
        if billing[k] == "cpm":  # the impressions won, at their average price
            imp = np.where(imp * unit_price > room, np.floor(room / unit_price), imp)
            cost[:, k] = np.where(imp > 0.0, imp * unit_price, 0.0)
        clk = binomial(imp, ctr[:, k], u[:, CLICKS, k])
        if billing[k] == "cpc":  # the clicks, at the expected cost per click
            clk = np.where(clk * unit_cpc > room, np.floor(room / unit_cpc), clk)
            cost[:, k] = np.where(clk > 0.0, clk * unit_cpc, 0.0)
        buy = binomial(clk, p_buy[:, k], u[:, PURCHASES, k])
        ret = binomial(buy, returning_share[:, k], u[:, RETURNING, k])
        new = buy - ret
        # Order value: the mean of the cohort's lognormal orders.
        sigma = ORDER_VALUE_SIGMA / np.sqrt(np.maximum(buy, 1.0))
        noise = np.exp(sigma * order_z[:, k] - 0.5 * sigma**2)
        order_value = np.where(buy > 0.0, params.price_cny * noise, params.price_cny)
        if billing[k] == "per_sale":  # a commission; the sales it cannot pay are not made
            commission = rate * (buy * order_value)
            over = (commission > 0.0) & (commission > room)
            keep = room[over] / commission[over]
            new[over], ret[over] = np.floor(new[over] * keep), np.floor(ret[over] * keep)
            buy = new + ret
            cost[:, k] = rate * (buy * order_value)
        # The interested customers among the new buyers leave the interest pool.
        interested_buyers[:, k] = binomial(new, interested_share[:, k], u[:, INTERESTED, k])
        impressions[:, k], clicks[:, k], purchases[:, k], conv_new[:, k] = imp, clk, buy, new
        purchase_gmv[:, k] = buy * order_value
        room = room - cost[:, k]
    # Delays: a share arrives this hour, the pending ones each with the hazard per hour, both
    # the campaign's times the channel's multipliers.
    immediate_frac = params.immediate_frac[:, None] * ch.immediate_mult
    hazard = params.delay_hazard_per_hour[:, None] / ch.delay_mult
    # In a pre-sale's warm-up, purchases are deposits instead: none arrives now or waits in the
    # delay pool; they all arrive in the event's first hour.
    start = params.presale_start_hour
    presale = ((start - params.presale_warmup_hours <= hour) & (hour < start))[:, None]
    immediate = np.where(presale, 0.0, binomial(purchases, immediate_frac, u[:, IMMEDIATE]))
    arrived = binomial(s.pending_conversions, hazard, u[:, ARRIVAL])
    imm_new, imm_gmv = split(purchases, conv_new, purchase_gmv, immediate)
    pending = (s.pending_conversions, s.pending_new_customers, s.pending_gmv_cny)
    old_new, old_gmv = split(*pending, arrived)
    conv, new, gmv = immediate + arrived, imm_new + old_new, imm_gmv + old_gmv
    waiting = np.where(presale, 0.0, 1.0)
    s.pending_conversions = (s.pending_conversions - arrived) + (purchases - immediate) * waiting
    s.pending_new_customers = (s.pending_new_customers - old_new) + (conv_new - imm_new) * waiting
    s.pending_gmv_cny = (s.pending_gmv_cny - old_gmv) + (purchase_gmv - imm_gmv) * waiting
    deposited = 1.0 - waiting
    s.deposit_conversions = s.deposit_conversions + purchases * deposited
    s.deposit_new_customers = s.deposit_new_customers + conv_new * deposited
    s.deposit_gmv_cny = s.deposit_gmv_cny + purchase_gmv * deposited
    last_hour = hour + 1 >= params.horizon_hours
    window = params.attribution_window_hours
    opens = (hour == start) | (last_hour & (start <= hour + window))
    paid = np.where(opens[:, None], 1.0, 0.0)  # the pre-sale opens: deposits arrive
    conv = conv + s.deposit_conversions * paid
    new = new + s.deposit_new_customers * paid
    gmv = gmv + s.deposit_gmv_cny * paid
    s.deposit_conversions = s.deposit_conversions * (1.0 - paid)
    s.deposit_new_customers = s.deposit_new_customers * (1.0 - paid)
    s.deposit_gmv_cny = s.deposit_gmv_cny * (1.0 - paid)
    if last_hour:
        # End of horizon: what arrives within the attribution window counts now.
        p_window = 1.0 - (1.0 - hazard) ** params.attribution_window_hours[:, None]
        settled = binomial(s.pending_conversions, p_window, u[:, SETTLE])
        pending = (s.pending_conversions, s.pending_new_customers, s.pending_gmv_cny)
        s_new, s_gmv = split(*pending, settled)
        conv, new, gmv = conv + settled, new + s_new, gmv + s_gmv
        # Deposits of a pre-sale that opens after the attribution window are lost too.
        lost = (s.pending_conversions - settled) + s.deposit_conversions
        lost_gmv = (s.pending_gmv_cny - s_gmv) + s.deposit_gmv_cny
        s.unattributed_conversions += channel_sum(lost, order)
        s.unattributed_gmv_cny += channel_sum(lost_gmv, order)
        s.deposit_conversions = np.zeros((n, n_ch))
        s.deposit_new_customers = np.zeros((n, n_ch))
        s.deposit_gmv_cny = np.zeros((n, n_ch))
        s.pending_conversions = np.zeros((n, n_ch))
        s.pending_new_customers = np.zeros((n, n_ch))
        s.pending_gmv_cny = np.zeros((n, n_ch))
    s.last = np.stack([cost, impressions, clicks, conv, new, gmv])
    s.totals = s.totals + s.last
    s.recent_spend_cny = RECENT_SPEND_DECAY * s.recent_spend_cny + cost
    s.budget_left_cny = np.maximum(s.budget_left_cny - channel_sum(cost, order), 0.0)
    s.returning_pool = s.returning_pool + channel_sum(new, order)
    # Interest: the hour's interested buyers leave (floored at an empty pool), the rest decays,
    # the clicks that did not buy add their channel's share.
    remaining = np.maximum(s.interest - channel_sum(interested_buyers, order), 0.0)
    gain = channel_sum(ch.interest_per_click * (clicks - purchases), order)
    # In a pre-sale's warm-up interest does not decay (carts and deposits persist).
    retention = np.where(presale[:, 0], 1.0, params.interest_retention)
    s.interest = retention * remaining + gain
    # Fatigue: the hour's impressions, in hours of the campaign's volume, join what is left.
    # (Only where a channel has fatigue: elsewhere the CTR ignores it, and it stays 0.)
    fatigue = (1.0 - ch.fatigue_recovery) * s.fatigue + impressions / params.volume_per_hour
    s.fatigue = np.where(ch.fatigue_strength > 0.0, fatigue, s.fatigue)
    s.hour = hour + 1
    return ReferenceStep(s, dict(zip(HOURLY_METRICS, s.last, strict=True)), purchases, purchase_gmv)


def reference_reward(
    params: CampaignParams, state: CampaignState, reward_mode: str, roi_penalty_coef: float
) -> np.ndarray:
    """Reward ``(n,)`` of the hour that led to ``state`` (docs/simulator.md §5): the hour's
    attributed GMV (or profit) and new customers' value per unit of budget, less, in mode
    ``gmv_roi_penalty`` at the end of the horizon, the spend that missed the target ROI."""
    if reward_mode not in REWARD_MODES:
        raise ValueError(f"Unknown reward_mode {reward_mode!r}; valid: {', '.join(REWARD_MODES)}.")
    channels = range(params.n_channels)
    value = channel_sum(state.last[GMV], channels)
    new_customers = channel_sum(state.last[NEW_CUSTOMERS], channels)
    if reward_mode == "profit":
        value = params.gross_margin_frac * value - channel_sum(state.last[SPEND], channels)
    reward = (value + params.new_customer_value_cny * new_customers) / params.budget_cny
    if reward_mode == "gmv_roi_penalty" and state.hour >= params.horizon_hours:
        spend = channel_sum(state.totals[SPEND], channels)
        total_gmv = channel_sum(state.totals[GMV], channels)
        shortfall = np.maximum(params.target_roi * spend - total_gmv, 0.0)
        reward = reward - roi_penalty_coef * shortfall / params.budget_cny
    return reward
