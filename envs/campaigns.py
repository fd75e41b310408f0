"""``BatchedCampaigns``: the core plus actions, observations, rewards and info, for n campaigns.

Every view of the simulator (single ``gymnasium.Env``, gymnasium ``VectorEnv``, SB3 ``VecEnv``,
evaluation, the oracle's replay) steps this class; none has a dynamics of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any

import numba
import numpy as np

from budgetgym.envs.channels import CHANNEL_NAMES, ChannelSpec
from budgetgym.envs.core import (
    CLICKS,
    CONVERSIONS,
    GMV,
    HOURLY_METRICS,
    HOURS_PER_WEEK,
    IMPRESSIONS,
    NEW_CUSTOMERS,
    REWARD_MODES,
    SPEND,
    WEEK_PROFILE,
    BatchKernel,
    CampaignState,
    ChannelTable,
    KernelParams,
    KernelState,
    action_row_to_request,
    channel_table,
    check_actions,
    chunk_bounds,
    hour_counters,
    initial_state,
    inline_log,
    kernel_params,
    kernel_state,
    n_chunks,
    simulate_campaigns,
    week_hour,
)
from budgetgym.envs.features import (  # the names and sizes, also read from here
    CHANNEL_FEATURES,  # noqa: F401
    DEFAULT_LAYOUT,
    GLOBAL_FEATURES,
    LOG_ROI_BOUND,
    OBS_DIM,  # noqa: F401
    OBS_FEATURES,  # noqa: F401
    OBS_SCALES,
    ObsColumns,
    ObservationLayout,
    ObsScales,
    action_dim,
)
from budgetgym.envs.scenario_specs import Mixture
from budgetgym.envs.scenarios import (
    HORIZON_HOURS,
    REFERENCE_PRICE_CNY,
    CampaignParams,
    resolve_scenario,
    sample_campaigns,
)

OBS_LOW, OBS_HIGH = DEFAULT_LAYOUT.low, DEFAULT_LAYOUT.high
#: Share of spend assumed still unconverted per unit of ``recent_spend`` (public Criteo prior:
#: 35% of conversions within the hour, the rest with a ~24 h mean delay; Chapelle 2014).
LATE_SHARE = 0.65
#: Shrinkage of ``log_matured_roi`` toward the target: hours of even-pacing spend at ROI = target.
ROI_PRIOR_HOURS = 3.0


def _clock(hour):
    """Time-of-day and day-of-week angles of an hour of the week as (sin, cos, sin, cos)."""
    hour_angle = 2.0 * np.pi * (hour % 24) / 24.0
    day_angle = 2.0 * np.pi * ((hour // 24) % 7) / 7.0
    return np.sin(hour_angle), np.cos(hour_angle), np.sin(day_angle), np.cos(day_angle)


def _log1p_count_table(size):
    """``log(1 + n)`` for the counts ``n < size``, by the same compiled ``log`` as the kernels."""
    out = np.empty(size)
    for n in range(size):
        out[n] = inline_log(1.0 + n)
    return out


def _log1p_count(count):
    """``log(1 + count)`` of an integer-valued count >= 0: a table lookup below the table's size
    (clicks and conversions almost always, impressions often), bit-identical to the log above
    it. The observation computes 32 logs per campaign, most of them of small counts, which the
    table answers without computing a logarithm."""
    if count < _LOG1P_COUNTS.size:
        return _LOG1P_COUNTS[int(count)]
    return inline_log(1.0 + count)


def _observe_campaigns(
    start, stop, hour, horizon, clock, params, state, reference_price, col, sc, out
):
    """Fill ``out[start:stop]``: each feature into its column ``col`` (``ObsColumns``), its raw
    quantity times its scale ``sc`` (``ObsScales``) where it has one (see ``features.py``);
    ``clock`` is ``CLOCK_TABLE``, read at each campaign's hour of the week."""
    budget, target_roi, price = params.budget_cny, params.target_roi, params.price_cny
    event_start, boost = params.event_start_hour, params.coldstart_boost
    new_value = params.new_customer_value_cny
    budget_left, last, totals = state.budget_left_cny, state.last, state.totals
    recent_spend = state.recent_spend_cny
    n_ch = last.shape[2]
    event_length, warmup_length = params.event_length_hours, params.warmup_hours
    for i in range(start, stop):
        b, roi = budget[i], target_roi[i]
        even_rate = b / horizon
        spend_total, gmv_total = 0.0, 0.0
        for k in range(n_ch):
            spend_total += totals[SPEND, i, k]
            gmv_total += totals[GMV, i, k]
        since = hour - event_start[i]
        week = week_hour(params, i, hour)
        out[i, col.hour_sin], out[i, col.hour_cos] = clock[week, 0], clock[week, 1]
        out[i, col.weekday_sin], out[i, col.weekday_cos] = clock[week, 2], clock[week, 3]
        out[i, col.progress] = hour / horizon
        out[i, col.event_active] = 1.0 if 0 <= since < event_length[i] else 0.0
        out[i, col.event_warmup] = 1.0 if -warmup_length[i] <= since < 0 else 0.0
        out[i, col.hours_to_event] = min(max(-since / horizon, -1.0), 1.0)
        out[i, col.budget_left_frac] = budget_left[i] / b
        out[i, col.pace_gap] = budget_left[i] / b - (horizon - hour) / horizon
        out[i, col.target_roi] = roi * sc.target_roi
        out[i, col.roi_to_target] = gmv_total / (spend_total + 0.01 * b) / roi
        out[i, col.gmv_frac] = gmv_total / (b * roi)
        out[i, col.log_price] = inline_log(price[i] / reference_price)
        out[i, col.new_product] = 1.0 if boost[i] > 0.0 else 0.0
        out[i, col.new_customer_value] = new_value[i] / price[i]
        # Delay-corrected ROI: attributed GMV over the spend whose conversions should have
        # arrived by now, shrunk toward the target (log 0) until a few hours have matured.
        prior_cny = ROI_PRIOR_HOURS * even_rate
        matured_total = 0.0
        for k in range(n_ch):
            matured = max(totals[SPEND, i, k] - LATE_SHARE * recent_spend[i, k], 0.0)
            matured_total += matured
            prior_k = prior_cny / n_ch
            log_roi = inline_log((totals[GMV, i, k] + roi * prior_k) / (roi * (matured + prior_k)))
            out[i, col.channel_log_matured_roi + k] = min(max(log_roi, -LOG_ROI_BOUND),
                                                          LOG_ROI_BOUND)  # fmt: skip
        log_roi = inline_log((gmv_total + roi * prior_cny) / (roi * (matured_total + prior_cny)))
        out[i, col.log_matured_roi] = min(max(log_roi, -LOG_ROI_BOUND), LOG_ROI_BOUND)
        # Reciprocals once per campaign (a division costs several multiplications), and log(1 + x)
        # rather than log1p: the kernels' log is inlined, and x >= 0 needs no extra precision.
        inv_even, inv_b = 1.0 / even_rate, 1.0 / b
        inv_gmv_even, inv_gmv_b = inv_even / roi, inv_b / roi
        for k in range(n_ch):
            impressions = last[IMPRESSIONS, i, k]
            cpm = 1000.0 * last[SPEND, i, k] / impressions if impressions > 0 else 0.0
            out[i, col.channel_spend_rate + k] = last[SPEND, i, k] * inv_even
            out[i, col.channel_log_impressions + k] = (
                _log1p_count(impressions) * sc.channel_log_impressions
            )
            out[i, col.channel_log_clicks + k] = (
                _log1p_count(last[CLICKS, i, k]) * sc.channel_log_clicks
            )
            out[i, col.channel_log_conversions + k] = (
                _log1p_count(last[CONVERSIONS, i, k]) * sc.channel_log_conversions
            )
            out[i, col.channel_gmv_rate + k] = last[GMV, i, k] * inv_gmv_even
            out[i, col.channel_cum_spend_frac + k] = totals[SPEND, i, k] * inv_b
            out[i, col.channel_cum_gmv_frac + k] = totals[GMV, i, k] * inv_gmv_b
            out[i, col.channel_log_cpm + k] = inline_log(1.0 + cpm) * sc.channel_log_cpm
            out[i, col.channel_recent_spend_frac + k] = recent_spend[i, k] * inv_b


