"""The bundled experiment configs build their SB3 models (beyond validating, see test_config)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.vec_env import VecNormalize

from budgetgym.agents.algorithms import ALGORITHMS
from budgetgym.agents.checkpoints import (
    ObsNormalizer,
    SB3Policy,
    algorithm_name,
    new_model,
    quiet_render_mode_warning,
)
from budgetgym.agents.config import EXPERIMENTS_DIR, load_config
from budgetgym.agents.training import make_train_env
from budgetgym.envs import ACTION_DIM

CONFIGS = sorted(EXPERIMENTS_DIR.glob("*.yaml"))


def test_every_algorithm_has_a_bundled_config() -> None:
    algorithms = {load_config(path).algorithm for path in CONFIGS}
    assert algorithms == set(ALGORITHMS) == {"ppo", "sac", "recurrent_ppo", "dagger", "ars"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_bundled_config_builds_its_model_and_acts(path: Path) -> None:
    config = load_config(path)
    with quiet_render_mode_warning():
        venv = VecNormalize(
            make_train_env(config, seed=0),
            gamma=config.hyperparams.gamma,
            **config.normalize.model_dump(),
        )
    model = new_model(config, venv)
    assert algorithm_name(model) == config.algorithm
    obs = venv.reset()
    policy = SB3Policy(model, ObsNormalizer.from_vecnormalize(venv), path.stem)
    actions, _ = policy.predict(venv.get_original_obs())
    assert obs.shape[0] == config.env.n_envs and actions.shape == (config.env.n_envs, ACTION_DIM)
    assert np.isfinite(actions).all() and np.abs(actions).max() <= 1.0
