"""The market's mechanisms (docs/simulator.md), each switched on against the same campaigns with
it off: the seeds are the same, so the market and every draw the mechanism does not touch are
the same (common random numbers), and the difference is the mechanism's effect."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from budgetgym.agents.allocation import (
    ResponseCells,
    commission_rate,
    expected_response,
    plan_problem,
    within_budget,
)
from budgetgym.agents.evaluation import compare, rollout
from budgetgym.agents.policy import load_policy, unavailable
from budgetgym.envs import BatchedCampaigns, sample_campaigns
from budgetgym.envs.campaigns import obs_index
from budgetgym.envs.core import (
    PRICE_SIGMA,
    WEEK_PROFILE,
    channel_table,
    expected_markets,
    hourly_markets,
    learning_multiplier,
    win_curve,
)
from budgetgym.envs.mechanisms import (
    MECHANISM_NAMES,
    MECHANISMS,
    check_modelled,
    switched_on,
    unmodelled_mechanisms,
)
from budgetgym.envs.scenarios import DEEP_MARKET as DEEP_MARKET_PATH
from budgetgym.envs.scenarios import EVAL_SEED_START, PLAIN, SCENARIO_NAMES

SEEDS = np.arange(EVAL_SEED_START, EVAL_SEED_START + 384)


def scenario_file(
    tmp_path: Path, name: str, base: str = "hit_product", channels: dict | None = None, **top
) -> Path:
    """A copy of the plain market's ``base`` scenario (every mechanism off) as
    ``<tmp_path>/<name>.yaml`` with the top-level keys ``top`` and, per channel name, the
    channel keys of ``channels``."""
    spec = yaml.safe_load((PLAIN / f"{base}.yaml").read_text())
    spec.update(name=name, **top)
    for channel in spec["channels"]:
        channel.update((channels or {}).get(channel["name"], {}))
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def burst_then_nothing(scenario: Path, horizon: int, burst_pace: float = 3.0) -> list[dict]:
    """One episode of ``SEEDS``: ``burst_pace`` times even pacing in hour 0, split evenly over
    the channels, then nothing. Returns the info of every hour."""
    campaigns = BatchedCampaigns(scenario, horizon_hours=horizon)
    campaigns.reset(SEEDS)
    n, k = SEEDS.size, campaigns.params.n_channels
    burst = (burst_pace * campaigns.params.budget_cny / horizon / k)[:, None] * np.ones((n, k))
    infos = [campaigns.step_spend(burst)[3]]
    for _ in range(horizon - 1):
        infos.append(campaigns.step_spend(np.zeros((n, k)))[3])
    return infos


# Per-channel delays: search converts sooner, social later (Chapelle-like shapes).
DELAYS = {
    "search": {"immediate_mult": 1.6, "delay_mult": 0.5},
    "social": {"immediate_mult": 0.4, "delay_mult": 2.0},
}


def test_per_channel_delays_shape_the_arrivals(tmp_path):
    """The share of a click's purchases that arrive within 1 h and within 24 h of it follows
    each channel's ``1 - (1 - pi_k)(1 - lambda_k)^(h - 1)``; the purchases themselves are the
    same as without the channel multipliers."""
    top = {"immediate_frac": 0.3, "mean_delay_hours": 60.0}
    off = burst_then_nothing(scenario_file(tmp_path, "delays_off", **top), 30)
    on = burst_then_nothing(scenario_file(tmp_path, "delays_on", channels=DELAYS, **top), 30)
    np.testing.assert_array_equal(on[0]["purchases"], off[0]["purchases"])
    names = [c.name for c in BatchedCampaigns(tmp_path / "delays_on.yaml").channels]
    purchases = on[0]["purchases"].sum(axis=0)
    for infos, multipliers in ((off, {}), (on, DELAYS)):
        arrived = np.cumsum([info["conversions"].sum(axis=0) for info in infos], axis=0)
        for k, name in enumerate(names):
            pi = 0.3 * multipliers.get(name, {}).get("immediate_mult", 1.0)
            hazard = 1.0 / (60.0 * multipliers.get(name, {}).get("delay_mult", 1.0))
            assert purchases[k] > 500, name
            for hours in (1, 24):
                expected = 1.0 - (1.0 - pi) * (1.0 - hazard) ** (hours - 1)
                share = arrived[hours - 1, k] / purchases[k]
                # Four binomial standard deviations, and the normal approximation's rounding.
                tolerance = 4.0 * np.sqrt(expected * (1.0 - expected) / purchases[k]) + 0.005
                assert share == pytest.approx(expected, abs=tolerance), (name, hours, multipliers)
    search, social = names.index("search"), names.index("social")
    assert on[0]["conversions"][:, search].sum() > 1.4 * off[0]["conversions"][:, search].sum()
    assert on[0]["conversions"][:, social].sum() < 0.6 * off[0]["conversions"][:, social].sum()


def test_attribution_window_settles_what_arrives_within_it(tmp_path):
    """At the end, pending purchases count with probability ``1 - (1 - lambda)^W``; the others
    are lost and reported. With ``W = 0`` every pending purchase is lost; the hours before the
    last are the same whatever the window."""
    top = {"immediate_frac": 0.3, "mean_delay_hours": 60.0}
    runs = {
        w: burst_then_nothing(
            scenario_file(tmp_path, f"window_{w}", attribution_window_hours=w, **top), 12
        )  # fmt: skip
        for w in (0, 24, 168)
    }
    for w, infos in runs.items():
        for hour in range(11):
            np.testing.assert_array_equal(infos[hour]["conversions"], runs[0][hour]["conversions"])
        before_end = runs[0][10]["pending_conversions"]
        lost = infos[-1]["unattributed_conversions"]
        total = infos[-1]["conversions_total"] + lost
        np.testing.assert_array_equal(total, infos[0]["purchases"].sum(axis=1))
        # Of what was pending before the last hour, the last hour's arrivals came first.
        pending_last = before_end.sum() - runs[0][-1]["conversions"].sum()
        settled_share = 1.0 - lost.sum() / pending_last
        assert settled_share == pytest.approx(1.0 - (1.0 - 1.0 / 60.0) ** w, abs=0.03), w
    assert (runs[0][-1]["unattributed_conversions"] > 0).mean() > 0.9


def test_delay_fields_are_validated(tmp_path):
    with pytest.raises(ValueError, match=r"channels\[0\].immediate_mult: 4.0 times immediate_frac"):
        BatchedCampaigns(
            scenario_file(tmp_path, "bad", channels={"search": {"immediate_mult": 4.0}})
        )
    with pytest.raises(ValueError, match=r"channels\[5\].delay_mult: 0.01 times mean_delay_hours"):
        BatchedCampaigns(scenario_file(tmp_path, "bad2", channels={"social": {"delay_mult": 0.01}}))
    with pytest.raises(ValueError, match="attribution_window_hours"):
        BatchedCampaigns(scenario_file(tmp_path, "bad3", attribution_window_hours=-1))


DEEP_MARKET = DEEP_MARKET_PATH


def test_unmodelled_mechanisms_names_what_a_scenario_switches_on(tmp_path):
    assert all(unmodelled_mechanisms(PLAIN / f"{name}.yaml") == [] for name in SCENARIO_NAMES)
    assert all(len(unmodelled_mechanisms(name)) >= 10 for name in SCENARIO_NAMES)
    everything = [m.name for m in MECHANISMS]
    assert switched_on(DEEP_MARKET) == everything
    assert unmodelled_mechanisms(DEEP_MARKET) == everything
    assert unmodelled_mechanisms(sample_campaigns(DEEP_MARKET, SEEDS[:4])) == everything
    assert unmodelled_mechanisms(sample_campaigns(PLAIN / "mixed.yaml", SEEDS[:4])) == []
    window = scenario_file(tmp_path, "window", attribution_window_hours=24)
    assert unmodelled_mechanisms(window) == ["a non-default attribution window"]


def test_a_reference_refuses_what_it_does_not_model_and_compare_leaves_it_out(tmp_path):
    """A reference refuses a scenario with a mechanism it does not model, in one sentence
    naming it. ``mmm_static`` runs wherever it has fitted curves and refuses a file without
    them; ``compare`` leaves it out with that note and runs the rules. ``oracle`` and
    ``planner`` model every mechanism (tests/agents/test_planner_mechanisms.py)."""
    policy = load_policy("mmm_static")
    assert "no curves for it" in unavailable(policy, str(DEEP_MARKET))
    assert unavailable(policy, "hit_product") is None
    assert unmodelled_mechanisms(DEEP_MARKET, [m.name for m in MECHANISMS]) == []
    short_window = scenario_file(tmp_path, "hit_product", attribution_window_hours=0)
    with pytest.raises(ValueError, match="mmm cannot run on scenario 'hit_product'"):
        check_modelled("mmm", sample_campaigns(short_window, SEEDS[:2]), "hit_product")
    board = tmp_path / "board"
    rows = compare(
        [], [str(DEEP_MARKET)], 2, EVAL_SEED_START, board, progress=False, horizon_hours=6,
        pareto_mults=(),
    )  # fmt: skip
    policies = {row["policy"] for row in rows}
    assert "uniform" in policies and "mmm_static" not in policies
    note = (board / "leaderboard.md").read_text()
    assert f"mmm_static on {DEEP_MARKET}: the MMM fits have no curves for it" in note


# Interested customers: the feed leaves interest behind, search converts it.
INTEREST = {"feed": {"interest_per_click": 0.3}, "search": {"interest_affinity": 0.8}}


def search_purchases_after_feed(scenario: Path, feed_pace: float) -> tuple[np.ndarray, np.ndarray]:
    """Search purchases ``(n,)`` in hours 24-47 at the same search spend, after ``feed_pace``
    times even pacing on the feed in hours 0-23; and the interest pool at hour 24 ``(n,)``."""
    campaigns = BatchedCampaigns(scenario, horizon_hours=48)
    campaigns.reset(SEEDS)
    names = campaigns.channels
    feed = [c.name for c in names].index("feed")
    search = [c.name for c in names].index("search")
    even = campaigns.params.budget_cny / 168.0
    request = np.zeros((SEEDS.size, len(names)))
    request[:, feed] = feed_pace * even
    for _ in range(24):
        campaigns.step_spend(request)
    interest = campaigns.state.interest.copy()
    request[:] = 0.0
    request[:, search] = 0.5 * even
    bought = np.zeros(SEEDS.size)
    for _ in range(24):
        bought += campaigns.step_spend(request)[3]["purchases"][:, search]
    return bought, interest


def test_feed_spend_early_raises_search_conversions_later(tmp_path):
    """At equal search spend in hours 24-47, feed spend in hours 0-23 raises search purchases
    through the interested customers it leaves; without the mechanism, only through the
    returning pool (a far smaller effect)."""
    on = scenario_file(tmp_path, "interest_on", channels=INTEREST)
    off = scenario_file(tmp_path, "interest_off")
    (with_feed, interest), (without_feed, no_interest) = (
        search_purchases_after_feed(on, pace) for pace in (1.0, 0.0)
    )
    (off_with, off_interest), (off_without, _) = (
        search_purchases_after_feed(off, pace) for pace in (1.0, 0.0)
    )
    assert (interest > 0).all() and (no_interest == 0).all() and (off_interest == 0).all()
    uplift_on = with_feed.sum() / without_feed.sum() - 1.0
    uplift_off = off_with.sum() / off_without.sum() - 1.0
    assert uplift_on > 0.2 and uplift_on > uplift_off + 0.15, (uplift_on, uplift_off)
    # Without feed spend the pool stays empty: the same purchases as without the mechanism.
    np.testing.assert_array_equal(without_feed, off_without)


def presale_run(scenario: Path, warmup_pace: float) -> dict[str, np.ndarray]:
    """One episode: the feed at even pacing in hours 0-23, then ``warmup_pace`` times even
    pacing split evenly during the event's warm-up, nothing elsewhere. Returns per hour
    ``(horizon, n)``: ``conversions``, ``purchases``, ``interest`` (after the hour), and the
    campaigns' ``start``, ``warmup``."""
    campaigns = BatchedCampaigns(scenario)
    campaigns.reset(SEEDS)
    params = campaigns.params
    n, k, horizon = SEEDS.size, params.n_channels, params.horizon_hours
    feed = list(params.channel_names).index("feed")
    even = params.budget_cny / horizon
    start, warmup = params.event_start_hour, params.warmup_hours
    out = {key: np.zeros((horizon, n)) for key in ("conversions", "purchases", "interest")}
    for hour in range(horizon):
        request = np.zeros((n, k))
        if hour < 24:
            request[:, feed] = even
        in_warmup = (start - warmup <= hour) & (hour < start)
        request[in_warmup] = (warmup_pace * even[in_warmup] / k)[:, None]
        info = campaigns.step_spend(request)[3]
        out["conversions"][hour] = info["conversions"].sum(axis=1)
        out["purchases"][hour] = info["purchases"].sum(axis=1)
        out["interest"][hour] = campaigns.state.interest
    return {**out, "start": start, "warmup": warmup}


