"""The Stable-Baselines3 ``VecEnv`` view of the batched core (needs ``budgetgym[train]``).

``import budgetgym.envs`` does not import this module (nor torch): ``budgetgym.envs.BudgetVecEnv``
loads it on first access. Seeding and resets as in :mod:`budgetgym.envs.vector`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from budgetgym.envs.budget_env import action_space, observation_space
from budgetgym.envs.campaigns import BatchedCampaigns, CampaignInfo
from budgetgym.envs.scenarios import HORIZON_HOURS, check_seed
from budgetgym.envs.vector import CampaignSeeder, check_num_envs


class BudgetVecEnv(VecEnv):
    """``num_envs`` campaigns as a Stable-Baselines3 ``VecEnv`` over the batched core.

    ``infos[i]`` is a :class:`~budgetgym.envs.campaigns.CampaignInfo`, a mapping that reads
    campaign ``i``'s entries from the batch info on access. Sets
    ``infos[i]["terminal_observation"]`` and ``infos[i]["TimeLimit.truncated"] = False`` at the
    end of an episode (the horizon is observed, so it is a true termination), and resets all
    campaigns in the same step.
    """

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
        layout = self.campaigns.layout
        super().__init__(num_envs, observation_space(layout), action_space(layout))
        self.seeder = CampaignSeeder(self.num_envs)
        self._actions: np.ndarray | None = None

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Campaigns ``seed, ..., seed + n - 1`` at the next ``reset``; None: random training
        seeds (SB3's default draws any 32-bit seed, the held-out range included).

        Raises:
            ValueError: ``seed`` is not a non-negative integer.
        """
        if seed is None:
            self._reset_seeds()
            return self._seeds
        return super().seed(check_seed(seed))

    def reset(self) -> np.ndarray:
        seed = self._seeds[0]
        obs, _ = self.campaigns.reset(self.seeder.first(seed))
        self._reset_seeds()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        obs, reward, done, info = self.campaigns.step(self._actions)
        infos = [CampaignInfo(info, i) for i in range(self.num_envs)]
        if done.all():
            for i, item in enumerate(infos):
                item["terminal_observation"] = obs[i]
                item["TimeLimit.truncated"] = False
            obs, _ = self.campaigns.reset(self.seeder.next())
        return obs, reward.astype(np.float32), done, infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        # The simulator renders nothing; SB3 asks for render_mode when it builds the VecEnv.
        value = None if attr_name == "render_mode" else getattr(self.campaigns, attr_name)
        return [value] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.campaigns, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list:
        result = getattr(self.campaigns, method_name)(*args, **kwargs)
        return [result] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))
