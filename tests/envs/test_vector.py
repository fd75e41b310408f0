"""Vector views over the batched core: SB3 VecEnv and gymnasium VectorEnv."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv

from budgetgym.envs import BudgetVecEnv, MultiChannelBudgetEnv, MultiChannelBudgetVectorEnv


def test_sb3_vecenv_matches_dummyvecenv_over_single_envs():
    n, horizon = 4, 6
    batched = BudgetVecEnv(n, scenario="mixed", horizon_hours=horizon)
    dummy = DummyVecEnv(
        [lambda: MultiChannelBudgetEnv(scenario="mixed", horizon_hours=horizon)] * n
    )
    batched.seed(100)
    dummy.seed(100)
    np.testing.assert_array_equal(batched.reset(), dummy.reset())
    rng = np.random.default_rng(0)
    for t in range(horizon):
        actions = rng.uniform(-1, 1, size=(n, 7)).astype(np.float32)
        ob, rb, db, ib = batched.step(actions)
        od, rd, dd, id_ = dummy.step(actions)
        np.testing.assert_allclose(rb, rd, rtol=1e-6)
        np.testing.assert_array_equal(db, dd)
        if t < horizon - 1:
            np.testing.assert_array_equal(ob, od)
    for i in range(n):  # last step: both report the terminal observation
        np.testing.assert_array_equal(ib[i]["terminal_observation"], id_[i]["terminal_observation"])
        assert ib[i]["TimeLimit.truncated"] is False
    assert ob.shape == od.shape


def test_sb3_vecenv_autoreset_draws_training_seeds():
    venv = BudgetVecEnv(3, horizon_hours=2)
    venv.seed(1_000_000)
    venv.reset()
    first = venv.campaigns.params.seeds.copy()
    for _ in range(2):
        venv.step(np.zeros((3, 7), np.float32))
    assert (first >= 1_000_000).all() and (venv.campaigns.params.seeds < 900_000).all()


def test_gymnasium_vector_env_same_step_autoreset():
    venv = MultiChannelBudgetVectorEnv(num_envs=2, horizon_hours=3)
    obs, _ = venv.reset(options={"campaign_seeds": [1_000_000, 1_000_001]})
    assert venv.campaigns.params.seeds.tolist() == [1_000_000, 1_000_001]
    for _ in range(3):
        obs, reward, terminated, truncated, info = venv.step(np.zeros((2, 7)))
    assert terminated.all() and not truncated.any()
    assert info["final_obs"].shape == obs.shape and info["_final_obs"].all()
    assert (obs[:, 4] == 0).all()  # progress feature of the new episode
