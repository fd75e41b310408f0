"""The gymnasium ``VectorEnv`` view of the batched core (the Stable-Baselines3 ``VecEnv`` view,
:class:`~budgetgym.envs.sb3_vec_env.BudgetVecEnv`, shares its seeding).

Both views step all campaigns with one numpy call (no Python loop per env). All campaigns of a batch
share the horizon, so they end together and are reset together (autoreset in the same step:
the returned observation is the new episode's first, the final one is in the info).

Seeds: ``reset(seed=s)`` starts campaigns ``s, s+1, ..., s+n-1``; later episodes draw campaign
seeds from a generator seeded with ``s``, always in the training range (< 900,000).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space

from budgetgym.envs.budget_env import action_space, observation_space
from budgetgym.envs.campaigns import BatchedCampaigns
from budgetgym.envs.scenarios import HORIZON_HOURS, TRAIN_SEED_LIMIT


class CampaignSeeder:
    """Campaign seeds for successive episodes of ``n_envs`` campaigns."""

    def __init__(self, n_envs: int) -> None:
        self.n_envs = n_envs
        self.rng = np.random.default_rng()

    def first(self, seed: int | None) -> np.ndarray:
        """Seeds of the first episode: ``seed + arange(n)``, or random training seeds."""
        if seed is None:
            return self.next()
        self.rng = np.random.default_rng(seed)
        return int(seed) + np.arange(self.n_envs)

    def next(self) -> np.ndarray:
        """Seeds of the next episode, drawn from the training range."""
        return self.rng.integers(0, TRAIN_SEED_LIMIT, size=self.n_envs)


def check_num_envs(num_envs: int) -> int:
    """``num_envs`` as an int; ``ValueError`` below 1."""
    if int(num_envs) < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
    return int(num_envs)


class MultiChannelBudgetVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` campaigns as a gymnasium ``VectorEnv`` (autoreset mode ``SAME_STEP``).

    Accepts the same keyword arguments as ``MultiChannelBudgetEnv``. ``reset`` accepts
    ``options={"campaign_seeds": [...]}`` to choose each campaign explicitly.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        scenario: str = "hit_product",
        reward_mode: str = "gmv_roi_penalty",
        roi_penalty_coef: float = 1.0,
        horizon_hours: int = HORIZON_HOURS,
    ) -> None:
        num_envs = check_num_envs(num_envs)
        self.campaigns = BatchedCampaigns(scenario, reward_mode, roi_penalty_coef, horizon_hours)
        self.num_envs = num_envs
        self.single_observation_space = observation_space()
        self.single_action_space = action_space()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.seeder = CampaignSeeder(self.num_envs)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        seeds = (options or {}).get("campaign_seeds")
        if seeds is None:
            seeds = self.seeder.first(seed)
        elif len(seeds) != self.num_envs:
            raise ValueError(f"campaign_seeds needs {self.num_envs} seeds, got {len(seeds)}.")
        return self.campaigns.reset(seeds)

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        obs, reward, done, info = self.campaigns.step(actions)
        if done.all():
            final = {"final_obs": obs, "final_info": info, "_final_obs": done, "_final_info": done}
            obs, info = self.campaigns.reset(self.seeder.next())
            info = {**info, **final}
        return obs, reward, done, np.zeros_like(done), info
