"""Residual policies: a learned correction added to a stateless rule's action.

A residual policy (Silver et al. 2018, "Residual Policy Learning"; Johannink et al. 2019) acts
``clip(base(obs) + delta, -1, 1)``: the network learns ``delta`` and starts where the rule is,
so exploration begins from a sensible allocation instead of uniform spend. The base must be a
pure function of the current observation — no episode state — so that it can sit inside the
exported ONNX graph (raw observation in, action out) and the residual policy stays one file.

``obs_pacing`` is that base: the pacing-and-split logic of the ``pid_pacing`` baseline,
computed from the simulator's delay-corrected ROI features (``log_matured_roi``) instead of the
rule's own running estimates. On the held-out leaderboard it is within 0.5 points of
``pid_pacing``'s share of the oracle's GMV in every scenario (``docs/benchmark.md``).

The one implementation is in torch (it is traced into the ONNX export); numpy callers go
through :func:`base_action`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from budgetgym.agents.baselines import N_PER_SALE, PAYS_PER_SALE
from budgetgym.envs.campaigns import OBS_DIM, channel_slice, obs_index
from budgetgym.envs.core import MAX_PACE_MULT, SHARE_TEMPERATURE
from budgetgym.envs.errors import unknown_name_error

RESIDUAL_BASES = ("none", "obs_pacing", "obs_pacing_unthrottled")
#: Constants of ``obs_pacing``, those of the ``pid_pacing`` / ``roi_proportional`` baselines.
PACE_GAIN = 8.0  # log-pace per unit of pace gap (budget fraction behind even pacing)
ROI_GAIN = 4.0  # pace multiplier (ROI / target)^4 while below the target
SHARE_POWER = 2.0  # paid shares proportional to (ROI / target)^2
PER_SALE_ALLOCATION = 4.0  # standing hourly allocation of pay-per-sale channels, x even pacing
_PROGRESS, _BUDGET_LEFT = obs_index("progress"), obs_index("budget_left_frac")
_PACE_GAP, _LOG_ROI = obs_index("pace_gap"), obs_index("log_matured_roi")
_LOG_ROI_BY_CHANNEL = channel_slice("log_matured_roi")


def check_residual_base(name: str) -> str:
    """Return ``name`` if it is a known residual base; ``ValueError`` otherwise."""
    if name not in RESIDUAL_BASES:
        raise unknown_name_error("residual base", name, RESIDUAL_BASES)
    return name


def obs_pacing_torch(obs: Any, throttle: bool = True) -> Any:
    """``obs_pacing`` actions ``(n, 7)`` in ``[-1, 1]`` for raw observations ``(n, OBS_DIM)``.

    Pace (multiple of even pacing of what is left): ``exp(8 * pace_gap)``, capped at 1 while the
    delay-corrected ROI so far is below the target and then multiplied by ``(ROI / R)^4``
    (``throttle=False``, the base ``obs_pacing_unthrottled``: the pace gap alone, as the
    ``bandit`` and ``roi_proportional`` rules pace). Paid channels split that spend in
    proportion to ``(ROI_k / R)^2``; pay-per-sale channels keep a standing allocation of 4x even
    pacing (only their commissions are spent).
    """
    import torch

    obs = obs.to(torch.float64)
    n_ch = PAYS_PER_SALE.size
    per_sale = torch.from_numpy(PAYS_PER_SALE)  # no copy: built once, not per call
    hours_left_frac = torch.clamp(1.0 - obs[:, _PROGRESS], min=1e-3)
    even = torch.clamp(obs[:, _BUDGET_LEFT] / hours_left_frac, min=1e-9)
    log_roi = obs[:, _LOG_ROI]
    log_pace = PACE_GAIN * obs[:, _PACE_GAP]
    throttled = log_roi < 0.0 if throttle else torch.zeros_like(log_roi, dtype=torch.bool)
    log_pace = torch.where(throttled, torch.clamp(log_pace, max=0.0) + ROI_GAIN * log_roi, log_pace)
    pace = torch.clamp(torch.exp(torch.clamp(log_pace, -3.0, 1.6)), max=MAX_PACE_MULT)
    weights = torch.exp(SHARE_POWER * obs[:, _LOG_ROI_BY_CHANNEL])
    weights = torch.where(per_sale, torch.zeros_like(weights), weights)
    paid = (pace * even)[:, None] * weights / weights.sum(dim=1, keepdim=True)
    room = torch.clamp(MAX_PACE_MULT * even - paid.sum(dim=1), min=0.0) / max(N_PER_SALE, 1)
    standing = torch.clamp(room, max=PER_SALE_ALLOCATION)[:, None].expand(-1, n_ch)
    request = torch.where(per_sale, standing, paid)
    total = request.sum(dim=1)
    rate = torch.clamp(total / even, max=MAX_PACE_MULT)
    a0 = torch.clamp(torch.log(0.75 * rate + 0.25) / np.log(4.0), -1.0, 1.0)
    logits = torch.log(request + 1e-9 * total[:, None]) / SHARE_TEMPERATURE
    logits = torch.clamp(logits - logits.max(dim=1, keepdim=True).values + 1.0, -1.0, 1.0)
    return torch.cat([a0[:, None], logits], dim=1).to(torch.float32)


def base_action(name: str, obs: np.ndarray) -> np.ndarray:
    """Actions ``(n, 7)`` float32 of residual base ``name`` for raw observations ``(n, OBS_DIM)``
    (zeros for ``none``)."""
    obs = np.asarray(obs)
    if obs.ndim != 2 or obs.shape[1] != OBS_DIM:
        raise ValueError(f"Observations must have shape (n, {OBS_DIM}), got {obs.shape}.")
    if check_residual_base(name) == "none":
        return np.zeros((obs.shape[0], 1 + PAYS_PER_SALE.size), dtype=np.float32)
    import torch

    with torch.no_grad():
        return base_action_torch(name, torch.from_numpy(np.ascontiguousarray(obs))).numpy()


def base_action_torch(name: str, obs: Any) -> Any:
    """Actions ``(n, 7)`` of residual base ``name`` (not ``none``) for a raw observation
    tensor ``(n, OBS_DIM)``: the one implementation, also traced into the ONNX export."""
    return obs_pacing_torch(obs, throttle=check_residual_base(name) == "obs_pacing")


def add_residual(name: str, obs: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """The residual policy's action ``clip(base(obs) + delta, -1, 1)``, float32 ``(n, 7)``."""
    if name == "none":
        return np.asarray(delta, dtype=np.float32)
    return np.clip(base_action(name, obs) + delta, -1.0, 1.0).astype(np.float32)


class ResidualAction(VecEnvWrapper):
    """Adds a stateless rule's action to the agent's: the env steps ``clip(base(obs) + a)``.

    Sits below ``VecNormalize`` so the rule sees raw observations (see
    :mod:`budgetgym.agents.residual`); ``residual_base`` names the rule for checkpoints.
    """

    def __init__(self, venv: VecEnv, residual_base: str) -> None:
        super().__init__(venv)
        self.residual_base = check_residual_base(residual_base)
        self._obs = np.zeros((venv.num_envs, *venv.observation_space.shape), dtype=np.float32)

    def reset(self) -> np.ndarray:
        self._obs = self.venv.reset()
        return self._obs

    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(add_residual(self.residual_base, self._obs, actions))

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        obs, rewards, dones, infos = self.venv.step_wait()
        self._obs = obs  # after an episode ends: the next episode's first observation
        return obs, rewards, dones, infos


def residual_base_of(venv: Any) -> str:
    """The residual base of a wrapped VecEnv stack (``"none"`` without ``ResidualAction``)."""
    while venv is not None:
        if isinstance(venv, ResidualAction):
            return venv.residual_base
        venv = getattr(venv, "venv", None)
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
