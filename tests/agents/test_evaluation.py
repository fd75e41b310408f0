"""Evaluation harness, leaderboard and CLI: outputs, common random numbers, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from budgetgym.agents.baselines import BASELINE_NAMES, make_baseline
from budgetgym.agents.evaluation import (
    SUMMARY_FIELDS,
    bootstrap_ci,
    compare,
    evaluate,
    parse_scenarios,
    rollout,
    spend_share_by_day,
    write_evaluation,
)
from budgetgym.agents.policy import PRIVILEGED, load_policy
from budgetgym.agents.verdict import add_paired_differences, best_rule, versus_best_rule
from budgetgym.envs import EVAL_SEED_START, OBS_DIM, SCENARIO_NAMES, BatchedCampaigns

HORIZON = 24
SMALL = {"episodes": 6, "seed_start": EVAL_SEED_START, "progress": False, "horizon_hours": HORIZON}


def test_evaluate_reports_every_field():
    result = evaluate(make_baseline("pid_pacing"), "mixed", **SMALL)
    assert len(result.episodes) == 6
    seeds = [row["seed"] for row in result.episodes]
    assert seeds == list(range(EVAL_SEED_START, EVAL_SEED_START + 6))
    s = result.summary
    for key in (*SUMMARY_FIELDS, "policy", "scenario"):
        assert key in s, key
    assert s["policy"] == "pid_pacing" and s["scenario"] == "mixed" and s["episodes"] == 6
    lo, hi = s["gmv_ci95"]
    assert lo <= s["gmv_mean"] <= hi
    assert 0.0 <= s["roi_violation_rate"] <= 1.0
    assert sum(s["spend_share"].values()) == pytest.approx(1.0)
    gmv = np.array([row["gmv"] for row in result.episodes])
    assert s["gmv_mean"] == pytest.approx(gmv.mean())
    violated = [row["roi"] < row["target_roi"] for row in result.episodes]
    assert s["roi_violation_rate"] == pytest.approx(np.mean(violated))
    for ref in ("oracle", "planner"):
        pct = [100 * row["gmv"] / row[f"{ref}_gmv"] for row in result.episodes]
        assert [row[f"pct_of_{ref}"] for row in result.episodes] == pytest.approx(pct)
        assert s[f"pct_of_{ref}_mean"] == pytest.approx(np.mean(pct))
        best = np.array([row[f"{ref}_gmv"] for row in result.episodes])
        assert s[f"gmv_ratio_to_{ref}_pct"] == pytest.approx(100 * gmv.sum() / best.sum())
        lo, hi = s[f"gmv_ratio_to_{ref}_ci95"]
        assert lo < s[f"gmv_ratio_to_{ref}_pct"] < hi
    assert result.traces["cum_spend_cny"].shape == (6, HORIZON)
    # The pacing profile adds up to the budget used (one day: the horizon is 24 h).
    assert len(s["spend_share_by_day"]) == 1
    assert sum(s["spend_share_by_day"]) == pytest.approx(s["budget_utilization_mean"])


def test_spend_share_by_day_sums_hours_into_days():
    hourly = np.full((30, 2), 1.0 / 60.0)  # 30 hours: a whole day, then 6 hours
    assert spend_share_by_day(hourly) == pytest.approx([0.8, 0.2])


def test_paired_differences_are_per_campaign_on_the_same_seeds():
    def episodes(gmv, missed):
        return [
            {"seed": seed, "gmv": g, "roi_violation": m}
            for seed, g, m in zip(range(4), gmv, missed, strict=True)
        ]

    def row(policy, gmv):
        return {"policy": policy, "scenario": "a", "gmv_mean": gmv, "roi_violation_rate": 0.5,
                "auctionnet_score_mean": gmv / 2}  # fmt: skip

    rows = [row("pid_pacing", 100.0), row("bandit", 90.0), row("ppo", 101.0), row("oracle", 200)]
    by_policy = {
        "pid_pacing": episodes([80, 90, 110, 120], [True, True, False, False]),
        "bandit": episodes([70, 80, 100, 110], [False] * 4),
        "ppo": episodes([81, 91, 111, 121], [True, False, True, False]),
        "oracle": episodes([150, 180, 220, 250], [False] * 4),
    }
    add_paired_differences(rows, {("a", name): eps for name, eps in by_policy.items()})
    assert [("paired" in r) for r in rows] == [False, False, True, False]
    paired = rows[2]["paired"]
    # +1 on every campaign: the GMV intervals overlap, the paired one is exactly [1, 1]
    assert paired["rule"] == "pid_pacing" and paired["gmv_diff_mean"] == 1.0
    assert paired["gmv_diff_ci95"] == [1.0, 1.0] and paired["gmv_diff_pct"] == pytest.approx(1.0)
    assert (paired["missed_only_policy"], paired["missed_only_rule"]) == (1, 1)
    assert versus_best_rule(rows)[0]["paired"] == paired
    shifted = {**by_policy, "ppo": [{**e, "seed": e["seed"] + 1} for e in by_policy["ppo"]]}
    with pytest.raises(ValueError, match="different seeds"):
        add_paired_differences(rows, {("a", name): eps for name, eps in shifted.items()})


def test_policies_are_scored_against_the_oracle_on_the_same_campaigns():
    """Each episode's reference is the GMV the oracle realizes on that very campaign (here
    replayed independently, in another batch size), and ``pct_of_oracle`` is the ratio."""
    rows = evaluate(make_baseline("pid_pacing"), "hit_product", **SMALL).episodes
    campaigns = BatchedCampaigns("hit_product", horizon_hours=HORIZON)
    seeds = EVAL_SEED_START + np.arange(SMALL["episodes"])
    oracle = np.concatenate(
        [
            rollout(load_policy("oracle"), campaigns, half)[0]["gmv_total"]
            for half in (seeds[:2], seeds[2:])
        ]
    )
    np.testing.assert_allclose([r["oracle_gmv"] for r in rows], oracle, rtol=1e-12)
    gmv = np.array([r["gmv"] for r in rows])
    np.testing.assert_allclose([r["pct_of_oracle"] for r in rows], 100.0 * gmv / oracle)
    assert not np.allclose(gmv, oracle, rtol=1e-3)  # a reference other than the rule's own GMV


def test_common_random_numbers_and_batch_invariance():
    a = evaluate(make_baseline("roi_proportional"), "hit_product", batch_size=6, **SMALL)
    b = evaluate(make_baseline("roi_proportional"), "hit_product", batch_size=4, **SMALL)
    assert [r["gmv"] for r in a.episodes] == pytest.approx([r["gmv"] for r in b.episodes])
    other = evaluate(make_baseline("uniform"), "hit_product", **SMALL)
    assert [r["budget"] for r in other.episodes] == [r["budget"] for r in a.episodes]
    assert [r["oracle_gmv"] for r in other.episodes] == [r["oracle_gmv"] for r in a.episodes]


def test_bootstrap_ci_brackets_the_mean_and_shrinks_with_data():
    rng = np.random.default_rng(1)
    small, large = rng.normal(10, 2, 20), rng.normal(10, 2, 2000)
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert hi_l - lo_l < hi_s - lo_s


def test_write_evaluation(tmp_path):
    result = evaluate(make_baseline("bandit"), "hit_product", **SMALL)
    write_evaluation(result, tmp_path)
    lines = (tmp_path / "episodes.csv").read_text().strip().splitlines()
    assert len(lines) == 7 and lines[0].startswith("seed,")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["policy"] == "bandit"


def test_compare_writes_leaderboard_pareto_and_plots(tmp_path):
    scenarios = ("hit_product", "double11_promotion")
    kwargs = {"progress": False, "horizon_hours": HORIZON, "pareto_episodes": 3}
    rows = compare([], list(scenarios), 4, EVAL_SEED_START, tmp_path, **kwargs)
    assert [r["policy"] for r in rows[:3]] == list(PRIVILEGED)  # the references first
    saved = json.loads((tmp_path / "leaderboard.json").read_text())
    assert {(r["policy"], r["scenario"]) for r in saved} == {
        (p, s) for p in (*PRIVILEGED, *BASELINE_NAMES) for s in scenarios
    }
    for row in saved:
        for key in ("gmv_ratio_to_planner_pct", "compensation_pct_of_spend",
                    "auctionnet_score_mean", "gmv_of_met_campaigns"):  # fmt: skip
            assert key in row, key
        mults = [p["target_mult"] for p in row["pareto"]]
        expected = [0.9, 1.0, 1.1, 1.2, 1.3] if row["policy"] in BASELINE_NAMES else [1.0]
        assert mults == expected and {p["episodes"] for p in row["pareto"]} == {3}
    planner = next(r for r in saved if r["policy"] == "planner")
    assert planner["gmv_ratio_to_planner_pct"] == pytest.approx(100.0)
    text = (tmp_path / "leaderboard.md").read_text()
    assert text.count("### ") == 2
    assert "| # | policy | GMV % of planner [95% CI] | GMV % of oracle [95% CI] |" in text
    assert "| oracle † |" in text and "† privileged: reads ground truth" in text
    for name in (
        "gmv_vs_planner.png",
        "pacing.png",
        "pareto_hit_product.png",
        "pareto_double11_promotion.png",
        "channel_spend_hit_product.png",
        "typical_episode_double11_promotion.png",
    ):
        assert (tmp_path / name).stat().st_size > 1000, name
    # The table follows the criterion: the first rule listed is the best rule.
    first_table = text.split("### ")[1]
    rule = best_rule([r for r in rows if r["scenario"] == "hit_product"])["policy"]
    lines = first_table.splitlines()
    listed = [line.split(" | ")[1] for line in lines if line[:3].strip("| ").isdigit()]
    assert next(p for p in listed if p in BASELINE_NAMES) == rule
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert timing["elapsed_s"] == pytest.approx(
        timing["evaluation_s"] + timing["pareto_s"], abs=0.02
    )


def test_compare_without_pareto_draws_no_front(tmp_path):
    kwargs = {"progress": False, "horizon_hours": HORIZON, "pareto_mults": ()}
    rows = compare([], ["hit_product"], 2, EVAL_SEED_START, tmp_path, **kwargs)
    assert all("pareto" not in r for r in rows) and not list(tmp_path.glob("pareto_*.png"))


def test_compare_pairs_other_policies_with_the_best_rule(tmp_path):
    rows = compare(
        [],
        ["hit_product"],
        6,
        EVAL_SEED_START,
        tmp_path,
        extra_policies={"uniform_again": make_baseline("uniform")},
        progress=False,
        horizon_hours=HORIZON,
    )
    ours = next(r for r in rows if r["policy"] == "uniform_again")
    rule = best_rule(rows)
    paired = ours["paired"]
    assert paired["rule"] == rule["policy"] != "uniform"
    # the mean of per-campaign differences is the difference of the means (the same seeds)
    assert paired["gmv_diff_mean"] == pytest.approx(ours["gmv_mean"] - rule["gmv_mean"])
    lo, hi = paired["gmv_diff_pct_ci95"]
    assert lo <= paired["gmv_diff_pct"] <= hi
    gap = 100 * (ours["gmv_mean"] - rule["gmv_mean"]) / rule["gmv_mean"]
    assert paired["gmv_diff_pct"] == pytest.approx(gap)
    misses = 6 * (ours["roi_violation_rate"] - rule["roi_violation_rate"])
    assert paired["missed_only_policy"] - paired["missed_only_rule"] == pytest.approx(misses)
    assert all("paired" not in r for r in rows if r is not ours)
    text = (tmp_path / "leaderboard.md").read_text()
    assert "| uniform_again | hit_product |" in text and "paired" in text


def test_parse_scenarios():
    assert parse_scenarios("all") == list(SCENARIO_NAMES)
    assert parse_scenarios("hit_product, mixed") == ["hit_product", "mixed"]
    with pytest.raises(ValueError, match="Did you mean 'mixed'"):
        parse_scenarios("hit_product,mixd")


def test_unknown_policy_lists_valid_names():
    with pytest.raises(ValueError, match=r"Did you mean 'pid_pacing'.*Valid: uniform"):
        load_policy("pid_pacin")


def test_missing_path_and_empty_run_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_policy(str(tmp_path / "nope" / "model.onnx"))
    with pytest.raises(FileNotFoundError, match="no model"):
        load_policy(str(tmp_path))


def _tiny_onnx(path: Path, in_dim: int) -> None:
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [in_dim, 7], [0.0] * (in_dim * 7))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["obs", "w"], ["actions"])],
        "tiny",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", in_dim])],
        [helper.make_tensor_value_info("actions", TensorProto.FLOAT, ["batch", 7])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def test_onnx_with_wrong_input_size_is_rejected(tmp_path):
    path = tmp_path / "wrong.onnx"
    _tiny_onnx(path, OBS_DIM - 2)
    with pytest.raises(ValueError, match=f"size {OBS_DIM - 2} .* has {OBS_DIM} and"):
        load_policy(str(path))


def test_evaluate_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Valid"):
        evaluate(make_baseline("uniform"), "hit", 4, progress=False)
    with pytest.raises(ValueError, match="episodes"):
        evaluate(make_baseline("uniform"), "hit_product", 0, progress=False)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "budgetgym.scripts.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_evaluate_and_compare_smoke(tmp_path):
    out = tmp_path / "eval"
    done = _cli(
        "evaluate",
        "--policy",
        "greedy_marginal",
        "--scenario",
        "low_ctr_creative",
        "--episodes",
        "3",
        "--horizon-hours",
        "12",
        "--no-progress",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert (out / "episodes.csv").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 3
    assert f"{summary['gmv_ratio_to_planner_pct']:.1f}% of the planner's" in done.stdout

    board = tmp_path / "board"
    done = _cli(
        "compare",
        "--scenarios",
        "hit_product",
        "--episodes",
        "2",
        "--horizon-hours",
        "12",
        "--no-progress",
        "--out",
        str(board),
    )
    assert done.returncode == 0, done.stderr
    assert (board / "leaderboard.md").exists() and (board / "pareto_hit_product.png").exists()
    assert "| # | policy" not in done.stdout and "of the planner's" in done.stdout
    assert "Done in " in done.stdout and "timing.json" in done.stdout
    assert f"to {board}\n" in done.stdout  # the output folder, on one unbroken line


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    done = _cli(
        "evaluate", "--policy", "orcale", "--scenario", "hit_product", "--out", str(tmp_path)
    )
    assert done.returncode == 2
    assert "Did you mean 'oracle'" in done.stdout and "Traceback" not in done.stdout + done.stderr
    done = _cli("compare", "--scenarios", "hit_prodcut", "--episodes", "2", "--out", str(tmp_path))
    assert done.returncode == 2 and "hit_product" in done.stdout
