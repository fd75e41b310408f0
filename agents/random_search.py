"""``algorithm: ars``: Augmented Random Search on PPO's actor, its candidates batched on the core.

Augmented Random Search (Mania, Guy & Recht, "Simple random search of static linear policies is
competitive for reinforcement learning", NeurIPS 2018; V2-t) learns a deterministic policy from
whole-campaign returns, without a critic or action noise. Each generation:

1. draws ``n_delta`` directions ``delta_j ~ N(0, I)`` over the actor's parameters ``theta``;
2. plays the ``2 n_delta`` candidates ``theta +- delta_std * delta_j`` on the same ``n_envs``
   fresh training campaigns (common random numbers: the same seeds, so the same markets), all
   ``2 n_delta x n_envs`` of them in one batch of the compiled core;
3. scores each candidate by its mean campaign return ``r`` (see below), keeps the ``n_top``
   directions with the best ``max(r+, r-)`` and steps
   ``theta += learning_rate / (n_top * sd_r) * sum_j (r+_j - r-_j) delta_j``, ``sd_r`` the
   standard deviation of the kept returns.

The observations are normalized by the run's ``VecNormalize``, whose statistics take every
observation the candidates make (ARS's V2 state normalization), except after an imitation warm
start (an ``imitation`` section: behaviour cloning and DAgger fit the actor first, as for PPO),
which holds them where the fit set them. A campaign's return is the sum
of its hourly rewards (``env.reward_mode``); with a ``lagrangian`` section the campaigns pay GMV
and the return is ``GMV / B - lambda * cost``, the cost (a miss, or the shortfall / B) measured
on the candidates' campaigns and handed to the training env's ``LagrangianReward``, whose
multiplier :class:`~budgetgym.agents.lagrangian.LagrangianUpdate` moves after each generation
(logged, saved in checkpoints). Every candidate is deterministic, so the measured constraint is
the one the deployed policy meets, not one inflated by exploration noise.

Why not sb3-contrib's ``ARS``: it evaluates the candidates one after another through the
VecEnv, each on whatever campaigns the env draws next. Here all candidates step together in
one call of the core and compare on the same campaigns, which removes the market's luck from
``r+ - r-``.

The model is SB3 PPO's (its policy, checkpoints, evaluation and ONNX export); ``learn`` runs the
generations instead of PPO's updates and only the actor is trained. ``net_arch: {pi: []}`` makes
the actor linear, ARS's policy class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from torch.func import functional_call, vmap

from budgetgym.agents.config import TrainConfig
from budgetgym.agents.imitation import actor_parameters, mean_action
from budgetgym.agents.lagrangian import campaign_cost
from budgetgym.agents.wrappers import lagrangian_of
from budgetgym.envs.campaigns import BatchedCampaigns, roi_target_missed
from budgetgym.envs.scenarios import TRAIN_SEED_LIMIT, training_seeds


@dataclass
class Generation:
    """The scores of one generation's candidates, every one played on the same campaigns.

    Attributes:
        returns: ``(candidates,)`` mean campaign return of each candidate.
        costs: ``(candidates, campaigns)`` the constraint's cost of every campaign (a miss 0/1,
            or the shortfall / B); None without a ``lagrangian`` section.
        missed: ``(candidates, campaigns)`` bool, campaigns that ended below their ROI target.
    """

    returns: np.ndarray
    costs: np.ndarray | None
    missed: np.ndarray


class RandomSearchTrainer:
    """Plays and scores ARS generations for a PPO-format model (see the module docstring).

    Args:
        model: the ``RandomSearch`` model, its training env under ``VecNormalize``.
        config: the run's config (with an ``ars`` section).
    """

    def __init__(self, model: Any, config: TrainConfig) -> None:
        if config.ars is None:
            raise ValueError("The config has no ars section.")
        self.model = model
        self.config = config
        self.settings = config.ars
        self.vecnorm = model.get_vec_normalize_env()
        self.lagrangian = lagrangian_of(model.get_env())
        self.params = actor_parameters(model.policy)
        self.names = _actor_parameter_names(model.policy, self.params)
        self.candidates = 2 * self.settings.n_delta
        self.shares = config.env.campaigns_per_scenario
        env, mode = config.env, config.training_reward_mode
        self.campaigns = [
            BatchedCampaigns(s, mode, env.roi_penalty_coef, env.horizon_hours)
            for s in env.scenarios
        ]
        self._mean_action = _MeanAction(model.policy)
        self._actor = vmap(self._act)

    @property
    def states_per_generation(self) -> int:
        """Campaign-hours one generation plays."""
        return self.candidates * self.config.env.n_envs * self.config.env.horizon_hours

    def weights(self) -> torch.Tensor:
        """The actor's parameters as one vector ``(n_params,)``."""
        return torch.nn.utils.parameters_to_vector(self.params).detach()

    def load(self, weights: torch.Tensor) -> None:
        """Set the actor's parameters from one vector ``(n_params,)``."""
        torch.nn.utils.vector_to_parameters(weights, self.params)

    def seeds(self, generation: int) -> list[np.ndarray]:
        """Each scenario's training campaigns of ``generation`` (fresh every generation,
        reproducible from the run's seed)."""
        rng = np.random.default_rng([self.config.seed, generation])
        seeds = rng.choice(TRAIN_SEED_LIMIT, size=self.config.env.n_envs, replace=False)
        seeds = training_seeds(seeds.astype(np.int64), "ARS campaigns")
        return np.split(seeds, np.cumsum(self.shares)[:-1])

    def play(self, candidates: torch.Tensor, generation: int) -> Generation:
        """Play ``candidates (c, n_params)`` on ``generation``'s campaigns; score them. The
        observation statistics take every observation made."""
        c = len(candidates)
        returns, costs, missed = [], [], []
        for campaigns, seeds in zip(self.campaigns, self.seeds(generation), strict=True):
            if len(seeds) == 0:
                continue
            n = len(seeds)
            obs, _ = campaigns.reset(np.tile(seeds, c))
            total = np.zeros(c * n)
            for _ in range(campaigns.horizon_hours):
                if self.vecnorm is not None and self.vecnorm.norm_obs:
                    self.vecnorm.obs_rms.update(obs)
                obs, reward, _, info = campaigns.step(self.actions(candidates, obs))
                total += reward
            gmv, spend = info["gmv_total"], info["spend_total"]
            target, budget = info["target_roi"], info["budget"]
            missed.append(roi_target_missed(gmv, target, spend).reshape(c, n))
            returns.append(total.reshape(c, n))
            if self.lagrangian is not None:
                cost = campaign_cost(self.lagrangian.constraint, gmv, target, spend, budget)
                costs.append(cost.reshape(c, n))
        ret = np.concatenate(returns, axis=1)
        cost_all = np.concatenate(costs, axis=1) if costs else None
        if cost_all is not None:
            ret = ret - self.lagrangian.controller.multiplier * cost_all
        return Generation(ret.mean(axis=1), cost_all, np.concatenate(missed, axis=1))

    def actions(self, candidates: torch.Tensor, obs: np.ndarray) -> np.ndarray:
        """The deterministic actions ``(c * n, k + 1)`` of ``candidates (c, n_params)``, each
        for its own block of ``n`` rows of the raw ``obs (c * n, obs_dim)``: the actor's mean
        action under its weights, clipped to the action space as PPO's ``predict`` does."""
        if self.vecnorm is not None and self.vecnorm.norm_obs:
            obs = self.vecnorm.normalize_obs(obs)
        c = len(candidates)
        x = torch.as_tensor(obs, dtype=torch.float32).reshape(c, -1, obs.shape[1])
        with torch.no_grad():
            action = self._actor(_unflatten(candidates, self.params, self.names), x)
        return np.clip(action.reshape(len(obs), -1).numpy().astype(np.float64), -1.0, 1.0)

    def step(self, generation: int) -> dict[str, float]:
        """One ARS generation: sample, play, update the actor. Returns TensorBoard scalars."""
        s = self.settings
        rng = torch.Generator().manual_seed(int(self.config.seed) * 1_000_003 + generation)
        theta = self.weights()
        deltas = torch.randn((s.n_delta, len(theta)), generator=rng, dtype=theta.dtype)
        candidates = torch.cat([theta + s.delta_std * deltas, theta - s.delta_std * deltas])
        result = self.play(candidates, generation)
        plus = torch.as_tensor(result.returns[: s.n_delta], dtype=theta.dtype)
        minus = torch.as_tensor(result.returns[s.n_delta :], dtype=theta.dtype)
        top = torch.argsort(torch.maximum(plus, minus), descending=True)[: s.n_top]
        spread = torch.cat([plus[top], minus[top]]).std()
        step_size = s.learning_rate / (s.n_top * spread + 1e-8)
        self.load(theta + step_size * ((plus[top] - minus[top]) @ deltas[top]))
        if result.costs is not None:
            self.lagrangian.record(result.costs.ravel())
        return {
            "ars/return_mean": float(result.returns.mean()),
            "ars/return_std": float(spread),
            "ars/step_size": float(step_size),
            "ars/miss_rate": float(result.missed.mean()),
        }

    def _act(self, params: dict[str, torch.Tensor], obs: torch.Tensor) -> torch.Tensor:
        """The actor's mean action with ``params`` for normalized ``obs (n, d)``."""
        return functional_call(self._mean_action, params, (obs,))