def _observe_loop(hour, horizon, params, state, reference_price, col, sc, out):
    """Fill ``out (n, OBS_DIM)`` for every campaign (arguments as plain tuples: see
    ``core.kernel_params``)."""
    params, state = KernelParams(*params), KernelState(*state)
    col, sc = ObsColumns(*col), ObsScales(*sc)
    clock, n = CLOCK_TABLE, out.shape[0]
    for chunk in numba.prange(n_chunks(n)):
        start, stop = chunk_bounds(chunk, n)
        _observe_campaigns(
            start, stop, hour, horizon, clock, params, state, reference_price, col, sc, out
        )


def obs_index(name: str) -> int | slice:
    """Position of a campaign feature, or the ``(n_channels,)`` slice of a channel feature, in
    the reference six channels' observation (``log_matured_roi``: the campaign one; see
    :func:`channel_slice`). Other channel lists: ``BatchedCampaigns.layout``."""
    if name in GLOBAL_FEATURES:
        return DEFAULT_LAYOUT.index(name)
    return DEFAULT_LAYOUT.channel_slice(name)


def channel_slice(name: str) -> slice:
    """The ``(n_channels,)`` slice of a channel feature in the reference six's observation."""
    return DEFAULT_LAYOUT.channel_slice(name)


def plan_to_target(
    obs: np.ndarray, mult: float | np.ndarray, layout: ObservationLayout = DEFAULT_LAYOUT
) -> np.ndarray:
    """The observation ``(n, layout.dim)`` a campaign would show if its target ROI were
    ``mult`` ``(scalar or (n,), > 0)`` times the real one: the risk knob of a rule that reads
    its target from the observation (``mult > 1`` plans to a higher ROI: less GMV, fewer
    missed targets).

    ``target_roi`` is multiplied by ``mult``; the features normalized by the target
    (``roi_to_target``, ``gmv_frac``, per channel ``gmv_rate`` and ``cum_gmv_frac``) are
    divided by it, exactly; ``log(ROI / target)`` (``log_matured_roi``, total and per channel)
    loses ``log mult``, clipped to its bounds ``[-5, 5]``. That last one is approximate: the
    simulator shrinks the early ROI toward the real target (``ROI_PRIOR_HOURS``), so the
    transformed feature starts at ``-log mult`` instead of 0 and tends to the exact value as
    spend matures. Every other feature is unchanged. Returns a new float64 array.
    """
    obs = np.array(obs, dtype=np.float64)
    if obs.ndim != 2 or obs.shape[1] != layout.dim:
        raise ValueError(f"Observations must have shape (n, {layout.dim}), got {obs.shape}.")
    mult = np.asarray(mult, dtype=np.float64)
    if mult.shape not in ((), (obs.shape[0],)):
        raise ValueError(
            f"Target multipliers must be a scalar or ({obs.shape[0]},), got {mult.shape}."
        )
    mult = np.broadcast_to(mult, (obs.shape[0],))
    if not (np.isfinite(mult).all() and (mult > 0).all()):
        raise ValueError(f"Target multipliers must be finite and > 0, got {mult}.")
    columns = np.arange(layout.dim)
    per_target = np.array(
        [layout.index("roi_to_target"), layout.index("gmv_frac")]
        + [i for name in ("gmv_rate", "cum_gmv_frac") for i in columns[layout.channel_slice(name)]]
    )
    log_per_target = np.array(
        [layout.index("log_matured_roi"), *columns[layout.channel_slice("log_matured_roi")]]
    )
    obs[:, layout.index("target_roi")] *= mult
    obs[:, per_target] /= mult[:, None]
    obs[:, log_per_target] = np.clip(
        obs[:, log_per_target] - np.log(mult)[:, None], -LOG_ROI_BOUND, LOG_ROI_BOUND
    )
    return obs


