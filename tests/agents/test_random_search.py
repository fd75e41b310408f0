"""Augmented Random Search (``algorithm: ars``): batched candidates, the update, the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import VecNormalize

from budgetgym.agents.checkpoints import RunPaths, new_model, quiet_render_mode_warning
from budgetgym.agents.config import ARSConfig, validate_config
from budgetgym.agents.imitation import mean_action
from budgetgym.agents.policy import load_policy
from budgetgym.agents.random_search import RandomSearchTrainer
from budgetgym.agents.training import make_train_env, train
from budgetgym.envs import ACTION_DIM, OBS_DIM, BatchedCampaigns
from budgetgym.envs.campaigns import roi_target_missed
from budgetgym.envs.scenarios import TRAIN_SEED_LIMIT
from tests.agents.tiny_runs import check_policy_runs_anywhere, wait_for_file, write_config

HORIZON = 24


def tiny(**ars: object) -> dict:
    """A tiny ARS run on 24-hour campaigns of two scenarios (6 per candidate), Lagrangian."""
    return {
        "algorithm": "ars",
        "seed": 3,
        "total_timesteps": 3 * 2 * 3 * 6 * HORIZON,  # three generations
        "env": {"scenario": ["hit_product", "new_product_cold_start"], "scenario_weights": [2, 1],
                "n_envs": 6, "horizon_hours": HORIZON},
        "hyperparams": {"n_steps": 24, "batch_size": 48,
                        "policy_kwargs": {"net_arch": {"pi": [8], "vf": [8]}}},
        "ars": {"n_delta": 3, "n_top": 2, **ars},
        "lagrangian": {"constraint": "miss_rate", "target": 0.1, "initial_lambda": 0.5},
        "normalize": {"norm_reward": False},
        "eval": {"eval_freq": 1, "n_eval_episodes": 4, "references": False, "final_episodes": 0},
        "checkpoint": {"save_freq": 0},
    }  # fmt: skip


def trainer_of(data: dict) -> RandomSearchTrainer:
    config = validate_config(data)
    with quiet_render_mode_warning():
        venv = VecNormalize(make_train_env(config, seed=0), norm_reward=False)
    return RandomSearchTrainer(new_model(config, venv), config)


def test_ars_config_is_validated():
    assert validate_config({"algorithm": "ars"}).ars == ARSConfig()
    assert validate_config({"algorithm": "ppo"}).ars is None
    with pytest.raises(ValueError, match="ars applies to algorithm ars only"):
        validate_config({"algorithm": "ppo", "ars": {"n_delta": 8}})
    with pytest.raises(ValueError, match=r"n_top \(5\) must be at most n_delta \(4\)"):
        validate_config({"algorithm": "ars", "ars": {"n_delta": 4, "n_top": 5}})
    with pytest.raises(ValueError, match="ars.delta_std"):
        validate_config({"algorithm": "ars", "ars": {"delta_std": 0.0}})
    for key, value in (("residual_base", "obs_pacing"), ("env", {"paired_baseline": "obs_pacing"})):
        with pytest.raises(ValueError, match="does not apply to algorithm ars"):
            validate_config({"algorithm": "ars", key: value})


def test_candidates_play_the_same_training_campaigns_with_their_own_weights():
    """Every candidate's action is the actor's mean action under its own weights, and the
    candidates meet the same campaigns: equal weights score equally, campaign by campaign."""
    trainer = trainer_of(tiny())
    theta = trainer.weights()
    other = theta + 0.5 * torch.randn(len(theta), generator=torch.Generator().manual_seed(0))
    candidates = torch.stack([theta, other, theta])
    # The batched forward pass against the policy's own, one candidate at a time.
    campaigns = BatchedCampaigns("hit_product", horizon_hours=HORIZON)
    obs, _ = campaigns.reset(np.tile(np.arange(5), 3))
    actions = trainer.actions(candidates, obs)
    normalized = trainer.vecnorm.normalize_obs(obs)
    for i, weights in enumerate(candidates):
        trainer.load(weights)
        own = mean_action(trainer.model.policy, torch.as_tensor(normalized[5 * i : 5 * i + 5]))
        expected = np.clip(own.detach().numpy(), -1, 1)
        np.testing.assert_allclose(actions[5 * i : 5 * i + 5], expected, atol=1e-6)
    # Common random numbers: the same weights on the same seeds end the same.
    result = trainer.play(candidates, generation=0)
    assert result.returns[0] == result.returns[2] != result.returns[1]
    np.testing.assert_array_equal(result.missed[0], result.missed[2])
    assert result.missed.shape == result.costs.shape == (3, 6)
    # The campaigns are training campaigns, fresh each generation, split 2:1 over scenarios.
    seeds = [trainer.seeds(g) for g in range(3)]
    assert [len(s) for s in seeds[0]] == [4, 2]
    flat = np.concatenate([np.concatenate(s) for s in seeds])
    assert len(np.unique(flat)) == len(flat) and flat.max() < TRAIN_SEED_LIMIT


def test_the_return_is_gmv_per_budget_less_lambda_per_miss():
    trainer = trainer_of(tiny())
    trainer.vecnorm.obs_rms.update = lambda _: None  # the replay below meets the same inputs
    candidates = trainer.weights()[None]
    result = trainer.play(candidates, generation=1)
    gmv_per_budget, missed = [], []
    for campaigns, seeds in zip(trainer.campaigns, trainer.seeds(1), strict=True):
        obs, _ = campaigns.reset(seeds)
        for _ in range(HORIZON):
            obs, _, _, info = campaigns.step(trainer.actions(candidates, obs))
        gmv_per_budget.append(info["gmv_total"] / info["budget"])
        missed.append(roi_target_missed(info["gmv_total"], info["target_roi"], info["spend_total"]))
    gmv, miss = np.concatenate(gmv_per_budget), np.concatenate(missed)
    np.testing.assert_array_equal(result.missed[0], miss)
    lam = trainer.lagrangian.controller.multiplier
    assert lam == 0.5
    assert result.returns[0] == pytest.approx(np.mean(gmv - lam * miss), rel=1e-6)


def test_one_generation_steps_along_the_kept_directions():
    """theta' = theta + lr / (n_top sd) * sum over the kept directions of (r+ - r-) delta."""
    trainer = trainer_of(tiny(n_delta=3, n_top=2, learning_rate=0.1, delta_std=0.2))
    theta = trainer.weights().clone()
    played = []
    original = trainer.play
    trainer.play = lambda c, g: played.append((c.clone(), original(c, g))) or played[-1][1]
    scalars = trainer.step(generation=0)
    candidates, generation = played[0]
    deltas = (candidates[:3] - theta) / 0.2
    np.testing.assert_allclose(candidates[3:], theta - 0.2 * deltas, atol=1e-6)
    returns = torch.as_tensor(generation.returns, dtype=theta.dtype)
    plus, minus = returns[:3], returns[3:]
    top = torch.argsort(torch.maximum(plus, minus), descending=True)[:2]
    sd = torch.cat([plus[top], minus[top]]).std()
    expected = theta + 0.1 / (2 * sd) * ((plus[top] - minus[top]) @ deltas[top])
    np.testing.assert_allclose(trainer.weights(), expected, rtol=1e-5, atol=1e-7)
    assert scalars["ars/step_size"] == pytest.approx(float(0.1 / (2 * sd)), rel=1e-6)
    # The generation's campaigns (6 candidates x 6) are the constraint's measurement.
    assert trainer.lagrangian._pending_campaigns == 6 * 6


