"""The part of the observation a policy network reads (``policy_kwargs.exclude_features``).

The environment observes everything an advertiser can see, including last hour's per-channel
outcomes (spend, impressions, clicks, conversions, GMV, price). The simulator's hourly volume and
price noise is independent from hour to hour, so once the cumulative features are known (spend,
GMV and delay-corrected ROI so far per channel), last hour's values predict nothing more about
the hours ahead: to a network they are inputs it can only fit noise to. ``ObservationSubset``
lets a policy leave such features out; the environment, the rules and the residual base still
see the whole observation.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from budgetgym.envs.errors import unknown_name_error
from budgetgym.envs.features import (
    CHANNEL_FEATURES,
    DEFAULT_LAYOUT,
    GLOBAL_FEATURES,
    ObservationLayout,
)

#: Last hour's per-channel outcomes: what ``exclude_features: [last_hour]`` leaves out.
LAST_HOUR_FEATURES = (
    "spend_rate", "log_impressions", "log_clicks", "log_conversions", "gmv_rate", "log_cpm",
)  # fmt: skip
FEATURE_GROUPS = {"last_hour": LAST_HOUR_FEATURES}


def excluded_indices(
    names: Sequence[str], layout: ObservationLayout = DEFAULT_LAYOUT
) -> np.ndarray:
    """Sorted indices in ``layout`` (the reference six's by default) of ``names``: a global
    feature, a per-channel feature (every channel's: ``log_cpm``; ``log_matured_roi`` also names
    the global one), one channel's (``search/log_cpm``) or a group (``last_hour``:
    ``LAST_HOUR_FEATURES``).

    Raises:
        ValueError: an unknown name (with the closest valid one).
    """
    features = layout.features
    short = tuple(dict.fromkeys((*FEATURE_GROUPS, *GLOBAL_FEATURES, *CHANNEL_FEATURES)))
    indices: set[int] = set()
    for name in names:
        if name not in short and name not in features:
            raise unknown_name_error("observation feature", name, (*short, "<channel>/<feature>"))
        for feature in FEATURE_GROUPS.get(name, (name,)):
            # A bare name matches itself and that feature of every channel.
            indices.update(i for i, full in enumerate(features) if feature in (full, _bare(full)))
    if len(indices) == len(features):
        raise ValueError("exclude_features leaves no observation feature for the policy to read.")
    return np.array(sorted(indices), dtype=np.int64)


def _bare(full_name: str) -> str:
    return full_name.split("/")[-1]


class ObservationSubset(BaseFeaturesExtractor):
    """Features = the (normalized) observation without the ``exclude`` features, ``(n, kept)``.

    Args:
        observation_space: the environment's flat ``Box``.
        exclude: feature names as :func:`excluded_indices` takes them.
        channel_names: the environment's channels (their layout places the features; default:
            the reference six).
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        exclude: Sequence[str] = (),
        channel_names: Sequence[str] = DEFAULT_LAYOUT.channel_names,
    ) -> None:
        layout = ObservationLayout(tuple(channel_names))
        if observation_space.shape[0] != layout.dim:
            raise ValueError(
                f"The observation has {observation_space.shape[0]} features, but the layout of "
                f"the channels {list(channel_names)} has {layout.dim}."
            )
        dropped = excluded_indices(exclude, layout)
        kept = np.setdiff1d(np.arange(observation_space.shape[0]), dropped)
        super().__init__(observation_space, features_dim=int(kept.size))
        self.register_buffer("kept", torch.from_numpy(kept), persistent=False)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return observations.index_select(1, self.kept)