def validate_actions(
    actions: object, n_envs: int, channel_names: tuple[str, ...] = CHANNEL_NAMES
) -> np.ndarray:
    """Check the shape and dtype of a batch of actions; return it as float64
    ``(n_envs, len(channel_names) + 1)``.

    Values (NaN/inf, outside ``[-1, 1]``) are checked when they are mapped to spend, in
    :func:`~budgetgym.envs.core.action_to_spend_request`.

    Raises:
        ValueError: wrong shape or a non-numeric dtype.
    """
    arr = np.asarray(actions)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"Actions must be a real numeric array, got dtype {arr.dtype}.")
    dim = action_dim(len(channel_names))
    if arr.shape != (n_envs, dim):
        raise ValueError(
            f"Actions must have shape ({n_envs}, {dim}) (pace + one logit per channel "
            f"{channel_names}), got {arr.shape}."
        )
    return np.ascontiguousarray(arr, dtype=np.float64)


def scenario_channels(scenario: str | os.PathLike[str]) -> tuple[ChannelSpec, ...]:
    """The channel list of a scenario name or file (a mixture's members share theirs)."""
    spec = resolve_scenario(scenario)
    return spec.members[0].channels if isinstance(spec, Mixture) else spec.channels


class BatchedCampaigns:
    """``n_envs`` campaigns stepped together with numpy.

    ``channels`` are the scenario's channels and ``layout`` (an
    :class:`~budgetgym.envs.features.ObservationLayout`) the observation over them; actions are
    ``(n_envs, layout.action_dim)``: the pace, then one logit per channel.

    Args:
        scenario: scenario name (see ``budgetgym scenario list``) or a scenario file's path.
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
            raise ValueError(
                f"Unknown reward_mode {reward_mode!r}; valid: {', '.join(REWARD_MODES)}."
            )
        if not np.isfinite(roi_penalty_coef) or roi_penalty_coef < 0:
            raise ValueError(f"roi_penalty_coef must be finite and >= 0, got {roi_penalty_coef}.")
        if int(horizon_hours) < 1:
            raise ValueError(f"horizon_hours must be >= 1, got {horizon_hours}.")
        self.scenario = scenario
        self.reward_mode = reward_mode
        self.roi_penalty_coef = float(roi_penalty_coef)
        self.horizon_hours = int(horizon_hours)
        #: The scenario's channels, in the order of the action's logits and of the observation.
        self.channels = scenario_channels(scenario)
        self.layout = ObservationLayout(tuple(c.name for c in self.channels))
        self._columns = tuple(self.layout.columns())  # plain tuples: see core.kernel_params
        self.params: CampaignParams | None = None
        self._channel_table: tuple[tuple, tuple[np.ndarray, ...]] | None = None
        self._kernel_args: tuple[CampaignParams, tuple[np.ndarray, ...]] | None = None
        self.state: CampaignState | None = None

    @property
    def n_envs(self) -> int:
        return 0 if self.state is None else self.state.budget_left_cny.shape[0]

    def reset(self, seeds: np.ndarray | list[int]) -> tuple[np.ndarray, dict]:
        """Start one campaign per seed; return observations ``(n, layout.dim)`` and info."""
        params = sample_campaigns(self.scenario, seeds, self.horizon_hours)
        names = tuple(c.name for c in params.channels)
        if names != self.layout.channel_names:
            raise ValueError(
                f"Scenario {self.scenario!r} now has channels {names}, not "
                f"{self.layout.channel_names}: the spaces were declared for those; make a new env."
            )
        self.params = params
        self.state = initial_state(self.params)
        totals, _ = self._summarize(False)
        return self.observe(), self._info(totals, None)

    def step(self, actions: object) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """Advance one hour with actions ``(n, layout.action_dim)``. Returns
        ``obs (n, layout.dim)``, ``reward (n,)``, ``done (n,)``, info."""
        self._check_running()
        acts = validate_actions(actions, self.n_envs, self.layout.channel_names)
        check_actions(acts)
        return self._advance(acts, np.empty((self.n_envs, self.layout.n_channels)))

    def step_spend(
        self, spend_request_cny: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """Advance one hour with an explicit per-channel spend request ``(n, n_channels)`` CNY,
        channels in the order of ``channels``.

        Used by the oracle's replay; policies go through :meth:`step`.
        """
        self._check_running()
        request = np.asarray(spend_request_cny, dtype=np.float64)
        shape = (self.n_envs, self.layout.n_channels)
        if request.shape != shape or not np.isfinite(request).all():
            raise ValueError(
                f"Spend request must be finite with shape {shape} (one column per channel "
                f"{self.layout.channel_names})."
            )
        return self._advance(None, np.ascontiguousarray(request))

    def _check_running(self) -> None:
        if self.state is None or self.params is None:
            raise RuntimeError("Call reset() before step().")
        if self.state.hour >= self.horizon_hours:
            raise RuntimeError("Episode is over: call reset() before stepping again.")

    def _advance(
        self, actions: np.ndarray | None, request: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step with checked ``actions`` (their spend requests are written into ``request``),
        or, when ``actions`` is None, with the given spend ``request``."""
        p, s = self.params, self.state
        n, k = request.shape
        purchases, purchase_gmv = np.empty((n, k)), np.empty((n, k))
        totals, reward = np.empty((n, len(TOTAL_KEYS))), np.empty(n)
        obs = np.empty((n, self.layout.dim), dtype=np.float32)
        # A new array each hour (the kernel writes every cell): the info hands it out uncopied.
        s.last = np.empty_like(s.last)
        _STEP.for_batch(n)(
            s.hour, p.horizon_hours, actions, request,
            self._kernel_params(), kernel_state(s), self._kernel_channels(), purchases,
            purchase_gmv, REWARD_MODES.index(self.reward_mode), self.roi_penalty_coef,
            REFERENCE_PRICE_CNY,
            self._columns, _OBS_SCALES, totals, reward, obs,
        )  # fmt: skip
        s.hour += 1
        done = np.full(n, s.hour >= self.horizon_hours)
        cohort = {"purchases": purchases, "purchase_gmv_cny": purchase_gmv}
        return obs, reward, done, self._info(totals, cohort)

    def _kernel_params(self) -> tuple[np.ndarray, ...]:
        """``kernel_params(params)`` (computed again when ``params`` is replaced)."""
        if self._kernel_args is None or self._kernel_args[0] is not self.params:
            self._kernel_args = (self.params, kernel_params(self.params))
        return self._kernel_args[1]

    def _kernel_channels(self) -> tuple[np.ndarray, ...]:
        """The channel table of ``params.channels`` (computed again when they change)."""
        if self._channel_table is None or self._channel_table[0] is not self.params.channels:
            table = tuple(channel_table(self.params.channels))  # see core.kernel_params
            self._channel_table = (self.params.channels, table)
        return self._channel_table[1]

    def _summarize(self, done: bool) -> tuple[np.ndarray, np.ndarray]:
        """Totals ``(n, len(TOTAL_KEYS))`` for the info, and the reward ``(n,)``."""
        n = self.n_envs
        totals, reward = np.empty((n, len(TOTAL_KEYS))), np.empty(n)
        _SUMMARY.for_batch(n)(
            REWARD_MODES.index(self.reward_mode), self.roi_penalty_coef, done,
            self._kernel_params(), kernel_state(self.state), totals, reward,
        )  # fmt: skip
        return totals, reward

    def observe(self) -> np.ndarray:
        """Observations ``(n_envs, layout.dim)`` float32 of what an advertiser can see."""
        obs = np.empty((self.n_envs, self.layout.dim), dtype=np.float32)
        _OBSERVE.for_batch(self.n_envs)(
            self.state.hour, self.horizon_hours, self._kernel_params(),
            kernel_state(self.state), REFERENCE_PRICE_CNY, self._columns, _OBS_SCALES, obs,
        )  # fmt: skip
        return obs

    def _info(self, totals: np.ndarray, cohort: dict[str, np.ndarray] | None) -> dict:
        """Batch info: arrays with a leading ``(n_envs,)`` axis (per-channel ones ``(n, k)``).

        Totals since reset (``TOTAL_KEYS``): ``budget, budget_left, target_roi, spend_total,
        gmv_total, roi, compensation`` (the ROI guarantee's refund, ``max(0, spend - GMV / R)``),
        ``conversions_total, new_customers_total, returning_customers_total``; per channel
        ``spend_by_channel, gmv_by_channel``. After a step, this hour's per-channel
        ``spend_cny, impressions, clicks, conversions, new_customers, gmv_cny``. Ground truth
        for evaluation only (never observed): ``pending_conversions, pending_gmv,
        unattributed_conversions, unattributed_gmv``, ``true_cvr_new, true_cvr_returning``,
        ``purchases, purchase_gmv_cny`` (what this hour's clicks will eventually buy).
        Every array is new at each call (nothing is shared between steps).
        """
        p, s = self.params, self.state
        info = dict(zip(TOTAL_KEYS, totals.T, strict=True))
        info["hour"] = np.full(totals.shape[0], s.hour)
        info["spend_by_channel"] = s.totals[SPEND].copy()
        info["gmv_by_channel"] = s.totals[GMV].copy()
        info["true_cvr_new"] = p.cvr_new.copy()
        info["true_cvr_returning"] = p.cvr_returning.copy()
        if cohort is not None:
            info.update(zip(HOURLY_METRICS, s.last, strict=True))
            info.update(cohort)
        return info


