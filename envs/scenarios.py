"""Scenarios by name or file, and the sampling of campaigns from seeds.

A scenario is a distribution over campaigns, written as a YAML file (schema in
``scenario_specs.py``, documented in docs/scenarios.md). The shipped ones live in
``envs/scenario_files/``; anywhere a scenario name is accepted, a path to a user's file is too.
``sample_campaigns(scenario, seeds)`` draws one campaign per seed with counter-based
randomness, so a seed always yields the same campaign.

Seed split: training uses seeds below ``EVAL_SEED_START`` (1,000,000); evaluation uses seeds from
``EVAL_SEED_START`` up. Validation during training uses ``VALIDATION_SEED_START`` (900,000) up to
the evaluation range, which training episodes never reach (see ``TRAIN_SEED_LIMIT``).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, fields
from importlib import resources
from operator import attrgetter
from pathlib import Path

import numpy as np

from budgetgym.envs import random as crn
from budgetgym.envs.channels import CHANNEL_NAMES, ChannelSpec, channel_array
from budgetgym.envs.scenario_specs import (
    ATTRIBUTION_WINDOW_HOURS,
    COLDSTART_DECAY_HOURS,
    Mixture,
    ScenarioLibrary,
    ScenarioSpec,
    is_scenario_path,
    resolve_file,
)

EVAL_SEED_START = 1_000_000
VALIDATION_SEED_START = 900_000
TRAIN_SEED_LIMIT = VALIDATION_SEED_START
HORIZON_HOURS = 168
REFERENCE_BUDGET_CNY = 50_000.0
REFERENCE_PRICE_CNY = 150.0
NO_EVENT_HOUR = 10_000  # an event start past any horizon

_SAMPLING_DOMAIN = 1
# Uniforms of one campaign's sampling: a table of (stream, column) cells, at least
# _MIN_COLUMNS wide (the campaign-wide draws of stream 1 take five columns) and as wide as the
# channel list. Streams 0-6 are the draws below; event j reads the j-th cell from stream 7 on.
# Stream 0 holds the member (column 0) and the start's hour of the week (column 1).
_N_STREAMS = 12
_MIN_COLUMNS = 6
_EVENT_STREAM = 7


def training_seeds(seeds: np.ndarray, purpose: str) -> np.ndarray:
    """``seeds`` as int64 if there is one at least and every one is a training seed
    (``0 <= seed < TRAIN_SEED_LIMIT``): work fitted or calibrated on campaigns never sees a
    validation or held-out one. ``ValueError`` otherwise, naming ``purpose`` (e.g. "The
    calibration") and the first seed outside the range."""
    seeds = np.asarray(seeds, dtype=np.int64)
    outside = (seeds < 0) | (seeds >= TRAIN_SEED_LIMIT)
    if seeds.size == 0 or outside.any():
        got = f"seed {int(seeds[outside][0]):,}" if outside.any() else "no seed"
        raise ValueError(
            f"{purpose} must use training seeds (0 to {TRAIN_SEED_LIMIT - 1:,}), got {got}."
        )
    return seeds


#: The shipped scenarios and mixtures (``envs/scenario_files``).
LIBRARY = ScenarioLibrary(Path(str(resources.files("budgetgym.envs").joinpath("scenario_files"))))
#: The example scenario that switches every market mechanism on (docs/simulator.md).
DEEP_MARKET = LIBRARY.folder.parent / "scenario_examples" / "deep_market.yaml"
#: The plain market: the seven shipped scenarios with every mechanism off, a folder of files (an
#: ablation, and the base the mechanisms' tests switch one mechanism on in).
PLAIN = LIBRARY.folder.parent / "scenario_examples" / "plain"
SCENARIOS: dict[str, ScenarioSpec] = LIBRARY.scenarios
MIXED = "mixed"
SCENARIO_NAMES: tuple[str, ...] = LIBRARY.names

# The shipped Double-11 calendar (the rules' event prior and the observation's window lengths).
_DOUBLE11 = SCENARIOS["double11_promotion"].events[0]
EVENT_LENGTH_HOURS = _DOUBLE11.length_hours
WARMUP_HOURS = _DOUBLE11.warmup_hours
EVENT_TRAFFIC_MULT = _DOUBLE11.multipliers.traffic
EVENT_PRICE_MULT = _DOUBLE11.multipliers.price
EVENT_CVR_MULT = _DOUBLE11.multipliers.cvr
WARMUP_CVR_MULT = _DOUBLE11.warmup_multipliers.cvr  # shoppers add to cart, wait for the discount


def check_seed(seed: object, what: str = "seed") -> int:
    """``seed`` as an int: a Python or numpy integer >= 0; anything else (a bool, a float even
    if whole, a string) raises ``ValueError`` naming ``what`` and the value."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {seed!r}.")
    return int(seed)


@functools.lru_cache(maxsize=64)
def _resolve_file_cached(path: str, mtime_ns: int) -> ScenarioSpec | Mixture:
    return resolve_file(path, LIBRARY)


def resolve_scenario(scenario: str | os.PathLike[str]) -> ScenarioSpec | Mixture:
    """The spec of a scenario name (``mixed`` included) or of a scenario file's path.

    A file is read again when it changes. Raises ``ValueError`` for an unknown name (listing the
    valid ones and the closest), a missing file, or a file that fails validation (naming the
    file and the key)."""
    if not is_scenario_path(scenario):
        return LIBRARY.resolve(str(scenario))
    path = Path(scenario).expanduser().resolve()
    try:
        mtime_ns = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise ValueError(f"Scenario file {str(scenario)!r} does not exist.") from None
    return _resolve_file_cached(str(path), mtime_ns)


def check_scenario(scenario: str | os.PathLike[str]) -> str:
    """``scenario`` (as a string) if it names a scenario or is a valid scenario file, else raise
    ``ValueError`` as :func:`resolve_scenario` does."""
    resolve_scenario(scenario)
    return os.fspath(scenario)


def scenario_description(scenario: str | os.PathLike[str]) -> str:
    """One-line description of a scenario name or file (``mixed`` included)."""
    return resolve_scenario(scenario).description


@dataclass(frozen=True)
class CampaignParams:
    """Fixed parameters of a batch of campaigns (hidden from the policy, except the calendar).

    Arrays have a leading ``(n_envs,)`` axis; per-channel arrays are ``(n_envs, n_channels)``
    in the order of ``channels``; calendar arrays are ``(n_envs, horizon_hours)``.
    """

    seeds: np.ndarray  # (n,) int64
    scenario_index: np.ndarray  # (n,) int64 into members
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
    attribution_window_hours: np.ndarray  # (n,) hours after the last one that still count
    cvr_interested: np.ndarray  # (n, k) true, hidden: an interested customer's CVR
    returning_pool_init: np.ndarray  # (n,) customers
    pool_half_saturation: np.ndarray  # (n,) customers at which half the affinity is reached
    interest_retention: np.ndarray  # (n,) share of the interested customers kept per hour
    interest_half_saturation: np.ndarray  # (n,) interested customers at half the affinity
    cvr_drift_sigma: np.ndarray  # (n,) log-sd of the hourly innovation of the CVR drift
    cvr_drift_persistence: np.ndarray  # (n,) share of the drift kept per hour
    new_customer_value_cny: np.ndarray  # (n,)
    gross_margin_frac: np.ndarray  # (n,)
    event_start_hour: np.ndarray  # (n,) int64 first event's start, NO_EVENT_HOUR without
    event_length_hours: np.ndarray  # (n,) int64 first event's length (0 without)
    warmup_hours: np.ndarray  # (n,) int64 first event's warm-up length (0 without)
    presale_start_hour: np.ndarray  # (n,) int64 the pre-sale event's start, NO_EVENT_HOUR without
    presale_warmup_hours: np.ndarray  # (n,) int64 its warm-up length (0 without)
    hourly_traffic_mult: np.ndarray  # (n, horizon) calendar factor on volume
    hourly_price_mult: np.ndarray  # (n, horizon) calendar factor on impression prices
    hourly_cvr_mult: np.ndarray  # (n, horizon) calendar factor on CVR
    coldstart_boost: np.ndarray  # (n,) launch boost on channels with launch support
    coldstart_decay_hours: np.ndarray  # (n,) its exponential decay time
    start_hour_of_week: np.ndarray  # (n,) int64 hour of the week of hour 0 (0: Monday 00:00)
    learning_gap: np.ndarray  # (n,) share of conversions the platform's targeting misses at first
    learning_clicks: np.ndarray  # (n,) cumulative clicks over which the gap closes by e
    horizon_hours: int
    channels: tuple[ChannelSpec, ...]  # the scenario's channels, in the order of the k axis
    members: tuple[str, ...]  # scenario names that scenario_index indexes

    @property
    def n_envs(self) -> int:
        return int(self.budget_cny.shape[0])

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)

    @property
    def scenario_names(self) -> list[str]:
        """The scenario each campaign plays, ``(n,)`` names."""
        return [self.members[i] for i in self.scenario_index]

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


def member_index(u: np.ndarray, weights: tuple[float, ...]) -> np.ndarray:
    """Member of each campaign: the inverse CDF of the weights at the campaign's uniform.

    ``(n,)`` uniforms in (0, 1) to ``(n,)`` int64 indices into ``weights``. It depends only on
    the mixture's own members and weights, so adding scenarios elsewhere changes no campaign;
    with equal weights it is ``floor(u * n_members)``.
    """
    cumulative = np.cumsum(np.asarray(weights, dtype=np.float64))
    index = np.searchsorted(cumulative, u * cumulative[-1], side="right")
    return np.minimum(index, len(weights) - 1).astype(np.int64)


def _calendar(
    members: tuple[ScenarioSpec, ...], idx: np.ndarray, u_events: np.ndarray, horizon: int
) -> dict[str, np.ndarray]:
    """The event calendar of each campaign: the first event's window and, hour by hour, the
    product of the multipliers of every active event and warm-up window."""
    n = idx.size
    hours = np.arange(horizon)[None, :]
    mult = {key: np.ones((n, horizon)) for key in ("traffic", "price", "cvr")}
    first = {
        "event_start_hour": np.full(n, NO_EVENT_HOUR, dtype=np.int64),
        "event_length_hours": np.zeros(n, dtype=np.int64),
        "warmup_hours": np.zeros(n, dtype=np.int64),
        "presale_start_hour": np.full(n, NO_EVENT_HOUR, dtype=np.int64),
        "presale_warmup_hours": np.zeros(n, dtype=np.int64),
    }
    for m, spec in enumerate(members):
        rows = np.flatnonzero(idx == m)
        for j, event in enumerate(spec.events):
            lo, hi = event.start_hour
            start = np.floor(lo + u_events[rows, j] * (hi - lo + 1)).astype(np.int64)
            since = hours - start[:, None]
            active = (since >= 0) & (since < event.length_hours)
            warmup = (since >= -event.warmup_hours) & (since < 0)
            for key in mult:
                factor = np.where(
                    active,
                    getattr(event.multipliers, key),
                    np.where(warmup, getattr(event.warmup_multipliers, key), 1.0),
                )
                mult[key][rows] *= factor
            if j == 0:
                first["event_start_hour"][rows] = start
                first["event_length_hours"][rows] = event.length_hours
                first["warmup_hours"][rows] = event.warmup_hours
            if event.presale:
                first["presale_start_hour"][rows] = start
                first["presale_warmup_hours"][rows] = event.warmup_hours
    return {
        **first,
        "hourly_traffic_mult": mult["traffic"],
        "hourly_price_mult": mult["price"],
        "hourly_cvr_mult": mult["cvr"],
    }


def sample_campaigns(
    scenario: str | os.PathLike[str] | ScenarioSpec | Mixture,
    seeds: np.ndarray | list[int],
    horizon_hours: int | None = None,
) -> CampaignParams:
    """Draw one campaign per seed from a scenario (a mixture picks the member per seed too).

    Args:
        scenario: a name from ``SCENARIO_NAMES``, a scenario file's path, or a resolved spec.
        seeds: ``(n_envs,)`` non-negative integers; the same seed always gives the same campaign.
        horizon_hours: episode length in hourly steps (default: the scenario's).
    """
    if not isinstance(scenario, (ScenarioSpec, Mixture)):
        scenario = resolve_scenario(scenario)
    members, weights = (
        (scenario.members, scenario.weights)
        if isinstance(scenario, Mixture)
        else ((scenario,), (1.0,))
    )
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    if seeds.size and seeds.min() < 0:
        raise ValueError("Seeds must be non-negative integers.")
    horizon = members[0].horizon_hours if horizon_hours is None else int(horizon_hours)
    if horizon < 1:
        raise ValueError(f"horizon_hours must be >= 1, got {horizon_hours}.")
    channels = members[0].channels
    n, k = seeds.size, len(channels)
    columns = max(k, _MIN_COLUMNS)
    n_events = max(len(spec.events) for spec in members)
    n_streams = max(_N_STREAMS, _EVENT_STREAM + math.ceil(n_events / columns))
    keys = crn.campaign_keys(seeds, _SAMPLING_DOMAIN)
    u = crn.uniforms(keys, crn.counters(0, n_streams, columns))  # (n, streams, columns)
    idx = member_index(u[:, 0, 0], weights)

    def per_member(attr: str) -> np.ndarray:
        get = attrgetter(attr)
        table = np.array([get(spec) for spec in members], dtype=np.float64)
        return table[idx].reshape(n, -1)

    def table(field: str) -> np.ndarray:
        return channel_array(field, channels)[None, :]

    budget = _log_uniform(u[:, 1, 0], per_member("budget_cny"))
    roi_lo, roi_hi = per_member("target_roi").T
    target_roi = roi_lo + u[:, 1, 1] * (roi_hi - roi_lo)
    price = _log_uniform(u[:, 1, 2], per_member("price_cny"))
    q_lo, q_hi = per_member("creative_quality").T
    quality = q_lo + u[:, 1, 3] * (q_hi - q_lo)
    pool_lo, pool_hi = per_member("returning_pool_per_kcny").T
    pool = (pool_lo + u[:, 1, 4] * (pool_hi - pool_lo)) * budget / 1000.0

    # Market size grows with budget, a little slower: bigger advertisers saturate more.
    scale = (budget / REFERENCE_BUDGET_CNY) ** per_member("model.volume_budget_exponent")[:, 0]
    volume = table("volume_per_hour") * scale[:, None]
    volume = volume * np.exp(per_member("model.volume_log_sd") * crn.normals(u[:, 2, :k]))
    # Weak creatives earn worse slots: less volume as well as fewer clicks.
    volume = volume * np.sqrt(quality)[:, None]
    price_median = table("price_median_cny") * np.exp(
        per_member("model.price_log_sd") * crn.normals(u[:, 3, :k])
    )
    ctr = (
        table("ctr")
        * quality[:, None]
        * np.exp(per_member("model.ctr_log_sd") * crn.normals(u[:, 4, :k]))
    )

    # Conversion falls roughly in inverse proportion to price (same GMV per click order of
    # magnitude), times campaign-wide and per-channel multipliers the policy cannot observe.
    price_factor = (REFERENCE_PRICE_CNY / price) ** per_member("model.cvr_price_elasticity")[:, 0]
    campaign_mult = per_member("cvr_prior_median")[:, 0] * np.exp(
        per_member("cvr_prior_sigma")[:, 0] * crn.normals(u[:, 5, 0])
    )
    channel_mult = np.exp(per_member("channel_cvr_spread") * crn.normals(u[:, 6, :k]))
    cvr_mult = (price_factor * campaign_mult)[:, None] * channel_mult
    cvr_new = np.minimum(table("cvr_new") * cvr_mult, per_member("model.cvr_new_cap"))
    cvr_returning = np.minimum(
        table("cvr_returning") * cvr_mult, per_member("model.cvr_returning_cap")
    )
    cvr_interested = np.minimum(
        cvr_new * per_member("interest.cvr_mult"), per_member("model.cvr_new_cap")
    )
    u_events = u[:, _EVENT_STREAM:, :].reshape(n, -1)
    start_lo, start_hi = per_member("start_hour_of_week").T
    start_hour = np.floor(start_lo + u[:, 0, 1] * (start_hi - start_lo + 1)).astype(np.int64)
    half_saturation = per_member("model.pool_half_saturation_per_kcny")[:, 0] * budget / 1000.0

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
        immediate_frac=per_member("immediate_frac")[:, 0],
        delay_hazard_per_hour=1.0 / per_member("mean_delay_hours")[:, 0],
        attribution_window_hours=per_member("attribution_window_hours")[:, 0],
        cvr_interested=cvr_interested,
        returning_pool_init=np.floor(pool),
        pool_half_saturation=np.maximum(half_saturation, 1.0),
        interest_retention=0.5 ** (1.0 / per_member("interest.half_life_hours")[:, 0]),
        cvr_drift_sigma=per_member("cvr_drift.sigma")[:, 0],
        cvr_drift_persistence=per_member("cvr_drift.persistence")[:, 0],
        interest_half_saturation=per_member("interest.half_saturation_per_kcny")[:, 0]
        * budget
        / 1000.0,
        new_customer_value_cny=per_member("new_customer_value_frac")[:, 0] * price,
        gross_margin_frac=per_member("gross_margin_frac")[:, 0],
        **_calendar(members, idx, u_events, horizon),
        coldstart_boost=per_member("launch_support.boost")[:, 0],
        coldstart_decay_hours=per_member("launch_support.decay_hours")[:, 0],
        start_hour_of_week=start_hour,
        learning_gap=per_member("learning.gap")[:, 0],
        learning_clicks=per_member("learning.clicks_to_learn")[:, 0],
        horizon_hours=horizon,
        channels=channels,
        members=tuple(spec.name for spec in members),
    )


__all__ = [
    "ATTRIBUTION_WINDOW_HOURS",
    "CHANNEL_NAMES",
    "COLDSTART_DECAY_HOURS",
    "CampaignParams",
    "EVAL_SEED_START",
    "HORIZON_HOURS",
    "LIBRARY",
    "MIXED",
    "Mixture",
    "SCENARIOS",
    "SCENARIO_NAMES",
    "ScenarioSpec",
    "TRAIN_SEED_LIMIT",
    "VALIDATION_SEED_START",
    "check_scenario",
    "member_index",
    "resolve_scenario",
    "sample_campaigns",
    "scenario_description",
]