def test_presale_deposits_pay_in_the_surge_and_interest_waits(tmp_path):
    """In a pre-sale, warm-up purchases arrive all at once in the event's first hour, so
    warm-up spend raises the surge's conversions far more than without the pre-sale (paired
    seeds); during the warm-up interest does not decay."""
    spec = yaml.safe_load((PLAIN / "double11_promotion.yaml").read_text())
    event = spec["events"][0]
    runs = {}
    for presale in (True, False):
        path = scenario_file(tmp_path, f"presale_{str(presale).lower()}", base="double11_promotion",
                             channels=INTEREST, events=[{**event, "presale": presale}])  # fmt: skip
        runs[presale] = {pace: presale_run(path, pace) for pace in (1.0, 0.0)}
    spent = runs[True][1.0]
    hours = np.arange(spent["conversions"].shape[0])[:, None]
    start, warmup = spent["start"], spent["warmup"]
    in_warmup = (start - warmup <= hours) & (hours < start)
    in_event = (start <= hours) & (hours < start + event["length_hours"])
    # The warm-up's purchases arrive in the event's first hour, none before.
    deposits = (spent["purchases"] * in_warmup).sum(axis=0)
    first_hour = spent["conversions"][start, np.arange(SEEDS.size)]
    pending_before = runs[True][0.0]["conversions"][start, np.arange(SEEDS.size)]
    assert deposits.sum() > 1000
    np.testing.assert_array_equal(first_hour - pending_before, deposits)
    assert (spent["conversions"] * in_warmup).sum() == (
        runs[True][0.0]["conversions"] * in_warmup
    ).sum()

    def surge_uplift(presale: bool) -> float:
        with_spend, without = (
            (runs[presale][pace]["conversions"] * in_event).sum() for pace in (1.0, 0.0)
        )
        return with_spend / without - 1.0

    assert surge_uplift(True) > surge_uplift(False) + 0.2, (surge_uplift(True), surge_uplift(False))
    # Without warm-up spend, the feed's interest waits through the warm-up, and decays outside.
    interest = runs[True][0.0]["interest"]
    rows = np.arange(SEEDS.size)
    np.testing.assert_array_equal(interest[start - 1, rows], interest[start - warmup - 1, rows])
    assert (interest[start - warmup - 1, rows] < interest[23, rows]).all()
    assert (interest[start + 5, rows] < interest[start - 1, rows]).all()


