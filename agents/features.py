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

from budgetgym.envs.campaigns import CHANNEL_FEATURES, GLOBAL_FEATURES, OBS_FEATURES
from budgetgym.envs.errors import unknown_name_error

#: Last hour's per-channel outcomes: what ``exclude_features: [last_hour]`` leaves out.
LAST_HOUR_FEATURES = (
    "spend_rate", "log_impressions", "log_clicks", "log_conversions", "gmv_rate", "log_cpm",
)  # fmt: skip
FEATURE_GROUPS = {"last_hour": LAST_HOUR_FEATURES}


def excluded_indices(names: Sequence[str]) -> np.ndarray:
    """Sorted observation indices of ``names``: a global feature, a per-channel feature (every
    channel's: ``log_cpm``; ``log_matured_roi`` also names the global one), one channel's
    (``search/log_cpm``) or a group (``last_hour``: ``LAST_HOUR_FEATURES``).

    Raises:
        ValueError: an unknown name (with the closest valid one).
    """
    short = tuple(dict.fromkeys((*FEATURE_GROUPS, *GLOBAL_FEATURES, *CHANNEL_FEATURES)))
    indices: set[int] = set()
    for name in names:
        if name not in short and name not in OBS_FEATURES:
            raise unknown_name_error("observation feature", name, (*short, "<channel>/<feature>"))
        for feature in FEATURE_GROUPS.get(name, (name,)):
            # A bare name matches itself and that feature of every channel.
            indices.update(
                i for i, full in enumerate(OBS_FEATURES) if feature in (full, _bare(full))
            )
    if len(indices) == len(OBS_FEATURES):
        raise ValueError("exclude_features leaves no observation feature for the policy to read.")
    return np.array(sorted(indices), dtype=np.int64)


def _bare(full_name: str) -> str:
    return full_name.split("/")[-1]


class ObservationSubset(BaseFeaturesExtractor):
    """Features = the (normalized) observation without the ``exclude`` features, ``(n, kept)``.

    Args:
        observation_space: the environment's flat ``Box``.
        exclude: feature names as :func:`excluded_indices` takes them.
    """

    def __init__(self, observation_space: gym.spaces.Box, exclude: Sequence[str] = ()) -> None:
        dropped = excluded_indices(exclude)
        kept = np.setdiff1d(np.arange(observation_space.shape[0]), dropped)
        super().__init__(observation_space, features_dim=int(kept.size))
        self.register_buffer("kept", torch.from_numpy(kept), persistent=False)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return observations.index_select(1, self.kept)
