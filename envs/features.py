"""The observation's features: positions, scalings and bounds for any channel list.

Placeholder of the layout contract (issue 25) over today's feature tuples in ``campaigns.py``;
the kernel's table of named features replaces it.
"""

from __future__ import annotations


import numpy as np

from budgetgym.envs.campaigns import CHANNEL_FEATURES, GLOBAL_FEATURES, OBS_HIGH, OBS_LOW
from budgetgym.envs.channels import CHANNEL_NAMES

#: The factor each raw quantity is multiplied by (1 where not listed).
_SCALES = {
    "target_roi": 1.0 / 3.0,
    "log_impressions": 0.1,
    "log_clicks": 1.0 / 6.0,
    "log_conversions": 1.0 / 3.0,
    "log_cpm": 0.25,
}
_BOUNDS = {
    f.split("/")[-1]: (float(lo), float(hi))
    for f, lo, hi in zip(
        GLOBAL_FEATURES + tuple(f"{c}/{f}" for f in CHANNEL_FEATURES for c in CHANNEL_NAMES),
        OBS_LOW,
        OBS_HIGH,
        strict=True,
    )
}


def action_dim(n_channels: int) -> int:
    """Size of the action: the pace and one logit per channel."""
    return n_channels + 1


class ObservationLayout:
    """The observation of campaigns over ``channel_names``: global features, then each
    per-channel feature for every channel."""

    def __init__(self, channel_names: tuple[str, ...]) -> None:
        self.channel_names = tuple(channel_names)
        k = len(self.channel_names)
        self.features = GLOBAL_FEATURES + tuple(
            f"{c}/{f}" for f in CHANNEL_FEATURES for c in self.channel_names
        )
        self.dim = len(self.features)
        self.low = np.array([_BOUNDS[f.split("/")[-1]][0] for f in self.features], np.float32)
        self.high = np.array([_BOUNDS[f.split("/")[-1]][1] for f in self.features], np.float32)
        self._k = k

    def index(self, name: str) -> int:
        """Position of a global feature."""
        return GLOBAL_FEATURES.index(name)

    def channel_slice(self, name: str) -> slice:
        """The ``(n_channels,)`` slice of a per-channel feature."""
        start = len(GLOBAL_FEATURES) + CHANNEL_FEATURES.index(name) * self._k
        return slice(start, start + self._k)

    def scale(self, name: str) -> float:
        """The factor the raw quantity of feature ``name`` is multiplied by."""
        return _SCALES.get(name, 1.0)


DEFAULT_LAYOUT = ObservationLayout(CHANNEL_NAMES)
