"""Residual policies: the base rule, the training wrapper, run loading and the ONNX export."""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from budgetgym.agents.baselines import (
    HIGH_PRICE_CNY,
    make_baseline,
    obs_rule_actions,
)
from budgetgym.agents.channel_set import DEFAULT_CHANNEL_SET
from budgetgym.agents.checkpoints import (
    load_checkpoint,
    load_run_policy,
    resolve_checkpoint,
    save_checkpoint,
)
from budgetgym.agents.config import RuleBase, validate_config
from budgetgym.agents.evaluation import evaluate
from budgetgym.agents.export import OnnxPolicy, export_onnx
from budgetgym.agents.residual import (
    RESIDUAL_BASES,
    ActionDecayPolicy,
    ResidualAction,
    add_residual,
    base_action,
    base_action_torch,
    residual_base_of,
)
from budgetgym.agents.training import make_train_env, resume, train
from budgetgym.envs import (
    ACTION_DIM,
    OBS_DIM,
    BatchedCampaigns,
    BudgetVecEnv,
    action_to_spend_request,
)
from budgetgym.envs.campaigns import channel_slice, obs_index
from budgetgym.envs.scenarios import REFERENCE_PRICE_CNY

TINY = {
    "total_timesteps": 384,
    "residual_base": "obs_pacing",
    "env": {"scenario": "mixed", "n_envs": 8, "horizon_hours": 24},
    "hyperparams": {"n_steps": 24, "batch_size": 64, "n_epochs": 2, "learning_rate": 1.0e-3},
    "eval": {"eval_freq": 0, "n_eval_episodes": 4, "references": False, "final_episodes": 0},
    "checkpoint": {"save_freq": 0},
}
EVAL = {"scenario": "hit_product", "episodes": 16, "seed_start": 1_000_000, "progress": False,
        "horizon_hours": 24}  # fmt: skip

PAYS_PER_SALE = DEFAULT_CHANNEL_SET.per_sale


def trajectory_obs(n: int = 64) -> np.ndarray:
    """Observations of a week of campaigns under random actions."""
    campaigns = BatchedCampaigns("mixed")
    obs, _ = campaigns.reset(np.arange(n))
    rng = np.random.default_rng(0)
    seen = [obs]
    for _ in range(168):
        obs, _, _, _ = campaigns.step(rng.uniform(-1, 1, (n, ACTION_DIM)))
        seen.append(obs)
    return np.concatenate(seen)


def test_base_is_a_valid_action_and_a_pure_function_of_the_observation() -> None:
    obs = trajectory_obs()
    actions = base_action("obs_pacing", obs)
    assert actions.shape == (len(obs), ACTION_DIM) and actions.dtype == np.float32
    assert np.isfinite(actions).all() and np.abs(actions).max() <= 1.0
    np.testing.assert_array_equal(base_action("obs_pacing", obs[::-1]), actions[::-1])
    np.testing.assert_array_equal(add_residual("obs_pacing", obs, np.zeros_like(actions)), actions)
    assert np.abs(add_residual("obs_pacing", obs, np.ones_like(actions))).max() <= 1.0
    with pytest.raises(ValueError, match="residual base"):
        base_action("pid", obs)
    with pytest.raises(ValueError, match=f"\\(n, {OBS_DIM}\\)"):
        base_action("obs_pacing", obs[:, :-1])
    with pytest.raises(ValueError, match="split 'thompsom'"):
        obs_rule_actions(obs, split="thompsom")


@pytest.mark.parametrize("base", RESIDUAL_BASES[1:])
def test_base_is_one_function_on_numpy_arrays_and_torch_tensors(base: str) -> None:
    """The rule (numpy) and the residual base inside the policy and its export (torch) run the
    same array-API code: the same actions to float32 rounding."""
    obs = trajectory_obs(16)
    obs[::2, obs_index("log_price")] = np.log(2 * HIGH_PRICE_CNY / REFERENCE_PRICE_CNY)
    on_numpy = make_baseline(base).predict(obs)[0]
    on_torch = base_action_torch(base, torch.from_numpy(obs))
    assert isinstance(on_torch, torch.Tensor) and on_torch.dtype == torch.float32
    np.testing.assert_allclose(on_torch.numpy(), on_numpy, rtol=0, atol=1e-6)


