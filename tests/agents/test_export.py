"""ONNX export: the exported graph reproduces the SB3 policy's deterministic predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from budgetgym.agents.checkpoints import (
    load_checkpoint,
    load_run_policy,
    resolve_checkpoint,
    save_checkpoint,
)
from budgetgym.agents.config import validate_config
from budgetgym.agents.export import OnnxPolicy, export_onnx
from budgetgym.agents.features import excluded_indices
from budgetgym.agents.training import make_train_env, train
from budgetgym.envs import ACTION_DIM, OBS_DIM, BatchedCampaigns

TINY = {
    "total_timesteps": 384,
    "env": {"scenario": "mixed", "n_envs": 8, "horizon_hours": 24},
    "hyperparams": {"n_steps": 24, "batch_size": 64, "n_epochs": 2, "learning_rate": 1.0e-3},
    "eval": {"eval_freq": 0, "n_eval_episodes": 4, "references": False, "final_episodes": 0},
    "checkpoint": {"save_freq": 0},
}


SAC_TINY = {
    **TINY,
    "algorithm": "sac",
    "total_timesteps": 192,
    "residual_base": "obs_pacing",
    "hyperparams": {"learning_starts": 128, "buffer_size": 1000, "batch_size": 32,
                    "gradient_steps": 1, "policy_kwargs": {"net_arch": [32, 32]}},
}  # fmt: skip


def scale_action_head(run_dir: Path, config: dict, head: str, factor: float) -> None:
    """Multiply the weights of the policy's layer ``head`` (a dotted attribute path) in place.

    A briefly trained policy has near-zero actions; a scaled head spreads them over the action
    range, so that the tests exercise the clipping or squashing baked into the graph.
    """
    checkpoint = resolve_checkpoint(run_dir)
    loaded = load_checkpoint(checkpoint, env=make_train_env(validate_config(config), seed=0))
    layer = loaded.model.policy
    for name in head.split("."):
        layer = getattr(layer, name)
    with torch.no_grad():
        layer.weight.mul_(factor)
    save_checkpoint(loaded.model, loaded.vecnormalize, checkpoint)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    run_dir = tmp_path_factory.mktemp("export") / "run"
    train(validate_config(TINY), run_dir, progress=False, log=lambda _: None)
    scale_action_head(run_dir, TINY, "action_net", 30.0)
    return run_dir, export_onnx(run_dir)


def observations(n: int = 1000) -> np.ndarray:
    """Real observations from many campaigns and hours, plus out-of-distribution noise."""
    campaigns = BatchedCampaigns("mixed", horizon_hours=24)
    obs, _ = campaigns.reset(np.arange(n // 4))
    rng = np.random.default_rng(0)
    batches = [obs]
    for _ in range(3):
        actions = rng.uniform(-1, 1, size=(n // 4, ACTION_DIM))
        obs, _, _, _ = campaigns.step(actions)
        batches.append(obs)
    real = np.concatenate(batches)
    real[::5] += rng.normal(0.0, 5.0, size=real[::5].shape).astype(np.float32)  # hits clipping
    return real.astype(np.float32)


def test_onnx_matches_sb3_predict(exported: tuple[Path, Path]) -> None:
    run_dir, onnx_path = exported
    obs = observations(1000)
    assert obs.shape == (1000, OBS_DIM)
    expected, _ = load_run_policy(run_dir).predict(obs, deterministic=True)
    actual, _ = OnnxPolicy(onnx_path).predict(obs)
    assert actual.shape == (1000, ACTION_DIM)
    assert np.abs(actual - expected).max() <= 1e-5
    assert np.abs(actual).max() <= 1.0  # clipping is in the graph
    assert (np.abs(actual) == 1.0).any(), "test observations should exercise the clipping"


def test_sac_onnx_matches_sb3_predict(tmp_path: Path) -> None:
    """SAC exports its squashed mean action, here with a residual base added in the graph."""
    run_dir = tmp_path / "run"
    train(validate_config(SAC_TINY), run_dir, progress=False, log=lambda _: None)
    scale_action_head(run_dir, SAC_TINY, "actor.mu", 30.0)
    policy = load_run_policy(run_dir)
    assert type(policy.model).__name__ == "SAC" and policy.residual_base == "obs_pacing"
    obs = observations(1000)
    expected, _ = policy.predict(obs, deterministic=True)
    onnx_path = export_onnx(run_dir)
    actual, _ = OnnxPolicy(onnx_path).predict(obs)
    assert np.abs(actual - expected).max() <= 1e-5
    correction, _ = policy.model.predict(policy.normalizer(obs), deterministic=True)
    assert (np.abs(correction) > 0.99).mean() > 0.05, "the test should reach tanh's tails"
    assert not np.allclose(actual, correction, atol=0.1)  # the residual base is in the graph
    stochastic, _ = policy.predict(obs, deterministic=False)
    assert not np.allclose(stochastic, expected)  # the deterministic action is really the mean
    assert json.loads(onnx_path.with_suffix(".json").read_text())["algorithm"] == "sac"


def test_sidecar_describes_spaces_scenario_and_versions(exported: tuple[Path, Path]) -> None:
    _, onnx_path = exported
    meta = json.loads(onnx_path.with_suffix(".json").read_text())
    assert meta["input"]["shape"] == ["batch", OBS_DIM]
    assert meta["action_space"]["shape"] == [ACTION_DIM]
    assert meta["scenario"] == "mixed"
    assert {"torch", "stable_baselines3", "budgetgym"} <= set(meta["versions"])


def test_exported_policy_evaluates_like_the_run(exported: tuple[Path, Path]) -> None:
    from budgetgym.agents.evaluation import evaluate
    from budgetgym.agents.policy import load_policy

    run_dir, onnx_path = exported
    kwargs = {"scenario": "hit_product", "episodes": 8, "seed_start": 1_000_000,
              "progress": False, "horizon_hours": 24}  # fmt: skip
    from_run = evaluate(load_policy(str(run_dir)), **kwargs).summary
    from_onnx = evaluate(load_policy(str(onnx_path)), **kwargs).summary
    for key in ("gmv_mean", "roi_mean", "roi_violation_rate", "budget_utilization_mean"):
        assert from_onnx[key] == pytest.approx(from_run[key], rel=1e-6), key


def test_compare_tells_apart_policies_named_alike(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    from budgetgym.agents.baselines import make_baseline
    from budgetgym.agents.evaluation import compare

    _, onnx_path = exported
    copies = []
    for folder in ("a", "b"):  # the same file name in two folders: two policies, two labels
        (tmp_path / folder).mkdir()
        for sidecar in onnx_path.parent.glob(f"{onnx_path.stem}*"):
            shutil.copy(sidecar, tmp_path / folder / sidecar.name)
        copies.append(str(tmp_path / folder / onnx_path.name))
    kwargs = {"progress": False, "horizon_hours": 24}
    rows = compare(copies, ["hit_product"], 2, 1_000_000, tmp_path / "out", **kwargs)
    labels = [r["policy"] for r in rows if "paired" in r]
    assert len(labels) == 2 and labels[1] == f"b/{labels[0]}"
    assert rows[-1]["gmv_mean"] == rows[-2]["gmv_mean"]
    with pytest.raises(ValueError, match="has the name of another policy"):
        compare([], ["hit_product"], 2, 1_000_000, tmp_path / "out2",
                extra_policies={"uniform": make_baseline("uniform")}, **kwargs)  # fmt: skip


def test_onnx_policy_rejects_wrong_inputs(exported: tuple[Path, Path], tmp_path: Path) -> None:
    _, onnx_path = exported
    policy = OnnxPolicy(onnx_path)
    with pytest.raises(ValueError, match=f"shape \\(n, {OBS_DIM}\\)"):
        policy.predict(np.zeros((3, OBS_DIM - 1), dtype=np.float32))
    # A sidecar from another environment version.
    copy = tmp_path / "other.onnx"
    copy.write_bytes(onnx_path.read_bytes())
    meta = json.loads(onnx_path.with_suffix(".json").read_text())
    copy.with_suffix(".json").write_text(json.dumps({**meta, "obs_dim": OBS_DIM + 4}))
    with pytest.raises(ValueError, match="another observation layout"):
        OnnxPolicy(copy)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 not onnx")
    with pytest.raises(ValueError, match="not a valid ONNX model"):
        OnnxPolicy(garbage)
    with pytest.raises(FileNotFoundError):
        OnnxPolicy(tmp_path / "missing.onnx")


def test_export_cli(
    exported: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from budgetgym.agents.checkpoints import describe_checkpoint
    from budgetgym.scripts.cli import main

    run_dir, _ = exported
    out = tmp_path / "policy.onnx"
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(out)]) == 0
    assert out.is_file() and out.with_suffix(".json").is_file()
    used = describe_checkpoint(run_dir)  # the message names the checkpoint and its step
    assert f"Exported {used} of {run_dir}" in capsys.readouterr().out
    assert f"at step {used.step:,}" in str(used)
    assert main(["export", str(tmp_path / "nowhere")]) == 2
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["algorithm"] == "ppo"


def test_gsde_policy_exports_its_mean_action(tmp_path: Path) -> None:
    """With ``use_sde`` the deterministic action is still the actor's mean: ONNX matches."""
    config = validate_config(
        {**TINY, "hyperparams": {**TINY["hyperparams"], "use_sde": True, "sde_sample_freq": 4}}
    )
    run_dir = tmp_path / "run"
    train(config, run_dir, progress=False, log=lambda _: None)
    policy = load_run_policy(run_dir)
    assert policy.model.use_sde
    obs = observations(200)
    expected, _ = policy.predict(obs, deterministic=True)
    actual, _ = OnnxPolicy(export_onnx(run_dir)).predict(obs)
    assert np.abs(actual - expected).max() <= 1e-5
    stochastic, _ = policy.predict(obs, deterministic=False)
    assert not np.allclose(stochastic, expected)  # the exploration noise is really on


def test_policy_reading_a_subset_of_the_observation_trains_exports_and_ignores_the_rest(
    tmp_path: Path,
) -> None:
    hyperparams = {**TINY["hyperparams"], "policy_kwargs": {"exclude_features": ["last_hour"]}}
    config = validate_config({**TINY, "hyperparams": hyperparams})
    run_dir = tmp_path / "run"
    train(config, run_dir, progress=False, log=lambda _: None)
    policy = load_run_policy(run_dir)
    dropped = excluded_indices(["last_hour"])
    assert policy.model.policy.features_extractor.features_dim == OBS_DIM - dropped.size == 41
    obs = observations(200)
    expected, _ = policy.predict(obs)
    changed = obs.copy()
    changed[:, dropped] += 3.0
    np.testing.assert_array_equal(policy.predict(changed)[0], expected)
    kept = np.setdiff1d(np.arange(OBS_DIM), dropped)
    changed = obs.copy()
    changed[:, kept[kept != 0]] += 3.0
    assert not np.allclose(policy.predict(changed)[0], expected)
    actual, _ = OnnxPolicy(export_onnx(run_dir)).predict(obs)
    assert np.abs(actual - expected).max() <= 1e-5
