"""The measurement behind ``planner_cc``'s calibration (``budgetgym planner-cc-calibrate``).

Per scenario and block of campaigns, one batched rollout of
:class:`~budgetgym.agents.planner.PlannerPolicy` on **training** campaigns (seeds below 900,000):
the rows are every campaign of the block at every margin of the grid (``len(kappas) x block``,
margin per row), the same campaigns for every margin (common random numbers), so the share that
misses its target is measured at every margin at once and its differences between margins carry
no campaign-to-campaign noise. The blocks' shares are pooled by campaign count.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from budgetgym.agents.cc_calibration import (
    KAPPA_GRID,
    CCCalibration,
    MissRateCurve,
    block_sizes,
)
from budgetgym.agents.evaluation import rollout
from budgetgym.agents.planner import PlannerPolicy
from budgetgym.envs.campaigns import BatchedCampaigns, roi_target_missed
from budgetgym.envs.scenarios import HORIZON_HOURS, training_seeds

#: Training campaigns of the calibration, per scenario (the same at every margin). The seeds share
#: their random streams across scenarios, so one sample's luck shifts every curve at once: blocks
#: of 512 campaigns put the margin for a 5% miss rate up to 0.85 apart (docs/benchmark.md); 1,536
#: put a standard error of 0.6 point on that rate.
CALIBRATION_SEED_START = 700_000
CALIBRATION_CAMPAIGNS = 1536
#: Campaigns per rollout: a block's rows (``len(kappas) x block``) bound the memory, and each
#: block's own curve is kept in the file.
CALIBRATION_BLOCK = 512


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
    block_campaigns: int = CALIBRATION_BLOCK,
    on_block: Callable[[str, int, np.ndarray, float], None] | None = None,
) -> CCCalibration:
    """Measure every scenario's miss-rate curve on the training seeds
    ``seed_start .. seed_start + campaigns - 1``, in blocks of ``block_campaigns`` seeds;
    ``on_block(scenario, first_seed, shares (m,), seconds)`` after each block.
    """
    kappas = np.asarray(kappas, dtype=np.float64)
    block_campaigns = min(block_campaigns, campaigns)
    sizes = block_sizes(campaigns, block_campaigns)
    starts = seed_start + np.concatenate([[0], np.cumsum(sizes)[:-1]])
    curves = {}
    for scenario in scenarios:
        blocks = []
        for start, size in zip(starts, sizes, strict=True):
            started = time.perf_counter()
            blocks.append(
                measure_miss_rates(scenario, start + np.arange(size), kappas, horizon_hours)
            )
            if on_block is not None:
                on_block(scenario, int(start), blocks[-1], time.perf_counter() - started)
        curves[scenario] = MissRateCurve.fit(kappas, np.array(blocks), sizes)
    return CCCalibration(curves, seed_start, campaigns, block_campaigns, horizon_hours)
