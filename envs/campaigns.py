"""``BatchedCampaigns``: the core plus actions, observations, rewards and info, for n campaigns.

Every view of the simulator (single ``gymnasium.Env``, gymnasium ``VectorEnv``, SB3 ``VecEnv``,
evaluation, the oracle's replay) steps this class; none has a dynamics of its own.
"""

from __future__ import annotations

import numpy as np

from budgetgym.envs.channels import CHANNEL_NAMES
from budgetgym.envs.core import (
    ACTION_DIM,
    REWARD_MODES,
    CampaignState,
    action_to_spend_request,
    initial_state,
    simulate_hour,
)
from budgetgym.envs.scenarios import (
    EVENT_LENGTH_HOURS,
    HORIZON_HOURS,
    REFERENCE_PRICE_CNY,
    WARMUP_HOURS,
    CampaignParams,
    sample_campaigns,
)

GLOBAL_FEATURES = (
    "hour_sin",  # time of day, sin(2 pi hour / 24)
    "hour_cos",
    "weekday_sin",  # day of week, sin(2 pi day / 7)
    "weekday_cos",
    "progress",  # hours elapsed / horizon, in [0, 1]
    "event_active",  # 1 during a promotion on the public calendar
    "event_warmup",  # 1 during the warm-up before it
    "hours_to_event",  # (event start - hour) / horizon, clipped to [-1, 1]; 1 without event
    "budget_left_frac",  # budget left / budget
    "pace_gap",  # budget_left_frac - hours_left / horizon (> 0: behind even pacing)
    "target_roi",  # target ROI / 3
    "roi_to_target",  # attributed GMV / (spend + 1% of budget) / target ROI
    "gmv_frac",  # attributed GMV / (budget * target ROI)
    "log_price",  # log(own product price / 150 CNY)
)
CHANNEL_FEATURES = (
    "spend_rate",  # last hour's spend / (budget / horizon)
    "log_impressions",  # log1p(last hour's impressions) / 10
    "log_clicks",  # log1p(last hour's clicks) / 6
    "log_conversions",  # log1p(conversions attributed last hour) / 3
    "gmv_rate",  # GMV attributed last hour / (target ROI * budget / horizon)
    "cum_spend_frac",  # spend so far / budget
    "cum_gmv_frac",  # attributed GMV so far / (budget * target ROI)
    "log_cpm",  # log1p(1000 * last hour's spend / impressions) / 4, observed price
)
OBS_FEATURES: tuple[str, ...] = GLOBAL_FEATURES + tuple(
    f"{channel}/{feature}" for feature in CHANNEL_FEATURES for channel in CHANNEL_NAMES
)
OBS_DIM = len(OBS_FEATURES)


def obs_index(name: str) -> int | slice:
    """Position of a global feature, or the ``(n_channels,)`` slice of a per-channel feature."""
    if name in GLOBAL_FEATURES:
        return GLOBAL_FEATURES.index(name)
    if name in CHANNEL_FEATURES:
        start = len(GLOBAL_FEATURES) + CHANNEL_FEATURES.index(name) * len(CHANNEL_NAMES)
        return slice(start, start + len(CHANNEL_NAMES))
    raise KeyError(f"Unknown observation feature {name!r}; see OBS_FEATURES.")


def validate_actions(actions: object, n_envs: int) -> np.ndarray:
    """Check a batch of actions; return it as float64 ``(n_envs, ACTION_DIM)``.

    Raises:
        ValueError: wrong shape, non-numeric dtype, NaN/inf, or values outside ``[-1, 1]``.
    """
    arr = np.asarray(actions)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"Actions must be a real numeric array, got dtype {arr.dtype}.")
    if arr.shape != (n_envs, ACTION_DIM):
        raise ValueError(
            f"Actions must have shape ({n_envs}, {ACTION_DIM}) (pace + one logit per channel "
            f"{CHANNEL_NAMES}), got {arr.shape}."
        )
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("Actions contain NaN or inf.")
    if np.abs(arr).max(initial=0.0) > 1.0 + 1e-6:
        raise ValueError(
            f"Actions must lie in [-1, 1], got values in [{arr.min():.4g}, {arr.max():.4g}]."
        )
    return np.clip(arr, -1.0, 1.0)  # removes float round-off only (checked above)


