"""Property tests: random and extreme action sequences never break the invariants."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from budgetgym.envs import SCENARIO_NAMES, BatchedCampaigns
from budgetgym.envs.budget_env import observation_space
from budgetgym.envs.core import BILLING_CPC, BILLING_CPM, BILLING_PER_SALE, channel_table

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
        _check_billing(campaigns, info)


def _check_billing(campaigns: BatchedCampaigns, info: dict) -> None:
    """Each channel's cost follows what it bills: clicks, impressions or sales (at the fixed
    commission, or at a bid rate within the channel's range)."""
    table = channel_table(campaigns.channels)
    spend = info["spend_cny"]
    for billing, paid_for in ((BILLING_CPC, "clicks"), (BILLING_CPM, "impressions")):
        cols = table.billing == billing
        np.testing.assert_array_equal(spend[:, cols] > 0, info[paid_for][:, cols] > 0)
    per_sale = table.billing == BILLING_PER_SALE
    fixed, bid = per_sale & (table.bid_pricing == 0), per_sale & (table.bid_pricing == 1)
    sales = info["purchase_gmv_cny"]
    np.testing.assert_allclose(
        spend[:, fixed], table.commission_frac[fixed] * sales[:, fixed], rtol=1e-12
    )
    tol = 1 + 1e-12
    assert (spend[:, bid] >= table.commission_min[bid] * sales[:, bid] / tol).all()
    assert (spend[:, bid] <= table.commission_max[bid] * sales[:, bid] * tol).all()
    gap = info["budget"] - info["spend_total"] - info["budget_left"]
    assert (np.abs(gap) <= 1e-9 * info["budget"]).all()


@settings(max_examples=30, deadline=None)
@given(
    scenario=st.sampled_from(SCENARIO_NAMES),
    seed=st.integers(0, 2_000_000),
    mults=arrays(np.float64, (HORIZON, 3, 6), elements=st.sampled_from([0.0, 0.01, 1.0, 50.0])),
)
def test_spend_requests_beyond_the_budget_are_never_paid(scenario, seed, mults):
    """Requests up to 50x the budget left on any channels: the budget still binds."""
    campaigns = BatchedCampaigns(scenario, horizon_hours=HORIZON)
    campaigns.reset(seed + np.arange(3))
    for t in range(HORIZON):
        _, _, _, info = campaigns.step_spend(mults[t] * campaigns.state.budget_left_cny[:, None])
        assert (info["spend_total"] <= info["budget"] * (1 + 1e-12)).all()
        assert (info["budget_left"] >= 0).all()
        _check_billing(campaigns, info)
