"""A Lagrange multiplier for the ROI constraint, adapted by a PID controller.

Constrained training maximizes the expected return subject to an ROI constraint ``J_c <= d``,
through the Lagrangian ``E[sum_t reward_t - lambda * cost_t]`` with a multiplier ``lambda >= 0``
that rises while the constraint is violated and falls once it holds. The constraint is one of
:data:`CONSTRAINTS`, measured per campaign at its end:

* ``miss_rate``: ``cost = 1`` in the last hour of a campaign that ends below its ROI target
  (``GMV < R * spend``), so ``J_c`` is the share of campaigns that miss;
* ``expected_shortfall``: the campaign's ROI shortfall ``max(0, R * spend - GMV) / B`` (in the
  reward's units, GMV / budget), charged hour by hour as it changes (as ``DenseRoiPenalty``
  does), so ``J_c`` is the mean shortfall per campaign.

:class:`PIDLagrangian` is the update of Stooke, Achiam & Abbeel, "Responsive Safety in
Reinforcement Learning by PID Lagrangian Methods" (ICML 2020, Algorithm 2), on the constraint
measured over the campaigns finished since the last update::

    e = J_c - d
    I = max(0, I + e)
    lambda = max(0, kp * e + ki * I + kd * max(0, J_c - J_c_previous))

With a cap ``lambda_max`` the multiplier is clipped to ``[0, lambda_max]`` and the integral to
``[0, lambda_max / ki]`` (anti-windup: while the target is out of reach the integral holds at
what the cap needs instead of growing without bound, so lambda comes down as soon as the
constraint holds again).

Plain gradient ascent on ``lambda`` (RCPO) is the integral term alone; the proportional term
answers a violation at once and the derivative term a cost that is rising, which damps the
overshoot and oscillation of the integral alone. The integral starts at ``initial_lambda / ki``
(so that, with no error, the multiplier stays at its initial value).

The reward wrapper is :class:`budgetgym.agents.wrappers.LagrangianReward`; :class:`LagrangianUpdate`
(an SB3 callback) updates the multiplier at the end of each rollout and logs it to TensorBoard.
:class:`LagrangianState` is what a checkpoint saves (``lagrangian.json``) and a resumed run
continues from.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from budgetgym.envs.campaigns import roi_target_missed

#: The constraints a Lagrangian run can put on its campaigns.
CONSTRAINTS = ("miss_rate", "expected_shortfall")
#: The file a checkpoint of a Lagrangian run keeps the controller's state in.
STATE_FILE = "lagrangian.json"
STATE_FORMAT = "budgetgym-lagrangian/1"


def campaign_cost(
    constraint: str,
    gmv_cny: np.ndarray,
    target_roi: np.ndarray,
    spend_cny: np.ndarray,
    budget_cny: np.ndarray,
) -> np.ndarray:
    """The constraint's cost ``(n,)`` of finished campaigns from their totals: 1.0 for a miss
    (``miss_rate``), or the shortfall ``max(0, R * spend - GMV) / B``
    (``expected_shortfall``)."""
    if constraint == "miss_rate":
        return roi_target_missed(gmv_cny, target_roi, spend_cny).astype(np.float64)
    if constraint == "expected_shortfall":
        return np.maximum(target_roi * spend_cny - gmv_cny, 0.0) / budget_cny
    raise ValueError(f"Unknown constraint {constraint!r}; valid: {', '.join(CONSTRAINTS)}.")


@dataclass
class PIDLagrangian:
    """PID controller of the multiplier ``lambda >= 0`` (see the module docstring).

    Attributes:
        kp, ki, kd: proportional, integral and derivative gains (each >= 0).
        target: the constraint's limit ``d`` (a miss rate, or a shortfall per campaign / B).
        max_lambda: the cap ``lambda_max`` (None: no cap).
        multiplier: the current ``lambda``.
        integral: the error summed over the updates, clipped at 0 (``I``).
        previous_cost: ``J_c`` at the last update (None before the first).
    """

    kp: float
    ki: float
    kd: float
    target: float
    max_lambda: float | None = None
    multiplier: float = 0.0
    integral: float = 0.0
    previous_cost: float | None = None

    @classmethod
    def start(
        cls,
        kp: float,
        ki: float,
        kd: float,
        target: float,
        initial_lambda: float = 0.0,
        max_lambda: float | None = None,
    ) -> PIDLagrangian:
        """A controller at ``initial_lambda``, its integral at ``initial_lambda / ki`` (0 when
        ``ki`` is 0)."""
        if max_lambda is not None and initial_lambda > max_lambda:
            raise ValueError(f"initial_lambda {initial_lambda} is above max_lambda {max_lambda}")
        integral = initial_lambda / ki if ki > 0 else 0.0
        return cls(kp, ki, kd, target, max_lambda, float(initial_lambda), float(integral))

    def update(self, cost: float) -> float:
        """Take ``J_c``, the constraint measured since the last update; return the new
        ``lambda``."""
        cap = math.inf if self.max_lambda is None else self.max_lambda
        error = cost - self.target
        integral_cap = cap / self.ki if self.ki > 0 else math.inf
        self.integral = min(max(0.0, self.integral + error), integral_cap)
        rise = 0.0 if self.previous_cost is None else max(0.0, cost - self.previous_cost)
        self.previous_cost = float(cost)
        unclipped = self.kp * error + self.ki * self.integral + self.kd * rise
        self.multiplier = min(max(0.0, unclipped), cap)
        return self.multiplier


@dataclass(frozen=True)
class LagrangianState:
    """What a checkpoint of a Lagrangian run records (``lagrangian.json``).

    Attributes:
        constraint: one of :data:`CONSTRAINTS`.
        multiplier, integral, previous_cost: the controller's state (:class:`PIDLagrangian`).
        pending_cost: the constraint's cost summed over the campaigns finished since the last
            update (for ``miss_rate``: how many of them missed).
        pending_campaigns: how many campaigns finished since the last update.
    """

    constraint: str
    multiplier: float
    integral: float
    previous_cost: float | None
    pending_cost: float
    pending_campaigns: int

    def save(self, path: Path) -> None:
        """Write the state as JSON to ``path``."""
        Path(path).write_text(json.dumps({"format": STATE_FORMAT, **asdict(self)}, indent=2))

    @classmethod
    def load(cls, path: Path, constraint: str) -> LagrangianState:
        """Read and validate a state written by :meth:`save` for a run whose constraint is
        ``constraint`` (the file is untrusted input: every field is checked).

        Raises:
            ValueError: the file is missing, not JSON, foreign, or holds a value out of range
                or for another constraint.
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(
                f"Checkpoint {path.parent} has no {STATE_FILE}; a Lagrangian run cannot continue "
                "without its multiplier."
            )
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(f"Lagrangian state {path} is corrupt (not valid JSON).") from None
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise ValueError(f"{path} is not a Lagrangian state (expected format {STATE_FORMAT}).")
        expected = {"format", *cls.__dataclass_fields__}
        if set(data) != expected:
            raise ValueError(
                f"Lagrangian state {path} is corrupt (keys {sorted(data)}, expected "
                f"{sorted(expected)})."
            )
        if data["constraint"] != constraint:
            raise ValueError(
                f"Lagrangian state {path} is for constraint {data['constraint']!r} but the run's "
                f"config says {constraint!r}."
            )
        numbers = ("multiplier", "integral", "pending_cost")
        optional = data["previous_cost"]
        count = data["pending_campaigns"]
        if not (
            all(_non_negative(data[key]) for key in numbers)
            and (optional is None or _non_negative(optional))
            and type(count) is int
            and count >= 0
            and data["pending_cost"] <= (count if constraint == "miss_rate" else math.inf)
        ):
            values = {key: data[key] for key in (*numbers, "previous_cost", "pending_campaigns")}
            raise ValueError(f"Lagrangian state {path} is corrupt (values {values}).")
        return cls(**{key: data[key] for key in cls.__dataclass_fields__})


