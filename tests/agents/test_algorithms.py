"""The algorithm registry: lookups, refusals, and an algorithm registered by one call that
trains, loads, evaluates and exports through the normal pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pytest
from pydantic import Field, StrictFloat

from budgetgym.agents.algorithms import (
    ALGORITHMS,
    AlgorithmSpec,
    algorithm_spec,
    register_algorithm,
    unregister_algorithm,
)
from budgetgym.agents.checkpoints import read_meta, resolve_checkpoint
from budgetgym.agents.config import TrainConfig, validate_config
from budgetgym.agents.evaluation import simulate
from budgetgym.agents.export import OnnxPolicy, export_onnx
from budgetgym.agents.hyperparams import HyperParams, PolicyKwargs, PositiveInt
from budgetgym.agents.policy import load_policy
from budgetgym.agents.training import train
from budgetgym.envs.scenarios import EVAL_SEED_START
from tests.agents.tiny_runs import quiet, tiny


class A2CParams(HyperParams):
    """A few arguments of ``stable_baselines3.A2C``."""

    learning_rate: Annotated[StrictFloat, Field(gt=0)] = 7.0e-4
    lr_schedule: Literal["constant", "linear"] = "constant"
    n_steps: PositiveInt = 5
    gamma: Annotated[StrictFloat, Field(gt=0, le=1)] = 0.99
    policy_kwargs: PolicyKwargs = PolicyKwargs()


@pytest.fixture
def a2c() -> Iterator[AlgorithmSpec]:
    spec = register_algorithm(AlgorithmSpec("a2c", A2CParams, "stable_baselines3:A2C"))
    yield spec
    unregister_algorithm("a2c")


def test_builtin_algorithms_are_registered() -> None:
    assert list(ALGORITHMS) == ["ppo", "sac", "recurrent_ppo", "dagger", "ars"]
    assert algorithm_spec("recurrent_ppo").recurrent
    assert algorithm_spec("sac").replay_buffer
    assert algorithm_spec("dagger").model_class().__name__ == "DAgger"
    assert algorithm_spec("ars").model_class().__name__ == "RandomSearch"


def test_unknown_algorithm_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown algorithm 'ppo2' \\(did you mean 'ppo'\\?\\)"):
        algorithm_spec("ppo2")
    with pytest.raises(ValueError, match="valid: ppo, sac, recurrent_ppo, dagger, ars"):
        validate_config({"algorithm": "a2c"})


def test_registration_refuses_a_taken_name_and_a_bad_entry_point() -> None:
    with pytest.raises(ValueError, match="'ppo' is already registered"):
        register_algorithm(AlgorithmSpec("ppo", A2CParams, "stable_baselines3:A2C"))
    with pytest.raises(ValueError, match="entry_point must be 'module:Class'"):
        AlgorithmSpec("a2c", A2CParams, "stable_baselines3.A2C")


def test_registered_algorithm_validates_with_its_own_schema(a2c: AlgorithmSpec) -> None:
    config = validate_config({"algorithm": "a2c", "hyperparams": {"n_steps": 8}})
    assert isinstance(config.hyperparams, A2CParams)
    assert config.sb3_kwargs()["n_steps"] == 8
    with pytest.raises(ValueError, match="hyperparams.n_epochs: unknown key"):
        validate_config({"algorithm": "a2c", "hyperparams": {"n_epochs": 3}})
    with pytest.raises(ValueError, match="privileged_critic applies to algorithm ppo only"):
        validate_config(
            {"algorithm": "a2c", "hyperparams": {"policy_kwargs": {"privileged_critic": True}}}
        )
    assert TrainConfig.model_validate(config.model_dump()) == config


def test_registered_algorithm_trains_and_evaluates(a2c: AlgorithmSpec, tmp_path: Path) -> None:
    data = {**tiny(), "algorithm": "a2c", "total_timesteps": 240, "hyperparams": {"n_steps": 6}}
    config = validate_config(data)
    result = train(config, tmp_path / "run", progress=False, log=quiet)
    assert result.num_timesteps >= 240
    assert read_meta(resolve_checkpoint(tmp_path / "run"))["algorithm"] == "a2c"
    policy = load_policy(str(tmp_path / "run"))
    assert type(policy.model).__name__ == "A2C"
    run = simulate(policy, "hit_product", 4, EVAL_SEED_START, progress=False, horizon_hours=24)
    gmv = np.array([row["gmv"] for row in run.episodes])
    assert gmv.shape == (4,) and np.all(np.isfinite(gmv)) and gmv.sum() > 0
    obs = np.random.default_rng(0).normal(size=(64, policy.channels.obs_dim)).astype(np.float32)
    expected, _ = policy.predict(obs, deterministic=True)
    actual, _ = OnnxPolicy(export_onnx(tmp_path / "run")).predict(obs)
    assert np.abs(actual - expected).max() <= 1e-5
