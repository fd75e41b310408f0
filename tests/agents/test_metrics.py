"""Metrics of the constrained problem, the best-rule criterion, the references and the target
knob of the Pareto sweep."""

from __future__ import annotations

import numpy as np
import pytest

from budgetgym.agents import evaluation
from budgetgym.agents.baselines import make_baseline
from budgetgym.agents.evaluation import evaluate, pareto_sweep, simulate, summarize
from budgetgym.agents.pareto import PlanToTarget, pareto_point
from budgetgym.agents.verdict import (
    MISS_MARGIN,
    best_rule,
    criterion_text,
    ranked,
    versus_best_rule,
)
from budgetgym.envs import EVAL_SEED_START, OBS_DIM, BatchedCampaigns, channel_slice, obs_index
from budgetgym.envs.campaigns import plan_to_target
from budgetgym.envs.channels import CHANNEL_NAMES

HORIZON = 24
SMALL = {"episodes": 6, "seed_start": EVAL_SEED_START, "progress": False, "horizon_hours": HORIZON}


@pytest.fixture
def stand_in_planner(monkeypatch: pytest.MonkeyPatch) -> str:
    """The planner played by a rule (fast; its GMV is then known independently); the reference
    cache starts empty and is restored afterwards. Returns the rule's name."""
    real = evaluation.load_policy

    def load(spec: str):
        if spec == "planner":
            policy = make_baseline("obs_thompson")
            policy.name = "planner"
            return policy
        return real(spec)

    monkeypatch.setattr(evaluation, "load_policy", load)
    monkeypatch.setattr(evaluation, "_REFERENCE_CACHE", {})
    return "obs_thompson"


# --------------------------------------------------------------------------------------------
# Each metric by hand
# --------------------------------------------------------------------------------------------
def _episode(gmv, spend, target, compensation, planner, oracle) -> dict:
    row = {"gmv": gmv, "spend": spend, "roi": gmv / spend, "target_roi": target,
           "roi_violation": gmv < target * spend, "compensation": compensation,
           "budget_utilization": spend / 100.0, "new_customers": 1.0,
           "auctionnet_score": gmv * min(1.0, (gmv / spend / target) ** 2),
           "planner_gmv": planner, "pct_of_planner": 100 * gmv / planner,
           "oracle_gmv": oracle, "pct_of_oracle": 100 * gmv / oracle}  # fmt: skip
    return row | {f"spend_share_{c}": 1.0 / len(CHANNEL_NAMES) for c in CHANNEL_NAMES}


def test_summary_metrics_by_hand() -> None:
    rows = [
        _episode(300.0, 100.0, 2.0, 0.0, 400.0, 500.0),  # ROI 3: met
        _episode(150.0, 100.0, 2.0, 25.0, 100.0, 300.0),  # ROI 1.5: missed, 25 CNY back
        _episode(90.0, 60.0, 1.0, 0.0, 100.0, 200.0),  # ROI 1.5: met
    ]
    s = summarize(rows, "rule", "hit_product")
    assert s["gmv_ratio_to_planner_pct"] == pytest.approx(100 * 540 / 600)
    assert s["gmv_ratio_to_oracle_pct"] == pytest.approx(100 * 540 / 1000)
    assert s["pct_of_planner_mean"] == pytest.approx((75 + 150 + 90) / 3)
    assert s["roi_violation_rate"] == pytest.approx(1 / 3)
    assert s["compensation_pct_of_spend"] == pytest.approx(100 * 25 / 260)
    # 150 x (1.5 / 2)^2 for the missed one; the others' GMV as it is
    assert s["auctionnet_score_mean"] == pytest.approx((300 + 150 * 0.5625 + 90) / 3)
    assert s["gmv_of_met_campaigns"] == pytest.approx((300 + 90) / 2)
    lo, hi = s["gmv_ratio_to_planner_ci95"]
    assert lo <= s["gmv_ratio_to_planner_pct"] <= hi


