"""planner and planner_cc: arguments, replanning, blind to the realized market, the allocation
solver's constraint, batch independence (the population tests: ``test_planner_population.py``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from budgetgym.agents.allocation import ResponseCells, solve_allocation
from budgetgym.agents.evaluation import evaluate, rollout
from budgetgym.agents.planner import PlannerPolicy
from budgetgym.agents.policy import PLANNER, PLANNER_CC, PRIVILEGED, load_policy, policy_names
from budgetgym.envs import BatchedCampaigns
from budgetgym.envs.core import expected_markets, hourly_markets
from budgetgym.envs.scenarios import PLAIN, VALIDATION_SEED_START
from tests.agents.test_oracle import tiny_problem


def test_replanning_every_few_hours_works():
    campaigns = BatchedCampaigns("double11_promotion", horizon_hours=120)
    seeds = VALIDATION_SEED_START + np.arange(32)
    hourly, _ = rollout(PlannerPolicy(), campaigns, seeds)
    every_six, _ = rollout(PlannerPolicy(replan_hours=6), campaigns, seeds)
    assert np.all(every_six["spend_total"] <= every_six["budget"] * (1 + 1e-9))
    assert every_six["gmv_total"].sum() == pytest.approx(hourly["gmv_total"].sum(), rel=0.05)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0.0}, "alpha must lie in"),
        ({"alpha": 0.5}, "alpha must lie in"),
        ({"alpha": -0.1}, "alpha must lie in"),
        ({"replan_hours": 0}, "replan_hours must be an integer >= 1"),
        ({"replan_hours": 1.5}, "replan_hours must be an integer >= 1"),
    ],
)
def test_bad_arguments_fail_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PlannerPolicy(**kwargs)


def test_spend_before_reset_fails_clearly():
    with pytest.raises(RuntimeError, match="reset"):
        PlannerPolicy().spend(np.zeros((1, 10)))


def test_planner_never_reads_the_realized_market():
    """Two campaigns with the same parameters but different realized markets (another dynamics
    key): the planner's plan and first spend are the same; the oracle's differ."""
    campaigns = BatchedCampaigns("hit_product", horizon_hours=48)
    obs, _ = campaigns.reset(VALIDATION_SEED_START + np.arange(4))
    other = BatchedCampaigns("hit_product", horizon_hours=48)
    other.reset(VALIDATION_SEED_START + np.arange(4))
    other.params = dataclasses.replace(other.params, seeds=other.params.seeds + 10_000_000)
    realized = [hourly_markets(c.params)["volume"] for c in (campaigns, other)]
    assert not np.allclose(*realized)
    np.testing.assert_array_equal(
        expected_markets(campaigns.params)["volume"], expected_markets(other.params)["volume"]
    )
    spends = {}
    for name in ("planner", "oracle"):
        plans = []
        for c in (campaigns, other):
            policy = load_policy(name)
            policy.reset(c)
            plans.append(policy.spend(obs))
        spends[name] = plans
    np.testing.assert_array_equal(*spends["planner"])
    assert not np.allclose(*spends["oracle"])


def test_hopeless_target_buys_only_hours_at_the_target_roi(rng):
    """With a deficit no plan can make up, the price is the target ROI (the largest expected
    surplus), or higher where the budget binds first."""
    problem = tiny_problem(rng, budget_frac=2.0, target_roi=2.0)
    _, theta = solve_allocation(problem, gmv_offset_cny=-1e12)
    assert theta[0] == pytest.approx(2.0, rel=1e-6)
    tight = dataclasses.replace(problem, budget_cny=problem.budget_cny * 0.003)
    _, theta_tight = solve_allocation(tight, gmv_offset_cny=-1e12)
    _, theta_budget = solve_allocation(dataclasses.replace(tight, target_roi=np.array([1e-6])))
    assert theta_tight[0] > 2.0
    assert theta_tight[0] == pytest.approx(theta_budget[0], rel=1e-6)


def test_offsets_shift_the_roi_constraint(rng):
    """GMV already earned above the target lets the plan buy more at a lower marginal ROI, and
    the constraint with offsets binds exactly."""
    problem = tiny_problem(rng, budget_frac=2.0, target_roi=3.0)
    _, theta = solve_allocation(problem)
    surplus = 0.2 * problem.budget_cny
    alloc, theta_surplus = solve_allocation(problem, gmv_offset_cny=surplus)
    assert theta_surplus[0] < theta[0]
    gmv, spend = ResponseCells(problem).totals(np.log(theta_surplus))
    assert gmv + surplus == pytest.approx(problem.target_roi * spend, rel=1e-6)


def test_tabulated_totals_match_exact_ones():
    """On the plain market (on the shipped one the table is within about 1e-3)."""
    campaigns = BatchedCampaigns(str(PLAIN / "mixed.yaml"), horizon_hours=72)
    campaigns.reset(VALIDATION_SEED_START + np.arange(16))
    planner = PlannerPolicy()
    planner.reset(campaigns)
    table = planner._table
    low, high = table.window()
    for fraction in (0.13, 0.5, 0.87):
        log_theta = low + fraction * (high - low)
        for start in (0, 30, 71):
            tabulated = table.totals(log_theta, start)
            exact = table.cells.totals(log_theta, start)
            np.testing.assert_allclose(tabulated, exact, rtol=1e-4, atol=1e-6)


def test_registered_as_privileged_policies():
    assert {PLANNER, PLANNER_CC} <= set(policy_names())
    assert set(PRIVILEGED) == {"oracle", PLANNER, PLANNER_CC}
    assert load_policy(PLANNER).name == PLANNER
    cc = load_policy(PLANNER_CC)
    assert (cc.name, cc.alpha) == (PLANNER_CC, 0.05)


@pytest.mark.parametrize("name", ["oracle", PLANNER, PLANNER_CC])
def test_a_campaign_gets_the_same_result_in_any_batch(name):
    """References are solved for the whole batch at once, but each campaign's answer (its
    warm-started bisection included) depends on that campaign alone."""
    seeds = dict(scenario="hit_product", episodes=12, seed_start=VALIDATION_SEED_START)
    whole = evaluate(load_policy(name), batch_size=12, progress=False, **seeds)
    pieces = evaluate(load_policy(name), batch_size=5, progress=False, **seeds)
    assert [e["gmv"] for e in whole.episodes] == [e["gmv"] for e in pieces.episodes]
    assert [e["spend"] for e in whole.episodes] == [e["spend"] for e in pieces.episodes]