def test_presale_fields_are_validated(tmp_path):
    spec = yaml.safe_load((PLAIN / "double11_promotion.yaml").read_text())
    event = {**spec["events"][0], "presale": True}
    with pytest.raises(ValueError, match="presale needs warmup_hours >= 1"):
        BatchedCampaigns(scenario_file(tmp_path, "a", events=[{**event, "warmup_hours": 0}]))
    with pytest.raises(ValueError, match=r"events\[1\].presale: at most one event"):
        BatchedCampaigns(scenario_file(tmp_path, "b", events=[event, {**event, "name": "other"}]))


def feed_ctr_by_hour(scenario: Path) -> np.ndarray:
    """The feed's realized CTR per hour ``(80,)`` over ``SEEDS``: heavy feed spend in hours
    0-23 (3 times even pacing), nothing in hours 24-71, even pacing in hours 72-79."""
    campaigns = BatchedCampaigns(scenario, horizon_hours=80)
    campaigns.reset(SEEDS)
    feed = list(campaigns.params.channel_names).index("feed")
    even = campaigns.params.budget_cny / 168.0
    ctr = np.full(80, np.nan)
    for hour in range(80):
        pace = 3.0 if hour < 24 else (0.0 if hour < 72 else 1.0)
        request = np.zeros((SEEDS.size, campaigns.params.n_channels))
        request[:, feed] = pace * even
        info = campaigns.step_spend(request)[3]
        if pace > 0:
            ctr[hour] = info["clicks"][:, feed].sum() / info["impressions"][:, feed].sum()
    return ctr


