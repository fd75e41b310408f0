"""A privileged (asymmetric) critic for PPO: ``policy_kwargs.privileged_critic``.

At training time the value function may read what the information-fair planner knows
(:mod:`budgetgym.agents.planner`): each campaign's true parameters, hidden from the policy. A
critic that knows the campaign's CVRs, CTRs, delays, pool, price, budget and target predicts
its return better than one that must infer them from a few hours of noisy outcomes, so the
advantages the actor learns from carry less noise (Pinto et al. 2018, "Asymmetric Actor Critic";
the same idea as oracle imitation with a value function instead of a teacher).

The parts:

- :func:`privileged_features` turns ``campaigns.params`` into ``(n, 3k + 6)`` features of about
  unit range (logs, centred and scaled by fixed constants: they are not normalized by
  ``VecNormalize``, which sits below and keeps the statistics of the normal observation only).
- :class:`PrivilegedObservation` appends them to the observation, above ``VecNormalize``: the
  model trains on ``(n, obs_dim + 3k + 6)``.
- :class:`PrivilegedCriticPolicy` gives the actor an ``ObservationSubset`` of the first
  ``obs_dim`` features (less ``exclude_features``) and the critic the whole input. The actor's
  graph indexes the normal observation only, so no privileged input can reach an action: the
  served policy (evaluation, ONNX export) runs the actor on the normal observation alone.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.torch_layers import FlattenExtractor, MlpExtractor
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from budgetgym.agents.residual import ActionDecayPolicy, vec_env_stack

#: ``(field of CampaignParams, centre, scale)``: feature = ``(log(value) - centre) / scale``.
#: Centre and scale are the mean and standard deviation of the log over campaigns of the
#: ``mixed`` scenario (every scenario), rounded; per-channel fields give one feature per channel.
PRIVILEGED_FIELDS = (
    ("cvr_new", -6.1, 1.4),
    ("cvr_returning", -5.2, 1.4),
    ("ctr", -3.8, 0.6),
    ("immediate_frac", -1.25, 0.45),
    ("delay_hazard_per_hour", -3.35, 0.4),
    ("pool_half_saturation", 9.3, 0.6),
    ("price_cny", 5.45, 1.2),
    ("budget_cny", 10.9, 0.6),
    ("target_roi", 0.8, 0.2),
)
_PER_CHANNEL = {"cvr_new", "cvr_returning", "ctr"}


def privileged_dim(n_channels: int) -> int:
    """Privileged features of campaigns on ``n_channels`` channels (``3k + 6``)."""
    return sum(n_channels if name in _PER_CHANNEL else 1 for name, _, _ in PRIVILEGED_FIELDS)


def privileged_features(params: Any) -> np.ndarray:
    """The campaigns' true parameters as critic inputs ``(n, 3k + 6)`` float32, about unit range.

    Args:
        params: ``CampaignParams`` of ``n`` campaigns on ``k`` channels (``campaigns.params``).

    Raises:
        ValueError: a parameter that is not positive (a scenario file's zero CVR, say).
    """
    columns = []
    for name, centre, scale in PRIVILEGED_FIELDS:
        value = np.asarray(getattr(params, name), dtype=np.float64)
        if not (value > 0).all():
            raise ValueError(f"Campaign parameter {name} must be positive for the critic's log.")
        columns.append(((np.log(value) - centre) / scale).reshape(params.n_envs, -1))
    return np.concatenate(columns, axis=1).astype(np.float32)


class PrivilegedObservation(VecEnvWrapper):
    """Append each campaign's :func:`privileged_features` to its observation (training only).

    Wraps the model's env (``VecNormalize`` over the campaigns: the appended features are not
    normalized, they are scaled already). The campaigns are found at the bottom of the stack: a
    ``BudgetVecEnv``, or the ``BudgetVecEnv`` of each scenario of a ``MultiScenarioVecEnv``. An
    episode's ``terminal_observation`` gets the features of the campaign that ended; the next
    observation, those of the campaign that started.
    """

    def __init__(self, venv: VecEnv) -> None:
        bottom = list(vec_env_stack(venv))[-1]
        self.envs = list(getattr(bottom, "envs", [bottom]))
        if not all(hasattr(env, "campaigns") for env in self.envs):
            raise ValueError(
                "privileged_critic needs an env stack over budgetgym campaigns (BudgetVecEnv)."
            )
        k = len(self.envs[0].campaigns.channels)
        box = venv.observation_space
        extra = privileged_dim(k)
        space = gym.spaces.Box(
            np.concatenate([box.low, np.full(extra, -np.inf, dtype=box.dtype)]),
            np.concatenate([box.high, np.full(extra, np.inf, dtype=box.dtype)]),
            dtype=box.dtype,
        )
        super().__init__(venv, observation_space=space)
        self.privileged = np.zeros((venv.num_envs, extra), dtype=np.float32)

    def _read(self) -> np.ndarray:
        return np.concatenate([privileged_features(env.campaigns.params) for env in self.envs])

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        self.privileged = self._read()
        return np.concatenate([obs, self.privileged], axis=1)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        obs, reward, done, infos = self.venv.step_wait()
        for i in np.flatnonzero(done):
            terminal = infos[i].get("terminal_observation")
            if terminal is not None:
                infos[i]["terminal_observation"] = np.concatenate([terminal, self.privileged[i]])
        if done.any():  # campaigns reset (all together): new parameters
            self.privileged = self._read()
        return np.concatenate([obs, self.privileged], axis=1), reward, done, infos


class AsymmetricMlpExtractor(MlpExtractor):
    """SB3's ``MlpExtractor`` whose value network takes ``critic_dim`` features and whose policy
    network takes ``actor_dim`` (``net_arch`` as SB3's)."""

    def __init__(
        self, actor_dim: int, critic_dim: int, net_arch: Any, activation_fn: Any, device: Any
    ) -> None:
        super().__init__(actor_dim, net_arch, activation_fn, device)
        self.value_net = MlpExtractor(critic_dim, net_arch, activation_fn, device).value_net


class PrivilegedCriticPolicy(ActionDecayPolicy):
    """Actor-critic whose critic also reads the last ``privileged_dim`` input features.

    The input is ``(n, obs_dim + privileged_dim)`` (:class:`PrivilegedObservation`). The actor's
    features extractor (``features_extractor_class``, an ``ObservationSubset``) is built on the
    first ``obs_dim`` features and reads only those; the critic flattens the whole input.
    ``action_weight_decay`` as :class:`~budgetgym.agents.residual.ActionDecayPolicy` (0: none).

    Args:
        privileged_dim: trailing features only the critic reads (> 0).
        *args, **kwargs: as ``ActorCriticPolicy`` (``share_features_extractor`` is False).
    """

    def __init__(self, *args: Any, privileged_dim: int, **kwargs: Any) -> None:
        if privileged_dim <= 0:
            raise ValueError(f"privileged_dim must be positive, got {privileged_dim}.")
        self.privileged_dim = int(privileged_dim)
        super().__init__(*args, **{**kwargs, "share_features_extractor": False})

    @property
    def actor_space(self) -> gym.spaces.Box:
        """The normal observation's space (the input without the privileged features)."""
        box, n = self.observation_space, self.observation_space.shape[0] - self.privileged_dim
        return gym.spaces.Box(box.low[:n], box.high[:n], dtype=box.dtype)

    def make_features_extractor(self) -> Any:
        """The actor's extractor, on the normal observation's space."""
        return self.features_extractor_class(self.actor_space, **self.features_extractor_kwargs)

    def _build(self, lr_schedule: Any) -> None:
        self.vf_features_extractor = FlattenExtractor(self.observation_space)
        super()._build(lr_schedule)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = AsymmetricMlpExtractor(
            self.pi_features_extractor.features_dim,
            self.vf_features_extractor.features_dim,
            self.net_arch,
            self.activation_fn,
            self.device,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["privileged_dim"] = self.privileged_dim
        return data


def is_privileged(model: Any) -> bool:
    """Whether an SB3 model's critic reads privileged inputs."""
    return isinstance(getattr(model, "policy", None), PrivilegedCriticPolicy)


def model_env(model: Any, venv: VecEnv) -> VecEnv:
    """``venv`` as ``model`` trains on it: under :class:`PrivilegedObservation` for a privileged
    critic, unchanged otherwise."""
    return PrivilegedObservation(venv) if is_privileged(model) else venv


def actor_input(model: Any, obs: np.ndarray) -> np.ndarray:
    """Normalized observations ``(n, obs_dim)`` as ``model.predict`` takes them: for a privileged
    critic, padded with zeros where the privileged features go (the actor does not read them,
    and predicting calls the actor alone)."""
    if not is_privileged(model):
        return obs
    pad = np.zeros((obs.shape[0], model.policy.privileged_dim), dtype=obs.dtype)
    return np.concatenate([obs, pad], axis=1)
