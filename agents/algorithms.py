"""The registry of training algorithms: one :class:`AlgorithmSpec` per config ``algorithm`` name.

A spec holds what the pipeline needs to know of an algorithm: its hyperparameter model (the
``hyperparams`` section of a config), where its model class lives (``"module:Class"``, imported
only when a model is built, as gymnasium's ``entry_point``), its SB3 policy, what it supports
(recurrent state, a replay buffer, the privileged critic, action weight decay, imitation, ONNX
export) and a check of a whole config. :mod:`budgetgym.agents.config` validates with it,
:func:`budgetgym.agents.checkpoints.new_model` builds and loads models with it, training saves
a replay buffer where it says so and :mod:`budgetgym.agents.export` exports its actor.

A researcher adds an algorithm with one call (docs/training.md, "Registering an algorithm")::

    register_algorithm(AlgorithmSpec("a2c", A2CParams, "stable_baselines3:A2C"))
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from budgetgym.agents.hyperparams import HyperParams, PPOParams, SACParams, unknown_name

#: How the exported graph computes the deterministic action from the actor's output: SB3's
#: Gaussian mean clipped to the action space (PPO family), or SAC's tanh-squashed mean.
ExportHead = Literal["gaussian", "squashed_gaussian"]


@dataclass(frozen=True)
class AlgorithmSpec:
    """One training algorithm of the registry.

    Attributes:
        name: the config's ``algorithm`` value.
        hyperparams: the model of the config's ``hyperparams`` section (its fields are the SB3
            constructor's arguments).
        entry_point: ``"module:Class"`` of the SB3-style model class (``Class(policy, env,
            **kwargs)``, ``learn``, ``set_parameters``), imported by :meth:`model_class`.
        policy: the SB3 policy name (``MlpPolicy``, ``MlpLstmPolicy``).
        actor_critic: the policy is an SB3 ``ActorCriticPolicy`` (takes ``log_std_init`` and
            ``ortho_init``).
        recurrent: the policy carries an LSTM state between steps (``predict`` takes it).
        replay_buffer: off-policy; checkpoints also save the replay buffer, resume loads it.
        privileged_critic: supports ``policy_kwargs.privileged_critic``.
        action_weight_decay: supports ``policy_kwargs.action_weight_decay``.
        imitation: accepts an ``imitation`` section (a warm start, or its training).
        learns_from_reward: trains on the reward (so ``lagrangian`` applies); False: trains by
            imitation alone, and its ``imitation`` section defaults to ``ImitationConfig()``.
        export: how the ONNX graph computes the action (None: the policy does not export).
        resumes: ``budgetgym train --resume`` continues an interrupted run (False: the model
            refuses, its training state is not saved).
        check: raises ``ValueError`` (one sentence naming the key) on a config this algorithm
            cannot train; called after the checks of the fields above.
    """

    name: str
    hyperparams: type[HyperParams]
    entry_point: str
    policy: str = "MlpPolicy"
    actor_critic: bool = True
    recurrent: bool = False
    replay_buffer: bool = False
    privileged_critic: bool = False
    action_weight_decay: bool = False
    imitation: bool = False
    learns_from_reward: bool = True
    export: ExportHead | None = "gaussian"
    resumes: bool = True
    check: Callable[[Any], None] | None = None

    def __post_init__(self) -> None:
        module, sep, attribute = self.entry_point.partition(":")
        if not (module and sep and attribute):
            raise ValueError(
                f"Algorithm {self.name!r}: entry_point must be 'module:Class', got "
                f"{self.entry_point!r}."
            )

    @property
    def class_name(self) -> str:
        """The model class's name (without importing it)."""
        return self.entry_point.partition(":")[2]

    def model_class(self) -> type:
        """The model class, imported now."""
        module, _, attribute = self.entry_point.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def sb3_kwargs(self, params: HyperParams) -> dict[str, Any]:
        """The constructor's keyword arguments for ``params`` (besides policy and env)."""
        return params.sb3_kwargs(actor_critic=self.actor_critic, recurrent=self.recurrent)


def check_rollout_batch(config: Any) -> None:
    """On-policy: ``batch_size`` must divide a rollout (``n_steps * n_envs``)."""
    hp = config.hyperparams
    rollout = hp.n_steps * config.env.n_envs
    if rollout % hp.batch_size:
        raise ValueError(
            f"hyperparams.batch_size ({hp.batch_size}) must be a factor of "
            f"n_steps * n_envs = {rollout}; use e.g. {_factor_near(rollout, hp.batch_size)}"
        )


