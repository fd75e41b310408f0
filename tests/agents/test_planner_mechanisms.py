"""The planner on the market's mechanisms, one switched on at a time (the plain market's
hit_product plus one field): its model predicts what the simulator does, modelling the states
beats ignoring them, and it never spends beyond the budget."""

from __future__ import annotations

import numpy as np
import pytest

from budgetgym.agents.allocation import expected_impressions, within_budget
from budgetgym.agents.evaluation import simulate
from budgetgym.agents.intertemporal import ExpectedTwin, drift_factor, plan_market, with_drift
from budgetgym.agents.planner import PlannerPolicy
from budgetgym.agents.policy import load_policy, unavailable
from budgetgym.envs import BatchedCampaigns
from budgetgym.envs.core import GMV, SPEND, expected_markets
from budgetgym.envs.scenarios import DEEP_MARKET, EVAL_SEED_START
from tests.envs.test_market_mechanisms import BID, DELAYS, scenario_file

HOURS = 72
SEEDS = np.arange(EVAL_SEED_START, EVAL_SEED_START + 128)
INTEREST = {
    "interest": {"half_life_hours": 72.0, "half_saturation_per_kcny": 100.0, "cvr_mult": 3.0}
}
INTEREST_CHANNELS = {
    "search": {"interest_affinity": 0.6},
    "feed": {"interest_per_click": 0.2, "interest_affinity": 0.2},
    "live": {"interest_per_click": 0.15, "interest_affinity": 0.3},
    "short_video": {"interest_per_click": 0.25},
    "social": {"interest_per_click": 0.3},
}
PRESALE_EVENT = {
    "name": "presale_festival",
    "start_hour": [40, 48],
    "length_hours": 12,
    "warmup_hours": 36,
    "multipliers": {"traffic": 2.5, "price": 1.6, "cvr": 1.8},
    "warmup_multipliers": {"traffic": 1.1, "price": 1.05, "cvr": 1.0},
    "presale": True,
}
FATIGUE = {
    name: {"fatigue_strength": strength, "fatigue_recovery": 0.017}
    for name, strength in (("search", 0.02), ("feed", 0.1), ("live", 0.05)) + (
        ("short_video", 0.15), ("affiliate", 0.05), ("social", 0.1))
}  # fmt: skip
#: One variant per mechanism: (top-level keys, channel keys).
VARIANTS = {
    "delays": ({}, DELAYS),
    "window": ({"attribution_window_hours": 24}, {}),
    "drift": ({"cvr_drift": {"sigma": 0.03, "persistence": 0.98}}, {}),
    "interest": (INTEREST, INTEREST_CHANNELS),
    "presale": ({**INTEREST, "events": [PRESALE_EVENT]}, INTEREST_CHANNELS),
    "fatigue": ({}, FATIGUE),
    "learning": ({"learning": {"gap": 0.3, "clicks_to_learn": 25000.0}}, {}),
    "bid": ({}, BID),
}
#: The mechanisms with a state: modelling them must pay.
STATEFUL = ("interest", "presale", "fatigue")
#: Targets low enough that the budget binds: the planner and its ablation spend alike, so their
#: GMV compares (with the ROI binding, the ablation misses its target more often instead).
BUDGET_BOUND = {"target_roi": [1.0, 1.3]}


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("variants")
    return {
        name: str(scenario_file(folder, name, channels=channels, **top))
        for name, (top, channels) in VARIANTS.items()
    }


