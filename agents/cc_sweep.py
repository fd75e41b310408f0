"""The measurement behind ``planner_cc``'s calibration (``budgetgym planner-cc-calibrate``).

Per scenario, one batched rollout of :class:`~budgetgym.agents.planner.PlannerPolicy` on
**training** campaigns (seeds below 900,000): the rows are every campaign at every margin of the
grid (``len(kappas) x campaigns``, margin per row), the same campaigns for every margin (common
random numbers), so the share that misses its target is measured at every margin at once and
its differences between margins carry no campaign-to-campaign noise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from budgetgym.agents.cc_calibration import KAPPA_GRID, CCCalibration, MissRateCurve
from budgetgym.agents.evaluation import rollout
from budgetgym.agents.planner import PlannerPolicy
from budgetgym.envs.campaigns import BatchedCampaigns, roi_target_missed
from budgetgym.envs.scenarios import HORIZON_HOURS, training_seeds

#: Training campaigns of the calibration, per scenario (the same at every margin). The seeds share
#: their random streams across scenarios, so one sample's luck shifts every curve at once: 192
#: campaigns left each curve 2-5 points from the scenario's held-out miss rate (docs/benchmark.md).
CALIBRATION_SEED_START = 700_000
CALIBRATION_CAMPAIGNS = 512


def measure_miss_rates(
    scenario: str,
    seeds: np.ndarray,
    kappas: Sequence[float] = KAPPA_GRID,
    horizon_hours: int = HORIZON_HOURS,
) -> np.ndarray:
    """The share ``(m,)`` of the campaigns ``seeds`` ``(n,)`` that end below their ROI target
    under ``planner_cc`` at each margin of ``kappas`` ``(m,)``: one rollout of ``m x n`` rows.

    Raises:
        ValueError: a seed outside the training range.
    """
    seeds = training_seeds(seeds, "The calibration")
    kappas = np.asarray(kappas, dtype=np.float64)
    policy = PlannerPolicy(kappa=np.repeat(kappas, seeds.size))
    campaigns = BatchedCampaigns(scenario, horizon_hours=horizon_hours)
    info, _ = rollout(policy, campaigns, np.tile(seeds, kappas.size))
    missed = roi_target_missed(info["gmv_total"], info["target_roi"], info["spend_total"])
    return missed.reshape(kappas.size, seeds.size).mean(axis=1)


def calibrate(
    scenarios: Sequence[str],
    seed_start: int = CALIBRATION_SEED_START,
    campaigns: int = CALIBRATION_CAMPAIGNS,
    kappas: Sequence[float] = KAPPA_GRID,
    horizon_hours: int = HORIZON_HOURS,
    on_scenario: Callable[[str, MissRateCurve, float], None] | None = None,
) -> CCCalibration:
    """Measure every scenario's miss-rate curve on the training seeds
    ``seed_start .. seed_start + campaigns - 1``; ``on_scenario(name, curve, seconds)`` after each.
    """
    seeds = seed_start + np.arange(campaigns)
    curves = {}
    for scenario in scenarios:
        started = time.perf_counter()
        measured = measure_miss_rates(scenario, seeds, kappas, horizon_hours)
        curves[scenario] = MissRateCurve.fit(np.asarray(kappas, dtype=np.float64), measured)
        if on_scenario is not None:
            on_scenario(scenario, curves[scenario], time.perf_counter() - started)
    return CCCalibration(curves, seed_start, campaigns, horizon_hours)
