"""Batched simulator core: steps ``n_envs`` campaigns at once over ``(n_envs, n_channels)`` arrays.

The dynamics live in one function, :func:`simulate_hour`, a pure function of the campaign
parameters, the state, the spend request and the hour. Every view (the single
``gymnasium.Env``, the gymnasium ``VectorEnv``, the SB3 ``VecEnv``, the oracle's replay) goes
through :class:`BatchedCampaigns`, which adds the action mapping, observations and rewards.

Units: money in CNY (``_cny``), time in hours, counts are integer-valued float64.
docs/simulator.md states the model with its equations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr, ndtri

from budgetgym.envs import random as crn
from budgetgym.envs.channels import CHANNEL_NAMES, channel_array
from budgetgym.envs.scenarios import (
    ATTRIBUTION_WINDOW_HOURS,
    COLDSTART_DECAY_HOURS,
    EVENT_CVR_MULT,
    EVENT_LENGTH_HOURS,
    EVENT_PRICE_MULT,
    EVENT_TRAFFIC_MULT,
    WARMUP_CVR_MULT,
    WARMUP_HOURS,
    CampaignParams,
)

N_CHANNELS = len(CHANNEL_NAMES)
ACTION_DIM = N_CHANNELS + 1
MAX_PACE_MULT = 5.0  # action[0] = +1 spends 5x the even-pacing rate
SHARE_TEMPERATURE = 3.0  # action logits are multiplied by this before the softmax
MAX_WIN_FRAC = 0.95  # spend can buy at most this share of a channel-hour's market
REWARD_MODES = ("gmv", "gmv_roi_penalty", "profit")
_DYNAMICS_DOMAIN = 2

# Stream indices of the per-step counter-based draws.
_S_VOLUME, _S_PRICE, _S_CLICKS, _S_RETURNING, _S_CONV_NEW, _S_CONV_RET = range(6)
_S_ORDER_VALUE, _S_IMMEDIATE, _S_ARRIVAL, _S_SETTLE = range(6, 10)
_N_STREAMS = 10

_PRICE_SIGMA = channel_array("price_sigma")
_VOLUME_SIGMA = channel_array("volume_noise_sigma")
_DIURNAL = channel_array("diurnal_strength")
_AFFINITY = channel_array("returning_affinity")
_COMMISSION = channel_array("commission_frac")
_PAYS_PER_SALE = _COMMISSION > 0
# Platform launch support reaches the on-platform slots (search, feed, live, short video).
_BOOSTED = np.array([c not in ("affiliate", "social") for c in CHANNEL_NAMES], dtype=np.float64)


def action_to_spend_request(
    action: np.ndarray, budget_left_cny: np.ndarray, hours_left: int
) -> np.ndarray:
    """Map actions in ``[-1, 1]`` to the spend requested per channel this hour.

    ``action[:, 0]`` sets the pace relative to even pacing of what is left,
    ``pace = (4**a0 - 1/4) / (3/4)``: -1 spends nothing, 0 spends ``budget_left / hours_left``,
    +1 spends five times that. ``action[:, 1:]`` are channel logits; the split is
    ``softmax(3 * logits)``, so one channel can take 99.9% of the hour's spend.

    Args:
        action: ``(n_envs, n_channels + 1)`` float, validated finite and within ``[-1, 1]``.
        budget_left_cny: ``(n_envs,)``.
        hours_left: hours until the end of the horizon, including this one (>= 1).

    Returns:
        ``(n_envs, n_channels)`` requested spend in CNY, summing to at most ``budget_left_cny``.
    """
    pace = (np.power(4.0, action[:, 0]) - 0.25) / 0.75
    total = np.minimum(pace * budget_left_cny / hours_left, budget_left_cny)
    logits = SHARE_TEMPERATURE * action[:, 1:]
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    share = weights / weights.sum(axis=1, keepdims=True)
    return np.maximum(total, 0.0)[:, None] * share


@dataclass
class CampaignState:
    """What changes during an episode. Per-channel arrays are ``(n_envs, n_channels)``."""

    hour: int
    budget_left_cny: np.ndarray  # (n,)
    returning_pool: np.ndarray  # (n,) store customers who can come back
    pending_conversions: np.ndarray  # (n, k) purchases made, not yet arrived
    pending_new_customers: np.ndarray  # (n, k) of which by new customers
    pending_gmv_cny: np.ndarray  # (n, k)
    # Cumulative totals since reset, attributed at arrival (what the advertiser sees).
    spend_cny: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    conversions: np.ndarray
    new_customers: np.ndarray
    gmv_cny: np.ndarray
    # The last hour's metrics, lagged inputs of the observation.
    last: dict[str, np.ndarray] = field(default_factory=dict)
    # Conversions the attribution window did not reach at the end (reported, never counted).
    unattributed_conversions: np.ndarray | None = None
    unattributed_gmv_cny: np.ndarray | None = None


def initial_state(params: CampaignParams) -> CampaignState:
    """State at hour 0: full budget, nothing pending, the scenario's customer pool."""
    n, k = params.n_envs, params.n_channels

    def zeros() -> np.ndarray:
        return np.zeros((n, k))

    state = CampaignState(
        hour=0,
        budget_left_cny=params.budget_cny.copy(),
        returning_pool=params.returning_pool_init.copy(),
        pending_conversions=zeros(),
        pending_new_customers=zeros(),
        pending_gmv_cny=zeros(),
        spend_cny=zeros(),
        impressions=zeros(),
        clicks=zeros(),
        conversions=zeros(),
        new_customers=zeros(),
        gmv_cny=zeros(),
        unattributed_conversions=np.zeros(n),
        unattributed_gmv_cny=np.zeros(n),
    )
    state.last = {name: zeros() for name in HOURLY_METRICS}
    return state


