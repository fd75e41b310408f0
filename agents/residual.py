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

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from budgetgym.agents.baselines import (
    N_PER_SALE,
    PAYS_PER_SALE,
    THOMPSON_MIN_SHARE,
    THOMPSON_PRIOR_SD,
    THOMPSON_SAMPLES,
)
from budgetgym.envs.campaigns import LATE_SHARE, OBS_DIM, channel_slice, obs_index
from budgetgym.envs.core import MAX_PACE_MULT, SHARE_TEMPERATURE
from budgetgym.envs.errors import unknown_name_error
from budgetgym.envs.scenarios import HORIZON_HOURS, REFERENCE_PRICE_CNY

#: The stateless rules a residual policy can start from: (pace throttle, paid split) of each.
_BASE_RULES = {
    "obs_pacing": ("always", "roi"),
    "obs_pacing_unthrottled": ("never", "roi"),
    "obs_thompson": ("promotion", "thompson"),
    "obs_price_aware": ("promotion", "by_price"),
}
RESIDUAL_BASES = ("none", *_BASE_RULES)
#: Constants of ``obs_pacing``, those of the ``pid_pacing`` / ``roi_proportional`` baselines.
PACE_GAIN = 8.0  # log-pace per unit of pace gap (budget fraction behind even pacing)
ROI_GAIN = 4.0  # pace multiplier (ROI / target)^4 while below the target
SHARE_POWER = 2.0  # paid shares proportional to (ROI / target)^2
PER_SALE_ALLOCATION = 4.0  # standing hourly allocation of pay-per-sale channels, x even pacing
_PROGRESS, _BUDGET_LEFT = obs_index("progress"), obs_index("budget_left_frac")
_PACE_GAP, _LOG_ROI = obs_index("pace_gap"), obs_index("log_matured_roi")
_LOG_ROI_BY_CHANNEL = channel_slice("log_matured_roi")
_HOURS_TO_EVENT = obs_index("hours_to_event")
_CUM_SPEND_BY_CHANNEL = channel_slice("cum_spend_frac")
_RECENT_SPEND_BY_CHANNEL = channel_slice("recent_spend_frac")
_LOG_PRICE = obs_index("log_price")
#: Order value from which ``obs_price_aware`` splits by ROI instead of probability matching:
#: items this dear convert rarely and days after the click, so a channel's ROI so far is mostly
#: conversions still in transit, and matching on it chases noise (docs/benchmark.md).
HIGH_PRICE_CNY = 1_000.0


def check_residual_base(name: str) -> str:
    """Return ``name`` if it is a known residual base; ``ValueError`` otherwise."""
    if name not in RESIDUAL_BASES:
        raise unknown_name_error("residual base", name, RESIDUAL_BASES)
    return name


def thompson_quantiles(samples: int = THOMPSON_SAMPLES) -> np.ndarray:
    """Fixed standard-normal draws ``(samples, n_channels)`` of ``obs_thompson``: the midpoints of
    an unscrambled Sobol sequence (stratified in every channel, jointly spread; no RNG, so the
    base is the same function in every version and inside the ONNX graph)."""
    from scipy.stats import norm, qmc

    points = qmc.Sobol(d=PAYS_PER_SALE.size, scramble=False).random(samples)
    return norm.ppf(points + 0.5 / samples)


_THOMPSON_Z = thompson_quantiles()
_PAID = np.flatnonzero(~PAYS_PER_SALE)
_THOMPSON_Z_PAID = np.ascontiguousarray(_THOMPSON_Z[:, _PAID])
_PAID_TO_ALL = np.eye(PAYS_PER_SALE.size)[_PAID]  # (n_paid, n_channels) selection


