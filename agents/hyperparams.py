"""The strict scalar types of the config schema and the hyperparameters of the algorithms.

An algorithm's hyperparameters are a :class:`HyperParams` model whose fields are named exactly
as its Stable-Baselines3 constructor's arguments (besides budgetgym's own, ``OWN_FIELDS``), so
that the model is ``ALGO(policy, env, **params.sb3_kwargs(...))``. Every model rejects unknown
keys, is immutable and strictly typed (see :mod:`budgetgym.agents.config`).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictFloat,
    field_validator,
    model_validator,
)

ACTIVATIONS = ("tanh", "relu", "elu", "leaky_relu", "gelu", "silu")


def _as_int(value: Any) -> Any:
    """A float without a fraction (YAML configs write counts as ``6.0e+6``) or a numpy integer
    as an int; anything else unchanged, for the strict check."""
    if (isinstance(value, float) and value.is_integer()) or isinstance(value, np.integer):
        return int(value)
    return value


# Strict scalar types: pydantic's lax mode would read `n_envs: true` as 1 and `norm_obs: 1` or
# `"yes"` as true. An integer field takes an int or a whole float (not a bool, a string or a
# fraction); a float field takes an int or a float (not a bool or a string).
Integer = Annotated[int, Strict(), BeforeValidator(_as_int)]
PositiveInt = Annotated[Integer, Field(gt=0)]
NonNegFloat = Annotated[StrictFloat, Field(ge=0.0)]
#: A stateless rule of budgetgym.agents.residual (RESIDUAL_BASES), or none.
RuleBase = Literal[
    "none", "obs_pacing", "obs_pacing_unthrottled", "obs_thompson", "obs_price_aware"
]


def unknown_name(what: str, name: Any, valid: Sequence[str]) -> str:
    """The clause refusing an unknown ``name`` of a ``what`` (lower case, no final stop):
    the closest valid name, then every valid one."""
    hint = difflib.get_close_matches(str(name), list(valid), n=1)
    return (
        f"unknown {what} {name!r}"
        + (f" (did you mean {hint[0]!r}?)" if hint else "")
        + f"; valid: {', '.join(valid)}"
    )


class Frozen(BaseModel):
    """Base of every config model: immutable, unknown keys rejected; fields use the strict
    scalar types above."""

    # allow_inf_nan=False: a YAML `.inf` or `.nan` (say, an infinite penalty) fails here, by name,
    # instead of turning rewards or losses into inf/NaN mid-training.
    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_default=True, allow_inf_nan=False
    )


class PolicyKwargs(Frozen):
    """``policy_kwargs`` passed to the SB3 policy (a subset with typed values)."""

    net_arch: tuple[PositiveInt, ...] | dict[str, tuple[PositiveInt, ...]] = (64, 64)
    """Hidden layer sizes: shared ``[64, 64]`` or ``{pi: [...], vf: [...]}`` (``qf`` for SAC)."""
    activation_fn: Literal[ACTIVATIONS] = "tanh"  # type: ignore[valid-type]
    """Activation between hidden layers."""
    log_std_init: StrictFloat = 0.0
    """Initial log standard deviation of the Gaussian actions (PPO, recurrent PPO)."""
    log_std_init_logits: StrictFloat | None = None
    """Initial log-sd of the six channel logits (``action[1:]``) when it should differ from the
    pace's: a logit's noise is multiplied by the softmax temperature 3 (PPO without gSDE)."""
    ortho_init: StrictBool = True
    """Orthogonal initialisation (PPO, recurrent PPO)."""
    action_weight_decay: NonNegFloat = 0.0
    """Decoupled weight decay (AdamW) of the action head only, pulling the mean action toward 0
    (toward the rule for a residual policy; ``budgetgym.agents.residual.ActionDecayPolicy``).
    Algorithms whose spec supports it (``budgetgym.agents.algorithms``); 0 keeps SB3's
    ``MlpPolicy``."""
    exclude_features: tuple[str, ...] = ()
    """Observation features the networks do not read (``budgetgym.agents.features``): feature
    names (a per-channel one for every channel), one channel's (``search/log_cpm``), or
    ``last_hour`` for last hour's per-channel outcomes. The rules and the residual base still
    see the whole observation."""
    lstm_hidden_size: PositiveInt = 64
    """LSTM width (recurrent PPO only)."""
    enable_critic_lstm: StrictBool = True
    """Separate LSTM for the critic (recurrent PPO only)."""
    privileged_critic: StrictBool = False
    """Training only: the critic also reads each campaign's true parameters (CVRs, CTRs,
    delays, pool, price, budget, target; :mod:`budgetgym.agents.privileged`); the actor, which
    evaluation and export serve, reads the observation alone (algorithms whose spec supports
    it)."""

    @field_validator("exclude_features")
    @classmethod
    def _known_features(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from budgetgym.agents.features import excluded_indices

        excluded_indices(value)
        return value

    @field_validator("net_arch")
    @classmethod
    def _net_arch_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            bad = sorted(set(value) - {"pi", "vf", "qf"})
            if bad:
                raise ValueError(f"net_arch keys must be pi, vf or qf, got {', '.join(bad)}")
        return value

    def sb3_kwargs(self, *, actor_critic: bool, recurrent: bool) -> dict[str, Any]:
        """The ``policy_kwargs`` dict (torch activation class resolved) of an SB3
        ``ActorCriticPolicy`` (``actor_critic``: with ``log_std_init`` and ``ortho_init``), or
        of a recurrent one (``recurrent``: with the LSTM's arguments too)."""
        import torch.nn as nn

        activation = {
            "tanh": nn.Tanh,
            "relu": nn.ReLU,
            "elu": nn.ELU,
            "leaky_relu": nn.LeakyReLU,
            "gelu": nn.GELU,
            "silu": nn.SiLU,
        }[self.activation_fn]
        arch = (
            {key: list(val) for key, val in self.net_arch.items()}
            if isinstance(self.net_arch, dict)
            else list(self.net_arch)
        )
        kwargs: dict[str, Any] = {"net_arch": arch, "activation_fn": activation}
        if actor_critic:
            kwargs.update(log_std_init=self.log_std_init, ortho_init=self.ortho_init)
        if self.action_weight_decay > 0:  # validated: algorithms that support it
            kwargs.update(action_weight_decay=self.action_weight_decay)
        else:
            kwargs.update(log_std_init=self.log_std_init)
        if self.exclude_features or self.privileged_critic:  # the actor's subset
            from budgetgym.agents.features import ObservationSubset

            kwargs.update(
                features_extractor_class=ObservationSubset,
                features_extractor_kwargs={"exclude": list(self.exclude_features)},
            )
        if recurrent:
            kwargs.update(
                lstm_hidden_size=self.lstm_hidden_size,
                enable_critic_lstm=self.enable_critic_lstm,
            )
        return kwargs


#: Hyperparameters of budgetgym's own, not SB3 constructor arguments.
OWN_FIELDS = frozenset({"lr_schedule", "scenario_advantage_norm"})


class HyperParams(Frozen):
    """Base of an algorithm's hyperparameters (``AlgorithmSpec.hyperparams``).

    A subclass declares the SB3 constructor arguments it exposes as fields, among them
    ``learning_rate`` (float), ``lr_schedule`` (``constant`` or ``linear``), ``gamma`` (the
    discount, also ``VecNormalize``'s) and ``policy_kwargs`` (:class:`PolicyKwargs`).
    """

    def sb3_kwargs(self, *, actor_critic: bool, recurrent: bool) -> dict[str, Any]:
        """Keyword arguments for the SB3 constructor (besides policy and env); ``actor_critic``
        and ``recurrent`` select the policy arguments, see :meth:`PolicyKwargs.sb3_kwargs`."""
        kwargs = self.model_dump(exclude={"policy_kwargs", *OWN_FIELDS})
        kwargs["learning_rate"] = _schedule(self.learning_rate, self.lr_schedule)
        kwargs["policy_kwargs"] = self.policy_kwargs.sb3_kwargs(
            actor_critic=actor_critic, recurrent=recurrent
        )
        return kwargs


class PPOParams(HyperParams):
    """Arguments of ``stable_baselines3.PPO`` (and ``sb3_contrib.RecurrentPPO``)."""

    learning_rate: Annotated[StrictFloat, Field(gt=0)] = 3.0e-4
    """Adam step size (constant, or linearly decayed with ``lr_schedule: linear``)."""
    lr_schedule: Literal["constant", "linear"] = "constant"
    """``linear`` decays the learning rate to 0 at ``total_timesteps`` (rl-zoo's ``lin_``)."""
    n_steps: PositiveInt = 168
    """Steps collected per campaign between updates (rollout length)."""
    batch_size: PositiveInt = 2688
    """Minibatch size; must divide ``n_steps * n_envs``."""
    n_epochs: PositiveInt = 10
    """Passes over each rollout."""
    gamma: Annotated[StrictFloat, Field(gt=0, le=1)] = 0.995
    """Discount factor (also used by reward normalization)."""
    gae_lambda: Annotated[StrictFloat, Field(ge=0, le=1)] = 0.95
    """GAE bias-variance trade-off."""
    clip_range: Annotated[StrictFloat, Field(gt=0)] = 0.2
    """PPO ratio clipping."""
    ent_coef: NonNegFloat = 0.0
    """Entropy bonus."""
    vf_coef: NonNegFloat = 0.5
    """Value-loss weight."""
    max_grad_norm: Annotated[StrictFloat, Field(gt=0)] = 0.5
    """Gradient clipping norm."""
    target_kl: Annotated[StrictFloat, Field(gt=0)] | None = None
    """Early stop of an update when the approximate KL exceeds this (None: off)."""
    normalize_advantage: StrictBool = True
    """Normalize advantages per minibatch."""
    scenario_advantage_norm: StrictBool = False
    """Before each update, standardize the advantages within each scenario's campaigns
    (``ScenarioAdvantageNorm``), so that no scenario's noise sets the others' step size."""
    use_sde: StrictBool = False
    """Generalized state-dependent exploration (gSDE, Raffin et al. 2022) instead of independent
    Gaussian noise; ``log_std_init`` then sets the noise weights' log-sd (rl-zoo uses -2)."""
    sde_sample_freq: Annotated[Integer, Field(ge=-1)] = -1
    """With ``use_sde``: resample the noise every this many steps (-1: once per rollout)."""
    policy_kwargs: PolicyKwargs = PolicyKwargs()
    """Network architecture."""

    @model_validator(mode="after")
    def _logits_noise_without_sde(self) -> PPOParams:
        if self.use_sde and self.policy_kwargs.log_std_init_logits is not None:
            raise ValueError("policy_kwargs.log_std_init_logits does not apply with use_sde")
        return self


class SACParams(HyperParams):
    """Arguments of ``stable_baselines3.SAC``."""

    learning_rate: Annotated[StrictFloat, Field(gt=0)] = 3.0e-4
    """Adam step size."""
    lr_schedule: Literal["constant", "linear"] = "constant"
    """``linear`` decays the learning rate to 0 at ``total_timesteps``."""
    buffer_size: PositiveInt = 300_000
    """Replay buffer capacity (transitions)."""
    learning_starts: Annotated[Integer, Field(ge=0)] = 10_000
    """Transitions collected before the first update."""
    batch_size: PositiveInt = 512
    """Minibatch size."""
    tau: Annotated[StrictFloat, Field(gt=0, le=1)] = 0.005
    """Target network soft-update rate."""
    gamma: Annotated[StrictFloat, Field(gt=0, le=1)] = 0.995
    """Discount factor."""
    train_freq: PositiveInt = 1
    """Env steps (of all campaigns at once) between updates."""
    gradient_steps: Integer = 4
    """Gradient steps per update (-1: as many as transitions collected)."""
    ent_coef: str | StrictFloat = "auto"
    """Entropy coefficient, or ``auto`` to learn it."""
    policy_kwargs: PolicyKwargs = PolicyKwargs(net_arch=(256, 256), activation_fn="relu")
    """Network architecture."""

    @model_validator(mode="after")
    def _no_logits_noise(self) -> SACParams:
        if self.policy_kwargs.log_std_init_logits is not None:
            raise ValueError("policy_kwargs.log_std_init_logits applies to PPO only")
        return self


class LinearSchedule:
    """Learning rate decayed linearly to 0 (``progress_remaining`` goes from 1 to 0); picklable."""

    def __init__(self, initial: float) -> None:
        self.initial = initial

    def __call__(self, progress_remaining: float) -> float:
        return self.initial * max(progress_remaining, 0.0)


def _schedule(value: float, kind: str) -> Any:
    if kind == "constant":
        return value
    return LinearSchedule(value)
