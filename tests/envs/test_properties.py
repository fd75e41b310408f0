"""Property tests: random and extreme action sequences never break the invariants."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from budgetgym.envs import SCENARIO_NAMES, BatchedCampaigns
from budgetgym.envs.budget_env import observation_space

HORIZON = 12
extreme = st.sampled_from([-1.0, 1.0, 0.0, -0.999999, 1.0 - 1e-9])
values = st.one_of(st.floats(-1.0, 1.0, allow_nan=False), extreme)


@settings(max_examples=40, deadline=None)
@given(
    scenario=st.sampled_from(SCENARIO_NAMES),
    seed=st.integers(0, 2_000_000),
    actions=arrays(np.float64, (HORIZON, 3, 7), elements=values),
    mode=st.sampled_from(["gmv", "gmv_roi_penalty", "profit"]),
)
def test_budget_never_exceeded_and_everything_finite(scenario, seed, actions, mode):
    campaigns = BatchedCampaigns(scenario, reward_mode=mode, horizon_hours=HORIZON)
    obs, _ = campaigns.reset(seed + np.arange(3))
    assert np.isfinite(obs).all()
    for t in range(HORIZON):
        obs, reward, _, info = campaigns.step(actions[t])
        assert np.isfinite(obs).all() and np.isfinite(reward).all()
        assert all(observation_space().contains(row) for row in obs)
        assert (info["spend_total"] <= info["budget"] * (1 + 1e-12)).all()
        assert (info["budget_left"] >= 0).all()
        assert (info["spend_cny"] >= 0).all() and (info["gmv_cny"] >= 0).all()
