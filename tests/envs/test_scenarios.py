"""Scenarios: sampling, seed split, and the sanity the model must show."""

from __future__ import annotations

import re
import shutil
from dataclasses import fields
from importlib import resources
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import yaml

from budgetgym.agents.evaluation import rollout
from budgetgym.envs import (
    DEFAULT_CHANNELS,
    ENV_ID,
    EVAL_SEED_START,
    OBS_DIM,
    SCENARIO_NAMES,
    SCENARIOS,
    TRAIN_SEED_LIMIT,
    BatchedCampaigns,
    CampaignParams,
    check_scenario,
    obs_index,
    resolve_scenario,
    sample_campaigns,
    scenario_description,
)
from budgetgym.envs.scenario_specs import Mixture, ScenarioLibrary, load_scenario_file
from budgetgym.envs.scenarios import NO_EVENT_HOUR, member_index
from budgetgym.scripts.bench_depth import FlatPlan, RecordedPlanner


def test_every_scenario_samples_plausible_campaigns():
    """Targets lie in each scenario's range, around the products' reported ROIs (1.61 to 3.28,
    docs/domain.md) and down to what a weak creative or a launch can reach."""
    for name in SCENARIO_NAMES:
        p = sample_campaigns(name, np.arange(200))
        if name in SCENARIOS:  # a scenario, not a mixture
            low, high = SCENARIOS[name].target_roi
            assert (p.target_roi >= low).all() and (p.target_roi <= high).all()
        assert (p.target_roi >= 0.8).all() and (p.target_roi <= 3.8).all()
        assert (p.ctr > 0).all() and (p.ctr < 0.1).all()
        assert (p.cvr_new > 0).all() and (p.cvr_returning <= 0.8).all()
        np.testing.assert_array_equal(
            p.budget_cny, sample_campaigns(name, np.arange(200)).budget_cny
        )
    mixed = sample_campaigns("mixed", np.arange(600))
    assert set(mixed.scenario_names) == set(SCENARIOS)


def test_seed_split():
    assert TRAIN_SEED_LIMIT < EVAL_SEED_START == 1_000_000
    with pytest.raises(ValueError):
        sample_campaigns("hit_product", [-1])


def _mean_gmv_of_splits(scenario, seeds, splits):
    """Mean GMV of each fixed split (even pacing), all splits in one batch on the same seeds."""
    campaigns = BatchedCampaigns(scenario, reward_mode="gmv")
    campaigns.reset(np.tile(seeds, len(splits)))
    actions = np.zeros((len(splits) * len(seeds), 7))
    actions[:, 1:] = np.repeat(np.asarray(splits), len(seeds), axis=0)
    done = np.zeros(1, dtype=bool)
    while not done.all():
        _, _, done, info = campaigns.step(actions)
    return info["gmv_total"].reshape(len(splits), len(seeds)).mean(axis=1)


def test_allocation_matters():
    """In most scenarios, the best fixed split (coordinate ascent on training seeds) beats the
    uniform split by a clear margin on held-out seeds."""
    ratios = {}
    for scenario in SCENARIOS:
        best = np.zeros(6)
        for _ in range(3):
            candidates = [best]
            for k in range(6):
                for step in (-0.4, 0.4):
                    moved = best.copy()
                    moved[k] = np.clip(moved[k] + step, -1, 1)
                    candidates.append(moved)
            gmv = _mean_gmv_of_splits(scenario, np.arange(16), candidates)
            best = candidates[int(np.argmax(gmv))]
        uniform, chosen = _mean_gmv_of_splits(
            scenario, EVAL_SEED_START + np.arange(48), [np.zeros(6), best]
        )
        ratios[scenario] = chosen / uniform
    assert sum(r > 1.05 for r in ratios.values()) >= 5, ratios
    assert min(ratios.values()) > 1.0, ratios


def test_timing_matters_in_double11():
    """The planner's own per-channel totals, spread evenly over the week, lose clearly to the
    planner's timing (the pre-sale warm-up and the surge are known from the calendar)."""
    seeds = EVAL_SEED_START + np.arange(32)
    planner = RecordedPlanner()
    timed, _ = rollout(planner, BatchedCampaigns("double11_promotion"), seeds)
    flat = FlatPlan(seeds, planner.requested_cny, 168)
    flattened, _ = rollout(flat, BatchedCampaigns("double11_promotion"), seeds)
    assert flattened["gmv_total"].mean() < 0.95 * timed["gmv_total"].mean()


