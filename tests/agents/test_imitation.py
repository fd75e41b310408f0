"""Imitation of the planner: training-seed datasets, behaviour cloning, DAgger, the dagger run."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import VecNormalize

from budgetgym.agents.checkpoints import ObsNormalizer, SB3Policy, new_model
from budgetgym.agents.config import validate_config
from budgetgym.agents.imitation import (
    ActorFit,
    Imitation,
    attach_imitation,
    collect,
    load_teacher,
    mean_action,
    teacher_action,
)
from budgetgym.agents.planner import PlannerPolicy
from budgetgym.agents.training import make_train_env, resume, train
from budgetgym.envs import BatchedCampaigns
from budgetgym.envs.core import MAX_PACE_MULT, action_to_spend_request
from budgetgym.envs.scenarios import (
    EVAL_SEED_START,
    TRAIN_SEED_LIMIT,
    VALIDATION_SEED_START,
    training_seeds,
)
from tests.agents.tiny_runs import check_policy_runs_anywhere

HORIZON = 24
IMITATION = {
    "bc_campaigns": 32, "iterations": 0, "campaigns_per_iteration": 16, "epochs": 40,
    "patience": 5, "batch_size": 128, "learning_rate": 3.0e-3, "holdout_frac": 0.25,
}  # fmt: skip


def tiny(algorithm: str = "ppo", residual_base: str = "none", **imitation: object) -> dict:
    """A tiny run of ``algorithm`` on 24-hour hit_product campaigns with an imitation section."""
    data = {
        "algorithm": algorithm,
        "residual_base": residual_base,
        "env": {"scenario": "hit_product", "n_envs": 4, "horizon_hours": HORIZON},
        "hyperparams": {"n_steps": 24, "batch_size": 48, "n_epochs": 1,
                        "policy_kwargs": {"net_arch": {"pi": [64, 64], "vf": [32]}}},
        "eval": {"eval_freq": 1, "n_eval_episodes": 4, "references": False, "final_episodes": 0},
        "checkpoint": {"save_freq": 0},
        "imitation": {**IMITATION, **imitation},
    }  # fmt: skip
    if algorithm == "ppo":
        data["total_timesteps"] = 96
    return data


def model_of(config: dict):
    """A fresh model of ``config`` on its training env under ``VecNormalize``."""
    train_config = validate_config(config)
    venv = VecNormalize(make_train_env(train_config, seed=0))
    return new_model(train_config, venv), train_config


def test_datasets_use_training_seeds_only():
    for seed in (VALIDATION_SEED_START, EVAL_SEED_START, -1):
        with pytest.raises(ValueError, match=f"got seed {seed:,}"):
            training_seeds(np.array([3, seed]), "Imitation data")
        with pytest.raises(ValueError, match="Imitation data must use training seeds"):
            collect("hit_product", np.array([seed]), horizon_hours=HORIZON)
    model, config = model_of(tiny(iterations=3))
    trainer = Imitation(model, config.model_copy(update={"seed": 799_999}))
    seeds = np.concatenate([s for stage in trainer.stage_seeds for s in stage])
    assert len(seeds) == 32 + 3 * 16
    assert len(np.unique(seeds)) == len(seeds)  # every stage plays fresh campaigns
    assert seeds.min() >= 0 and seeds.max() < TRAIN_SEED_LIMIT


def test_labels_request_the_planners_spend():
    """The label requests the planner's spend, or its split at the fastest pace where the
    planner spends more than the action can express."""
    campaigns = BatchedCampaigns("double11_promotion")  # the surge is in the week
    planner = PlannerPolicy()
    obs, _ = campaigns.reset(np.arange(32))
    planner.reset(campaigns)
    capped_seen = 0
    horizon = campaigns.horizon_hours
    for hour in range(horizon):
        spend = planner.spend(obs)
        action, capped = teacher_action(spend, campaigns)
        left = campaigns.state.budget_left_cny
        request = action_to_spend_request(action, left, horizon - hour)
        total = spend.sum(axis=1)
        fastest = MAX_PACE_MULT * left / (horizon - hour)
        np.testing.assert_array_equal(capped, total > fastest)
        expected = spend * np.minimum(1.0, fastest / np.maximum(total, 1e-12))[:, None]
        np.testing.assert_allclose(request.sum(axis=1), expected.sum(axis=1), rtol=1e-6)
        # The split is the planner's, up to shares below 0.25% of the largest (the logit floor).
        tolerance = 0.02 * expected.sum(axis=1, keepdims=True)
        assert np.all(np.abs(request - expected) <= tolerance + 1e-9)
        capped_seen += capped.sum()
        obs, _, _, _ = campaigns.step(action)
    assert capped_seen > 0, "the test should meet a spend beyond the fastest pace"


def test_behaviour_cloning_moves_the_student_to_the_planners_actions():
    """A residual PPO actor warm-started by behaviour cloning: the held-out loss falls and its
    deployed actions (rule + correction) approach the planner's in the training states."""
    model, config = model_of(tiny(residual_base="obs_price_aware"))
    stages = attach_imitation(model, config, log=lambda _: None)
    assert len(stages) == 1
    fit = stages[0].fit
    assert fit.validation_loss < 0.5 * fit.validation_loss_before
    seeds = Imitation(model, config).stage_seeds[0][0]
    gap_before = stages[0].student_action_gap  # the untrained student on the same states
    data, _ = collect("hit_product", seeds, horizon_hours=HORIZON)
    assert data.obs.shape == (32 * HORIZON, model.observation_space.shape[0])
    normalizer = ObsNormalizer.from_vecnormalize(model.get_vec_normalize_env())
    student = SB3Policy(model, normalizer, "student", "obs_price_aware")
    own, _ = student.predict(data.obs)
    gap_after = float(np.abs(own - data.actions).mean())
    assert gap_after < 0.6 * gap_before


