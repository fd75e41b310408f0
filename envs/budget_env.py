"""``MultiChannelBudgetEnv``: the single-campaign ``gymnasium.Env`` view of the batched core."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from budgetgym.envs.campaigns import BatchedCampaigns, info_at
from budgetgym.envs.features import DEFAULT_LAYOUT, ObservationLayout
from budgetgym.envs.scenarios import HORIZON_HOURS, TRAIN_SEED_LIMIT, check_seed


def observation_space(layout: ObservationLayout = DEFAULT_LAYOUT) -> gym.spaces.Box:
    """Flat ``Box((layout.dim,), float32)`` with per-feature bounds; features in
    ``layout.features``."""
    return gym.spaces.Box(layout.low, layout.high, dtype=np.float32)


def action_space(layout: ObservationLayout = DEFAULT_LAYOUT) -> gym.spaces.Box:
    """``Box(-1, 1, (n_channels + 1,), float32)``: pace, then one logit per channel."""
    return gym.spaces.Box(-1.0, 1.0, shape=(layout.action_dim,), dtype=np.float32)


class MultiChannelBudgetEnv(gym.Env):
    """Allocate an advertising budget over six traffic channels, hour by hour.

    ## Description
    An advertiser has a budget B (CNY) and a target ROI R (GMV / spend) for one product over a
    horizon of H hourly steps (default 168 = 7 days). Each hour the policy chooses how much to
    spend and how to split it over search (CPC), recommendation feed (CPM), live stream, short
    video, affiliate (commission per sale) and external social. Spend buys impressions through a
    concave win curve; clicks, conversions by new and returning customers and GMV follow, with
    conversion delays. See docs/simulator.md for the equations.

    The channels, and with them the widths of both spaces, are the scenario's
    (``env.campaigns.channels``); the widths below are those of the reference six. A policy
    trained on one channel list does not fit another: checkpoints record the list.

    ## Action Space
    ``Box(-1, 1, (7,), float32)``. ``a[0]`` is the pace: hourly spend =
    ``(4**a0 - 0.25) / 0.75 * budget_left / hours_left`` (-1: nothing, 0: even pacing, +1: five
    times even pacing), never more than the budget left. ``a[1:]`` are channel logits; the
    split is ``softmax(3 * a[1:])``. Money a channel cannot absorb stays in the budget.
    NaN/inf, values outside [-1, 1] (however close: float32 holds ±1 exactly, so float32
    clipping lands inside), a wrong shape or a non-numeric dtype raise ``ValueError`` naming
    the offending entry and its exact value.

    ## Observation Space
    ``Box((77,), float32)``: 17 campaign features, then 10 features for each of the 6 channels,
    named ``"<channel>/<feature>"`` (``"search/spend_rate"``); the order is
    ``budgetgym.envs.OBS_FEATURES``, the bounds are per feature; each row is an entry of
    ``budgetgym.envs.features.FEATURES``. Only what an advertiser sees:
    true CTRs and CVRs, future traffic and other hidden parameters are never observed.

    | campaign feature | meaning (scaling) |
    |---|---|
    | ``hour_sin`` | time of day, sin(2 pi hour / 24) |
    | ``hour_cos`` | time of day, cos(2 pi hour / 24) |
    | ``weekday_sin`` | day of the week, sin(2 pi day / 7) |
    | ``weekday_cos`` | day of the week, cos(2 pi day / 7) |
    | ``progress`` | hours elapsed / horizon |
    | ``event_active`` | 1 during a promotion on the public calendar |
    | ``event_warmup`` | 1 during the warm-up before it |
    | ``hours_to_event`` | (event start - hour) / horizon in [-1, 1]; 1 without event |
    | ``budget_left_frac`` | budget left / budget |
    | ``pace_gap`` | budget_left_frac - hours left / horizon (> 0: behind even pacing) |
    | ``target_roi`` | target ROI / 3 |
    | ``roi_to_target`` | attributed GMV / (spend + 1% of budget) / target ROI |
    | ``gmv_frac`` | attributed GMV / (budget x target ROI) |
    | ``log_price`` | log(own product price / 150 CNY) |
    | ``log_matured_roi`` | log(delay-corrected ROI so far / target), shrunk toward 0, in [-5, 5] |
    | ``new_product`` | 1 for a product launched with the platform's cold-start support |
    | ``new_customer_value`` | the goal's extra value of a new customer / price (0: none) |

    | channel feature | meaning (scaling) |
    |---|---|
    | ``spend_rate`` | last hour's spend / (budget / horizon) |
    | ``log_impressions`` | log1p(last hour's impressions) / 10 |
    | ``log_clicks`` | log1p(last hour's clicks) / 6 |
    | ``log_conversions`` | log1p(conversions attributed last hour) / 3 |
    | ``gmv_rate`` | GMV attributed last hour / (target ROI x budget / horizon) |
    | ``cum_spend_frac`` | spend so far / budget |
    | ``cum_gmv_frac`` | attributed GMV so far / (budget x target ROI) |
    | ``log_cpm`` | log1p(observed cost per 1,000 impressions last hour) / 4 |
    | ``recent_spend_frac`` | spend with a 24 h exponential memory / budget (not yet converted) |
    | ``log_matured_roi`` | the channel's delay-corrected ROI so far, as the campaign's |

    ## Rewards
    Per hour: attributed GMV (plus, in acquisition scenarios, the value of new customers),
    divided by the budget. ``reward_mode="gmv_roi_penalty"`` (default) subtracts at the end
    ``roi_penalty_coef * max(0, R * spend - GMV) / B``; ``"profit"`` uses
    ``(margin * GMV - spend) / B``; ``"gmv"`` has no penalty.

    ## Episode End
    Terminated after H hours (time is observed, so the horizon is part of the task). At the end
    pending conversions within the attribution window (168 h) are settled into the last reward.

    ## Arguments
    ``scenario`` (default ``"hit_product"``; a name or a scenario file's path), ``reward_mode``,
    ``roi_penalty_coef``, ``horizon_hours``. ``reset(seed=s)`` draws campaign ``s``; without a
    seed, a training seed (< 900,000) is drawn from the env's generator.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        scenario: str = "hit_product",
        reward_mode: str = "gmv_roi_penalty",
        roi_penalty_coef: float = 1.0,
        horizon_hours: int = HORIZON_HOURS,
    ) -> None:
        self.campaigns = BatchedCampaigns(scenario, reward_mode, roi_penalty_coef, horizon_hours)
        self.observation_space = observation_space(self.campaigns.layout)
        self.action_space = action_space(self.campaigns.layout)
        self.campaign_seed: int | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        """Start a campaign: ``seed`` picks it (the same seed is always the same campaign).

        Raises:
            ValueError: ``seed`` is not a non-negative integer.
        """
        if seed is not None:
            seed = check_seed(seed)
        super().reset(seed=seed)
        if seed is not None:
            self.campaign_seed = seed
        else:
            self.campaign_seed = int(self.np_random.integers(0, TRAIN_SEED_LIMIT))
        obs, info = self.campaigns.reset([self.campaign_seed])
        return obs[0], info_at(info, 0)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.asarray(action)
        if action.shape != self.action_space.shape:
            raise ValueError(
                f"Action must have shape {self.action_space.shape} (pace + one logit per "
                f"channel), got {action.shape}."
            )
        obs, reward, done, info = self.campaigns.step(action[None])
        return obs[0], float(reward[0]), bool(done[0]), False, info_at(info, 0)