def test_no_met_campaign_has_no_mean_gmv() -> None:
    s = summarize([_episode(100.0, 100.0, 2.0, 50.0, 100.0, 100.0)], "rule", "hit_product")
    assert np.isnan(s["gmv_of_met_campaigns"]) and s["compensation_pct_of_spend"] == 50.0


def test_reference_gmv_is_the_references_own_on_each_campaign(stand_in_planner: str) -> None:
    """``planner_gmv`` is what the planner earns on that very campaign (its stand-in evaluated
    apart here), cached once for a longer and a shorter run of the same seeds."""
    rows = evaluate(make_baseline("uniform"), "hit_product", **SMALL).episodes
    own = evaluate(make_baseline(stand_in_planner), "hit_product", **SMALL).episodes
    assert [r["planner_gmv"] for r in rows] == [r["gmv"] for r in own]
    assert [r["pct_of_planner"] for r in rows] == pytest.approx(
        [100 * a["gmv"] / b["gmv"] for a, b in zip(rows, own, strict=True)]
    )
    shorter = evaluate(make_baseline("uniform"), "hit_product", **{**SMALL, "episodes": 3})
    assert [r["planner_gmv"] for r in shorter.episodes] == [r["gmv"] for r in own[:3]]
    assert len(evaluation._REFERENCE_CACHE) == 2  # planner and oracle, once each


# --------------------------------------------------------------------------------------------
# The best-rule criterion and the verdict
# --------------------------------------------------------------------------------------------
def _row(policy: str, gmv: float, miss: float, score: float, scenario: str = "a") -> dict:
    return {"policy": policy, "scenario": scenario, "gmv_mean": gmv, "roi_violation_rate": miss,
            "auctionnet_score_mean": score}  # fmt: skip


def test_criterion_never_rewards_missing_the_target() -> None:
    group = [
        _row("planner_cc", 120.0, 0.05, 118.0),
        _row("uniform", 130.0, 0.40, 90.0),  # the most GMV, 40% missed
        _row("pid_pacing", 105.0, 0.11, 100.0),  # 1 point over the limit (0.10)
        _row("obs_pacing", 100.0, 0.10, 99.0),  # at the limit: eligible
        _row("bandit", 95.0, 0.02, 94.0),
    ]
    assert best_rule(group)["policy"] == "obs_pacing"
    order = [r["policy"] for r in ranked(group)]
    assert order == ["planner_cc", "obs_pacing", "bandit", "pid_pacing", "uniform"]
    # Whatever a rule beyond the limit earns, it stays behind every rule within it.
    for gmv in (1e3, 1e6):
        assert best_rule([*group, _row("greedy_marginal", gmv, MISS_MARGIN + 0.051, gmv)]) == (
            best_rule(group)
        )
    assert criterion_text(group).startswith("most GMV with ROI miss <= 10.0%")
    # No rule within the limit, or no planner_cc: the AuctionNet score decides.
    assert best_rule(group[:3])["policy"] == "pid_pacing"
    assert criterion_text(group[:3]).startswith("best AuctionNet score: no rule has")
    assert best_rule(group[1:])["policy"] == "pid_pacing"
    assert criterion_text(group[1:]).startswith("best AuctionNet score; no planner_cc")


def test_verdict_outcome_is_interval_based_and_beats_means_won() -> None:
    paired = {"rule": "obs_pacing", "gmv_diff_ci95": [-1.0, 4.0]}
    rows = [
        _row("planner_cc", 120.0, 0.05, 118.0),
        _row("obs_pacing", 100.0, 0.10, 99.0),
        _row("ppo", 101.5, 0.10, 100.0) | {"paired": paired},  # more GMV on average: a tie
        _row("planner_cc", 120.0, 0.05, 118.0, "b"),
        _row("obs_pacing", 100.0, 0.10, 99.0, "b"),
        _row("ppo", 103.0, 0.09, 102.0, "b") | {"paired": {**paired, "gmv_diff_ci95": [1, 5]}},
    ]
    verdicts = {v["scenario"]: v for v in versus_best_rule(rows)}
    assert verdicts["a"]["outcome"] == "tie" and not verdicts["a"]["beats_rule"]
    assert verdicts["b"]["outcome"] == "won" and verdicts["b"]["beats_rule"]
    assert verdicts["a"]["criterion"].startswith("most GMV with ROI miss <= 10.0%")
    stale = [*rows[:2], rows[2] | {"paired": {**paired, "rule": "bandit"}}]
    with pytest.raises(ValueError, match="best rule in a is obs_pacing"):
        versus_best_rule(stale)


