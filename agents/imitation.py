"""Imitation of the planner: behaviour cloning, then DAgger (Ross, Gordon & Bagnell 2011).

The planner (:class:`~budgetgym.agents.planner.PlannerPolicy`) reads the campaigns' true
parameters; the student, SB3 PPO's actor, reads only observations. The student learns to map
an observation to the action the planner takes in that state, the planner's spend request
turned into the env's action by :func:`~budgetgym.envs.core.spend_to_action`:

1. **Behaviour cloning.** The planner plays ``bc_campaigns`` training campaigns; every
   campaign-hour gives a pair (observation, planner's action). The actor's mean action is fitted
   to the labels by mean squared error, with the states of a held-out share of the campaigns
   for early stopping (the weights of the best held-out loss are kept).
2. **DAgger.** Each iteration ``i`` plays ``campaigns_per_iteration`` fresh training campaigns
   with a mixture: at every campaign-hour the planner's action with probability
   ``beta_decay ** i``, the student's otherwise. Every visited state is labelled with the
   planner's action *in that state*, the new pairs join the dataset and the actor is fitted
   again on all of it. The student thus learns what to do in the states its own mistakes lead
   to, which behaviour cloning never shows it.

Relabelling is exact because the planner replans from the state it observes: every hour it
re-solves the rest of the horizon from the budget left and the GMV attributed so far (read from
the observation), and it predicts the GMV still pending from the spend the observation reports
for the last hour, whoever chose it. Stepped through a campaign alongside the student, it
returns the spend it would request from the current state. What it keeps from its plan at
reset is the expected trajectory of the returning-customer pool (its docstring says why).

The planner sometimes concentrates spend beyond what one action can request (more than
``MAX_PACE_MULT`` times even pacing: about a tenth of its campaign-hours). Such a label is the
closest action, the planner's split at the fastest pace, and its share is logged
(``imitation/capped_label_frac``).

A residual student (``residual_base``) learns the correction ``clip(label - rule, -1, 1)``,
so its deployed action ``clip(rule + correction, -1, 1)`` is the label. The observation
statistics of ``VecNormalize`` are set from the behaviour-cloning dataset and frozen for the
fits, so a trained run normalizes as it was fitted.

``algorithm: dagger`` trains :class:`~budgetgym.agents.dagger.DAgger`, PPO's model whose
``learn`` runs these stages (its step counter counts labelled states); its checkpoints,
evaluation and ONNX export are PPO's. For ``algorithm: ppo`` or ``ars`` with an ``imitation``
section, :func:`attach_imitation` fits the actor first (a warm start), then PPO or Augmented
Random Search fine-tunes it.

Campaigns are drawn from the training seed range only (``envs.scenarios.training_seeds``): the
validation (900,000+) and held-out (1,000,000+) campaigns stay unseen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.logger import configure
from stable_baselines3.common.policies import BaseModel

from budgetgym.agents.checkpoints import ObsNormalizer, SB3Policy
from budgetgym.agents.config import ImitationConfig, TrainConfig
from budgetgym.agents.dagger import DAgger
from budgetgym.agents.planner import PlannerPolicy
from budgetgym.agents.policy import PLANNER_CC, load_policy, unavailable
from budgetgym.agents.privileged import actor_input
from budgetgym.agents.progress import evaluation_progress
from budgetgym.agents.residual import base_action, residual_base_of, venv_channels
from budgetgym.agents.wrappers import training_guard
from budgetgym.envs.campaigns import BatchedCampaigns
from budgetgym.envs.core import MAX_PACE_MULT, spend_to_action
from budgetgym.envs.scenarios import TRAIN_SEED_LIMIT, training_seeds

#: States per forward pass when the held-out loss is computed (memory, not results).
_EVAL_CHUNK = 65_536


def teacher_action(
    spend_cny: np.ndarray, campaigns: BatchedCampaigns
) -> tuple[np.ndarray, np.ndarray]:
    """The action ``(n, k + 1)`` that requests ``spend_cny (n, k)`` in the campaigns' current
    hour, and whether it had to be capped ``(n,)``: a total above ``MAX_PACE_MULT`` times even
    pacing is scaled down to it (same split), the fastest the action can spend."""
    state = campaigns.state
    hours_left = campaigns.horizon_hours - state.hour
    cap = MAX_PACE_MULT * state.budget_left_cny / hours_left
    total = spend_cny.sum(axis=1)
    capped = total > cap
    scale = np.where(capped, cap / np.where(capped, total, 1.0), 1.0)
    action = spend_to_action(spend_cny * scale[:, None], state.budget_left_cny, hours_left)
    return action, capped


def load_teacher(name: str, alpha: float | None = None) -> Any:
    """The reference ``name`` to imitate, ``planner_cc`` at risk ``alpha`` if given.

    Raises:
        ValueError: an ``alpha`` for a teacher other than ``planner_cc``, or outside ``(0, 0.5)``.
    """
    if alpha is None:
        return load_policy(name)
    if name != PLANNER_CC:
        raise ValueError(f"A teacher's alpha is planner_cc's risk; the teacher is {name!r}.")
    return PlannerPolicy(alpha=alpha)


@dataclass
class Dataset:
    """Labelled states: what the student saw and what the teacher did there.

    Attributes:
        obs: raw observations ``(n, obs_dim)`` float32.
        actions: the teacher's actions in those states ``(n, k + 1)`` float32, in ``[-1, 1]``.
        seeds: the campaign seed of each state ``(n,)`` int64 (training seeds only).
        holdout: ``(n,)`` bool, states of the campaigns held out of the fits.
        capped: ``(n,)`` bool, labels capped at the fastest pace (see :func:`teacher_action`).
    """

    obs: np.ndarray
    actions: np.ndarray
    seeds: np.ndarray
    holdout: np.ndarray
    capped: np.ndarray

    def __len__(self) -> int:
        return len(self.obs)

    @classmethod
    def concat(cls, parts: list[Dataset]) -> Dataset:
        """One dataset of ``parts`` (in order)."""
        return cls(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__)
        )


def collect(
    scenario: str,
    seeds: np.ndarray,
    *,
    student: Any = None,
    beta: float = 1.0,
    rng: np.random.Generator | None = None,
    teacher: str = "planner",
    teacher_alpha: float | None = None,
    holdout_frac: float = 0.1,
    horizon_hours: int | None = None,
    progress: bool = False,
) -> tuple[Dataset, np.ndarray]:
    """Play one campaign per training seed with the teacher-student mixture and label every
    visited state with the teacher's action.

    Args:
        scenario: scenario name or file.
        seeds: training seeds ``(n,)`` (``ValueError`` for any other).
        student: a policy with ``predict`` (and ``reset``), or None for the teacher alone.
        beta: probability that a campaign-hour follows the teacher (1 without a student).
        rng: draws the mixture and the held-out campaigns.
        teacher: ``planner`` or ``planner_cc``.
        teacher_alpha: ``planner_cc``'s risk (``None``: the reference's, 0.05).
        holdout_frac: share of the campaigns whose states are held out of the fits (at least
            one campaign, and one kept, of ``n >= 2``).
        horizon_hours: episode length (default: the scenario's).
        progress: show a bar over the campaign-hours.

    Returns:
        The dataset (``n * horizon_hours`` states, hour-major) and the student's actions in the
        visited states ``(n * horizon_hours, k + 1)`` (NaN without a student).
    """
    seeds = training_seeds(seeds, "Imitation data")
    if student is None and beta != 1.0:
        raise ValueError(f"Without a student every action is the teacher's: beta 1, got {beta}.")
    rng = np.random.default_rng() if rng is None else rng
    kwargs = {} if horizon_hours is None else {"horizon_hours": horizon_hours}
    campaigns = BatchedCampaigns(scenario, **kwargs)
    planner = load_teacher(teacher, teacher_alpha)
    obs, _ = campaigns.reset(seeds)
    planner.reset(campaigns)
    if student is not None:
        student.reset(campaigns)
    n, horizon = len(seeds), campaigns.horizon_hours
    holdout = np.zeros(n, dtype=bool)  # at least one campaign held out and one not
    holdout[rng.choice(n, min(max(round(holdout_frac * n), 1), n - 1), replace=False)] = True
    obs_rows, labels, capped_rows, own_rows = [], [], [], []
    bar = evaluation_progress(f"{teacher} labels on {scenario}", n * horizon) if progress else None
    for _ in range(horizon):
        label, capped = teacher_action(planner.spend(obs), campaigns)
        own = np.full_like(label, np.nan)
        if student is not None:
            own, _ = student.predict(obs, deterministic=True)
        follows = rng.random(n) < beta
        acted = np.where(follows[:, None], label, own)
        obs_rows.append(obs)
        labels.append(label.astype(np.float32))
        capped_rows.append(capped)
        own_rows.append(own)
        obs, _, _, _ = campaigns.step(acted)
        if bar is not None:
            bar.update(n)
    if bar is not None:
        bar.close()
    data = Dataset(
        obs=np.concatenate(obs_rows),
        actions=np.concatenate(labels),
        seeds=np.tile(seeds, horizon),
        holdout=np.tile(holdout, horizon),
        capped=np.concatenate(capped_rows),
    )
    return data, np.concatenate(own_rows)


def actor_parameters(policy: Any) -> list[torch.nn.Parameter]:
    """The parameters of an SB3 ``ActorCriticPolicy``'s mean action: features extractor,
    actor MLP and action head (not the critic, not the log-sd)."""
    modules = (policy.pi_features_extractor, policy.mlp_extractor.policy_net, policy.action_net)
    return [p for module in modules for p in module.parameters()]


def mean_action(policy: Any, obs: torch.Tensor) -> torch.Tensor:
    """The actor's mean action ``(n, k + 1)`` (before SB3 clips it) for normalized ``obs``."""
    # BaseModel's: ActorCriticPolicy's returns actor and critic features when they differ.
    features = BaseModel.extract_features(policy, obs, policy.pi_features_extractor)
    return policy.action_net(policy.mlp_extractor.forward_actor(features))


@dataclass
class FitStats:
    """One fit: mean squared errors per action entry before and after, and epochs run."""

    train_loss: float
    validation_loss_before: float
    validation_loss: float
    epochs: int


class ActorFit:
    """Fits an SB3 actor-critic policy's mean action to targets by mean squared error (Adam),
    the pace's asymmetric for a ``pace_expectile`` other than 0.5, stopping early on held-out
    states; keeps the weights of the best held-out loss."""

    def __init__(self, policy: Any, settings: ImitationConfig, seed: int) -> None:
        self.policy = policy
        self.settings = settings
        self.params = actor_parameters(policy)
        self.optimizer = torch.optim.Adam(self.params, lr=settings.learning_rate)
        self.generator = torch.Generator().manual_seed(seed)

    def errors(self, obs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Squared errors ``(n, k + 1)`` of the mean action on normalized ``obs (n, obs_dim)``
        against ``target (n, k + 1)``, the pace's weighted by its expectile: ``2 tau`` where
        the student asks for less than the label, ``2 (1 - tau)`` where it asks for more."""
        residual = target - mean_action(self.policy, obs)
        squared = residual**2
        tau = self.settings.pace_expectile
        pace_weight = torch.where(residual[:, 0] > 0, 2.0 * tau, 2.0 * (1.0 - tau))
        return torch.cat([squared[:, :1] * pace_weight[:, None], squared[:, 1:]], dim=1)

    def loss(self, obs: torch.Tensor, target: torch.Tensor) -> float:
        """Mean of :meth:`errors` over ``obs (n, obs_dim)`` normalized and ``target (n, k + 1)``
        (the mean squared error for ``pace_expectile`` 0.5)."""
        with torch.no_grad():
            total = sum(
                float(self.errors(o, t).sum())
                for o, t in zip(obs.split(_EVAL_CHUNK), target.split(_EVAL_CHUNK), strict=True)
            )
        return total / max(target.numel(), 1)

    def fit(self, obs: np.ndarray, target: np.ndarray, holdout: np.ndarray) -> FitStats:
        """Fit to normalized ``obs (n, obs_dim)`` and ``target (n, k + 1)``, early-stopping on
        the ``holdout (n,)`` states (at least one must be held out and one not)."""
        if holdout.all() or not holdout.any():
            raise ValueError("A fit needs states both held out and not; raise the campaigns.")
        device = self.policy.device
        x = torch.as_tensor(obs, dtype=torch.float32, device=device)
        y = torch.as_tensor(target, dtype=torch.float32, device=device)
        train_x, train_y = x[~torch.as_tensor(holdout)], y[~torch.as_tensor(holdout)]
        val_x, val_y = x[torch.as_tensor(holdout)], y[torch.as_tensor(holdout)]
        best = before = self.loss(val_x, val_y)
        best_state = [p.detach().clone() for p in self.params]
        waited, epochs, train_loss = 0, 0, float("nan")
        size = self.settings.batch_size
        while epochs < self.settings.epochs:
            epochs += 1
            order = torch.randperm(len(train_x), generator=self.generator).to(device)
            total = 0.0
            for batch in order.split(size):
                loss = self.errors(train_x[batch], train_y[batch]).mean()
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                total += loss.item() * len(batch)
            train_loss = total / len(train_x)
            current = self.loss(val_x, val_y)
            if current < best:
                best, waited = current, 0
                best_state = [p.detach().clone() for p in self.params]
            else:
                waited += 1
                if waited >= self.settings.patience:
                    break
        with torch.no_grad():
            for param, value in zip(self.params, best_state, strict=True):
                param.copy_(value)
        return FitStats(train_loss, before, best, epochs)


@dataclass
class StageStats:
    """What one stage (behaviour cloning, or a DAgger iteration) did."""

    stage: int
    beta: float
    states: int
    dataset_states: int
    capped_label_frac: float
    student_action_gap: float
    fit: FitStats

    def scalars(self) -> dict[str, float]:
        """TensorBoard scalars (under ``imitation/``)."""
        return {
            "iteration": self.stage,
            "beta": self.beta,
            "dataset_states": self.dataset_states,
            "capped_label_frac": self.capped_label_frac,
            "student_action_gap": self.student_action_gap,
            "loss": self.fit.train_loss,
            "validation_loss": self.fit.validation_loss,
            "validation_loss_before_fit": self.fit.validation_loss_before,
            "epochs": self.fit.epochs,
        }


class Imitation:
    """Behaviour cloning then DAgger of an SB3 PPO model's actor, as ``config.imitation`` says,
    on training campaigns of ``config.env``'s scenarios (split as its ``n_envs`` are).

    Args:
        model: the PPO (or ``DAgger``) model, its env under ``VecNormalize``.
        config: the run's config (with an ``imitation`` section).
        progress: show a bar while the campaigns are played.
    """

    def __init__(self, model: Any, config: TrainConfig, progress: bool = False) -> None:
        if config.imitation is None:
            raise ValueError("The config has no imitation section.")
        self.model = model
        self.config = config
        self.settings = config.imitation
        self.progress = progress
        teacher = load_teacher(self.settings.teacher, self.settings.teacher_alpha)
        for scenario in config.env.scenarios:  # fail before the first campaign, not in it
            reason = unavailable(teacher, scenario)
            if reason is not None:
                raise ValueError(f"The teacher {teacher.name} cannot play {scenario}: {reason}.")
        self.vecnorm = model.get_vec_normalize_env()
        self.residual_base = residual_base_of(model.get_env())
        self.roi_guard = training_guard(model.get_env())
        self.channels = venv_channels(model.get_env())
        self.rng = np.random.default_rng(config.seed)
        self.fitter = ActorFit(model.policy, self.settings, config.seed)
        self.data: Dataset | None = None
        self.normalizer: ObsNormalizer | None = None
        counts = [self.settings.bc_campaigns]
        counts += [self.settings.campaigns_per_iteration] * self.settings.iterations
        total = sum(counts) * len(config.env.scenarios)
        first = (config.seed * 7919) % (TRAIN_SEED_LIMIT - total)
        #: Seeds of each stage's campaigns of each scenario: disjoint blocks of training seeds.
        self.stage_seeds: list[list[np.ndarray]] = []
        for count in counts:
            self.stage_seeds.append([])
            for share in split_campaigns(count, config.env.campaigns_per_scenario):
                self.stage_seeds[-1].append(first + np.arange(share, dtype=np.int64))
                first += share

    def student(self) -> SB3Policy:
        """The current student as trained (normalization and residual base included, and an
        ROI guard that acts in training): DAgger's rollouts visit the states it visits."""
        return SB3Policy(
            self.model, self.normalizer, "student", self.residual_base, None, self.channels,
            self.roi_guard,
        )  # fmt: skip

    def stages(self) -> Iterator[StageStats]:
        """Run behaviour cloning, then each DAgger iteration; yield after each fit."""
        for stage, seeds in enumerate(self.stage_seeds):
            beta = self.settings.beta_decay**stage
            parts, own = [], []
            student = None if stage == 0 else self.student()
            for scenario, scenario_seeds in zip(self.config.env.scenarios, seeds, strict=True):
                if len(scenario_seeds) == 0:
                    continue
                data, actions = collect(
                    scenario,
                    scenario_seeds,
                    student=student,
                    beta=beta if student is not None else 1.0,
                    rng=self.rng,
                    teacher=self.settings.teacher,
                    teacher_alpha=self.settings.teacher_alpha,
                    holdout_frac=self.settings.holdout_frac,
                    horizon_hours=self.config.env.horizon_hours,
                    progress=self.progress,
                )
                parts.append(data)
                own.append(actions)
            new = Dataset.concat(parts)
            if stage == 0:
                self._freeze_statistics(new.obs)
            gap = self._gap(new, np.concatenate(own) if student is not None else None)
            self.data = new if self.data is None else Dataset.concat([self.data, new])
            fit = self.fitter.fit(
                actor_input(self.model, self.normalizer(self.data.obs)),
                self._targets(self.data),
                self.data.holdout,
            )
            yield StageStats(
                stage, beta, len(new), len(self.data), float(new.capped.mean()), gap, fit
            )

    def _freeze_statistics(self, obs: np.ndarray) -> None:
        """Set ``VecNormalize``'s observation statistics from ``obs (n, obs_dim)``."""
        if self.vecnorm is not None:
            obs64 = obs.astype(np.float64)
            self.vecnorm.obs_rms.mean = obs64.mean(axis=0)
            self.vecnorm.obs_rms.var = obs64.var(axis=0)
            self.vecnorm.obs_rms.count = float(len(obs))
            self.normalizer = ObsNormalizer.from_vecnormalize(self.vecnorm)
        else:
            self.normalizer = ObsNormalizer.identity(obs.shape[1])

    def _targets(self, data: Dataset) -> np.ndarray:
        """What the network outputs for the labels: the label, or the correction to the base
        rule of a residual policy."""
        if self.residual_base == "none":
            return data.actions
        base = base_action(self.residual_base, data.obs, self.channels)
        return np.clip(data.actions - base, -1.0, 1.0)

    def _gap(self, data: Dataset, own: np.ndarray | None) -> float:
        """Mean absolute difference between the student's and the teacher's actions in the
        new states (the student's own actions there; its prediction for the teacher's)."""
        if own is None:
            own, _ = self.student().predict(data.obs, deterministic=True)
        return float(np.abs(own - data.actions).mean())


def split_campaigns(count: int, weights: tuple[int, ...]) -> list[int]:
    """``count`` campaigns split in proportion to ``weights`` (the remainder to the first)."""
    shares = [count * w // sum(weights) for w in weights]
    shares[0] += count - sum(shares)
    return shares


def attach_imitation(
    model: Any,
    config: TrainConfig,
    log: Callable[[str], None] = print,
    progress: bool = False,
    tensorboard: Path | None = None,
) -> list[StageStats]:
    """Imitation for a new run of ``config`` (with an ``imitation`` section).

    A :class:`~budgetgym.agents.dagger.DAgger` model gets its :class:`Imitation` (its
    ``learn`` runs it). A PPO (or ARS) model is warm-started now: behaviour cloning and the
    DAgger iterations fit its actor (scalars under ``imitation/`` in ``tensorboard`` at step =
    stage, one line per stage to ``log``), then it trains from there.

    Returns:
        The stages run now (none for a DAgger model, whose ``learn`` runs them).
    """
    trainer = Imitation(model, config, progress=progress and not isinstance(model, DAgger))
    if isinstance(model, DAgger):
        model.trainer = trainer
        return []
    logger = None if tensorboard is None else configure(str(tensorboard), ["tensorboard"])
    stages = []
    for stats in trainer.stages():
        stages.append(stats)
        log(
            f"Imitation stage {stats.stage} (beta {stats.beta:.2f}): {stats.dataset_states:,} "
            f"states, held-out loss {stats.fit.validation_loss_before:.4f} -> "
            f"{stats.fit.validation_loss:.4f}."
        )
        if logger is not None:
            for key, value in stats.scalars().items():
                logger.record(f"imitation/{key}", value)
            logger.dump(stats.stage)
    if logger is not None:
        logger.close()
    return stages
