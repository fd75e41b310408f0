"""Vector views over the batched core: SB3 VecEnv and gymnasium VectorEnv."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

from budgetgym.envs import BudgetVecEnv, MultiChannelBudgetEnv, MultiChannelBudgetVectorEnv
from budgetgym.envs.campaigns import CampaignInfo, info_columns


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
        for info, expected in zip(ib, id_, strict=True):  # the lazy mapping reads the same
            keys = [key for key in expected if key != "TimeLimit.truncated"]  # Dummy's every step
            assert [key for key in info if key != "TimeLimit.truncated"] == keys
            for key in keys:
                np.testing.assert_array_equal(info[key], expected[key])
        if t < horizon - 1:
            np.testing.assert_array_equal(ob, od)
    for i in range(n):  # last step: both report the terminal observation
        np.testing.assert_array_equal(ib[i]["terminal_observation"], id_[i]["terminal_observation"])
        assert ib[i]["TimeLimit.truncated"] is False
    assert ob.shape == od.shape


def test_campaign_info_keeps_what_is_set_on_it_apart_from_the_batch():
    batch = {"gmv_total": np.array([1.0, 2.0]), "spend_by_channel": np.arange(4.0).reshape(2, 2)}
    info = CampaignInfo(batch, 1)
    assert info["gmv_total"] == 2.0 and info.get("episode") is None and "episode" not in info
    np.testing.assert_array_equal(info["spend_by_channel"], [2.0, 3.0])
    copy = info.copy()
    copy["episode"] = {"r": 1.0}
    copy["gmv_total"] = -1.0  # hides the batch's value in the copy only
    assert "episode" not in info and info["gmv_total"] == 2.0 and copy["gmv_total"] == -1.0
    assert list(copy) == ["gmv_total", "spend_by_channel", "episode"] and len(copy) == 3
    assert dict(copy)["episode"] == {"r": 1.0} and batch["gmv_total"][1] == 2.0
    del copy["gmv_total"]
    assert copy["gmv_total"] == 2.0
    with pytest.raises(KeyError, match="only keys set on this campaign"):
        del copy["gmv_total"]
    with pytest.raises(KeyError):
        info["no_such_key"]


def test_info_columns_reads_whole_batches_and_single_infos_alike():
    a = {"x": np.array([1.0, 2.0, 3.0]), "y": np.array([4.0, 5.0, 6.0])}
    b = {"x": np.array([7.0, 8.0]), "y": np.array([9.0, 10.0])}
    overridden = CampaignInfo(b, 1)
    overridden["x"] = 11.0
    infos = [CampaignInfo(a, i) for i in range(3)] + [{"x": 0.5, "y": 0.25}]
    infos += [CampaignInfo(b, 0), overridden, CampaignInfo(a, 2)]
    x, y = info_columns(infos, "x", "y")
    np.testing.assert_array_equal(x, [1, 2, 3, 0.5, 7, 11, 3])
    np.testing.assert_array_equal(y, [4, 5, 6, 0.25, 9, 10, 6])
    assert x.dtype == np.float64 and info_columns([], "x")[0].shape == (0,)


def test_sb3_vecmonitor_reports_episodes_from_the_lazy_infos():
    venv = VecMonitor(BudgetVecEnv(2, horizon_hours=3))
    venv.reset()
    for _ in range(3):
        _, reward, done, infos = venv.step(np.zeros((2, 7), np.float32))
    assert done.all()
    for info in infos:
        assert info["episode"]["l"] == 3 and np.isfinite(info["episode"]["r"])
        assert info["terminal_observation"].shape == venv.observation_space.shape
        assert info["hour"] == 3 and info["spend_total"] > 0


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