HOURLY_METRICS = ("spend_cny", "impressions", "clicks", "conversions", "new_customers", "gmv_cny")


def market_conditions(params: CampaignParams, hour: int, u: np.ndarray) -> dict[str, np.ndarray]:
    """Volume, price level and conversion multiplier of every channel for one hour.

    Returns arrays of shape ``(n_envs, n_channels)``: ``volume`` (impressions on offer),
    ``price_median_cny`` (per impression), ``max_spend_cny`` (cost of buying the whole market),
    ``cvr_mult`` (event effect on conversion).
    """
    hour_of_day, day = hour % 24, hour // 24
    evening = np.cos(2.0 * np.pi * (hour_of_day - 20) / 24.0)  # peak at 20:00, trough at 08:00
    diurnal = 1.0 + 0.6 * _DIURNAL * evening
    weekly = 1.15 if day % 7 in (5, 6) else 1.0
    competition = 1.0 + 0.25 * evening

    since_event = hour - params.event_start_hour  # (n,)
    in_event = (since_event >= 0) & (since_event < EVENT_LENGTH_HOURS)
    in_warmup = (since_event < 0) & (since_event >= -WARMUP_HOURS)
    traffic_mult = np.where(in_event, EVENT_TRAFFIC_MULT, np.where(in_warmup, 1.2, 1.0))
    price_mult = np.where(in_event, EVENT_PRICE_MULT, np.where(in_warmup, 1.1, 1.0))
    cvr_mult = np.where(in_event, EVENT_CVR_MULT, np.where(in_warmup, WARMUP_CVR_MULT, 1.0))
    boost = 1.0 + params.coldstart_boost[:, None] * np.exp(-hour / COLDSTART_DECAY_HOURS) * _BOOSTED

    volume_noise = np.exp(_VOLUME_SIGMA * crn.normals(u[:, _S_VOLUME]) - 0.5 * _VOLUME_SIGMA**2)
    volume = (
        params.volume_per_hour * (diurnal * weekly) * (traffic_mult[:, None] * boost) * volume_noise
    )
    price = (
        params.price_median_cny
        * (competition * price_mult)[:, None]
        * np.exp(0.1 * crn.normals(u[:, _S_PRICE]))
    )
    return {
        "volume": volume,
        "price_median_cny": price,
        "max_spend_cny": volume * price * np.exp(0.5 * _PRICE_SIGMA**2),
        "cvr_mult": np.broadcast_to(cvr_mult[:, None], volume.shape),
    }