TOTAL_KEYS = (
    "budget",
    "budget_left",
    "target_roi",
    "spend_total",
    "gmv_total",
    "roi",
    "compensation",
    "conversions_total",
    "new_customers_total",
    "returning_customers_total",
    "pending_conversions",
    "pending_gmv",
    "unattributed_conversions",
    "unattributed_gmv",
)


def roi_target_missed(
    gmv_cny: np.ndarray, target_roi: np.ndarray, spend_cny: np.ndarray
) -> np.ndarray:
    """Whether campaigns ended below their ROI target: ``GMV < R * spend`` (a campaign that spent
    nothing has not missed), with a 1e-9 relative tolerance for float round-off. The one rule
    behind every ROI-miss rate (evaluation, validation) and the training's miss penalty."""
    return np.asarray(gmv_cny) < np.asarray(target_roi) * np.asarray(spend_cny) * (1.0 - 1e-9)


def _summary_campaigns(start, stop, mode, penalty_coef, done, params, state, out, reward):
    """Fill ``out[start:stop]`` with ``TOTAL_KEYS`` and ``reward[start:stop]`` (see
    ``BatchedCampaigns``)."""
    budget, target_roi = params.budget_cny, params.target_roi
    margin, new_customer_value = params.gross_margin_frac, params.new_customer_value_cny
    budget_left, last, totals = state.budget_left_cny, state.last, state.totals
    pending_conv, pending_gmv = state.pending_conversions, state.pending_gmv_cny
    unattr_conv, unattr_gmv = state.unattributed_conversions, state.unattributed_gmv_cny
    n_ch = last.shape[2]
    for i in range(start, stop):
        spend = gmv = conv = new = pend_c = pend_g = 0.0
        h_spend = h_gmv = h_new = 0.0
        for k in range(n_ch):
            spend += totals[SPEND, i, k]
            gmv += totals[GMV, i, k]
            conv += totals[CONVERSIONS, i, k]
            new += totals[NEW_CUSTOMERS, i, k]
            pend_c += pending_conv[i, k]
            pend_g += pending_gmv[i, k]
            h_spend += last[SPEND, i, k]
            h_gmv += last[GMV, i, k]
            h_new += last[NEW_CUSTOMERS, i, k]
        b, roi = budget[i], target_roi[i]
        out[i, 0] = b
        out[i, 1] = budget_left[i]
        out[i, 2] = roi
        out[i, 3] = spend
        out[i, 4] = gmv
        out[i, 5] = gmv / spend if spend > 0 else 0.0
        out[i, 6] = max(spend - gmv / roi, 0.0)
        out[i, 7] = conv
        out[i, 8] = new
        out[i, 9] = conv - new
        out[i, 10] = pend_c
        out[i, 11] = pend_g
        out[i, 12] = unattr_conv[i]
        out[i, 13] = unattr_gmv[i]
        value = h_gmv if mode != 2 else margin[i] * h_gmv - h_spend  # mode 2: profit
        r = (value + new_customer_value[i] * h_new) / b
        if mode == 1 and done:  # gmv_roi_penalty: the compensation owed, at the end
            r -= penalty_coef * max(roi * spend - gmv, 0.0) / b
        reward[i] = r