# --------------------------------------------------------------------------------------------
# The risk knob: planning to a multiple of the target
# --------------------------------------------------------------------------------------------
def _observations() -> np.ndarray:
    campaigns = BatchedCampaigns("hit_product", horizon_hours=HORIZON)
    obs, _ = campaigns.reset(EVAL_SEED_START + np.arange(4))
    policy = make_baseline("obs_pacing")
    policy.reset(campaigns)
    for _ in range(10):
        obs, *_ = campaigns.step(policy.predict(obs)[0])
    return obs.astype(np.float64)


def test_plan_to_target_moves_the_target_features_as_documented() -> None:
    obs = _observations()
    np.testing.assert_array_equal(plan_to_target(obs, 1.0), obs)
    mult = np.array([0.9, 1.0, 1.2, 1.3])
    planned = plan_to_target(obs, mult)
    target = obs_index("target_roi")
    np.testing.assert_allclose(planned[:, target], obs[:, target] * mult)
    for name in ("roi_to_target", "gmv_frac"):
        np.testing.assert_allclose(planned[:, obs_index(name)], obs[:, obs_index(name)] / mult)
    for name in ("gmv_rate", "cum_gmv_frac"):
        cols = channel_slice(name)
        np.testing.assert_allclose(planned[:, cols], obs[:, cols] / mult[:, None])
    for cols in (obs_index("log_matured_roi"), channel_slice("log_matured_roi")):
        shift = np.log(mult) if isinstance(cols, int) else np.log(mult)[:, None]
        np.testing.assert_allclose(planned[:, cols], np.clip(obs[:, cols] - shift, -5, 5))
    moved = {target, obs_index("roi_to_target"), obs_index("gmv_frac"),
             obs_index("log_matured_roi")}  # fmt: skip
    for name in ("gmv_rate", "cum_gmv_frac", "log_matured_roi"):
        moved |= set(range(OBS_DIM)[channel_slice(name)])
    others = [i for i in range(OBS_DIM) if i not in moved]
    np.testing.assert_array_equal(planned[:, others], obs[:, others])
    with pytest.raises(ValueError, match="> 0"):
        plan_to_target(obs, 0.0)
    with pytest.raises(ValueError, match="scalar or"):
        plan_to_target(obs, np.ones(3))


def test_pareto_sweep_batches_multipliers_on_the_same_campaigns(stand_in_planner: str) -> None:
    """One rollout of multipliers x campaigns: its x1.0 rows are the plain rule's (the same
    campaigns and luck), and a rule planning to 1.3x its target spends no more than at 0.9x."""
    rule = make_baseline("pid_pacing")
    plain = evaluate(rule, "hit_product", **SMALL).episodes
    points = pareto_sweep(rule, "hit_product", EVAL_SEED_START, 6, (0.9, 1.0, 1.3), HORIZON)
    assert [p["target_mult"] for p in points] == [0.9, 1.0, 1.3]
    assert points[1] == pytest.approx(pareto_point(plain, 1.0, evaluation.REFERENCES))
    run = simulate(PlanToTarget(make_baseline("pid_pacing"), 1.3), "hit_product", **SMALL)
    bold = simulate(PlanToTarget(make_baseline("pid_pacing"), 0.9), "hit_product", **SMALL)
    assert sum(r["spend"] for r in run.episodes) < sum(r["spend"] for r in bold.episodes)
    assert points[2]["gmv_mean"] == pytest.approx(np.mean([r["gmv"] for r in run.episodes]))
