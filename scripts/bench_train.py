"""Benchmark PPO training throughput: batched ``BudgetVecEnv`` vs SB3 ``DummyVecEnv``.

Both runs use the same PPO hyperparameters (those of ``experiments/ppo_default.yaml`` unless
``--config`` says otherwise), the same number of campaigns and ``VecNormalize``, one torch
thread, and count env steps per second of wall time spent in ``learn`` (rollouts and updates)::

    python scripts/bench_train.py [--json FILE] [--timesteps N] [--config FILE] [--scenario S]

Both step campaigns of ``--scenario`` (default ``mixed``, the shipped market), whatever mix the
config trains on.

Keys of the JSON: ``ppo_env_steps_per_s`` (batched), ``ppo_dummyvec_env_steps_per_s``,
``speedup``, ``env_only_steps_per_s`` (batched env with constant actions, no learning) and
the settings used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np


def _learn_rate(config, make_venv, timesteps: int) -> float:
    """Env steps per second of ``PPO.learn`` on the VecEnv from ``make_venv``."""
    from stable_baselines3.common.vec_env import VecNormalize

    from budgetgym.agents.checkpoints import new_model, quiet_render_mode_warning

    with quiet_render_mode_warning():
        venv = VecNormalize(make_venv(), gamma=config.hyperparams.gamma)
    model = new_model(config, venv)
    # Compile (or load) the simulator's kernels before timing: after an edit of the simulator,
    # compiling inside `learn` made the first view look several times slower.
    venv.reset()
    venv.step(np.zeros((venv.num_envs, *venv.action_space.shape), dtype=np.float32))
    start = time.perf_counter()
    model.learn(timesteps)
    elapsed = time.perf_counter() - start
    venv.close()
    return model.num_timesteps / elapsed


def _env_only_rate(n_envs: int, scenario: str, seconds: float = 3.0) -> float:
    from budgetgym.agents.checkpoints import quiet_render_mode_warning
    from budgetgym.envs import ACTION_DIM, BudgetVecEnv

    with quiet_render_mode_warning():
        venv = BudgetVecEnv(n_envs, scenario=scenario)
    venv.seed(0)
    venv.reset()
    actions = np.zeros((n_envs, ACTION_DIM), dtype=np.float32)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        venv.step(actions)
        steps += n_envs
    return steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="Also write the results to this JSON file.")
    parser.add_argument("--config", default="ppo_default", help="Config for PPO settings.")
    parser.add_argument(
        "--scenario", default="mixed", help="Scenario name or file that both views step."
    )
    parser.add_argument(
        "--timesteps",
        type=int,
        default=0,
        help="Env steps per run (default: four rollouts, 4 * n_steps * n_envs).",
    )
    args = parser.parse_args(argv)

    import gymnasium as gym
    import torch
    from stable_baselines3.common.vec_env import DummyVecEnv

    import budgetgym  # noqa: F401 (registers the single env)
    from budgetgym.agents.config import read_yaml, resolve_config_path, validate_config
    from budgetgym.agents.training import limit_threads
    from budgetgym.envs import ENV_ID, BudgetVecEnv

    limit_threads()
    data = read_yaml(resolve_config_path(args.config))
    env = data.setdefault("env", {})
    if isinstance(env, dict):  # anything else: validation names the error below
        env.update(scenario=args.scenario, scenario_weights=None)
    config = validate_config(data, source=f"config {args.config}")
    n_envs, n_steps = config.env.n_envs, config.hyperparams.n_steps
    timesteps = args.timesteps or 4 * n_steps * n_envs
    env_kwargs = {"reward_mode": config.env.reward_mode, "horizon_hours": config.env.horizon_hours}

    def batched():
        venv = BudgetVecEnv(n_envs, scenario=config.env.scenario, **env_kwargs)
        venv.seed(config.seed)
        return venv

    def dummy():
        def make(i: int):
            return lambda: gym.make(ENV_ID, scenario=config.env.scenario, **env_kwargs)

        venv = DummyVecEnv([make(i) for i in range(n_envs)])
        venv.seed(config.seed)
        return venv

    result = {
        "ppo_env_steps_per_s": round(_learn_rate(config, batched, timesteps), 1),
        "ppo_dummyvec_env_steps_per_s": round(_learn_rate(config, dummy, timesteps), 1),
        "env_only_steps_per_s": round(_env_only_rate(n_envs, config.env.scenario), 1),
    }
    speedup = result["ppo_env_steps_per_s"] / result["ppo_dummyvec_env_steps_per_s"]
    result["speedup"] = round(speedup, 2)
    result.update(
        {
            "scenario": config.env.scenario,
            "timesteps_per_run": timesteps,
            "n_envs": n_envs,
            "n_steps": n_steps,
            "batch_size": config.hyperparams.batch_size,
            "n_epochs": config.hyperparams.n_epochs,
            "net_arch": str(config.hyperparams.policy_kwargs.net_arch),
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        }
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