def _summary_loop(mode, penalty_coef, done, params, state, out, reward):
    """Fill ``out (n, len(TOTAL_KEYS))`` and ``reward (n,)`` for every campaign."""
    params, state = KernelParams(*params), KernelState(*state)
    n = out.shape[0]
    for chunk in numba.prange(n_chunks(n)):
        start, stop = chunk_bounds(chunk, n)
        _summary_campaigns(start, stop, mode, penalty_coef, done, params, state, out, reward)


def _step_loop(
    hour, horizon, action, request, params, state, ch, purchases,
    purchase_gmv, mode, penalty_coef, reference_price, col, sc, totals_out, reward, obs,
):  # fmt: skip
    """One hour of every campaign in one pass: actions (checked, or ``None`` to step the given
    ``request``) -> spend request -> dynamics -> totals and reward -> next observation."""
    params, state, ch = KernelParams(*params), KernelState(*state), ChannelTable(*ch)
    col, sc = ObsColumns(*col), ObsScales(*sc)
    settle = hour + 1 >= horizon
    counter, profile, clock = hour_counters(hour, request.shape[1]), WEEK_PROFILE, CLOCK_TABLE
    budget_left, n = state.budget_left_cny, request.shape[0]
    for chunk in numba.prange(n_chunks(n)):
        start, stop = chunk_bounds(chunk, n)
        if action is not None:
            for i in range(start, stop):
                action_row_to_request(action, i, budget_left[i], horizon - hour, request)
        simulate_campaigns(
            start, stop, hour, settle, counter, profile, params, state, ch,
            request, purchases, purchase_gmv,
        )  # fmt: skip
        _summary_campaigns(start, stop, mode, penalty_coef, settle, params, state, totals_out,
                           reward)  # fmt: skip
        _observe_campaigns(
            start, stop, hour + 1, horizon, clock, params, state, reference_price, col, sc, obs
        )


