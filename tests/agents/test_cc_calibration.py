"""planner_cc's calibration: the shipped curves, their inversion, and untrusted files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from budgetgym.agents.cc_calibration import (
    KAPPA_GRID,
    CCCalibration,
    MissRateCurve,
    load_calibration,
    shipped_calibration_path,
)
from budgetgym.agents.cc_sweep import (
    CALIBRATION_BLOCK,
    CALIBRATION_CAMPAIGNS,
    CALIBRATION_SEED_START,
    calibrate,
    measure_miss_rates,
)
from budgetgym.agents.planner import PlannerPolicy
from budgetgym.agents.policy import load_policy
from budgetgym.envs import SCENARIO_NAMES, BatchedCampaigns
from budgetgym.envs.scenarios import TRAIN_SEED_LIMIT

KAPPA = np.array([-1.0, 0.0, 1.0, 2.0])


@pytest.fixture(scope="module")
def shipped() -> CCCalibration:
    return load_calibration()


def test_shipped_curves_cover_every_scenario_on_training_seeds(shipped):
    assert set(shipped.curves) == set(SCENARIO_NAMES)
    assert shipped.seed_start + shipped.campaigns <= TRAIN_SEED_LIMIT
    # The command's defaults regenerate this file.
    assert (shipped.seed_start, shipped.campaigns, shipped.block_campaigns) == (
        CALIBRATION_SEED_START,
        CALIBRATION_CAMPAIGNS,
        CALIBRATION_BLOCK,
    )
    for name, curve in shipped.curves.items():
        assert np.all(np.diff(curve.miss_rate) <= 0), name
        # The isotonic fit moves the measured shares by less than its sampling noise.
        noise = 2 * np.sqrt(0.25 / shipped.campaigns)
        assert np.max(np.abs(curve.miss_rate - curve.measured)) <= noise, name
        assert curve.kappa[0] <= shipped.kappa(name, 0.05) <= curve.kappa[-1], name


@pytest.mark.slow
def test_remeasuring_reproduces_the_shipped_curve(shipped):
    """One margin of one scenario, remeasured on the file's first block of campaigns in a smaller
    batch, gives the block's shipped share to within two campaigns (one that ends at its target
    within the solver's tolerance may flip with the batch's make-up): a change of the planner or
    the simulator that moves it fails here until ``budgetgym planner-cc-calibrate`` is rerun."""
    curve = shipped.curves["hit_product"]
    rows = [int(np.flatnonzero(curve.kappa == 1.0)[0])]  # the hedged planner near alpha 0.05
    size = shipped.block_sizes()[0]
    seeds = shipped.seed_start + np.arange(size)
    rates = measure_miss_rates("hit_product", seeds, curve.kappa[rows], shipped.horizon_hours)
    np.testing.assert_allclose(rates, curve.blocks[0, rows], rtol=0, atol=2.01 / size)
    assert curve.kappa.tolist() == list(KAPPA_GRID)


def test_blocks_are_measured_apart_and_pooled_by_campaign_count():
    """Five campaigns in blocks of two: each block's shares are its own rollout's, the curve's
    are their mean weighted by block size (2, 2, 1)."""
    kappas = np.array([-3.0, 0.0, 3.0])
    calibration = calibrate(["hit_product"], 0, 5, kappas, horizon_hours=24, block_campaigns=2)
    curve = calibration.curves["hit_product"]
    np.testing.assert_array_equal(calibration.block_sizes(), [2, 2, 1])
    for i, (start, size) in enumerate(((0, 2), (2, 2), (4, 1))):
        alone = measure_miss_rates("hit_product", start + np.arange(size), kappas, 24)
        np.testing.assert_array_equal(curve.blocks[i], alone)
    np.testing.assert_allclose(curve.measured, [2, 2, 1] @ curve.blocks / 5)
    assert np.all(np.diff(curve.miss_rate) <= 0)


def test_workers_measure_the_same_blocks_and_report_each_once():
    """Blocks measured by two processes give the curves of one process; each block's report
    names its first seed and its size, in whatever order the blocks finish."""
    kappas = np.array([-3.0, 0.0, 3.0])
    args = (["hit_product", "low_ctr_creative"], 0, 5, kappas, 24, 2)
    reports: list[tuple] = []
    alone = calibrate(*args)
    pooled = calibrate(*args, on_block=lambda *r: reports.append(r[:3]), workers=2)
    for name, curve in alone.curves.items():
        np.testing.assert_array_equal(pooled.curves[name].blocks, curve.blocks)
        np.testing.assert_array_equal(pooled.curves[name].measured, curve.measured)
    blocks = [(s, a, n) for s in args[0] for a, n in ((0, 2), (2, 2), (4, 1))]
    assert sorted(reports) == sorted(blocks)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        calibrate(*args, workers=0)


def test_the_pooled_curve_weights_blocks_by_their_campaigns():
    curve = MissRateCurve.fit(KAPPA, np.array([[0.4, 0.2, 0.1, 0.0], [0.1, 0.1, 0.1, 0.1]]), [3, 1])
    np.testing.assert_allclose(curve.measured, [0.325, 0.175, 0.1, 0.025])


def test_inversion_interpolates_the_smallest_margin():
    curve = MissRateCurve.fit(KAPPA, np.array([0.30, 0.10, 0.10, 0.02]))
    assert curve.kappa_for(0.20) == pytest.approx(-0.5)
    assert curve.kappa_for(0.10) == pytest.approx(0.0)  # the smallest margin at 10%
    assert curve.kappa_for(0.06) == pytest.approx(1.5)
    assert curve.kappa_for(0.02) == pytest.approx(2.0)


def test_isotonic_fit_repairs_a_noisy_rise():
    curve = MissRateCurve.fit(KAPPA, np.array([0.30, 0.08, 0.12, 0.02]))
    np.testing.assert_allclose(curve.miss_rate, [0.30, 0.10, 0.10, 0.02])
    np.testing.assert_allclose(curve.measured, [0.30, 0.08, 0.12, 0.02])


def test_alpha_outside_the_curve_fails_clearly():
    curve = MissRateCurve.fit(KAPPA, np.array([0.30, 0.10, 0.05, 0.02]))
    for alpha in (0.01, 0.4):
        with pytest.raises(ValueError, match=rf"alpha {alpha} lies outside .* --kappas"):
            curve.kappa_for(alpha)


def test_a_saturated_curve_is_slack_above_its_largest_rate():
    """Where the rate is flat at the smallest margins, no lower margin misses more: any larger
    alpha is met by the smallest margin."""
    curve = MissRateCurve.fit(KAPPA, np.array([0.03, 0.03, 0.03, 0.0]))
    assert curve.saturated
    assert curve.kappa_for(0.2) == KAPPA[0]
    assert not MissRateCurve.fit(KAPPA, np.array([0.04, 0.03, 0.03, 0.0])).saturated


def test_a_scenario_without_a_curve_says_how_to_calibrate_it(shipped):
    partial = replace(shipped, curves={})
    with pytest.raises(ValueError, match="'hit_product'; measure it with: budgetgym "
                       "planner-cc-calibrate --scenarios hit_product"):  # fmt: skip
        partial.kappa("hit_product", 0.05)
    policy = PlannerPolicy(alpha=0.05, calibration=partial)
    with pytest.raises(ValueError, match="planner-cc-calibrate"):
        policy.reset(_reset_campaigns("hit_product"))


def _reset_campaigns(scenario: str) -> BatchedCampaigns:
    campaigns = BatchedCampaigns(scenario, horizon_hours=4)
    campaigns.reset(np.arange(2))
    return campaigns


def test_kappa_and_alpha_are_exclusive_and_kappa_has_one_value_per_campaign():
    with pytest.raises(ValueError, match="alpha or kappa, not both"):
        PlannerPolicy(alpha=0.05, kappa=1.0)
    with pytest.raises(ValueError, match=r"kappa must be a scalar or one value per campaign"):
        PlannerPolicy(kappa=np.zeros(3)).reset(_reset_campaigns("hit_product"))


def test_the_sweep_refuses_seeds_outside_training():
    with pytest.raises(ValueError, match="training seeds"):
        measure_miss_rates("hit_product", np.array([TRAIN_SEED_LIMIT]), KAPPA)


def corrupt(tmp_path: Path, edit) -> Path:
    data = json.loads(shipped_calibration_path().read_text())
    edit(data)
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(data))
    return path


def _set_rate(data: dict, i: int, value: object) -> None:
    data["scenarios"]["mixed"]["miss_rate"][i] = value


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format="v0"),
         r"format must be 'budgetgym-planner-cc-calibration/2', got 'v0'"),
        (lambda d: d.update(block_campaigns=0), r"block_campaigns must be an integer in"),
        (lambda d: d["scenarios"]["mixed"]["miss_rate_blocks"].pop(),
         r"mixed\.miss_rate_blocks must be a list of \d+ lists \(one per block of 512"),
        (lambda d: d["scenarios"]["mixed"]["miss_rate_blocks"][0].pop(),
         r"mixed\.miss_rate_blocks\[0\] must be a list of \d+ numbers"),
        (lambda d: d["scenarios"]["mixed"]["miss_rate_blocks"][0].__setitem__(0, 1.0),
         r"mixed\.miss_rate_measured must be the blocks' mean weighted by their campaigns"),
        (lambda d: d.update(seed_start=950_000), r"training seeds"),
        (lambda d: d.update(campaigns=0), r"campaigns must be an integer in"),
        (lambda d: _set_rate(d, 0, 1.5), r"scenarios\.mixed\.miss_rate\[0\] must be a number"),
        (lambda d: _set_rate(d, -1, 0.9), r"scenarios\.mixed\.miss_rate must not increase"),
        (lambda d: _set_rate(d, 2, "0.1"), r"scenarios\.mixed\.miss_rate\[2\] must be a number"),
        (lambda d: d["scenarios"]["mixed"]["kappa"].reverse(),
         r"mixed\.kappa must be strictly increasing"),
        (lambda d: d["scenarios"]["mixed"]["miss_rate_measured"].pop(),
         r"miss_rate_measured must be a list of \d+ numbers"),
        (lambda d: d["scenarios"]["mixed"].pop("kappa"), r"mixed\.kappa must be a list"),
        (lambda d: d.update(scenarios=[]), r"scenarios must be a JSON object, got list"),
    ],
)  # fmt: skip
def test_a_corrupt_calibration_fails_naming_the_key(tmp_path, edit, message):
    with pytest.raises(ValueError, match=message):
        load_calibration(corrupt(tmp_path, edit))


def test_a_calibration_that_is_not_json_fails_clearly(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text('{"format": ')
    with pytest.raises(ValueError, match="planner_cc calibration file .* is not valid JSON"):
        load_calibration(path)


def test_oracle_and_planner_plan_without_a_margin():
    """Only planner_cc hedges: the references that plan to the expected target keep no margin."""
    campaigns = _reset_campaigns("hit_product")
    for name, hedged in (("oracle", False), ("planner", False), ("planner_cc", True)):
        policy = load_policy(name)
        policy.reset(campaigns)
        planner = getattr(policy, "_mpc", policy)  # the oracle runs the planner's machinery
        assert planner.name == name, name
        assert (planner._table.market_var is not None) is hedged, name
