"""The exploratory history of the ``mmm_static`` rule and the fit of its curves (``mmm-fit``).

What a marketing-mix-model user does before fitting: vary spend. The exploration policy paces
evenly within each day at a random level of paid spend, split over the paid channels at random,
both drawn anew each day for each campaign, so that every channel's spend ranges from almost
nothing to several hours of even pacing and the curves' curvature and carry-over are
identified. Pay-per-sale channels keep the rules' standing allocation (they cost only their
commissions). The history is one rollout per scenario on **training** campaigns (seeds below
900,000) on the batched core; spend and attributed GMV are logged per channel and day in units
of ``B / H``. The last day is left out of the fit: its GMV includes the settlement of every
purchase still pending at the end of the horizon, which no carry-over model describes.
"""

from __future__ import annotations

import time

import numpy as np

from budgetgym.agents.baselines import RulePolicy
from budgetgym.agents.channel_set import ChannelSet, channels_of, scenario_channels
from budgetgym.agents.mmm import MMMFits, ResponseCurves, fit_hill
from budgetgym.envs import random as crn
from budgetgym.envs.campaigns import BatchedCampaigns
from budgetgym.envs.scenarios import HORIZON_HOURS, training_seeds

#: Training campaigns of the history, per scenario.
FIT_SEED_START = 800_000
FIT_CAMPAIGNS = 512
#: Range of the daily paid spend level, B/H units (log-uniform).
EXPLORATION_LEVELS = (0.2, 2.5)
HOURS_PER_DAY = 24
_EXPLORATION_DOMAIN = 2_000  # counter-based key domain of the exploration's draws


def exploration_plan(seeds: np.ndarray, days: int, channels: ChannelSet) -> np.ndarray:
    """Hourly paid spend ``(n, days, n_channels)`` (B/H units) of each campaign on each day.

    The day's level is log-uniform in ``EXPLORATION_LEVELS``; its split over the paid channels
    is a flat Dirichlet draw over the paid channels of ``channels`` (pay-per-sale columns 0).
    Counter-based on the campaign's seed, so a campaign's plan does not depend on its batch.
    """
    k = channels.n_channels
    keys = crn.campaign_keys(np.asarray(seeds), _EXPLORATION_DOMAIN)
    u = crn.uniforms(keys, crn.counters(0, days, k + 1))  # (n, days, k + 1)
    low, high = EXPLORATION_LEVELS
    level = low * (high / low) ** u[:, :, -1]
    weights = np.where(channels.per_sale, 0.0, -np.log(u[:, :, :k]))  # Gamma(1) draws
    return level[:, :, None] * weights / weights.sum(axis=2, keepdims=True)


class ExplorationPolicy(RulePolicy):
    """Even pacing within each day of the paid spend planned by :func:`exploration_plan`.

    Args:
        plan: ``(n, days, n_channels)`` hourly paid spend per day, B/H units.
    """

    name = "mmm_exploration"

    def __init__(self, plan: np.ndarray, **kwargs) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def decide(self, view):
        day = np.minimum(self.hour // HOURS_PER_DAY, self.plan.shape[1] - 1)
        spend = self.plan[np.arange(day.size), day]
        return spend.sum(axis=1) / view["even_rate"], spend


def collect_history(
    scenario: str, seeds: np.ndarray, horizon_hours: int = HORIZON_HOURS
) -> tuple[np.ndarray, np.ndarray]:
    """Roll the exploration policy out once on ``seeds`` (training campaigns of ``scenario``).

    Returns:
        ``spend, gmv``: ``(n, days, n_channels)`` mean hourly spend and attributed GMV per day,
        B/H units, for the whole days of the horizon.
    """
    seeds = training_seeds(seeds, "The history")
    days = horizon_hours // HOURS_PER_DAY
    if days < 2:
        raise ValueError(f"horizon_hours must cover at least 2 days, got {horizon_hours}.")
    campaigns = BatchedCampaigns(scenario, horizon_hours=horizon_hours)
    obs, info = campaigns.reset(seeds)
    channels = channels_of(campaigns)
    policy = ExplorationPolicy(exploration_plan(seeds, days, channels), channels=channels)
    policy.reset(campaigns)
    spend = np.zeros((seeds.size, days * HOURS_PER_DAY, channels.n_channels))
    gmv = np.zeros_like(spend)
    for hour in range(horizon_hours):
        actions, _ = policy.predict(obs)
        obs, _, _, info = campaigns.step(actions)
        if hour < spend.shape[1]:
            spend[:, hour], gmv[:, hour] = info["spend_cny"], info["gmv_cny"]
    unit = (info["budget"] / horizon_hours)[:, None, None]
    shape = (seeds.size, days, HOURS_PER_DAY, channels.n_channels)
    return (spend / unit).reshape(shape).mean(axis=2), (gmv / unit).reshape(shape).mean(axis=2)


def fit_scenario(
    scenario: str, seeds: np.ndarray, horizon_hours: int = HORIZON_HOURS
) -> ResponseCurves:
    """Collect the history of ``scenario`` on ``seeds`` and fit its paid channels' curves on
    every day but the last (see the module docstring)."""
    channels = scenario_channels(scenario)
    spend, gmv = collect_history(scenario, seeds, horizon_hours)
    spend, gmv = spend[:, :-1], gmv[:, :-1]
    paid, per_sale = channels.paid, channels.per_sale
    fit = fit_hill(spend[:, :, paid], gmv[:, :, paid])
    return ResponseCurves(
        channels=tuple(channels.names[i] for i in paid),
        **fit,
        per_sale_spend=float(spend[:, :, per_sale].sum(axis=2).mean()),
        per_sale_gmv=float(gmv[:, :, per_sale].sum(axis=2).mean()),
    )


def fit_all(
    scenarios: list[str],
    seed_start: int = FIT_SEED_START,
    campaigns: int = FIT_CAMPAIGNS,
    on_scenario=None,
) -> MMMFits:
    """Fit every scenario in ``scenarios`` on the same ``campaigns`` training seeds from
    ``seed_start``; ``on_scenario(name, curves, seconds)`` is called after each."""
    seeds = seed_start + np.arange(campaigns)
    fitted = {}
    for scenario in scenarios:
        started = time.perf_counter()
        fitted[scenario] = fit_scenario(scenario, seeds)
        if on_scenario is not None:
            on_scenario(scenario, fitted[scenario], time.perf_counter() - started)
    days = HORIZON_HOURS // HOURS_PER_DAY - 1
    return MMMFits(fitted, int(seed_start), int(campaigns), days)
