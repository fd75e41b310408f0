"""The ROI guard: its action, its settings, and its place in training, checkpoints and export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from budgetgym.agents.channel_set import DEFAULT_CHANNEL_SET
from budgetgym.agents.checkpoints import SB3Policy, load_run_policy, resolve_checkpoint
from budgetgym.agents.config import validate_config
from budgetgym.agents.export import OnnxPolicy, export_onnx
from budgetgym.agents.policy import load_policy
from budgetgym.agents.roi_guard import (
    GuardedPolicy,
    RoiGuard,
    guard_actions,
    parse_guard,
    replace_guard,
)
from budgetgym.agents.training import train
from budgetgym.agents.wrappers import RoiGuardAction, roi_guard_of, training_guard
from budgetgym.envs import ACTION_DIM, BatchedCampaigns, BudgetVecEnv
from budgetgym.envs.scenarios import EVAL_SEED_START
from budgetgym.scripts.cli import main
from tests.agents.test_imitation import HORIZON, tiny

LAYOUT = DEFAULT_CHANNEL_SET.layout
GUARD = RoiGuard(tau=0.5, gain=4.0, after=0.0)  # acts from the first hour on most campaigns
IN_TRAINING = GUARD.model_copy(update={"in_training": True})


def _obs(progress: float, log_matured_roi: float) -> np.ndarray:
    obs = np.zeros((1, DEFAULT_CHANNEL_SET.obs_dim), dtype=np.float32)
    obs[0, LAYOUT.index("progress")] = progress
    obs[0, LAYOUT.index("log_matured_roi")] = log_matured_roi
    return obs


def late_observations(n: int = 64, hours: int = 20) -> np.ndarray:
    """Observations of ``n`` campaigns ``hours`` into a 24-hour episode of random actions."""
    campaigns = BatchedCampaigns("mixed", horizon_hours=HORIZON)
    obs, _ = campaigns.reset(EVAL_SEED_START + np.arange(n))
    rng = np.random.default_rng(0)
    for _ in range(hours):
        obs, _, _, _ = campaigns.step(rng.uniform(-1, 1, size=(n, ACTION_DIM)))
    return obs


def test_the_guard_cuts_the_pace_only_late_and_below_its_threshold():
    guard = RoiGuard(tau=0.1, gain=2.0, after=0.5)
    action = np.array([[0.0, 0.3, -0.2, 0.1, 0.0, -1.0, 1.0]])  # even pacing
    for progress, matured in ((0.4, -1.0), (0.6, 0.1), (0.6, 0.5)):
        out = guard_actions(guard, _obs(progress, matured), action)
        np.testing.assert_allclose(out, action, atol=1e-7)  # early, or at/above tau
    out = guard_actions(guard, _obs(0.6, -0.4), action)
    pace = (4.0 ** out[0, 0] - 0.25) / 0.75
    assert pace == pytest.approx(np.exp(2.0 * (-0.4 - 0.1)), rel=1e-6)  # even pace x factor
    np.testing.assert_array_equal(out[0, 1:], action[0, 1:].astype(np.float32))  # the split


def test_the_guard_never_raises_the_pace_and_reads_the_same_on_torch():
    obs = late_observations()
    action = np.random.default_rng(1).uniform(-1, 1, size=(len(obs), ACTION_DIM))
    guarded = guard_actions(GUARD, obs, action)
    assert guarded.dtype == np.float32
    assert (guarded[:, 0] <= action[:, 0] + 1e-6).all()
    assert (guarded[:, 0] < action[:, 0] - 1e-3).sum() > len(obs) // 4  # it does act
    on_torch = guard_actions(GUARD, torch.as_tensor(obs), torch.as_tensor(action))
    np.testing.assert_allclose(on_torch.numpy(), guarded, atol=1e-6)


def test_a_guard_is_three_numbers_in_range():
    assert RoiGuard.parse("0.05:8:0.75") == RoiGuard(tau=0.05, gain=8.0, after=0.75)
    assert RoiGuard.parse(RoiGuard().spec) == RoiGuard()
    for bad in ("0.1:8", "a:1:0"):
        with pytest.raises(ValueError, match="TAU:GAIN:AFTER"):
            RoiGuard.parse(bad)
    for bad in ("0:-1:0.5", "0:1:1.5", "nan:1:0"):
        with pytest.raises(ValueError, match="not a valid ROI guard"):
            RoiGuard.parse(bad)
    with pytest.raises(ValueError, match="meta.json: roi_guard is not a valid ROI guard.*gain"):
        RoiGuard.from_meta({"tau": 0.0, "gain": "x", "after": 0.5}, "meta.json: roi_guard")


def test_a_config_guard_is_validated_and_refused_by_ars():
    config = validate_config({"roi_guard": {"tau": 0.1}})
    assert config.roi_guard == RoiGuard(tau=0.1)
    with pytest.raises(ValueError, match="roi_guard"):
        validate_config({"roi_guard": {"after": 2.0}})
    with pytest.raises(ValueError, match="roi_guard .* does not apply to algorithm ars"):
        validate_config({"algorithm": "ars", "roi_guard": {}})


def test_a_rule_is_wrapped_and_a_policy_that_plans_spend_refused():
    rule, previous = replace_guard(load_policy("obs_pacing"), GUARD)
    assert isinstance(rule, GuardedPolicy) and previous is None
    assert rule.name == "obs_pacing+guard 0.5:4:0"
    assert replace_guard(load_policy("obs_pacing"), None)[0].name == "obs_pacing"
    assert parse_guard("None") is None and parse_guard("0.5:4:0") == GUARD
    with pytest.raises(ValueError, match="plans spend"):
        replace_guard(load_policy("oracle"), GUARD)


@pytest.mark.parametrize("guard", [IN_TRAINING, GUARD])
def test_the_training_env_steps_the_guarded_action_only_in_training(guard: RoiGuard):
    carrier = RoiGuardAction(BudgetVecEnv(8, "hit_product", horizon_hours=HORIZON), guard,
                             DEFAULT_CHANNEL_SET)  # fmt: skip
    plain = BudgetVecEnv(8, "hit_product", horizon_hours=HORIZON)
    for env in (carrier, plain):
        env.seed(0)
    obs, twin_obs = carrier.reset(), plain.reset()
    rng = np.random.default_rng(2)
    for _ in range(6):
        action = rng.uniform(-1, 1, size=(8, ACTION_DIM)).astype(np.float32)
        obs, _, _, _ = carrier.step(action)
        twin_action = guard_actions(guard, twin_obs, action) if guard.in_training else action
        twin_obs, _, _, _ = plain.step(twin_action)
        np.testing.assert_array_equal(obs, twin_obs)
    assert roi_guard_of(carrier) == guard and roi_guard_of(plain) is None
    assert training_guard(carrier) == (guard if guard.in_training else None)


def _weights(run_dir: Path) -> list[torch.Tensor]:
    return [p.detach().clone() for p in load_run_policy(run_dir).model.policy.parameters()]


def test_a_guarded_dagger_run_records_applies_and_exports_its_guard(tmp_path: Path):
    """By default the guard does not touch training (the student is the unguarded run's, bit
    for bit), and the deployed policy applies it; ``in_training`` makes DAgger's rollouts act
    through it, so the student differs."""
    data = tiny("dagger", iterations=1, bc_campaigns=16, epochs=5)
    runs = {}
    for name, guard in (("plain", None), ("run", GUARD), ("in_training", IN_TRAINING)):
        config = validate_config(
            {**data, "roi_guard": None if guard is None else guard.model_dump()}
        )
        runs[name] = tmp_path / name
        train(config, runs[name], progress=False, log=lambda _: None)
    plain_weights, run_weights = _weights(runs["plain"]), _weights(runs["run"])
    assert all(torch.equal(a, b) for a, b in zip(plain_weights, run_weights, strict=True))
    in_training = _weights(runs["in_training"])
    assert not all(torch.equal(a, b) for a, b in zip(plain_weights, in_training, strict=True))
    assert load_run_policy(runs["in_training"]).roi_guard == IN_TRAINING
    run_dir = runs["run"]
    meta = json.loads((run_dir / "final" / "meta.json").read_text())
    assert meta["roi_guard"] == GUARD.model_dump()
    policy = load_run_policy(run_dir)
    assert policy.roi_guard == GUARD
    obs = late_observations()
    unguarded = SB3Policy(policy.model, policy.normalizer, "plain", channels=policy.channels)
    plain, _ = unguarded.predict(obs)
    actions, _ = policy.predict(obs)
    np.testing.assert_array_equal(actions, guard_actions(GUARD, obs, plain))
    assert not np.allclose(actions, plain)
    onnx_path = export_onnx(run_dir)
    assert json.loads(onnx_path.with_suffix(".json").read_text())["roi_guard"] == meta["roi_guard"]
    exported, _ = OnnxPolicy(onnx_path).predict(obs)
    assert np.abs(exported - actions).max() <= 1e-5
    # the run's guard is replaced (evaluate --roi-guard, bench_roi_guard); the graph's is not
    student, own = replace_guard(load_run_policy(run_dir), None)
    assert own == GUARD and student.roi_guard is None and student.name == "run+no guard"
    np.testing.assert_array_equal(student.predict(obs)[0], plain)
    other = RoiGuard(tau=0.2, gain=2.0, after=0.0)
    student, _ = replace_guard(student, other)
    np.testing.assert_array_equal(student.predict(obs)[0], guard_actions(other, obs, plain))
    with pytest.raises(ValueError, match="inside its ONNX graph"):
        replace_guard(OnnxPolicy(onnx_path), None)
    out = tmp_path / "eval"
    argv = ["evaluate", "--policy", str(run_dir), "--roi-guard", "none", "--scenario",
            "hit_product", "--episodes", "4", "--horizon-hours", str(HORIZON), "--out", str(out),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((out / "summary.json").read_text())["policy"] == "run+no guard"
    assert main([*argv[:3], "--roi-guard", "0.1:8", *argv[5:]]) == 2  # one line, exit 2


def test_an_invalid_recorded_guard_is_refused_on_load(tmp_path: Path):
    run_dir = tmp_path / "run"
    train(validate_config(tiny("dagger", iterations=0, bc_campaigns=8, epochs=1)), run_dir,
          progress=False, log=lambda _: None)  # fmt: skip
    meta_path = resolve_checkpoint(run_dir) / "meta.json"
    meta = json.loads(meta_path.read_text())
    assert meta["roi_guard"] is None and load_run_policy(run_dir).roi_guard is None
    meta_path.write_text(json.dumps({**meta, "roi_guard": {"tau": 0.0, "gain": -1.0}}))
    with pytest.raises(ValueError, match="roi_guard is not a valid ROI guard"):
        load_run_policy(run_dir)
