"""A guard on a policy's pace that reads the campaign's observed ROI.

A policy that reads only the observation cannot tell a weak campaign from a strong one in its
first hours, so near the end of the week it still spends at a pace that is right on average
and misses the ROI target on the weak ones. It can see how its campaign is going:
``log_matured_roi``, the delay-corrected ROI so far relative to the target (log). A guard
``(tau, gain, after)`` leaves the policy's action alone before ``progress`` (hours done /
horizon) reaches ``after``, then multiplies its pace by::

    min(1, exp(gain * (log_matured_roi - tau)))

A campaign whose ROI so far lies below ``exp(tau)`` times its target spends less, the more so
the further below; the guard never raises spend, and the channel split stays the policy's.
``log_matured_roi`` counts the conversions still to come with the public delay prior, which
under-reads the ROI of the scenarios' slower conversions: a built-in margin that the guard's
effect depends on (docs/results.md, "Feedback on the observed ROI").

A config's ``roi_guard`` section makes the guard part of the trained policy as it is deployed
(:class:`~budgetgym.agents.wrappers.RoiGuardAction` carries it in the training env):
``meta.json`` records it, and :class:`~budgetgym.agents.checkpoints.SB3Policy` and the exported
ONNX graph apply it. Training sees it only with ``in_training: true``: the training env steps
the guarded action, DAgger's rollouts visit the states the guarded student visits, and
validation (``best/``) plays the guarded policy. By default it learns and is validated without
it: a student of the planner trained through the guard misses more at the same GMV
(docs/results.md). Like the residual rules the guard is a pure function
of the current raw observation, written against the array API standard: numpy arrays here,
torch tensors in the export. This module needs no training dependency (``evaluate`` plays a
rule with a guard without the ``train`` extra).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from array_api_compat import array_namespace
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, ValidationError

from budgetgym.agents.channel_set import DEFAULT_CHANNEL_SET, ChannelSet, channels_of, feature
from budgetgym.envs.core import MAX_PACE_MULT


class RoiGuard(BaseModel):
    """A guard's settings (see the module's docstring); the config's ``roi_guard`` section."""

    # The config models' settings (budgetgym.agents.hyperparams.Frozen, whose module needs torch)
    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_default=True, allow_inf_nan=False
    )

    tau: StrictFloat = 0.05
    """Log of the observed ROI, relative to the target, below which the pace is cut (0.05: an
    ROI under 1.05 times the target)."""
    gain: Annotated[StrictFloat, Field(ge=0.0)] = 8.0
    """How steeply the pace falls with the shortfall: ``exp(gain * (log_matured_roi - tau))``."""
    after: Annotated[StrictFloat, Field(ge=0.0, le=1.0)] = 0.75
    """Share of the horizon after which the guard acts (0: the whole week)."""
    in_training: StrictBool = False
    """Whether training acts through the guard (rollouts and validation); False: the policy
    learns without it, and evaluation, comparison and the export apply it."""

    @classmethod
    def parse(cls, text: str) -> RoiGuard:
        """``"TAU:GAIN:AFTER"`` -> RoiGuard; ``ValueError`` naming the bad part otherwise."""
        try:
            tau, gain, after = map(float, text.split(":"))
        except ValueError:
            raise ValueError(f"A guard is TAU:GAIN:AFTER (three numbers), got {text!r}.") from None
        return cls.from_meta({"tau": tau, "gain": gain, "after": after}, f"guard {text!r}")

    @classmethod
    def from_meta(cls, data: Any, where: str) -> RoiGuard:
        """A guard from untrusted data (``meta.json``, a sidecar); ``ValueError`` naming
        ``where`` if it is not a valid one."""
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in err.errors()
            )
            raise ValueError(f"{where} is not a valid ROI guard ({problems}).") from None

    @property
    def spec(self) -> str:
        """``"TAU:GAIN:AFTER"``, as :meth:`parse` reads it."""
        return f"{self.tau:g}:{self.gain:g}:{self.after:g}"

    @property
    def name(self) -> str:
        return f"guard {self.spec}"


_LN4 = math.log(4.0)