def test_base_paces_and_throttles_like_pid_pacing() -> None:
    """Behind even pacing it speeds up, below the ROI target it slows down, and it favours
    channels with a higher delay-corrected ROI."""
    obs = np.zeros((3, OBS_DIM), dtype=np.float32)
    obs[:, obs_index("budget_left_frac")] = 0.5
    obs[:, obs_index("progress")] = 0.5
    obs[1, obs_index("pace_gap")] = 0.05  # behind even pacing
    obs[2, obs_index("log_matured_roi")] = -0.3  # below target
    obs[0, channel_slice("log_matured_roi")] = [0.4, 0, 0, 0, 0, 0]  # search pays best
    request = action_to_spend_request(base_action("obs_pacing", obs), np.full(3, 1e4), 84)
    paid = request[:, ~PAYS_PER_SALE].sum(axis=1)
    assert paid[1] > paid[0] > paid[2]
    assert request[0, 0] > 2 * request[0, 1]
    assert (request[:, PAYS_PER_SALE] > 0).all()  # pay-per-sale channels stay on


def test_unthrottled_base_paces_on_the_pace_gap_alone() -> None:
    """Below the ROI target ``obs_pacing`` slows down; ``obs_pacing_unthrottled`` keeps the pace
    it has at the target, and splits the spend as ``obs_pacing`` does."""
    obs = np.zeros((3, OBS_DIM), dtype=np.float32)
    obs[:, obs_index("budget_left_frac")] = 0.5
    obs[:, obs_index("progress")] = 0.5
    obs[1, obs_index("log_matured_roi")] = -0.3  # below target
    obs[2, obs_index("pace_gap")] = 0.05  # behind even pacing
    obs[:, channel_slice("log_matured_roi")] = [0.4, 0, 0, -0.2, 0, 0]
    budget = np.full(3, 1e4)
    throttled = action_to_spend_request(base_action("obs_pacing", obs), budget, 84)
    request = action_to_spend_request(base_action("obs_pacing_unthrottled", obs), budget, 84)
    paid = request[:, ~PAYS_PER_SALE].sum(axis=1)
    np.testing.assert_allclose(paid[1], paid[0], rtol=1e-6)
    assert paid[2] > paid[0] and paid[1] > 2 * throttled[1, ~PAYS_PER_SALE].sum()
    np.testing.assert_allclose(request[0], throttled[0], rtol=1e-6)  # at the target: the same
    shares = request[:, ~PAYS_PER_SALE] / paid[:, None]
    np.testing.assert_allclose(shares[1], shares[0], rtol=1e-5)


def test_configs_name_exactly_the_residual_bases() -> None:
    assert typing.get_args(RuleBase) == RESIDUAL_BASES
    for base in RESIDUAL_BASES[1:]:
        assert make_baseline(base).name == base  # each base is also a leaderboard rule


def test_thompson_base_explores_unmeasured_channels_and_throttles_only_before_a_promotion() -> None:
    """``obs_thompson`` splits evenly among channels it knows nothing about, gives nearly all the
    spend to a well-measured best channel, and slows down below the ROI target only while a
    promotion is on the calendar (where it paces exactly as ``obs_pacing``)."""
    obs = np.zeros((5, OBS_DIM), dtype=np.float32)
    obs[:, obs_index("budget_left_frac")] = 0.5
    obs[:, obs_index("progress")] = 0.5
    obs[:, obs_index("hours_to_event")] = 1.0  # no event within the horizon
    obs[1:3, channel_slice("log_matured_roi")] = [0.4, 0, 0, 0, 0, 0]
    obs[2, channel_slice("cum_spend_frac")] = 0.2  # 34 hours of even pacing each: measured
    obs[3:, obs_index("log_matured_roi")] = -0.3  # below target
    obs[4, obs_index("hours_to_event")] = 0.25  # a promotion in 42 hours
    budget = np.full(5, 1e4)
    request = action_to_spend_request(base_action("obs_thompson", obs), budget, 84)
    paid = request[:, ~PAYS_PER_SALE]
    shares = paid / paid.sum(axis=1, keepdims=True)
    n_paid = int((~PAYS_PER_SALE).sum())
    np.testing.assert_allclose(shares[0], 1.0 / n_paid, atol=0.06)  # nothing measured
    assert 0.3 < shares[1, 0] < 0.9  # a better estimate, still uncertain
    assert shares[2, 0] > 1.0 - 0.02 * n_paid  # measured: the rest is the exploration floor
    assert (shares > 0.015).all()
    unthrottled = action_to_spend_request(base_action("obs_pacing_unthrottled", obs), budget, 84)
    throttled = action_to_spend_request(base_action("obs_pacing", obs), budget, 84)
    total = paid.sum(axis=1)
    np.testing.assert_allclose(total[3], unthrottled[3, ~PAYS_PER_SALE].sum(), rtol=1e-5)
    np.testing.assert_allclose(total[4], throttled[4, ~PAYS_PER_SALE].sum(), rtol=1e-5)
    assert total[4] < 0.5 * total[3]


