"""Residual policies: a learned correction added to a stateless rule's action.

A residual policy (Silver et al. 2018, "Residual Policy Learning"; Johannink et al. 2019) acts
``clip(base(obs) + delta, -1, 1)``: the network learns ``delta`` and starts where the rule is,
so exploration begins from a sensible allocation instead of uniform spend. The base must be a
pure function of the current observation — no episode state — so that it can sit inside the
exported ONNX graph (raw observation in, action out) and the residual policy stays one file.

The bases are the ``obs_*`` rules of :mod:`budgetgym.agents.baselines`, e.g. ``obs_pacing``: the
pacing-and-split logic of the ``pid_pacing`` baseline, computed from the simulator's
delay-corrected ROI features (``log_matured_roi``) instead of the rule's own running estimates.
Their one implementation (:func:`~budgetgym.agents.baselines.obs_rule_actions`) is written
against the array API standard: the rules run it on numpy arrays, the export traces it on torch
tensors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from budgetgym.agents.baselines import (
    BASELINES,
    ObsPacingPolicy,
    check_obs_batch,
    obs_rule_actions,
)
from budgetgym.agents.channel_set import DEFAULT_CHANNEL_SET, ChannelSet
from budgetgym.envs.errors import unknown_name_error

#: The stateless rules a residual policy can start from (``none``: no base).
RESIDUAL_BASES = (
    "none",
    *(name for name, rule in BASELINES.items() if issubclass(rule, ObsPacingPolicy)),
)


def check_residual_base(name: str) -> str:
    """Return ``name`` if it is a known residual base; ``ValueError`` otherwise."""
    if name not in RESIDUAL_BASES:
        raise unknown_name_error("residual base", name, RESIDUAL_BASES)
    return name


def base_action(
    name: str, obs: np.ndarray, channels: ChannelSet = DEFAULT_CHANNEL_SET
) -> np.ndarray:
    """Actions ``(n, k + 1)`` float32 of residual base ``name`` for raw observations
    ``(n, obs_dim)`` on ``channels`` (zeros for ``none``)."""
    obs = check_obs_batch(obs, channels)
    if check_residual_base(name) == "none":
        return np.zeros((obs.shape[0], channels.action_dim), dtype=np.float32)
    return base_action_torch(name, obs, channels)


def base_action_torch(name: str, obs: Any, channels: ChannelSet = DEFAULT_CHANNEL_SET) -> Any:
    """Actions ``(n, k + 1)`` float32 of residual base ``name`` (not ``none``) for raw
    observations ``(n, obs_dim)`` on ``channels`` of any array-API library: a torch tensor in
    the policy's ONNX export, a numpy array through :func:`base_action`."""
    rule = BASELINES[check_residual_base(name)]
    return obs_rule_actions(obs, rule.throttle, rule.split, channels)


def add_residual(
    name: str, obs: np.ndarray, delta: np.ndarray, channels: ChannelSet = DEFAULT_CHANNEL_SET
) -> np.ndarray:
    """The residual policy's action ``clip(base(obs) + delta, -1, 1)``, float32 ``(n, k + 1)``."""
    if name == "none":
        return np.asarray(delta, dtype=np.float32)
    return _clipped_sum(base_action(name, obs, channels), delta)


