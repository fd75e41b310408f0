"""A user's scenario file through the whole workflow: the environment, train, evaluate, compare,
export (issue 25's acceptance): a copy of ``hit_product`` with dearer items, a lower target band
and without the live-stream channel, so that every space and layout follows its five channels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env

import budgetgym  # noqa: F401 (registers the environment)
from budgetgym.agents.channel_set import ChannelSet, scenario_channels
from budgetgym.envs import BatchedCampaigns
from budgetgym.envs.scenarios import resolve_scenario

HORIZON = 24  # hours: a short task keeps the test quick; the scenario file is unchanged
TRAIN = [
    "total_timesteps=96", "env.n_envs=4", "env.horizon_hours=24", "hyperparams.n_steps=24",
    "hyperparams.batch_size=48", "hyperparams.n_epochs=1", "eval.eval_freq=0",
    "eval.n_eval_episodes=2", "eval.final_episodes=2", "checkpoint.save_freq=96",
    "env.scenario_weights=null",
]  # fmt: skip


@pytest.fixture(scope="module")
def user_scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``my_category.yaml``: ``hit_product`` at 400-1,200 CNY, target ROI 1.5-2.0, no live."""
    spec = yaml.safe_load(resolve_scenario("hit_product").to_yaml())
    spec.update(
        name="my_category",
        description="A user's category: dearer items, lower targets, no live stream.",
        price_cny=[400.0, 1200.0],
        target_roi=[1.5, 2.0],
        channels=[c for c in spec["channels"] if c["name"] != "live"],
    )
    path = tmp_path_factory.mktemp("scenarios") / "my_category.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "budgetgym.scripts.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_the_environment_follows_the_file(user_scenario: Path) -> None:
    env = gym.make("budgetgym/MultiChannelBudget-v1", scenario=str(user_scenario))
    check_env(env.unwrapped, skip_render_check=True)
    channels = ChannelSet.of(env.unwrapped.campaigns.channels)
    assert channels.names == ("search", "feed", "short_video", "affiliate", "social")
    assert env.observation_space.shape == (channels.obs_dim,)
    assert env.action_space.shape == (6,)
    obs, info = env.reset(seed=1_000_000)
    assert obs.shape == (channels.obs_dim,) and 400.0 <= info_price(env) <= 1200.0
    assert 1.5 <= float(info["target_roi"]) <= 2.0
    obs, *_ = env.step(env.action_space.sample())
    assert np.isfinite(obs).all()


def info_price(env: gym.Env) -> float:
    return float(env.unwrapped.campaigns.params.price_cny[0])


@pytest.mark.slow
def test_train_evaluate_compare_export(user_scenario: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_cli("train", "--config", "ppo_quick", "--scenario", str(user_scenario), "--run-dir",
            str(run), "--no-compare", "--set", *TRAIN, cwd=tmp_path)  # fmt: skip
    meta = json.loads((run / "final" / "meta.json").read_text())
    assert ChannelSet.from_records(meta["channels"]) == scenario_channels(str(user_scenario))
    assert meta["obs_dim"] == 67 and meta["action_dim"] == 6

    common = ["--episodes", "4", "--horizon-hours", str(HORIZON), "--no-progress"]
    done = run_cli("evaluate", "--policy", str(run), "--scenario", str(user_scenario),
                   "--out", str(tmp_path / "eval"), *common, cwd=tmp_path)  # fmt: skip
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["episodes"] == 4 and summary["gmv_mean"] > 0, done.stdout

    board = tmp_path / "compare"
    run_cli("compare", "--scenarios", str(user_scenario), "--policy", str(run),
            "--out", str(board), *common, cwd=tmp_path)  # fmt: skip
    rows = json.loads((board / "leaderboard.json").read_text())
    policies = {row["policy"] for row in rows}
    assert {"oracle", "planner", "uniform", "obs_price_aware"} <= policies
    assert "mmm_static" not in policies and "planner_cc" not in policies  # fitted per scenario
    assert "Not run: planner_cc on" in (board / "leaderboard.md").read_text()
    assert (board / "channel_spend_my_category.png").is_file()

    onnx_path = tmp_path / "policy.onnx"
    run_cli("export", str(run), "--out", str(onnx_path), cwd=tmp_path)
    from budgetgym.agents.export import OnnxPolicy
    from budgetgym.agents.policy import load_policy

    campaigns = BatchedCampaigns(str(user_scenario), horizon_hours=HORIZON)
    obs, _ = campaigns.reset(1_000_000 + np.arange(8))
    exported, trained = OnnxPolicy(onnx_path), load_policy(str(run))
    for policy in (exported, trained):
        policy.reset(campaigns)
    for _ in range(3):
        expected, _ = trained.predict(obs)
        actual, _ = exported.predict(obs)
        np.testing.assert_allclose(actual, expected, atol=1e-5)
        obs, *_ = campaigns.step(expected)

    six = BatchedCampaigns("hit_product", horizon_hours=HORIZON)
    six.reset([1_000_000])
    for policy in (exported, trained):
        with pytest.raises(ValueError, match="made for the channels .*search \\(cpc\\).* but"):
            policy.reset(six)
