"""Research wrappers of the training env: SB3 ``VecEnvWrapper``s that reshape the reward.

Each wraps any SB3 ``VecEnv`` over budgetgym campaigns (``BudgetVecEnv``, or several as one)
and changes only the reward the learner sees (training only: validation and evaluation use the
environment's own reward and metrics), so they work with any algorithm of the config's
registry (``ppo``, ``sac``, ``recurrent_ppo``) or one of your own that takes a ``VecEnv``:

* :class:`DenseRoiPenalty` charges ``gmv_roi_penalty``'s end-of-campaign ROI penalty hour by
  hour as it accrues (:class:`ShortfallLedger` keeps the account);
* :class:`RoiMissPenalty` subtracts a fixed price from each campaign that ends below its target;
* :class:`LagrangianReward` pays ``reward - lambda * cost`` for an ROI constraint (the miss
  rate or the expected shortfall), its multiplier adapted by a PID controller
  (:mod:`budgetgym.agents.lagrangian`);
* :class:`PairedBaseline` subtracts the reward of a rule playing a twin of each campaign on the
  same seed (a control variate from common random numbers).

:func:`budgetgym.agents.training.make_train_env` stacks them as
``PairedBaseline(VecMonitor(RoiMissPenalty(DenseRoiPenalty(campaigns))))`` or
``PairedBaseline(VecMonitor(LagrangianReward(campaigns)))``, each where its config key asks for
it.
The residual action (a learned correction added to a rule's action) is policy-side, not a
reward wrapper: :class:`~budgetgym.agents.residual.ResidualAction` steps it in training and the
exported graph contains its rule (:mod:`budgetgym.agents.residual`). So is the ROI guard
(:mod:`budgetgym.agents.roi_guard`): :class:`RoiGuardAction` carries a config's guard to
checkpoints and validation, and steps it in training when the config asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from budgetgym.agents.channel_set import ChannelSet, channels_of
from budgetgym.agents.lagrangian import (
    CONSTRAINTS,
    LagrangianState,
    PIDLagrangian,
    campaign_cost,
)
from budgetgym.agents.residual import (
    RawObservationAction,
    base_action,
    check_residual_base,
    vec_env_stack,
)
from budgetgym.agents.roi_guard import RoiGuard, apply_guard
from budgetgym.envs import BudgetVecEnv
from budgetgym.envs.campaigns import BatchedCampaigns, info_columns, roi_target_missed


class ShortfallLedger:
    """The ROI penalty owed so far, ``coef * max(0, R * spend - GMV) / B`` per campaign, and its
    change since the last hour (what ``DenseRoiPenalty`` charges). Arrays ``(n_envs,)``."""

    def __init__(self, n_envs: int, coef: float) -> None:
        self.coef = float(coef)
        self._owed = np.zeros(n_envs)

    def reset(self) -> None:
        self._owed = np.zeros_like(self._owed)

    def charge(
        self,
        target_roi: np.ndarray,
        spend_cny: np.ndarray,
        gmv_cny: np.ndarray,
        budget_cny: np.ndarray,
        done: np.ndarray,
    ) -> np.ndarray:
        """This hour's change of the penalty owed (reward units); a finished campaign owes 0."""
        owed = self.coef * np.maximum(target_roi * spend_cny - gmv_cny, 0.0) / budget_cny
        change = owed - self._owed
        self._owed = np.where(done, 0.0, owed)
        return change


class DenseRoiPenalty(VecEnvWrapper):
    """Charge ``gmv_roi_penalty``'s end-of-campaign ROI penalty hour by hour (training only).

    Wraps campaigns built with ``reward_mode="gmv"``. Each hour it subtracts the change in
    ``coef * max(0, R * spend_so_far - GMV_so_far) / B`` (from the info totals), so the penalty
    telescopes: an episode's return equals ``gmv_roi_penalty``'s, but the credit arrives in the
    hour the spend or GMV that moved it happened (GMV arriving late from conversion delays pays
    the penalty back). Evaluation always uses the environment's own reward and metrics.
    """

    def __init__(self, venv: VecEnv, coef: float) -> None:
        super().__init__(venv)
        self.ledger = ShortfallLedger(self.num_envs, coef)

    def reset(self) -> np.ndarray:
        self.ledger.reset()
        return self.venv.reset()

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        obs, reward, done, infos = self.venv.step_wait()
        columns = info_columns(infos, "target_roi", "spend_total", "gmv_total", "budget")
        shaped = reward.astype(np.float64) - self.ledger.charge(*columns, done)
        return obs, shaped.astype(np.float32), done, infos


class RoiMissPenalty(VecEnvWrapper):
    """Subtract ``penalty`` from the reward of the last hour of every campaign that ends below
    its ROI target (``roi_miss_penalty``, training only): a fixed price per missed campaign, on
    top of the penalty proportional to the shortfall. Reads the final totals from the info."""

    def __init__(self, venv: VecEnv, penalty: float) -> None:
        super().__init__(venv)
        self.penalty = float(penalty)

    def reset(self) -> np.ndarray:
        return self.venv.reset()

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        obs, reward, done, infos = self.venv.step_wait()
        missed = roi_target_missed(*info_columns(infos, "gmv_total", "target_roi", "spend_total"))
        shaped = reward.astype(np.float64) - self.penalty * (done & missed)
        return obs, shaped.astype(np.float32), done, infos