# The per-chunk functions are called, not inlined: each is compiled once per process and shared
# by the kernels and their serial and parallel builds (inlined, they made the cold compile of
# both builds 1.6x as long); a call per chunk of campaigns costs nothing measurable. Not cached
# on their own, as ``simulate_campaigns``: their code lives in the kernels' digested builds.
_observe_campaigns = numba.njit(error_model="numpy")(_observe_campaigns)
_summary_campaigns = numba.njit(error_model="numpy")(_summary_campaigns)
_clock = numba.njit(cache=True, error_model="numpy")(_clock)
#: ``(HOURS_PER_WEEK, 4)``: the clock features of every hour of the week (compiled ``_clock``).
CLOCK_TABLE = np.array([_clock(h) for h in range(HOURS_PER_WEEK)])
_LOG1P_COUNTS = numba.njit(cache=True)(_log1p_count_table)(4096)
_log1p_count = numba.njit(cache=True, error_model="numpy", inline="always")(_log1p_count)
_OBS_SCALES = tuple(OBS_SCALES)
_OBSERVE = BatchKernel(_observe_loop)
_SUMMARY = BatchKernel(_summary_loop)
_STEP = BatchKernel(_step_loop)


def info_at(info: dict[str, np.ndarray], index: int) -> dict:
    """The info of one campaign out of a batch info dict (numpy scalars and ``(k,)`` arrays)."""
    return {key: value[index] for key, value in info.items()}


