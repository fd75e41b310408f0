"""What a run tells its user: progress in logs, the checkpoint used, the verdict, plot styles,
SB3 models in the evaluation harness."""

from __future__ import annotations

import io
import json
import queue
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from budgetgym.agents.baselines import BASELINE_NAMES
from budgetgym.agents.callbacks import (
    EpisodeBatch,
    ProgressCallback,
    format_metrics,
    mean_over_scenarios,
    ratio_of_totals,
    summarize,
)
from budgetgym.agents.channel_set import DEFAULT_CHANNEL_SET
from budgetgym.agents.checkpoints import (
    CHECKPOINT_FORMAT,
    ObsNormalizer,
    SB3Policy,
    describe_checkpoint,
)
from budgetgym.agents.evaluation import bootstrap_ratio_ci, evaluate
from budgetgym.agents.plots import LEARNED_COLORS, RULE_STYLES, policy_styles
from budgetgym.agents.policy import as_policy
from budgetgym.agents.progress import LineProgress
from budgetgym.agents.report import verdict_lines
from budgetgym.agents.residual import ResidualAction, base_action
from budgetgym.agents.training import _SeedBars
from budgetgym.agents.verdict import OUTCOMES, outcome, versus_best_rule
from budgetgym.envs import EVAL_SEED_START, BudgetVecEnv

HORIZON = 24


# --------------------------------------------------------------------------------------------
# Progress without a terminal
# --------------------------------------------------------------------------------------------
def test_line_progress_writes_a_line_per_10_percent_and_no_carriage_return() -> None:
    out = io.StringIO()
    bar = LineProgress("work", 200, out)
    for _ in range(200):
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 10
    assert lines[0].startswith("work: 10% (20/200 steps), elapsed ")
    assert lines[-1].startswith("work: 100% (200/200 steps)") and "eta 0:00" in lines[-1]


def test_line_progress_resumes_at_the_next_multiple_and_one_line_per_jump() -> None:
    out = io.StringIO()
    bar = LineProgress("train", 1000, out, initial=450)
    bar.set_postfix_str("gmv 12")
    bar.update(30)  # 48%: below the next multiple (50%)
    bar.update(400)  # 88%: several multiples at once, one line
    bar.update(120)
    lines = out.getvalue().splitlines()
    assert [line.split(":")[1].split("%")[0].strip() for line in lines] == ["88", "100"]
    assert all(line.endswith("| gmv 12") for line in lines)


def test_progress_callback_without_a_terminal_logs_lines(tmp_path: Path) -> None:
    env = BudgetVecEnv(4, scenario="hit_product", horizon_hours=HORIZON)
    model = PPO("MlpPolicy", env, n_steps=HORIZON, batch_size=48, n_epochs=1, seed=0)
    out = io.StringIO()
    model.learn(192, callback=ProgressCallback(192, stream=out))
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) == 10, text
    assert lines[-1].startswith("train: 100% (192/192 steps)") and "steps/s" in lines[-1]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_callback_on_a_terminal_draws_a_bar() -> None:
    env = BudgetVecEnv(4, scenario="hit_product", horizon_hours=HORIZON)
    model = PPO("MlpPolicy", env, n_steps=HORIZON, batch_size=48, n_epochs=1, seed=0)
    out = FakeTerminal()
    model.learn(96, callback=ProgressCallback(96, stream=out))
    assert "96/96" in out.getvalue() and "train: " not in out.getvalue()


def test_evaluation_without_a_terminal_logs_lines(capsys: pytest.CaptureFixture) -> None:
    from budgetgym.agents.baselines import make_baseline

    evaluate(make_baseline("uniform"), "hit_product", 6, progress=True, horizon_hours=HORIZON)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) == 10, err
    assert lines[-1].startswith("uniform on hit_product: 100% (144/144 campaign-steps)")


def test_seed_rows_without_a_terminal_log_lines_per_seed() -> None:
    out = io.StringIO()
    bars = _SeedBars([0, 1], 100, enabled=True, stream=out)
    reports: queue.Queue = queue.Queue()
    for step in (10, 55, 100):
        reports.put((0, step, {}))
    reports.put((1, 30, {}))
    bars.drain(reports)
    bars.stop()
    assert "\r" not in out.getvalue()
    starts = [line.split("%")[0] for line in out.getvalue().splitlines()]
    assert starts == ["seed 0: 10", "seed 0: 55", "seed 0: 100", "seed 1: 30"]


# --------------------------------------------------------------------------------------------
# Which checkpoint
# --------------------------------------------------------------------------------------------
def _fake_checkpoint(directory: Path, step: int) -> None:
    directory.mkdir(parents=True)
    meta = {"format": CHECKPOINT_FORMAT, "num_timesteps": step}
    (directory / "meta.json").write_text(json.dumps(meta))