class PairedBaseline(VecEnvWrapper):
    """Subtract the hourly reward of a rule playing a twin of each campaign (training only).

    ``paired_baseline``: every campaign of ``envs`` gets a twin, a campaign on the same seed and
    scenario, which the stateless rule ``rule`` (a residual base) plays. Its reward (the
    campaigns' own: GMV alone under ``dense_roi_penalty``, whose charge only the agent pays)
    does not depend on the agent's actions, so subtracting it is a control variate: the policy
    gradient's expectation is unchanged, while the luck both campaigns share (hidden CVR,
    traffic, price and conversion draws; common random numbers) cancels from the returns. For
    the rules and the residual policy here the variance of a campaign's return falls 40-100x
    (docs/training.md). Sits above ``VecMonitor``, so logged episode returns stay absolute.
    Pair it with ``gae_lambda: 1.0``: the critic cannot see the twin, and under GAE's
    bootstrapping its errors bias the advantages (with 0.95, PPO got worse as it trained).
    A ``ResidualAction`` above on the same rule computes the twins' actions in its own call
    (``twin_actions``, see :class:`~budgetgym.agents.residual.TwinCampaigns`).

    Args:
        venv: the wrapped training env; its campaigns are those of ``envs``, in order.
        envs: the ``BudgetVecEnv`` per scenario whose campaigns get twins.
        rule: residual base name playing the twins (see :mod:`budgetgym.agents.residual`).
        roi_charge_coef: when set (``twin_pays_roi_charge``), the twins also pay
            ``DenseRoiPenalty``'s hourly charge at this coefficient, so the subtracted reward is
            the twin's full shaped reward and the ROI penalty's luck cancels too.
    """

    def __init__(
        self,
        venv: VecEnv,
        envs: Sequence[BudgetVecEnv],
        rule: str,
        roi_charge_coef: float | None = None,
    ) -> None:
        super().__init__(venv)
        self.rule = check_residual_base(rule)
        self.envs = list(envs)
        self.channels = channels_of(self.envs[0].campaigns)
        self.ledger = (
            None if roi_charge_coef is None else ShortfallLedger(venv.num_envs, roi_charge_coef)
        )
        self.twins = [
            BatchedCampaigns(
                env.campaigns.scenario,
                env.campaigns.reward_mode,
                env.campaigns.roi_penalty_coef,
                env.campaigns.horizon_hours,
            )
            for env in self.envs
        ]
        self._twin_obs: list[np.ndarray] = []
        self._twin_bounds = np.cumsum([env.num_envs for env in self.envs])[:-1]
        self.twin_actions: np.ndarray | None = None  # see ``TwinCampaigns``

    @property
    def twin_obs(self) -> np.ndarray:
        """Current raw observations of all twins ``(n_envs, obs_dim)``, in campaign order."""
        return np.concatenate(self._twin_obs)

    def _reset_twins(self) -> None:
        if self.ledger is not None:
            self.ledger.reset()
        self._twin_obs = [
            twin.reset(env.campaigns.params.seeds)[0]
            for twin, env in zip(self.twins, self.envs, strict=True)
        ]

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        self._reset_twins()
        return obs

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        obs, reward, done, infos = self.venv.step_wait()
        actions = self.twin_actions
        if actions is None:  # no ResidualAction above computed them
            actions = base_action(self.rule, self.twin_obs, self.channels)
        self.twin_actions = None
        twin_reward, twin_infos = [], []
        parts = np.split(actions, self._twin_bounds)
        for j, (twin, action) in enumerate(zip(self.twins, parts, strict=True)):
            self._twin_obs[j], r, _, info = twin.step(action)
            twin_reward.append(r.astype(np.float32))  # rounded as the campaigns' own reward
            twin_infos.append(info)
        twin_return = np.concatenate(twin_reward).astype(np.float64)
        if self.ledger is not None:
            keys = ("target_roi", "spend_total", "gmv_total", "budget")
            columns = [np.concatenate([info[key] for info in twin_infos]) for key in keys]
            twin_return -= self.ledger.charge(*columns, done)
            # rounded as the agent's shaped reward is (DenseRoiPenalty returns float32)
            twin_return = twin_return.astype(np.float32).astype(np.float64)
        if done.all():  # the campaigns were reset to new seeds: so are their twins
            self._reset_twins()
        paired = reward.astype(np.float64) - twin_return
        return obs, paired.astype(np.float32), done, infos


