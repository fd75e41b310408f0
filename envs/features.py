"""The table of observation features: one entry per feature, the one source of the layout.

Each :class:`Feature` names a quantity an advertiser can see, whether it is per campaign or per
channel, the factor its raw quantity is multiplied by (``scale``), its bounds and one line of
documentation. :class:`ObservationLayout` turns the table and a scenario's channel list into
positions: the campaign features first, in table order, then each channel feature for every
channel (``"<channel>/<feature>"``). The compiled observation kernel writes the columns that
:meth:`ObservationLayout.columns` gives it; a new feature is one entry here and its computation
in ``campaigns._observe_campaigns``. Rules and agents read positions and scalings only from here
(``layout.index("target_roi")``, ``layout.scale("target_roi")``), never as literals.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from budgetgym.envs.channels import CHANNEL_NAMES

#: Bound of the unbounded ratios (money and counts): finite, far above any value they take.
UNBOUNDED = 1e6
#: ``target_roi`` is the merchant's target ROI times this.
TARGET_ROI_SCALE = 1.0 / 3.0
#: ``log_impressions``, ``log_clicks``, ``log_conversions``: ``log1p(count)`` times these.
LOG_IMPRESSIONS_SCALE = 0.1
LOG_CLICKS_SCALE = 1.0 / 6.0
LOG_CONVERSIONS_SCALE = 1.0 / 3.0
#: ``log_cpm``: ``log1p(observed CPM)`` times this.
LOG_CPM_SCALE = 0.25
#: ``log_matured_roi`` (campaign and per channel) is clipped to ``[-LOG_ROI_BOUND, LOG_ROI_BOUND]``.
LOG_ROI_BOUND = 5.0


@dataclass(frozen=True)
class Feature:
    """One observation feature.

    Attributes:
        name: identifier (``"<channel>/<name>"`` in the observation for a channel feature).
        kind: ``"campaign"`` (one column) or ``"channel"`` (one column per channel).
        doc: what it is, in one line, with its scaling.
        low, high: bounds of the observation space.
        scale: the factor the raw quantity of ``doc`` is multiplied by (1.0: none).
    """

    name: str
    kind: Literal["campaign", "channel"]
    doc: str
    low: float = 0.0
    high: float = UNBOUNDED
    scale: float = 1.0


def _campaign(name: str, doc: str, low: float = 0.0, high: float = UNBOUNDED, scale: float = 1.0):
    return Feature(name, "campaign", doc, low, high, scale)


def _channel(name: str, doc: str, low: float = 0.0, high: float = UNBOUNDED, scale: float = 1.0):
    return Feature(name, "channel", doc, low, high, scale)


FEATURES: tuple[Feature, ...] = (
    _campaign("hour_sin", "time of day, sin(2 pi hour / 24)", -1.0, 1.0),
    _campaign("hour_cos", "time of day, cos(2 pi hour / 24)", -1.0, 1.0),
    _campaign("weekday_sin", "day of the week, sin(2 pi day / 7)", -1.0, 1.0),
    _campaign("weekday_cos", "day of the week, cos(2 pi day / 7)", -1.0, 1.0),
    _campaign("progress", "hours elapsed / horizon", 0.0, 1.0),
    _campaign("event_active", "1 during a promotion on the public calendar", 0.0, 1.0),
    _campaign("event_warmup", "1 during the warm-up before it", 0.0, 1.0),
    _campaign(
        "hours_to_event", "(event start - hour) / horizon in [-1, 1]; 1 without event", -1.0, 1.0
    ),
    _campaign("budget_left_frac", "budget left / budget", 0.0, 1.0),
    _campaign(
        "pace_gap", "budget_left_frac - hours left / horizon (> 0: behind even pacing)", -1.0, 1.0
    ),
    _campaign("target_roi", "target ROI / 3", scale=TARGET_ROI_SCALE),
    _campaign("roi_to_target", "attributed GMV / (spend + 1% of budget) / target ROI"),
    _campaign("gmv_frac", "attributed GMV / (budget x target ROI)"),
    _campaign("log_price", "log(own product price / 150 CNY)", -10.0),
    _campaign(
        "log_matured_roi",
        "log(delay-corrected ROI so far / target), shrunk toward 0, in [-5, 5]",
        -LOG_ROI_BOUND,
        LOG_ROI_BOUND,
    ),  # fmt: skip
    # What the merchant declares when setting up the campaign (its goal and product):
    _campaign(
        "new_product", "1 for a product launched with the platform's cold-start support", 0.0, 1.0
    ),  # fmt: skip
    _campaign("new_customer_value", "the goal's extra value of a new customer / price (0: none)"),
    _channel("spend_rate", "last hour's spend / (budget / horizon)"),
    _channel(
        "log_impressions", "log1p(last hour's impressions) / 10", scale=LOG_IMPRESSIONS_SCALE
    ),  # fmt: skip
    _channel("log_clicks", "log1p(last hour's clicks) / 6", scale=LOG_CLICKS_SCALE),
    _channel(
        "log_conversions",
        "log1p(conversions attributed last hour) / 3",
        scale=LOG_CONVERSIONS_SCALE,
    ),  # fmt: skip
    _channel("gmv_rate", "GMV attributed last hour / (target ROI x budget / horizon)"),
    _channel("cum_spend_frac", "spend so far / budget"),
    _channel("cum_gmv_frac", "attributed GMV so far / (budget x target ROI)"),
    _channel(
        "log_cpm", "log1p(observed cost per 1,000 impressions last hour) / 4", scale=LOG_CPM_SCALE
    ),  # fmt: skip
    _channel(
        "recent_spend_frac", "spend with a 24 h exponential memory / budget (not yet converted)"
    ),  # fmt: skip
    _channel(
        "log_matured_roi",
        "the channel's delay-corrected ROI so far, as the campaign's",
        -LOG_ROI_BOUND,
        LOG_ROI_BOUND,
    ),  # fmt: skip
)
_CAMPAIGN = tuple(f for f in FEATURES if f.kind == "campaign")
_CHANNEL = tuple(f for f in FEATURES if f.kind == "channel")
#: Names of the campaign features, and of the channel features, in table order.
GLOBAL_FEATURES: tuple[str, ...] = tuple(f.name for f in _CAMPAIGN)
CHANNEL_FEATURES: tuple[str, ...] = tuple(f.name for f in _CHANNEL)

#: What the observation kernel reads, by feature name: a campaign feature's column, a channel
#: feature's first column (``channel_<name>``; channel ``k`` is that plus ``k``).
ObsColumns = namedtuple(
    "ObsColumns",
    [*GLOBAL_FEATURES, *(f"channel_{name}" for name in CHANNEL_FEATURES)],
)
#: Each feature's ``scale``, named as in :class:`ObsColumns`.
ObsScales = namedtuple("ObsScales", ObsColumns._fields)


def action_dim(n_channels: int) -> int:
    """Width of the action: the pace, then one logit per channel."""
    return n_channels + 1


class ObservationLayout:
    """The observation of campaigns over the channels ``channel_names``.

    ``features`` are the ``dim`` column names in order: the campaign features, then for each
    channel feature its ``"<channel>/<feature>"`` columns, channel by channel.
    """

    def __init__(self, channel_names: tuple[str, ...]) -> None:
        if not channel_names or len(set(channel_names)) != len(channel_names):
            raise ValueError(f"Channel names must be distinct and not empty, got {channel_names}.")
        self.channel_names = tuple(channel_names)

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)

    @cached_property
    def features(self) -> tuple[str, ...]:
        """The name of every column, in order."""
        per_channel = (f"{c}/{f}" for f in CHANNEL_FEATURES for c in self.channel_names)
        return (*GLOBAL_FEATURES, *per_channel)

    @property
    def dim(self) -> int:
        """Width of the observation."""
        return len(GLOBAL_FEATURES) + len(CHANNEL_FEATURES) * self.n_channels

    @property
    def action_dim(self) -> int:
        """Width of the action (see :func:`action_dim`)."""
        return action_dim(self.n_channels)

    def index(self, name: str) -> int:
        """Column of a campaign feature, or of one channel's feature ``"<channel>/<feature>"``."""
        if name in GLOBAL_FEATURES:
            return GLOBAL_FEATURES.index(name)
        channel, _, feature = name.partition("/")
        if channel in self.channel_names and feature in CHANNEL_FEATURES:
            return self.channel_slice(feature).start + self.channel_names.index(channel)
        raise KeyError(
            f"Unknown observation feature {name!r}; campaign features: {GLOBAL_FEATURES}, "
            f"channel features '<channel>/<feature>' with channels {self.channel_names}."
        )

    def channel_slice(self, name: str) -> slice:
        """The ``(n_channels,)`` slice of a channel feature, in channel order."""
        if name not in CHANNEL_FEATURES:
            raise KeyError(
                f"Unknown channel feature {name!r}; valid: {', '.join(CHANNEL_FEATURES)}."
            )
        start = len(GLOBAL_FEATURES) + CHANNEL_FEATURES.index(name) * self.n_channels
        return slice(start, start + self.n_channels)

    @staticmethod
    def feature(name: str, kind: str | None = None) -> Feature:
        """The table entry of a feature name (``log_matured_roi`` is both kinds: the campaign
        one unless ``kind="channel"``)."""
        for f in FEATURES:
            if f.name == name and kind in (None, f.kind):
                return f
        raise KeyError(f"Unknown observation feature {name!r}; see budgetgym.envs.features.")

    def scale(self, name: str) -> float:
        """The factor a feature's raw quantity is multiplied by (``"target_roi"``: 1/3);
        ``name`` as :meth:`feature` takes it, or a column name ``"<channel>/<feature>"``."""
        channel, _, feature = name.rpartition("/")
        return self.feature(feature, "channel" if channel else None).scale

    @cached_property
    def low(self) -> np.ndarray:
        """Lower bounds ``(dim,)`` float32."""
        return self._bounds("low")

    @cached_property
    def high(self) -> np.ndarray:
        """Upper bounds ``(dim,)`` float32."""
        return self._bounds("high")

    def _bounds(self, which: str) -> np.ndarray:
        per_channel = [getattr(f, which) for f in _CHANNEL for _ in self.channel_names]
        values = [getattr(f, which) for f in _CAMPAIGN] + per_channel
        return np.array(values, dtype=np.float32)

    def columns(self) -> ObsColumns:
        """The columns the observation kernel writes (see :class:`ObsColumns`)."""
        channel = (self.channel_slice(name).start for name in CHANNEL_FEATURES)
        return ObsColumns(*range(len(GLOBAL_FEATURES)), *channel)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObservationLayout) and other.channel_names == self.channel_names

    def __hash__(self) -> int:
        return hash(self.channel_names)

    def __repr__(self) -> str:
        return f"ObservationLayout({self.channel_names!r})"


#: Each feature's scale, named as in :class:`ObsColumns` (the same for every layout).
OBS_SCALES = ObsScales(*(f.scale for f in _CAMPAIGN), *(f.scale for f in _CHANNEL))

#: The layout of the reference six channels, and its values where code needs the default.
DEFAULT_LAYOUT = ObservationLayout(CHANNEL_NAMES)
OBS_DIM = DEFAULT_LAYOUT.dim
OBS_FEATURES = DEFAULT_LAYOUT.features
ACTION_DIM = DEFAULT_LAYOUT.action_dim