def thompson_shares_torch(obs: Any) -> Any:
    """Paid-channel split of ``obs_thompson`` ``(n, n_channels)`` for raw observations: the
    share of fixed normal draws (:func:`thompson_quantiles`) each paid channel wins when its log
    ROI is drawn from ``N(log_matured_roi_k, (0.5 / sqrt(1 + matured_k))^2)``, mixed with 2%
    exploration per paid channel; pay-per-sale channels get 0. ``matured_k``: the channel's spend
    so far less the share of recent spend not yet converted, in hours of even pacing over the
    default horizon (the observation does not carry the horizon).

    Probability matching as in the ``bandit`` rule (Thompson sampling), made a deterministic
    function of the observation by drawing the same quantiles every hour.
    """
    import torch

    obs = obs.to(torch.float64)
    horizon = float(HORIZON_HOURS)
    spend = obs[:, _CUM_SPEND_BY_CHANNEL] - LATE_SHARE * obs[:, _RECENT_SPEND_BY_CHANNEL]
    sd = THOMPSON_PRIOR_SD / torch.sqrt(1.0 + torch.clamp(spend, min=0.0) * horizon)
    # Only paid channels draw (pay-per-sale ones are outside the bandit): (n, samples, n_paid).
    paid = torch.from_numpy(_PAID)
    log_roi = obs[:, _LOG_ROI_BY_CHANNEL][:, paid]
    draws = log_roi[:, None, :] + sd[:, paid][:, None, :] * torch.from_numpy(_THOMPSON_Z_PAID)[None]
    won = (draws == draws.amax(dim=2, keepdim=True)).sum(dim=1)  # ties: a win each
    wins = won.to(torch.float64) / float(_THOMPSON_Z.shape[0])
    shares = (1.0 - THOMPSON_MIN_SHARE * _PAID.size) * wins + THOMPSON_MIN_SHARE
    return shares @ torch.from_numpy(_PAID_TO_ALL)  # back to all channels, 0 where per sale


_THROTTLES = ("always", "never", "promotion")
_SPLITS = ("roi", "thompson", "by_price")


def obs_pacing_torch(obs: Any, throttle: str = "always", split: str = "roi") -> Any:
    """Actions ``(n, 7)`` in ``[-1, 1]`` of the ``obs_*`` rules for raw observations
    ``(n, OBS_DIM)``.

    Pace (multiple of even pacing of what is left): ``exp(8 * pace_gap)``. Where throttled, it is
    capped at 1 while the delay-corrected ROI so far is below the target and then multiplied by
    ``(ROI / R)^4``. ``throttle``: ``"always"`` (``obs_pacing``), ``"never"``
    (``obs_pacing_unthrottled``: the pace gap alone, as the ``bandit`` and ``roi_proportional``
    rules pace), ``"promotion"`` (``obs_thompson``, ``obs_price_aware``: only while a promotion
    is on the calendar, where saving money for the event pays). Paid channels split that spend in
    proportion to ``(ROI_k / R)^2`` (``split="roi"``), by :func:`thompson_shares_torch`
    (``"thompson"``), or by the first for items priced from ``HIGH_PRICE_CNY`` and the second
    below (``"by_price"``); pay-per-sale channels keep a standing allocation of 4x even pacing
    (only their commissions are spent).
    """
    import torch

    if throttle not in _THROTTLES or split not in _SPLITS:
        raise ValueError(f"Unknown throttle {throttle!r} or split {split!r}.")
    obs = obs.to(torch.float64)
    n_ch = PAYS_PER_SALE.size
    per_sale = torch.from_numpy(PAYS_PER_SALE)  # no copy: built once, not per call
    hours_left_frac = torch.clamp(1.0 - obs[:, _PROGRESS], min=1e-3)
    even = torch.clamp(obs[:, _BUDGET_LEFT] / hours_left_frac, min=1e-9)
    log_roi = obs[:, _LOG_ROI]
    log_pace = PACE_GAIN * obs[:, _PACE_GAP]
    throttled = log_roi < 0.0
    if throttle == "never":
        throttled = torch.zeros_like(throttled)
    elif throttle == "promotion":
        # hours_to_event is clipped to 1 when no event falls within the horizon
        throttled = throttled & (obs[:, _HOURS_TO_EVENT] < 1.0)
    log_pace = torch.where(throttled, torch.clamp(log_pace, max=0.0) + ROI_GAIN * log_roi, log_pace)
    pace = torch.clamp(torch.exp(torch.clamp(log_pace, -3.0, 1.6)), max=MAX_PACE_MULT)
    if split == "thompson":
        weights = thompson_shares_torch(obs)
    else:
        weights = torch.exp(SHARE_POWER * obs[:, _LOG_ROI_BY_CHANNEL])
        weights = torch.where(per_sale, torch.zeros_like(weights), weights)
    if split == "by_price":
        high_price = obs[:, _LOG_PRICE] >= np.log(HIGH_PRICE_CNY / REFERENCE_PRICE_CNY)
        roi_shares = weights / weights.sum(dim=1, keepdim=True)
        weights = torch.where(high_price[:, None], roi_shares, thompson_shares_torch(obs))
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

    with torch.inference_mode():  # no autograd bookkeeping: ~10% of the call here
        return base_action_torch(name, torch.from_numpy(np.ascontiguousarray(obs))).numpy()


