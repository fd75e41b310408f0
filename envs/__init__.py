"""The budgetgym simulator: batched numpy core, Gymnasium env and vector views, scenarios.

Needs only the core dependencies (numpy, scipy, numba, gymnasium): the Stable-Baselines3 view
``BudgetVecEnv`` (``budgetgym[train]``) is imported on first access, so that importing the
environment does not import torch.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym

from budgetgym.envs.budget_env import MultiChannelBudgetEnv
from budgetgym.envs.campaigns import BatchedCampaigns, channel_slice, obs_index
from budgetgym.envs.channels import CHANNEL_NAMES, DEFAULT_CHANNELS, ChannelSpec
from budgetgym.envs.core import ACTION_DIM, REWARD_MODES, action_to_spend_request
from budgetgym.envs.features import (
    CHANNEL_FEATURES,
    DEFAULT_LAYOUT,
    GLOBAL_FEATURES,
    OBS_DIM,
    OBS_FEATURES,
    ObservationLayout,
)
from budgetgym.envs.response_curves import ResponseCurvesSpec, fit_curves
from budgetgym.envs.scenarios import (
    EVAL_SEED_START,
    HORIZON_HOURS,
    SCENARIO_NAMES,
    SCENARIOS,
    TRAIN_SEED_LIMIT,
    VALIDATION_SEED_START,
    CampaignParams,
    check_scenario,
    resolve_scenario,
    sample_campaigns,
    scenario_description,
)
from budgetgym.envs.vector import MultiChannelBudgetVectorEnv

ENV_ID = "budgetgym/MultiChannelBudget-v1"
#: Env ids of markets this version no longer simulates, refused by ``gym.make`` and by the
#: checkpoint and export loaders with :func:`retired_env_message`.
RETIRED_ENV_IDS = ("budgetgym/MultiChannelBudget-v0",)


def retired_env_message(env_id: str) -> str:
    """Why ``env_id`` (a retired market's id) is refused, naming the one to use instead."""
    return (
        f"{env_id} is retired: this budgetgym simulates {ENV_ID}, the market with customer "
        "states, pre-sale storage, competition, the product's ROI contract, long delays and "
        f"drift (README, 'What changed in v1'). Make {ENV_ID} and retrain; policies and "
        f"figures of {env_id} do not carry over."
    )


def _make_retired(env_id: str, **_kwargs: Any) -> None:
    raise gym.error.DeprecatedEnv(retired_env_message(env_id))


def __getattr__(name: str) -> Any:
    """``BudgetVecEnv``, imported on first access (it needs Stable-Baselines3)."""
    if name == "BudgetVecEnv":
        try:
            from budgetgym.envs.sb3_vec_env import BudgetVecEnv
        except ModuleNotFoundError as error:
            raise ImportError(
                f"BudgetVecEnv needs Stable-Baselines3 ({error.name} is missing): "
                'pip install "budgetgym[train]".'
            ) from error
        return BudgetVecEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register_envs() -> None:
    """Register ``budgetgym/MultiChannelBudget-v1`` with gymnasium, and the retired ids as
    entries whose ``make`` fails naming v1 (idempotent)."""
    if ENV_ID in gym.registry:
        return
    gym.register(
        id=ENV_ID,
        entry_point="budgetgym.envs.budget_env:MultiChannelBudgetEnv",
        vector_entry_point="budgetgym.envs.vector:MultiChannelBudgetVectorEnv",
    )
    for env_id in RETIRED_ENV_IDS:
        make_retired = functools.partial(_make_retired, env_id)
        gym.register(id=env_id, entry_point=make_retired, vector_entry_point=make_retired)


__all__ = [
    "ACTION_DIM",
    "CHANNEL_FEATURES",
    "CHANNEL_NAMES",
    "DEFAULT_CHANNELS",
    "DEFAULT_LAYOUT",
    "ENV_ID",
    "RETIRED_ENV_IDS",
    "EVAL_SEED_START",
    "GLOBAL_FEATURES",
    "HORIZON_HOURS",
    "OBS_DIM",
    "OBS_FEATURES",
    "REWARD_MODES",
    "ResponseCurvesSpec",
    "SCENARIOS",
    "SCENARIO_NAMES",
    "TRAIN_SEED_LIMIT",
    "VALIDATION_SEED_START",
    "BatchedCampaigns",
    "BudgetVecEnv",
    "CampaignParams",
    "ChannelSpec",
    "MultiChannelBudgetEnv",
    "MultiChannelBudgetVectorEnv",
    "ObservationLayout",
    "action_to_spend_request",
    "check_scenario",
    "fit_curves",
    "channel_slice",
    "obs_index",
    "register_envs",
    "resolve_scenario",
    "sample_campaigns",
    "scenario_description",
]
