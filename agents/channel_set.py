"""The channel list a policy acts on, as the agents know it: names, billing, launch support.

A scenario's channel list fixes the observation's layout and the action's size; what a rule
does with a channel follows from its behaviour (pay-per-sale billing, launch support), never
from its name. Checkpoints and exported policies record the list (:meth:`ChannelSet.records`)
and refuse a different one (:meth:`ChannelSet.require_same`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from budgetgym.envs.campaigns import scenario_channels as scenario_channel_specs
from budgetgym.envs.channels import DEFAULT_CHANNELS, ChannelSpec
from budgetgym.envs.features import ObservationLayout, action_dim

#: The billing of channels paid per sale (a commission on the GMV they sell, nothing upfront).
PER_SALE = "per_sale"


@dataclass(frozen=True)
class ChannelSet:
    """Names, billing and launch support of a channel list, in observation order."""

    names: tuple[str, ...]
    billing: tuple[str, ...]
    launch_support: tuple[bool, ...]

    @classmethod
    def of(cls, channels: Sequence[ChannelSpec] | ChannelSet) -> ChannelSet:
        """The set of a scenario's channel specs (a ``ChannelSet`` is returned as is)."""
        if isinstance(channels, ChannelSet):
            return channels
        return _of_specs(tuple(channels))

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> ChannelSet:
        """The set written by :meth:`records` (a checkpoint's or an export's metadata)."""
        return cls(
            tuple(str(r["name"]) for r in records),
            tuple(str(r["billing"]) for r in records),
            tuple(bool(r["launch_support"]) for r in records),
        )

    def records(self) -> list[dict[str, Any]]:
        """JSON records of the channels, one per channel."""
        return [
            {"name": name, "billing": billing, "launch_support": launch}
            for name, billing, launch in zip(
                self.names, self.billing, self.launch_support, strict=True
            )
        ]

    @property
    def n_channels(self) -> int:
        return len(self.names)

    @property
    def action_dim(self) -> int:
        """Size of an action on these channels (the pace and one logit per channel)."""
        return action_dim(self.n_channels)

    @functools.cached_property
    def layout(self) -> ObservationLayout:
        """The observation layout of these channels."""
        return ObservationLayout(self.names)

    @property
    def obs_dim(self) -> int:
        return self.layout.dim

    @functools.cached_property
    def per_sale(self) -> np.ndarray:
        """``(k,)`` bool: channels paid per sale (they cost nothing unless they sell)."""
        return np.array([b == PER_SALE for b in self.billing], dtype=bool)

    @property
    def n_per_sale(self) -> int:
        return int(self.per_sale.sum())

    @functools.cached_property
    def paid(self) -> np.ndarray:
        """``(n_paid,)`` int: positions of the channels paid upfront (not per sale)."""
        return np.flatnonzero(~self.per_sale)

    def describe(self) -> str:
        """``name (billing), ...`` for messages."""
        return ", ".join(f"{n} ({b})" for n, b in zip(self.names, self.billing, strict=True))

    def require_same(self, other: ChannelSet, what: str) -> None:
        """Raise ``ValueError`` naming both lists unless ``other`` has the same channels,
        billing and launch support in the same order (``what`` names the recorded side)."""
        if other != self:
            raise ValueError(
                f"{what} was made for the channels {other.describe()}, but this environment "
                f"has {self.describe()}: a policy acts on one channel list only; retrain it on "
                "this scenario."
            )

    def check_obs(self, obs: Any) -> None:
        """Raise ``ValueError`` unless ``obs`` (any array) is a ``(n, obs_dim)`` batch."""
        shape = tuple(obs.shape)
        if len(shape) != 2 or shape[1] != self.obs_dim:
            raise ValueError(
                f"Observations must have shape (n, {self.obs_dim}) for the channels "
                f"{list(self.names)}, got {shape}."
            )


@functools.cache
def _of_specs(channels: tuple[ChannelSpec, ...]) -> ChannelSet:
    return ChannelSet(
        tuple(c.name for c in channels),
        tuple(c.billing for c in channels),
        tuple(bool(c.launch_support) for c in channels),
    )


#: The reference six channels of ``DEFAULT_CHANNELS``.
DEFAULT_CHANNEL_SET = ChannelSet.of(DEFAULT_CHANNELS)


def feature(obs: Any, name: str, channels: ChannelSet = DEFAULT_CHANNEL_SET) -> Any:
    """Global feature ``name`` ``(n,)`` of observations ``(n, obs_dim)`` (any array-API array)
    on ``channels``, as the layout places it."""
    return obs[:, channels.layout.index(name)]


def channel_feature(obs: Any, name: str, channels: ChannelSet = DEFAULT_CHANNEL_SET) -> Any:
    """Per-channel feature ``name`` ``(n, k)`` of observations ``(n, obs_dim)`` on ``channels``."""
    return obs[:, channels.layout.channel_slice(name)]


def unscale(value: Any, name: str, channels: ChannelSet = DEFAULT_CHANNEL_SET) -> Any:
    """The raw quantity of feature ``name`` from its observed ``value``: the layout's scale
    undone (``1 / scale`` is exact for the table's reciprocal scalings such as 1/3)."""
    return value * (1.0 / channels.layout.scale(name))


def channels_of(campaigns: Any) -> ChannelSet:
    """The channel set of a ``BatchedCampaigns`` (or anything with a ``channels`` list)."""
    return ChannelSet.of(campaigns.channels)


def scenario_channels(scenario: str) -> ChannelSet:
    """The channel set of a scenario name or scenario file."""
    return ChannelSet.of(scenario_channel_specs(scenario))