def base_action_torch(name: str, obs: Any) -> Any:
    """Actions ``(n, 7)`` of residual base ``name`` (not ``none``) for a raw observation
    tensor ``(n, OBS_DIM)``: the one implementation, also traced into the ONNX export."""
    throttle, split = _BASE_RULES[check_residual_base(name)]
    return obs_pacing_torch(obs, throttle=throttle, split=split)


def add_residual(name: str, obs: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """The residual policy's action ``clip(base(obs) + delta, -1, 1)``, float32 ``(n, 7)``."""
    if name == "none":
        return np.asarray(delta, dtype=np.float32)
    return _clipped_sum(base_action(name, obs), delta)


def _clipped_sum(base: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return np.clip(base + delta, -1.0, 1.0).astype(np.float32)


class TwinCampaigns(Protocol):
    """Campaigns below a ``ResidualAction`` that its rule also plays (the training's twins,
    ``PairedBaseline``): their actions come out of the residual base's own call."""

    rule: str
    #: Set before each step by ``ResidualAction``: the rule's actions for ``twin_obs``.
    twin_actions: np.ndarray | None

    @property
    def twin_obs(self) -> np.ndarray:
        """Current raw observations of the twins ``(n_twins, OBS_DIM)``."""


class ResidualAction(VecEnvWrapper):
    """Adds a stateless rule's action to the agent's: the env steps ``clip(base(obs) + a)``.

    Sits below ``VecNormalize`` so the rule sees raw observations (see
    :mod:`budgetgym.agents.residual`); ``residual_base`` names the rule for checkpoints.

    Args:
        venv: the wrapped env.
        residual_base: the rule (:data:`RESIDUAL_BASES`).
        twins: campaigns below that the same rule plays (``PairedBaseline``): one base call
            serves both, as a call costs mostly per call and little per row (128 rows: 0.57 ms,
            two calls of 64: 0.85 ms). Each row's action is the same either way.
    """

    def __init__(
        self, venv: VecEnv, residual_base: str, twins: TwinCampaigns | None = None
    ) -> None:
        super().__init__(venv)
        self.residual_base = check_residual_base(residual_base)
        if twins is not None and (self.residual_base == "none" or twins.rule != residual_base):
            raise ValueError(
                f"The twins' rule {twins.rule!r} is not the residual base {residual_base!r}."
            )
        self.twins = twins
        self._obs = np.zeros((venv.num_envs, *venv.observation_space.shape), dtype=np.float32)

    def reset(self) -> np.ndarray:
        self._obs = self.venv.reset()
        return self._obs

    def step_async(self, actions: np.ndarray) -> None:
        if self.twins is None:
            self.venv.step_async(add_residual(self.residual_base, self._obs, actions))
            return
        n = self._obs.shape[0]
        base = base_action(self.residual_base, np.concatenate([self._obs, self.twins.twin_obs]))
        self.twins.twin_actions = base[n:]
        self.venv.step_async(_clipped_sum(base[:n], actions))

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        obs, rewards, dones, infos = self.venv.step_wait()
        self._obs = obs  # after an episode ends: the next episode's first observation
        return obs, rewards, dones, infos


def vec_env_stack(venv: Any) -> Iterator[Any]:
    """``venv`` and every VecEnv it wraps, outermost first (following ``.venv``)."""
    while venv is not None:
        yield venv
        venv = getattr(venv, "venv", None)


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