def test_describe_checkpoint_names_the_folder_its_step_and_the_runs(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _fake_checkpoint(run / "best", 400_000)
    _fake_checkpoint(run / "checkpoints" / "step_000400000", 400_000)
    _fake_checkpoint(run / "checkpoints" / "step_000800000", 800_000)
    # A run directory stands for best/ (what evaluate, compare and export load).
    info = describe_checkpoint(run)
    assert (info.folder, info.step, info.run_steps) == ("best/", 400_000, 800_000)
    assert str(info) == "best/ at step 400,000 of the run's 800,000"
    last = describe_checkpoint(run / "checkpoints" / "step_000800000")
    assert str(last) == "checkpoints/step_000800000/ at step 800,000, the run's last"
    _fake_checkpoint(run / "final", 900_000)
    assert str(describe_checkpoint(run / "best")).endswith("of the run's 900,000")
    loose = tmp_path / "elsewhere"
    _fake_checkpoint(loose, 7)
    assert str(describe_checkpoint(loose)) == f"{loose} at step 7"


# --------------------------------------------------------------------------------------------
# The verdict and the ratio of totals
# --------------------------------------------------------------------------------------------
def _verdict(lo: float, hi: float, policy_miss: float, rule_miss: float) -> dict:
    return {
        "paired": {"gmv_diff_ci95": [lo, hi]},
        "roi_violation_rate": policy_miss,
        "rule_roi_violation_rate": rule_miss,
    }


@pytest.mark.parametrize(
    ("lo", "hi", "policy_miss", "rule_miss", "expected"),
    [
        (10.0, 50.0, 0.1, 0.2, "won"),
        (10.0, 50.0, 0.3, 0.2, "trade-off"),
        (-50.0, -10.0, 0.0, 0.2, "lost"),
        (-10.0, 50.0, 0.3, 0.2, "lost"),
        (-10.0, 50.0, 0.2, 0.2, "tie"),
    ],
)
def test_outcome_against_the_best_rule(lo, hi, policy_miss, rule_miss, expected) -> None:
    assert outcome(_verdict(lo, hi, policy_miss, rule_miss)) == expected in OUTCOMES


def test_verdict_lines_one_per_scenario_with_the_interval_misses_and_checkpoint() -> None:
    def row(policy: str, scenario: str, gmv: float, miss: float, **extra) -> dict:
        return {"policy": policy, "scenario": scenario, "gmv_mean": gmv,
                "roi_violation_rate": miss, "episodes": 50, "auctionnet_score_mean": gmv,
                "gmv_ratio_to_planner_pct": gmv / 1.25, **extra}  # fmt: skip

    paired = {"rule": "obs_thompson", "gmv_diff_ci95": [1.0, 3.0], "gmv_diff_pct": 2.0,
              "gmv_diff_pct_ci95": [1.0, 3.0]}  # fmt: skip
    rows = [
        row("uniform", "hit_product", 90.0, 0.5),
        row("obs_thompson", "hit_product", 100.0, 0.2),
        row("oracle", "hit_product", 120.0, 0.0),
        row("run", "hit_product", 102.0, 0.1, paired=paired, checkpoint="best/ at step 4"),
        row("obs_thompson", "double11_promotion", 80.0, 0.2),
        row("run", "double11_promotion", 79.0, 0.4, checkpoint="best/ at step 4",
            paired={**paired, "gmv_diff_ci95": [-3.0, 1.0], "gmv_diff_pct": -1.25,
                    "gmv_diff_pct_ci95": [-3.75, 1.25]}),
    ]  # fmt: skip
    lines = verdict_lines(rows)
    assert lines[0] == "Evaluated run: best/ at step 4"
    body = lines[2:]
    assert len(body) == 2
    assert body[0].split()[:2] == ["hit_product", "won"]
    assert "GMV +2.0% [+1.0, +3.0] vs obs_thompson; ROI missed 5 vs 10 of 50" in body[0]
    assert body[0].endswith("; 81.6% of the planner's GMV")
    assert body[1].split()[:2] == ["double11_promotion", "lost"]
    assert "-1.2% [-3.8, +1.2] vs obs_thompson; ROI missed 20 vs 10 of 50" in body[1]
    assert verdict_lines([r for r in rows if r["policy"] != "run"]) == []
    # One definition: the line's word is the verdict's outcome, and "beats" means "won".
    for line, verdict in zip(body, versus_best_rule(rows), strict=True):
        assert line.split()[1] == verdict["outcome"] == outcome(verdict)
        assert verdict["beats_rule"] == (verdict["outcome"] == "won")


def _batch(gmv: list[float], spend: list[float] | None = None, compensation=None) -> EpisodeBatch:
    n = len(gmv)
    one = np.ones(n)
    spend_cny = one if spend is None else np.array(spend)
    comp = np.zeros(n) if compensation is None else np.array(compensation)
    return EpisodeBatch(np.arange(n), one, np.array(gmv), spend_cny, 10 * one,
                        np.array(gmv) / spend_cny, 2 * one, np.ones((n, 6)), comp,
                        DEFAULT_CHANNEL_SET.names)  # fmt: skip


def test_ratio_of_totals_is_not_the_mean_of_ratios() -> None:
    batches, oracle = [_batch([1.0, 3.0])], [np.array([1.0, 5.0])]
    assert ratio_of_totals(batches, oracle) == pytest.approx(100 * 4 / 6)  # mean of ratios: 80
    metrics = {"gmv": 2.0, "roi": 1.0, "roi_violation_rate": 0.0, "pct_of_oracle": 80.0,
               "gmv_ratio_to_oracle_pct": 66.7}  # fmt: skip
    assert format_metrics(metrics).endswith("total GMV 66.7% of the oracle's")
    planner = {**metrics, "gmv_ratio_to_planner_pct": 90.0}
    assert "total GMV 90.0% of the planner's | total GMV 66.7%" in format_metrics(planner)
    lo, hi = bootstrap_ratio_ci(np.array([1.0, 3.0, 2.0, 2.0]), np.array([1.0, 5.0, 2.0, 3.0]))
    assert lo < 8 / 11 < hi


def test_validation_metrics_by_hand() -> None:
    # ROI 3 (met), 1 (missed: 1 CNY back of 2 spent), target 2 for both
    batch = _batch([6.0, 2.0], spend=[2.0, 2.0], compensation=[0.0, 1.0])
    out = summarize(batch, {"planner": np.array([8.0, 4.0])})
    assert out["pct_of_planner"] == pytest.approx(100 * (6 / 8 + 2 / 4) / 2)
    assert out["roi_violation_rate"] == 0.5
    assert out["compensation_pct_of_spend"] == pytest.approx(25.0)
    assert out["auctionnet_score"] == pytest.approx((6 + 2 * 0.25) / 2)
    assert out["gmv_of_met_campaigns"] == 6.0
    nothing_met = summarize(_batch([1.0], spend=[2.0]))
    other = summarize(batch)
    assert mean_over_scenarios({"a": nothing_met, "b": other})["gmv_of_met_campaigns"] == 6.0


# --------------------------------------------------------------------------------------------
# Plot styles
# --------------------------------------------------------------------------------------------
def test_every_policy_has_its_own_style_and_learned_ones_stand_out() -> None:
    labels = ["oracle", *BASELINE_NAMES, *(f"seed_{i}" for i in range(8))]
    styles = policy_styles(labels)
    pairs = [(s["color"], s["linestyle"]) for s in styles.values()]
    assert len(set(pairs)) == len(labels)
    assert set(RULE_STYLES) == set(BASELINE_NAMES)
    rule_colors = {color for color, _ in RULE_STYLES.values()}
    assert not rule_colors & set(LEARNED_COLORS) and "black" not in rule_colors
    for label in ("oracle", "seed_0", "seed_7"):
        for rule in BASELINE_NAMES:
            assert styles[label]["linewidth"] > styles[rule]["linewidth"]
            assert styles[label]["zorder"] > styles[rule]["zorder"]
    # The same rule keeps its style whatever else is plotted.
    assert policy_styles(["seed_0", "bandit"])["bandit"] == styles["bandit"]


# --------------------------------------------------------------------------------------------
# SB3 models in the harness
# --------------------------------------------------------------------------------------------
def test_evaluate_takes_an_sb3_model_as_it_is() -> None:
    env = BudgetVecEnv(2, scenario="hit_product", horizon_hours=HORIZON)
    model = PPO("MlpPolicy", env, n_steps=HORIZON, batch_size=48, seed=0)
    small = {"episodes": 4, "progress": False, "horizon_hours": HORIZON}
    result = evaluate(model, "hit_product", **small)
    assert result.summary["policy"] == "ppo" and result.summary["episodes"] == 4
    direct = evaluate(SB3Policy(model, ObsNormalizer.identity(), "ppo"), "hit_product", **small)
    assert result.episodes == direct.episodes
    assert result.summary["seed_start"] == EVAL_SEED_START


def test_sb3_wrapper_uses_the_models_normalization_and_residual_base() -> None:
    venv = ResidualAction(BudgetVecEnv(2, horizon_hours=HORIZON), "obs_price_aware")
    vecnorm = VecNormalize(venv)
    obs = vecnorm.venv.reset()
    vecnorm.obs_rms.update(obs * 3.0 + 1.0)  # statistics unlike the identity
    model = PPO("MlpPolicy", vecnorm, n_steps=HORIZON, batch_size=48, seed=0)
    policy = as_policy(model)
    assert policy.residual_base == "obs_price_aware"
    np.testing.assert_array_equal(policy.normalizer.mean, vecnorm.obs_rms.mean)
    actions, _ = policy.predict(obs)
    correction, _ = model.predict(vecnorm.normalize_obs(obs), deterministic=True)
    expected = np.clip(base_action("obs_price_aware", obs) + correction, -1.0, 1.0)
    np.testing.assert_allclose(actions, expected, atol=1e-5)
    assert as_policy(policy) is policy  # anything but an SB3 model passes through