def replay_initial_plan(scenario: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The planner's plan at hour 0 replayed open loop on ``SEEDS``: predicted and simulated
    attributed GMV and spend per channel ``(k,)`` CNY, summed over the campaigns."""
    campaigns = BatchedCampaigns(scenario, horizon_hours=HOURS)
    campaigns.reset(SEEDS)
    params = campaigns.params
    market = plan_market(params, realized=False)
    alloc = market.plan["alloc_cny"]
    markets = with_drift(params, expected_markets(params), realized=False)
    twin = ExpectedTwin(params, markets, market.problem)
    impressions = expected_impressions(alloc, market.problem)
    rolled = twin.roll(impressions, 0, twin.initial)
    per_sale = market.problem.pays_per_sale
    predicted_gmv = rolled.gmv.sum(axis=(0, 1))
    paid = np.minimum(alloc, market.problem.cap_cny).sum(axis=(0, 1))
    predicted_spend = np.where(per_sale, rolled.sale_cost.sum(axis=(0, 1)), paid)
    for t in range(HOURS):
        budget_left = campaigns.state.budget_left_cny
        campaigns.step_spend(within_budget(alloc[:, t], budget_left, per_sale))
    totals = campaigns.state.totals
    return predicted_gmv, totals[GMV].sum(axis=0), predicted_spend, totals[SPEND].sum(axis=0)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_planners_model_predicts_the_simulated_gmv_and_spend(scenarios, variant):
    """Model consistency: on 128 held-out campaigns the plan's predicted attributed GMV and
    spend per channel (and in total) match the simulator's within a few percent. The plan is
    certainty-equivalent (the hourly market noise at its mean and median): on ``live``, the
    noisiest channel (volume log-sd 0.6), that alone overstates GMV by about 6.5% with every
    mechanism off, hence 8% per channel."""
    gmv_model, gmv_sim, spend_model, spend_sim = replay_initial_plan(scenarios[variant])
    bought = spend_sim > 0.02 * spend_sim.sum()  # channels with a real share of the plan
    np.testing.assert_allclose(gmv_model[bought], gmv_sim[bought], rtol=0.08)
    np.testing.assert_allclose(spend_model[bought], spend_sim[bought], rtol=0.08)
    np.testing.assert_allclose(gmv_model.sum(), gmv_sim.sum(), rtol=0.04)
    np.testing.assert_allclose(spend_model.sum(), spend_sim.sum(), rtol=0.04)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_twins_adjoint_is_the_gradient_of_its_gmv(scenarios, variant):
    """The adjoint's ``dG / d impressions`` matches central finite differences of the roll's
    total attributed GMV within 1e-5 of each campaign's largest slope, on random impression
    plans around the static problem's, from hour 0 and from the state observed to hour 20, for
    every channel-hour of 4 held-out campaigns."""
    campaigns = BatchedCampaigns(scenarios[variant], horizon_hours=36)
    campaigns.reset(SEEDS[:4])
    params = campaigns.params
    market = plan_market(params, realized=False, stateful=False)
    markets = with_drift(params, expected_markets(params), realized=False)
    twin = ExpectedTwin(params, markets, market.problem)
    base = expected_impressions(market.plan["alloc_cny"], market.problem)
    rng = np.random.default_rng(0)
    for start in (0, 20):
        impressions = base * rng.uniform(0.5, 1.5, base.shape) + rng.uniform(0.0, 100.0)
        state = (
            twin.initial
            if start == 0
            else twin.observed_state(
                impressions[:, :start], impressions[:, :start] * params.ctr[:, None]
            )
        )
        rest = impressions[:, start:]
        rolled, slope = twin.gmv_gradient(rest, start, state)
        np.testing.assert_array_equal(rolled.gmv, twin.roll(rest, start, state).gmv)
        step = 1e-4 * np.maximum(rest, 1.0)
        numeric = np.empty_like(rest)
        for index in np.ndindex(rest.shape[1:]):  # every hour and channel, all campaigns at once
            shift = np.zeros_like(rest)
            shift[(slice(None), *index)] = step[(slice(None), *index)]
            up, down = (
                twin.roll(rest + s * shift, start, state).gmv.sum(axis=(1, 2)) for s in (1, -1)
            )
            numeric[(slice(None), *index)] = (up - down) / (2.0 * step[(slice(None), *index)])
        scale = np.abs(numeric).max(axis=(1, 2), keepdims=True)  # each campaign's largest
        error = np.abs(slope - numeric) / scale
        assert error.max() <= 1e-5, (variant, start, error.max())


@pytest.fixture(scope="module")
def paired(tmp_path_factory) -> dict[str, tuple[list[dict], list[dict]]]:
    """Episodes of the planner and of its ablation on the static problem (the states ignored),
    on the same held-out campaigns of each stateful variant, budget-bound."""
    folder, out = tmp_path_factory.mktemp("budget_bound"), {}
    for name in STATEFUL:
        top, channels = VARIANTS[name]
        scenario = str(scenario_file(folder, name, channels=channels, **top, **BUDGET_BOUND))
        runs = [
            simulate(PlannerPolicy(stateful=stateful), scenario, SEEDS.size,
                     EVAL_SEED_START, 256, False, HOURS).episodes
            for stateful in (True, False)
        ]  # fmt: skip
        out[name] = (runs[0], runs[1])
    return out


@pytest.mark.parametrize("variant", STATEFUL)
def test_modelling_the_states_beats_ignoring_them(paired, variant):
    """Paired on the same budget-bound campaigns, the planner's GMV exceeds its ablation's (the
    static problem's plan, the states ignored), the 95% CI of the mean difference above 0, at
    no more ROI misses (within 3 points)."""
    planner, ablation = paired[variant]
    diff = np.array([a["gmv"] - b["gmv"] for a, b in zip(planner, ablation, strict=True)])
    low = diff.mean() - 1.96 * diff.std(ddof=1) / np.sqrt(diff.size)
    assert low > 0.0, (variant, diff.mean(), low)
    misses = [np.mean([row["roi_violation"] for row in run]) for run in (planner, ablation)]
    assert misses[0] <= misses[1] + 0.03, (variant, misses)


@pytest.mark.parametrize("variant", STATEFUL)
def test_the_planner_never_exceeds_the_budget(paired, variant):
    for episodes in paired[variant]:
        assert all(row["spend"] <= row["budget"] * (1.0 + 1e-9) for row in episodes)


def test_the_planner_plans_on_the_drifts_expectation_and_the_oracle_on_its_path():
    campaigns = BatchedCampaigns(str(DEEP_MARKET), horizon_hours=HOURS)
    campaigns.reset(SEEDS[:8])
    params = campaigns.params
    expected, realized = drift_factor(params, False), drift_factor(params, True)
    sigma, rho = params.cvr_drift_sigma[0], params.cvr_drift_persistence[0]
    variance = sigma**2 * (1 - rho ** (2 * HOURS)) / (1 - rho**2)
    np.testing.assert_allclose(expected[:, -1], np.exp(0.5 * variance))
    assert np.all(np.diff(expected, axis=1) > 0.0)
    assert np.unique(realized[:, -1]).size == 8 and not np.allclose(realized, expected)


def test_every_reference_accepts_the_deep_market_given_its_data():
    deep = str(DEEP_MARKET)
    assert unavailable(load_policy("planner"), deep) is None
    assert unavailable(load_policy("oracle"), deep) is None
    assert "no curves for it" in unavailable(load_policy("mmm_static"), deep)
    assert "budgetgym" in unavailable(load_policy("planner_cc"), deep)
