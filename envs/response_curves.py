"""Response curves of a marketing-mix model as a scenario.

A response-curves file (YAML, documented in docs/scenarios.md) gives, per channel, the Hill
curve a marketing-mix model fitted (PyMC-Marketing, Robyn, Meridian...): GMV per period as a
function of steady spend per period, ``scale_cny * x**slope / (x**slope + ec_cny**slope)``,
its geometric adstock decay and the typical spend. :func:`scenario_from_curves` turns it into a
:class:`ScenarioSpec` whose expected attributed GMV at steady spend matches each curve over the
typical range (``typical_spend_cny / 2`` to ``2 * typical_spend_cny``).

How: each curve overrides one channel of a base scenario, whose behaviour (billing, win-curve
shape ``price_sigma``, noise, diurnal profile, launch support) it keeps. The simulator's
expected GMV of a steady hourly spend ``a`` is ``c * lambda * G(a / lambda)``, where ``G`` is
the mean over campaigns and hours of the win curve times CTR, calendar CVR multiplier, price and
the attributed share of the conversions (the same market model as the kernel's,
:func:`~budgetgym.envs.core.hourly_markets` and :func:`~budgetgym.envs.core.win_curve`):
scaling the channel's volume by ``lambda`` scales its market, and ``c`` is its CVR. The fit
picks ``lambda`` and ``c`` by least squares on log GMV over the typical range. What it cannot
represent, docs/scenarios.md lists.

Files are recognized by their ``response_curves`` key wherever a scenario file is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field, model_validator

from budgetgym.envs.channels import ChannelSpec, channel_array
from budgetgym.envs.core import MAX_WIN_FRAC, hourly_markets, win_curve
from budgetgym.envs.errors import unknown_name_error
from budgetgym.envs.mechanisms import unmodelled_mechanisms
from budgetgym.envs.scenario_specs import (
    DERIVED_KINDS,
    ModelPriors,
    ScenarioSpec,
    is_scenario_path,
    load_scenario_file,
)
from budgetgym.envs.scenarios import (
    ATTRIBUTION_WINDOW_HOURS,
    PLAIN,
    REFERENCE_PRICE_CNY,
    SCENARIOS,
    sample_campaigns,
)
from budgetgym.envs.spec_base import (
    Identifier,
    PositiveFloat,
    PositiveRange,
    Spec,
    validate_mapping,
)

#: The default base: the plain market's hit product (the shipped scenarios switch on mechanisms
#: the fit does not model).
PLAIN_BASE = PLAIN / "hit_product.yaml"
#: The fit's range: spend per period from TYPICAL_RANGE[0] to TYPICAL_RANGE[1] x typical.
TYPICAL_RANGE = (0.5, 2.0)
#: Largest relative error of the fitted GMV over that range that a file may have.
FIT_TOLERANCE = 0.10
#: Share of a steady request at the top of the range that must be spent (the market absorbs it).
MIN_SPENT_FRAC = 0.97
#: Highest fitted CVR per click; above it, impressions are made cheaper (volume up, price down).
MAX_FITTED_CVR = 0.2
_FIT_SEEDS = 32
_GRID = np.logspace(-4.5, 4.5, 721)  # spend / typical spend of the response tables
_SCALES = np.logspace(-4.0, 4.0, 1601)  # candidate volume factors lambda


class ResponseCurve(Spec):
    """One channel's fitted response (units: CNY, per period of ``period_hours``).

    Attributes:
        channel: a channel of the base scenario (its behaviour is kept; billing CPC or CPM).
        ec_cny: half saturation: the steady spend per period that buys half of ``scale_cny``.
        slope: Hill shape ``s`` (1: concave from the start; above 1: S-shaped).
        scale_cny: GMV per period as spend grows without bound.
        adstock_decay: geometric carry-over per period, normalized weights
            ``(1 - decay) * decay**lag``.
        typical_spend_cny: typical spend per period (the centre of the fitted range).
    """

    channel: Identifier
    ec_cny: PositiveFloat
    slope: PositiveFloat
    scale_cny: PositiveFloat
    adstock_decay: Annotated[float, Field(ge=0, lt=1)] = 0.0
    typical_spend_cny: PositiveFloat

    def gmv(self, spend_cny: np.ndarray) -> np.ndarray:
        """GMV per period of a steady spend per period (CNY), the Hill curve."""
        x = np.asarray(spend_cny, dtype=np.float64) ** self.slope
        return self.scale_cny * x / (x + self.ec_cny**self.slope)


class ResponseCurvesSpec(Spec):
    """A response-curves file.

    Attributes:
        name: the scenario's name.
        description: one line for listings.
        base: the scenario (name, or path relative to this file) whose channels, calendar,
            launch support, delays and goal the result keeps: one of the plain market, which
            the fit models (default: the plain ``hit_product``, ``PLAIN_BASE``).
        period_hours: the model's period (168: weekly data, 24: daily).
        price_cny: average order value (GMV is fixed by the curves; this sets orders).
        budget_cny: campaign budget, log-uniform (default: 0.8 to 1.25 times the typical
            spend of the curves over the base's horizon).
        target_roi: target ROI, uniform (default: the base's).
        response_curves: one curve per channel to fit; the base's other channels stay as
            they are.
    """

    name: Identifier
    description: str = Field(min_length=1)
    base: str = str(PLAIN_BASE)
    period_hours: Annotated[int, Field(ge=1)] = 168
    price_cny: PositiveFloat = REFERENCE_PRICE_CNY
    budget_cny: PositiveRange | None = None
    target_roi: PositiveRange | None = None
    response_curves: Annotated[tuple[ResponseCurve, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _distinct(self) -> ResponseCurvesSpec:
        names = [c.channel for c in self.response_curves]
        if len(set(names)) != len(names):
            raise ValueError("response_curves: a channel is listed more than once")
        return self


@dataclass(frozen=True)
class CurveFit:
    """How well the fitted scenario reproduces one curve over the typical range.

    Attributes:
        channel: the channel.
        max_rel_error: largest ``|fitted / curve - 1|`` over the range.
        cvr: the fitted CVR per click.
        volume_factor: the fitted volume over the base channel's.
    """

    channel: str
    max_rel_error: float
    cvr: float
    volume_factor: float


def _base_spec(spec: ResponseCurvesSpec, source: Path) -> ScenarioSpec:
    """The base scenario: a shipped name, or a path relative to the curves' file."""
    if is_scenario_path(spec.base):
        base = load_scenario_file(source.parent / spec.base)
    elif spec.base in SCENARIOS:
        base = SCENARIOS[spec.base]
    else:
        known = unknown_name_error("scenario", spec.base, tuple(SCENARIOS))
        raise ValueError(f"{source}: base: {known}")
    if not isinstance(base, ScenarioSpec):
        raise ValueError(f"{source}: base: {spec.base!r} is not a plain scenario.")
    mechanisms = unmodelled_mechanisms(base)
    if mechanisms:
        raise ValueError(
            f"{source}: base: {spec.base!r} switches on {', '.join(mechanisms)}; the fit models "
            f"the plain market's response, so the result would miss its curves. Name a plain "
            f"scenario, e.g. {PLAIN_BASE}."
        )
    return base


def _point_priors(
    spec: ResponseCurvesSpec,
    base: ScenarioSpec,
    channels: list[ChannelSpec],
    mean_delay: float,
) -> ScenarioSpec:
    """``base`` with ``channels`` and priors that make every campaign the modelled advertiser:
    no campaign-to-campaign spread of channel volume, price, CTR or CVR."""
    typical = sum(c.typical_spend_cny for c in spec.response_curves)
    budget = typical * base.horizon_hours / spec.period_hours
    return base.model_copy(
        update={
            "name": spec.name,
            "description": spec.description,
            "budget_cny": spec.budget_cny or (0.8 * budget, 1.25 * budget),
            "target_roi": spec.target_roi or base.target_roi,
            "price_cny": (spec.price_cny, spec.price_cny),
            "creative_quality": (1.0, 1.0),
            "channel_cvr_spread": 0.0,
            "cvr_prior_sigma": 0.0,
            "cvr_prior_median": 1.0,
            "mean_delay_hours": mean_delay,
            "model": ModelPriors(
                volume_budget_exponent=0.0,
                volume_log_sd=0.0,
                price_log_sd=0.0,
                ctr_log_sd=0.0,
                cvr_price_elasticity=0.0,
                cvr_new_cap=1.0,
                cvr_returning_cap=1.0,
            ),  # fmt: skip
            "channels": tuple(channels),
        }
    )


def _mean_delay_hours(spec: ResponseCurvesSpec, immediate_frac: float) -> float:
    """Mean delay of the non-immediate conversions whose mean lag matches the curves' adstock
    (spend-weighted): a lag of ``decay / (1 - decay)`` periods."""
    weights = np.array([c.typical_spend_cny for c in spec.response_curves])
    decay = np.array([c.adstock_decay for c in spec.response_curves])
    lag_hours = float(weights @ (decay / (1.0 - decay)) / weights.sum()) * spec.period_hours
    return max(1.0, lag_hours / max(1.0 - immediate_frac, 1e-9))


def _response_tables(
    provisional: ScenarioSpec, typical_per_hour: np.ndarray, period_hours: int
) -> tuple[np.ndarray, np.ndarray]:
    """Expected spend and expected attributed GMV per unit of CVR, per period, of a steady
    hourly spend request of ``_GRID * typical_per_hour`` on each channel: two
    ``(n_grid, n_channels)`` tables, the mean over campaigns and hours of the simulator's
    market model (a request above ``MAX_WIN_FRAC`` of an hour's market is not all spent)."""
    params = sample_campaigns(provisional, np.arange(_FIT_SEEDS))
    markets = hourly_markets(params)
    horizon = params.horizon_hours
    # Share of a conversion made at hour t that is attributed by the end: immediate, arrived
    # before the horizon, or settled within the attribution window.
    hazard = params.delay_hazard_per_hour[:, None]
    immediate = params.immediate_frac[:, None]
    waiting = (1.0 - hazard) ** (horizon - 1 - np.arange(horizon)[None, :])
    p_window = 1.0 - (1.0 - hazard) ** ATTRIBUTION_WINDOW_HOURS
    share = immediate + (1.0 - immediate) * (1.0 - waiting * (1.0 - p_window))
    value = (markets["cvr_mult"] * params.ctr[:, None, :] * params.price_cny[:, None, None]
             * share[:, :, None])  # fmt: skip
    cap = MAX_WIN_FRAC * markets["max_spend_cny"]
    per_period = period_hours / horizon
    price_sigma = channel_array("price_sigma", params.channels)
    cost, gmv = np.empty((2, _GRID.size, typical_per_hour.size))
    for g, factor in enumerate(_GRID):
        spend = np.broadcast_to(factor * typical_per_hour, cap.shape)
        impressions = win_curve(spend, markets["volume"], markets["max_spend_cny"], price_sigma)
        gmv[g] = (impressions * value).sum(axis=1).mean(axis=0) * per_period
        cost[g] = np.minimum(spend, cap).sum(axis=1).mean(axis=0) * per_period
    return cost, gmv


def _fit_channel(
    curve: ResponseCurve, cost: np.ndarray, gmv: np.ndarray
) -> tuple[float, float, float]:
    """``(lambda, cvr, max relative error)``: the volume factor and CVR whose expected GMV at
    an expected spend ``x``, ``cvr * lambda * G`` at the request where ``lambda * C = x``,
    best matches ``curve`` in log over the typical range (``cost`` and ``gmv`` are the tables
    ``C`` and ``G`` of the channel at its base volume)."""
    x = curve.typical_spend_cny * np.geomspace(*TYPICAL_RANGE, 31)
    target = np.log(curve.gmv(x))
    # The requests where the spend still grows (beyond, every hour's market is bought out).
    growing = np.flatnonzero(np.diff(cost, prepend=0.0) > 1e-12 * cost[-1])
    log_cost, log_gmv = np.log(cost[growing]), np.log(np.maximum(gmv[growing], 1e-300))
    # log G at the request that spends x / lambda, for every candidate lambda.
    where = np.log(x)[None, :] - np.log(_SCALES)[:, None]
    log_g = np.interp(where, log_cost, log_gmv)
    residual = target[None, :] - np.log(_SCALES)[:, None] - log_g
    log_cvr = residual.mean(axis=1)
    sse = ((residual - log_cvr[:, None]) ** 2).sum(axis=1)
    # A lambda whose market does not absorb a steady request of the range's top spend is out.
    top_request = np.log(x[-1] / curve.typical_spend_cny) - np.log(_SCALES)
    top_cost = np.interp(top_request, np.log(_GRID), np.log(np.maximum(cost, 1e-300)))
    sse[np.log(_SCALES) + top_cost < np.log(MIN_SPENT_FRAC * x[-1])] = np.inf
    best = int(np.argmin(sse))
    error = np.exp(log_cvr[best] - residual[best]) - 1.0
    return float(_SCALES[best]), float(np.exp(log_cvr[best])), float(np.abs(error).max())


def fit_curves(
    spec: ResponseCurvesSpec, base: ScenarioSpec, source: str = "response curves"
) -> tuple[ScenarioSpec, tuple[CurveFit, ...]]:
    """The scenario of ``spec`` over ``base``, and how well it reproduces each curve.

    Raises:
        ValueError: a curve names a channel the base lacks or one billed per sale, or the
            simulator cannot match a curve within ``FIT_TOLERANCE`` over the typical range
            (an S-shaped curve whose shape the channel's win curve cannot take).
    """
    channels = {c.name: c for c in base.channels}
    for i, curve in enumerate(spec.response_curves):
        if curve.channel not in channels:
            raise ValueError(
                f"{source}: response_curves[{i}].channel: "
                f"{unknown_name_error('channel', curve.channel, tuple(channels))}"
            )
        if channels[curve.channel].billing == "per_sale":
            raise ValueError(
                f"{source}: response_curves[{i}].channel: {curve.channel!r} is paid per sale; "
                "its cost follows GMV, so a spend-response curve does not apply."
            )
    mean_delay = _mean_delay_hours(spec, base.immediate_frac)
    fitted = {c.channel: c for c in spec.response_curves}
    # Provisional channels: the base's, with returning customers converting as new ones (the
    # curves do not tell them apart), so the response does not move with the store's pool.
    provisional = [
        c.model_copy(update={"cvr_new": 1.0, "cvr_returning": 1.0}) if c.name in fitted else c
        for c in base.channels
    ]
    scenario = _point_priors(spec, base, provisional, mean_delay)
    typical = np.array([fitted[c.name].typical_spend_cny if c.name in fitted else 0.0
                        for c in base.channels])  # fmt: skip
    cost, gmv = _response_tables(scenario, typical / spec.period_hours, spec.period_hours)
    final, fits = [], []
    for k, channel in enumerate(base.channels):
        if channel.name not in fitted:
            final.append(channel)
            continue
        volume_factor, cvr, error = _fit_channel(fitted[channel.name], cost[:, k], gmv[:, k])
        if error > FIT_TOLERANCE:
            raise ValueError(
                f"{source}: response_curves: channel {channel.name!r}: the simulator matches "
                f"this curve only within {error:.0%} over {TYPICAL_RANGE[0]}-{TYPICAL_RANGE[1]}x "
                f"the typical spend (tolerance {FIT_TOLERANCE:.0%}) with a market that absorbs "
                f"the top spend; its win curve (price_sigma {channel.price_sigma}) is not this "
                "concave (a base whose channel has a larger price_sigma is)."
            )
        # A CVR above MAX_FITTED_CVR is traded for cheaper, more numerous impressions: the
        # same market cost and the same expected GMV.
        cheaper = min(1.0, MAX_FITTED_CVR / cvr)
        final.append(
            channel.model_copy(
                update={
                    "volume_per_hour": channel.volume_per_hour * volume_factor / cheaper,
                    "price_median_cny": channel.price_median_cny * cheaper,
                    "cvr_new": cvr * cheaper,
                    "cvr_returning": cvr * cheaper,
                }
            )
        )
        fits.append(CurveFit(channel.name, error, cvr * cheaper, volume_factor / cheaper))
    result = _point_priors(spec, base, final, mean_delay)
    return ScenarioSpec.model_validate(result.model_dump()), tuple(fits)


def scenario_from_curves(data: dict[str, Any], path: Path) -> ScenarioSpec:
    """The scenario of a parsed response-curves file at ``path`` (see :func:`fit_curves`)."""
    spec = validate_mapping(ResponseCurvesSpec, data, str(path))
    return fit_curves(spec, _base_spec(spec, path), str(path))[0]


DERIVED_KINDS["response_curves"] = scenario_from_curves
