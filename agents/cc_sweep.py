"""The measurement behind ``planner_cc``'s calibration (``budgetgym planner-cc-calibrate``).

Per scenario and block of campaigns, one batched rollout of
:class:`~budgetgym.agents.planner.PlannerPolicy` on **training** campaigns (seeds below 900,000):
the rows are every campaign of the block at every margin of the grid (``len(kappas) x block``,
margin per row), the same campaigns for every margin (common random numbers), so the share that
misses its target is measured at every margin at once and its differences between margins carry
no campaign-to-campaign noise. The blocks' shares are pooled by campaign count.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Sequence
from functools import partial
from multiprocessing import get_context

import numba
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


def _measure_block(
    task: tuple[str, int, int], kappas: np.ndarray, horizon_hours: int
) -> tuple[tuple[str, int, int], np.ndarray, float]:
    """The block ``task = (scenario, first_seed, campaigns)``: itself, its shares
    (:func:`measure_miss_rates`) and their wall time in seconds."""
    scenario, start, size = task
    started = time.perf_counter()
    rates = measure_miss_rates(scenario, start + np.arange(size), kappas, horizon_hours)
    return task, rates, time.perf_counter() - started


def _pool_process(workers: int) -> None:
    """A pool process's initializer: Ctrl-C is the parent's to handle (it terminates the pool),
    and the simulator's threads split the cores over ``workers``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    numba.set_num_threads(
        max(1, min(numba.config.NUMBA_NUM_THREADS, (os.cpu_count() or 1) // workers))
    )


def calibrate(
    scenarios: Sequence[str],
    seed_start: int = CALIBRATION_SEED_START,
    campaigns: int = CALIBRATION_CAMPAIGNS,
    kappas: Sequence[float] = KAPPA_GRID,
    horizon_hours: int = HORIZON_HOURS,
    block_campaigns: int = CALIBRATION_BLOCK,
    on_block: Callable[[str, int, int, np.ndarray, float], None] | None = None,
    workers: int = 1,
) -> CCCalibration:
    """Measure every scenario's miss-rate curve on the training seeds
    ``seed_start .. seed_start + campaigns - 1``, in blocks of ``block_campaigns`` seeds.

    Args:
        on_block: called as each block is measured, ``on_block(scenario, first_seed, campaigns,
            shares (m,), seconds)`` (in the order blocks finish when ``workers > 1``).
        workers: processes measuring blocks at once (``spawn``ed; the simulator's threads split
            the cores between them). Each block is its own rollout, so the curves do not depend
            on it.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}.")
    kappas = np.asarray(kappas, dtype=np.float64)
    block_campaigns = min(block_campaigns, campaigns)
    sizes = block_sizes(campaigns, block_campaigns)
    starts = seed_start + np.concatenate([[0], np.cumsum(sizes)[:-1]])
    tasks = [
        (scenario, int(start), int(size))
        for scenario in scenarios
        for start, size in zip(starts, sizes, strict=True)
    ]
    measure = partial(_measure_block, kappas=kappas, horizon_hours=horizon_hours)
    shares: dict[tuple[str, int, int], np.ndarray] = {}
    with contextlib.ExitStack() as stack:
        if workers == 1:
            measured = map(measure, tasks)
        else:  # leaving the block (Ctrl-C included) terminates the processes at once
            pool = stack.enter_context(
                get_context("spawn").Pool(min(workers, len(tasks)), _pool_process, (workers,))
            )
            measured = pool.imap_unordered(measure, tasks)
        for task, rates, seconds in measured:
            shares[task] = rates
            if on_block is not None:
                on_block(*task, rates, seconds)
    curves = {
        scenario: MissRateCurve.fit(
            kappas, np.array([shares[task] for task in tasks if task[0] == scenario]), sizes
        )
        for scenario in scenarios
    }
    return CCCalibration(curves, seed_start, campaigns, block_campaigns, horizon_hours)