def win_curve(spend_cny: np.ndarray, volume: np.ndarray, max_spend_cny: np.ndarray) -> np.ndarray:
    """Expected impressions bought with ``spend_cny`` (all arrays ``(n, k)``).

    Competing prices are lognormal with log-sd ``sigma``; bidding ``b`` wins every impression
    priced below ``b`` at its price (second price), so with ``z = spend / max_spend`` the
    impressions won are ``volume * Phi(Phi^-1(z) + sigma)``: concave and saturating.
    """
    z = np.clip(spend_cny / np.maximum(max_spend_cny, 1e-12), 0.0, MAX_WIN_FRAC)
    return volume * ndtr(ndtri(z) + _PRICE_SIGMA)


def _take(count, new, gmv_cny, taken):
    """Split ``taken`` of ``count`` conversions: new customers (rounded) and GMV (pro rata)."""
    ratio = np.divide(taken, count, out=np.zeros_like(count), where=count > 0)
    new_taken = np.clip(np.floor(new * ratio + 0.5), taken - (count - new), np.minimum(new, taken))
    gmv_taken = np.where(taken >= count, gmv_cny, gmv_cny * ratio)
    return new_taken, gmv_taken


def simulate_hour(
    params: CampaignParams, state: CampaignState, spend_request_cny: np.ndarray
) -> dict[str, np.ndarray]:
    """Advance every campaign by one hour in place; return the hour's per-channel metrics.

    Args:
        params: fixed campaign parameters.
        state: mutated in place (``state.hour`` is the hour simulated and is incremented).
        spend_request_cny: ``(n_envs, n_channels)`` non-negative spend wanted this hour. Requests
            beyond the remaining budget are scaled down; requests beyond what the market sells
            are not spent (the money stays in the budget).

    Returns:
        Per-channel ``(n_envs, n_channels)`` arrays: ``spend_cny``, ``impressions``, ``clicks``,
        ``conversions``, ``new_customers``, ``gmv_cny`` (arrived, i.e. attributed this hour),
        and hidden ``purchases`` / ``purchase_gmv_cny`` of this hour's click cohort.
    """
    hour = state.hour
    keys = crn.campaign_keys(params.seeds, _DYNAMICS_DOMAIN)
    u = crn.uniforms(keys, crn.counters(hour, _N_STREAMS, params.n_channels))
    market = market_conditions(params, hour, u)

    request = np.maximum(spend_request_cny, 0.0)
    total = request.sum(axis=1)
    scale = np.where(total > state.budget_left_cny, state.budget_left_cny / np.maximum(total, 1e-12), 1.0)
    allocated = np.minimum(request * scale[:, None], MAX_WIN_FRAC * market["max_spend_cny"])

    impressions = np.floor(win_curve(allocated, market["volume"], market["max_spend_cny"]) + 0.5)
    clicks = crn.binomial(impressions, params.ctr, u[:, _S_CLICKS])
    pool = state.returning_pool[:, None]
    returning_frac = _AFFINITY * pool / (pool + params.pool_half_saturation[:, None])
    clicks_ret = crn.binomial(clicks, returning_frac, u[:, _S_RETURNING])
    cvr_mult = market["cvr_mult"]
    conv_new = crn.binomial(
        clicks - clicks_ret, np.minimum(params.cvr_new * cvr_mult, 0.95), u[:, _S_CONV_NEW]
    )
    conv_ret = crn.binomial(
        clicks_ret, np.minimum(params.cvr_returning * cvr_mult, 0.95), u[:, _S_CONV_RET]
    )
    purchases = conv_new + conv_ret
    # Mean order value of the cohort: lognormal per order, averaged over the cohort.
    sigma = 0.3 / np.sqrt(np.maximum(purchases, 1.0))
    order_value = params.price_cny[:, None] * np.exp(
        sigma * crn.normals(u[:, _S_ORDER_VALUE]) - 0.5 * sigma**2
    )
    purchase_gmv = purchases * order_value

    # Pay-per-sale channels cost commission x GMV, capped by the hour's allocation: the
    # affiliate programme stops promoting once the committed commission is used up.
    commission = _COMMISSION * purchase_gmv
    over = _PAYS_PER_SALE & (commission > allocated)
    if over.any():
        keep = np.divide(allocated, commission, out=np.ones_like(allocated), where=over)
        conv_new = np.where(over, np.floor(conv_new * keep), conv_new)
        conv_ret = np.where(over, np.floor(conv_ret * keep), conv_ret)
        purchases = conv_new + conv_ret
        purchase_gmv = purchases * order_value
    spend = np.where(_PAYS_PER_SALE, _COMMISSION * purchase_gmv, allocated)

    # Delays (Chapelle 2014): a share arrives within the hour, the rest geometrically later.
    immediate = crn.binomial(purchases, params.immediate_frac[:, None], u[:, _S_IMMEDIATE])
    old_arrivals = crn.binomial(
        state.pending_conversions, params.delay_hazard_per_hour[:, None], u[:, _S_ARRIVAL]
    )
    imm_new, imm_gmv = _take(purchases, conv_new, purchase_gmv, immediate)
    old_new, old_gmv = _take(
        state.pending_conversions, state.pending_new_customers, state.pending_gmv_cny, old_arrivals
    )
    arrived = {
        "conversions": immediate + old_arrivals,
        "new_customers": imm_new + old_new,
        "gmv_cny": imm_gmv + old_gmv,
    }
    state.pending_conversions += purchases - arrived["conversions"]
    state.pending_new_customers += conv_new - arrived["new_customers"]
    state.pending_gmv_cny += purchase_gmv - arrived["gmv_cny"]

    state.hour = hour + 1
    if state.hour >= params.horizon_hours:
        _settle(params, state, u[:, _S_SETTLE], arrived)

    state.budget_left_cny = np.maximum(state.budget_left_cny - spend.sum(axis=1), 0.0)
    state.returning_pool = state.returning_pool + arrived["new_customers"].sum(axis=1)
    hourly = {"spend_cny": spend, "impressions": impressions, "clicks": clicks, **arrived}
    for name in HOURLY_METRICS:
        getattr(state, name).__iadd__(hourly[name])
        state.last[name] = hourly[name]
    return {**hourly, "purchases": purchases, "purchase_gmv_cny": purchase_gmv}