@pytest.mark.parametrize("tau", [0.5, 0.2])
def test_a_cautious_student_learns_the_paces_expectile(tau: float):
    """Where identical-looking states carry paces of -0.5 and +0.5 alike, the fitted pace is
    their ``tau``-expectile, 0.5 (2 tau - 1): the mean at 0.5, -0.3 at 0.2 (the cautious side);
    the channel logits keep the squared error's mean."""
    model, config = model_of(tiny(pace_expectile=tau))
    fitter = ActorFit(model.policy, config.imitation, seed=0)
    rng = np.random.default_rng(0)
    n, width = 4096, model.action_space.shape[0]
    obs = np.zeros((n, model.observation_space.shape[0]), dtype=np.float32)
    target = np.zeros((n, width), dtype=np.float32)
    target[:, 0] = rng.choice([-0.5, 0.5], n)
    target[:, 1:] = rng.choice([-0.2, 0.4], (n, width - 1))
    fitter.fit(obs, target, holdout=np.arange(n) % 4 == 0)
    mean = mean_action(model.policy, torch.zeros(1, obs.shape[1]))[0].detach().numpy()
    assert mean[0] == pytest.approx(0.5 * (2 * tau - 1), abs=0.03)
    np.testing.assert_allclose(mean[1:], 0.1, atol=0.03)


def test_a_more_careful_teacher_asks_for_no_faster_a_pace():
    """``teacher_alpha`` below planner_cc's 0.05 widens its ROI margin: in the same first-hour
    states it asks for no faster a pace, and a slower one where the target binds."""
    seeds = np.arange(64)
    first_hour, paces = {}, {}
    for alpha in (None, 0.02):
        data, _ = collect(
            "hit_product", seeds, teacher="planner_cc", teacher_alpha=alpha, horizon_hours=HORIZON
        )
        first_hour[alpha] = data.obs[: len(seeds)]
        paces[alpha] = data.actions[: len(seeds), 0]
    np.testing.assert_array_equal(first_hour[None], first_hour[0.02])
    assert np.all(paces[0.02] <= paces[None] + 1e-6)
    assert (paces[0.02] < paces[None] - 1e-3).sum() >= 4
    with pytest.raises(ValueError, match="the teacher is 'planner'"):
        load_teacher("planner", 0.02)


def test_a_teacher_without_a_margin_for_its_alpha_fails_before_training():
    model, config = model_of(tiny("dagger", teacher="planner_cc", teacher_alpha=0.02))
    Imitation(model, config)  # hit_product is calibrated down to 0% misses
    data = tiny("dagger", teacher="planner_cc", teacher_alpha=0.02)
    data["env"]["scenario"] = "double11_promotion"  # its curve ends at 4.5% misses
    model, config = model_of(data)
    with pytest.raises(ValueError, match="planner_cc cannot play double11_promotion: alpha 0.02"):
        Imitation(model, config)


