"""Input safety of the env views (issue 23): action bounds, vector env seeds."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO

from budgetgym.envs import (
    ENV_ID,
    TRAIN_SEED_LIMIT,
    BatchedCampaigns,
    BudgetVecEnv,
    MultiChannelBudgetEnv,
)


# --------------------------------------------------------------------------------------------
# Actions: [-1, 1] exactly; the message names the entry and its exact value
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("index", "value", "shown"),
    [
        (3, 1.00001, "actions[0, 3] = 1.00001"),
        (0, 1 + 1e-7, "actions[0, 0] = 1.0000001"),
        (6, -1 - 1e-9, "actions[0, 6] = -1.000000001"),
    ],
)
def test_an_action_just_outside_the_bounds_raises_naming_it(index, value, shown) -> None:
    env = MultiChannelBudgetEnv(horizon_hours=4)
    env.reset(seed=0)
    action = np.zeros(7)
    action[index] = value
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\]") as err:
        env.step(action)
    assert shown in str(err.value)


def test_the_message_counts_the_other_offenders_and_names_nan() -> None:
    campaigns = BatchedCampaigns("hit_product", horizon_hours=4)
    campaigns.reset([0, 1])
    actions = np.zeros((2, 7))
    actions[1, 2], actions[1, 5] = 1.5, -3.0
    with pytest.raises(ValueError, match=r"actions\[1, 2\] = 1\.5 \(and 1 more\)"):
        campaigns.step(actions)
    actions[0, 4] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf: actions\[0, 4\] = nan"):
        campaigns.step(actions)


def test_float32_actions_clipped_by_sb3_reach_the_env_inside_the_bounds() -> None:
    """SB3 clips PPO's Gaussian actions to the float32 space, where -1 and 1 are exact."""
    venv = BudgetVecEnv(8, horizon_hours=4)
    model = PPO("MlpPolicy", venv, n_steps=4, batch_size=32, seed=0, device="cpu",
                policy_kwargs={"log_std_init": 2.0})  # fmt: skip
    obs = venv.reset()
    actions, _ = model.predict(obs, deterministic=False)
    assert actions.dtype == np.float32 and np.abs(actions).max() == 1.0  # some were clipped
    venv.step(actions)  # no error
    assert np.all(np.clip(np.float32([1e30, -1e30, 1 + 1e-7]), -1, 1) == [1.0, -1.0, 1.0])


# --------------------------------------------------------------------------------------------
# Seeds: one per sub-env as a list, and a ValueError for anything but a non-negative integer
# --------------------------------------------------------------------------------------------
def test_make_vec_accepts_one_seed_per_env() -> None:
    envs = gym.make_vec(ENV_ID, num_envs=4, horizon_hours=2)
    obs, _ = envs.reset(seed=[1, 2, 3, 4])
    assert envs.unwrapped.campaigns.params.seeds.tolist() == [1, 2, 3, 4]
    np.testing.assert_array_equal(obs, envs.reset(seed=1)[0])  # 1 + arange(4): the same
    envs.reset(seed=[7, np.int64(5), 9, 11])
    assert envs.unwrapped.campaigns.params.seeds.tolist() == [7, 5, 9, 11]
    # The episodes after the first follow from the listed seeds.
    later = []
    for _ in range(2):
        envs.reset(seed=[7, 5, 9, 11])
        for _ in range(2):
            envs.step(np.zeros((4, 7), np.float32))
        later.append(envs.unwrapped.campaigns.params.seeds.tolist())
    assert later[0] == later[1] and max(later[0]) < TRAIN_SEED_LIMIT
    # None entries are random training seeds, as in gymnasium's SyncVectorEnv.
    envs.reset(seed=[None, 2, None, 4])
    seeds = envs.unwrapped.campaigns.params.seeds
    assert seeds[[1, 3]].tolist() == [2, 4] and max(seeds[[0, 2]]) < TRAIN_SEED_LIMIT
    with pytest.raises(ValueError, match=r"campaign_seeds\[1\] .* got 2.5"):
        envs.reset(options={"campaign_seeds": [1, 2.5, 3, 4]})


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        (1.7, "seed must be a non-negative integer, got 1.7"),
        (True, "got True"),
        (-1, "got -1"),
        ("3", "got '3'"),
        ([1, 2, 3], r"one seed per env \(4\), got 3"),
        ([1, 2, 3, 4.0], r"seed\[3\] must be a non-negative integer, got 4.0"),
    ],
)
def test_a_bad_vector_seed_is_a_value_error(seed, message) -> None:
    envs = gym.make_vec(ENV_ID, num_envs=4, horizon_hours=2)
    with pytest.raises(ValueError, match=message):
        envs.reset(seed=seed)


def test_sb3_vecenv_and_single_env_seeds_are_checked() -> None:
    venv = BudgetVecEnv(3, horizon_hours=2)
    with pytest.raises(ValueError, match="got 1.7"):
        venv.seed(1.7)
    assert venv.seed(5) == [5, 6, 7]
    venv.reset()
    assert venv.campaigns.params.seeds.tolist() == [5, 6, 7]
    venv.seed()  # SB3's default would pick any 32-bit seed, held-out ones included
    venv.reset()
    assert venv.campaigns.params.seeds.max() < TRAIN_SEED_LIMIT

    env = MultiChannelBudgetEnv(horizon_hours=2)
    with pytest.raises(ValueError, match="got 1.7"):
        env.reset(seed=1.7)
    env.reset(seed=np.int64(5))
    assert env.campaign_seed == 5


@pytest.mark.parametrize("num_envs", [0, 1.7, 2.0, True, "2"])
def test_a_bad_number_of_envs_is_a_value_error(num_envs) -> None:
    with pytest.raises(ValueError, match=f"num_envs must be an integer >= 1, got {num_envs!r}"):
        gym.make_vec(ENV_ID, num_envs=num_envs, horizon_hours=2)
    with pytest.raises(ValueError, match="num_envs must be an integer"):
        BudgetVecEnv(num_envs, horizon_hours=2)
