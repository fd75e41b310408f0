"""The ``mmm_static`` rule: curve fit, fits file, static split, observation-only decisions."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from budgetgym.agents.baselines import make_baseline
from budgetgym.agents.channel_set import DEFAULT_CHANNEL_SET
from budgetgym.agents.mmm import (
    ROI_GRID,
    fit_hill,
    geometric_adstock,
    hill,
    load_fits,
    shipped_fits_path,
    solve_split,
    split_table,
)
from budgetgym.agents.mmm_history import collect_history, fit_scenario
from budgetgym.envs import BatchedCampaigns
from budgetgym.envs.core import SHARE_TEMPERATURE
from budgetgym.envs.scenarios import SCENARIO_NAMES, TRAIN_SEED_LIMIT

PAYS_PER_SALE = DEFAULT_CHANNEL_SET.per_sale
PAID = ~PAYS_PER_SALE


@pytest.fixture(scope="module")
def shipped():
    return load_fits()


@pytest.mark.parametrize(
    ("beta", "ec", "s", "decay"), [(3.0, 0.8, 0.9, 0.3), (1.5, 0.5, 1.8, 0.0), (2.0, 0.4, 1.0, 0.6)]
)
def test_fit_recovers_known_hill_curves(beta, ec, s, decay):
    rng = np.random.default_rng(0)
    spend = 2.0 * rng.uniform(0.0, 1.0, (400, 6, 2)) ** 2  # (campaigns, days, channels)
    truth = hill(geometric_adstock(spend, decay), beta, ec, s)
    gmv = truth * np.exp(0.1 * rng.standard_normal(truth.shape) - 0.005)
    fit = fit_hill(spend, gmv)
    np.testing.assert_array_equal(fit["decay"], decay)
    np.testing.assert_allclose(fit["beta"], beta, rtol=0.1)
    np.testing.assert_allclose(fit["ec"], ec, rtol=0.1)
    np.testing.assert_allclose(fit["s"], s, rtol=0.1)
    assert np.all(fit["r2"] > 0.9)


def test_adstock_is_normalized_carry_over():
    spend = np.zeros((1, 40, 1))
    spend[0, 0] = 1.0
    carried = geometric_adstock(spend, 0.5)[0, :, 0]
    np.testing.assert_allclose(carried[:3], [0.5, 0.25, 0.125])
    np.testing.assert_allclose(geometric_adstock(np.ones((1, 60, 1)), 0.5)[0, -1], 1.0)


def test_shipped_fits_cover_every_scenario_on_training_seeds(shipped):
    assert set(shipped.scenarios) == set(SCENARIO_NAMES)
    assert shipped.seed_start + shipped.campaigns <= TRAIN_SEED_LIMIT
    for curves in shipped.scenarios.values():
        assert len(curves.channels) == PAID.sum()
        assert np.all(curves.r2 > 0) and np.all(curves.beta > 0)


def test_refitting_reproduces_the_shipped_file(shipped):
    """The history and fit of one scenario give the shipped numbers: a change of the simulator,
    the exploration or the fit that moves them fails here until ``budgetgym mmm-fit`` is rerun."""
    seeds = shipped.seed_start + np.arange(shipped.campaigns)
    refit = fit_scenario("hit_product", seeds)
    stored = shipped.scenarios["hit_product"]
    assert refit.channels == stored.channels
    for key in ("beta", "ec", "s", "decay", "r2"):
        np.testing.assert_allclose(getattr(refit, key), getattr(stored, key), rtol=1e-5)
    assert refit.per_sale_spend == pytest.approx(stored.per_sale_spend, rel=1e-6)


def test_history_uses_training_seeds_only():
    with pytest.raises(ValueError, match="training seeds"):
        collect_history("hit_product", np.array([TRAIN_SEED_LIMIT]))


def corrupt(tmp_path: Path, edit) -> Path:
    data = json.loads(shipped_fits_path().read_text())
    edit(data)
    path = tmp_path / "fits.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["scenarios"]["hit_product"]["channels"]["search"].update(beta=-1.0),
         r"scenarios\.hit_product\.channels\.search\.beta must be a number in .*got -1\.0"),
        (lambda d: d["scenarios"]["mixed"]["channels"]["feed"].pop("decay"),
         r"scenarios\.mixed\.channels\.feed\.decay must be a number .*got None"),
        (lambda d: d["scenarios"]["mixed"]["channels"]["feed"].update(s="1"),
         r"channels\.feed\.s must be a number"),
        (lambda d: d.update(format="v0"), r"format must be 'budgetgym-mmm-fits/1', got 'v0'"),
        (lambda d: d.update(seed_start=950_000), r"training seeds"),
        (lambda d: d["scenarios"].update(hit=d["scenarios"]["mixed"]), r"unknown scenario 'hit'"),
        (lambda d: d["scenarios"]["mixed"]["channels"].update(tv={}), r"channels\.tv\.beta must"),
    ],
)  # fmt: skip
def test_a_corrupt_fits_file_fails_naming_the_key(tmp_path, edit, message):
    with pytest.raises(ValueError, match=message):
        load_fits(corrupt(tmp_path, edit))


def test_a_fits_file_that_is_not_json_fails_clearly(tmp_path):
    path = tmp_path / "fits.json"
    path.write_text('{"format": ')
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_fits(path)


def test_a_rule_without_curves_for_its_scenario_says_so(tmp_path):
    fits = load_fits(corrupt(tmp_path, lambda d: d["scenarios"].pop("low_ctr_creative")))
    rule = make_baseline("mmm_static", fits=fits)
    with pytest.raises(
        ValueError, match="'low_ctr_creative': the MMM fits have no curves.*mmm-fit"
    ):
        rule.reset(BatchedCampaigns("low_ctr_creative", horizon_hours=4))


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_split_meets_budget_and_target_and_beats_random_feasible_splits(shipped, scenario):
    curves = shipped.scenarios[scenario]
    a, g = curves.per_sale_spend, curves.per_sale_gmv
    table = split_table(curves)
    rng = np.random.default_rng(1)
    candidates = rng.dirichlet(np.ones(PAID.sum()), 4000) * rng.uniform(0, 1 - a, (4000, 1))
    candidate_gmv = curves.response(candidates).sum(axis=1)
    candidate_roi = (candidate_gmv + g) / (candidates.sum(axis=1) + a)
    best_gmv = []
    for target, x in zip(ROI_GRID, table, strict=True):
        gmv = curves.response(x).sum()
        assert np.all(x >= 0) and x.sum() + a <= 1 + 1e-6
        assert gmv + g >= target * (x.sum() + a) - 1e-6 or x.sum() == 0
        rivals = candidate_gmv[candidate_roi >= target]
        assert rivals.size == 0 or gmv >= rivals.max() - 1e-4
        best_gmv.append(gmv)
    assert np.all(np.diff(best_gmv) <= 1e-4)  # a higher target never buys more GMV


def test_an_unreachable_target_spends_nothing_on_paid_channels(shipped):
    curves = shipped.scenarios["hit_product"]
    assert np.all(solve_split(curves, 50.0) == 0.0)


def test_a_table_is_solved_once_per_curves_and_cannot_be_written(shipped):
    curves = shipped.scenarios["hit_product"]
    table = split_table(curves)
    assert split_table(dataclasses.replace(curves, beta=curves.beta.copy())) is table
    bolder = split_table(dataclasses.replace(curves, beta=1.5 * curves.beta))
    assert bolder is not table and bolder.sum() > table.sum()  # a richer market buys more
    with pytest.raises(ValueError, match="read-only"):
        table[0, 0] = 0.0


def test_rule_requests_the_split_of_its_target_every_hour(shipped):
    """Each hour the paid channels request the split solved for the campaign's target (B/H
    units), the scenario's curves chosen from ``campaigns.scenario``."""
    horizon = 24
    campaigns = BatchedCampaigns("double11_promotion", horizon_hours=horizon)
    obs, info = campaigns.reset(900_000 + np.arange(6))
    rule = make_baseline("mmm_static")
    rule.reset(campaigns)
    table = split_table(shipped.scenarios["double11_promotion"])
    expected = np.stack([np.interp(info["target_roi"], ROI_GRID, col) for col in table.T], 1)
    unit = info["budget"] / horizon  # B/H
    for hour in range(3):
        actions = rule.predict(obs)[0].astype(np.float64)
        pace = (4.0 ** actions[:, 0] - 0.25) / 0.75
        split = np.exp(SHARE_TEMPERATURE * actions[:, 1:])
        split /= split.sum(axis=1, keepdims=True)
        even = info["budget_left"] / (horizon - hour) / unit
        request = (pace * even)[:, None] * split[:, PAID]
        # atol: a share below e^-6 of the largest request (the affiliate's) is raised to that
        # (the action's range)
        np.testing.assert_allclose(request, expected, rtol=1e-4, atol=0.01)
        obs, _, _, info = campaigns.step(actions)


