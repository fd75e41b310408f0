"""Lagrangian training: the PID multiplier, the break-even argument, the reward wrapper, its
config, and a multiplier that survives checkpoints and resume with PPO and SAC."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from budgetgym.agents.checkpoints import RunPaths, load_checkpoint, load_run_policy
from budgetgym.agents.config import load_config, validate_config
from budgetgym.agents.lagrangian import STATE_FILE, LagrangianState, PIDLagrangian
from budgetgym.agents.training import make_train_env, normalize_train_env, resume, train
from budgetgym.agents.wrappers import (
    DenseRoiPenalty,
    LagrangianReward,
    RoiMissPenalty,
    lagrangian_of,
)
from budgetgym.envs import BudgetVecEnv
from budgetgym.envs.campaigns import info_columns, roi_target_missed
from tests.agents.tiny_runs import quiet, tiny

#: A Lagrangian run leaves the reward unscaled (see the config test below).
RAW_REWARD = {"norm_reward": False}


# --------------------------------------------------------------------------------------------
# The PID controller
# --------------------------------------------------------------------------------------------
def test_pid_multiplier_rises_while_violated_falls_when_satisfied_and_stays_non_negative() -> None:
    pid = PIDLagrangian.start(kp=1.0, ki=0.5, kd=0.2, target=0.05)
    # The first update by hand: e = 0.25, I = 0.25, no previous cost so no derivative.
    assert pid.update(0.30) == pytest.approx(1.0 * 0.25 + 0.5 * 0.25)
    violated = [pid.update(0.30) for _ in range(8)]
    assert np.all(np.diff(violated) > 0)  # the integral keeps raising lambda
    satisfied = [pid.update(0.0) for _ in range(60)]
    assert np.all(np.diff(satisfied) <= 0) and satisfied[0] < violated[-1]
    assert satisfied[-1] == 0.0 and min(satisfied) >= 0.0
    assert pid.integral == 0.0  # clipped: no wind-down owed once the constraint holds
    # A new violation raises lambda at once (the clipped integral does not delay it), and the
    # derivative term answers the rise of the cost: +kd * 0.2 on top of P and I.
    rising = pid.update(0.25)
    assert rising == pytest.approx(1.0 * 0.2 + 0.5 * 0.2 + 0.2 * 0.25)
    # The integral starts at initial_lambda / ki: with no error lambda stays where it started.
    assert PIDLagrangian.start(0.0, 0.5, 0.0, 0.05, initial_lambda=2.0).update(0.05) == 2.0


def test_a_capped_multiplier_does_not_wind_up_and_lets_go_at_once() -> None:
    # A target out of reach: the uncapped integral grows every update, the capped one holds at
    # max_lambda / ki, so once the constraint holds lambda falls at the first update.
    free = PIDLagrangian.start(kp=1.0, ki=0.2, kd=0.0, target=0.05, initial_lambda=0.5)
    capped = PIDLagrangian.start(1.0, 0.2, 0.0, 0.05, initial_lambda=0.5, max_lambda=3.0)
    for _ in range(100):
        free.update(0.45), capped.update(0.45)
    assert free.multiplier == pytest.approx(0.4 + 0.2 * (2.5 + 100 * 0.4)) and free.integral > 40
    assert capped.multiplier == 3.0 and capped.integral == pytest.approx(3.0 / 0.2)
    assert capped.update(0.0) == pytest.approx(0.2 * (15.0 - 0.05) - 0.05)  # below the cap
    assert free.update(0.0) > 3.0  # the uncapped one is still paying for its wind-up
    with pytest.raises(ValueError, match="above max_lambda"):
        PIDLagrangian.start(1.0, 0.2, 0.0, 0.05, initial_lambda=4.0, max_lambda=3.0)


# A campaign with budget 1 and target ROI R whose GMV is c * x**s for spend x (concave): the
# target binds at x_R = 0.5, where the marginal ROI s * R still lies above kappa / (1 + kappa) R.
R, S, X_R = 2.0, 0.7, 0.5
C = R * X_R ** (1 - S)
SPEND = np.linspace(1e-6, 1.0, 200_001)


def gmv(spend: np.ndarray, scale: float = C) -> np.ndarray:
    return scale * spend**S


def test_a_fixed_penalty_pays_a_miss_and_a_multiplier_past_break_even_does_not() -> None:
    # Fixed penalty kappa on the shortfall: spending past x_R pays while the marginal ROI is above
    # kappa / (1 + kappa) R, so the best spend misses the target.
    kappa = 1.5
    fixed = gmv(SPEND) - kappa * np.maximum(R * SPEND - gmv(SPEND), 0.0)
    best = SPEND[np.argmax(fixed)]
    marginal_roi = S * C * best ** (S - 1)
    assert best > X_R + 0.1 and gmv(best) < R * best  # misses
    assert marginal_roi == pytest.approx(kappa / (1 + kappa) * R, rel=1e-3)
    # Lagrangian on the miss: reward GMV - lambda * 1[miss]. Missing pays at most the GMV of the
    # rest of the budget, G(1) - G(x_R); from that multiplier on the best spend meets the target.
    break_even = gmv(1.0) - gmv(X_R)

    def best_spend(multiplier: float) -> float:
        missed = gmv(SPEND) < R * SPEND * (1 - 1e-9)
        return SPEND[np.argmax(gmv(SPEND) - multiplier * missed)]

    assert best_spend(0.99 * break_even) == 1.0  # below break-even: spend all, miss
    for multiplier in (break_even * 1.01, 2 * break_even, 10.0):
        spend = best_spend(multiplier)
        assert spend == pytest.approx(X_R, abs=1e-5) and gmv(spend) >= R * spend * (1 - 1e-6)


def test_pid_settles_the_miss_rate_of_a_best_responding_population_at_its_target() -> None:
    # 400 campaigns of different scales: each misses (spends its whole budget) while lambda is
    # below its own break-even G(1) - G(x_R), else spends to its target. The PID finds the
    # multiplier at which 5% of them still find a miss worth it.
    scales = np.random.default_rng(0).uniform(0.6, 1.2, 400) * C
    x_r = (scales / R) ** (1 / (1 - S))
    break_even = gmv(np.ones_like(scales), scales) - gmv(np.minimum(x_r, 1.0), scales)
    pid = PIDLagrangian.start(kp=1.0, ki=0.5, kd=0.5, target=0.05)
    rates, multipliers = [], []
    for _ in range(400):
        rate = float((break_even > pid.multiplier).mean())
        rates.append(rate)
        multipliers.append(pid.update(rate))
    assert rates[0] == 1.0 and min(multipliers) >= 0.0
    late = slice(200, None)
    assert np.mean(rates[late]) == pytest.approx(0.05, abs=0.01)
    # lambda settles at the break-even of the campaign at the 95th percentile: it moves around
    # it (a campaign's response to lambda is a jump), half the time above it.
    assert np.median(multipliers[late]) == pytest.approx(np.quantile(break_even, 0.95), rel=0.05)


# --------------------------------------------------------------------------------------------
# The reward wrapper
# --------------------------------------------------------------------------------------------
def _step_together(venvs: list, horizon: int, n: int, seed: int = 3) -> list:
    for venv in venvs:
        venv.seed(seed)
        venv.reset()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(horizon):
        actions = rng.uniform(-1, 1, (n, 7)).astype(np.float32)
        actions[: n // 2, 0] = 0.9  # overspend: these campaigns miss
        actions[n // 2 :, 0] = -1.0  # spend nothing: these cannot
        out.append([venv.step(actions) for venv in venvs])
    return out


def test_lagrangian_reward_at_a_fixed_multiplier_is_the_fixed_penalty_it_generalizes() -> None:
    horizon, n, multiplier = 24, 6, 0.7
    args = (n, "high_price_long_cycle", "gmv", 0.0, horizon)
    for constraint, fixed in (
        ("expected_shortfall", DenseRoiPenalty(BudgetVecEnv(*args), multiplier)),
        ("miss_rate", RoiMissPenalty(BudgetVecEnv(*args), multiplier)),
    ):
        pid = PIDLagrangian(kp=1.0, ki=0.0, kd=0.0, target=0.0, multiplier=multiplier)
        wrapped = LagrangianReward(BudgetVecEnv(*args), constraint, pid)
        steps = _step_together([fixed, wrapped], horizon, n)
        for (_, r_fixed, _, _), (_, r_lagrange, _, _) in steps:
            np.testing.assert_allclose(r_lagrange, r_fixed, rtol=1e-5, atol=1e-6)
        _, _, done, infos = steps[-1][1]
        assert done.all()
        # The measurement: the share that missed, or the mean final shortfall / B.
        budget = np.array([i["budget"] for i in infos])
        compensation = np.array([i["compensation"] for i in infos])
        target = np.array([i["target_roi"] for i in infos])
        spend = np.array([i["spend_total"] for i in infos])
        gmv_cny = np.array([i["gmv_total"] for i in infos])
        missed = gmv_cny < target * spend
        assert 0 < missed.sum() < n and ((compensation > 0) == missed).all()
        expected = (
            missed.mean()
            if constraint == "miss_rate"
            else (np.maximum(target * spend - gmv_cny, 0) / budget).mean()
        )
        assert wrapped.take_measurement() == pytest.approx(expected, rel=1e-9)
        assert wrapped.take_measurement() is None  # nothing finished since


def test_make_train_env_pays_gmv_under_the_multiplier() -> None:
    lagrangian = {"constraint": "expected_shortfall", "target": 0.02, "initial_lambda": 0.3}
    config = validate_config({**tiny(normalize=RAW_REWARD), "lagrangian": lagrangian})
    venv = make_train_env(config, seed=1)
    layer = lagrangian_of(venv)
    assert isinstance(venv.venv, LagrangianReward) and layer is venv.venv
    assert layer.venv.campaigns.reward_mode == "gmv"  # lambda, not kappa, prices the shortfall
    assert layer.controller.multiplier == 0.3 and layer.controller.integral == 0.3 / 0.2


def test_the_learner_pays_lambda_for_a_miss_at_any_lambda() -> None:
    """The shipped config's training stack (campaigns, multiplier, twin, normalization), on
    smaller campaigns: the reward the learner sees in a missed campaign's last hour is lower by
    exactly the rise of lambda, from 6 to 60, and unchanged elsewhere. A return-std normalizer
    would divide the price by a std that grows with lambda and clip it at clip_reward."""
    shipped = yaml.safe_load(load_config("ppo_lagrangian").to_yaml())
    horizon = 24
    small = {
        "env": {**shipped["env"], "n_envs": 8, "horizon_hours": horizon},
        "hyperparams": {**shipped["hyperparams"], "n_steps": horizon, "batch_size": 96},
    }
    config = validate_config({**shipped, **small})
    rewards = []
    for multiplier in (6.0, 60.0):
        venv = normalize_train_env(config, make_train_env(config, seed=3))
        lagrangian_of(venv).controller.multiplier = multiplier
        venv.reset()
        action = np.zeros((venv.num_envs, *venv.action_space.shape), dtype=np.float32)
        for _ in range(2 * horizon):  # two campaign-weeks: the normalizer's statistics warm up
            _, reward, done, infos = venv.step(action)
        rewards.append(reward)
    missed = roi_target_missed(*info_columns(infos, "gmv_total", "target_roi", "spend_total"))
    assert done.all() and missed.any()
    np.testing.assert_allclose(rewards[1] - rewards[0], -54.0 * missed, atol=1e-3)


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"env": {"reward_shaping": "dense_roi_penalty"}}, "set env.reward_shaping: none"),
        ({"env": {"roi_miss_penalty": 0.1}}, "set env.roi_miss_penalty: 0"),
        ({"lagrangian": {"kp": 0.0, "ki": 0.0}}, "lambda never moves"),
        ({"lagrangian": {"target": 1.0}}, "not a miss rate below 1"),
        ({"lagrangian": {"ki": -0.1}}, "lagrangian.ki: input should be greater than"),
        ({"lagrangian": {"kii": 0.1}}, "did you mean 'ki'"),
        ({"lagrangian": {"constraint": "miss"}}, "lagrangian.constraint"),
        ({"normalize": {"norm_reward": True}}, "set normalize.norm_reward: false"),
        ({"lagrangian": {"initial_lambda": 2.0, "max_lambda": 1.0}}, "above max_lambda"),
    ],
)
def test_lagrangian_config_refuses_conflicts_and_bad_values(changes: dict, message: str) -> None:
    data = tiny(**{"lagrangian": {"constraint": "miss_rate"}, "normalize": RAW_REWARD, **changes})
    with pytest.raises(ValueError, match=message):
        validate_config(data)


# --------------------------------------------------------------------------------------------
# Checkpoints, resume, TensorBoard, any algorithm
# --------------------------------------------------------------------------------------------
#: Every campaign's miss counts against a target of 0, so the integral only grows.
STRICT = {"constraint": "miss_rate", "target": 0.0, "kp": 0.5, "ki": 1.0, "kd": 0.0}


def _state(directory: Path) -> dict:
    return json.loads((directory / STATE_FILE).read_text())


def _scalars(run: RunPaths, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run.tensorboard))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


@pytest.mark.parametrize(
    ("algorithm", "hyperparams"),
    [
        ("ppo", {"n_steps": 24, "batch_size": 48, "n_epochs": 1}),
        ("sac", {"learning_starts": 0, "buffer_size": 1000, "batch_size": 32}),
    ],
)
def test_the_multiplier_is_logged_saved_and_resumed(
    tmp_path: Path, algorithm: str, hyperparams: dict
) -> None:
    data = {
        **tiny(normalize=RAW_REWARD),
        "algorithm": algorithm,
        "hyperparams": hyperparams,
        "lagrangian": STRICT,
    }
    config = validate_config(data)
    train(config, tmp_path / "run", progress=False, log=quiet)
    run = RunPaths(tmp_path / "run")
    for directory in (run.best, run.final, *run.list_checkpoints()):
        assert (directory / STATE_FILE).is_file()
    saved = _state(run.final)
    assert saved["integral"] > 0 and saved["multiplier"] > 0  # random policies miss
    # TensorBoard: lambda and the constraint after each rollout that finished campaigns.
    lambdas = _scalars(run, "lagrangian/lambda")
    constraint = _scalars(run, "lagrangian/constraint")
    assert len(lambdas) >= 2 and all(value >= 0 for _, value in lambdas)
    assert lambdas[-1][1] == pytest.approx(saved["multiplier"], rel=1e-6)
    assert all(0 <= value <= 1 for _, value in constraint)
    # Loading onto a new training env continues from the saved multiplier, not the initial.
    loaded = load_checkpoint(run.final, env=make_train_env(config, seed=1))
    controller = lagrangian_of(loaded.vecnormalize).controller
    assert (controller.multiplier, controller.integral) == (saved["multiplier"], saved["integral"])

    # Resume: the integral goes on from the saved one (target 0: it adds each measured rate).
    step = saved_step = int(json.loads((run.final / "meta.json").read_text())["num_timesteps"])
    resume(run.root, total_timesteps=step + 96, progress=False, log=quiet)
    after = _state(run.final)
    rates = [value for step, value in _scalars(run, "lagrangian/constraint") if step > saved_step]
    assert rates, "no update after the resume"
    assert after["integral"] == pytest.approx(saved["integral"] + sum(rates), rel=1e-6)
    # A corrupt state makes its checkpoint unusable (resume skips it, naming the reason).
    (run.final / STATE_FILE).write_text(json.dumps({**after, "multiplier": -1.0}))
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(run.final)
    # Evaluation loads the run like any other.
    actions, _ = load_run_policy(run.root).predict(np.zeros((2, 77), dtype=np.float32))
    assert actions.shape == (2, 7)


def test_a_corrupt_or_foreign_lagrangian_state_is_refused(tmp_path: Path) -> None:
    good = LagrangianState("miss_rate", 0.5, 0.5, 0.1, 1.0, 4)
    good.save(tmp_path / STATE_FILE)
    assert LagrangianState.load(tmp_path / STATE_FILE, "miss_rate") == good
    with pytest.raises(ValueError, match="is for constraint 'miss_rate'"):
        LagrangianState.load(tmp_path / STATE_FILE, "expected_shortfall")
    base = json.loads((tmp_path / STATE_FILE).read_text())
    bad_values = [
        {"multiplier": -1.0},
        {"integral": float("nan")},
        {"multiplier": True},
        {"previous_cost": "0.1"},
        {"pending_campaigns": 2.5},
        {"pending_cost": 5.0},  # more misses than campaigns
        {"extra": 1},
    ]
    for change in bad_values:
        (tmp_path / STATE_FILE).write_text(json.dumps({**base, **change}))
        with pytest.raises(ValueError, match="corrupt"):
            LagrangianState.load(tmp_path / STATE_FILE, "miss_rate")
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        LagrangianState.load(tmp_path / STATE_FILE, "miss_rate")
    (tmp_path / STATE_FILE).unlink()
    with pytest.raises(ValueError, match="has no lagrangian.json"):
        LagrangianState.load(tmp_path / STATE_FILE, "miss_rate")
