"""The single-campaign gymnasium.Env view: API, checkers, validation of actions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from budgetgym.envs import ENV_ID, OBS_DIM, OBS_FEATURES, MultiChannelBudgetEnv
from budgetgym.envs.scenarios import DEEP_MARKET as DEEP_MARKET_PATH

DEEP_MARKET = str(DEEP_MARKET_PATH)


@pytest.mark.parametrize("scenario", ["hit_product", "mixed", DEEP_MARKET])
def test_gymnasium_and_sb3_checkers(scenario):
    gym_check_env(MultiChannelBudgetEnv(scenario=scenario), skip_render_check=True)
    sb3_check_env(MultiChannelBudgetEnv(scenario=scenario), warn=True)


def test_make_and_make_vec():
    env = gym.make(ENV_ID, scenario="hit_product")
    obs, info = env.reset(seed=7)
    assert obs.shape == (OBS_DIM,) and obs.dtype == np.float32
    assert len(OBS_FEATURES) == OBS_DIM
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert isinstance(reward, float) and not terminated and not truncated
    assert info["spend_cny"].shape == (6,)
    venv = gym.make_vec(ENV_ID, num_envs=3, scenario="mixed", horizon_hours=5)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (3, OBS_DIM)
    for _ in range(5):
        obs, reward, terminated, truncated, info = venv.step(venv.action_space.sample())
    assert terminated.all() and "final_obs" in info
    sync = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="sync", horizon_hours=3)
    assert sync.reset(seed=0)[0].shape == (2, OBS_DIM)


@pytest.mark.parametrize("mode", [None, "sync", "vector_entry_point"])
def test_making_the_retired_v0_fails_naming_v1(mode):
    assert ENV_ID == "budgetgym/MultiChannelBudget-v1"
    retired = "budgetgym/MultiChannelBudget-v0"
    with pytest.raises(gym.error.DeprecatedEnv, match=f"v0 is retired.*Make {ENV_ID}"):
        if mode is None:
            gym.make(retired, scenario="hit_product")
        else:
            gym.make_vec(retired, num_envs=2, vectorization_mode=mode)


def test_episode_length_and_termination():
    env = MultiChannelBudgetEnv(horizon_hours=10)
    env.reset(seed=1)
    for hour in range(10):
        _, _, terminated, truncated, info = env.step(np.zeros(7, np.float32))
        assert terminated == (hour == 9) and not truncated
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(7, np.float32))


@pytest.mark.parametrize(
    "action, message",
    [
        (np.array([np.nan, 0, 0, 0, 0, 0, 0]), "NaN or inf"),
        (np.array([0, np.inf, 0, 0, 0, 0, 0]), "NaN or inf"),
        (np.zeros(6), "shape"),
        (np.zeros((1, 7)), "shape"),
        (np.array([1.5, 0, 0, 0, 0, 0, 0]), r"\[-1, 1\]"),
        (np.array(["a"] * 7), "dtype"),
        (np.zeros(7, dtype=complex), "dtype"),
    ],
)
def test_bad_actions_raise_clear_errors(action, message):
    env = MultiChannelBudgetEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_zero_pace_spends_nothing_and_full_pace_spends_faster():
    """Pace -1, 0, 1 ask for 0, 1 and 5 times even pacing; what an hour's traffic and reserve
    prices can absorb caps the spend, so full pace buys less than five times as much."""
    spend = {}
    for pace in (-1.0, 0.0, 1.0):
        env = MultiChannelBudgetEnv(horizon_hours=24)
        env.reset(seed=3)
        action = np.zeros(7, np.float32)
        action[0] = pace
        _, _, _, _, info = env.step(action)
        spend[pace] = info["spend_total"]
    even = info["budget"] / 24
    assert spend[-1.0] == 0.0
    assert 0 < spend[0.0] <= even * (1 + 1e-12)
    assert 1.5 * spend[0.0] < spend[1.0] <= 5 * even * (1 + 1e-12)


def test_seeded_reset_reproducible_and_unseeded_in_training_range():
    env = MultiChannelBudgetEnv()
    first = env.reset(seed=1_000_123)[0]
    np.testing.assert_array_equal(first, env.reset(seed=1_000_123)[0])
    env.reset()
    assert env.campaign_seed < 900_000


def test_reward_modes_and_penalty():
    totals = {}
    for mode in ("gmv", "gmv_roi_penalty", "profit"):
        env = MultiChannelBudgetEnv(scenario="low_ctr_creative", reward_mode=mode, horizon_hours=24)
        env.reset(seed=5)
        action = np.zeros(7, np.float32)
        action[0], action[6] = 1.0, 1.0  # fast, mostly social: the worst ROI
        rewards, done = [], False
        while not done:
            _, r, done, _, info = env.step(action)
            rewards.append(r)
        totals[mode] = (sum(rewards), info)
    gmv_return, info = totals["gmv"]
    assert gmv_return == pytest.approx(info["gmv_total"] / info["budget"], rel=1e-9)
    shortfall = max(info["target_roi"] * info["spend_total"] - info["gmv_total"], 0.0)
    assert shortfall > 0  # this policy misses the target
    assert totals["gmv_roi_penalty"][0] == pytest.approx(gmv_return - shortfall / info["budget"])
    assert totals["profit"][0] < gmv_return
    with pytest.raises(ValueError, match="reward_mode"):
        MultiChannelBudgetEnv(reward_mode="revenue")


def test_unknown_scenario_lists_valid_names():
    with pytest.raises(ValueError, match="Did you mean 'hit_product'.*Valid: "):
        MultiChannelBudgetEnv(scenario="hit_prodcut")