class CampaignInfo(MutableMapping):
    """The info of campaign ``index``, read from the batch info on access (as :func:`info_at`
    would give it). SB3 wants one mapping per env each step; copying the ~30 entries for every
    campaign took ~15% of PPO's rollout time. The batch's arrays are new at every step, so a
    view never changes afterwards. Keys set on it (SB3's ``terminal_observation``, VecMonitor's
    ``episode``) are held apart and hide the batch's; deleting a batch key raises ``KeyError``.
    """

    __slots__ = ("_batch", "_index", "_own")

    def __init__(
        self, batch: dict[str, np.ndarray], index: int, own: dict[str, Any] | None = None
    ) -> None:
        self._batch, self._index, self._own = batch, index, own

    def __getitem__(self, key: str) -> Any:
        if self._own is not None and key in self._own:
            return self._own[key]
        return self._batch[key][self._index]

    def get(self, key: str, default: Any = None) -> Any:
        """``info[key]``, or ``default``: without raising, as SB3 asks every info each step."""
        if self._own is not None and key in self._own:
            return self._own[key]
        column = self._batch.get(key)
        return default if column is None else column[self._index]

    def __setitem__(self, key: str, value: Any) -> None:
        if self._own is None:
            self._own = {}
        self._own[key] = value

    def __delitem__(self, key: str) -> None:
        if self._own is None or key not in self._own:
            raise KeyError(f"{key!r}: only keys set on this campaign's info can be deleted.")
        del self._own[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._batch
        if self._own is not None:
            yield from (key for key in self._own if key not in self._batch)

    def __len__(self) -> int:
        own = self._own or {}
        return len(self._batch) + sum(key not in self._batch for key in own)

    def __contains__(self, key: object) -> bool:
        return key in self._batch or (self._own is not None and key in self._own)

    def copy(self) -> CampaignInfo:
        """A view of the same campaign with its own copy of the keys set on it."""
        return CampaignInfo(self._batch, self._index, None if self._own is None else {**self._own})

    def __repr__(self) -> str:
        return f"CampaignInfo({dict(self)!r})"


def info_columns(infos: Sequence[Mapping[str, Any]], *keys: str) -> list[np.ndarray]:
    """The ``(len(infos),)`` float64 array of each key over per-env infos.

    A run of :class:`CampaignInfo` views covering a whole batch in order (as the VecEnvs hand
    them out) is read as the batch's own arrays; any other info one at a time.
    """
    parts: list[list[np.ndarray]] = [[] for _ in keys]
    i = 0
    while i < len(infos):
        run = _whole_batch_run(infos, i, keys)
        if run:
            for part, key in zip(parts, keys, strict=True):
                part.append(np.asarray(infos[i]._batch[key], dtype=np.float64))
        else:
            run = 1
            for part, key in zip(parts, keys, strict=True):
                part.append(np.array([float(infos[i][key])]))
        i += run
    return [np.concatenate(part) if part else np.zeros(0) for part in parts]


def _whole_batch_run(infos: Sequence[Mapping[str, Any]], start: int, keys: tuple) -> int:
    """Length of the batch ``infos[start:]`` views in order, or 0 (not such a run, or a key
    among ``keys`` set on one of them)."""
    first = infos[start]
    if not isinstance(first, CampaignInfo) or first._index != 0:
        return 0
    batch = first._batch
    n = len(next(iter(batch.values())))
    run = infos[start : start + n]
    whole = len(run) == n and all(
        isinstance(info, CampaignInfo)
        and info._batch is batch
        and info._index == j
        and not (info._own and any(key in info._own for key in keys))
        for j, info in enumerate(run)
    )
    return n if whole else 0
