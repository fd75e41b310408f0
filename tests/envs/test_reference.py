"""The compiled kernel against the plain-numpy reference step (envs/reference.py), side by side
over whole episodes of every scenario and of a user's scenario file, with spend requests of
every kind (none, even pacing, bursts, beyond the budget left) and, one hour in three, a
policy's actions.

Counts (impressions, clicks, conversions, customers, purchases, pools) must be equal, to the
bit. Money must be equal within ``MONEY_RTOL`` of the amount plus ``MONEY_BUDGET_TOL`` of the
campaign's budget. The reference's ``exp``, ``log`` and ``erfc`` are numpy's and scipy's, the
kernel's are its inlined polynomials (``core.inline_exp``, ``core.inline_log``, within 2 ulp of
glibc's) and glibc's ``erfc``: market prices, order values and the costs that follow from them
differ in their last bits (about 5% of the hourly amounts do, by a few 1e-16 relative). These
differences add up over a week in the budget left, to at most ~2e-15 of the budget (a few
ulps of it); a budget nearly spent then carries them, relative to what is left, into the
requests paced on it (measured: at most 1.1e-12 relative, 1.5e-14 of the budget, over 200
campaigns of each scenario). Rewards (money over the budget) must be equal to the same
tolerances. Observations are computed from the reference's state by the views' own functions
and must be equal to two float32 ulps (``OBS_RTOL``; where the money differs in its last bits,
its float32 rounding may differ by one) or ``OBS_ATOL`` for features near 0.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml
from scipy.special import ndtri as exact_ndtri
from scipy.stats import binom

from budgetgym.envs import BatchedCampaigns
from budgetgym.envs.campaigns import TOTAL_KEYS
from budgetgym.envs.core import HOURLY_METRICS, REWARD_MODES, action_to_spend_request
from budgetgym.envs.mechanisms import MECHANISMS, switched_on
from budgetgym.envs.reference import binomial, ndtri, reference_reward, reference_step
from budgetgym.envs.scenarios import DEEP_MARKET, LIBRARY, SCENARIO_NAMES

MONEY_RTOL = 1e-11
MONEY_BUDGET_TOL = 1e-13
OBS_RTOL = 2.0**-22
OBS_ATOL = 1e-12
N_CAMPAIGNS = 40
COUNTS = ("impressions", "clicks", "conversions", "new_customers")
COUNT_STATE = ("returning_pool", "pending_conversions", "pending_new_customers",
               "unattributed_conversions", "interest", "deposit_conversions",
               "deposit_new_customers")  # fmt: skip
MONEY_STATE = ("budget_left_cny", "pending_gmv_cny", "recent_spend_cny", "unattributed_gmv_cny",
               "deposit_gmv_cny", "fatigue", "cvr_drift_log")  # fmt: skip
INFO_KEYS = {*TOTAL_KEYS, *HOURLY_METRICS, "hour", "spend_by_channel", "gmv_by_channel",
             "true_cvr_new", "true_cvr_returning", "purchases", "purchase_gmv_cny"}  # fmt: skip
EXACT_INFO = (*COUNTS, "purchases", "conversions_total", "new_customers_total",
              "returning_customers_total", "pending_conversions", "unattributed_conversions",
              "hour", "budget", "target_roi", "true_cvr_new", "true_cvr_returning")  # fmt: skip


def spend_requests(rng: np.random.Generator, budget_left: np.ndarray, hours_left: int, k: int):
    """Random requests ``(n, k)``: nothing, even pacing, bursts and requests beyond the budget
    left, split over random channels (some requested nothing)."""
    n = budget_left.size
    pace = rng.choice([0.0, 0.3, 1.0, 4.0, 1e3], size=n, p=[0.15, 0.25, 0.3, 0.2, 0.1])
    shares = rng.dirichlet(np.full(k, 0.7), size=n) * (rng.random((n, k)) > 0.2)
    return pace[:, None] * (budget_left / hours_left)[:, None] * shares


def assert_same(name: str, kernel: np.ndarray, ref: np.ndarray, budget: np.ndarray | None):
    """Equal to the bit (``budget`` None), or as money of campaigns with these budgets ``(n,)``
    (to the module's tolerances)."""
    if budget is None:
        np.testing.assert_array_equal(kernel, ref, err_msg=name)
        return
    budget = budget.reshape(-1, *(1,) * (ref.ndim - 1))
    error = np.abs(kernel - ref) - (MONEY_RTOL * np.abs(ref) + MONEY_BUDGET_TOL * budget)
    worst = np.unravel_index(np.argmax(error), error.shape)
    assert error[worst] <= 0.0, f"{name}{list(worst)}: kernel {kernel[worst]!r}, ref {ref[worst]!r}"


def run_side_by_side(scenario, seeds: np.ndarray, mode: str, rng: np.random.Generator):
    """One episode of the kernel and the reference on the same campaigns and requests,
    comparing every state field, info field, reward and observation after each hour.
    Returns the campaigns' parameters."""
    penalty_coef = 1.5
    kernel = BatchedCampaigns(scenario, reward_mode=mode, roi_penalty_coef=penalty_coef)
    shadow = BatchedCampaigns(scenario)
    kernel.reset(seeds)
    shadow.reset(seeds)
    params, ref_state = kernel.params, shadow.state
    n, k, horizon = seeds.size, params.n_channels, params.horizon_hours
    budget = params.budget_cny
    for hour in range(horizon):
        if hour % 3 == 2:  # through the policy's actions, mapped to spend inside the kernel
            actions = rng.uniform(-1.0, 1.0, size=(n, k + 1))
            obs, reward, done, info = kernel.step(actions)
            request = action_to_spend_request(actions, ref_state.budget_left_cny, horizon - hour)
        else:
            request = spend_requests(rng, ref_state.budget_left_cny, horizon - hour, k)
            obs, reward, done, info = kernel.step_spend(request)
        step = reference_step(params, ref_state, request, hour)
        ref_state = shadow.state = step.state
        for field in COUNT_STATE + MONEY_STATE:
            scale = None if field in COUNT_STATE else budget
            assert_same(field, getattr(kernel.state, field), getattr(ref_state, field), scale)
        for metric, values in step.hourly.items():
            assert_same(metric, info[metric], values, None if metric in COUNTS else budget)
        ref_reward = reference_reward(params, ref_state, mode, penalty_coef)
        assert_same("reward", reward * budget, ref_reward * budget, budget)
        # Observation and info from the reference's state, by the views' functions.
        totals, _ = shadow._summarize(bool(done[0]))
        ref_info = shadow._info(
            totals, {"purchases": step.purchases, "purchase_gmv_cny": step.purchase_gmv_cny}
        )
        assert set(info) == set(ref_info) == INFO_KEYS
        for key, values in info.items():
            if key == "roi":
                np.testing.assert_allclose(values, ref_info[key], rtol=MONEY_RTOL, err_msg=key)
            else:
                assert_same(key, values, ref_info[key], None if key in EXACT_INFO else budget)
        np.testing.assert_allclose(obs, shadow.observe(), rtol=OBS_RTOL, atol=OBS_ATOL)
    assert done.all() and ref_state.hour == horizon
    assert (ref_state.pending_conversions == 0).all()
    return params


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_kernel_matches_reference_over_an_episode(scenario):
    index = SCENARIO_NAMES.index(scenario)
    seeds = np.arange(N_CAMPAIGNS) * 7919 + 1000 * index
    mode = REWARD_MODES[index % len(REWARD_MODES)]
    run_side_by_side(scenario, seeds, mode, np.random.default_rng(index))


def test_kernel_matches_reference_on_a_user_scenario(tmp_path):
    """A scenario file without live stream, with its own channel behaviour (launch support,
    commission), a launch boost and two overlapping events."""
    spec = yaml.safe_load((LIBRARY.folder / "hit_product.yaml").read_text())
    spec["name"] = "user_scenario"
    spec["channels"] = [c for c in spec["channels"] if c["name"] != "live"]
    for channel in spec["channels"]:
        channel["launch_support"] = channel["name"] != "search"
        channel["commission_frac"] = 0.2 if channel["billing"] == "per_sale" else 0.0
    spec["launch_support"] = {"boost": 0.8, "decay_hours": 30.0}
    spec["events"] = [
        {"name": "festival_618", "start_hour": [60, 90], "length_hours": 36, "warmup_hours": 24,
         "multipliers": {"traffic": 2.5, "price": 1.5, "cvr": 1.7},
         "warmup_multipliers": {"traffic": 1.1, "price": 1.05, "cvr": 0.7}},
        {"name": "flash_sale", "start_hour": [80, 120], "length_hours": 6, "warmup_hours": 0,
         "multipliers": {"traffic": 1.8, "price": 1.3, "cvr": 1.4},
         "warmup_multipliers": {"traffic": 1.0, "price": 1.0, "cvr": 1.0}},
    ]  # fmt: skip
    path = tmp_path / "user_scenario.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    rng = np.random.default_rng(9)
    params = run_side_by_side(path, np.arange(N_CAMPAIGNS) + 5, "gmv_roi_penalty", rng)
    assert [c.name for c in params.channels] == ["search", "feed", "short_video", "affiliate",
                                                 "social"]  # fmt: skip


def test_kernel_matches_reference_on_deep_market():
    """The example that switches on every mechanism of the market."""
    deep_market = DEEP_MARKET
    assert switched_on(deep_market) == [m.name for m in MECHANISMS]
    seeds = np.arange(N_CAMPAIGNS) * 7919 + 31
    run_side_by_side(deep_market, seeds, "gmv_roi_penalty", np.random.default_rng(31))


def test_reference_draws_follow_their_definitions():
    """Acklam's quantile is within its error bound of the exact one; binomials below a mean of
    12 are the exact quantiles of their uniforms, above it the normal approximation."""
    u = np.array([1e-6, 0.01, 0.3, 0.5, 0.9, 0.999])
    np.testing.assert_allclose(ndtri(u), exact_ndtri(u), rtol=1.2e-9, atol=1e-12)
    # Exact inversion: the smallest k whose CDF reaches u.
    n, p = np.full(6, 20.0), np.full(6, 0.2)
    np.testing.assert_array_equal(binomial(n, p, u), binom.ppf(u, n, p))
    assert (binomial(np.array([0.0, 5.0, 5.0]), np.array([0.5, 0.0, 1.0]), 0.5) == [0, 0, 5]).all()
    # Normal approximation above a mean of 12, within the counts' range.
    large = binomial(np.full(6, 1000.0), np.full(6, 0.5), u)
    expected = np.floor(500.0 + np.sqrt(250.0) * ndtri(u) + 0.5)
    np.testing.assert_array_equal(large, expected)


def test_reference_step_is_pure_and_checks_its_arguments():
    campaigns = BatchedCampaigns("new_product_cold_start", horizon_hours=2)
    campaigns.reset(np.arange(8))
    state, request = campaigns.state, np.full((8, 6), 500.0)
    before = copy.deepcopy(state)
    step = reference_step(campaigns.params, state, request, 0)
    for field, value in vars(before).items():
        np.testing.assert_array_equal(getattr(state, field), value, err_msg=field)
    assert step.state.hour == 1 and (step.state.budget_left_cny < state.budget_left_cny).all()
    with pytest.raises(ValueError, match="hour must be the state's hour 1, got 0"):
        reference_step(campaigns.params, step.state, request, 0)
    with pytest.raises(ValueError, match="Unknown reward_mode 'roi'"):
        reference_reward(campaigns.params, step.state, "roi", 1.0)
