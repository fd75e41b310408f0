"""Simulator throughput, measured side by side in one run.

    python scripts/bench_env.py [--json FILE] [--seconds S]

Prints a table and optionally writes JSON with ``single_env_steps_per_s`` (one
``gymnasium.make`` env), ``sync_vector_steps_per_s`` (gymnasium ``SyncVectorEnv`` over 64
single envs, env-steps per second), ``batched_steps_per_s`` (``BatchedCampaigns``, campaign-steps
per second, keyed by batch size) and ``batched_vs_sync_ratio`` (best batched / sync). Actions are
drawn before timing so only the simulator is measured; episode resets are included.

Each figure is the best of ``--repeats`` timings, taken round-robin over the views (all views
once, then all again, ...): a shared machine's slow spells then hit every view alike instead of
whichever was being timed, and the ratio compares like with like. Every timing is in the JSON
(``samples``), with the ratio of each round (``batched_vs_sync_ratio_by_round``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
from rich.console import Console
from rich.table import Table

import budgetgym
from budgetgym.envs import ACTION_DIM, ENV_ID, BatchedCampaigns

BATCH_SIZES = (1, 64, 1024, 4096)
SYNC_ENVS = 64


def steps_per_second(step: Callable[[], int], seconds: float) -> float:
    """Call ``step`` (returning the number of env-steps it made) for about ``seconds``."""
    step()  # warm-up: compilation, caches
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += step()
    return done / elapsed


def single_env_steps(scenario: str) -> Callable[[], int]:
    env = gym.make(ENV_ID, scenario=scenario)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (1024, ACTION_DIM)).astype(np.float32)

    def run() -> int:
        for action in actions:
            if env.step(action)[2]:
                env.reset()
        return len(actions)

    return run


def sync_vector_steps(scenario: str) -> Callable[[], int]:
    venv = gym.make_vec(ENV_ID, num_envs=SYNC_ENVS, vectorization_mode="sync", scenario=scenario)
    venv.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (16, SYNC_ENVS, ACTION_DIM))

    def run() -> int:
        for action in actions:
            venv.step(action.astype(np.float32))
        return actions.shape[0] * SYNC_ENVS

    return run


def batched_steps(n_envs: int, scenario: str) -> Callable[[], int]:
    campaigns = BatchedCampaigns(scenario)
    actions = np.random.default_rng(0).uniform(-1, 1, (16, n_envs, ACTION_DIM))
    seeds = np.arange(n_envs)
    campaigns.reset(seeds)

    def run() -> int:
        for action in actions:
            if campaigns.step(action)[2].all():
                campaigns.reset(seeds)
        return actions.shape[0] * n_envs

    return run


def round_robin_samples(
    views: dict[str, Callable[[], int]], seconds: float, repeats: int
) -> dict[str, list[float]]:
    """Time every view ``repeats`` times, one round over all views after another."""
    samples: dict[str, list[float]] = {name: [] for name in views}
    for _ in range(repeats):
        for name, step in views.items():
            samples[name].append(steps_per_second(step, seconds))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="Write the figures to this JSON file.")
    parser.add_argument("--seconds", type=float, default=2.0, help="Timing per measurement.")
    parser.add_argument("--repeats", type=int, default=3, help="Timings per view (best kept).")
    parser.add_argument("--scenario", default="mixed", help="Scenario simulated.")
    args = parser.parse_args()
    if args.repeats < 1 or args.seconds <= 0:
        parser.error("--repeats must be >= 1 and --seconds > 0.")

    views = {"single": single_env_steps(args.scenario), "sync": sync_vector_steps(args.scenario)}
    views.update({f"batched_{n}": batched_steps(n, args.scenario) for n in BATCH_SIZES})
    samples = round_robin_samples(views, args.seconds, args.repeats)
    single, sync = max(samples["single"]), max(samples["sync"])
    batched = {n: max(samples[f"batched_{n}"]) for n in BATCH_SIZES}
    result = {
        "single_env_steps_per_s": single,
        "sync_vector_steps_per_s": sync,
        "batched_steps_per_s": batched,
        "batched_vs_sync_ratio": max(batched.values()) / sync,
        # The same ratio within each round (one pass over all views): its spread is the noise.
        "batched_vs_sync_ratio_by_round": [
            max(samples[f"batched_{n}"][r] for n in BATCH_SIZES) / samples["sync"][r]
            for r in range(args.repeats)
        ],
        "samples": samples,
        "seconds_per_sample": args.seconds,
        "scenario": args.scenario,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "budgetgym": budgetgym.__version__,
    }

    table = Table(
        title=f"budgetgym simulator throughput ({args.scenario}, {os.cpu_count()} CPUs, "
        f"best of {args.repeats})"
    )
    table.add_column("view")
    table.add_column("env-steps / s", justify="right")
    table.add_row("gymnasium.make, 1 env", f"{single:,.0f}")
    table.add_row(f"SyncVectorEnv, {SYNC_ENVS} envs", f"{sync:,.0f}")
    for n, value in batched.items():
        table.add_row(f"BatchedCampaigns, N={n}", f"{value:,.0f}")
    table.add_row("best batched / sync", f"{result['batched_vs_sync_ratio']:.1f}x")
    by_round = ", ".join(f"{r:.1f}x" for r in result["batched_vs_sync_ratio_by_round"])
    table.add_row("  the same, round by round", by_round)
    Console().print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