def test_heavy_spend_fatigues_the_creative_and_it_recovers(tmp_path):
    """With fatigue, heavy spend lowers the feed's CTR hour after hour (paired seeds without
    fatigue: the same at the first hour, flat after); two days of rest restore most of it."""
    fatigue = {"feed": {"fatigue_strength": 0.3, "fatigue_recovery": 0.05}}
    on = feed_ctr_by_hour(scenario_file(tmp_path, "fatigue_on", channels=fatigue))
    off = feed_ctr_by_hour(scenario_file(tmp_path, "fatigue_off"))
    ratio = on / off
    assert ratio[0] == 1.0
    assert ratio[20:24].mean() < 0.6 and (np.diff(ratio[:24]) < 0.02).all()
    assert ratio[72] > ratio[23] + 0.25 and ratio[72] < 1.0


def test_cvr_drift_is_an_ar1_that_moves_purchases(tmp_path):
    """The hidden drift follows its AR(1) (variance at the last hour) and moves each campaign's
    purchases with it: at the same spend, campaigns whose drift ran high bought more than on
    the same seeds without drift."""
    sigma, rho = 0.05, 0.95
    runs = {}
    for name, top in (("drift_on", {"cvr_drift": {"sigma": sigma, "persistence": rho}}),
                      ("drift_off", {})):  # fmt: skip
        campaigns = BatchedCampaigns(scenario_file(tmp_path, name, **top), horizon_hours=96)
        campaigns.reset(SEEDS)
        request = np.tile(campaigns.params.budget_cny[:, None] / 168.0 / 6.0, (1, 6))
        bought, drift = np.zeros(SEEDS.size), np.zeros(SEEDS.size)
        for _ in range(96):
            bought += campaigns.step_spend(request)[3]["purchases"].sum(axis=1)
            drift += np.exp(campaigns.state.cvr_drift_log) / 96.0
        runs[name] = (bought, drift, campaigns.state.cvr_drift_log.copy())
    expected_var = sigma**2 * (1.0 - rho ** (2 * 96)) / (1.0 - rho**2)
    assert np.var(runs["drift_on"][2]) == pytest.approx(expected_var, rel=0.25)
    assert (runs["drift_off"][2] == 0.0).all()
    ratio = np.log(runs["drift_on"][0] / runs["drift_off"][0])
    assert np.corrcoef(ratio, np.log(runs["drift_on"][1]))[0, 1] > 0.6


# Competition and the broadcast schedule (docs/simulator.md §2).
COMPETITION = {
    "search": {"reserve_price_frac": 0.4},
    "feed": {"rival_depletion": 0.3, "price_impact": 0.3},
    "live": {"broadcast": {"hours": [19, 20, 21, 22], "off_air_traffic": 0.1}, "hill_shape": 2.0},
    "short_video": {"hill_shape": 2.0},
    "social": {"reserve_price_frac": 0.5, "price_impact": 0.2},
}


def one_channel_hours(
    scenario: Path, channel: str, spend_share: float, hours: int = 1
) -> list[dict]:
    """Infos of ``hours`` hours of ``SEEDS`` spending ``spend_share`` of the channel's expected
    market cost (at that hour, on the mechanism-free market of ``hit_product``, the base of
    ``scenario_file``) on ``channel`` alone."""
    campaigns = BatchedCampaigns(scenario, horizon_hours=max(hours, 2))
    campaigns.reset(SEEDS)
    k = list(campaigns.params.channel_names).index(channel)
    market = expected_markets(sample_campaigns(PLAIN / "hit_product.yaml", SEEDS))["max_spend_cny"]
    infos = []
    for hour in range(hours):
        request = np.zeros((SEEDS.size, campaigns.params.n_channels))
        request[:, k] = spend_share * market[:, hour, k]
        infos.append(campaigns.step_spend(request)[3])
    return infos


