"""Run safety (issue 23): checkpoint pruning past 1e9 steps, config files that must be refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from budgetgym.agents.callbacks import RunCheckpointCallback
from budgetgym.agents.checkpoints import RunPaths, read_meta, save_checkpoint
from budgetgym.agents.config import load_config, read_yaml
from budgetgym.envs import BudgetVecEnv


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


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
    assert run.saved_states()[0][0] == newest  # what resume takes first


def test_a_checkpoint_without_a_step_count_is_a_clear_error(tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "run")
    folder = run.checkpoint(500)
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text('{"format": "budgetgym-checkpoint/1", "num_timesteps": "x"}')
    with pytest.raises(ValueError, match=r"meta.json is corrupt \(num_timesteps 'x'"):
        run.list_checkpoints()


# --------------------------------------------------------------------------------------------
# Config files: repeated keys, loose types, empty files
# --------------------------------------------------------------------------------------------
def test_a_repeated_yaml_key_is_refused_with_its_name_and_lines(tmp_path: Path) -> None:
    top = write(tmp_path, "seed: 1\ntotal_timesteps: 1000\nseed: 2\n")
    with pytest.raises(ValueError, match=r"key 'seed' appears twice .*\(lines 1 and 3\)"):
        load_config(top)
    nested = write(tmp_path, "env:\n  n_envs: 4\n  scenario: mixed\n  n_envs: 8\n")
    with pytest.raises(ValueError, match=r"key 'n_envs' appears twice .*\(lines 2 and 4\)"):
        load_config(nested)
    # The same key in different mappings, and a `<<` merge overridden, are not repeats.
    fine = write(
        tmp_path,
        "base: &base {n_envs: 4, horizon_hours: 24}\n"
        "other: {n_envs: 8}\n"
        "env:\n  <<: *base\n  n_envs: 8\n",
    )
    assert read_yaml(fine)["env"] == {"n_envs": 8, "horizon_hours": 24}


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("env:\n  n_envs: true\n", ["env.n_envs", "valid integer", "True"]),
        ("env:\n  n_envs: '64'\n", ["env.n_envs", "valid integer", "'64'"]),
        ("normalize:\n  norm_obs: 1\n", ["normalize.norm_obs", "valid boolean", "1"]),
        ("normalize:\n  norm_reward: 'yes'\n", ["normalize.norm_reward", "'yes'"]),
        ("hyperparams:\n  learning_rate: true\n", ["hyperparams.learning_rate", "True"]),
        ("env:\n  roi_penalty_coef: '2'\n", ["env.roi_penalty_coef", "valid number", "'2'"]),
        ("hyperparams:\n  policy_kwargs:\n    net_arch: [64, true]\n", ["net_arch.1", "True"]),
    ],
)
def test_config_scalars_are_strictly_typed(tmp_path: Path, text: str, fragments: list) -> None:
    with pytest.raises(ValueError) as err:
        load_config(write(tmp_path, text))
    for fragment in fragments:
        assert fragment in str(err.value)


def test_whole_floats_still_count_as_integers(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "total_timesteps: 6.0e+6\neval:\n  eval_freq: 2.5e+5\nseed: 3.0\n")
    )
    assert config.total_timesteps == 6_000_000 and type(config.total_timesteps) is int
    assert config.eval.eval_freq == 250_000 and config.seed == 3
    # Ints where floats are expected stay fine.
    assert load_config(write(tmp_path, "env:\n  roi_penalty_coef: 2\n")).env.roi_penalty_coef == 2


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n# and another\n"])
def test_an_empty_config_is_refused_and_says_how_to_ask_for_defaults(
    tmp_path: Path, text: str
) -> None:
    with pytest.raises(ValueError, match=r"is empty .*`algorithm: ppo`"):
        load_config(write(tmp_path, text))
    for explicit in ("algorithm: ppo\n", "{}\n"):
        config = load_config(write(tmp_path, explicit, "defaults.yaml"))
        assert config.total_timesteps == 2_000_000