def test_rule_reads_the_scenario_name_and_never_the_campaign_parameters():
    """A stand-in for the campaigns with only their scenario, channels, size and horizon gives
    the same actions as the campaigns themselves; another scenario's curves give other actions."""
    campaigns = BatchedCampaigns("high_price_long_cycle", horizon_hours=24)
    obs, _ = campaigns.reset(900_000 + np.arange(4))
    actions = {}
    for label, scenario in (("real", None), ("stand-in", "high_price_long_cycle"),
                            ("other", "hit_product")):  # fmt: skip
        rule = make_baseline("mmm_static")
        if scenario is None:
            rule.reset(campaigns)
        else:
            stand_in = {"scenario": scenario, "n_envs": 4, "horizon_hours": 24}
            rule.reset(SimpleNamespace(**stand_in, channels=campaigns.channels))
        actions[label] = rule.predict(obs)[0]
    np.testing.assert_array_equal(actions["stand-in"], actions["real"])
    assert not np.allclose(actions["other"], actions["real"])


def test_curves_for_other_channels_are_refused_in_one_sentence():
    shipped = make_baseline("mmm_static").fits
    curves = vars(shipped.scenarios["hit_product"])
    renamed = SimpleNamespace(**{**curves, "channels": ("search", "feed", "tv", "short_video")})
    fits = SimpleNamespace(scenarios={"mixed": shipped.scenarios["mixed"], "hit_product": renamed})
    rule = make_baseline("mmm_static", fits=fits)
    assert "cover channels ['search', 'feed', 'tv'" in rule.unavailable_on("hit_product")
    campaigns = BatchedCampaigns("hit_product", horizon_hours=24)
    campaigns.reset(900_000 + np.arange(2))
    with pytest.raises(ValueError, match="mmm_static cannot run on scenario 'hit_product': its"):
        rule.reset(campaigns)