def check_dagger(config: Any) -> None:
    """DAgger: ``total_timesteps`` is the number of labelled states its imitation collects."""
    states = config.imitation.states(config.env.horizon_hours)
    if config.total_timesteps != states:
        raise ValueError(
            f"total_timesteps ({config.total_timesteps:,}) of algorithm dagger must be the "
            "labelled states its imitation settings collect, (bc_campaigns + iterations "
            f"x campaigns_per_iteration) x horizon_hours = {states:,}; leave it out"
        )
    check_rollout_batch(config)


def check_ars(config: Any) -> None:
    """ARS plays its own campaigns (``budgetgym.agents.random_search``): the training env's
    reward wrappers, a residual rule and an ROI guard do not reach them, so they are refused."""
    env = config.env
    for key, value, plain in (
        ("residual_base", config.residual_base, "none"),
        ("roi_guard", config.roi_guard, None),
        ("env.paired_baseline", env.paired_baseline, "none"),
        ("env.reward_shaping", env.reward_shaping, "none"),
        ("env.roi_miss_penalty", env.roi_miss_penalty, 0),
    ):
        if value != plain:
            raise ValueError(
                f"{key} ({value!r}) does not apply to algorithm ars, which scores whole "
                f"campaigns it plays itself; "
                + ("leave it out" if plain is None else f"set {key}: {plain}")
            )


def _factor_near(total: int, wanted: int) -> int:
    """The factor of ``total`` closest to ``wanted``."""
    factors = [d for d in range(1, total + 1) if total % d == 0]
    return min(factors, key=lambda d: (abs(d - wanted), -d))


ALGORITHMS: dict[str, AlgorithmSpec] = {}


def register_algorithm(spec: AlgorithmSpec) -> AlgorithmSpec:
    """Add ``spec`` to the registry (its name must be new) and return it."""
    if spec.name in ALGORITHMS:
        raise ValueError(f"Algorithm {spec.name!r} is already registered.")
    ALGORITHMS[spec.name] = spec
    return spec


def unregister_algorithm(name: str) -> AlgorithmSpec:
    """Remove the algorithm ``name`` from the registry and return its spec."""
    algorithm_spec(name)
    return ALGORITHMS.pop(name)


def algorithm_spec(name: str) -> AlgorithmSpec:
    """The spec of a registered algorithm name, else ``ValueError`` listing the valid ones."""
    spec = ALGORITHMS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ValueError(unknown_name("algorithm", name, list(ALGORITHMS)))
    return spec


def supporting(feature: str) -> list[str]:
    """Names of the registered algorithms whose spec's boolean ``feature`` is true."""
    return [name for name, spec in ALGORITHMS.items() if getattr(spec, feature)]


def algorithm_name(model: Any) -> str:
    """Registry name of a model's algorithm (by its class name; else the lower-cased name)."""
    kind = type(model).__name__
    return next(
        (name for name, spec in ALGORITHMS.items() if spec.class_name == kind), kind.lower()
    )


register_algorithm(
    AlgorithmSpec(
        "ppo",
        PPOParams,
        "stable_baselines3:PPO",
        privileged_critic=True,
        action_weight_decay=True,
        imitation=True,
        check=check_rollout_batch,
    )
)
register_algorithm(
    AlgorithmSpec(
        "sac",
        SACParams,
        "stable_baselines3:SAC",
        actor_critic=False,
        replay_buffer=True,
        export="squashed_gaussian",
    )
)
register_algorithm(
    AlgorithmSpec(
        "recurrent_ppo",
        PPOParams,
        "sb3_contrib:RecurrentPPO",
        policy="MlpLstmPolicy",
        recurrent=True,
        check=check_rollout_batch,
    )
)
register_algorithm(
    AlgorithmSpec(
        "dagger",
        PPOParams,
        "budgetgym.agents.dagger:DAgger",
        action_weight_decay=True,
        imitation=True,
        learns_from_reward=False,
        resumes=False,
        check=check_dagger,
    )
)
register_algorithm(
    AlgorithmSpec(
        "ars",
        PPOParams,
        "budgetgym.agents.random_search:RandomSearch",
        imitation=True,
        resumes=False,
        check=check_ars,
    )
)
