"""Named scenarios and the sampling of campaigns from seeds.

A scenario is a distribution over campaigns; ``sample_campaigns(scenario, seeds)`` draws one
campaign per seed with counter-based randomness, so a seed always yields the same campaign.

Seed split: training uses seeds below ``EVAL_SEED_START`` (1,000,000); evaluation uses seeds from
``EVAL_SEED_START`` up. Validation during training uses ``VALIDATION_SEED_START`` (900,000) up to
the evaluation range, which training episodes never reach (see ``TRAIN_SEED_LIMIT``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from budgetgym.envs import random as crn
from budgetgym.envs.channels import CHANNEL_NAMES, DEFAULT_CHANNELS, ChannelSpec, channel_array
from budgetgym.envs.errors import unknown_name_error

EVAL_SEED_START = 1_000_000
VALIDATION_SEED_START = 900_000
TRAIN_SEED_LIMIT = VALIDATION_SEED_START
HORIZON_HOURS = 168
REFERENCE_BUDGET_CNY = 50_000.0
REFERENCE_PRICE_CNY = 150.0
ATTRIBUTION_WINDOW_HOURS = 168

_SAMPLING_DOMAIN = 1


@dataclass(frozen=True)
class ScenarioSpec:
    """Distribution of campaigns for one named scenario. Ranges are ``(low, high)``.

    Attributes:
        name: scenario identifier.
        description: one line for ``budgetgym list-scenarios``.
        budget_cny: total budget, log-uniform.
        target_roi: merchant's target GMV / spend, uniform.
        price_cny: average order value, log-uniform.
        channel_cvr_spread: log-sd of a per-channel CVR multiplier (how much channels' true
            quality differs from the reference; the policy must find out which channel is good).
        cvr_prior_sigma: log-sd of a campaign-wide CVR multiplier (wide for new products).
        cvr_prior_median: median of that multiplier (new products without reviews convert less).
        creative_quality: multiplier on CTR (and, square-rooted, on the volume a creative gets).
        immediate_frac: share of conversions in the click's hour (Chapelle 2014: ~35%).
        mean_delay_hours: mean of the geometric delay of the other conversions.
        returning_pool_per_kcny: store customers (returning pool) per 1,000 CNY of budget.
        new_customer_value_frac: extra value of a new customer, as a fraction of the price,
            added to the reward (acquisition goals value customers beyond the first order).
        gross_margin_frac: gross margin on GMV (used by the ``profit`` reward).
        event: whether a Double-11 style promotion happens within the horizon.
        coldstart_boost: extra platform traffic at launch (1.0 doubles volume), decaying.
    """

    name: str
    description: str
    budget_cny: tuple[float, float] = (20_000.0, 150_000.0)
    target_roi: tuple[float, float] = (2.0, 3.0)
    price_cny: tuple[float, float] = (80.0, 250.0)
    channel_cvr_spread: float = 0.35
    cvr_prior_sigma: float = 0.15
    cvr_prior_median: float = 1.0
    creative_quality: tuple[float, float] = (0.8, 1.2)
    immediate_frac: float = 0.35
    mean_delay_hours: float = 24.0
    returning_pool_per_kcny: tuple[float, float] = (100.0, 400.0)
    new_customer_value_frac: float = 0.0
    gross_margin_frac: float = 0.45
    event: bool = False
    coldstart_boost: float = 0.0


SCENARIOS: dict[str, ScenarioSpec] = {
    s.name: s
    for s in (
        ScenarioSpec(
            "hit_product",
            "Established best-seller: large customer pool, well-known channel quality.",
            target_roi=(2.2, 3.2),
            channel_cvr_spread=0.3,
        ),
        ScenarioSpec(
            "new_product_cold_start",
            "New product: CVR drawn from a wide prior, no customers yet, launch traffic boost.",
            target_roi=(1.6, 2.4),
            channel_cvr_spread=0.6,
            cvr_prior_sigma=0.6,
            cvr_prior_median=0.7,
            returning_pool_per_kcny=(0.0, 5.0),
            coldstart_boost=1.0,
        ),
        ScenarioSpec(
            "high_price_long_cycle",
            "High-price item: rare conversions that arrive days after the click.",
            target_roi=(1.6, 2.6),
            price_cny=(1_500.0, 6_000.0),
            immediate_frac=0.1,
            mean_delay_hours=72.0,
            returning_pool_per_kcny=(5.0, 30.0),
        ),
        ScenarioSpec(
            "double11_promotion",
            "Double-11: a 48-hour surge of traffic, competition and conversion, after a warm-up.",
            target_roi=(2.4, 3.3),
            event=True,
        ),
        ScenarioSpec(
            "new_customer_acquisition",
            "Acquisition goal: each new customer is worth extra lifetime value.",
            target_roi=(1.8, 2.8),
            returning_pool_per_kcny=(50.0, 150.0),
            new_customer_value_frac=0.5,
        ),
        ScenarioSpec(
            "low_ctr_creative",
            "Weak creative: low click-through caps what money can buy in every slot.",
            target_roi=(1.4, 2.0),
            creative_quality=(0.5, 0.75),
        ),
    )
}
MIXED = "mixed"
SCENARIO_NAMES: tuple[str, ...] = (*SCENARIOS, MIXED)
MIXED_DESCRIPTION = "Campaigns drawn uniformly from all the scenarios above (the training default)."

# Double-11 calendar (hours from the campaign start): warm-up, then the surge.
EVENT_START_HOUR = (84, 108)
EVENT_LENGTH_HOURS = 48
WARMUP_HOURS = 48
EVENT_TRAFFIC_MULT = 3.0
EVENT_PRICE_MULT = 1.8
EVENT_CVR_MULT = 2.0
WARMUP_CVR_MULT = 0.6  # shoppers add to cart and wait for the discount
COLDSTART_DECAY_HOURS = 72.0
NO_EVENT_HOUR = 10_000  # an event start past any horizon


def check_seed(seed: object, what: str = "seed") -> int:
    """``seed`` as an int: a Python or numpy integer >= 0; anything else (a bool, a float even
    if whole, a string) raises ``ValueError`` naming ``what`` and the value."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {seed!r}.")
    return int(seed)


