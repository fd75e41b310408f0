"""scripts/bench_depth.py: the JSON it writes, the seeds its search reads, the flat planner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from budgetgym.agents.baselines import BASELINE_NAMES
from budgetgym.agents.callbacks import validation_seeds
from budgetgym.agents.evaluation import rollout
from budgetgym.envs.campaigns import BatchedCampaigns
from budgetgym.envs.scenarios import EVAL_SEED_START, TRAIN_SEED_LIMIT, VALIDATION_SEED_START
from budgetgym.scripts import bench_depth

HOURS = 12
REQUIRED = (
    "planner_gmv",
    "planner_miss_rate",
    "best_static_gmv",
    "best_static_miss_rate",
    "uniform_gmv",
    "flat_planner_gmv",
    "roi_bound_share",
    "planner_over_best_static",
    "planner_over_uniform",
    "flat_planner_over_planner",
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[dict, dict[str, list[int]]]:
    """One tiny run on ``mixed`` with every campaign reset recorded, split by whether the static
    search made it."""
    out = tmp_path_factory.mktemp("depth") / "depth.json"
    seen: dict[str, list[int]] = {"search": [], "other": []}
    in_search = [False]
    reset, search = BatchedCampaigns.reset, bench_depth.search_static

    def recording_reset(self, seeds):
        seen["search" if in_search[0] else "other"].extend(int(s) for s in seeds)
        return reset(self, seeds)

    def recording_search(*args, **kwargs):
        in_search[0] = True
        try:
            return search(*args, **kwargs)
        finally:
            in_search[0] = False

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BatchedCampaigns, "reset", recording_reset)
        patch.setattr(bench_depth, "search_static", recording_search)
        argv = ["--episodes", "3", "--validation-episodes", "3", "--scenarios", "mixed"]
        code = bench_depth.main([*argv, "--horizon-hours", str(HOURS), "--json", str(out)])
    assert code == 0
    return json.loads(Path(out).read_text()), seen


def test_writes_every_required_figure_and_the_targets(tiny_run) -> None:
    report, _ = tiny_run
    mixed = report["scenarios"]["mixed"]
    for key in REQUIRED:
        assert np.isfinite(mixed[key]), key
    for name in ("calendar_pacing", "mmm_static", "best_rule"):
        assert set(mixed[name]) >= {"gmv", "miss_rate"}
    assert mixed["best_rule"]["name"] in BASELINE_NAMES
    assert 0.0 <= mixed["roi_bound_share"] <= 1.0
    share, n = mixed["roi_bound_share"], mixed["episodes"]
    assert mixed["roi_bound_share_se"] == pytest.approx(np.sqrt(share * (1 - share) / n))
    shares = mixed["planner_spend_share"]
    assert set(shares) == set(mixed["best_static"]["shares"])
    for spread in shares.values():
        assert spread["min"] <= spread["p10"] <= spread["p90"] <= spread["max"]
        assert spread["min"] <= spread["mean"] <= spread["max"]
    assert set(mixed["targets"]) == {
        "planner_1.10x_best_static",
        "planner_1.20x_best_static",
        "planner_1.25x_uniform",
        "flattening_costs_5pct",
        "roi_bound_30_70pct",
        "spend_shares_vary",
    }
    assert all(isinstance(v, bool) for v in mixed["targets"].values())
    ratio = mixed["planner_gmv"] / mixed["best_static_gmv"]
    assert mixed["planner_over_best_static"] == pytest.approx(ratio)
    assert report["targets"]["scenarios"] == 1
    assert isinstance(report["targets"]["all_hold"], bool)


def test_static_search_reads_validation_seeds_only(tiny_run) -> None:
    report, seen = tiny_run
    search, other = set(seen["search"]), set(seen["other"])
    assert search, "the static search simulated no campaign"
    assert all(VALIDATION_SEED_START <= s < EVAL_SEED_START for s in search)
    held_out = {s for s in other if s >= EVAL_SEED_START}
    assert held_out == set(range(EVAL_SEED_START, EVAL_SEED_START + 3))
    assert search.isdisjoint(held_out)
    assert all(s >= TRAIN_SEED_LIMIT for s in search)  # nor training seeds
    assert report["validation_seed_start"] == VALIDATION_SEED_START


def test_validation_range_and_seed_start_are_checked(tmp_path: Path, capsys) -> None:
    with pytest.raises(ValueError, match="validation episodes"):
        validation_seeds(EVAL_SEED_START - VALIDATION_SEED_START + 1)
    code = bench_depth.main(["--seed-start", str(EVAL_SEED_START - 1), "--json", str(tmp_path)])
    assert code == 2
    assert "--seed-start must be >=" in capsys.readouterr().err


def test_flat_planner_spreads_the_planners_totals_evenly() -> None:
    seeds = EVAL_SEED_START + np.arange(4)
    planner = bench_depth.RecordedPlanner()
    rollout(planner, BatchedCampaigns("hit_product", horizon_hours=HOURS), seeds)
    totals = planner.requested_cny
    assert totals.shape == (4, 6) and (totals.sum(axis=1) > 0).all()

    flat = bench_depth.FlatPlan(seeds[::-1], totals[::-1], HOURS)  # any order of campaigns
    requests = []
    spend = flat.spend

    def recording_spend(obs):
        requests.append(spend(obs).copy())
        return requests[-1]

    flat.spend = recording_spend
    rollout(flat, BatchedCampaigns("hit_product", horizon_hours=HOURS), seeds)
    requests = np.stack(requests)  # (H, n, k)
    assert len(requests) == HOURS
    np.testing.assert_allclose(requests.sum(axis=0), totals, rtol=1e-12)
    np.testing.assert_allclose(requests, np.broadcast_to(requests[0], requests.shape))


def test_flat_plan_refuses_campaigns_it_has_no_plan_for() -> None:
    flat = bench_depth.FlatPlan(np.array([1, 2]), np.ones((2, 6)), HOURS)
    campaigns = BatchedCampaigns("hit_product", horizon_hours=HOURS)
    campaigns.reset(np.array([1, 3]))
    with pytest.raises(ValueError, match="does not hold"):
        flat.reset(campaigns)


def test_best_index_keeps_the_miss_limit() -> None:
    gmv = np.array([10.0, 8.0, 12.0])
    miss = np.array([0.1, 0.05, 0.3])
    score = np.array([9.0, 7.5, 6.0])
    assert bench_depth.best_index(gmv, miss, score, 0.1) == 0
    assert bench_depth.best_index(gmv, miss, score, 0.05) == 1
    assert bench_depth.best_index(gmv, miss, score, 0.01) == 0  # none within: best score
