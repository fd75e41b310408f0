"""Input safety of the env views (issue 23): action bounds."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3 import PPO

from budgetgym.envs import BatchedCampaigns, BudgetVecEnv, MultiChannelBudgetEnv


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