def _clipped_sum(base: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return np.clip(base + delta, -1.0, 1.0).astype(np.float32)


class TwinCampaigns(Protocol):
    """Campaigns below a ``ResidualAction`` that its rule also plays (the training's twins,
    ``PairedBaseline``): their actions come out of the residual base's own call."""

    rule: str
    channels: ChannelSet
    #: Set before each step by ``ResidualAction``: the rule's actions for ``twin_obs``.
    twin_actions: np.ndarray | None

    @property
    def twin_obs(self) -> np.ndarray:
        """Current raw observations of the twins ``(n_twins, obs_dim)``."""


class RawObservationAction(VecEnvWrapper):
    """A wrapper that transforms the actions from its env's current raw observation
    (``self._obs``, kept here): the base of :class:`ResidualAction` and the ROI guard's
    wrapper. Subclasses define ``step_async``."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self._obs = np.zeros((venv.num_envs, *venv.observation_space.shape), dtype=np.float32)

    def reset(self) -> np.ndarray:
        self._obs = self.venv.reset()
        return self._obs

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        obs, rewards, dones, infos = self.venv.step_wait()
        self._obs = obs  # after an episode ends: the next episode's first observation
        return obs, rewards, dones, infos


class ResidualAction(RawObservationAction):
    """Adds a stateless rule's action to the agent's: the env steps ``clip(base(obs) + a)``.

    Sits below ``VecNormalize`` so the rule sees raw observations (see
    :mod:`budgetgym.agents.residual`); ``residual_base`` names the rule for checkpoints.

    Args:
        venv: the wrapped env.
        residual_base: the rule (:data:`RESIDUAL_BASES`).
        twins: campaigns below that the same rule plays (``PairedBaseline``): one base call
            serves both, as a call costs mostly per call and little per row (128 rows: 0.57 ms,
            two calls of 64: 0.85 ms). Each row's action is the same either way.
        channels: the campaigns' channel list (default: the wrapped env's, ``channels``).
    """

    def __init__(
        self,
        venv: VecEnv,
        residual_base: str,
        twins: TwinCampaigns | None = None,
        channels: ChannelSet | None = None,
    ) -> None:
        super().__init__(venv)
        self.residual_base = check_residual_base(residual_base)
        self.channels = venv_channels(venv) if channels is None else channels
        if twins is not None and (self.residual_base == "none" or twins.rule != residual_base):
            raise ValueError(
                f"The twins' rule {twins.rule!r} is not the residual base {residual_base!r}."
            )
        self.twins = twins

    def step_async(self, actions: np.ndarray) -> None:
        if self.twins is None:
            self.venv.step_async(
                add_residual(self.residual_base, self._obs, actions, self.channels)
            )
            return
        n = self._obs.shape[0]
        obs = np.concatenate([self._obs, self.twins.twin_obs])
        base = base_action(self.residual_base, obs, self.channels)
        self.twins.twin_actions = base[n:]
        self.venv.step_async(_clipped_sum(base[:n], actions))


def vec_env_stack(venv: Any) -> Iterator[Any]:
    """``venv`` and every VecEnv it wraps, outermost first (following ``.venv``)."""
    while venv is not None:
        yield venv
        venv = getattr(venv, "venv", None)


def venv_channels(venv: Any) -> ChannelSet:
    """The channel list of a VecEnv over budgetgym campaigns: its ``channels`` (the batched
    VecEnvs'), or its single envs' ``campaigns.channels`` (a ``DummyVecEnv`` of gymnasium
    envs)."""
    try:
        channels = venv.get_attr("channels", indices=[0])[0]
    except AttributeError:
        channels = venv.get_attr("campaigns", indices=[0])[0].channels
    return ChannelSet.of(channels)


def residual_base_of(venv: Any) -> str:
    """The residual base of a wrapped VecEnv stack (``"none"`` without ``ResidualAction``)."""
    for layer in vec_env_stack(venv):
        if isinstance(layer, ResidualAction):
            return layer.residual_base
    return "none"


class ActionDecayPolicy(ActorCriticPolicy):
    """SB3's MLP actor-critic with decoupled weight decay (AdamW, Loshchilov & Hutter 2019) on
    the action head only.

    The decay pulls the policy's mean output toward zero at rate ``learning_rate x
    action_weight_decay`` per gradient step; a consistent policy gradient holds it away, noise
    does not. Under a residual base that is a pull toward the rule: the correction survives
    where it pays (the Double-11 surge) and decays where the rule is already near its best.
    Other parameters (hidden layers, critic, log-sd) are not decayed.

    Args:
        action_weight_decay: decoupled weight decay of ``action_net`` (0: plain Adam).
        *args, **kwargs: as ``ActorCriticPolicy``.
    """

    def __init__(self, *args: Any, action_weight_decay: float = 0.0, **kwargs: Any) -> None:
        self.action_weight_decay = float(action_weight_decay)
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        import torch

        super()._build(lr_schedule)
        head = list(self.action_net.parameters())
        head_ids = {id(p) for p in head}
        rest = [p for p in self.parameters() if id(p) not in head_ids]
        self.optimizer = torch.optim.AdamW(
            [
                {"params": rest, "weight_decay": 0.0},
                {"params": head, "weight_decay": self.action_weight_decay},
            ],
            lr=lr_schedule(1),
            **self.optimizer_kwargs,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["action_weight_decay"] = self.action_weight_decay
        return data