def test_a_dagger_iteration_adds_the_states_the_student_visits_labelled_by_the_planner():
    model, config = model_of(tiny("dagger", iterations=1, beta_decay=0.0, epochs=10))
    trainer = Imitation(model, config)
    stages = trainer.stages()
    bc = next(stages)
    bc_data = trainer.data
    weights = copy.deepcopy(model.policy.state_dict())  # the student that plays the iteration
    iteration = next(stages)
    model.policy.load_state_dict(weights)
    student = trainer.student()
    assert iteration.beta == 0.0  # the student alone plays
    assert len(trainer.data) == len(bc_data) + 16 * HORIZON
    np.testing.assert_array_equal(trainer.data.obs[: len(bc_data)], bc_data.obs)
    new_obs = trainer.data.obs[len(bc_data) :]
    new_labels = trainer.data.actions[len(bc_data) :]
    seeds = trainer.stage_seeds[1][0]
    # Replay: the student (as it was during the iteration) plays the campaigns, a planner
    # follows along; the states are the student's and the labels the planner's there.
    campaigns = BatchedCampaigns("hit_product", horizon_hours=HORIZON)
    planner = PlannerPolicy()
    obs, _ = campaigns.reset(seeds)
    planner.reset(campaigns)
    for hour in range(HORIZON):
        rows = slice(hour * len(seeds), (hour + 1) * len(seeds))
        np.testing.assert_array_equal(new_obs[rows], obs)
        label, _ = teacher_action(planner.spend(obs), campaigns)
        np.testing.assert_allclose(new_labels[rows], label, atol=1e-6)
        own, _ = student.predict(obs)
        obs, _, _, _ = campaigns.step(own)
    # ... which are not the states the planner would have led the campaigns to.
    planner_states, _ = collect("hit_product", seeds, horizon_hours=HORIZON)
    assert not np.allclose(planner_states.obs, new_obs)
    assert bc.fit.validation_loss < bc.fit.validation_loss_before


def test_dagger_run_evaluates_and_exports_with_parity(tmp_path: Path):
    config = validate_config(tiny("dagger", iterations=1, bc_campaigns=16, epochs=5))
    assert config.total_timesteps == (16 + 16) * HORIZON
    run_dir = tmp_path / "run"
    result = train(config, run_dir, progress=False, log=lambda _: None)
    assert result.num_timesteps == config.total_timesteps and not result.interrupted
    records = (run_dir / "evaluations.jsonl").read_text().splitlines()
    assert len(records) == 2  # the student validated after behaviour cloning and the iteration
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    check_policy_runs_anywhere(run_dir, "DAgger", HORIZON)


def test_imitation_config_is_validated():
    config = validate_config(tiny("dagger", iterations=2))
    assert config.total_timesteps == (32 + 2 * 16) * HORIZON
    assert validate_config({"algorithm": "dagger"}).imitation.iterations == 4
    with pytest.raises(ValueError, match="leave it out"):
        validate_config({**tiny("dagger"), "total_timesteps": 1000})
    with pytest.raises(ValueError, match="imitation applies to algorithms ppo, dagger, ars only"):
        validate_config({**tiny(), "algorithm": "sac", "hyperparams": {}})
    with pytest.raises(ValueError, match="imitation.beta_decay"):
        validate_config(tiny("dagger", beta_decay=1.5))
    with pytest.raises(ValueError, match="imitation.pace_expectile"):
        validate_config(tiny("dagger", pace_expectile=1.0))
    with pytest.raises(ValueError, match="teacher_alpha is planner_cc's risk"):
        validate_config(tiny("dagger", teacher_alpha=0.02))
    with pytest.raises(ValueError, match="imitation.teacher_alpha"):
        validate_config(tiny("dagger", teacher="planner_cc", teacher_alpha=0.5))
    with pytest.raises(ValueError, match="did you mean 'iterations'"):
        validate_config(tiny("dagger", iteration=2))


def test_ppo_run_with_an_imitation_section_fits_the_actor_before_ppo(tmp_path: Path):
    lines: list[str] = []
    config = validate_config(tiny(bc_campaigns=8, iterations=1, campaigns_per_iteration=8,
                                  epochs=2))  # fmt: skip
    train(config, tmp_path / "run", progress=False, log=lines.append)
    stages = [line for line in lines if line.startswith("Imitation stage")]
    assert len(stages) == 2 and "beta 0.50" in stages[1]
    assert list((tmp_path / "run" / "tb" / "imitation").glob("events.out.tfevents.*"))
    # PPO keeps the observation statistics the actor was fitted on: those of the 8 behaviour-
    # cloning campaigns, through training and a resume; the return statistics move on.
    bc_states = 8 * HORIZON
    final = np.load(tmp_path / "run" / "final" / "vecnormalize.npz")
    assert final["obs_count"] == bc_states and final["ret_count"] > 0
    resume(tmp_path / "run", total_timesteps=192, progress=False, log=lines.append)
    resumed = np.load(tmp_path / "run" / "final" / "vecnormalize.npz")
    assert resumed["obs_count"] == bc_states and resumed["ret_count"] > final["ret_count"]
    for key in ("obs_mean", "obs_var"):
        np.testing.assert_array_equal(resumed[key], final[key])


def test_a_privileged_critic_warm_starts_from_the_observation_alone():
    data = tiny()
    data["hyperparams"]["policy_kwargs"]["privileged_critic"] = True
    model, config = model_of(data)
    (stage,) = attach_imitation(model, config, log=lambda _: None)
    assert stage.fit.validation_loss < stage.fit.validation_loss_before
    with pytest.raises(ValueError, match="privileged_critic applies to algorithm ppo only"):
        validate_config({**data, "algorithm": "dagger", "total_timesteps": 32 * HORIZON})