def _actor_parameter_names(policy: Any, params: list[torch.nn.Parameter]) -> list[str]:
    """The names of the actor's ``params`` in :class:`_MeanAction` (``policy.<name>``)."""
    by_id = {id(p): name for name, p in policy.named_parameters()}
    return [f"policy.{by_id[id(p)]}" for p in params]


def _unflatten(
    vectors: torch.Tensor, params: list[torch.nn.Parameter], names: list[str]
) -> dict[str, torch.Tensor]:
    """``vectors (c, n_params)`` as one stacked float32 tensor ``(c, *shape)`` per name."""
    out, offset = {}, 0
    for name, param in zip(names, params, strict=True):
        size = param.numel()
        block = vectors[:, offset : offset + size].reshape(len(vectors), *param.shape)
        out[name] = block.to(torch.float32)
        offset += size
    return out


class _MeanAction(torch.nn.Module):
    """The policy's mean action as a module (what ``functional_call`` calls)."""

    def __init__(self, policy: Any) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return mean_action(self.policy, obs)


class RandomSearch(PPO):
    """SB3 PPO's model trained by Augmented Random Search (``algorithm: ars``).

    The policy, its checkpoints, evaluation and ONNX export are PPO's; :meth:`learn` runs the
    generations of its ``trainer`` (:class:`RandomSearchTrainer`) instead of PPO's updates (the
    critic and the log-sd are not trained). The step counter counts campaign-hours played;
    after each generation the callbacks step once and the rollout ends (validation,
    checkpoints, the Lagrange multiplier's update) and the ``ars/`` scalars are logged.
    """

    #: The :class:`RandomSearchTrainer` that ``learn`` runs (set by :func:`attach_search`).
    trainer: Any = None

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "trainer"]

    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        log_interval: int = 1,
        tb_log_name: str = "ARS",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> RandomSearch:
        """ARS generations until ``total_timesteps`` campaign-hours are played."""
        if not reset_num_timesteps and self.num_timesteps > 0:
            raise ValueError("An ars run does not resume: train it anew.")
        if self.trainer is None:
            raise RuntimeError("attach_search(model, config) hands RandomSearch its settings.")
        total, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        generation = 0
        while self.num_timesteps < total:
            callback.on_rollout_start()
            scalars = self.trainer.step(generation)
            generation += 1
            self.num_timesteps += self.trainer.states_per_generation
            for key, value in scalars.items():
                self.logger.record(key, value)
            self.logger.record("ars/generation", generation)
            if not callback.on_step():
                break
            callback.on_rollout_end()
            self.logger.dump(self.num_timesteps)
        callback.on_training_end()
        return self


def attach_search(model: Any, config: TrainConfig) -> None:
    """Hand a :class:`RandomSearch` model its trainer for ``config``'s ``ars`` section."""
    model.trainer = RandomSearchTrainer(model, config)
