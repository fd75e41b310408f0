"""What the benchmarks that measure a policy beside ``planner_cc`` share: their campaign
arguments and the two figures they read from a rollout."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from budgetgym.agents.evaluation import simulate, summarize
from budgetgym.envs.scenarios import EVAL_SEED_START, HORIZON_HOURS


def add_campaign_arguments(parser: argparse.ArgumentParser) -> None:
    """``--scenarios``, ``--episodes``, ``--seed-start`` (held out by default) and ``--json``."""
    parser.add_argument("--scenarios", default="all", help="Scenarios (default: all).")
    parser.add_argument("--episodes", type=int, default=256, help="Campaigns per scenario.")
    parser.add_argument("--seed-start", type=int, default=EVAL_SEED_START)
    parser.add_argument("--json", type=Path, help="Write the figures here as JSON.")


def gmv_and_miss(
    policy: Any,
    scenario: str,
    episodes: int,
    seed_start: int,
    horizon_hours: int = HORIZON_HOURS,
) -> tuple[float, float]:
    """Mean GMV (CNY) and ROI-miss rate of ``policy`` on ``episodes`` campaigns."""
    run = simulate(
        policy, scenario, episodes, seed_start, progress=False, horizon_hours=horizon_hours
    )
    summary = summarize(run.episodes, policy.name, scenario)
    return summary["gmv_mean"], summary["roi_violation_rate"]
