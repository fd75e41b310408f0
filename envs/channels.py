"""Traffic channels: the schema of one channel and the reference table of six.

Numbers describe a *reference campaign*: a 150 CNY product with a 50,000 CNY weekly budget
(about 300 CNY per hour at even pacing). Scenarios rescale them per campaign (see
``scenarios.py``); docs/simulator.md gives the rationale for each magnitude and
docs/scenarios.md the schema of a channel entry in a scenario file.

Prices are market clearing prices *per impression* (CNY). For the CPC search auction the
advertiser is billed per click, so its cost per click is the impression price divided by CTR
(0.12 / 0.05 = 2.4 CNY per click, a typical Taobao search CPC); for the CPM feed an impression
price of 0.008 CNY is a CPM of 8 CNY.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from budgetgym.envs.spec_base import (
    Identifier,
    NonNegFloat,
    PositiveFloat,
    Probability,
    Spec,
    read_yaml,
    validate_mapping,
)

#: How a channel charges: per click (search auction), per thousand impressions (feed, live,
#: short video, social) or a commission on the sales it brings (affiliate).
Billing = Literal["cpc", "cpm", "per_sale"]
#: How a ``per_sale`` channel's commission rate is set: the channel's ``commission_frac``
#: (``fixed``), or by the hour's allocation, a commission budget (``bid``; docs/simulator.md §3).
PerSalePricing = Literal["fixed", "bid"]


HourOfDay = Annotated[int, Field(ge=0, le=23)]
Weekday = Annotated[int, Field(ge=0, le=6)]
HOURS_PER_WEEK = 168


class BroadcastSchedule(Spec):
    """When a live channel is on air: hours of the day and weekdays (0 = Monday) of each
    campaign's own clock (its ``start_hour_of_week`` plus its hour), the same for every campaign
    of the scenario, so a policy reads it off the observation's clock. Off air, the channel's
    volume is ``off_air_traffic`` times its own.

    Attributes:
        hours: hours of the day on air (0-23).
        weekdays: days of the week on air (0-6; default every day).
        off_air_traffic: factor on the volume off air (the stream's replays and shop page).
    """

    hours: Annotated[tuple[HourOfDay, ...], Field(min_length=1)]
    weekdays: Annotated[tuple[Weekday, ...], Field(min_length=1)] = (0, 1, 2, 3, 4, 5, 6)
    off_air_traffic: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.1

    def on_air(self) -> np.ndarray:
        """``(168,)`` bool: whether each hour of the week is on air."""
        hour = np.arange(HOURS_PER_WEEK)
        return np.isin(hour % 24, self.hours) & np.isin(hour // 24, self.weekdays)


class ChannelSpec(Spec):
    """One traffic channel of the reference campaign (frozen; a scenario file's ``channels``
    entry).

    Attributes:
        name: identifier used in observations (``<name>/<feature>``), info dicts and reports.
        billing: ``"cpc"``, ``"cpm"`` or ``"per_sale"`` (a commission on attributed sales, no
            upfront cost).
        volume_per_hour: mean impressions on offer per hour (diurnal mean 1).
        volume_noise_sigma: log-sd of the hourly volume (live stream is bursty).
        price_median_cny: median market price per impression.
        price_sigma: log-sd of the market price distribution (shape of the win curve).
        ctr: click-through rate of an average creative.
        cvr_new: purchase probability per click of a customer new to the store.
        cvr_returning: purchase probability per click of a returning customer.
        returning_affinity: maximum share of the channel's clicks from the store's customers.
        commission_frac: commission per unit of GMV; > 0 exactly when ``billing`` is
            ``"per_sale"``.
        diurnal_strength: how strongly volume follows the daily profile (0 flat, 1 full).
        launch_support: whether the platform's launch boost for new products reaches the
            channel (the platform's own slots do; external traffic does not).
        immediate_mult: factor on the scenario's ``immediate_frac`` for this channel's
            purchases (1: the scenario's share).
        delay_mult: factor on the scenario's ``mean_delay_hours`` for this channel's delayed
            purchases (1: the scenario's mean; above 1: a longer tail).
        interest_per_click: share of the channel's clicks that do not buy and leave an
            interested customer behind (AIPL's interest; upper funnel: feed, short video,
            live, social).
        interest_affinity: largest share of the channel's non-returning clicks that come from
            the interested customers (converting channels: search).
        fatigue_strength: how much creative fatigue lowers the CTR: ``ctr / (1 + strength *
            F)``, with ``F`` the impressions shown, in hours of the campaign's volume, decaying
            at ``fatigue_recovery`` per hour (0: no fatigue).
        fatigue_recovery: share of the fatigue that wears off per hour.
        reserve_price_frac: the platform's reserve price, as a fraction of the channel-hour's
            median price: every impression won costs at least it (0: none).
        rival_depletion: how strongly rival budgets pacing out lower the price through the
            day: the price times ``1 + rival_depletion * (23 - 2 h) / 23`` at hour of day
            ``h`` (mean 1 over the day; 0: none).
        price_impact: how much the campaign's own spend raises the channel-hour's price level:
            times ``1 + price_impact * spend / max_spend`` (0: none).
        hill_shape: Hill shape ``s`` of the response: the won impressions' CTR times the won
            share to the power ``s - 1`` (1: linear in impressions; above 1: S-shaped).
        broadcast: the live broadcast schedule (:class:`BroadcastSchedule`; None: always on
            air).
        per_sale_pricing: ``"fixed"`` (the commission is ``commission_frac``, the allocation
            buys reach free of charge) or ``"bid"`` (the allocation is a commission budget that
            sets the rate offered to promoters, within ``[commission_min, commission_max]``;
            ``per_sale`` channels only).
        commission_min: the lowest commission rate a ``bid`` channel offers.
        commission_max: the highest; at it promoters bring ``MAX_WIN_FRAC`` of the volume.
        commission_elasticity: ``epsilon``: promoters' traffic grows as ``rate ** epsilon``.
    """

    name: Identifier
    billing: Billing
    volume_per_hour: PositiveFloat
    volume_noise_sigma: NonNegFloat
    price_median_cny: PositiveFloat
    price_sigma: PositiveFloat
    ctr: Probability
    cvr_new: Probability
    cvr_returning: Probability
    returning_affinity: Probability
    commission_frac: Probability
    diurnal_strength: Probability
    launch_support: bool
    immediate_mult: NonNegFloat = 1.0
    delay_mult: PositiveFloat = 1.0
    interest_per_click: Probability = 0.0
    interest_affinity: Probability = 0.0
    fatigue_strength: NonNegFloat = 0.0
    fatigue_recovery: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.05
    reserve_price_frac: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.0
    rival_depletion: Annotated[float, Field(ge=0, le=0.9, allow_inf_nan=False)] = 0.0
    price_impact: Annotated[float, Field(ge=0, le=0.5, allow_inf_nan=False)] = 0.0
    hill_shape: Annotated[float, Field(ge=1, le=4, allow_inf_nan=False)] = 1.0
    broadcast: BroadcastSchedule | None = None
    per_sale_pricing: PerSalePricing = "fixed"
    commission_min: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.05
    commission_max: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.5
    commission_elasticity: PositiveFloat = 1.0

    @model_validator(mode="after")
    def _commission_iff_per_sale(self) -> ChannelSpec:
        if (self.billing == "per_sale") != (self.commission_frac > 0):
            raise ValueError(
                f"channel {self.name!r}: commission_frac must be > 0 if and only if billing is "
                f"'per_sale' (billing {self.billing!r}, commission_frac {self.commission_frac})"
            )
        if self.per_sale_pricing == "bid" and self.billing != "per_sale":
            raise ValueError(
                f"channel {self.name!r}: per_sale_pricing 'bid' needs billing 'per_sale', "
                f"not {self.billing!r}"
            )
        if self.commission_min > self.commission_max:
            raise ValueError(
                f"channel {self.name!r}: commission_min {self.commission_min} exceeds "
                f"commission_max {self.commission_max}"
            )
        return self


class ChannelTable(Spec):
    """A file holding a list of channels (``channels.yaml``: the reference six)."""

    description: str
    channels: tuple[ChannelSpec, ...]


def load_channel_table(path: Path) -> tuple[ChannelSpec, ...]:
    """The channels of a channel-table YAML file, validated (errors name the file and key)."""
    return validate_mapping(ChannelTable, read_yaml(path), str(path)).channels


_REFERENCE_FILE = Path(str(resources.files("budgetgym.envs").joinpath("channels.yaml")))
#: The reference six channels (envs/channels.yaml), shared by every shipped scenario.
DEFAULT_CHANNELS: tuple[ChannelSpec, ...] = load_channel_table(_REFERENCE_FILE)
CHANNEL_NAMES: tuple[str, ...] = tuple(c.name for c in DEFAULT_CHANNELS)


def channel_array(field: str, channels: tuple[ChannelSpec, ...] = DEFAULT_CHANNELS) -> np.ndarray:
    """One attribute of every channel as a ``(n_channels,)`` float64 array."""
    return np.array([float(getattr(c, field)) for c in channels], dtype=np.float64)
