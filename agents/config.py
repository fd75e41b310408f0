"""Typed, frozen experiment configs loaded from YAML (``experiments/*.yaml``).

A config has five parts::

    algorithm: ppo   # ppo | sac | recurrent_ppo | dagger | ars (budgetgym.agents.algorithms)
    seed: 0
    total_timesteps: 2.0e+6
    env: {scenario: mixed, n_envs: 64, reward_mode: gmv_roi_penalty, ...}
    hyperparams: {learning_rate: 3.0e-4, n_steps: 168, ...}   # SB3 argument names
    normalize: {norm_obs: true, norm_reward: true, ...}       # VecNormalize arguments
    eval: {eval_freq: 100000, n_eval_episodes: 64, ...}
    checkpoint: {save_freq: 200000}
    lagrangian: {constraint: miss_rate, target: 0.05, kp: 1.0, ki: 0.2, kd: 0.0}   # optional
    imitation: {iterations: 4, ...}   # dagger's settings; for ppo and ars, a warm start
    ars: {n_delta: 16, ...}           # ars's settings (Augmented Random Search)

Every model rejects unknown keys (``extra="forbid"``) and is immutable, and its scalars are
strictly typed (``n_envs: true`` or ``norm_obs: "yes"`` fail; a whole float such as ``6.0e+6``
counts as an integer). A key given twice in one YAML mapping and an empty (or comment-only)
file are refused: ``algorithm: ppo`` asks for the defaults. Hyperparameter fields are named
exactly as the Stable-Baselines3 constructor arguments, so the mapping to the algorithm is
``ALGO(**config.sb3_kwargs())``; each algorithm's model is its registry entry's
(:mod:`budgetgym.agents.algorithms`). Validation errors are turned into one
``ValueError`` sentence naming the key, what was expected and, for a misspelt key, the closest
valid one.

Precedence is defaults < YAML < ``KEY=VALUE`` overrides (``budgetgym train --set``) < dedicated
command-line flags (``--seed``, ``--total-timesteps``), resolved in :func:`load_config`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import yaml
from pydantic import (
    BaseModel,
    Field,
    SerializeAsAny,
    StrictBool,
    StrictFloat,
    ValidationError,
    field_validator,
    model_validator,
)

import budgetgym
from budgetgym.agents.algorithms import ALGORITHMS, algorithm_spec, supporting
from budgetgym.agents.hyperparams import Frozen as _Frozen
from budgetgym.agents.hyperparams import (
    HyperParams,
    Integer,
    NonNegFloat,
    PolicyKwargs,
    PositiveInt,
    PPOParams,
    RuleBase,
    unknown_name,
)
from budgetgym.agents.limits import (
    check_campaigns,
    check_episodes,
    check_horizon,
    observation_bytes,
    oracle_market_bytes,
)
from budgetgym.agents.roi_guard import RoiGuard
from budgetgym.envs import HORIZON_HOURS, REWARD_MODES, SCENARIO_NAMES, check_scenario
from budgetgym.envs.scenario_specs import is_scenario_path

EXPERIMENTS_DIR = Path(budgetgym.__file__).parent / "experiments"
#: Torch device types a run trains on (``device``; or ``auto``).
DEVICE_TYPES = ("cpu", "cuda", "mps")


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------
def _check_scenario(name: str) -> None:
    """A scenario name or the path of a valid scenario file, else ``ValueError``."""
    if is_scenario_path(name):
        check_scenario(name)
    elif name not in SCENARIO_NAMES:
        raise ValueError(unknown_name("scenario", name, SCENARIO_NAMES))


class EnvConfig(_Frozen):
    """The training environment: one batched ``BudgetVecEnv`` per scenario."""

    scenario: str | tuple[str, ...] = "mixed"
    """Scenario name, or a list of names (campaigns are split between them, see
    ``scenario_weights``)."""
    scenario_weights: tuple[PositiveInt, ...] | None = None
    """Relative numbers of training campaigns of the listed scenarios (default: equal). ``[3,
    1]`` with ``n_envs: 64`` trains 48 campaigns of the first and 16 of the second; each share
    of ``n_envs`` must be whole. Validation still weighs the listed scenarios equally."""
    n_envs: PositiveInt = 64
    """Campaigns stepped in parallel (the total over all listed scenarios)."""
    reward_mode: str = "gmv_roi_penalty"
    """``gmv``, ``gmv_roi_penalty`` or ``profit`` (see the simulator docs)."""
    roi_penalty_coef: NonNegFloat = 1.0
    """Weight of the end-of-campaign penalty for missing the target ROI."""
    horizon_hours: PositiveInt = HORIZON_HOURS
    """Episode length in hours (168 = one week)."""
    reward_shaping: Literal["none", "dense_roi_penalty"] = "none"
    """``dense_roi_penalty``: charge the ROI penalty hourly as it changes (training only)."""
    roi_miss_penalty: NonNegFloat = 0.0
    """Training only: subtracted from the reward at the end of each campaign that misses its ROI
    target, whatever the size of the shortfall (the evaluation's ROI-miss rate counts misses,
    not their size). In reward units: GMV / budget, so 0.1 is a tenth of the budget in GMV."""
    paired_baseline: RuleBase = "none"
    """Training only: a control variate from common random numbers. Each training campaign has a
    twin on the same seed (same traffic, prices and conversion luck) run by this rule; the
    twin's hourly reward is subtracted from the agent's. The twin does not depend on the
    agent's actions, so the policy gradient keeps its expectation, while the campaign's luck
    (its hidden CVR, the traffic it met) leaves the returns."""
    twin_pays_roi_charge: StrictBool = False
    """With ``paired_baseline`` and ``reward_shaping: dense_roi_penalty``: the twin pays its
    own hourly ROI charge too, so what is subtracted is its full shaped reward (the luck in the
    ROI penalty cancels as well). Without it the twin's subtracted reward is its GMV alone."""

    @field_validator("scenario")
    @classmethod
    def _known_scenarios(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        names = (value,) if isinstance(value, str) else value
        if not names:
            raise ValueError("needs at least one scenario name")
        for name in names:
            _check_scenario(name)
        if len(set(names)) != len(names):
            raise ValueError("lists a scenario twice")
        return value

    @field_validator("n_envs")
    @classmethod
    def _bounded_n_envs(cls, value: int) -> int:
        check_campaigns(value, "one hour of their observations", observation_bytes(value))
        return value

    @field_validator("horizon_hours")
    @classmethod
    def _bounded_horizon(cls, value: int) -> int:
        check_horizon(value)
        return value

    @field_validator("reward_mode")
    @classmethod
    def _known_reward_mode(cls, value: str) -> str:
        if value not in REWARD_MODES:
            raise ValueError(unknown_name("reward mode", value, REWARD_MODES))
        return value

    @model_validator(mode="after")
    def _shaping_needs_penalty(self) -> EnvConfig:
        if self.reward_shaping == "dense_roi_penalty" and self.reward_mode != "gmv_roi_penalty":
            raise ValueError(
                "reward_shaping dense_roi_penalty spreads the ROI penalty of reward_mode "
                f"gmv_roi_penalty over the hours; it does not apply to {self.reward_mode!r}"
            )
        if self.twin_pays_roi_charge and (
            self.paired_baseline == "none" or self.reward_shaping != "dense_roi_penalty"
        ):
            raise ValueError(
                "twin_pays_roi_charge needs paired_baseline (a twin) and reward_shaping "
                "dense_roi_penalty (an hourly charge for it to pay)"
            )
        return self

    @property
    def scenarios(self) -> tuple[str, ...]:
        """The scenario names as a tuple (one element for a single scenario)."""
        return (self.scenario,) if isinstance(self.scenario, str) else tuple(self.scenario)

    @property
    def _weights(self) -> tuple[int, ...]:
        return self.scenario_weights or (1,) * len(self.scenarios)

    @property
    def campaigns_per_scenario(self) -> tuple[int, ...]:
        """Training campaigns of each listed scenario (``n_envs`` split by the weights)."""
        return tuple(self.n_envs * w // sum(self._weights) for w in self._weights)

    @model_validator(mode="after")
    def _split_exactly(self) -> EnvConfig:
        weights = self._weights
        if len(weights) != len(self.scenarios):
            raise ValueError(
                f"scenario_weights has {len(weights)} weights for {len(self.scenarios)} "
                "scenarios; give one per listed scenario, or null for equal shares"
            )
        if any(self.n_envs * w % sum(weights) for w in weights):
            raise ValueError(
                f"n_envs ({self.n_envs}) does not split into whole numbers of campaigns in the "
                f"proportions {list(weights)} of the scenarios {list(self.scenarios)}"
            )
        return self


# --------------------------------------------------------------------------------------------
# Normalization, evaluation, checkpoints
# --------------------------------------------------------------------------------------------
class NormalizeConfig(_Frozen):
    """``VecNormalize`` arguments (its ``gamma`` is the algorithm's)."""

    norm_obs: StrictBool = True
    """Running mean/std normalization of observations."""
    norm_reward: StrictBool = True
    """Scale rewards by the running std of the discounted return."""
    clip_obs: Annotated[StrictFloat, Field(gt=0)] = 10.0
    """Clip normalized observations to ``[-clip_obs, clip_obs]``."""
    clip_reward: Annotated[StrictFloat, Field(gt=0)] = 10.0
    """Clip normalized rewards."""


class EvalConfig(_Frozen):
    """Periodic evaluation on validation seeds and the final held-out comparison."""

    eval_freq: Annotated[Integer, Field(ge=0)] = 200_000
    """Env steps (all campaigns counted) between evaluations; 0 disables periodic evaluation."""
    n_eval_episodes: PositiveInt = 64
    """Validation campaigns per scenario (seeds from 900,000)."""
    references: StrictBool = True
    """Log constant reference scalars for the best baseline and the oracle on the same seeds."""
    final_episodes: Annotated[Integer, Field(ge=0)] = 200
    """Held-out campaigns per scenario in the final comparison (seeds from 1,000,000; 0: skip)."""
    final_scenarios: tuple[str, ...] | None = None
    """Scenarios of the final comparison (default: every scenario)."""

    @field_validator("final_episodes")
    @classmethod
    def _bounded_final_episodes(cls, value: int) -> int:
        check_episodes(value)
        return value

    @field_validator("final_scenarios")
    @classmethod
    def _known(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in value or ():
            _check_scenario(name)
        return value


class CheckpointConfig(_Frozen):
    """Periodic checkpoints (model, optimizer and normalization statistics together)."""

    save_freq: Annotated[Integer, Field(ge=0)] = 500_000
    """Env steps between checkpoints (0: only at the end or on Ctrl-C)."""
    keep_last: PositiveInt = 3
    """Periodic checkpoints kept on disk (older ones are deleted)."""


class LagrangianConfig(_Frozen):
    """Constrained training (:mod:`budgetgym.agents.lagrangian`): the reward pays
    ``reward - lambda * cost`` for an ROI constraint ``J_c <= target``, and a PID controller
    updates ``lambda >= 0`` from the campaigns finished in each rollout. The multiplier replaces
    the fixed ROI penalty in training: the training campaigns pay GMV (``profit`` with
    ``reward_mode: profit``), while ``reward_mode: gmv_roi_penalty`` with ``roi_penalty_coef``
    still scores validation (``best/``)."""

    constraint: Literal["miss_rate", "expected_shortfall"] = "miss_rate"
    """``miss_rate``: the share of campaigns ending below their ROI target;
    ``expected_shortfall``: the mean shortfall ``max(0, R * spend - GMV) / B`` per campaign."""
    target: NonNegFloat = 0.05
    """The constraint's limit ``d``: a miss rate in [0, 1), or a shortfall per campaign in
    reward units (GMV / budget)."""
    kp: NonNegFloat = 1.0
    """Proportional gain: ``lambda`` answers the current violation ``J_c - d`` at once."""
    ki: NonNegFloat = 0.2
    """Integral gain: ``lambda`` grows with the violation summed over updates (clipped at 0)."""
    kd: NonNegFloat = 0.0
    """Derivative gain on the rise of ``J_c`` since the last update (damps overshoot)."""
    initial_lambda: NonNegFloat = 0.0
    """``lambda`` before the first update (the integral starts at ``initial_lambda / ki``)."""
    max_lambda: Annotated[StrictFloat, Field(gt=0)] | None = None
    """Cap on ``lambda`` (None: none). The integral is held at ``max_lambda / ki`` (anti-windup),
    so a target out of reach does not wind it up. Above the price at which no campaign gains
    from a miss, a larger ``lambda`` leaves the optimum unchanged and only drowns the GMV."""

    @model_validator(mode="after")
    def _moves_within_range(self) -> LagrangianConfig:
        if self.kp == self.ki == self.kd == 0:
            raise ValueError("kp, ki and kd are all 0, so lambda never moves; give one a gain > 0")
        if self.constraint == "miss_rate" and self.target >= 1:
            raise ValueError(f"target {self.target} is not a miss rate below 1")
        if self.max_lambda is not None and self.initial_lambda > self.max_lambda:
            raise ValueError(
                f"initial_lambda {self.initial_lambda} is above max_lambda {self.max_lambda}"
            )
        return self


# --------------------------------------------------------------------------------------------
# Imitation of the planner (budgetgym.agents.imitation)
# --------------------------------------------------------------------------------------------
class ImitationConfig(_Frozen):
    """Behaviour cloning of a privileged reference, then DAgger (``algorithm: dagger``, or a
    warm start of PPO's or ARS's actor). Campaigns are training campaigns of ``env``'s
    scenarios."""

    teacher: Literal["planner", "planner_cc"] = "planner"
    """The reference imitated (it reads the campaigns' true parameters; the student does not)."""
    teacher_alpha: Annotated[StrictFloat, Field(gt=0, lt=0.5)] | None = None
    """``planner_cc``'s risk: the share of campaigns it lets end below their target (default
    None: the reference's 0.05). Below 0.05 the teacher plans to a wider ROI margin, read from
    the shipped calibration of each training scenario, and the student inherits it."""
    bc_campaigns: PositiveInt = 512
    """Campaigns the teacher plays alone for the behaviour-cloning dataset."""
    iterations: Annotated[Integer, Field(ge=0)] = 4
    """DAgger iterations after behaviour cloning (0: behaviour cloning only)."""
    campaigns_per_iteration: PositiveInt = 256
    """Fresh campaigns of each DAgger iteration, played by the student-teacher mixture."""
    beta_decay: Annotated[StrictFloat, Field(ge=0, le=1)] = 0.5
    """Iteration ``i`` (from 1) follows the teacher's action with probability
    ``beta_decay ** i`` at each campaign-hour, the student's otherwise (Ross et al. 2011)."""
    epochs: PositiveInt = 30
    """Most passes over the aggregated dataset per fit."""
    patience: PositiveInt = 3
    """Epochs without a better held-out loss before a fit stops (the best weights are kept)."""
    batch_size: PositiveInt = 2048
    """Minibatch of labelled states."""
    learning_rate: Annotated[StrictFloat, Field(gt=0)] = 1.0e-3
    """Adam step size of the fits."""
    holdout_frac: Annotated[StrictFloat, Field(gt=0, lt=1)] = 0.1
    """Share of the campaigns whose states are held out of the fits for early stopping."""
    pace_expectile: Annotated[StrictFloat, Field(gt=0, lt=1)] = 0.5
    """The expectile of the teacher's pace (action entry 0) that the student learns among
    states it cannot tell apart (asymmetric least squares, Newey & Powell 1987). 0.5: the mean
    (squared error). Below 0.5 a cautious student: asking for more than the label costs
    ``(1 - tau) / tau`` times what asking for less does, so where campaigns that look alike
    call for different paces it spends like the weaker ones. The channel logits keep the
    squared error."""

    @model_validator(mode="after")
    def _alpha_needs_planner_cc(self) -> ImitationConfig:
        if self.teacher_alpha is not None and self.teacher != "planner_cc":
            raise ValueError(
                f"teacher_alpha is planner_cc's risk; the teacher is {self.teacher!r}: "
                "set teacher: planner_cc or drop teacher_alpha"
            )
        return self

    def states(self, horizon_hours: int) -> int:
        """Labelled states collected in all: every campaign's hours."""
        return (self.bc_campaigns + self.iterations * self.campaigns_per_iteration) * horizon_hours


# --------------------------------------------------------------------------------------------
# Augmented Random Search (budgetgym.agents.random_search)
# --------------------------------------------------------------------------------------------
class ARSConfig(_Frozen):
    """Augmented Random Search (``algorithm: ars``): each generation plays ``2 n_delta``
    perturbations of the actor on the same ``env.n_envs`` fresh training campaigns."""

    n_delta: PositiveInt = 16
    """Random directions per generation (each played as +delta and -delta)."""
    n_top: PositiveInt = 8
    """Directions kept for the step: those with the best return of their two candidates."""
    delta_std: Annotated[StrictFloat, Field(gt=0)] = 0.05
    """Standard deviation of the perturbations, in the actor's parameter units."""
    learning_rate: Annotated[StrictFloat, Field(gt=0)] = 0.02
    """Step size, divided by ``n_top`` times the standard deviation of the kept returns."""

    @model_validator(mode="after")
    def _top_within_directions(self) -> ARSConfig:
        if self.n_top > self.n_delta:
            raise ValueError(f"n_top ({self.n_top}) must be at most n_delta ({self.n_delta})")
        return self


# --------------------------------------------------------------------------------------------
# The whole experiment
# --------------------------------------------------------------------------------------------
class TrainConfig(_Frozen):
    """A complete training experiment."""

    algorithm: str = "ppo"
    """A registered algorithm (:mod:`budgetgym.agents.algorithms`): ``ppo`` (default), ``sac``,
    ``recurrent_ppo`` (sb3-contrib), ``dagger`` (PPO's actor trained by imitation of the
    planner: :mod:`budgetgym.agents.imitation`) or ``ars`` (PPO's actor trained by Augmented
    Random Search: :mod:`budgetgym.agents.random_search`), or one a researcher registered."""
    seed: Annotated[Integer, Field(ge=0, lt=800_000)] = 0
    """Seeds torch, numpy and the training campaigns (evaluation seeds are fixed ranges)."""
    total_timesteps: PositiveInt = 2_000_000
    """Env steps to train for (one step = one campaign-hour)."""
    device: str = "cpu"
    """Torch device: ``cpu``, ``cuda``, ``cuda:N``, ``mps``, ... or ``auto`` (a GPU when
    available). Checked against torch's device types here and against this machine's devices
    when training starts (:func:`check_device_available`)."""
    residual_base: RuleBase = "none"
    """``obs_pacing``, ``obs_pacing_unthrottled``, ``obs_thompson`` or ``obs_price_aware``: the
    network learns a correction added to that rule's action
    (:mod:`budgetgym.agents.residual`); ``none``: it outputs the action itself."""
    roi_guard: RoiGuard | None = None
    """A guard on the policy's pace that reads its observed ROI, ``{tau, gain, after}``
    (:mod:`budgetgym.agents.roi_guard`): part of the policy in training, evaluation and the
    ONNX export. None: no guard."""
    env: EnvConfig = EnvConfig()
    hyperparams: SerializeAsAny[HyperParams] = PPOParams()
    """The algorithm's hyperparameter model (``AlgorithmSpec.hyperparams``)."""
    normalize: NormalizeConfig = NormalizeConfig()
    eval: EvalConfig = EvalConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    lagrangian: LagrangianConfig | None = None
    """Constrained training with a PID Lagrange multiplier (None: the fixed penalties of
    ``env``)."""
    imitation: ImitationConfig | None = None
    """``algorithm: dagger``: its settings (default: ``ImitationConfig()``). ``ppo``: its actor
    starts from behaviour cloning and DAgger with these settings, then PPO fine-tunes it."""

    ars: ARSConfig | None = None
    """``algorithm: ars``: its settings (default: ``ARSConfig()``)."""

    @model_validator(mode="before")
    @classmethod
    def _ars_defaults(cls, data: Any) -> Any:
        """``algorithm: ars`` without an ``ars`` section: the default settings."""
        if isinstance(data, dict) and data.get("algorithm") == "ars" and not data.get("ars"):
            data = {**data, "ars": {}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _dagger_defaults(cls, data: Any) -> Any:
        """An algorithm that learns by imitation alone (``dagger``): default ``imitation``
        settings, and ``total_timesteps`` = the labelled states they collect (when not given)."""
        if not isinstance(data, dict):
            return data
        algorithm = data.get("algorithm", "ppo")
        if not isinstance(algorithm, str) or ALGORITHMS.get(algorithm) is None:
            return data
        if algorithm_spec(algorithm).learns_from_reward:
            return data
        try:
            imitation = ImitationConfig.model_validate(data.get("imitation") or {})
            horizon = EnvConfig.model_validate(data.get("env") or {}).horizon_hours
        except ValidationError:  # reported by the fields' own validation
            return data
        data = {**data, "imitation": data.get("imitation") or imitation}
        if "total_timesteps" not in data:
            data["total_timesteps"] = imitation.states(horizon)
        return data

    @model_validator(mode="before")
    @classmethod
    def _hyperparams_for_algorithm(cls, data: Any) -> Any:
        """Parse ``hyperparams`` with the model of the chosen algorithm."""
        if not isinstance(data, dict):
            return data
        params = data.get("hyperparams")
        model = hyperparams_model(data.get("algorithm", "ppo"))
        if params is None:
            return {**data, "hyperparams": model()}
        if isinstance(params, dict):
            return {**data, "hyperparams": model.model_validate(params)}
        return data

    @field_validator("algorithm")
    @classmethod
    def _registered(cls, value: str) -> str:
        algorithm_spec(value)
        return value

    @field_validator("device")
    @classmethod
    def _torch_device(cls, value: str) -> str:
        if value == "auto":
            return value
        try:
            kind = torch.device(value).type
        except RuntimeError:
            kind = None
        if kind not in DEVICE_TYPES:
            raise ValueError(
                f"{value!r} is not a training device; use cpu, cuda, cuda:N, mps or auto"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        n_eval, horizon = self.eval.n_eval_episodes, self.env.horizon_hours
        check_campaigns(
            n_eval,
            "the oracle's hourly market of the validation campaigns",
            oracle_market_bytes(n_eval, horizon),
            key="eval.n_eval_episodes",
        )
        hp = self.hyperparams
        spec = algorithm_spec(self.algorithm)
        if not isinstance(hp, spec.hyperparams):
            raise ValueError(f"hyperparams are not those of algorithm {self.algorithm!r}")
        if self.lagrangian is not None:
            if not spec.learns_from_reward:
                raise ValueError(
                    f"lagrangian applies to reinforcement learning "
                    f"({', '.join(supporting('learns_from_reward'))}), not to algorithm "
                    f"{self.algorithm}, which has no reward"
                )
            _check_lagrangian_alone(self.env)
            if self.normalize.norm_reward:
                raise ValueError(
                    "lagrangian prices each unit of cost at lambda in reward units, but "
                    "normalize.norm_reward divides the reward by a running return std that grows "
                    "with lambda and clips it at clip_reward, which caps the price the policy "
                    "sees; set normalize.norm_reward: false"
                )
        if hp.policy_kwargs.action_weight_decay > 0 and not spec.action_weight_decay:
            raise ValueError(_only("policy_kwargs.action_weight_decay", spec.name))
        if self.ars is not None and self.algorithm != "ars":
            raise ValueError(f"ars applies to algorithm ars only, not to {self.algorithm}")
        if self.imitation is not None and not spec.imitation:
            raise ValueError(_only("imitation", spec.name))
        if hp.policy_kwargs.privileged_critic and not spec.privileged_critic:
            raise ValueError(_only("policy_kwargs.privileged_critic", spec.name))
        if spec.check is not None:
            spec.check(self)
        return self

    @property
    def training_reward_mode(self) -> str:
        """What the training campaigns pay: ``env.reward_mode``, but GMV where a wrapper or
        the Lagrange multiplier prices the ROI instead (``reward_shaping:
        dense_roi_penalty``, or ``lagrangian`` under ``gmv_roi_penalty``)."""
        mode = self.env.reward_mode
        dense = self.env.reward_shaping == "dense_roi_penalty"
        if dense or (self.lagrangian is not None and mode == "gmv_roi_penalty"):
            return "gmv"
        return mode

    def sb3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the SB3 algorithm constructor (besides policy and env)."""
        return {
            **algorithm_spec(self.algorithm).sb3_kwargs(self.hyperparams),
            "seed": self.seed,
            "device": self.device,
        }

    def to_yaml(self) -> str:
        """The resolved config as YAML (loads back to an equal config)."""
        return yaml.safe_dump(_plain(self.model_dump(mode="json")), sort_keys=False)


def _check_lagrangian_alone(env: EnvConfig) -> None:
    """The multiplier prices the ROI constraint alone: refuse a fixed training price beside it."""
    if env.reward_shaping == "dense_roi_penalty":
        raise ValueError(
            "lagrangian replaces the fixed ROI penalty in training, so env.reward_shaping "
            "dense_roi_penalty (which charges roi_penalty_coef hourly) cannot be used with it; "
            "set env.reward_shaping: none"
        )
    if env.roi_miss_penalty > 0:
        raise ValueError(
            "lagrangian prices the ROI constraint with its multiplier, so env.roi_miss_penalty "
            f"({env.roi_miss_penalty}) cannot be added to it; set env.roi_miss_penalty: 0"
        )


def check_device_available(device: str, where: str = "device") -> None:
    """Raise ``ValueError`` when the torch ``device`` (a valid name, see ``TrainConfig.device``)
    is not on this machine: a CUDA or MPS device torch cannot reach, or a GPU index past the
    last. ``where`` names the setting in the message."""
    if device == "auto":
        return
    target = torch.device(device)
    if target.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (target.index or 0) >= count:
            raise ValueError(
                f"{where} {device!r} is not available: torch sees {count} CUDA device(s) on "
                "this machine; use cpu or auto."
            )
    elif target.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{where} 'mps' is not available on this machine; use cpu or auto.")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _only(key: str, algorithm: str) -> str:
    """The sentence refusing ``key`` for an ``algorithm`` whose spec does not support it."""
    feature = key.rpartition(".")[2]
    names = supporting(feature)
    noun = "algorithm" if len(names) == 1 else "algorithms"
    return f"{key} applies to {noun} {', '.join(names)} only, not {algorithm!r}"


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
class DuplicateKeyError(yaml.YAMLError):
    """A mapping in a YAML file gives the same key twice (YAML requires unique keys)."""


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e6`` and ``3e-4`` as floats (YAML 1.2 numbers) and raises
    ``DuplicateKeyError`` for a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue  # `<<` merges may be overridden; complex keys get SafeLoader's checks
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise DuplicateKeyError(
                    f"key {key!r} appears twice in one mapping (lines {first_line[key]} and "
                    f"{line}); keep one"
                )
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)


_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_YamlLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:float"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def resolve_config_path(path: str | Path) -> Path:
    """A config file path; a bare name such as ``ppo_default`` is looked up in experiments/."""
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    for name in (str(path), f"{path}.yaml"):
        bundled = EXPERIMENTS_DIR / name
        if bundled.is_file():
            return bundled
    available = ", ".join(sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"Config file {path} not found (bundled configs: {available}).")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a syntax error, a repeated key, an empty file or a non-mapping
    raises ``ValueError``."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YamlLoader)  # noqa: S506
    except yaml.YAMLError as err:
        raise ValueError(f"Config {path} is not valid YAML: {_one_line(str(err))}.") from None
    except UnicodeDecodeError:
        raise ValueError(f"Config {path} is not a UTF-8 text file.") from None
    if data is None:
        raise ValueError(
            f"Config {path} is empty (or only comments); to train with the defaults, write "
            "`algorithm: ppo` (or `{}`) in it."
        )
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ValueError(f"Config {path} must be a mapping of keys to values, got a {kind}.")
    return data


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Copy of ``data`` with ``a.b.c = value`` set (intermediate mappings created or copied)."""
    *parents, leaf = dotted.split(".")
    out = dict(data)
    node = out
    for depth, key in enumerate(parents):
        inner = node.get(key)
        if inner is None:
            inner = {}
        if not isinstance(inner, dict):
            where = ".".join(parents[: depth + 1])
            raise ValueError(f"Cannot set {dotted}: {where} is {inner!r}, not a mapping.")
        node[key] = dict(inner)
        node = node[key]
    node[leaf] = value
    return out


def validate_config(data: dict[str, Any], source: str = "config") -> TrainConfig:
    """Validate a raw mapping; errors become one ``ValueError`` sentence naming the key.

    ``hyperparams`` is validated first with the model of the chosen ``algorithm`` so that its
    errors name the algorithm's valid keys.
    """
    algorithm = data.get("algorithm", "ppo")
    params = data.get("hyperparams")
    if isinstance(params, dict) and isinstance(algorithm, str) and algorithm in ALGORITHMS:
        model = hyperparams_model(algorithm)
        try:
            data = {**data, "hyperparams": model.model_validate(params)}
        except ValidationError as err:
            problems = format_validation_error(err, algorithm, prefix=("hyperparams",))
            raise ValueError(f"Invalid {source}: {problems}") from None
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as err:
        raise ValueError(f"Invalid {source}: {format_validation_error(err, algorithm)}") from None


def parse_dotlist(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` overrides (``budgetgym train --set``) as ``{dotted key: value}``.

    The key is a dotted path into the config mapping (``hyperparams.learning_rate``), as in
    OmegaConf's and Hydra's dotlists. The value is read as YAML, exactly as in a config file:
    ``1e-4`` and ``2e6`` are numbers, ``true`` a boolean, ``null`` is None, ``[mixed,
    hit_product]`` a list, ``{pi: [64], vf: [64]}`` a mapping, anything else a string. A key
    given twice keeps its last value.

    Raises:
        ValueError: an item without ``=``, with an empty key part, or a value that is not YAML.
    """
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not all(key.split(".")):
            raise ValueError(
                f"Override {item!r} is not KEY=VALUE with a dotted KEY such as "
                "hyperparams.learning_rate=1e-4."
            )
        try:
            parsed[key] = yaml.load(text, Loader=_YamlLoader)  # noqa: S506
        except yaml.YAMLError as err:
            message = f"Override {item!r}: the value is not YAML ({_one_line(str(err))})."
            raise ValueError(message) from None
    return parsed


def load_config(
    path: str | Path, overrides: dict[str, Any] | None = None, dotlist: Sequence[str] = ()
) -> TrainConfig:
    """Load and validate a YAML config with command-line overrides.

    Precedence: the schema's defaults < the YAML < ``dotlist`` (``KEY=VALUE`` items, see
    :func:`parse_dotlist`) < ``overrides`` (dedicated flags such as ``--seed``: dotted keys to
    values, None meaning the flag was not given).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the YAML or an override is malformed, or the result does not validate (the
            message names the dotted key and, for a misspelt one, the closest valid key).
    """
    path = resolve_config_path(path)
    data = read_yaml(path)
    for key, value in parse_dotlist(dotlist).items():
        data = set_dotted(data, key, value)
    for key, value in (overrides or {}).items():
        if value is not None:
            data = set_dotted(data, key, value)
    source = f"config {path}" + (f" with overrides {' '.join(dotlist)}" if dotlist else "")
    return validate_config(data, source=source)


# --------------------------------------------------------------------------------------------
# Error messages
# --------------------------------------------------------------------------------------------
def hyperparams_model(algorithm: Any) -> type[HyperParams]:
    """The hyperparameter model of a registered algorithm name (PPO's for an unknown name,
    which the ``algorithm`` field reports)."""
    spec = ALGORITHMS.get(algorithm) if isinstance(algorithm, str) else None
    return PPOParams if spec is None else spec.hyperparams


def _valid_keys(parent: tuple[str, ...], algorithm: str) -> tuple[str, ...]:
    """Valid keys of the config section at ``parent`` (for "did you mean" hints)."""
    models: dict[tuple[str, ...], type[BaseModel]] = {
        (): TrainConfig,
        ("env",): EnvConfig,
        ("normalize",): NormalizeConfig,
        ("eval",): EvalConfig,
        ("checkpoint",): CheckpointConfig,
        ("lagrangian",): LagrangianConfig,
        ("imitation",): ImitationConfig,
        ("ars",): ARSConfig,
        ("hyperparams",): hyperparams_model(algorithm),
        ("hyperparams", "policy_kwargs"): PolicyKwargs,
    }
    model = models.get(parent)
    return tuple(model.model_fields) if model else ()


def format_validation_error(
    err: ValidationError, algorithm: Any = "ppo", prefix: tuple[str, ...] = ()
) -> str:
    """One clause per offending key (``key: what was expected, got VALUE``), joined by ``; ``."""
    problems: dict[str, str] = {}
    for item in err.errors():
        loc = prefix + tuple(str(p) for p in item["loc"] if not _is_union_tag(p))
        key = ".".join(loc) or "(top level)"
        if any(key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in problems):
            continue  # a union reports one error per member; the first says enough
        kind = item["type"]
        if kind == "extra_forbidden":
            valid = _valid_keys(loc[:-1], str(algorithm))
            hint = difflib.get_close_matches(loc[-1], valid, n=1)
            message = f"{key}: unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            if valid:
                message += f"; valid keys here: {', '.join(valid)}"
        elif kind == "missing":
            message = f"{key}: required key is missing"
        elif kind == "value_error":  # our own validators: the message is complete
            text = item["msg"].removeprefix("Value error, ").removesuffix(".")
            message = f"{key}: {text}" if loc else text
        else:
            text = item["msg"]
            message = f"{key}: {text[0].lower() + text[1:]}, got {item.get('input')!r}"
        problems[key] = message
    return "; ".join(problems.values()) + "."


def _is_union_tag(part: Any) -> bool:
    """Pydantic inserts the union member's type name into error locations; drop it."""
    return isinstance(part, str) and (
        part in ("str", "float", "int")
        or part.startswith(("tuple[", "dict[", "function-", "literal[", "constrained-"))
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())