def _non_negative(value: Any) -> bool:
    """A finite number >= 0 (not a bool)."""
    return type(value) in (int, float) and math.isfinite(value) and value >= 0


class ConstraintMeter(Protocol):
    """A reward wrapper that measures the constraint (``LagrangianReward``)."""

    controller: PIDLagrangian

    def take_measurement(self) -> float | None:
        """``J_c`` over the campaigns finished since the last call (None if none finished)."""


class LagrangianUpdate(BaseCallback):
    """Updates the multiplier at the end of every rollout from the campaigns finished during it
    (none finished: no update), and logs ``lagrangian/lambda`` and ``lagrangian/constraint``
    (the ``J_c`` measured) to TensorBoard at the step of the update.

    Any SB3 algorithm calls it: PPO after each rollout of ``n_steps``, SAC after each
    collection of ``train_freq`` steps (campaigns finish, and the multiplier moves, once per
    horizon).
    """

    def __init__(self, meter: ConstraintMeter) -> None:
        super().__init__()
        self.meter = meter

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        cost = self.meter.take_measurement()
        if cost is None:
            return
        multiplier = self.meter.controller.update(cost)
        self.logger.record("lagrangian/lambda", multiplier)
        self.logger.record("lagrangian/constraint", cost)
        # Written now: SAC writes its logs when campaigns end, before the rollout ends.
        self.logger.dump(self.num_timesteps)