def test_declared_goal_is_observed():
    """The goal the merchant picks is in the observation: a new product (cold-start support) and
    the value of a new customer the reward pays for, which only acquisition campaigns have."""
    new_product, new_value = obs_index("new_product"), obs_index("new_customer_value")
    for name in SCENARIO_NAMES:
        obs, _ = BatchedCampaigns(name).reset(np.arange(64))
        params = sample_campaigns(name, np.arange(64))
        np.testing.assert_array_equal(obs[:, new_product], params.coldstart_boost > 0)
        np.testing.assert_allclose(
            obs[:, new_value], params.new_customer_value_cny / params.price_cny, rtol=1e-6
        )
        if name == "new_product_cold_start":
            assert (obs[:, new_product] == 1).all()
        if name == "new_customer_acquisition":
            assert (obs[:, new_value] > 0).all()
        if name in ("hit_product", "high_price_long_cycle"):
            assert (obs[:, new_product] == 0).all() and (obs[:, new_value] == 0).all()


# --------------------------------------------------------------------------------------------
# Scenario files: loading, validation, mixtures, paths
# --------------------------------------------------------------------------------------------
SHIPPED = Path(str(resources.files("budgetgym.envs").joinpath("scenario_files")))


def _write(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _shipped(name: str) -> dict:
    return yaml.safe_load((SHIPPED / f"{name}.yaml").read_text())


def _event(start_hour: list[int], length_hours: int) -> dict:
    return {"name": "x", "start_hour": start_hour, "length_hours": length_hours}


def _param_arrays(p: CampaignParams) -> dict[str, np.ndarray]:
    return {
        f.name: getattr(p, f.name) for f in fields(p) if isinstance(getattr(p, f.name), np.ndarray)
    }


def test_shipped_files_are_the_scenarios_and_share_the_reference_channels():
    assert SCENARIO_NAMES == (
        "hit_product", "new_product_cold_start", "high_price_long_cycle", "double11_promotion",
        "new_customer_acquisition", "low_ctr_creative", "mixed",
    )  # fmt: skip
    assert sorted(p.stem for p in SHIPPED.glob("*.yaml")) == sorted(SCENARIO_NAMES)
    # One channel table for all (``mixed`` needs it): the reference channels' names, billing and
    # launch support, with the market's mechanisms switched on.
    tables = {spec.channels for spec in SCENARIOS.values()}
    assert len(tables) == 1
    (table,) = tables
    assert [(c.name, c.billing) for c in table] == [(c.name, c.billing) for c in DEFAULT_CHANNELS]
    for spec in SCENARIOS.values():
        assert load_scenario_file(SHIPPED / f"{spec.name}.yaml") == spec
    billing = {c.name: (c.billing, c.launch_support) for c in table}
    assert billing == {
        "search": ("cpc", True), "feed": ("cpm", True), "live": ("cpm", True),
        "short_video": ("cpm", True), "affiliate": ("per_sale", False), "social": ("cpm", False),
    }  # fmt: skip


def test_show_writes_every_key_and_reads_back_the_same_spec(tmp_path):
    for name in SCENARIO_NAMES:
        spec = resolve_scenario(name)
        path = tmp_path / f"{name}.yaml"
        path.write_text(spec.to_yaml())
        again = load_scenario_file(path)
        assert again == (spec.spec if isinstance(spec, Mixture) else spec)
    # Defaults are written out: a minimal file shows the model priors and launch support.
    minimal = {
        "name": "tiny",
        "description": "x",
        "channels": [_shipped("hit_product")["channels"][0]],
    }
    shown = yaml.safe_load(load_scenario_file(_write(tmp_path / "tiny.yaml", minimal)).to_yaml())
    assert shown["model"]["cvr_new_cap"] == 0.5 and shown["launch_support"]["decay_hours"] == 72.0
    assert shown["events"] == [] and shown["horizon_hours"] == 168


def test_calendar_arrays_hold_the_event_and_warmup_multipliers():
    seeds = np.arange(300)
    d11 = sample_campaigns("double11_promotion", seeds)
    hours = np.arange(d11.horizon_hours)[None, :]
    since = hours - d11.event_start_hour[:, None]
    event = (since >= 0) & (since < 48)
    warmup = (since >= -48) & (since < 0)
    assert d11.event_start_hour.min() >= 84 and d11.event_start_hour.max() <= 108
    assert len(np.unique(d11.event_start_hour)) == 25
    event_spec = SCENARIOS["double11_promotion"].events[0]
    surge, warm = event_spec.multipliers, event_spec.warmup_multipliers
    assert (surge.traffic, surge.price, surge.cvr) == (3.0, 1.8, 2.0)
    for array, during, before in (
        (d11.hourly_traffic_mult, surge.traffic, warm.traffic),
        (d11.hourly_price_mult, surge.price, warm.price),
        (d11.hourly_cvr_mult, surge.cvr, warm.cvr),
    ):
        assert array.shape == (300, 168) and array.dtype == np.float64
        np.testing.assert_array_equal(array, np.where(event, during, np.where(warmup, before, 1.0)))
    assert (d11.event_length_hours == 48).all() and (d11.warmup_hours == 48).all()
    hit = sample_campaigns("hit_product", seeds, horizon_hours=24)
    assert (hit.event_start_hour == NO_EVENT_HOUR).all() and (hit.event_length_hours == 0).all()
    for array in (hit.hourly_traffic_mult, hit.hourly_price_mult, hit.hourly_cvr_mult):
        assert array.shape == (300, 24) and (array == 1.0).all()
    cold = sample_campaigns("new_product_cold_start", seeds)
    support = SCENARIOS["new_product_cold_start"].launch_support
    assert (cold.coldstart_boost == support.boost).all() and support.boost > 0
    assert (cold.coldstart_decay_hours == support.decay_hours).all()
    assert hit.members == ("hit_product",) and (hit.scenario_index == 0).all()


def test_overlapping_events_multiply_and_draw_their_own_starts(tmp_path):
    spec = _shipped("hit_product")
    sale = {"name": "sale", "start_hour": [10, 20], "length_hours": 24}
    sale["multipliers"] = {"traffic": 2.0}
    flash = {"name": "flash", "start_hour": [30, 30], "length_hours": 5, "warmup_hours": 2}
    flash["multipliers"] = {"traffic": 1.5, "cvr": 3.0}
    flash["warmup_multipliers"] = {"price": 0.9}
    path = _write(
        tmp_path / "two_events.yaml", {**spec, "name": "two_events", "events": [sale, flash]}
    )
    p = sample_campaigns(str(path), np.arange(200))
    assert len(np.unique(p.event_start_hour)) == 11  # the first event's start, 10..20
    hours = np.arange(168)[None, :]
    in_sale = (hours >= p.event_start_hour[:, None]) & (hours < p.event_start_hour[:, None] + 24)
    in_flash = (hours >= 30) & (hours < 35)
    expected = np.where(in_sale, 2.0, 1.0) * np.where(in_flash, 1.5, 1.0)
    np.testing.assert_array_equal(p.hourly_traffic_mult, expected)
    assert (p.hourly_traffic_mult == 3.0).any()  # both windows at once
    np.testing.assert_array_equal(p.hourly_cvr_mult, np.where(in_flash, 3.0, 1.0) + 0 * in_sale)
    np.testing.assert_array_equal(
        p.hourly_price_mult, np.where((hours >= 28) & (hours < 30), 0.9, 1.0) + 0 * in_sale
    )
    # The other draws are those of the same scenario without events.
    plain = sample_campaigns("hit_product", np.arange(200))
    np.testing.assert_array_equal(p.volume_per_hour, plain.volume_per_hour)


def test_member_index_with_equal_weights_is_floor_of_u_times_n():
    u = np.concatenate([np.linspace(1e-12, 1 - 1e-16, 100_001), np.arange(7) / 6, [1 - 2.0**-54]])
    u = u[(u > 0) & (u < 1)]
    for n in (1, 2, 6, 7):
        expected = np.minimum((u * n).astype(np.int64), n - 1)
        np.testing.assert_array_equal(member_index(u, (1.0,) * n), expected)
    idx = member_index(u, (3.0, 1.0))
    assert abs((idx == 0).mean() - 0.75) < 1e-3


def test_adding_a_scenario_file_leaves_every_mixed_campaign_unchanged(tmp_path):
    folder = tmp_path / "scenarios"
    shutil.copytree(SHIPPED, folder)
    extra = {**_shipped("low_ctr_creative"), "name": "aaa_first", "target_roi": [1.0, 1.5]}
    _write(folder / "aaa_first.yaml", extra)
    library = ScenarioLibrary(folder)
    assert "aaa_first" in library.names and "aaa_first" not in SCENARIO_NAMES
    seeds = np.concatenate([np.arange(2000), EVAL_SEED_START + np.arange(2000)])
    before = sample_campaigns("mixed", seeds)
    after = sample_campaigns(library.resolve("mixed"), seeds)
    assert after.members == before.members
    assert set(before.scenario_names) == set(SCENARIOS)
    for name, array in _param_arrays(before).items():
        np.testing.assert_array_equal(_param_arrays(after)[name], array, err_msg=name)
    # A mixture that lists the new scenario is another mixture: the old one stays as it was.
    _write(folder / "mixed_plus.yaml", {**_shipped("mixed"), "name": "mixed_plus",
           "members": [*_shipped("mixed")["members"], {"scenario": "aaa_first"}]})  # fmt: skip
    plus = sample_campaigns(ScenarioLibrary(folder).resolve("mixed_plus"), seeds)
    assert "aaa_first" in plus.scenario_names


def test_mixture_weights_set_the_shares(tmp_path):
    path = _write(tmp_path / "weighted.yaml", {"name": "weighted", "description": "x",
                  "members": [{"scenario": "hit_product", "weight": 3},
                              {"scenario": "double11_promotion"}]})  # fmt: skip
    p = sample_campaigns(path, np.arange(4000))
    names = np.array(p.scenario_names)
    assert p.members == ("hit_product", "double11_promotion")
    assert abs((names == "hit_product").mean() - 0.75) < 0.03
    d11 = names == "double11_promotion"
    assert (p.event_start_hour[d11] < NO_EVENT_HOUR).all()
    assert (p.event_start_hour[~d11] == NO_EVENT_HOUR).all()
    # A member's campaigns are those the member alone gives on the same seeds, except the
    # member index itself.
    alone = sample_campaigns("double11_promotion", np.arange(4000)[d11])
    np.testing.assert_array_equal(p.budget_cny[d11], alone.budget_cny)
    np.testing.assert_array_equal(p.hourly_cvr_mult[d11], alone.hourly_cvr_mult)


def test_a_path_works_wherever_a_name_does(tmp_path):
    path = _write(tmp_path / "copy.yaml", {**_shipped("double11_promotion"), "name": "my_promo"})
    assert check_scenario(path) == str(path)
    assert resolve_scenario(str(path)).name == "my_promo"
    assert scenario_description(path) == SCENARIOS["double11_promotion"].description
    seeds = np.arange(32)
    by_path, by_name = sample_campaigns(path, seeds), sample_campaigns("double11_promotion", seeds)
    assert by_path.scenario_names == ["my_promo"] * 32
    for name, array in _param_arrays(by_name).items():
        np.testing.assert_array_equal(_param_arrays(by_path)[name], array, err_msg=name)
    obs_path, _ = BatchedCampaigns(str(path)).reset(seeds)
    obs_name, _ = BatchedCampaigns("double11_promotion").reset(seeds)
    np.testing.assert_array_equal(obs_path, obs_name)
    env = gymnasium.make(ENV_ID, scenario=str(path))
    assert env.reset(seed=5)[0].shape == (OBS_DIM,)
    # A change of the file is read again.
    _write(path, {**_shipped("double11_promotion"), "name": "my_promo", "target_roi": [5.0, 5.0]})
    assert (sample_campaigns(path, seeds).target_roi == 5.0).all()


def test_a_scenario_without_a_channel_samples_per_channel_arrays_of_its_own_width(tmp_path):
    spec = _shipped("hit_product")
    spec["channels"] = [c for c in spec["channels"] if c["name"] != "live"]
    p = sample_campaigns(
        _write(tmp_path / "no_live.yaml", {**spec, "name": "no_live"}), np.arange(50)
    )
    assert p.channel_names == ("search", "feed", "short_video", "affiliate", "social")
    for array in (p.volume_per_hour, p.price_median_cny, p.ctr, p.cvr_new, p.cvr_returning):
        assert array.shape == (50, 5) and np.isfinite(array).all() and (array > 0).all()
    # The campaign-wide draws do not depend on the channel count.
    full = sample_campaigns("hit_product", np.arange(50))
    np.testing.assert_array_equal(p.budget_cny, full.budget_cny)
    np.testing.assert_array_equal(p.target_roi, full.target_roi)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"colour": "red"}, "colour: unknown key"),
        ({"target_roii": [2, 3]}, "target_roii: unknown key (did you mean 'target_roi'?)"),
        ({"model": {"ctr_sd": 0.1}}, "model.ctr_sd: unknown key (did you mean 'ctr_log_sd'?)"),
        ({"target_roi": [3.0, 2.0]}, "target_roi: needs low <= high, got [3.0, 2.0]"),
        ({"budget_cny": [-1.0, 5.0]}, "budget_cny[0]: Input should be greater than 0, got -1.0"),
        ({"immediate_frac": 1.5}, "immediate_frac: Input should be less than or equal to 1"),
        ({"mean_delay_hours": 0.5}, "mean_delay_hours: Input should be greater than or equal to 1"),
        ({"model": {"cvr_new_cap": 2}}, "model.cvr_new_cap: Input should be less than or equal"),
        ({"launch_support": {"decay_hours": 0}}, "launch_support.decay_hours: Input should be"),
        ({"events": [_event([200, 210], 5)]}, "past the horizon"),
        ({"events": [_event([20, 10], 5)]}, "events[0].start_hour: needs low <= high"),
        ({"events": [_event([1, 2], 0)]}, "events[0].length_hours: Input should be greater"),
        ({"channels": []}, "channels: Tuple should have at least 1 item"),
        ({"name": "Bad Name"}, "name: String should match pattern"),
    ],
)  # fmt: skip
def test_invalid_scenario_files_name_the_file_and_key(tmp_path, edit, expected):
    path = _write(tmp_path / "bad.yaml", {**_shipped("hit_product"), **edit})
    with pytest.raises(ValueError) as err:
        check_scenario(path)
    assert str(path) in str(err.value) and expected in str(err.value), str(err.value)