class BatchedCampaigns:
    """``n_envs`` campaigns stepped together with numpy.

    Args:
        scenario: scenario name (see ``budgetgym list-scenarios``).
        reward_mode: ``"gmv"``, ``"gmv_roi_penalty"`` (default) or ``"profit"``.
        roi_penalty_coef: weight of the end-of-episode penalty ``max(0, R * spend - GMV)``.
        horizon_hours: episode length in hours.
    """

    def __init__(
        self,
        scenario: str = "hit_product",
        reward_mode: str = "gmv_roi_penalty",
        roi_penalty_coef: float = 1.0,
        horizon_hours: int = HORIZON_HOURS,
    ) -> None:
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"Unknown reward_mode {reward_mode!r}; valid: {', '.join(REWARD_MODES)}.")
        if not np.isfinite(roi_penalty_coef) or roi_penalty_coef < 0:
            raise ValueError(f"roi_penalty_coef must be finite and >= 0, got {roi_penalty_coef}.")
        sample_campaigns(scenario, [0], horizon_hours)  # validates the name and horizon early
        self.scenario = scenario
        self.reward_mode = reward_mode
        self.roi_penalty_coef = float(roi_penalty_coef)
        self.horizon_hours = int(horizon_hours)
        self.params: CampaignParams | None = None
        self.state: CampaignState | None = None

    @property
    def n_envs(self) -> int:
        return 0 if self.params is None else self.params.n_envs

    def reset(self, seeds: np.ndarray | list[int]) -> tuple[np.ndarray, dict]:
        """Start one campaign per seed; return observations ``(n, OBS_DIM)`` and info."""
        self.params = sample_campaigns(self.scenario, seeds, self.horizon_hours)
        self.state = initial_state(self.params)
        return self.observe(), self._info(None)

    def step(self, actions: object) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """Advance one hour. Returns ``obs (n, OBS_DIM)``, ``reward (n,)``, ``done (n,)``, info."""
        if self.state is None or self.params is None:
            raise RuntimeError("Call reset() before step().")
        if self.state.hour >= self.horizon_hours:
            raise RuntimeError("Episode is over: call reset() before stepping again.")
        acts = validate_actions(actions, self.n_envs)
        hours_left = self.horizon_hours - self.state.hour
        request = action_to_spend_request(acts, self.state.budget_left_cny, hours_left)
        return self.step_spend(request)

    def step_spend(self, spend_request_cny: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """Advance one hour with an explicit per-channel spend request ``(n, n_channels)`` CNY.

        Used by the oracle's replay; policies go through :meth:`step`.
        """
        request = np.asarray(spend_request_cny, dtype=np.float64)
        if request.shape != (self.n_envs, len(CHANNEL_NAMES)) or not np.isfinite(request).all():
            raise ValueError(
                f"Spend request must be finite with shape ({self.n_envs}, {len(CHANNEL_NAMES)})."
            )
        hourly = simulate_hour(self.params, self.state, request)
        done = self.state.hour >= self.horizon_hours
        reward = self._reward(hourly, done)
        return self.observe(), reward, np.full(self.n_envs, done), self._info(hourly)

    def _reward(self, hourly: dict[str, np.ndarray], done: bool) -> np.ndarray:
        p, s = self.params, self.state
        gmv = hourly["gmv_cny"].sum(axis=1)
        if self.reward_mode == "profit":
            gmv = p.gross_margin_frac * gmv - hourly["spend_cny"].sum(axis=1)
        value = gmv + p.new_customer_value_cny * hourly["new_customers"].sum(axis=1)
        reward = value / p.budget_cny
        if self.reward_mode == "gmv_roi_penalty" and done:
            shortfall = p.target_roi * s.spend_cny.sum(axis=1) - s.gmv_cny.sum(axis=1)
            reward = reward - self.roi_penalty_coef * np.maximum(shortfall, 0.0) / p.budget_cny
        return reward

    def observe(self) -> np.ndarray:
        """Observations ``(n_envs, OBS_DIM)`` float32 of what an advertiser can see."""
        p, s = self.params, self.state
        horizon, hour = self.horizon_hours, s.hour
        budget, roi = p.budget_cny, p.target_roi
        even_rate = budget / horizon
        spend_total, gmv_total = s.spend_cny.sum(axis=1), s.gmv_cny.sum(axis=1)
        since_event = hour - p.event_start_hour
        hour_angle, day_angle = 2 * np.pi * (hour % 24) / 24, 2 * np.pi * ((hour // 24) % 7) / 7
        n = p.n_envs
        glob = np.stack(
            [
                np.full(n, np.sin(hour_angle)),
                np.full(n, np.cos(hour_angle)),
                np.full(n, np.sin(day_angle)),
                np.full(n, np.cos(day_angle)),
                np.full(n, hour / horizon),
                ((since_event >= 0) & (since_event < EVENT_LENGTH_HOURS)).astype(np.float64),
                ((since_event < 0) & (since_event >= -WARMUP_HOURS)).astype(np.float64),
                np.clip(-since_event / horizon, -1.0, 1.0),
                s.budget_left_cny / budget,
                s.budget_left_cny / budget - (horizon - hour) / horizon,
                roi / 3.0,
                gmv_total / (spend_total + 0.01 * budget) / roi,
                gmv_total / (budget * roi),
                np.log(p.price_cny / REFERENCE_PRICE_CNY),
            ],
            axis=1,
        )
        last = s.last
        cpm = np.divide(
            1000.0 * last["spend_cny"],
            last["impressions"],
            out=np.zeros_like(last["spend_cny"]),
            where=last["impressions"] > 0,
        )
        per_channel = np.concatenate(
            [
                last["spend_cny"] / even_rate[:, None],
                np.log1p(last["impressions"]) / 10.0,
                np.log1p(last["clicks"]) / 6.0,
                np.log1p(last["conversions"]) / 3.0,
                last["gmv_cny"] / (roi * even_rate)[:, None],
                s.spend_cny / budget[:, None],
                s.gmv_cny / (budget * roi)[:, None],
                np.log1p(cpm) / 4.0,
            ],
            axis=1,
        )
        return np.concatenate([glob, per_channel], axis=1).astype(np.float32)

    def _info(self, hourly: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        """Batch info: arrays with a leading ``(n_envs,)`` axis (per-channel ones ``(n, k)``).

        Hourly per-channel keys: ``spend_cny, impressions, clicks, conversions, new_customers,
        gmv_cny`` (this hour). Totals since reset: ``budget, spend_total, gmv_total, roi,
        compensation, conversions_total, new_customers_total, returning_customers_total,
        spend_by_channel, gmv_by_channel``. Ground truth for evaluation only (never observed):
        ``true_cvr_new``, ``true_cvr_returning``, ``pending_conversions``, ``pending_gmv``,
        ``unattributed_conversions``, ``unattributed_gmv``, ``purchases`` (this hour's cohort).
        """
        p, s = self.params, self.state
        spend_total, gmv_total = s.spend_cny.sum(axis=1), s.gmv_cny.sum(axis=1)
        conversions, new = s.conversions.sum(axis=1), s.new_customers.sum(axis=1)
        info = {
            "hour": np.full(p.n_envs, s.hour),
            "budget": p.budget_cny,
            "budget_left": s.budget_left_cny.copy(),
            "target_roi": p.target_roi,
            "spend_total": spend_total,
            "gmv_total": gmv_total,
            "roi": np.divide(gmv_total, spend_total, out=np.zeros_like(gmv_total), where=spend_total > 0),
            # ROI guarantee: the platform refunds the spend that did not earn the target ROI.
            "compensation": np.maximum(spend_total - gmv_total / p.target_roi, 0.0),
            "conversions_total": conversions,
            "new_customers_total": new,
            "returning_customers_total": conversions - new,
            "spend_by_channel": s.spend_cny.copy(),
            "gmv_by_channel": s.gmv_cny.copy(),
            "true_cvr_new": p.cvr_new,
            "true_cvr_returning": p.cvr_returning,
            "pending_conversions": s.pending_conversions.sum(axis=1),
            "pending_gmv": s.pending_gmv_cny.sum(axis=1),
            "unattributed_conversions": s.unattributed_conversions.copy(),
            "unattributed_gmv": s.unattributed_gmv_cny.copy(),
        }
        if hourly is not None:
            info.update({k: v for k, v in hourly.items()})
        return info


def info_at(info: dict[str, np.ndarray], index: int) -> dict:
    """The info of one campaign out of a batch info dict (numpy scalars and ``(k,)`` arrays)."""
    return {key: value[index].copy() for key, value in info.items()}
