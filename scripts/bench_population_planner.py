"""How much of ``planner_cc``'s lead is its knowledge of each campaign's parameters.

``planner_cc`` reads every campaign's true parameters (CVRs, CTRs, delays, the pool, the
market's volume and prices). A policy reads the observation. This script plays the same
planner, closed loop on the observed spend and GMV as ever, on a market model in which each
hidden parameter is the mean over a population of training campaigns (of the campaign's
scenario; in ``mixed``, of its member scenario): the *population planner*. It knows what an
advertiser knows of its own campaign (:data:`KNOWN_FIELDS`: budget, target, the product's price
and value, the attribution window, the public calendar) and the scenario's population, not the
campaign; ``--reveal`` hands it some hidden fields' true values, to see which ones matter.

Each margin ``kappa`` of ``--kappas`` (in standard deviations of the GMV still to be
attributed, as the planner's model predicts them; ``planner_cc`` is the planner that reads the
true parameters at its calibrated ``kappa``) is played twice on the same held-out campaigns: by
the planner that reads the true parameters and by the population planner. Each figure is a
share of ``planner_cc``'s GMV and a miss rate::

    .venv/bin/python scripts/bench_population_planner.py --kappas 0,1,4,16 \\
        --json docs/results/population_planner.json

The population comes from the training seed range (``--population`` campaigns from seed 0); the
evaluation reads held-out ones (``--seed-start``, default 1,000,000).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
from collections.abc import Iterable

import numpy as np

from budgetgym.agents.cc_calibration import load_calibration
from budgetgym.agents.evaluation import parse_scenarios
from budgetgym.agents.planner import PlannerPolicy
from budgetgym.agents.policy import PLANNER_CC, load_policy
from budgetgym.envs.campaigns import BatchedCampaigns
from budgetgym.envs.scenarios import TRAIN_SEED_LIMIT, CampaignParams
from budgetgym.scripts.bench_common import add_campaign_arguments, gmv_and_miss

#: ``CampaignParams`` fields an advertiser knows of its own campaign; every other floating-point
#: field is hidden and replaced by its population mean (:func:`hidden_fields`).
KNOWN_FIELDS = frozenset(
    {
        "seeds",
        "scenario_index",
        "budget_cny",
        "target_roi",
        "price_cny",
        "new_customer_value_cny",
        "gross_margin_frac",
        "attribution_window_hours",
        "event_start_hour",
        "event_length_hours",
        "warmup_hours",
        "presale_start_hour",
        "presale_warmup_hours",
        "hourly_traffic_mult",
        "hourly_price_mult",
        "hourly_cvr_mult",
        "start_hour_of_week",
    }
)


def hidden_fields(params: CampaignParams) -> list[str]:
    """The floating-point array fields of ``params`` not in :data:`KNOWN_FIELDS` (the integer
    ones are seeds, indices and calendar hours)."""
    return [
        f.name
        for f in dataclasses.fields(params)
        if f.name not in KNOWN_FIELDS
        and np.issubdtype(np.asarray(getattr(params, f.name)).dtype, np.floating)
    ]


@dataclasses.dataclass(frozen=True)
class PopulationMeans:
    """Per hidden field, its mean over the campaigns of each member scenario of a population."""

    members: tuple[str, ...]
    """The population's member scenarios, in the order of the means' first axis."""
    means: dict[str, np.ndarray]
    """Field name to ``(n_members, ...)`` means; NaN for a member without campaigns."""


def population_means(population: CampaignParams, reveal: Iterable[str] = ()) -> PopulationMeans:
    """The :class:`PopulationMeans` of the campaigns ``population``, less the hidden fields
    named in ``reveal`` (a planner on :func:`population_params` then reads the campaign's own).

    Raises:
        ValueError: a name in ``reveal`` that is not a hidden field.
    """
    hidden = hidden_fields(population)
    unknown = sorted(set(reveal) - set(hidden))
    if unknown:
        raise ValueError(f"Not hidden fields: {', '.join(unknown)}. Hidden: {', '.join(hidden)}.")
    members = np.arange(len(population.members))
    means = {}
    for name in (name for name in hidden if name not in reveal):
        value = getattr(population, name)
        with np.errstate(invalid="ignore"):
            means[name] = np.stack(
                [value[population.scenario_index == m].mean(axis=0) for m in members]
            )
    return PopulationMeans(population.members, means)


def population_params(params: CampaignParams, population: PopulationMeans) -> CampaignParams:
    """``params`` with every field of ``population`` set to its member scenario's mean.

    Raises:
        ValueError: a campaign whose member scenario the population holds no campaign of.
    """
    rows = np.empty(params.n_envs, dtype=np.int64)
    for m, member in enumerate(params.members):
        campaigns = params.scenario_index == m
        if not campaigns.any():
            continue
        row = population.members.index(member) if member in population.members else -1
        if row < 0 or any(np.isnan(mean[row]).any() for mean in population.means.values()):
            raise ValueError(f"The population holds no campaign of the scenario {member!r}.")
        rows[campaigns] = row
    return dataclasses.replace(
        params, **{name: mean[rows] for name, mean in population.means.items()}
    )


class PopulationPlanner(PlannerPolicy):
    """``planner_cc`` at margin ``kappa``, planning on the population's mean campaign.

    Args:
        population: :func:`population_means` of training campaigns of the scenario it plays.
        kappa: margin in predicted standard deviations of the GMV still to be attributed.
    """

    def __init__(self, population: PopulationMeans, kappa: float) -> None:
        super().__init__(kappa=kappa)
        self.population = population
        self.name = f"population planner kappa={kappa:g}"

    def reset(self, campaigns: BatchedCampaigns) -> None:
        """Plan on ``campaigns`` with their hidden parameters replaced (the campaigns step as
        they are)."""
        if campaigns.params is None:
            raise RuntimeError(f"Reset the campaigns before the {self.name}: it reads params.")
        seen = copy.copy(campaigns)
        seen.params = population_params(campaigns.params, self.population)
        super().reset(seen)


def parse_kappas(text: str) -> list[float]:
    """``"0,4,16"`` to finite floats; ``ValueError`` naming the bad entry otherwise."""
    kappas = []
    for entry in text.split(","):
        try:
            kappa = float(entry)
        except ValueError:
            raise ValueError(f"--kappas: {entry!r} is not a number.") from None
        if not np.isfinite(kappa):
            raise ValueError(f"--kappas: {entry!r} is not finite.")
        kappas.append(kappa)
    return kappas


def _cell(figures: dict[str, float]) -> str:
    return f"{figures['pct_of_planner_cc']:.1f}% at {figures['miss_pct']:.1f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kappas", default="0,1,4,16", help="Margins (default: 0,1,4,16).")
    parser.add_argument(
        "--population", type=int, default=4096, help="Training campaigns averaged (from seed 0)."
    )
    parser.add_argument(
        "--reveal", default="", help="Hidden fields the population planner reads (comma list)."
    )
    add_campaign_arguments(parser)
    args = parser.parse_args(argv)
    reveal = [name for name in args.reveal.split(",") if name]
    try:
        scenarios = parse_scenarios(args.scenarios)
        kappas = parse_kappas(args.kappas)
        if not 1 <= args.population <= TRAIN_SEED_LIMIT:
            raise ValueError(f"--population must lie in [1, {TRAIN_SEED_LIMIT}].")
        populations = {}
        for scenario in scenarios:
            campaigns = BatchedCampaigns(scenario)
            campaigns.reset(np.arange(args.population))
            populations[scenario] = population_means(campaigns.params, reveal)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    calibration = load_calibration()
    rows = []
    for scenario, population in populations.items():
        planner_cc = load_policy(PLANNER_CC)
        reference, reference_miss = gmv_and_miss(
            planner_cc, scenario, args.episodes, args.seed_start
        )
        row = {
            "scenario": scenario,
            "planner_cc_kappa": calibration.kappa(scenario, planner_cc.alpha),
            "planner_cc_miss_pct": 100 * reference_miss,
            "kappas": {},
        }
        for kappa in kappas:
            row["kappas"][f"{kappa:g}"] = figures = {}
            for knows, planner in (
                ("true", PlannerPolicy(kappa=kappa)),
                ("population", PopulationPlanner(population, kappa)),
            ):
                gmv, miss = gmv_and_miss(planner, scenario, args.episodes, args.seed_start)
                figures[knows] = {
                    "pct_of_planner_cc": 100 * gmv / reference,
                    "miss_pct": 100 * miss,
                }
        rows.append(row)
        cells = (
            f"kappa {k}: true {_cell(v['true'])}, population {_cell(v['population'])}"
            for k, v in row["kappas"].items()
        )
        print(
            f"{scenario}: planner_cc (kappa {row['planner_cc_kappa']:.2f}) misses "
            f"{row['planner_cc_miss_pct']:.1f}%; " + "; ".join(cells),
            flush=True,
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"kappas": kappas, "population": args.population, "reveal": reveal, "rows": rows}
        report.update(episodes=args.episodes, seed_start=args.seed_start)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