def test_ars_run_moves_lambda_evaluates_and_exports_with_parity(tmp_path: Path):
    config = validate_config(tiny())
    run_dir = tmp_path / "run"
    result = train(config, run_dir, progress=False, log=lambda _: None)
    assert result.num_timesteps == config.total_timesteps and not result.interrupted
    records = (run_dir / "evaluations.jsonl").read_text().splitlines()
    assert len(records) == 3  # validated after every generation
    state = json.loads((run_dir / "final" / "lagrangian.json").read_text())
    assert state["multiplier"] != 0.5 and state["pending_campaigns"] == 0
    check_policy_runs_anywhere(run_dir, "RandomSearch", HORIZON)


def test_an_imitation_warm_start_hands_ars_the_fitted_actor_and_its_statistics(tmp_path: Path):
    """With an imitation section, behaviour cloning fits the actor before the first generation,
    and the observation statistics stay those of its states: the generations' own observations
    (thousands) do not move them, as they do without the warm start."""
    imitation = {"bc_campaigns": 8, "iterations": 0, "epochs": 2, "holdout_frac": 0.25}
    lines: list[str] = []
    config = validate_config({**tiny(), "imitation": imitation})
    result = train(config, tmp_path / "warm", progress=False, log=lines.append)
    assert result.num_timesteps == config.total_timesteps
    assert [line for line in lines if line.startswith("Imitation stage 0")]
    warm = np.load(tmp_path / "warm" / "final" / "vecnormalize.npz")
    assert warm["obs_count"] == 8 * HORIZON
    train(validate_config(tiny()), tmp_path / "cold", progress=False, log=lines.append)
    cold = np.load(tmp_path / "cold" / "final" / "vecnormalize.npz")
    assert cold["obs_count"] >= config.total_timesteps  # every candidate's observations


def test_ctrl_c_saves_a_policy_and_says_ars_does_not_resume(tmp_path: Path):
    data = tiny()
    data["total_timesteps"] = 1_000 * 2 * 3 * 6 * HORIZON  # far more than the test waits for
    config = write_config(tmp_path, data)
    proc = subprocess.Popen(
        [sys.executable, "-m", "budgetgym.scripts.cli", "train", "--config", str(config),
         "--run-dir", "run", "--no-progress"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "400"},
    )  # fmt: skip
    run = RunPaths(tmp_path / "run")
    wait_for_file(run.evaluations, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "ars does not resume: train it anew with --overwrite" in out
    assert "--resume" not in out
    (saved,) = run.list_checkpoints()
    action, _ = load_policy(str(saved)).predict(np.zeros((2, OBS_DIM), dtype=np.float32))
    assert action.shape == (2, ACTION_DIM)