class LagrangianReward(VecEnvWrapper):
    """Pay ``reward - lambda * cost`` for an ROI constraint, ``lambda`` adapted by a PID
    controller (training only; :mod:`budgetgym.agents.lagrangian`).

    ``constraint`` ``miss_rate``: the cost is 1 in the last hour of each campaign that ends
    below its ROI target. ``expected_shortfall``: the cost is the hourly change of the campaign's
    shortfall ``max(0, R * spend_so_far - GMV_so_far) / B`` (:class:`ShortfallLedger` at
    coefficient 1), which telescopes to the end-of-campaign shortfall. Each finished campaign's
    cost (the miss, or the final shortfall) is added to the measurement that
    :class:`~budgetgym.agents.lagrangian.LagrangianUpdate` takes at the end of each rollout to
    update ``controller``. Reads the totals from the info.

    Args:
        venv: the wrapped env; its campaigns pay a reward without a fixed ROI penalty (``gmv``
            or ``profit``).
        constraint: one of :data:`~budgetgym.agents.lagrangian.CONSTRAINTS`.
        controller: the multiplier's PID controller.
    """

    def __init__(self, venv: VecEnv, constraint: str, controller: PIDLagrangian) -> None:
        super().__init__(venv)
        if constraint not in CONSTRAINTS:
            raise ValueError(f"Unknown constraint {constraint!r}; valid: {', '.join(CONSTRAINTS)}.")
        self.constraint = constraint
        self.controller = controller
        self.ledger = ShortfallLedger(self.num_envs, 1.0)
        self._pending_cost = 0.0
        self._pending_campaigns = 0

    def reset(self) -> np.ndarray:
        self.ledger.reset()
        return self.venv.reset()

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        obs, reward, done, infos = self.venv.step_wait()
        keys = ("target_roi", "spend_total", "gmv_total", "budget")
        target_roi, spend_cny, gmv_cny, budget_cny = info_columns(infos, *keys)
        final = campaign_cost(self.constraint, gmv_cny, target_roi, spend_cny, budget_cny)
        if self.constraint == "miss_rate":
            cost = final * done
        else:
            cost = self.ledger.charge(target_roi, spend_cny, gmv_cny, budget_cny, done)
        self.record(final[done])
        shaped = reward.astype(np.float64) - self.controller.multiplier * cost
        return obs, shaped.astype(np.float32), done, infos

    def record(self, costs: np.ndarray) -> None:
        """Add the costs ``(n,)`` of finished campaigns to the measurement: this env's, and
        those a trainer plays itself (:mod:`budgetgym.agents.random_search`)."""
        self._pending_cost += float(np.sum(costs))
        self._pending_campaigns += len(costs)

    def take_measurement(self) -> float | None:
        """``J_c``: the mean cost of the campaigns finished since the last call (the share that
        missed, or the mean final shortfall / B); None if none finished."""
        if self._pending_campaigns == 0:
            return None
        cost = self._pending_cost / self._pending_campaigns
        self._pending_cost, self._pending_campaigns = 0.0, 0
        return cost

    def state(self) -> LagrangianState:
        """The controller's state and the measurement under way (what a checkpoint saves)."""
        c = self.controller
        return LagrangianState(
            self.constraint, c.multiplier, c.integral, c.previous_cost,
            self._pending_cost, self._pending_campaigns,
        )  # fmt: skip

    def restore(self, state: LagrangianState) -> None:
        """Continue from a saved state (its constraint must be this wrapper's)."""
        if state.constraint != self.constraint:
            raise ValueError(
                f"A Lagrangian state for {state.constraint!r} cannot restore a "
                f"{self.constraint!r} constraint."
            )
        c = self.controller
        c.multiplier, c.integral, c.previous_cost = (
            state.multiplier, state.integral, state.previous_cost
        )  # fmt: skip
        self._pending_cost, self._pending_campaigns = state.pending_cost, state.pending_campaigns


def lagrangian_of(venv: Any) -> LagrangianReward | None:
    """The ``LagrangianReward`` in a wrapped VecEnv stack (None without one)."""
    for layer in vec_env_stack(venv):
        if isinstance(layer, LagrangianReward):
            return layer
    return None


class RoiGuardAction(RawObservationAction):
    """Carries a config's ``guard`` in the training env, to checkpoints and validation; steps
    the env with it on the actions' pace when ``guard.in_training`` (otherwise the actions pass
    unchanged). Sits below ``VecNormalize`` and below a ``ResidualAction``, so it reads raw
    observations and guards the final action."""

    def __init__(self, venv: VecEnv, guard: RoiGuard, channels: ChannelSet) -> None:
        super().__init__(venv)
        self.guard, self.channels = guard, channels

    def step_async(self, actions: np.ndarray) -> None:
        guard = self.guard if self.guard.in_training else None
        self.venv.step_async(apply_guard(guard, self._obs, actions, self.channels))


def roi_guard_of(venv: Any) -> RoiGuard | None:
    """The guard of a wrapped VecEnv stack, the deployed policy's (None without
    ``RoiGuardAction``)."""
    for layer in vec_env_stack(venv):
        if isinstance(layer, RoiGuardAction):
            return layer.guard
    return None


def training_guard(venv: Any) -> RoiGuard | None:
    """The guard training acts through (rollouts, validation): the stack's guard when its
    ``in_training`` is set, else None."""
    guard = roi_guard_of(venv)
    return guard if guard is not None and guard.in_training else None