@pytest.mark.parametrize(
    ("channel_edit", "expected"),
    [
        ({"billing": "commission"}, "channels[0].billing: Input should be 'cpc', 'cpm' or"),
        ({"commission_frac": 0.2}, "if and only if billing is 'per_sale'"),
        ({"ctr": 1.5}, "channels[0].ctr: Input should be less than or equal to 1, got 1.5"),
        ({"launch_support": "maybe"}, "channels[0].launch_support: Input should be a valid"),
        ({"name": "feed"}, "channels: feed listed more than once"),
    ],
)  # fmt: skip
def test_invalid_channels_name_the_channel_and_key(tmp_path, channel_edit, expected):
    spec = _shipped("hit_product")
    spec["channels"][0] = {**spec["channels"][0], **channel_edit}
    with pytest.raises(ValueError, match=re.escape(expected)):
        check_scenario(_write(tmp_path / "bad.yaml", spec))


def test_invalid_mixtures_and_names(tmp_path):
    with pytest.raises(ValueError, match="Did you mean 'hit_product'.*Valid: hit_product"):
        check_scenario("hit_prodct")
    with pytest.raises(ValueError, match="does not exist"):
        check_scenario(tmp_path / "absent.yaml")
    with pytest.raises(ValueError, match=r"members\[0\]\.scenario: Unknown scenario 'hit'"):
        check_scenario(_write(tmp_path / "m.yaml", {"name": "m", "description": "x",
                                                    "members": [{"scenario": "hit"}]}))  # fmt: skip
    spec = _shipped("hit_product")
    spec["channels"] = spec["channels"][:5]
    _write(tmp_path / "five.yaml", {**spec, "name": "five"})
    mixture = {"name": "m", "description": "x",
               "members": [{"scenario": "hit_product"}, {"scenario": "five.yaml"}]}  # fmt: skip
    with pytest.raises(ValueError, match=r"members\[1\]: 'five' has other channels"):
        check_scenario(_write(tmp_path / "m.yaml", mixture))
    mixture["members"][0]["weight"] = 0
    with pytest.raises(ValueError, match=r"members\[0\]\.weight: Input should be greater than 0"):
        check_scenario(_write(tmp_path / "m.yaml", mixture))
    folder = tmp_path / "lib"
    folder.mkdir()
    _write(folder / "other_name.yaml", {**_shipped("hit_product")})
    with pytest.raises(ValueError, match="differs from the file name"):
        ScenarioLibrary(folder)
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ValueError, match="must be a mapping of keys, got empty"):
        check_scenario(tmp_path / "empty.yaml")
    (tmp_path / "broken.yaml").write_text("name: [")
    with pytest.raises(ValueError, match="not valid YAML"):
        check_scenario(tmp_path / "broken.yaml")
