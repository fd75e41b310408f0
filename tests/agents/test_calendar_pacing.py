"""``calendar_pacing``: the calendar read from the observation, its pacing, and its value."""

from __future__ import annotations

import numpy as np
import pytest

from budgetgym.agents.baselines import (
    calendar_pace,
    calendar_rule_actions,
    calendar_weights,
    hour_value,
    make_baseline,
)
from budgetgym.agents.evaluation import rollout
from budgetgym.envs import BatchedCampaigns, obs_index
from budgetgym.envs.campaigns import roi_target_missed
from budgetgym.envs.scenarios import (
    EVENT_CVR_MULT,
    EVENT_LENGTH_HOURS,
    EVENT_PRICE_MULT,
    EVENT_TRAFFIC_MULT,
    HORIZON_HOURS,
    WARMUP_CVR_MULT,
    WARMUP_HOURS,
)

VALIDATION = 900_000


def calendar_episode(scenario: str, n: int = 4, seed: int = VALIDATION):
    """One full-horizon episode of ``calendar_pacing``: observations ``(H, n, OBS_DIM)``, actions
    ``(H, n, 7)``, spend ``(H, n)`` CNY per hour, and the campaigns (with their final info)."""
    campaigns = BatchedCampaigns(scenario)
    obs, _ = campaigns.reset(seed + np.arange(n))
    policy = make_baseline("calendar_pacing")
    policy.reset(campaigns)
    observations, actions, spend = [], [], []
    for _ in range(HORIZON_HOURS):
        act, _ = policy.predict(obs)
        observations.append(obs)
        actions.append(act)
        obs, _, _, info = campaigns.step(act)
        spend.append(info["spend_total"])
    spend = np.diff(np.stack(spend), axis=0, prepend=0.0)
    return np.stack(observations), np.stack(actions), spend, campaigns, info


@pytest.fixture(scope="module")
def double11():
    return calendar_episode("double11_promotion")


@pytest.fixture(scope="module")
def hit_product():
    return calendar_episode("hit_product", n=8)


def test_the_forecast_calendar_is_the_observed_one(double11):
    """The weights forecast at hour 0 put the event and the warm-up where the observation later
    flags them, and the forecast of an hour does not change as the campaign approaches it."""
    observations = double11[0].astype(np.float64)
    first = calendar_weights(observations[0])  # (n, H)
    event = observations[:, :, obs_index("event_active")].T == 1.0
    warmup = observations[:, :, obs_index("event_warmup")].T == 1.0
    assert np.all(event.sum(axis=1) == EVENT_LENGTH_HOURS)
    assert np.all(warmup.sum(axis=1) == WARMUP_HOURS)
    assert first[event].min() > 3.0 * first[~event].max()
    # Against the same hours without the event, the event and the warm-up weigh what the
    # public calendar's multipliers are worth.
    no_event = observations[0].copy()
    no_event[:, obs_index("hours_to_event")] = 1.0
    ordinary = calendar_weights(no_event)
    surge = hour_value(EVENT_TRAFFIC_MULT, EVENT_PRICE_MULT, EVENT_CVR_MULT)
    np.testing.assert_allclose(first[event] / ordinary[event], surge, rtol=1e-9)
    warm = hour_value(1.0, 1.0, WARMUP_CVR_MULT)
    np.testing.assert_allclose(first[warmup] / ordinary[warmup], warm, rtol=1e-9)
    for hour in (1, 50, 100, 150):
        later = calendar_weights(observations[hour])
        np.testing.assert_allclose(later[:, : HORIZON_HOURS - hour], first[:, hour:], rtol=1e-9)
        assert np.all(later[:, HORIZON_HOURS - hour :] == 0.0)


def test_spends_through_the_surge(double11):
    """The 48 event hours, 29% of the week, take over 40% of the spend: the event's hours are
    paced at over twice the rate of the others (what the surge's market can absorb caps it)."""
    observations, _, spend, campaigns, info = double11
    event = observations[:, :, obs_index("event_active")] == 1.0
    even_cny = campaigns.params.budget_cny / HORIZON_HOURS
    for i in range(spend.shape[1]):
        event_rate = spend[event[:, i], i].mean() / even_cny[i]
        other_rate = spend[~event[:, i], i].mean() / even_cny[i]
        assert event_rate > 2.0 * other_rate and other_rate < 1.0 < event_rate
        assert spend[event[:, i], i].sum() > 0.4 * info["spend_total"][i]


def test_paces_nearly_evenly_without_an_event(hit_product):
    observations, _, spend, campaigns, _ = hit_product
    pace = np.stack([calendar_pace(o.astype(np.float64)) for o in observations])
    assert 0.6 < pace.min() and pace.max() < 1.6
    day_share = spend.reshape(7, 24, -1).sum(axis=1) / campaigns.params.budget_cny
    np.testing.assert_allclose(day_share.mean(axis=1), 1.0 / 7.0, rtol=0.2)
    # The daily tilt: more spend in the evening (16:00-24:00), when traffic peaks, than in the
    # morning (4:00-12:00), by the clock each campaign observes (they start at any hour).
    angle = np.arctan2(
        observations[..., obs_index("hour_sin")], observations[..., obs_index("hour_cos")]
    )
    clock = np.round(angle.astype(np.float64) * 24.0 / (2.0 * np.pi)) % 24.0
    by_hour = np.bincount(clock.ravel().astype(int), weights=spend.ravel(), minlength=24)
    assert by_hour[16:24].sum() > 1.2 * by_hour[4:12].sum()


@pytest.mark.parametrize("episode", ["double11", "hit_product"])
def test_actions_are_valid_and_spend_stays_within_budget(episode, request):
    _, actions, spend, campaigns, info = request.getfixturevalue(episode)
    assert np.isfinite(actions).all() and np.abs(actions).max() <= 1.0
    assert np.all(spend >= 0.0)
    budget = campaigns.params.budget_cny
    assert np.all(info["spend_total"] <= budget * (1.0 + 1e-12))
    # The calendar pace spends the budget, but for what the hours' markets cannot absorb.
    assert info["spend_total"].sum() >= 0.95 * budget.sum()


def test_the_rule_is_one_array_api_function(double11):
    """The same actions from torch tensors as from numpy arrays (a residual base could run it)."""
    torch = pytest.importorskip("torch")
    obs = double11[0][[0, 90, 120, 167]].reshape(-1, double11[0].shape[2])
    expected = calendar_rule_actions(obs)
    actual = calendar_rule_actions(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(actual, expected, atol=1e-6)


def test_beats_obs_thompson_on_double11_validation_campaigns():
    """On 128 validation Double-11 campaigns: more GMV than ``obs_thompson`` at a ROI-miss rate
    at most 2 points higher (the issue's acceptance, on seeds the evaluation never uses)."""
    seeds = VALIDATION + np.arange(128)
    results = {}
    for name in ("calendar_pacing", "obs_thompson"):
        info, _ = rollout(make_baseline(name), BatchedCampaigns("double11_promotion"), seeds)
        missed = roi_target_missed(info["gmv_total"], info["target_roi"], info["spend_total"])
        results[name] = info["gmv_total"].sum(), missed.mean()
    (gmv, miss), (rival_gmv, rival_miss) = results["calendar_pacing"], results["obs_thompson"]
    assert gmv > rival_gmv
    assert miss <= rival_miss + 0.02
