"""The schema of a scenario file and the loading of a folder of them.

A scenario file (YAML) is either a *scenario* (:class:`ScenarioSpec`: campaign priors, model
priors, launch support, an event calendar and the channel list) or a *mixture*
(:class:`MixtureSpec`: member scenarios and their weights, as ``mixed``). docs/scenarios.md
documents every key. Loading validates every value; a problem raises ``ValueError`` naming the
file and the key path (``double11_promotion.yaml: events[0].length_hours: ...``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from budgetgym.envs.channels import HOURS_PER_WEEK, ChannelSpec
from budgetgym.envs.errors import unknown_name_error
from budgetgym.envs.spec_base import (
    HourRange,
    Identifier,
    NonNegFloat,
    NonNegRange,
    PositiveFloat,
    PositiveRange,
    Probability,
    Spec,
    read_yaml,
    to_yaml,
    validate_mapping,
)

#: Suffixes of a scenario file; a scenario argument ending so (or holding a path separator) is a
#: path, anything else a name.
YAML_SUFFIXES = (".yaml", ".yml")
COLDSTART_DECAY_HOURS = 72.0
#: Hours after the campaign's last hour in which its delayed purchases still count (Alimama's
#: 7-day window); a scenario's ``attribution_window_hours`` sets its own.
ATTRIBUTION_WINDOW_HOURS = 168
#: Hours of a week: a campaign's ``start_hour_of_week`` lies in ``0..HOURS_PER_WEEK - 1``.
#: Files that describe a scenario by other data, by the top-level key that marks them: each
#: loader turns a parsed document (and its path) into a :class:`ScenarioSpec`.
#: ``response_curves.py`` registers ``response_curves``.
DERIVED_KINDS: dict[str, Callable[[dict[str, Any], Path], ScenarioSpec]] = {}


class ModelPriors(Spec):
    """How a campaign's channels derive from the channel table (the defaults hold for every
    shipped scenario).

    Attributes:
        volume_budget_exponent: market size grows as ``(budget / 50,000 CNY) ** exponent``
            (below 1: bigger advertisers saturate more).
        volume_log_sd: log-sd of a campaign's per-channel volume around the table's.
        price_log_sd: log-sd of a campaign's per-channel median impression price.
        ctr_log_sd: log-sd of a campaign's per-channel CTR.
        cvr_price_elasticity: CVR scales as ``(150 CNY / price) ** elasticity``.
        cvr_new_cap: upper bound of a new customer's CVR per click.
        cvr_returning_cap: upper bound of a returning customer's CVR per click.
        pool_half_saturation_per_kcny: store customers per 1,000 CNY of budget at which half
            the channels' returning affinity is reached.
    """

    volume_budget_exponent: NonNegFloat = 0.9
    volume_log_sd: NonNegFloat = 0.2
    price_log_sd: NonNegFloat = 0.15
    ctr_log_sd: NonNegFloat = 0.1
    cvr_price_elasticity: NonNegFloat = 0.95
    cvr_new_cap: Annotated[Probability, Field(gt=0)] = 0.5
    cvr_returning_cap: Annotated[Probability, Field(gt=0)] = 0.8
    pool_half_saturation_per_kcny: PositiveFloat = 200.0


class LaunchSupport(Spec):
    """The platform's traffic boost for a new product, on channels with ``launch_support``:
    volume times ``1 + boost * exp(-hour / decay_hours)``."""

    boost: NonNegFloat = 0.0
    decay_hours: PositiveFloat = COLDSTART_DECAY_HOURS


class InterestSpec(Spec):
    """The interested customers (AIPL's interest stage) a campaign's clicks build up; the
    channels' ``interest_per_click`` and ``interest_affinity`` switch the pool on.

    Attributes:
        half_life_hours: hours in which half of the interested customers lose interest.
        half_saturation_per_kcny: interested customers per 1,000 CNY of budget at which a
            channel's clicks reach half its ``interest_affinity``.
        cvr_mult: an interested customer's CVR per click over a new customer's (capped by
            ``model.cvr_new_cap``).
    """

    half_life_hours: PositiveFloat = 72.0
    half_saturation_per_kcny: PositiveFloat = 100.0
    cvr_mult: PositiveFloat = 3.0


class CvrDrift(Spec):
    """A hidden drift of a campaign's conversion rates within the horizon: ``log m_t = rho *
    log m_{t-1} + sigma * eps_t``, every CVR times ``m_t`` (``sigma`` 0: none).

    Attributes:
        sigma: log-sd of the hourly innovation.
        persistence: ``rho``, the share of the drift kept from one hour to the next.
    """

    sigma: NonNegFloat = 0.0
    persistence: Probability = 0.98


class LearningSpec(Spec):
    """The platform's learning of a new product: its targeting sharpens with the campaign's
    data, every CVR times ``1 - gap * exp(-clicks / clicks_to_learn)`` (``gap`` 0: none).

    Attributes:
        gap: the share of conversions the platform's targeting misses at the start, in [0, 1).
        clicks_to_learn: the campaign's cumulative clicks (every channel) over which the gap
            closes by a factor e.
    """

    gap: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.0
    clicks_to_learn: PositiveFloat = 25000.0


class Multipliers(Spec):
    """Factors on traffic volume, impression prices and CVR during a calendar window."""

    traffic: PositiveFloat = 1.0
    price: PositiveFloat = 1.0
    cvr: PositiveFloat = 1.0


class EventSpec(Spec):
    """A promotion on the public calendar: a warm-up, then the event.

    Attributes:
        name: identifier (reports and docs).
        start_hour: ``[low, high]`` hours from the campaign start; each campaign draws its start
            uniformly among these whole hours.
        length_hours: hours of the event from its start.
        warmup_hours: hours of warm-up just before the start (0: none).
        multipliers: factors during the event.
        warmup_multipliers: factors during the warm-up.
        presale: a pre-sale (预热蓄水): during the warm-up, interest does not decay and
            purchases are deposits that arrive in the event's first hour.
    """

    name: Identifier
    start_hour: HourRange
    length_hours: Annotated[int, Field(ge=1)]
    warmup_hours: Annotated[int, Field(ge=0)] = 0
    multipliers: Multipliers = Multipliers()
    warmup_multipliers: Multipliers = Multipliers()
    presale: bool = False

    @model_validator(mode="after")
    def _presale_has_warmup(self) -> EventSpec:
        if self.presale and self.warmup_hours < 1:
            raise ValueError(f"event {self.name!r}: presale needs warmup_hours >= 1")
        return self


class ScenarioSpec(Spec):
    """A distribution of campaigns: one scenario file. Ranges are ``[low, high]``.

    Attributes:
        name: identifier; a shipped file is named ``<name>.yaml``.
        description: one line for ``budgetgym scenario list``.
        horizon_hours: campaign length in hourly steps.
        budget_cny: total budget, log-uniform.
        target_roi: merchant's target GMV / spend, uniform.
        price_cny: average order value, log-uniform.
        creative_quality: multiplier on CTR (and, square-rooted, on the volume a creative
            gets), uniform.
        returning_pool_per_kcny: store customers (returning pool) per 1,000 CNY of budget,
            uniform.
        new_customer_value_frac: extra value of a new customer, as a fraction of the price,
            added to the reward (acquisition goals value customers beyond the first order).
        gross_margin_frac: gross margin on GMV (used by the ``profit`` reward).
        channel_cvr_spread: log-sd of a per-channel CVR multiplier (how much channels' true
            quality differs from the table; the policy must find out which channel is good).
        cvr_prior_sigma: log-sd of a campaign-wide CVR multiplier (wide for new products).
        cvr_prior_median: median of that multiplier (new products without reviews convert less).
        immediate_frac: share of conversions in the click's hour (Chapelle 2014: ~35%).
        mean_delay_hours: mean of the geometric delay of the other conversions.
        attribution_window_hours: hours after the campaign's last hour in which purchases
            still pending count (settled into the last step); later ones are lost to the
            campaign and reported as unattributed.
        model: model priors (:class:`ModelPriors`).
        launch_support: the platform's launch boost (:class:`LaunchSupport`).
        interest: the pool of interested customers (:class:`InterestSpec`).
        cvr_drift: the hidden drift of the conversion rates (:class:`CvrDrift`).
        learning: the platform's learning of a new product (:class:`LearningSpec`).
        events: the event calendar, in order; the observation shows the first event's window.
        channels: the channels, in the order of the action and observation.
        start_hour_of_week: ``[low, high]`` hours of the week (0: Monday 00:00, 167: Sunday
            23:00) at which a campaign starts; each campaign draws its start uniformly among
            these whole hours. The hour and weekday profiles and the observation's clock follow
            it; event start hours stay in hours from the campaign's start.
    """

    name: Identifier
    description: str = Field(min_length=1)
    horizon_hours: Annotated[int, Field(ge=1)] = 168
    budget_cny: PositiveRange = (20_000.0, 150_000.0)
    target_roi: PositiveRange = (2.0, 3.0)
    price_cny: PositiveRange = (80.0, 250.0)
    creative_quality: PositiveRange = (0.8, 1.2)
    returning_pool_per_kcny: NonNegRange = (100.0, 400.0)
    new_customer_value_frac: NonNegFloat = 0.0
    gross_margin_frac: Probability = 0.45
    channel_cvr_spread: NonNegFloat = 0.35
    cvr_prior_sigma: NonNegFloat = 0.15
    cvr_prior_median: PositiveFloat = 1.0
    immediate_frac: Probability = 0.35
    mean_delay_hours: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 24.0
    attribution_window_hours: Annotated[int, Field(ge=0)] = ATTRIBUTION_WINDOW_HOURS
    model: ModelPriors = ModelPriors()
    launch_support: LaunchSupport = LaunchSupport()
    interest: InterestSpec = InterestSpec()
    cvr_drift: CvrDrift = CvrDrift()
    events: tuple[EventSpec, ...] = ()
    channels: Annotated[tuple[ChannelSpec, ...], Field(min_length=1)]
    start_hour_of_week: HourRange = (0, 0)
    learning: LearningSpec = LearningSpec()

    @model_validator(mode="after")
    def _consistent(self) -> ScenarioSpec:
        names = [c.name for c in self.channels]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"channels: {', '.join(repeated)} listed more than once")
        for k, channel in enumerate(self.channels):
            if self.immediate_frac * channel.immediate_mult > 1.0:
                raise ValueError(
                    f"channels[{k}].immediate_mult: {channel.immediate_mult} times immediate_frac "
                    f"{self.immediate_frac} exceeds a share of 1"
                )
            if self.mean_delay_hours * channel.delay_mult < 1.0:
                raise ValueError(
                    f"channels[{k}].delay_mult: {channel.delay_mult} times mean_delay_hours "
                    f"{self.mean_delay_hours} is below the 1-hour step"
                )
        presales = [i for i, event in enumerate(self.events) if event.presale]
        if len(presales) > 1:
            raise ValueError(
                f"events[{presales[1]}].presale: at most one event of a scenario is a pre-sale "
                f"(events[{presales[0]}] is)"
            )
        if self.start_hour_of_week[1] >= HOURS_PER_WEEK:
            raise ValueError(
                f"start_hour_of_week: {self.start_hour_of_week[1]} is not an hour of the week "
                f"(0 to {HOURS_PER_WEEK - 1})"
            )
        for i, event in enumerate(self.events):
            if event.start_hour[1] >= self.horizon_hours:
                raise ValueError(
                    f"events[{i}].start_hour: {event.start_hour[1]} is past the horizon "
                    f"({self.horizon_hours} hours)"
                )
        return self

    def to_yaml(self) -> str:
        """The spec as YAML, every key written (defaults resolved)."""
        return to_yaml(self.model_dump(mode="json"))


class MixtureMember(Spec):
    """One member of a mixture: a scenario name (or a path relative to the mixture's file) and
    its weight (weights need not sum to 1)."""

    scenario: str = Field(min_length=1)
    weight: PositiveFloat = 1.0


class MixtureSpec(Spec):
    """A mixture file: each campaign plays one member, picked from its seed (docs/scenarios.md).

    Attributes:
        name: identifier; a shipped file is named ``<name>.yaml``.
        description: one line for ``budgetgym scenario list``.
        members: the members in order; the order and weights fix each seed's member.
    """

    name: Identifier
    description: str = Field(min_length=1)
    members: Annotated[tuple[MixtureMember, ...], Field(min_length=1)]

    def to_yaml(self) -> str:
        """The spec as YAML, every key written (defaults resolved)."""
        return to_yaml(self.model_dump(mode="json"))


@dataclass(frozen=True)
class Mixture:
    """A mixture with its members resolved to specs (what :func:`sample_campaigns` draws from).

    Attributes:
        spec: the mixture file's spec (names and weights as written).
        members: the member scenarios, in the file's order; same channels and horizon.
        weights: ``(n_members,)`` member weights.
    """

    spec: MixtureSpec
    members: tuple[ScenarioSpec, ...]
    weights: tuple[float, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def description(self) -> str:
        return self.spec.description

    def to_yaml(self) -> str:
        """The mixture file's spec as YAML (defaults resolved)."""
        return self.spec.to_yaml()


def is_scenario_path(scenario: str | os.PathLike[str]) -> bool:
    """Whether a scenario argument is a file path (rather than a name)."""
    if isinstance(scenario, os.PathLike):
        return True
    return scenario.endswith(YAML_SUFFIXES) or "/" in scenario or os.sep in scenario


def load_scenario_file(path: str | os.PathLike[str]) -> ScenarioSpec | MixtureSpec:
    """The spec of one scenario or mixture file (a mixture is a file with ``members``; a file
    with a key of ``DERIVED_KINDS`` is turned into a scenario by its loader)."""
    path = Path(path)
    if path.suffix not in YAML_SUFFIXES:
        raise ValueError(f"Scenario file {str(path)!r} must end with .yaml or .yml.")
    data = read_yaml(path)
    if isinstance(data, dict):
        for key, loader in DERIVED_KINDS.items():
            if key in data:
                return loader(data, path)
    model = MixtureSpec if isinstance(data, dict) and "members" in data else ScenarioSpec
    return validate_mapping(model, data, str(path))


def resolve_mixture(spec: MixtureSpec, source: Path, scenarios: dict[str, ScenarioSpec]) -> Mixture:
    """``spec`` with its members resolved: a name from ``scenarios``, or a path relative to the
    mixture's file ``source``. Members must share the channel list and the horizon."""
    members = []
    for i, member in enumerate(spec.members):
        if is_scenario_path(member.scenario):
            found = load_scenario_file(source.parent / member.scenario)
        elif member.scenario in scenarios:
            found = scenarios[member.scenario]
        else:
            raise ValueError(
                f"{source}: members[{i}].scenario: "
                f"{unknown_name_error('scenario', member.scenario, tuple(scenarios))}"
            )
        if not isinstance(found, ScenarioSpec):
            raise ValueError(f"{source}: members[{i}]: {member.scenario!r} is a mixture itself.")
        first = members[0] if members else found
        for field in ("channels", "horizon_hours"):
            if getattr(found, field) != getattr(first, field):
                raise ValueError(
                    f"{source}: members[{i}]: {found.name!r} has other {field} than "
                    f"{first.name!r}; the members of a mixture share them."
                )
        members.append(found)
    return Mixture(spec, tuple(members), tuple(m.weight for m in spec.members))


class ScenarioLibrary:
    """The scenario and mixture files of one folder, by name.

    Order of :attr:`names`: the members of each mixture in its order, then the other
    scenarios by name, then the mixtures by name.

    Args:
        folder: a folder of ``<name>.yaml`` files (each file's ``name`` is its stem).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        specs = {}
        for path in sorted(self.folder.glob("*.y*ml")):
            spec = load_scenario_file(path)
            if spec.name != path.stem:
                raise ValueError(f"{path}: name: {spec.name!r} differs from the file name.")
            specs[spec.name] = (path, spec)
        plain = {n: s for n, (_, s) in specs.items() if isinstance(s, ScenarioSpec)}
        self.mixtures: dict[str, Mixture] = {
            n: resolve_mixture(s, p, plain)
            for n, (p, s) in specs.items()
            if isinstance(s, MixtureSpec)
        }
        listed = [m.name for mix in self.mixtures.values() for m in mix.members]
        order = [*dict.fromkeys(n for n in listed if n in plain), *sorted(plain)]
        self.scenarios: dict[str, ScenarioSpec] = {n: plain[n] for n in dict.fromkeys(order)}
        self.names: tuple[str, ...] = (*self.scenarios, *self.mixtures)

    def resolve(self, name: str) -> ScenarioSpec | Mixture:
        """The spec of a scenario or mixture name; an unknown name raises ``ValueError`` listing
        the valid names and the closest match."""
        if name in self.scenarios:
            return self.scenarios[name]
        if name in self.mixtures:
            return self.mixtures[name]
        raise unknown_name_error("scenario", name, self.names)


def resolve_file(path: str | os.PathLike[str], library: ScenarioLibrary) -> ScenarioSpec | Mixture:
    """The spec of a user's scenario or mixture file; a mixture's member names resolve in
    ``library`` (the shipped scenarios), its member paths relative to the file."""
    spec = load_scenario_file(path)
    if isinstance(spec, MixtureSpec):
        return resolve_mixture(spec, Path(path), library.scenarios)
    return spec
