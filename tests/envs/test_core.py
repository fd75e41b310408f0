"""Batched core: conservation of money and conversions, determinism, batch parity, CRN."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from scipy.special import ndtri

from budgetgym.envs import CHANNEL_NAMES, BatchedCampaigns, core, sample_campaigns
from budgetgym.envs import campaigns as campaigns_module
from budgetgym.envs.core import (
    CAMPAIGNS_PER_CHUNK,
    PARALLEL_MIN_ENVS,
    hourly_markets,
    win_curve,
)
from budgetgym.envs.scenarios import PLAIN
from tests.conftest import constant_policy, rollout

SCENARIOS = ["hit_product", "high_price_long_cycle", "double11_promotion", "mixed"]
PLAIN_HIT = str(PLAIN / "hit_product.yaml")
PLAIN_DOUBLE11 = str(PLAIN / "double11_promotion.yaml")


def random_policy(seed: int):
    rng = np.random.default_rng(seed)
    return lambda obs, hour: rng.uniform(-1, 1, size=(obs.shape[0], 7))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_money_and_conversions_reconcile(scenario):
    campaigns = BatchedCampaigns(scenario, horizon_hours=48)
    steps = rollout(campaigns, np.arange(16), random_policy(0))
    hourly = {
        key: sum(s[3][key] for s in steps[1:]) for key in ("spend_cny", "gmv_cny", "conversions")
    }
    purchases = sum(s[3]["purchases"] for s in steps[1:]).sum(axis=1)
    purchase_gmv = sum(s[3]["purchase_gmv_cny"] for s in steps[1:]).sum(axis=1)
    final = steps[-1][3]
    # Per-channel spend sums to the total, which never exceeds the budget.
    np.testing.assert_allclose(hourly["spend_cny"], final["spend_by_channel"], rtol=1e-12)
    np.testing.assert_allclose(
        final["spend_by_channel"].sum(axis=1), final["spend_total"], rtol=1e-12
    )
    assert (final["spend_total"] <= final["budget"] * (1 + 1e-12)).all()
    np.testing.assert_allclose(
        final["budget"] - final["spend_total"], final["budget_left"], atol=1e-6
    )
    # GMV: hourly arrivals sum to the totals; every purchase is attributed or reported unattributed.
    np.testing.assert_allclose(hourly["gmv_cny"], final["gmv_by_channel"], rtol=1e-12)
    np.testing.assert_allclose(
        final["gmv_total"] + final["unattributed_gmv"], purchase_gmv, rtol=1e-9
    )
    np.testing.assert_array_equal(
        final["conversions_total"] + final["unattributed_conversions"], purchases
    )
    assert (final["pending_conversions"] == 0).all() and (final["pending_gmv"] == 0).all()
    np.testing.assert_array_equal(
        final["new_customers_total"] + final["returning_customers_total"],
        final["conversions_total"],
    )
    np.testing.assert_allclose(
        final["compensation"],
        np.maximum(final["spend_total"] - final["gmv_total"] / final["target_roi"], 0.0),
    )
    for key in ("spend_cny", "impressions", "clicks", "conversions", "gmv_cny"):
        assert all((s[3][key] >= 0).all() for s in steps[1:]), key


def test_counts_are_integers_and_clicks_bounded():
    campaigns = BatchedCampaigns("mixed", horizon_hours=24)
    for _, _, _, info in rollout(campaigns, np.arange(32), random_policy(1))[1:]:
        for key in ("impressions", "clicks", "conversions", "new_customers"):
            np.testing.assert_array_equal(info[key], np.round(info[key]))
        assert (info["clicks"] <= info["impressions"]).all()


def test_same_seed_same_actions_identical():
    a = rollout(BatchedCampaigns("mixed", horizon_hours=36), np.arange(8), random_policy(3))
    b = rollout(BatchedCampaigns("mixed", horizon_hours=36), np.arange(8), random_policy(3))
    for (oa, ra, _, ia), (ob, rb, _, ib) in zip(a, b, strict=True):
        np.testing.assert_array_equal(oa, ob)
        if ra is not None:
            np.testing.assert_array_equal(ra, rb)
            np.testing.assert_array_equal(ia["gmv_cny"], ib["gmv_cny"])


@pytest.mark.parametrize("batch", [7, PARALLEL_MIN_ENVS + 3])
def test_campaign_identical_alone_and_in_batch(batch):
    """Counter-based draws: a campaign's trajectory does not depend on its batch (serial and
    parallel kernels alike), wherever it sits in the kernels' chunks of campaigns, in a SIMD
    lane of the vectorized pass or in its scalar remainder (a campaign alone)."""
    seeds = 1_000_000 + np.arange(batch)
    edges = [0, 5, CAMPAIGNS_PER_CHUNK - 1, CAMPAIGNS_PER_CHUNK, batch - 1]
    picked = sorted({i for i in edges if i < batch})
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(24, batch, 7))
    together = BatchedCampaigns("mixed", horizon_hours=24)
    together.reset(seeds)
    alone = BatchedCampaigns("mixed", horizon_hours=24)
    alone.reset(seeds[[5]])
    apart = BatchedCampaigns("mixed", horizon_hours=24)
    apart.reset(seeds[picked])
    for t in range(24):
        obs_b, rew_b, _, info_b = together.step(actions[t])
        obs_a, rew_a, _, info_a = alone.step(actions[t, [5]])
        np.testing.assert_array_equal(obs_b[5], obs_a[0])
        np.testing.assert_array_equal(rew_b[5], rew_a[0])
        np.testing.assert_array_equal(info_b["gmv_cny"][5], info_a["gmv_cny"][0])
        obs_p, rew_p, _, info_p = apart.step(actions[t, picked])
        np.testing.assert_array_equal(obs_b[picked], obs_p)
        np.testing.assert_array_equal(rew_b[picked], rew_p)
        np.testing.assert_array_equal(info_b["pending_gmv"][picked], info_p["pending_gmv"])


def _constant_requests(campaigns, seeds, pace, hours):
    """Step ``hours`` hours requesting ``pace`` x even pacing split evenly; the infos."""
    campaigns.reset(seeds)
    k = campaigns.layout.n_channels
    request = np.repeat((pace * campaigns.params.budget_cny / 168 / k)[:, None], k, axis=1)
    return request, [campaigns.step_spend(request)[3] for _ in range(hours)]


def test_market_does_not_depend_on_actions():
    """Common random numbers: on the plain market (no own-spend price impact, no rival
    depletion), the realized market is a function of the seed and hour only, and
    the oracle's ground truth (``hourly_markets``, scalar code) is the market the step kernel
    met (computed in SIMD lanes): the impressions of every channel-hour, to the bit."""
    seeds = 1_000_000 + np.arange(40)  # more than a chunk: SIMD lanes and a scalar remainder
    params = sample_campaigns(PLAIN_DOUBLE11, seeds, horizon_hours=72)
    markets = hourly_markets(params)
    impressions = []
    for pace in (0.5, 1.5):  # the budget never binds within 72 hours
        campaigns = BatchedCampaigns(PLAIN_DOUBLE11, horizon_hours=72)
        request, infos = _constant_requests(campaigns, seeds, pace, 72)
        assert campaigns.params.seeds.tolist() == params.seeds.tolist()
        shown = np.stack([info["impressions"] for info in infos], axis=1)
        expected = win_curve(request[:, None, :], markets["volume"], markets["max_spend_cny"])
        np.testing.assert_array_equal(shown, np.floor(expected + 0.5))
        impressions.append(shown)
    assert not np.allclose(impressions[0], impressions[1])


def test_billing_by_behaviour():
    """CPM channels pay realized impressions at the average price per impression won, CPC
    channels realized clicks at the expected cost per click, per-sale channels the commission
    on their sales (the plain market's fixed commission, no reserve price); each hour's spend
    reconciles exactly."""
    seeds = 1_000_000 + np.arange(40)
    campaigns = BatchedCampaigns(PLAIN_HIT, horizon_hours=48)
    request, infos = _constant_requests(campaigns, seeds, 1.0, 48)
    params, table = campaigns.params, core.channel_table(campaigns.channels)
    markets = hourly_markets(params)
    expected = win_curve(request[:, None, :], markets["volume"], markets["max_spend_cny"])
    spend = np.stack([info["spend_cny"] for info in infos], axis=1)
    clicks = np.stack([info["clicks"] for info in infos], axis=1)
    impressions = np.stack([info["impressions"] for info in infos], axis=1)
    purchase_gmv = np.stack([info["purchase_gmv_cny"] for info in infos], axis=1)
    cpm, cpc = table.billing == core.BILLING_CPM, table.billing == core.BILLING_CPC
    per_sale = table.billing == core.BILLING_PER_SALE
    assert cpm.any() and cpc.any() and per_sale.any()
    price = request[:, None, :] / expected
    np.testing.assert_allclose(spend[..., cpm], (impressions * price)[..., cpm], rtol=1e-12)
    cost_per_click = price / params.ctr[:, None, :]
    np.testing.assert_allclose(spend[..., cpc], (clicks * cost_per_click)[..., cpc], rtol=1e-12)
    np.testing.assert_allclose(
        spend[..., per_sale], (table.commission_frac * purchase_gmv)[..., per_sale], rtol=1e-12
    )
    # On average the paid channels cost what was allocated to them.
    paid = cpm | cpc
    np.testing.assert_allclose(spend[..., paid].sum(), 48 * request[:, paid].sum(), rtol=0.02)


@pytest.mark.parametrize("channel", ["search", "feed", "affiliate"])
def test_budget_never_exceeded_when_it_binds(channel):
    """Every hour asks for the whole budget left on one channel (CPC, CPM, per sale): what the
    budget cannot pay for is not bought, and the budget is spent without being exceeded."""
    campaigns = BatchedCampaigns("hit_product", horizon_hours=48)
    campaigns.reset(1_000_000 + np.arange(64))
    k = campaigns.layout.channel_names.index(channel)
    for _ in range(48):
        request = np.zeros((64, campaigns.layout.n_channels))
        request[:, k] = 50.0 * campaigns.state.budget_left_cny
        if channel == "affiliate":  # reach on every channel, sales paid from what is left
            request[:] = 10.0 * campaigns.state.budget_left_cny[:, None]
        _, _, _, info = campaigns.step_spend(request)
        assert (info["budget_left"] >= 0).all()
        assert (info["spend_total"] <= info["budget"] * (1 + 1e-12)).all()
    gap = info["budget"] - info["spend_total"] - info["budget_left"]
    assert (np.abs(gap) <= 1e-9 * info["budget"]).all()
    assert (info["budget_left"] < 0.01 * info["budget"]).sum() >= 5  # the budget did bind


def test_diminishing_returns():
    """Doubling a channel's spend yields clearly less than double GMV (same campaigns, the plain
    market: the shipped short video's response is S-shaped)."""
    seeds = 1_000_000 + np.arange(64)
    for k, channel in enumerate(CHANNEL_NAMES):
        results = []
        for mult in (1.0, 2.0):
            campaigns = BatchedCampaigns(PLAIN_HIT, reward_mode="gmv", horizon_hours=48)
            campaigns.reset(seeds)
            request = np.zeros((len(seeds), len(CHANNEL_NAMES)))
            # Half the even-pacing rate, then twice that, on one channel.
            request[:, k] = mult * 0.5 * campaigns.params.budget_cny / 168
            for _ in range(48):
                _, _, _, info = campaigns.step_spend(request)
            results.append((info["gmv_total"].sum(), info["spend_total"].sum()))
        (g1, s1), (g2, s2) = results
        assert g2 / g1 < 0.85 * 2.0, channel  # GMV grows clearly slower than the allocation
        if channel != "affiliate":  # affiliate spend is commission x GMV: ROI fixed by design
            assert s2 > 1.3 * s1, channel
            assert g2 / g1 < 0.85 * (s2 / s1), channel


def test_win_curve_concave_and_saturating():
    spend = np.linspace(0, 2_000, 201)
    imps = win_curve(spend[:, None], np.array([10_000.0] * 6), np.array([1_000.0] * 6))
    assert imps[0].max() == 0
    increments = np.diff(imps, axis=0)
    assert (increments >= -1e-9).all()
    assert (np.diff(increments[:95], axis=0) <= 1e-9).all()  # concave below saturation
    assert (imps <= 10_000).all() and (imps[-1] == imps[100]).all()  # capped at 95% of market


def test_spend_request_beyond_market_stays_in_budget():
    campaigns = BatchedCampaigns("low_ctr_creative", horizon_hours=4)
    campaigns.reset([1_000_000])
    huge = np.full((1, 6), 1e9)
    _, _, _, info = campaigns.step_spend(huge)
    assert info["spend_total"][0] < info["budget"][0]
    assert info["budget_left"][0] > 0


def test_conversion_delay_shape():
    """Chapelle-style delays: a share within the hour, the rest spread over later hours."""
    campaigns = BatchedCampaigns("high_price_long_cycle", horizon_hours=168)
    steps = rollout(campaigns, np.arange(64), constant_policy(0.0))
    purchases = np.stack([s[3]["purchases"].sum(axis=1) for s in steps[1:]])
    arrived = np.stack([s[3]["conversions"].sum(axis=1) for s in steps[1:]])
    # Arrivals lag purchases: by mid-horizon fewer have arrived than were made.
    assert arrived[:84].sum() < 0.8 * purchases[:84].sum()
    # At the end, what is still pending arrives within the attribution window or never: each
    # campaign's attributed and unattributed conversions add up to its purchases exactly, and in
    # this long sales cycle some purchases do fall outside the window.
    final = steps[-1][3]
    np.testing.assert_array_equal(
        final["conversions_total"] + final["unattributed_conversions"], purchases.sum(axis=0)
    )
    assert final["unattributed_conversions"].sum() > 0
    assert (final["unattributed_conversions"] < purchases.sum(axis=0)).all()


def test_pending_pools_never_go_negative():
    """An emptied pending pool holds exactly 0, not a rounding residue (such as -5e-18 CNY)
    that would arrive as negative GMV (a case the property test finds)."""
    from budgetgym.envs.budget_env import observation_space

    space = observation_space()
    campaigns = BatchedCampaigns("new_product_cold_start", reward_mode="gmv", horizon_hours=12)
    for obs, _, _, info in rollout(campaigns, 21 + np.arange(3), constant_policy(-0.75))[1:]:
        assert all(space.contains(row) for row in obs)
        assert (info["gmv_cny"] >= 0).all()
        assert (campaigns.state.pending_gmv_cny >= 0).all()


def test_matured_roi_feature_is_computed_from_observed_history():
    """``log_matured_roi`` follows from what the advertiser saw: hourly spend (for the 24 h
    memory of unconverted spend), cumulative spend and attributed GMV, budget and target."""
    from budgetgym.envs.campaigns import LATE_SHARE, ROI_PRIOR_HOURS, channel_slice, obs_index
    from budgetgym.envs.core import RECENT_SPEND_DECAY

    n, horizon = 16, 48
    campaigns = BatchedCampaigns("high_price_long_cycle", horizon_hours=horizon)
    _, info = campaigns.reset(np.arange(n))
    rng = np.random.default_rng(3)
    recent = np.zeros((n, len(CHANNEL_NAMES)))
    for _ in range(horizon):
        obs, _, _, info = campaigns.step(rng.uniform(-1, 1, (n, 1 + len(CHANNEL_NAMES))))
        recent = RECENT_SPEND_DECAY * recent + info["spend_cny"]
        target = info["target_roi"][:, None]
        prior = ROI_PRIOR_HOURS * info["budget"][:, None] / horizon
        matured = np.maximum(info["spend_by_channel"] - LATE_SHARE * recent, 0.0)
        k = len(CHANNEL_NAMES)
        per_channel = np.log(
            (info["gmv_by_channel"] + target * prior / k) / (target * (matured + prior / k))
        )
        total = np.log(
            (info["gmv_total"] + target[:, 0] * prior[:, 0])
            / (target[:, 0] * (matured.sum(axis=1) + prior[:, 0]))
        )
        np.testing.assert_allclose(obs[:, channel_slice("log_matured_roi")],
                                   np.clip(per_channel, -5, 5), atol=1e-5)  # fmt: skip
        np.testing.assert_allclose(obs[:, obs_index("log_matured_roi")], np.clip(total, -5, 5),
                                   atol=1e-5)  # fmt: skip
    assert np.ptp(obs[:, channel_slice("log_matured_roi")]) > 0.5  # informative, not constant


def test_count_features_are_log1p_of_last_hours_counts():
    """The tabulated ``log(1 + count)`` of the count features equals ``log1p`` below and above
    the table's size (impressions run past it, conversions rarely reach it)."""
    from budgetgym.envs.campaigns import _LOG1P_COUNTS, channel_slice

    n = 64
    campaigns = BatchedCampaigns("mixed")
    campaigns.reset(np.arange(n))
    rng = np.random.default_rng(5)
    seen = []
    for _ in range(24):
        obs, _, _, info = campaigns.step(rng.uniform(-1, 1, (n, 1 + len(CHANNEL_NAMES))))
        for feature, metric, scale in (("log_impressions", "impressions", 10.0),
                                       ("log_clicks", "clicks", 6.0),
                                       ("log_conversions", "conversions", 3.0)):  # fmt: skip
            np.testing.assert_allclose(
                obs[:, channel_slice(feature)], np.log1p(info[metric]) / scale, rtol=1e-6
            )
            seen.append(info[metric].ravel())
    seen = np.concatenate(seen)
    # Both sides of the table were exercised.
    assert (seen < _LOG1P_COUNTS.size).mean() > 0.5 and (seen >= _LOG1P_COUNTS.size).any()


def test_kernel_cache_names_follow_the_dynamics_source(tmp_path):
    """numba's cache checks only the file defining a function, while the step kernel's machine
    code includes core.py's dynamics and random.py's SplitMix64: its cache names carry a digest
    of the three files, so an edited core.py or random.py can never run from a stale build."""
    from budgetgym.envs import random as crn

    step = campaigns_module._STEP
    digest = core.sources_digest(core.__file__, crn.__file__, campaigns_module.__file__)
    assert step.serial.py_func.__qualname__ == f"_step_loop_{digest}"
    assert step.parallel.py_func.__qualname__ == f"_step_loop_{digest}_parallel"
    source = tmp_path / "dynamics.py"
    source.write_text("RATE = 1\n")
    before = core.sources_digest(source)
    source.write_text("RATE = 2\n")
    assert core.sources_digest(source) != before


def test_stale_kernel_builds_are_pruned(tmp_path):
    """Cached builds of a kernel under an older digest are deleted; the current build, other
    functions' builds and other modules' files are kept."""
    source = tmp_path / "kernels.py"
    source.write_text("def step_loop():\n    return 0\n")
    namespace: dict = {}
    exec(compile(source.read_text(), str(source), "exec"), namespace)
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    names = {
        "kernels.step_loop_new-1.py311.nbi": True,
        "kernels.step_loop_new_parallel-1.py311.1.nbc": True,
        "kernels.step_loop_old-1.py311.nbi": False,
        "kernels.step_loop_old_parallel-1.py311.1.nbc": False,
        "kernels.observe_loop_old-1.py311.nbi": True,
        "other.step_loop_old-1.py311.nbi": True,
    }
    for name in names:
        (cache / name).write_text("")
    core.prune_stale_builds(namespace["step_loop"], "new")
    assert {p.name for p in cache.iterdir()} == {name for name, kept in names.items() if kept}


@numba.njit(error_model="numpy")
def _elementwise(fn_index, x, out):
    """The compiled scalar functions over an array (a loop the compiler vectorizes)."""
    for j in range(x.size):
        if fn_index == 0:
            out[j] = core.inline_exp(x[j])
        elif fn_index == 1:
            out[j] = core.inline_log(x[j])
        elif fn_index == 2:
            out[j] = core._ndtri(x[j])
        else:
            out[j] = core._ndtri_lanes(x[j])


def _ulps(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return np.abs(values - reference) / np.spacing(np.abs(reference))


def test_inline_exp_and_log_within_two_ulp_of_libm():
    """The kernels' exp and log (float64 polynomials, inlined so loops vectorize) agree with the
    C library's to 2 ulp over their whole range, and handle the special values alike."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-1, 1, 20_000), rng.uniform(-708, 709, 20_000)])
    out = np.empty_like(x)
    _elementwise(0, x, out)
    assert _ulps(out, np.array([math.exp(v) for v in x])).max() <= 2
    x = np.exp(rng.uniform(np.log(1e-300), np.log(1e300), 20_000))
    x = np.concatenate([x, rng.uniform(0.99, 1.01, 20_000), [5e-310, 1.0]])  # subnormal, 1
    _elementwise(1, x, out := np.empty_like(x))
    assert _ulps(out, np.array([math.log(v) for v in x])).max() <= 2
    special = np.array([0.0, -1.0, np.inf, -np.inf, np.nan, 710.0, -709.0])
    _elementwise(0, special, out := np.empty_like(special))
    np.testing.assert_allclose(out, [1.0, math.exp(-1.0), np.inf, 0.0, np.nan, np.inf, 0.0], 5e-16)
    special = np.array([0.0, -1.0, np.inf, -np.inf, np.nan])
    _elementwise(1, special, out := np.empty_like(special))
    np.testing.assert_array_equal(out, [-np.inf, np.nan, np.inf, np.nan, np.nan])


def test_normal_quantile_same_bits_with_and_without_branches():
    """The branch-free normal quantile of the SIMD pass gives the branching one's bits, in both
    tails and the centre, and matches scipy's to Acklam's 1.2e-9."""
    p = np.concatenate([np.geomspace(1e-300, 0.5, 5_000), 1.0 - np.geomspace(1e-16, 0.5, 5_000)])
    branching, lanes = np.empty_like(p), np.empty_like(p)
    _elementwise(2, p, branching)
    _elementwise(3, p, lanes)
    np.testing.assert_array_equal(branching, lanes)
    np.testing.assert_allclose(branching, ndtri(p), rtol=2e-9)


def test_spend_to_action_inverts_the_action_mapping():
    """Forward and inverse mapping: spend -> action -> spend returns the spend."""
    rng = np.random.default_rng(4)
    n, k = 50, len(CHANNEL_NAMES)
    budget_left = rng.uniform(1e3, 1e5, n)
    hours_left = 37
    pace = rng.uniform(0.0, core.MAX_PACE_MULT, n)
    shares = rng.dirichlet(np.ones(k), n)
    shares = np.maximum(shares, 0.01)  # every share expressible (above exp(-6) of the largest)
    spend = shares / shares.sum(axis=1, keepdims=True) * (pace * budget_left / hours_left)[:, None]
    action = core.spend_to_action(spend, budget_left, hours_left)
    assert (np.abs(action) <= 1.0).all()
    back = core.action_to_spend_request(action, budget_left, hours_left)
    np.testing.assert_allclose(back, spend, rtol=1e-9)
    np.testing.assert_allclose(core.pace_action(np.array([0.0, 1.0, 5.0])), [-1.0, 0.0, 1.0])
    nothing = core.spend_to_action(np.zeros((1, k)), budget_left[:1], hours_left)
    np.testing.assert_array_equal(core.action_to_spend_request(nothing, budget_left[:1], 3), 0.0)
    with pytest.raises(ValueError, match="times even pacing"):
        core.spend_to_action(spend * 10, budget_left, hours_left)


def test_one_splitmix_for_numpy_and_the_kernels():
    from budgetgym.envs import random as crn

    x = np.random.default_rng(0).integers(0, 2**63, 1000, dtype=np.uint64)
    compiled = numba.njit(lambda v: np.array([core._splitmix(e) for e in v]))(x)
    np.testing.assert_array_equal(compiled, crn.splitmix64(x))
    np.testing.assert_array_equal(
        numba.njit(lambda v: np.array([core._uniform(e, np.uint64(7)) for e in v]))(x),
        crn.uniforms(x, np.array([7], dtype=np.uint64))[:, 0],
    )


def test_response_model_is_the_kernels():
    """The purchase probabilities the oracle and planners use are the kernel's: the expected
    purchases of a big cohort of clicks match the probability (cap included)."""
    cvr_new, cvr_ret, cvr_int = np.array([0.01, 0.6]), np.array([0.02, 0.9]), np.array([0.03, 0.7])
    p_buy, p_ret, p_int = core.purchase_probabilities(
        cvr_new, cvr_ret, cvr_int, np.array([2.0, 2.0]), 0.5, 0.5, 0.0, 0.0
    )
    np.testing.assert_allclose(p_ret, [0.25 * 0.04, 0.25 * core.CVR_CAP])
    np.testing.assert_allclose(p_buy, p_ret + 0.75 * np.array([0.02, core.CVR_CAP]))
    assert (p_int == 0.0).all()
    # Interested customers: a share 0.8 * 0.5 of the clicks that are not returning customers'.
    p_buy, p_ret, p_int = core.purchase_probabilities(
        cvr_new, cvr_ret, cvr_int, np.array([2.0, 2.0]), 0.5, 0.5, 0.8, 0.5
    )
    np.testing.assert_allclose(p_int, 0.75 * 0.4 * np.array([0.06, core.CVR_CAP]))
    np.testing.assert_allclose(p_buy, p_ret + p_int + 0.75 * 0.6 * np.array([0.02, core.CVR_CAP]))
    assert core.pool_saturation(np.array([10.0]), np.array([30.0]))[0] == 0.25