def test_price_aware_base_splits_by_thompson_below_the_price_threshold_and_by_roi_above() -> None:
    obs = np.zeros((4, OBS_DIM), dtype=np.float32)
    obs[:, obs_index("budget_left_frac")] = 0.5
    obs[:, obs_index("progress")] = 0.5
    obs[:, obs_index("hours_to_event")] = 1.0  # no event within the horizon
    obs[:, channel_slice("log_matured_roi")] = [0.4, 0, 0, -0.2, 0, 0]
    obs[:, channel_slice("cum_spend_frac")] = 0.2
    price_cny = np.array([80.0, HIGH_PRICE_CNY * 0.99, HIGH_PRICE_CNY * 1.01, 6_000.0])
    obs[:, obs_index("log_price")] = np.log(price_cny / REFERENCE_PRICE_CNY)
    actions = base_action("obs_price_aware", obs)
    cheap, dear = slice(0, 2), slice(2, 4)
    np.testing.assert_array_equal(actions[cheap], base_action("obs_thompson", obs)[cheap])
    np.testing.assert_allclose(
        actions[dear], base_action("obs_pacing_unthrottled", obs)[dear], atol=1e-6
    )
    assert not np.allclose(actions[1], actions[2], atol=1e-3)  # the two splits differ here


def test_wrapper_with_zero_corrections_plays_the_base_rule() -> None:
    venv = ResidualAction(BudgetVecEnv(8, scenario="hit_product", horizon_hours=24), "obs_pacing")
    assert residual_base_of(venv) == "obs_pacing"
    venv.seed(5)
    obs = venv.reset()
    rule = make_baseline("obs_pacing")
    campaigns = BatchedCampaigns("hit_product", horizon_hours=24)
    direct, _ = campaigns.reset(venv.venv.campaigns.params.seeds)
    np.testing.assert_array_equal(obs, direct)
    for _ in range(24):
        venv.step_async(np.zeros((8, ACTION_DIM), dtype=np.float32))
        obs, reward, done, _ = venv.step_wait()
        direct, r, _, _ = campaigns.step(rule.predict(direct)[0])
        np.testing.assert_allclose(reward, r)
    assert done.all()


