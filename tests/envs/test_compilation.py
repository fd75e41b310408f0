"""Ahead-of-time compilation of the simulator's kernels, and the detection of a cold cache."""

from __future__ import annotations

import subprocess
import sys

import numba

from budgetgym.envs.compilation import compile_kernels, on_first_compile


def test_a_real_compilation_is_announced_once_and_a_loaded_one_not_at_all() -> None:
    calls: list[int] = []

    @numba.njit  # no cache: the first call compiles
    def add_one(x):
        return x + 1

    with on_first_compile(lambda: calls.append(1)) as listener:
        add_one(1)
        add_one(2.5)  # a second signature: compiled too, not announced again
    assert calls == [1] and listener.compiled
    with on_first_compile(lambda: calls.append(2)) as listener:
        add_one(3)
    assert calls == [1] and not listener.compiled


def test_compile_kernels_leaves_nothing_to_compile_for_the_workloads() -> None:
    """In a fresh process, after compile_kernels no simulator kernel gains a signature while
    single envs, vector views, large batches and the oracle's markets run."""
    script = """
import numpy as np
import gymnasium as gym
import budgetgym
from budgetgym.envs import campaigns, core, BudgetVecEnv, BatchedCampaigns, ACTION_DIM
from budgetgym.envs.compilation import compile_kernels

def signatures():
    found = {}
    for module in (core, campaigns):
        for name, obj in vars(module).items():
            for build in (obj, getattr(obj, "serial", None), getattr(obj, "parallel", None)):
                if hasattr(build, "signatures") and hasattr(build, "py_func"):
                    found[build.py_func.__qualname__] = set(build.signatures)
    return found

compile_kernels((4, 300))
before = signatures()
assert any(before.values()), before
env = gym.make("budgetgym/MultiChannelBudget-v1", scenario="hit_product", horizon_hours=3)
env.reset(seed=1)
env.step(env.action_space.sample())
venv = BudgetVecEnv(4, scenario="double11_promotion", reward_mode="profit")
venv.seed(0)
venv.reset()
venv.step(np.zeros((4, ACTION_DIM), dtype=np.float32))
for n in (4, 300):
    batch = BatchedCampaigns("mixed", reward_mode="gmv", horizon_hours=3)
    batch.reset(np.arange(n))
    for _ in range(3):
        batch.step(np.full((n, ACTION_DIM), 0.5))
    core.hourly_markets(batch.params)
after = signatures()
grown = {k: after[k] - before.get(k, set()) for k in after if after[k] - before.get(k, set())}
assert not grown, sorted(grown)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compile_kernels_reports_no_compilation_once_loaded() -> None:
    compile_kernels((1,))
    assert compile_kernels((1,)) is False