def guard_actions(
    guard: RoiGuard, obs: Any, action: Any, channels: ChannelSet = DEFAULT_CHANNEL_SET
) -> Any:
    """Actions ``(n, k + 1)`` with ``guard`` on the pace ``action[:, 0]``, for raw observations
    ``(n, obs_dim)`` (any array-API arrays; float32 out). The pace mapping is the core's:
    ``action[:, 0] = log4(0.75 pace + 0.25)``, pace a multiple of even pacing."""
    xp = array_namespace(obs, action)
    action = xp.astype(action, xp.float64)
    obs = xp.astype(obs, xp.float64)
    late = feature(obs, "progress", channels) >= guard.after
    shortfall = feature(obs, "log_matured_roi", channels) - guard.tau
    factor = xp.where(late, xp.exp(xp.clip(guard.gain * shortfall, max=0.0)), 1.0)
    pace = (xp.exp(_LN4 * action[:, 0]) - 0.25) / 0.75
    pace = xp.clip(pace * factor, min=0.0, max=MAX_PACE_MULT)
    guarded = xp.clip(xp.log(0.75 * pace + 0.25) / _LN4, min=-1.0, max=1.0)
    return xp.astype(xp.concat([guarded[:, None], action[:, 1:]], axis=1), xp.float32)


def apply_guard(
    guard: RoiGuard | None, obs: np.ndarray, action: np.ndarray, channels: ChannelSet
) -> np.ndarray:
    """``action`` float32 with ``guard`` applied (unchanged without one)."""
    if guard is None:
        return np.asarray(action, dtype=np.float32)
    return guard_actions(guard, np.asarray(obs), np.asarray(action), channels)


class GuardedPolicy:
    """Any ``Policy`` that acts on observations (not a spend planner), with ``guard`` on its
    pace: what ``budgetgym evaluate --roi-guard`` plays for a policy without a guard of its own
    (:func:`replace_guard`) and ``bench_roi_guard.py`` for each guard."""

    def __init__(self, policy: Any, guard: RoiGuard) -> None:
        if getattr(policy, "acts_in_spend", False):
            raise ValueError(f"{policy.name!r} plans spend, not actions: it has no pace to guard.")
        self.policy, self.guard = policy, guard
        self.name = f"{policy.name}+{guard.name}"
        self._channels = DEFAULT_CHANNEL_SET

    def reset(self, campaigns: Any) -> None:
        self.policy.reset(campaigns)
        self._channels = channels_of(campaigns)

    def unavailable_on(self, scenario: str) -> str | None:
        check = getattr(self.policy, "unavailable_on", None)
        return None if check is None else check(scenario)

    def predict(self, obs: np.ndarray, *args: Any, **kwargs: Any) -> tuple[np.ndarray, None]:
        action, _ = self.policy.predict(obs, *args, **kwargs)
        return apply_guard(self.guard, obs, action, self._channels), None


def parse_guard(text: str) -> RoiGuard | None:
    """``"TAU:GAIN:AFTER"`` -> RoiGuard, ``"none"`` -> None (the command line's ``--roi-guard``)."""
    return None if text.strip().lower() == "none" else RoiGuard.parse(text)


def replace_guard(policy: Any, guard: RoiGuard | None) -> tuple[Any, RoiGuard | None]:
    """``policy`` with ``guard`` on its pace in place of its own (None: without one), and the
    guard it had. A run's policy gets its guard replaced and its name marked; a policy with no
    guard of its own (a rule, an ONNX file without one) is wrapped in :class:`GuardedPolicy`.

    Raises:
        ValueError: an ONNX policy whose graph applies a guard (it cannot be replaced), or a
            policy that plans spend (no pace to guard).
    """
    if hasattr(policy, "roi_guard"):  # SB3Policy: the guard is applied after the network
        previous, policy.roi_guard = policy.roi_guard, guard
        if guard != previous:
            policy.name = f"{policy.name}+{guard.name if guard is not None else 'no guard'}"
        return policy, previous
    if (getattr(policy, "meta", None) or {}).get("roi_guard") is not None:
        raise ValueError(
            f"{policy.name} applies an ROI guard inside its ONNX graph: give its run directory."
        )
    return (policy if guard is None else GuardedPolicy(policy, guard)), None
