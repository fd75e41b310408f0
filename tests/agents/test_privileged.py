"""The privileged critic: the critic reads the campaigns' true parameters, the actor never does,
and the served policy (evaluation, ONNX export) is the actor on the normal observation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml

from budgetgym.agents.checkpoints import load_run_policy, read_meta, resolve_checkpoint
from budgetgym.agents.config import validate_config
from budgetgym.agents.export import OnnxPolicy, export_onnx
from budgetgym.agents.privileged import (
    PrivilegedCriticPolicy,
    PrivilegedObservation,
    privileged_dim,
    privileged_features,
)
from budgetgym.agents.training import make_train_env, read_evaluations, resume, train
from budgetgym.envs import OBS_DIM
from tests.agents.test_export import observations, scale_action_head
from tests.agents.tiny_runs import quiet, tiny

N_PRIVILEGED = privileged_dim(6)
CONFIG = tiny(
    env={"scenario": ["hit_product", "new_product_cold_start"], "n_envs": 4},
    residual_base="obs_pacing",
    hyperparams={"policy_kwargs": {"privileged_critic": True, "exclude_features": ["last_hour"]}},
    eval={"final_episodes": 0},
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few hundred steps of training through the pipeline (validation and checkpoints on)."""
    path = tmp_path_factory.mktemp("privileged") / "run"
    train(validate_config(CONFIG), path, progress=False, log=quiet)
    scale_action_head(path, CONFIG, "action_net", 30.0)  # spread the actions over the range
    return path


def inputs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normal observations (normalized scale) and privileged features, ``(n, OBS_DIM)`` and
    ``(n, N_PRIVILEGED)``."""
    rng = np.random.default_rng(seed)
    obs = torch.as_tensor(rng.normal(size=(n, OBS_DIM)), dtype=torch.float32)
    return obs, torch.as_tensor(rng.normal(size=(n, N_PRIVILEGED)), dtype=torch.float32)


def test_the_actor_never_reads_a_privileged_input(run_dir: Path) -> None:
    policy = load_run_policy(run_dir).model.policy
    assert isinstance(policy, PrivilegedCriticPolicy)
    obs, privileged = inputs(64, 0)
    full = torch.cat([obs, privileged], dim=1).requires_grad_(True)
    mean = policy.get_distribution(full).distribution.mean
    mean.square().sum().backward()
    assert torch.count_nonzero(full.grad[:, OBS_DIM:]) == 0  # exactly zero
    assert torch.count_nonzero(full.grad[:, :OBS_DIM]) > 0
    # Any privileged values, NaN included, leave the actions bit for bit unchanged.
    _, other = inputs(64, 1)
    actions = [
        policy.predict(torch.cat([obs, p], dim=1).numpy(), deterministic=True)[0]
        for p in (privileged, other, torch.full_like(other, float("nan")))
    ]
    np.testing.assert_array_equal(actions[0], actions[1])
    np.testing.assert_array_equal(actions[0], actions[2])
    assert np.isfinite(actions[0]).all()


def test_the_critic_reads_the_privileged_inputs(run_dir: Path) -> None:
    policy = load_run_policy(run_dir).model.policy
    obs, privileged = inputs(64, 0)
    full = torch.cat([obs, privileged], dim=1).requires_grad_(True)
    policy.predict_values(full).sum().backward()
    assert (full.grad[:, OBS_DIM:].abs().sum(dim=1) > 0).all()
    _, other = inputs(64, 1)
    with torch.no_grad():
        values = [policy.predict_values(torch.cat([obs, p], dim=1)) for p in (privileged, other)]
    assert not torch.allclose(values[0], values[1])


def test_the_wrapper_appends_each_campaigns_true_parameters() -> None:
    venv = PrivilegedObservation(make_train_env(validate_config(CONFIG), seed=0))
    assert venv.observation_space.shape == (OBS_DIM + N_PRIVILEGED,)
    obs = venv.reset()
    expected = np.concatenate([privileged_features(e.campaigns.params) for e in venv.envs])
    np.testing.assert_array_equal(obs[:, OBS_DIM:], expected)
    assert np.abs(expected).max() < 6 and np.abs(expected).mean() < 1.5  # about unit range
    assert len(np.unique(expected[:, -1])) == len(expected)  # per campaign (its target)
    for _ in range(CONFIG["env"]["horizon_hours"]):
        obs, _, done, infos = venv.step(np.zeros((4, 7), dtype=np.float32))
        if not done.all():
            np.testing.assert_array_equal(obs[:, OBS_DIM:], expected)
    assert done.all()  # the campaigns ended: the terminal observation keeps their parameters
    np.testing.assert_array_equal(infos[0]["terminal_observation"][OBS_DIM:], expected[0])
    assert infos[0]["terminal_observation"].shape == (OBS_DIM + N_PRIVILEGED,)
    assert not np.array_equal(obs[:, OBS_DIM:], expected)  # new campaigns, new parameters


def test_checkpoint_records_it_and_export_serves_the_actor_alone(
    run_dir: Path, tmp_path: Path
) -> None:
    meta = read_meta(resolve_checkpoint(run_dir))
    assert meta["privileged_critic"] is True and meta["obs_dim"] == OBS_DIM
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["hyperparams"]["policy_kwargs"]["privileged_critic"] is True
    onnx_path = export_onnx(run_dir, tmp_path / "policy.onnx")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (graph_input,) = session.get_inputs()
    env = make_train_env(validate_config(CONFIG), seed=0)
    assert graph_input.shape[1:] == list(env.observation_space.shape) == [OBS_DIM]
    obs = observations(400)
    expected, _ = load_run_policy(run_dir).predict(obs)
    actual, _ = OnnxPolicy(onnx_path).predict(obs)
    assert np.abs(actual - expected).max() <= 1e-5
    assert (np.abs(expected) == 1.0).any(), "the observations should exercise the clipping"
    sidecar = json.loads(onnx_path.with_suffix(".json").read_text())
    assert sidecar["input"]["shape"] == ["batch", OBS_DIM] and "recurrent" not in sidecar


def test_trains_resumes_and_evaluates_on_held_out_campaigns(run_dir: Path) -> None:
    from budgetgym.agents.evaluation import evaluate
    from budgetgym.agents.policy import load_policy

    assert [r["num_timesteps"] for r in read_evaluations(run_dir)] == [96, 192]
    result = resume(run_dir, total_timesteps=288, progress=False, log=quiet)
    assert result.num_timesteps == 288
    summary = evaluate(
        load_policy(str(run_dir)), "hit_product", 8, seed_start=1_000_000, progress=False,
        horizon_hours=24,
    ).summary  # fmt: skip
    assert np.isfinite([summary["gmv_mean"], summary["roi_mean"]]).all()
    assert summary["gmv_mean"] > 0


@pytest.mark.parametrize("algorithm", ["sac", "recurrent_ppo"])
def test_other_algorithms_refuse_it_in_one_sentence(algorithm: str) -> None:
    data = {"algorithm": algorithm, "hyperparams": {"policy_kwargs": {"privileged_critic": True}}}
    with pytest.raises(ValueError, match="privileged_critic applies to algorithm ppo only"):
        validate_config(data)
    with pytest.raises(ValueError, match="privileged_critic: input should be a valid boolean"):
        validate_config({"hyperparams": {"policy_kwargs": {"privileged_critic": "yes"}}})