def scenario_description(name: str) -> str:
    """One-line description of a scenario name (including ``mixed``)."""
    return MIXED_DESCRIPTION if name == MIXED else resolve_scenario(name).description


def check_scenario(name: str) -> str:
    """Return ``name`` if it names a scenario (``mixed`` included), else raise ``ValueError``
    listing the valid names and the closest match."""
    if name not in SCENARIO_NAMES:
        raise unknown_name_error("scenario", name, SCENARIO_NAMES)
    return name


def resolve_scenario(name: str) -> ScenarioSpec:
    """The spec of a named scenario (not ``mixed``); unknown names raise ``ValueError``."""
    if name not in SCENARIOS:
        raise unknown_name_error("scenario", name, tuple(SCENARIOS))
    return SCENARIOS[name]


@dataclass(frozen=True)
class CampaignParams:
    """Fixed parameters of a batch of campaigns (hidden from the policy).

    Arrays have a leading ``(n_envs,)`` axis; per-channel arrays are ``(n_envs, n_channels)``.
    """

    seeds: np.ndarray  # (n,) int64
    scenario_index: np.ndarray  # (n,) int64 into tuple(SCENARIOS)
    budget_cny: np.ndarray  # (n,)
    target_roi: np.ndarray  # (n,)
    price_cny: np.ndarray  # (n,) average order value
    volume_per_hour: np.ndarray  # (n, k) impressions on offer, before profiles
    price_median_cny: np.ndarray  # (n, k) per impression
    ctr: np.ndarray  # (n, k) includes creative quality
    cvr_new: np.ndarray  # (n, k) true, hidden
    cvr_returning: np.ndarray  # (n, k) true, hidden
    immediate_frac: np.ndarray  # (n,)
    delay_hazard_per_hour: np.ndarray  # (n,) geometric arrival probability per hour
    returning_pool_init: np.ndarray  # (n,) customers
    pool_half_saturation: np.ndarray  # (n,) customers at which half the affinity is reached
    new_customer_value_cny: np.ndarray  # (n,)
    gross_margin_frac: np.ndarray  # (n,)
    event_start_hour: np.ndarray  # (n,) NO_EVENT_HOUR when the scenario has no event
    coldstart_boost: np.ndarray  # (n,)
    horizon_hours: int
    channels: tuple[ChannelSpec, ...] = DEFAULT_CHANNELS

    @property
    def n_envs(self) -> int:
        return int(self.budget_cny.shape[0])

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def scenario_names(self) -> list[str]:
        names = tuple(SCENARIOS)
        return [names[i] for i in self.scenario_index]

    def subset(self, index: np.ndarray | slice) -> CampaignParams:
        """The parameters of some campaigns of the batch (same channels and horizon)."""
        values = {}
        for f in fields(self):
            v = getattr(self, f.name)
            values[f.name] = v[index] if isinstance(v, np.ndarray) else v
        return CampaignParams(**values)