def _settle(params: CampaignParams, state: CampaignState, u: np.ndarray, arrived: dict) -> None:
    """End of horizon: pending conversions that arrive within the attribution window count now.

    The rest are moved to ``unattributed_*`` (reported in info, never counted as GMV), so
    pending, arrived and unattributed always sum to everything purchased.
    """
    p_window = 1.0 - (1.0 - params.delay_hazard_per_hour) ** ATTRIBUTION_WINDOW_HOURS
    settled = crn.binomial(state.pending_conversions, p_window[:, None], u)
    new, gmv = _take(state.pending_conversions, state.pending_new_customers, state.pending_gmv_cny, settled)
    arrived["conversions"] = arrived["conversions"] + settled
    arrived["new_customers"] = arrived["new_customers"] + new
    arrived["gmv_cny"] = arrived["gmv_cny"] + gmv
    state.unattributed_conversions += (state.pending_conversions - settled).sum(axis=1)
    state.unattributed_gmv_cny += (state.pending_gmv_cny - gmv).sum(axis=1)
    for pending in (state.pending_conversions, state.pending_new_customers, state.pending_gmv_cny):
        pending[:] = 0.0


def hourly_markets(params: CampaignParams) -> dict[str, np.ndarray]:
    """Realized market of every channel-hour, ``(n_envs, horizon_hours, n_channels)`` arrays.

    Ground truth for the hindsight oracle (never observed by policies). The market does not
    depend on actions (common random numbers), so this is exactly what any policy meets:
    ``volume`` (impressions on offer), ``max_spend_cny`` (cost of the whole market; spend
    ``s`` buys ``win_curve(s, volume, max_spend_cny)`` impressions, at most ``MAX_WIN_FRAC`` of
    it), ``cvr_mult`` (event multiplier on the true CVRs).
    """
    keys = crn.campaign_keys(params.seeds, _DYNAMICS_DOMAIN)
    per_hour = [
        market_conditions(params, hour, crn.uniforms(keys, crn.counters(hour, _N_STREAMS, params.n_channels)))
        for hour in range(params.horizon_hours)
    ]
    return {key: np.stack([m[key] for m in per_hour], axis=1) for key in ("volume", "max_spend_cny", "cvr_mult")}
