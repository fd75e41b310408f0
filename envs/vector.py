"""The gymnasium ``VectorEnv`` view of the batched core (the Stable-Baselines3 ``VecEnv`` view,
:class:`~budgetgym.envs.sb3_vec_env.BudgetVecEnv`, shares its seeding).

Both views step all campaigns with one numpy call (no Python loop per env). All campaigns of a batch
share the horizon, so they end together and are reset together (autoreset in the same step:
the returned observation is the new episode's first, the final one is in the info).

Seeds: ``reset(seed=s)`` starts campaigns ``s, s+1, ..., s+n-1``; ``reset(seed=[s0, ..., sn-1])``
(gymnasium's one seed per sub-env) starts those campaigns. Later episodes draw campaign seeds
from a generator seeded with the given seed(s), always in the training range (< 900,000).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space

from budgetgym.envs.budget_env import action_space, observation_space
from budgetgym.envs.campaigns import BatchedCampaigns
from budgetgym.envs.scenarios import HORIZON_HOURS, TRAIN_SEED_LIMIT, check_seed

#: A vector env's ``reset`` seed: one int for all, one per sub-env (None: a random one), or None.
VectorSeed = int | Sequence[int | None] | None


class CampaignSeeder:
    """Campaign seeds for successive episodes of ``n_envs`` campaigns."""

    def __init__(self, n_envs: int) -> None:
        self.n_envs = n_envs
        self.rng = np.random.default_rng()

    def first(self, seed: VectorSeed) -> np.ndarray:
        """Seeds of the first episode: ``seed + arange(n)`` for an int, the given seeds for a
        list (``None`` entries: random training seeds), random training seeds for None.

        Raises:
            ValueError: a seed that is not a non-negative integer, or a list of the wrong length.
        """
        if seed is None:
            return self.next()
        if not isinstance(seed, (list, tuple, np.ndarray)):
            start = check_seed(seed)
            self.rng = np.random.default_rng(start)
            return start + np.arange(self.n_envs)
        if len(seed) != self.n_envs:
            raise ValueError(
                f"reset(seed=[...]) needs one seed per env ({self.n_envs}), got {len(seed)}."
            )
        seeds = [None if s is None else check_seed(s, f"seed[{i}]") for i, s in enumerate(seed)]
        self.rng = np.random.default_rng(None if None in seeds else seeds)
        draws = [self.rng.integers(TRAIN_SEED_LIMIT) if s is None else s for s in seeds]
        return np.array(draws, dtype=np.int64)

    def next(self) -> np.ndarray:
        """Seeds of the next episode, drawn from the training range."""
        return self.rng.integers(0, TRAIN_SEED_LIMIT, size=self.n_envs)


def check_num_envs(num_envs: int) -> int:
    """``num_envs`` as an int: a Python or numpy integer >= 1; anything else (below 1, a bool, a
    float even if whole) raises ``ValueError``."""
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}.")
    return int(num_envs)


class MultiChannelBudgetVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` campaigns as a gymnasium ``VectorEnv`` (autoreset mode ``SAME_STEP``).

    Accepts the same keyword arguments as ``MultiChannelBudgetEnv``. ``reset(seed=...)`` takes
    an int or a list of one seed per env (see the module docstring); ``options={"campaign_seeds":
    [...]}`` chooses each campaign explicitly without seeding later episodes.
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
        self.single_observation_space = observation_space(self.campaigns.layout)
        self.single_action_space = action_space(self.campaigns.layout)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.seeder = CampaignSeeder(self.num_envs)

    def reset(
        self, *, seed: VectorSeed = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        seeds = (options or {}).get("campaign_seeds")
        if seeds is None:
            seeds = self.seeder.first(seed)
        elif len(seeds) != self.num_envs:
            raise ValueError(f"campaign_seeds needs {self.num_envs} seeds, got {len(seeds)}.")
        else:
            seeds = [check_seed(s, f"campaign_seeds[{i}]") for i, s in enumerate(seeds)]
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
