"""Traffic channels and their reference parameters.

Numbers describe a *reference campaign*: a 150 CNY product with a 50,000 CNY weekly budget
(about 300 CNY per hour at even pacing). Scenarios rescale them per campaign (see
``scenarios.py``); docs/simulator.md gives the rationale for each magnitude.

Prices are market clearing prices *per impression* (CNY). For the CPC search auction the
advertiser is billed per click, so its cost per click is the impression price divided by CTR
(0.12 / 0.05 = 2.4 CNY per click, a typical Taobao search CPC); for the CPM feed an impression
price of 0.008 CNY is a CPM of 8 CNY.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ChannelSpec:
    """One traffic channel of the reference campaign.

    Attributes:
        name: identifier used in observations, info dicts and reports.
        billing: ``"cpc"``, ``"cpm"`` or ``"per_sale"`` (a commission per sale, no upfront cost).
        volume_per_hour: mean impressions on offer per hour (diurnal mean 1).
        volume_noise_sigma: log-sd of the hourly volume (live stream is bursty).
        price_median_cny: median market price per impression.
        price_sigma: log-sd of the market price distribution (shape of the win curve).
        ctr: click-through rate of an average creative.
        cvr_new: purchase probability per click of a customer new to the store.
        cvr_returning: purchase probability per click of a returning customer.
        returning_affinity: maximum share of the channel's clicks from the store's customers.
        commission_frac: commission per unit of GMV (affiliate channel only).
        diurnal_strength: how strongly volume follows the daily profile (0 flat, 1 full).
        launch_support: whether the platform's launch boost reaches the channel.
    """

    name: str
    billing: str
    volume_per_hour: float
    volume_noise_sigma: float
    price_median_cny: float
    price_sigma: float
    ctr: float
    cvr_new: float
    cvr_returning: float
    returning_affinity: float
    commission_frac: float
    diurnal_strength: float
    launch_support: bool = True


DEFAULT_CHANNELS: tuple[ChannelSpec, ...] = (
    ChannelSpec("search", "cpc", 8_000, 0.15, 0.120, 0.6, 0.050, 0.0135, 0.027, 0.35, 0.0, 0.8),
    ChannelSpec("feed", "cpm", 100_000, 0.15, 0.008, 0.55, 0.020, 0.0025, 0.0067, 0.30, 0.0, 0.8),
    ChannelSpec("live", "cpm", 20_000, 0.60, 0.040, 0.9, 0.040, 0.0036, 0.022, 0.60, 0.0, 1.0),
    ChannelSpec(
        "short_video", "cpm", 80_000, 0.25, 0.006, 0.6, 0.015, 0.0022, 0.0053, 0.12, 0.0, 0.9
    ),
    ChannelSpec(
        "affiliate",
        "per_sale",
        15_000,
        0.30,
        0.040,
        0.8,
        0.030,
        0.0053,
        0.009,
        0.10,
        0.30,
        0.6,
        launch_support=False,
    ),
    ChannelSpec(
        "social",
        "cpm",
        60_000,
        0.30,
        0.005,
        0.7,
        0.012,
        0.0014,
        0.0036,
        0.05,
        0.0,
        0.7,
        launch_support=False,
    ),
)

CHANNEL_NAMES: tuple[str, ...] = tuple(c.name for c in DEFAULT_CHANNELS)


def channel_array(field: str, channels: tuple[ChannelSpec, ...] = DEFAULT_CHANNELS) -> np.ndarray:
    """One attribute of every channel as a ``(n_channels,)`` float64 array."""
    return np.array([float(getattr(c, field)) for c in channels], dtype=np.float64)