def _log_uniform(u: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    lo, hi = np.log(bounds[..., 0]), np.log(bounds[..., 1])
    return np.exp(lo + u * (hi - lo))


def sample_campaigns(
    scenario: str, seeds: np.ndarray | list[int], horizon_hours: int = HORIZON_HOURS
) -> CampaignParams:
    """Draw one campaign per seed from a scenario (``mixed`` picks the scenario per seed too).

    Args:
        scenario: a name from ``SCENARIO_NAMES``.
        seeds: ``(n_envs,)`` non-negative integers; the same seed always gives the same campaign.
        horizon_hours: episode length in hourly steps.
    """
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    if seeds.size and seeds.min() < 0:
        raise ValueError("Seeds must be non-negative integers.")
    if horizon_hours < 1:
        raise ValueError(f"horizon_hours must be >= 1, got {horizon_hours}.")
    specs = list(SCENARIOS.values())
    n, k = seeds.size, len(DEFAULT_CHANNELS)
    keys = crn.campaign_keys(seeds, _SAMPLING_DOMAIN)
    u = crn.uniforms(keys, crn.counters(0, 12, k))  # (n, 12, k)
    if scenario == MIXED:
        idx = np.minimum((u[:, 0, 0] * len(specs)).astype(np.int64), len(specs) - 1)
    else:
        idx = np.full(n, list(SCENARIOS).index(resolve_scenario(scenario).name), dtype=np.int64)

    def per_scenario(attr: str) -> np.ndarray:
        table = np.array([getattr(spec, attr) for spec in specs], dtype=np.float64)
        return table[idx].reshape(n, -1)

    budget = _log_uniform(u[:, 1, 0], per_scenario("budget_cny"))
    roi_lo, roi_hi = per_scenario("target_roi").T
    target_roi = roi_lo + u[:, 1, 1] * (roi_hi - roi_lo)
    price = _log_uniform(u[:, 1, 2], per_scenario("price_cny"))
    q_lo, q_hi = per_scenario("creative_quality").T
    quality = q_lo + u[:, 1, 3] * (q_hi - q_lo)
    pool_lo, pool_hi = per_scenario("returning_pool_per_kcny").T
    pool = (pool_lo + u[:, 1, 4] * (pool_hi - pool_lo)) * budget / 1000.0

    # Market size grows with budget, a little slower: bigger advertisers saturate more.
    scale = (budget / REFERENCE_BUDGET_CNY) ** 0.9
    volume = channel_array("volume_per_hour")[None, :] * scale[:, None]
    volume = volume * np.exp(0.2 * crn.normals(u[:, 2, :]))
    # Weak creatives earn worse slots: less volume as well as fewer clicks.
    volume = volume * np.sqrt(quality)[:, None]
    price_median = channel_array("price_median_cny")[None, :] * np.exp(0.15 * crn.normals(u[:, 3]))
    ctr = channel_array("ctr")[None, :] * quality[:, None] * np.exp(0.1 * crn.normals(u[:, 4]))

    # Conversion falls roughly in inverse proportion to price (same GMV per click order of
    # magnitude), times campaign-wide and per-channel multipliers the policy cannot observe.
    price_factor = (REFERENCE_PRICE_CNY / price) ** 0.95
    campaign_mult = per_scenario("cvr_prior_median")[:, 0] * np.exp(
        per_scenario("cvr_prior_sigma")[:, 0] * crn.normals(u[:, 5, 0])
    )
    channel_mult = np.exp(per_scenario("channel_cvr_spread") * crn.normals(u[:, 6]))
    cvr_mult = (price_factor * campaign_mult)[:, None] * channel_mult
    cvr_new = np.minimum(channel_array("cvr_new")[None, :] * cvr_mult, 0.5)
    cvr_returning = np.minimum(channel_array("cvr_returning")[None, :] * cvr_mult, 0.8)

    event = per_scenario("event")[:, 0] > 0
    ev_lo, ev_hi = EVENT_START_HOUR
    event_start = np.where(
        event, np.floor(ev_lo + u[:, 7, 0] * (ev_hi - ev_lo + 1)), NO_EVENT_HOUR
    ).astype(np.int64)

    mean_delay = per_scenario("mean_delay_hours")[:, 0]
    return CampaignParams(
        seeds=seeds,
        scenario_index=idx,
        budget_cny=budget,
        target_roi=target_roi,
        price_cny=price,
        volume_per_hour=volume,
        price_median_cny=price_median,
        ctr=ctr,
        cvr_new=cvr_new,
        cvr_returning=cvr_returning,
        immediate_frac=per_scenario("immediate_frac")[:, 0],
        delay_hazard_per_hour=1.0 / mean_delay,
        returning_pool_init=np.floor(pool),
        pool_half_saturation=np.maximum(200.0 * budget / 1000.0, 1.0),
        new_customer_value_cny=per_scenario("new_customer_value_frac")[:, 0] * price,
        gross_margin_frac=per_scenario("gross_margin_frac")[:, 0],
        event_start_hour=event_start,
        coldstart_boost=per_scenario("coldstart_boost")[:, 0],
        horizon_hours=int(horizon_hours),
    )


__all__ = [
    "ATTRIBUTION_WINDOW_HOURS",
    "CHANNEL_NAMES",
    "CampaignParams",
    "EVAL_SEED_START",
    "HORIZON_HOURS",
    "MIXED",
    "SCENARIOS",
    "SCENARIO_NAMES",
    "ScenarioSpec",
    "TRAIN_SEED_LIMIT",
    "VALIDATION_SEED_START",
    "check_scenario",
    "resolve_scenario",
    "sample_campaigns",
    "scenario_description",
]
