"""Rule baselines: action contract, observation-only decisions, the rules' defining behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from budgetgym.agents.baselines import (
    BASELINE_NAMES,
    BASELINES,
    PER_SALE_ALLOCATION,
    make_baseline,
    pace_to_action0,
    request_to_actions,
    shares_to_logits,
)
from budgetgym.agents.channel_set import DEFAULT_CHANNEL_SET, ChannelSet
from budgetgym.agents.evaluation import evaluate
from budgetgym.agents.policy import Policy
from budgetgym.envs import ACTION_DIM, OBS_DIM, BatchedCampaigns, obs_index
from budgetgym.envs.core import (
    MAX_PACE_MULT,
    SHARE_TEMPERATURE,
    action_to_spend_request,
    pace_action,
    share_logits,
    spend_to_action,
)

HORIZON = 24
PAYS_PER_SALE = DEFAULT_CHANNEL_SET.per_sale
PAID = np.flatnonzero(~PAYS_PER_SALE)


def run_episode(name: str, scenario: str = "hit_product", n: int = 4, seed: int = 7_000_000):
    campaigns = BatchedCampaigns(scenario, horizon_hours=HORIZON)
    obs, _ = campaigns.reset(seed + np.arange(n))
    policy = make_baseline(name)
    policy.reset(campaigns)
    observations, actions = [], []
    for _ in range(HORIZON):
        act, state = policy.predict(obs)
        assert state is None
        observations.append(obs)
        actions.append(act)
        obs, _, _, _ = campaigns.step(act)
    return np.stack(observations), np.stack(actions)


def synthetic_obs(n: int = 2, hour: int = 30, horizon: int = 168) -> np.ndarray:
    """Observations of campaigns on schedule whose channels have equal, on-target ROI."""
    obs = np.zeros((n, OBS_DIM), dtype=np.float32)
    obs[:, obs_index("progress")] = hour / horizon
    obs[:, obs_index("budget_left_frac")] = 1 - hour / horizon
    obs[:, obs_index("target_roi")] = 2.4 / 3
    spend = np.full(6, hour / horizon / 6)
    obs[:, obs_index("cum_spend_frac")] = spend
    obs[:, obs_index("cum_gmv_frac")] = spend  # ROI = target on every channel
    obs[:, obs_index("spend_rate")] = 1.0
    obs[:, obs_index("gmv_rate")] = 1.0 / 6
    obs[:, obs_index("log_impressions")] = np.log1p(2000.0) / 10
    return obs


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_actions_are_valid_batches(name):
    _, actions = run_episode(name)
    assert actions.shape == (HORIZON, 4, ACTION_DIM)
    assert np.isfinite(actions).all()
    assert np.abs(actions).max() <= 1.0


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_registry_and_protocol(name):
    policy = BASELINES[name]()
    assert isinstance(policy, Policy)
    assert policy.name == name
    assert not getattr(policy, "acts_in_spend", False)


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_decisions_use_observations_only(name):
    """Same observations, different hidden campaigns -> identical actions. A rule that knows
    the scenario's name (``knows_scenario``) meets other campaigns of the same scenario; the
    others, campaigns of another scenario on the same seeds (the bandit's draw keys)."""
    obs_seq, _ = run_episode(name, "hit_product")
    knows = BASELINES[name].knows_scenario
    other = ("hit_product", 456) if knows else ("high_price_long_cycle", 123)
    replayed = []
    for scenario, seed in (("hit_product", 123), other):
        campaigns = BatchedCampaigns(scenario, horizon_hours=HORIZON)
        campaigns.reset(seed + np.arange(4))  # other campaigns: the policy must not look
        policy = make_baseline(name)
        policy.reset(campaigns)
        replayed.append(np.stack([policy.predict(o)[0] for o in obs_seq]))
    np.testing.assert_array_equal(replayed[1], replayed[0])


@pytest.mark.parametrize("name", [n for n in BASELINE_NAMES if n != "bandit"])
def test_batch_rows_are_independent(name):
    """A campaign's actions do not depend on which other campaigns share its batch."""
    obs_seq, together = run_episode(name, n=4)
    policy = make_baseline(name)
    campaigns = BatchedCampaigns("hit_product", horizon_hours=HORIZON)
    campaigns.reset([1])
    policy.reset(campaigns)
    alone = np.stack([policy.predict(o[2:3])[0] for o in obs_seq])
    np.testing.assert_allclose(alone[:, 0], together[:, 2], atol=1e-6)


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_partial_episode_start_restarts_only_those_rows(name):
    """Campaigns 0 and 2 start a new episode at hour 10 while 1 and 3 go on: the restarted rows
    act as a freshly reset rule on the new campaigns, the others as if nothing had happened."""
    old_obs, _ = run_episode(name, seed=7_000_000)
    new_obs, _ = run_episode(name, seed=8_000_000)
    restart = np.array([True, False, True, False])
    campaigns = BatchedCampaigns("hit_product", horizon_hours=HORIZON)
    campaigns.reset(7_000_000 + np.arange(4))  # the slots' identity (the bandit's draw keys)
    policy, uninterrupted, fresh = (make_baseline(name) for _ in range(3))
    for rule in (policy, uninterrupted, fresh):
        rule.reset(campaigns)
    for obs in old_obs[:10]:
        policy.predict(obs)
        uninterrupted.predict(obs)
    for hour in range(6):
        mixed = np.where(restart[:, None], new_obs[hour], old_obs[10 + hour])
        acted, _ = policy.predict(mixed, episode_start=restart if hour == 0 else None)
        np.testing.assert_array_equal(acted[restart], fresh.predict(new_obs[hour])[0][restart])
        np.testing.assert_array_equal(
            acted[~restart], uninterrupted.predict(old_obs[10 + hour])[0][~restart]
        )


def test_uniform_is_the_zero_action():
    actions, _ = make_baseline("uniform").predict(synthetic_obs())
    np.testing.assert_array_equal(actions, 0.0)


def test_pace_and_share_mappings_are_the_cores_inverse():
    """The rules' array-API twins of the core's inverse mapping (they also run on torch, in
    the residual policies' ONNX graph) equal the core's definition."""
    pace = np.array([0.0, 0.3, 1.0, 2.7, 5.0])
    np.testing.assert_array_equal(pace_to_action0(pace), pace_action(pace))
    np.testing.assert_allclose(pace_to_action0(np.array([0.0, 1.0, 5.0])), [-1.0, 0.0, 1.0])
    shares = np.random.default_rng(0).dirichlet(np.ones(6), 32)
    np.testing.assert_allclose(shares_to_logits(shares), share_logits(shares), atol=1e-12)
    spend = shares * np.random.default_rng(1).uniform(1.0, 300.0, (32, 1))
    budget_left = np.full(32, 2e4)
    actions = request_to_actions(spend, budget_left / 84)
    np.testing.assert_allclose(actions, spend_to_action(spend, budget_left, 84), atol=1e-6)


@pytest.mark.parametrize("k", [2, 5, 6, 9])
def test_request_to_actions_is_the_inverse_of_the_core_mapping(k):
    """The rules' one inverse (numpy, and torch in the residual export) maps a request back
    to itself through the core's own action -> spend mapping, for any channel count."""
    rng = np.random.default_rng(k)
    budget_left, hours_left = rng.uniform(1e3, 1e5, 16), 40
    even = budget_left / hours_left
    shares = rng.dirichlet(np.ones(k), 16) + 0.01  # within e^-6 of the largest
    request = (rng.uniform(0.05, 4.9, 16) * even)[:, None] * shares / shares.sum(1, keepdims=True)
    actions = request_to_actions(request, even)
    assert actions.shape == (16, k + 1) and actions.dtype == np.float32
    spend = action_to_spend_request(actions.astype(np.float64), budget_left, hours_left)
    np.testing.assert_allclose(spend, request, rtol=2e-5)  # float32 actions
    torch = pytest.importorskip("torch")
    on_torch = request_to_actions(torch.from_numpy(request), torch.from_numpy(even))
    np.testing.assert_array_equal(on_torch.numpy(), actions)


def test_best_channel_commits_to_best_observed_roi():
    obs = synthetic_obs()
    live = obs_index("cum_gmv_frac").start + 2
    obs[:, live] *= 1.6  # live returns 60% more than the rest
    policy = make_baseline("best_channel", explore_hours=12)
    actions, _ = policy.predict(obs)
    logits = actions[:, 1:]
    assert np.all(logits[:, PAID].argmax(axis=1) == 2)
    assert np.all(logits[:, [0, 1, 3, 5]] <= -0.9)


def test_roi_proportional_orders_shares_by_roi():
    obs = synthetic_obs()
    gmv = obs_index("cum_gmv_frac")
    obs[:, gmv] *= np.array([1.0, 1.3, 0.7, 1.0, 1.0, 0.5], dtype=np.float32)
    logits = make_baseline("roi_proportional").predict(obs)[0][:, 1:]
    assert np.all(logits[:, 1] > logits[:, 0])
    assert np.all(logits[:, 0] > logits[:, 2])
    assert np.all(logits[:, 2] > logits[:, 5])


def test_pid_speeds_up_behind_schedule_and_throttles_below_target():
    on_track = synthetic_obs()
    behind = synthetic_obs()
    behind[:, obs_index("budget_left_frac")] += 0.1
    behind[:, obs_index("pace_gap")] = 0.1
    poor = synthetic_obs()
    poor[:, obs_index("cum_gmv_frac")] *= 0.5  # ROI at half the target

    def pace(obs):
        """Paid spend requested, as a multiple of even pacing of what is left."""
        actions = make_baseline("pid_pacing").predict(obs)[0].astype(np.float64)
        total = (4.0 ** actions[:, 0] - 0.25) / 0.75
        split = np.exp(SHARE_TEMPERATURE * actions[:, 1:])
        return total * split[:, PAID].sum(axis=1) / split.sum(axis=1)

    assert np.all(pace(behind) > pace(on_track))
    assert np.all(pace(poor) < pace(on_track))


def test_greedy_marginal_moves_budget_toward_higher_returns():
    obs = synthetic_obs()
    obs[:, obs_index("cum_gmv_frac").start + 1] *= 2.0  # feed returns twice as much
    policy = make_baseline("greedy_marginal", dither=0.0)
    first = policy.predict(obs)[0][:, 1:]
    later = first
    for _ in range(5):
        later = policy.predict(obs)[0][:, 1:]
    assert np.all(later[:, 1] == later[:, PAID].max(axis=1))
    assert np.all(later[:, 1] - later[:, 0] >= first[:, 1] - first[:, 0])


def test_bandit_is_reproducible_and_explores():
    obs_seq, first = run_episode("bandit")
    _, second = run_episode("bandit")
    np.testing.assert_array_equal(first, second)
    paid = np.exp(SHARE_TEMPERATURE * first[:, :, 1:])[:, :, PAID]
    paid /= paid.sum(axis=2, keepdims=True)
    assert paid.min() > 0.01  # every paid arm keeps some exploration budget


def test_bad_observations_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        make_baseline("pid_pacing").predict(np.zeros((3, OBS_DIM - 1)))


def test_unknown_baseline_suggests_closest():
    with pytest.raises(ValueError, match="Did you mean 'bandit'"):
        make_baseline("bandt")


def test_a_strong_rule_beats_uniform():
    """On held-out hit-product campaigns the best tuned rules earn more than the even split."""
    kwargs = {"episodes": 32, "seed_start": 1_000_000, "progress": False}
    uniform = evaluate(make_baseline("uniform"), "hit_product", **kwargs).summary
    for name in ("roi_proportional", "pid_pacing", "bandit"):
        summary = evaluate(make_baseline(name), "hit_product", **kwargs).summary
        assert summary["auctionnet_score_mean"] > uniform["auctionnet_score_mean"], name
        assert summary["gmv_mean"] > uniform["gmv_mean"], name


def paced_obs() -> np.ndarray:
    """``synthetic_obs`` with last hour's total spend at even pacing (1/6 per channel)."""
    obs = synthetic_obs()
    obs[:, obs_index("spend_rate")] = 1.0 / 6
    return obs


def test_dual_pacing_buys_more_where_marginal_return_is_higher():
    obs = paced_obs()
    obs[:, obs_index("cum_gmv_frac").start + 2] *= 1.8  # live returns 80% more
    logits = make_baseline("dual_pacing", dither=0.0).predict(obs)[0][:, 1:]
    assert np.all(logits[:, 2] == logits[:, PAID].max(axis=1))
    assert np.all(logits[:, 2] > logits[:, 0])


def test_dual_pacing_holds_back_when_projected_roi_misses_target():
    fine, poor = paced_obs(), paced_obs()
    poor[:, obs_index("cum_gmv_frac")] *= 0.6

    def paid_request(obs):
        actions = make_baseline("dual_pacing", dither=0.0).predict(obs)[0].astype(np.float64)
        total = (4.0 ** actions[:, 0] - 0.25) / 0.75
        split = np.exp(SHARE_TEMPERATURE * actions[:, 1:])
        return total * split[:, PAID].sum(axis=1) / split.sum(axis=1)

    assert np.all(paid_request(poor) < paid_request(fine))


def test_bandit_decisions_do_not_depend_on_the_batch():
    """Counter-based draws: a campaign's trajectory is the same alone or in a batch."""
    from budgetgym.agents.evaluation import rollout

    seeds = 1_000_000 + np.arange(6)
    batch = BatchedCampaigns("new_product_cold_start", horizon_hours=24)
    info_batch, _ = rollout(make_baseline("bandit"), batch, seeds)
    alone = BatchedCampaigns("new_product_cold_start", horizon_hours=24)
    info_alone, _ = rollout(make_baseline("bandit"), alone, seeds[[4]])
    assert info_batch["gmv_total"][4] == info_alone["gmv_total"][0]
    np.testing.assert_array_equal(
        info_batch["spend_by_channel"][4], info_alone["spend_by_channel"][0]
    )


#: Five channels, the pay-per-sale one named and placed unlike the reference six's affiliate.
FIVE = ChannelSet(
    names=("search", "feed", "cps_network", "short_video", "social"),
    billing=("cpc", "cpm", "per_sale", "cpm", "cpm"),
    launch_support=(True, True, False, True, False),
)


def synthetic_obs_on(channels: ChannelSet, n: int = 3, hour: int = 30) -> np.ndarray:
    """``synthetic_obs`` on another channel list, placed by its layout."""
    layout, k = channels.layout, channels.n_channels
    obs = np.zeros((n, layout.dim), dtype=np.float32)
    obs[:, layout.index("progress")] = hour / 168
    obs[:, layout.index("budget_left_frac")] = 1 - hour / 168
    obs[:, layout.index("target_roi")] = 2.4 / 3
    obs[:, layout.index("hours_to_event")] = 1.0
    obs[:, layout.channel_slice("cum_spend_frac")] = hour / 168 / k
    obs[:, layout.channel_slice("cum_gmv_frac")] = hour / 168 / k
    obs[:, layout.channel_slice("spend_rate")] = 1.0
    obs[:, layout.channel_slice("gmv_rate")] = 1.0 / k
    obs[:, layout.channel_slice("log_impressions")] = np.log1p(2000.0) / 10
    obs[:, layout.channel_slice("log_matured_roi")] = np.array([0.3, -0.2, 0.0, 0.1, -0.5])
    return obs


@pytest.mark.parametrize("name", [n for n in BASELINE_NAMES if n != "mmm_static"])
def test_rules_find_pay_per_sale_channels_by_billing_on_any_channel_list(name):
    obs = synthetic_obs_on(FIVE)
    policy = make_baseline(name, channels=FIVE)
    actions, _ = policy.predict(obs)
    assert actions.shape == (3, FIVE.action_dim) and np.abs(actions).max() <= 1.0
    even = 1e4 / 138  # even pacing of what is left, as the observation shows it
    request = action_to_spend_request(actions.astype(np.float64), np.full(3, 1e4), 138) / even
    if name != "uniform":  # cps_network gets the standing allocation by its billing alone
        paid = request[:, [0, 1, 3, 4]].sum(axis=1)
        standing = np.minimum(PER_SALE_ALLOCATION, MAX_PACE_MULT - paid)
        np.testing.assert_allclose(request[:, 2], standing, rtol=1e-4)
    with pytest.raises(ValueError, match=r"shape \(n, 67\) for the channels"):
        policy.predict(synthetic_obs())
