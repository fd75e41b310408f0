"""Spaces and the kernel follow the scenario's channel list (here: without live stream)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from budgetgym.envs import (
    ENV_ID,
    BatchedCampaigns,
    BudgetVecEnv,
    MultiChannelBudgetEnv,
    MultiChannelBudgetVectorEnv,
    scenarios,
)
from budgetgym.envs.features import CHANNEL_FEATURES, GLOBAL_FEATURES

FIVE = ("search", "feed", "short_video", "affiliate", "social")


@pytest.fixture(scope="module")
def five_channels(tmp_path_factory) -> str:
    """hit_product's file without the live channel."""
    source = scenarios.LIBRARY.folder / "hit_product.yaml"
    data = yaml.safe_load(source.read_text())
    data["name"] = "hit_product_no_live"
    data["channels"] = [c for c in data["channels"] if c["name"] != "live"]
    path = tmp_path_factory.mktemp("scenario") / "no_live.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_spaces_follow_the_channel_list(five_channels):
    env = MultiChannelBudgetEnv(scenario=five_channels, horizon_hours=24)
    dim = len(GLOBAL_FEATURES) + 5 * len(CHANNEL_FEATURES)
    assert env.observation_space.shape == (dim,) and env.action_space.shape == (6,)
    assert env.campaigns.layout.channel_names == FIVE
    assert tuple(c.name for c in env.campaigns.channels) == FIVE
    assert env.campaigns.layout.features[-1] == "social/log_matured_roi"
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    obs, info = env.reset(seed=1_000_000)
    assert env.observation_space.contains(obs) and info["spend_by_channel"].shape == (5,)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        env.step(np.zeros(7, dtype=np.float32))

    vector = MultiChannelBudgetVectorEnv(3, scenario=five_channels, horizon_hours=24)
    assert vector.single_observation_space.shape == (dim,)
    assert vector.action_space.shape == (3, 6)
    sb3 = BudgetVecEnv(3, scenario=five_channels, horizon_hours=24)
    assert sb3.observation_space.shape == (dim,) and sb3.action_space.shape == (6,)
    made = gym.make(ENV_ID, scenario=five_channels, horizon_hours=24)
    assert made.observation_space.shape == (dim,)


def test_five_channels_step_and_reconcile(five_channels):
    campaigns = BatchedCampaigns(five_channels, horizon_hours=24)
    campaigns.reset(1_000_000 + np.arange(8))
    with pytest.raises(ValueError, match=r"\(8, 6\).*'social'"):
        campaigns.step(np.zeros((8, 7)))
    with pytest.raises(ValueError, match=r"\(8, 5\)"):
        campaigns.step_spend(np.zeros((8, 6)))
    rng = np.random.default_rng(0)
    spend = 0.0
    for _ in range(24):
        obs, _, _, info = campaigns.step(rng.uniform(-1, 1, (8, 6)))
        assert obs.shape == (8, campaigns.layout.dim) and np.isfinite(obs).all()
        spend = spend + info["spend_cny"]
    np.testing.assert_allclose(spend, info["spend_by_channel"], rtol=1e-12)
    assert (info["spend_total"] <= info["budget"] * (1 + 1e-12)).all()
    assert (info["spend_by_channel"] > 0).all()