def test_reserve_price_makes_the_marginal_roi_at_zero_spend_finite(tmp_path):
    """Below the reserve's cost share every impression costs the reserve: impressions per CNY
    at vanishing spend are ``1 / r`` (the marginal ROI ``g / r``), where without a reserve the
    first impressions cost almost nothing; the kernel bills the same."""
    rho, sigma = 0.4, PRICE_SIGMA[1]  # feed
    volume, max_spend = np.array([1.0e5]), np.array([1.0e5 * 0.008 * np.exp(0.5 * sigma**2)])
    reserve = rho * 0.008
    sigmas, reserves = np.full(1, sigma), np.full(1, rho)
    for spend in (1e-6, 1e-3, 1.0):
        with_reserve = win_curve(spend, volume, max_spend, sigmas, reserves)
        assert with_reserve / spend == pytest.approx(1.0 / reserve, rel=1e-6)
    # Without a reserve, impressions per CNY grow without bound as the spend vanishes.
    per_cny = [win_curve(spend, volume, max_spend, sigmas)[0] / spend for spend in (1e-3, 1e-9)]
    assert per_cny[0] > 3.0 / reserve and per_cny[1] > 3.0 * per_cny[0]
    on = scenario_file(tmp_path, "reserve_on", channels={"feed": {"reserve_price_frac": rho}})
    off = scenario_file(tmp_path, "reserve_off")
    (info_on,), (info_off,) = (one_channel_hours(path, "feed", 0.002) for path in (on, off))
    feed = 1
    markets = hourly_markets(sample_campaigns(on, SEEDS))
    median = markets["max_spend_cny"][:, 0, feed] / (
        markets["volume"][:, 0, feed] * np.exp(0.5 * sigma**2)
    )
    price_on = info_on["spend_cny"][:, feed] / info_on["impressions"][:, feed]
    np.testing.assert_allclose(price_on, rho * median, rtol=1e-3)
    assert (info_off["impressions"][:, feed] > 1.3 * info_on["impressions"][:, feed]).all()