@pytest.fixture(scope="module", params=["obs_pacing", "obs_pacing_unthrottled", "obs_price_aware"])
def residual_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short residual run on each split of the bases (the base is the run's
    ``config.residual_base``; ``obs_price_aware`` runs ``obs_thompson``'s split below its price
    threshold and ``obs_pacing_unthrottled``'s above)."""
    run_dir = tmp_path_factory.mktemp("residual") / "run"
    config = validate_config({**TINY, "residual_base": request.param})
    train(config, run_dir, progress=False, log=lambda _: None)
    return run_dir


def base_of(run_dir: Path) -> str:
    return validate_config(yaml.safe_load((run_dir / "config.yaml").read_text())).residual_base


def test_logits_get_their_own_initial_noise(tmp_path: Path) -> None:
    config = validate_config(
        {**TINY, "total_timesteps": 192,
         "hyperparams": {**TINY["hyperparams"], "n_epochs": 1, "learning_rate": 1e-6,
                         "policy_kwargs": {"log_std_init": -0.5, "log_std_init_logits": -2.0}}}
    )  # fmt: skip
    train(config, tmp_path / "run", progress=False, log=lambda _: None)
    log_std = load_run_policy(tmp_path / "run").model.policy.log_std.detach().numpy()
    np.testing.assert_allclose(log_std, [-0.5] + [-2.0] * (ACTION_DIM - 1), atol=1e-3)


def test_action_weight_decay_pulls_only_the_action_head_and_survives_resume(
    tmp_path: Path,
) -> None:
    hyperparams = {**TINY["hyperparams"], "policy_kwargs": {"action_weight_decay": 2.0}}
    config = validate_config({**TINY, "total_timesteps": 192, "hyperparams": hyperparams})
    train(config, tmp_path / "run", progress=False, log=lambda _: None)
    model = load_checkpoint(resolve_checkpoint(tmp_path / "run")).model
    policy = model.policy
    assert isinstance(policy, ActionDecayPolicy) and policy.action_weight_decay == 2.0
    # With zero gradients and no momentum only the decay moves parameters: the head shrinks,
    # nothing else moves.
    before = {name: p.detach().clone() for name, p in policy.named_parameters()}
    policy.optimizer.state.clear()
    for p in policy.parameters():
        p.grad = torch.zeros_like(p)
    lr = policy.optimizer.param_groups[1]["lr"]
    policy.optimizer.step()
    for name, p in policy.named_parameters():
        decay = 1.0 - lr * 2.0 if name.startswith("action_net") else 1.0
        torch.testing.assert_close(p.detach(), before[name] * decay)
    # The optimizer's two parameter groups load back on resume.
    resumed = resume(tmp_path / "run", total_timesteps=384, progress=False, log=lambda _: None)
    final = load_checkpoint(tmp_path / "run" / "final").model
    assert resumed.num_timesteps >= 384 and final.num_timesteps == resumed.num_timesteps
    assert isinstance(final.policy, ActionDecayPolicy)
    assert len(final.policy.optimizer.param_groups) == 2


def test_action_weight_decay_is_ppo_only() -> None:
    with pytest.raises(ValueError, match="action_weight_decay"):
        validate_config(
            {"algorithm": "sac", "hyperparams": {"policy_kwargs": {"action_weight_decay": 1.0}}}
        )
    with pytest.raises(ValueError, match="action_weight_decay"):
        validate_config({"hyperparams": {"policy_kwargs": {"action_weight_decay": -1.0}}})


def test_residual_run_loads_with_its_base(residual_run: Path) -> None:
    base = base_of(residual_run)
    policy = load_run_policy(residual_run)
    assert policy.residual_base == base
    # With the network's correction zeroed, the trained policy is exactly the base rule.
    checkpoint = resolve_checkpoint(residual_run)
    run_config = validate_config({**TINY, "residual_base": base})
    # The env's stack names the base, which the saved metadata records.
    loaded = load_checkpoint(checkpoint, env=make_train_env(run_config, seed=0))
    assert loaded.meta["residual_base"] == base
    with torch.no_grad():
        loaded.model.policy.action_net.weight.zero_()
        loaded.model.policy.action_net.bias.zero_()
    save_checkpoint(loaded.model, loaded.vecnormalize, checkpoint)
    as_run = evaluate(load_run_policy(residual_run), **EVAL).summary
    as_rule = evaluate(make_baseline(base), **EVAL).summary
    assert as_run["gmv_mean"] == pytest.approx(as_rule["gmv_mean"], rel=1e-9)


def test_residual_onnx_matches_predict(residual_run: Path, tmp_path: Path) -> None:
    checkpoint = resolve_checkpoint(residual_run)
    run_config = validate_config({**TINY, "residual_base": base_of(residual_run)})
    # The env's stack names the base, which the saved metadata records.
    loaded = load_checkpoint(checkpoint, env=make_train_env(run_config, seed=0))
    with torch.no_grad():  # large corrections, so that the sum exercises the clipping
        loaded.model.policy.action_net.weight.normal_(0.0, 0.5)
    save_checkpoint(loaded.model, loaded.vecnormalize, checkpoint)
    onnx_path = export_onnx(residual_run, tmp_path / "policy.onnx")
    obs = trajectory_obs(8)
    # Half the rows priced above obs_price_aware's threshold (these 8 campaigns are all below it),
    # so the graph is checked on both of its splits.
    obs[::2, obs_index("log_price")] = np.log(2 * HIGH_PRICE_CNY / REFERENCE_PRICE_CNY)
    expected, _ = load_run_policy(residual_run).predict(obs)
    actual, _ = OnnxPolicy(onnx_path).predict(obs)
    assert np.abs(actual - expected).max() <= 1e-5
    assert (np.abs(actual) == 1.0).any()
    assert not np.allclose(expected, base_action(base_of(residual_run), obs), atol=1e-3)


def test_unknown_residual_base_in_a_checkpoint_fails_clearly(residual_run: Path) -> None:
    import json

    meta_path = resolve_checkpoint(residual_run) / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "residual_base": "magic"}))
    try:
        with pytest.raises(ValueError, match="residual base"):
            load_run_policy(residual_run)
    finally:
        meta_path.write_text(json.dumps(meta))
