"""scripts/bench_population_planner.py: the planner on the population's mean campaign."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from budgetgym.agents.evaluation import simulate
from budgetgym.agents.planner import PlannerPolicy
from budgetgym.envs.campaigns import BatchedCampaigns
from budgetgym.envs.scenarios import EVAL_SEED_START
from budgetgym.scripts import bench_population_planner as bench

HOURS = 24


def _params(scenario: str, seeds) -> object:
    campaigns = BatchedCampaigns(scenario, horizon_hours=HOURS)
    campaigns.reset(np.asarray(seeds))
    return campaigns.params


def test_hidden_fields_are_the_members_means_and_the_rest_the_campaigns_own():
    population = _params("mixed", np.arange(64))
    means = bench.population_means(population)
    params = _params("mixed", EVAL_SEED_START + np.arange(16))
    seen = bench.population_params(params, means)
    hidden = bench.hidden_fields(params)
    assert means.members == params.members
    assert {"cvr_new", "cvr_returning", "ctr", "delay_hazard_per_hour"} <= set(hidden)
    assert not {"budget_cny", "target_roi", "hourly_traffic_mult"} & set(hidden)
    for field in dataclasses.fields(params):
        value, planned = getattr(params, field.name), getattr(seen, field.name)
        if field.name in hidden:
            member = params.scenario_index
            np.testing.assert_array_equal(planned, means.means[field.name][member])
            rows = population.scenario_index == member[0]
            np.testing.assert_allclose(planned[0], getattr(population, field.name)[rows].mean(0))
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(planned, value)


def test_revealed_fields_stay_the_campaigns_own():
    population = _params("hit_product", np.arange(32))
    means = bench.population_means(population, reveal=["cvr_new", "ctr"])
    assert not {"cvr_new", "ctr"} & set(means.means) and "cvr_returning" in means.means
    params = _params("hit_product", EVAL_SEED_START + np.arange(4))
    seen = bench.population_params(params, means)
    np.testing.assert_array_equal(seen.cvr_new, params.cvr_new)
    np.testing.assert_array_equal(seen.ctr, params.ctr)
    assert not np.array_equal(seen.cvr_returning, params.cvr_returning)
    everything = bench.population_means(population, reveal=bench.hidden_fields(population))
    unchanged = bench.population_params(params, everything)
    for field in dataclasses.fields(params):
        np.testing.assert_array_equal(getattr(unchanged, field.name), getattr(params, field.name))
    with pytest.raises(ValueError, match="Not hidden fields: budget_cny"):
        bench.population_means(population, reveal=["budget_cny"])


def test_a_member_missing_from_the_population_is_refused():
    means = bench.population_means(_params("hit_product", np.arange(4)))
    with pytest.raises(ValueError, match="no campaign of the scenario .new_product_cold_start."):
        bench.population_params(_params("mixed", EVAL_SEED_START + np.arange(16)), means)


def test_a_population_of_the_campaign_itself_plans_as_planner_cc():
    """Averaged over one campaign, the mean campaign is that campaign: the same rollout."""
    seed = EVAL_SEED_START + 3
    means = bench.population_means(_params("hit_product", [seed]))
    runs = [
        simulate(policy, "hit_product", 1, seed, progress=False, horizon_hours=HOURS)
        for policy in (bench.PopulationPlanner(means, 1.0), PlannerPolicy(kappa=1.0))
    ]
    (own,), (reference,) = (run.episodes for run in runs)
    assert own["spend"] > 0
    assert (own["spend"], own["gmv"]) == (reference["spend"], reference["gmv"])


def test_its_plan_never_reads_the_campaigns_hidden_parameters():
    """Campaigns that differ only in hidden parameters get the same first hour of spend."""
    means = bench.population_means(_params("hit_product", np.arange(32)))
    campaigns = BatchedCampaigns("hit_product", horizon_hours=HOURS)
    obs, _ = campaigns.reset(EVAL_SEED_START + np.arange(4))
    twin = copy.copy(campaigns)
    p = campaigns.params
    twin.params = dataclasses.replace(p, cvr_new=3 * p.cvr_new, ctr=0.5 * p.ctr)
    spends = []
    for batch in (campaigns, twin):
        planner = bench.PopulationPlanner(means, 0.0)
        planner.reset(batch)
        spends.append(planner.spend(obs))
    np.testing.assert_array_equal(*spends)
    planner = PlannerPolicy(kappa=0.0)
    planner.reset(twin)
    assert not np.array_equal(planner.spend(obs), spends[0])  # planner_cc does read them


def test_writes_each_margin_beside_planner_cc(tmp_path: Path, capsys):
    out = tmp_path / "population.json"
    argv = ["--scenarios", "low_ctr_creative", "--episodes", "3", "--kappas", "0,2"]
    assert bench.main([*argv, "--population", "8", "--reveal", "ctr", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert (report["kappas"], report["population"], report["seed_start"]) == (
        [0.0, 2.0], 8, EVAL_SEED_START,
    )  # fmt: skip
    assert report["reveal"] == ["ctr"]
    (row,) = report["rows"]
    assert row["scenario"] == "low_ctr_creative" and set(row["kappas"]) == {"0", "2"}
    assert row["planner_cc_kappa"] > 0
    for by_knowledge in row["kappas"].values():
        assert set(by_knowledge) == {"true", "population"}
        for figures in by_knowledge.values():
            assert figures["pct_of_planner_cc"] > 0 and 0 <= figures["miss_pct"] <= 100
    assert "low_ctr_creative: planner_cc (kappa " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--kappas", "0,x"], "'x' is not a number"),
        (["--kappas", "nan"], "is not finite"),
        (["--population", "0"], "--population must lie"),
        (["--reveal", "cvr_new,budget_cny", "--scenarios", "hit_product"], "budget_cny"),
        (["--scenarios", "nowhere"], "nowhere"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv: list[str], message: str, capsys):
    assert bench.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
