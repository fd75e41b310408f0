"""Run safety (issue 23): checkpoint pruning past 1e9 steps."""

from __future__ import annotations

from pathlib import Path

import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from budgetgym.agents.callbacks import RunCheckpointCallback
from budgetgym.agents.checkpoints import RunPaths, read_meta, save_checkpoint
from budgetgym.envs import BudgetVecEnv


# --------------------------------------------------------------------------------------------
# Checkpoint pruning orders checkpoints by the step in their metadata
# --------------------------------------------------------------------------------------------
def test_a_checkpoint_past_1e9_steps_is_kept_and_the_oldest_pruned(tmp_path: Path) -> None:
    venv = VecNormalize(BudgetVecEnv(2, horizon_hours=4))
    model = PPO("MlpPolicy", venv, n_steps=4, batch_size=8, device="cpu", seed=0)
    run = RunPaths(tmp_path / "run")
    for step in (999_000_000, 999_500_000):
        model.num_timesteps = step
        save_checkpoint(model, venv, run.checkpoint(step))
    callback = RunCheckpointCallback(run, save_freq=500_000, keep_last=2)
    callback.init_callback(model)
    model.num_timesteps = 1_000_000_000
    newest = callback.save_now(run.checkpoint(model.num_timesteps))

    assert newest.name == "step_1000000000"  # sorts before step_999500000 by name
    assert newest.is_dir(), "the checkpoint just written was pruned"
    kept = run.list_checkpoints()
    assert [read_meta(p)["num_timesteps"] for p in kept] == [999_500_000, 1_000_000_000]
    assert not run.checkpoint(999_000_000).exists()
    assert run.latest_checkpoint() == newest


def test_a_checkpoint_without_a_step_count_is_a_clear_error(tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "run")
    folder = run.checkpoint(500)
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text('{"format": "budgetgym-checkpoint/1", "num_timesteps": "x"}')
    with pytest.raises(ValueError, match=r"meta.json is corrupt \(num_timesteps 'x'"):
        run.list_checkpoints()
