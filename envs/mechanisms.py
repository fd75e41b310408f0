"""Which of the market's mechanisms a scenario switches on.

Every mechanism of the deeper market (docs/simulator.md) is scenario data whose default leaves
it off. :func:`switched_on` names the mechanisms a scenario switches on. A reference declares
the mechanisms it models (``planner``, ``planner_cc`` and ``oracle``: all of them,
:data:`MECHANISM_NAMES`; ``mmm_static``: none) and refuses, with a clear sentence, a scenario
that switches on any other (:func:`unmodelled_mechanisms`, :func:`check_modelled`) instead of
planning on a market it does not model.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from operator import attrgetter
from typing import NamedTuple

import numpy as np

from budgetgym.envs.channels import ChannelSpec
from budgetgym.envs.scenario_specs import Mixture, ScenarioSpec
from budgetgym.envs.scenarios import NO_EVENT_HOUR, CampaignParams, resolve_scenario


class Mechanism(NamedTuple):
    """A mechanism and the fields that switch it on: keys of a scenario file's top level
    (``CampaignParams`` arrays of the same names; ``presale``: an event's) and of its channel
    entries)."""

    name: str
    scenario_fields: tuple[str, ...]
    channel_fields: tuple[str, ...]


MECHANISMS: tuple[Mechanism, ...] = (
    Mechanism("per-channel conversion delays", (), ("immediate_mult", "delay_mult")),
    Mechanism("a non-default attribution window", ("attribution_window_hours",), ()),
    Mechanism("interested customers", (), ("interest_per_click", "interest_affinity")),
    Mechanism("a pre-sale event", ("presale",), ()),
    Mechanism("creative fatigue", (), ("fatigue_strength",)),
    Mechanism("a drift of the conversion rates", ("cvr_drift_sigma",), ()),
    Mechanism("a reserve price", (), ("reserve_price_frac",)),
    Mechanism("rival depletion through the day", (), ("rival_depletion",)),
    Mechanism("own-spend price impact", (), ("price_impact",)),
    Mechanism("an S-shaped response", (), ("hill_shape",)),
    Mechanism("a live broadcast schedule", (), ("broadcast",)),
    Mechanism("the platform's learning of a new product", ("learning_gap",), ()),
    Mechanism("an affiliate commission rate set by the allocation", (), ("per_sale_pricing",)),
)
MECHANISM_NAMES: tuple[str, ...] = tuple(m.name for m in MECHANISMS)


#: Fields of ``CampaignParams`` read in a scenario spec elsewhere than at its top level, and
#: their defaults.
_NESTED = {
    "cvr_drift_sigma": ("cvr_drift.sigma", 0.0),
    "learning_gap": ("learning.gap", 0.0),
    "presale": ("", False),
}


def _scenario_default(field: str) -> float:
    if field in _NESTED:
        return _NESTED[field][1]
    return ScenarioSpec.model_fields[field].default


def _scenario_values(member: CampaignParams | ScenarioSpec, field: str) -> np.ndarray:
    """A field of a batch's parameters, or its value in a scenario spec; for ``presale``,
    whether an event is a pre-sale."""
    if field == "presale":
        if isinstance(member, CampaignParams):
            return member.presale_start_hour != NO_EVENT_HOUR
        return np.array([any(event.presale for event in member.events)])
    if isinstance(member, ScenarioSpec) and field in _NESTED:
        return np.array([attrgetter(_NESTED[field][0])(member)])
    return np.asarray(getattr(member, field)).reshape(-1)


def _channel_default(field: str) -> float:
    return ChannelSpec.model_fields[field].default


def _switched_on(mechanism: Mechanism, values: dict[str, np.ndarray], channels) -> bool:
    """Whether any scenario value (arrays over campaigns or members) or channel field differs
    from its default."""
    for field in mechanism.scenario_fields:
        if np.any(np.asarray(values[field]) != _scenario_default(field)):
            return True
    return any(
        getattr(c, field) != _channel_default(field)
        for c in channels
        for field in mechanism.channel_fields
    )


Scenario = CampaignParams | ScenarioSpec | Mixture | str | os.PathLike[str]


def switched_on(scenario: Scenario) -> list[str]:
    """Names of the mechanisms ``scenario`` switches on (``MECHANISMS`` order; empty for the
    plain market): a batch's parameters, a scenario or mixture spec, or a scenario's name
    or file path."""
    if isinstance(scenario, (str, os.PathLike)):
        scenario = resolve_scenario(scenario)
    if isinstance(scenario, CampaignParams):
        members = [scenario]
    elif isinstance(scenario, Mixture):
        members = list(scenario.members)
    else:
        members = [scenario]
    fields = {f for m in MECHANISMS for f in m.scenario_fields}
    values = {f: np.concatenate([_scenario_values(m, f) for m in members]) for f in fields}
    channels = [c for member in members for c in member.channels]
    return [m.name for m in MECHANISMS if _switched_on(m, values, channels)]


def unmodelled_mechanisms(scenario: Scenario, modelled: Collection[str] = ()) -> list[str]:
    """Names of the mechanisms ``scenario`` switches on (:func:`switched_on`) other than those
    in ``modelled`` (default: none, the plain market's)."""
    return [name for name in switched_on(scenario) if name not in modelled]


def unmodelled_reason(scenario: Scenario, modelled: Collection[str] = ()) -> str | None:
    """Why a reference that models the mechanisms ``modelled`` (default: none) cannot run on
    ``scenario`` (it switches on others), or None if it can."""
    found = unmodelled_mechanisms(scenario, modelled)
    if not found:
        return None
    listed = found[0] if len(found) == 1 else f"{', '.join(found[:-1])} and {found[-1]}"
    return f"it switches on {listed}, which this reference does not model"


def check_modelled(
    reference: str,
    params: CampaignParams,
    scenario: str | os.PathLike[str],
    modelled: Collection[str] = (),
) -> None:
    """Raise ``ValueError`` naming ``reference``, ``scenario`` and the mechanisms if the
    campaigns ``params`` of ``scenario`` switch on any not in ``modelled`` (see
    :func:`unmodelled_mechanisms`)."""
    reason = unmodelled_reason(params, modelled)
    if reason is not None:
        raise ValueError(f"{reference} cannot run on scenario {os.fspath(scenario)!r}: {reason}.")
