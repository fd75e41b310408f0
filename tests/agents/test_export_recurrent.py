"""ONNX export of a recurrent PPO policy: the LSTM state is a graph input and output, and
OnnxPolicy carries it over whole campaigns as the SB3 model does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from budgetgym.agents.checkpoints import load_run_policy
from budgetgym.agents.config import validate_config
from budgetgym.agents.export import OnnxPolicy, export_onnx
from budgetgym.agents.training import train
from budgetgym.envs import ACTION_DIM, OBS_DIM, BatchedCampaigns
from tests.agents.test_export import TINY, scale_action_head

HIDDEN = 8
RECURRENT_TINY = {
    **TINY,
    "algorithm": "recurrent_ppo",
    "total_timesteps": 192,
    "residual_base": "obs_pacing",
    "hyperparams": {
        **TINY["hyperparams"],
        "n_epochs": 1,
        "policy_kwargs": {"lstm_hidden_size": HIDDEN, "enable_critic_lstm": True},
    },
}


@pytest.fixture(scope="module")
def recurrent_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    run_dir = tmp_path_factory.mktemp("export_recurrent") / "run"
    train(validate_config(RECURRENT_TINY), run_dir, progress=False, log=lambda _: None)
    scale_action_head(run_dir, RECURRENT_TINY, "action_net", 30.0)  # reach the clipping
    return run_dir, export_onnx(run_dir)


def test_graph_takes_and_returns_the_actor_lstm_state(
    recurrent_export: tuple[Path, Path],
) -> None:
    _, onnx_path = recurrent_export
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    assert list(inputs) == ["obs", "hidden", "cell", "episode_start"]
    assert list(outputs) == ["action", "hidden_out", "cell_out"]
    assert inputs["obs"][1] == OBS_DIM and inputs["hidden"][0::2] == [1, HIDDEN]
    assert outputs["cell_out"][0::2] == [1, HIDDEN] and outputs["action"][1] == ACTION_DIM
    meta = json.loads(onnx_path.with_suffix(".json").read_text())
    assert meta["algorithm"] == "recurrent_ppo"
    assert meta["recurrent"]["inputs"]["hidden"]["shape"] == [1, "batch", HIDDEN]
    assert meta["recurrent"]["outputs"]["cell_out"]["shape"] == [1, "batch", HIDDEN]


def test_onnx_matches_predict_with_state_over_whole_campaigns(
    recurrent_export: tuple[Path, Path],
) -> None:
    """Two consecutive batches of whole held-out campaigns; the second starts with
    ``episode_start`` set and the state left over from the first, which both must zero."""
    run_dir, onnx_path = recurrent_export
    policy = load_run_policy(run_dir)
    model = policy.model
    exported = OnnxPolicy(onnx_path)
    campaigns = BatchedCampaigns("mixed", horizon_hours=24)
    n = 12
    state = None
    differs_from_fresh_state = clipped = False
    for episode in range(2):
        obs, _ = campaigns.reset(np.arange(n) + 1_000_000 + n * episode)
        start = np.ones(n, dtype=bool)
        done = np.zeros(n, dtype=bool)
        while not done.all():
            norm = policy.normalizer(obs)
            expected, state = model.predict(
                norm, state=state, episode_start=start, deterministic=True
            )
            fresh, _ = model.predict(norm, episode_start=np.ones(n, bool), deterministic=True)
            differs_from_fresh_state |= not np.allclose(expected, fresh, atol=1e-3)
            expected = np.clip(expected + policy_base(policy, obs), -1.0, 1.0)
            actual, _ = exported.predict(obs, episode_start=start)
            assert np.abs(actual - expected).max() <= 1e-5
            for mine, theirs in zip(exported.state, state, strict=True):
                assert np.abs(mine - theirs).max() <= 1e-5
            clipped |= bool((np.abs(expected) == 1.0).any())
            obs, _, done, _ = campaigns.step(expected)
            start = np.zeros(n, dtype=bool)
    assert differs_from_fresh_state, "the LSTM state should change the actions"
    assert clipped, "the actions should reach the clipping baked into the graph"


def policy_base(policy, obs: np.ndarray) -> np.ndarray:
    """The residual base's action of ``policy`` for raw observations."""
    from budgetgym.agents.residual import base_action

    return base_action(policy.residual_base, obs, policy.channels)


def test_onnx_policy_carries_and_resets_the_state_like_sb3_policy(
    recurrent_export: tuple[Path, Path],
) -> None:
    """Without ``episode_start`` both wrappers start at the first call and after ``reset``,
    and keep the state in between; the evaluation harness gets the same metrics."""
    from budgetgym.agents.evaluation import evaluate
    from budgetgym.agents.policy import load_policy

    run_dir, onnx_path = recurrent_export
    sb3, exported = load_run_policy(run_dir), OnnxPolicy(onnx_path)
    campaigns = BatchedCampaigns("hit_product", horizon_hours=24)
    for policy in (sb3, exported):
        policy.reset(campaigns)
    obs, _ = campaigns.reset(np.arange(5) + 1_000_000)
    for _ in range(6):
        expected, _ = sb3.predict(obs)
        actual, _ = exported.predict(obs)
        assert np.abs(actual - expected).max() <= 1e-5
        obs, _, _, _ = campaigns.step(expected)
    before_reset, _ = exported.predict(obs)
    exported.reset(campaigns)
    sb3.reset(campaigns)
    after_reset, _ = exported.predict(obs)
    assert np.abs(after_reset - sb3.predict(obs)[0]).max() <= 1e-5
    assert not np.allclose(after_reset, before_reset, atol=1e-4)

    kwargs = {"scenario": "hit_product", "episodes": 6, "seed_start": 1_000_000,
              "progress": False, "horizon_hours": 24}  # fmt: skip
    from_run = evaluate(load_policy(str(run_dir)), **kwargs).summary
    from_onnx = evaluate(load_policy(str(onnx_path)), **kwargs).summary
    for key in ("gmv_mean", "roi_mean", "roi_violation_rate"):
        assert from_onnx[key] == pytest.approx(from_run[key], rel=1e-6), key


def test_export_cli_writes_a_recurrent_policy(
    recurrent_export: tuple[Path, Path], tmp_path: Path
) -> None:
    from budgetgym.scripts.cli import main

    run_dir, _ = recurrent_export
    out = tmp_path / "lstm.onnx"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    assert OnnxPolicy(out).recurrent and OnnxPolicy(out).state_shape == (1, HIDDEN)