def test_rival_depletion_makes_late_hours_cheaper(tmp_path):
    """The price profile falls through the day with the same daily mean, so the same spend
    buys more impressions late in the day than early (paired seeds without depletion)."""
    delta = 0.3
    on = scenario_file(tmp_path, "deplete_on", channels={"feed": {"rival_depletion": delta}})
    off = scenario_file(tmp_path, "deplete_off")
    ratio = np.array([
        info_on["impressions"][:, 1].sum() / info_off["impressions"][:, 1].sum()
        for info_on, info_off in zip(
            one_channel_hours(on, "feed", 0.3, 24), one_channel_hours(off, "feed", 0.3, 24),
            strict=True,
        )
    ])  # fmt: skip
    assert ratio[:4].max() < 0.95 and ratio[-4:].min() > 1.05, ratio
    assert (np.diff(ratio) > 0).all()
    params = sample_campaigns(on, SEEDS[:8])
    price = (
        hourly_markets(params)["max_spend_cny"]
        / hourly_markets(sample_campaigns(off, SEEDS[:8]))["max_spend_cny"]
    )
    np.testing.assert_allclose(price[:, :24, 1].mean(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(price[:, 0, 1], 1.0 + delta, rtol=1e-12)


def test_own_spend_raises_the_price(tmp_path):
    """With price impact, doubling spend buys fewer than twice the impressions by more than
    without, and the price paid per impression rises with the spend."""
    impact = {"feed": {"price_impact": 0.5}}
    on = scenario_file(tmp_path, "impact_on", channels=impact)
    off = scenario_file(tmp_path, "impact_off")
    feed = 1
    got = {
        (name, share): one_channel_hours(path, "feed", share)[0]
        for name, path in (("on", on), ("off", off))
        for share in (0.2, 0.4)
    }
    impressions = {key: info["impressions"][:, feed].sum() for key, info in got.items()}
    price = {key: info["spend_cny"][:, feed].sum() / impressions[key] for key, info in got.items()}
    growth_on = impressions["on", 0.4] / impressions["on", 0.2]
    growth_off = impressions["off", 0.4] / impressions["off", 0.2]
    assert growth_on < growth_off - 0.03, (growth_on, growth_off)
    assert price["on", 0.4] / price["on", 0.2] > price["off", 0.4] / price["off", 0.2] + 0.03
    assert price["on", 0.2] > price["off", 0.2]


def test_hill_shape_makes_the_response_convex_at_low_spend(tmp_path):
    """With ``hill_shape`` 2 the clicks bought are convex in spend at low spend (positive
    second difference); with shape 1, concave."""
    on = scenario_file(tmp_path, "hill_on", channels={"feed": {"hill_shape": 2.0}})
    off = scenario_file(tmp_path, "hill_off")
    feed = 1
    second = {}
    for path in (on, off):
        clicks = [
            one_channel_hours(path, "feed", share)[0]["clicks"][:, feed].sum()
            for share in (0.01, 0.02, 0.03)
        ]
        second[path] = (clicks[2] - 2.0 * clicks[1] + clicks[0]) / clicks[1]
    assert second[on] > 0.05 and second[off] < 0.0, second


def test_off_air_buys_far_fewer_impressions_than_on_air(tmp_path):
    """A live broadcast schedule: on air the market is the channel's own (the same impressions
    as without a schedule, to the bit), off air a tenth of it, known in advance: the same
    spend buys less than half the impressions (the win curve's concavity keeps it above a
    tenth)."""
    schedule = {"live": {"broadcast": {"hours": [20, 21], "off_air_traffic": 0.1}}}
    on = scenario_file(tmp_path, "broadcast_on", channels=schedule)
    off = scenario_file(tmp_path, "broadcast_off")
    live = 2
    with_schedule = one_channel_hours(on, "live", 0.05, 24)
    without = one_channel_hours(off, "live", 0.05, 24)
    for hour, (a, b) in enumerate(zip(with_schedule, without, strict=True)):
        if hour in (20, 21):
            np.testing.assert_array_equal(a["impressions"], b["impressions"])
        else:
            assert a["impressions"][:, live].sum() < 0.5 * b["impressions"][:, live].sum()
    volume = expected_markets(sample_campaigns(on, SEEDS[:4]))["volume"][:, :48, live]
    base = expected_markets(sample_campaigns(off, SEEDS[:4]))["volume"][:, :48, live]
    on_air = np.isin(np.arange(48) % 24, (20, 21))
    expected = np.broadcast_to(np.where(on_air, 1.0, 0.1), volume.shape)
    np.testing.assert_allclose(volume / base, expected, rtol=1e-12)


def test_references_model_competition_exactly(tmp_path):
    """On a scenario with competition and a broadcast schedule (nothing else), the references
    run; the plan's expected purchase GMV and spend per channel, on the realized market, are
    the simulation's (paired seeds, open loop); ``planner`` beats ``uniform``."""
    path = scenario_file(tmp_path, "competition", channels=COMPETITION)
    assert unmodelled_mechanisms(path, MECHANISM_NAMES) == []
    assert len(switched_on(path)) == 5
    campaigns = BatchedCampaigns(path, horizon_hours=48)
    seeds = SEEDS[:128]
    campaigns.reset(seeds)
    params = campaigns.params
    problem, plan = plan_problem(params, hourly_markets(params))
    gmv, cost = expected_response(plan["alloc_cny"], problem)
    attributed = problem.gmv_per_purchase_cny / problem.price_cny[:, None, None]
    expected_purchase_gmv = (gmv / attributed).sum(axis=(0, 1))
    simulated_gmv, simulated_spend = np.zeros(params.n_channels), np.zeros(params.n_channels)
    for hour in range(params.horizon_hours):
        request = within_budget(
            plan["alloc_cny"][:, hour], campaigns.state.budget_left_cny, problem.pays_per_sale
        )
        info = campaigns.step_spend(request)[3]
        simulated_gmv += info["purchase_gmv_cny"].sum(axis=0)
        simulated_spend += info["spend_cny"].sum(axis=0)
    bought = cost.sum(axis=(0, 1)) > 0
    assert bought.sum() >= 5
    np.testing.assert_allclose(simulated_spend[bought], cost.sum(axis=(0, 1))[bought], rtol=0.02)
    # Within 3% plus four standard deviations of the channel's order count (about GMV / 150).
    tolerance = 0.03 + 4.0 / np.sqrt(expected_purchase_gmv[bought] / 150.0)
    error = np.abs(simulated_gmv[bought] / expected_purchase_gmv[bought] - 1.0)
    assert (error < tolerance).all(), (error, tolerance)
    # A whole week: more GMV than uniform, and fewer campaigns below their target.
    results = {
        name: rollout(load_policy(name), BatchedCampaigns(path), SEEDS[:64])[0]
        for name in ("planner", "uniform")
    }
    gmv = {name: info["gmv_total"].mean() for name, info in results.items()}
    miss = {name: (info["roi"] < info["target_roi"]).mean() for name, info in results.items()}
    assert gmv["planner"] > 1.2 * gmv["uniform"] and miss["planner"] < miss["uniform"], (gmv, miss)


def test_planner_buys_an_s_shaped_channel_hour_on_its_concave_envelope(tmp_path):
    """With an S-shaped response the plan buys nothing or at least the tangency spend (the
    largest average ROI), never the convex part below it, and at a price ``theta`` above the
    channel-hour's largest average ROI it buys nothing."""
    path = scenario_file(tmp_path, "s_shape", channels={"short_video": {"hill_shape": 2.5}})
    params = sample_campaigns(path, SEEDS[:32])
    problem, plan = plan_problem(params, expected_markets(params))
    cells = ResponseCells(problem)
    video = list(cells.paid_idx).index(list(params.channel_names).index("short_video"))
    tangency_spend, tangency_gmv = cells._spend_gmv(cells.x_t, slice(None))
    alloc = cells.allocation(np.log(plan["theta"]))[..., cells.paid_idx][..., video]
    tangency_spend, tangency_gmv = tangency_spend[..., video], tangency_gmv[..., video]
    bought = alloc > 0
    assert bought.any() and (~bought).any()
    assert (alloc[bought] >= tangency_spend[bought] * (1.0 - 1e-9)).all()
    best_average = tangency_gmv / tangency_spend
    theta = np.broadcast_to(plan["theta"][:, None], best_average.shape)
    assert not (bought & (best_average < theta * (1.0 - 1e-6))).any()


# Campaign start: Saturday 03:00 (5 * 24 + 3) against Monday 00:00.
SATURDAY_3AM = 123


def test_campaign_start_shifts_the_profiles_and_the_clock(tmp_path):
    """Campaigns identical but for their start meet the hour and weekday profiles of their own
    hours of the week, in the simulator's market and in the planners' expected one, and
    observe their own clock; the campaign's hour 0 is its start."""
    seeds = SEEDS[:64]
    start = {"start_hour_of_week": [SATURDAY_3AM, SATURDAY_3AM]}
    on_path = scenario_file(tmp_path, "start_on", **start)
    off_path = scenario_file(tmp_path, "start_off")
    on, off = sample_campaigns(on_path, seeds), sample_campaigns(off_path, seeds)
    assert (on.start_hour_of_week == SATURDAY_3AM).all() and (off.start_hour_of_week == 0).all()
    np.testing.assert_array_equal(on.volume_per_hour, off.volume_per_hour)
    np.testing.assert_array_equal(on.cvr_new, off.cvr_new)
    diurnal = channel_table(on.channels).diurnal_strength
    hours = np.arange(on.horizon_hours)

    def profile(start_hour: int) -> np.ndarray:
        """``(H, k)`` volume factor of the daily cycle and the weekend at each campaign hour."""
        table = WEEK_PROFILE[(hours + start_hour) % 168]
        return (1.0 + 0.6 * diurnal * table[:, :1]) * table[:, 1:]

    expected_ratio = profile(SATURDAY_3AM) / profile(0)
    realized = hourly_markets(on)["volume"] / hourly_markets(off)["volume"]
    np.testing.assert_allclose(
        realized, np.broadcast_to(expected_ratio, realized.shape), rtol=1e-12
    )
    # The planners' market is the same function of the campaign's hour of the week: the
    # start's hour t is the Monday campaign's hour t + 123.
    planned_on, planned_off = expected_markets(on), expected_markets(off)
    shift = SATURDAY_3AM
    np.testing.assert_allclose(
        planned_on["volume"][:, : 168 - shift], planned_off["volume"][:, shift:], rtol=1e-12
    )
    # The simulator buys along that market: the impressions a spend wins follow the win curve
    # of the campaign's own hours of the week.
    for name, (path, params) in {"on": (on_path, on), "off": (off_path, off)}.items():
        campaigns = BatchedCampaigns(path, horizon_hours=24)
        obs, _ = campaigns.reset(seeds)
        clock = obs[:, [obs_index(f) for f in ("hour_sin", "hour_cos", "weekday_sin",
                                                 "weekday_cos")]]  # fmt: skip
        hour, day = divmod(params.start_hour_of_week[0], 24)[::-1]
        np.testing.assert_allclose(
            clock[0],
            [np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24),
             np.sin(2 * np.pi * day / 7), np.cos(2 * np.pi * day / 7)],
            atol=1e-6,
        )  # fmt: skip
        request = np.tile(params.budget_cny[:, None] / 168.0 / 6.0, (1, 6))
        market = hourly_markets(params)
        for t in range(24):
            won = campaigns.step_spend(request)[3]["impressions"]
            expected = win_curve(
                request, market["volume"][:, t], market["max_spend_cny"][:, t],
                channel_table(params.channels).price_sigma,
            )  # fmt: skip
            np.testing.assert_array_equal(won, np.floor(expected + 0.5), err_msg=f"{name} {t}")


def test_start_hour_of_week_is_validated(tmp_path):
    with pytest.raises(ValueError, match=r"start_hour_of_week: 168 is not an hour of the week"):
        sample_campaigns(scenario_file(tmp_path, "late", start_hour_of_week=[0, 168]), SEEDS[:1])


def second_day_conversion(scenario: Path, first_day_pace: float) -> np.ndarray:
    """Purchases per click ``(n,)`` of ``SEEDS`` on the second day, at even pacing split evenly
    over the channels, after ``first_day_pace`` times even pacing on the first day."""
    campaigns = BatchedCampaigns(scenario, horizon_hours=48)
    campaigns.reset(SEEDS)
    even = np.tile(campaigns.params.budget_cny[:, None] / 168.0 / 6.0, (1, 6))
    bought, clicks = np.zeros(SEEDS.size), np.zeros(SEEDS.size)
    for hour in range(48):
        info = campaigns.step_spend(even * (first_day_pace if hour < 24 else 1.0))[3]
        if hour >= 24:
            bought += info["purchases"].sum(axis=1)
            clicks += info["clicks"].sum(axis=1)
    return bought / clicks


def test_learning_multiplier_starts_at_one_minus_the_gap_and_closes_it():
    clicks = np.array([0.0, 25000.0, 1e7])
    np.testing.assert_allclose(learning_multiplier(0.3, clicks, 25000.0), [0.7, 1 - 0.3 / np.e, 1])


def test_spend_on_the_first_day_raises_the_second_days_conversion_rate(tmp_path):
    """With learning, the same second-day spend converts better after first-day spend than
    after none, by more than on the same seeds without learning (where only the returning pool
    grows)."""
    learning = {"learning": {"gap": 0.4, "clicks_to_learn": 20000.0}}
    lift = {}
    for name, top in (("learning_on", learning), ("learning_off", {})):
        path = scenario_file(tmp_path, name, base="new_product_cold_start", **top)
        lift[name] = second_day_conversion(path, 3.0) / second_day_conversion(path, 0.0)
    on, off = np.median(lift["learning_on"]), np.median(lift["learning_off"])
    assert on > off + 0.15 and off < 1.05
    assert unmodelled_mechanisms(tmp_path / "learning_on.yaml") == [
        "the platform's learning of a new product"
    ]


def test_launch_support_can_last_the_products_30_days(tmp_path):
    """A boost that fades to 5% over 30 days (decay 240 h) keeps half of it at a week's end."""
    support = {"launch_support": {"boost": 1.0, "decay_hours": 240.0}}
    on = sample_campaigns(scenario_file(tmp_path, "support_on", **support), SEEDS[:8])
    off = sample_campaigns(scenario_file(tmp_path, "support_off"), SEEDS[:8])
    ratio = hourly_markets(on)["volume"] / hourly_markets(off)["volume"]
    search = on.channel_names.index("search")
    affiliate = on.channel_names.index("affiliate")
    np.testing.assert_allclose(ratio[:, 167, search], 1.0 + np.exp(-167.0 / 240.0), rtol=1e-12)
    np.testing.assert_allclose(ratio[:, :, affiliate], 1.0, rtol=1e-12)


# The affiliate's commission rate as the action: a commission budget between 5% and 50%.
BID = {
    "affiliate": {
        "per_sale_pricing": "bid",
        "commission_min": 0.05,
        "commission_max": 0.5,
        "commission_elasticity": 1.0,
    }
}


def affiliate_day(scenario: Path, pace: float) -> dict[str, np.ndarray]:
    """A day of ``SEEDS`` allocating ``pace`` times even pacing to the affiliate alone: its
    total allocation, impressions, commission and the GMV of its purchases ``(n,)``."""
    campaigns = BatchedCampaigns(scenario, horizon_hours=24)
    campaigns.reset(SEEDS)
    affiliate = campaigns.params.channel_names.index("affiliate")
    request = np.zeros((SEEDS.size, campaigns.params.n_channels))
    request[:, affiliate] = pace * campaigns.params.budget_cny / 168.0
    out = {key: np.zeros(SEEDS.size) for key in ("impressions", "spend_cny", "purchase_gmv_cny")}
    for _ in range(24):
        info = campaigns.step_spend(request)[3]
        for key in out:
            out[key] += info[key][:, affiliate]
    out["allocated"] = 24 * request[:, affiliate]
    return out


def test_affiliate_commission_budget_buys_traffic_at_a_falling_roi(tmp_path):
    """Priced by ``bid``, the affiliate is not free: its expected commission is its allocation
    (below the top rate's), more allocation brings more promoters' traffic at a lower ROI, and
    each sale's ROI is 1 / rate, within [1 / 0.5, 1 / 0.05]. Priced ``fixed`` (paired seeds),
    its ROI is 1 / 0.3 whatever the allocation."""
    path = scenario_file(tmp_path, "bid_on", channels=BID)
    days = [affiliate_day(path, pace) for pace in (0.02, 0.05, 0.15)]
    for day in days:
        assert day["spend_cny"].sum() == pytest.approx(day["allocated"].sum(), rel=0.03)
    impressions = [day["impressions"].sum() for day in days]
    roi = [day["purchase_gmv_cny"].sum() / day["spend_cny"].sum() for day in days]
    assert impressions[0] < impressions[1] < impressions[2]
    assert 1 / 0.05 >= roi[0] > roi[1] > roi[2] >= 1 / 0.5
    fixed = affiliate_day(scenario_file(tmp_path, "bid_off"), 0.15)
    fixed_roi = fixed["purchase_gmv_cny"] / np.maximum(fixed["spend_cny"], 1e-12)
    np.testing.assert_allclose(fixed_roi[fixed["spend_cny"] > 0], 1 / 0.3, rtol=1e-9)


def test_bid_pricing_is_validated(tmp_path):
    with pytest.raises(ValueError, match="per_sale_pricing 'bid' needs billing 'per_sale'"):
        sample_campaigns(
            scenario_file(tmp_path, "bad", channels={"search": {"per_sale_pricing": "bid"}}),
            SEEDS[:1],
        )
    with pytest.raises(ValueError, match="commission_min 0.6 exceeds commission_max 0.5"):
        sample_campaigns(
            scenario_file(tmp_path, "bad", channels={"affiliate": {"commission_min": 0.6}}),
            SEEDS[:1],
        )


def test_planners_model_the_affiliate_commission_budget(tmp_path):
    """The references model ``bid`` pricing: the plan's expected commission and attributed GMV
    on the affiliate match what the simulator delivers for that plan within a few percent, the
    plan does not max the channel out, and the planners accept the scenario."""
    path = scenario_file(tmp_path, "bid_plan", channels=BID)
    campaigns = BatchedCampaigns(path)
    campaigns.reset(SEEDS)
    params = campaigns.params
    problem, plan = plan_problem(params, expected_markets(params))
    gmv, cost = expected_response(plan["alloc_cny"], problem)
    for hour in range(params.horizon_hours):
        info = campaigns.step_spend(plan["alloc_cny"][:, hour])[3]
    affiliate = params.channel_names.index("affiliate")
    delivered = info["spend_by_channel"][:, affiliate].sum()
    assert delivered == pytest.approx(cost[..., affiliate].sum(), rel=0.03)
    attributed = info["gmv_by_channel"][:, affiliate].sum()
    assert attributed == pytest.approx(gmv[..., affiliate].sum(), rel=0.03)
    # The rate the plan offers stays below the top one where the commission budget binds.
    rate = commission_rate(plan["alloc_cny"], problem)[..., affiliate]
    assert np.median(rate[plan["alloc_cny"][..., affiliate] > 0]) < 0.5
    assert unmodelled_mechanisms(path, MECHANISM_NAMES) == []
    assert unavailable(load_policy("planner"), str(path)) is None
