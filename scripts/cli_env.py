"""Simulator verbs: ``scenario list``, ``scenario show`` (``list-scenarios`` is ``scenario list``)
and ``simulate``."""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table

from budgetgym.envs import (
    ACTION_DIM,
    SCENARIO_NAMES,
    BatchedCampaigns,
    resolve_scenario,
    scenario_description,
)
from budgetgym.scripts.cli_common import add_verb, check_positive, compile_simulator


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``scenario``, ``list-scenarios`` and ``simulate`` verbs."""
    list_help = "Print each scenario with a one-line description."
    list_description = (
        "Print the name of each shipped scenario and what makes it hard, one per line (the "
        "names that --scenario, --scenarios and a config's env.scenario accept, besides a "
        "scenario file's path)."
    )
    p = add_verb(
        subparsers,
        "scenario",
        help="List the scenarios, or print one as YAML.",
        description="Inspect scenarios: 'scenario list' names them, 'scenario show NAME|PATH' "
        "prints one as YAML with every default filled in (a starting point for your own file; "
        "docs/scenarios.md documents the keys).",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_verb(actions, "list", help=list_help, description=list_description).set_defaults(
        handler=list_scenarios
    )
    show = add_verb(
        actions,
        "show",
        help="Print a scenario as YAML, defaults filled in.",
        description="Print a scenario (a name, or a scenario file's path, validated) as YAML "
        "with every default filled in.",
    )
    show.add_argument("scenario", metavar="NAME|PATH", help="Scenario name or file path.")
    show.set_defaults(handler=show_scenario)
    add_verb(subparsers, "list-scenarios", help=list_help, description=list_description)
    subparsers.choices["list-scenarios"].set_defaults(handler=list_scenarios)

    p = add_verb(
        subparsers,
        "simulate",
        help="Simulate a few campaigns with even pacing and a uniform split; print their metrics.",
        description="Run whole campaigns of a scenario with the neutral action (even pacing, "
        "the same share for every channel) and print each campaign's budget, spend, GMV, ROI "
        "against its target, compensation and new customers: a look at the simulator "
        "without any policy.",
    )
    p.add_argument(
        "--scenario",
        default="mixed",
        help="Scenario name (see 'budgetgym scenario list') or a scenario file's path.",
    )
    p.add_argument("--campaigns", type=int, default=8, help="Number of campaigns.")
    p.add_argument(
        "--seed-start", type=int, default=1_000_000, help="First campaign seed (held-out range)."
    )
    p.set_defaults(handler=simulate)


def list_scenarios(args: argparse.Namespace) -> int:
    """Handler of ``budgetgym scenario list`` and ``budgetgym list-scenarios``."""
    for name in SCENARIO_NAMES:
        print(f"{name}  {scenario_description(name)}")
    return 0


def show_scenario(args: argparse.Namespace) -> int:
    """Handler of ``budgetgym scenario show``."""
    print(resolve_scenario(args.scenario).to_yaml(), end="")
    return 0


def simulate(args: argparse.Namespace) -> int:
    """Handler of ``budgetgym simulate``."""
    check_positive("--campaigns", args.campaigns)
    campaigns = BatchedCampaigns(args.scenario)
    console = Console()
    compile_simulator(console, [args.campaigns])
    seeds = args.seed_start + np.arange(args.campaigns)
    campaigns.reset(seeds)
    actions = np.zeros((args.campaigns, ACTION_DIM))
    done = np.zeros(args.campaigns, dtype=bool)
    while not done.all():
        _, _, done, info = campaigns.step(actions)
    table = Table(title=f"{args.scenario}: even pacing, uniform split")
    for col in (
        "seed",
        "scenario",
        "budget",
        "spend",
        "GMV",
        "ROI",
        "target",
        "compensation",
        "new cust.",
    ):
        table.add_column(col, justify="right")
    for i, seed in enumerate(seeds):
        table.add_row(
            str(seed),
            campaigns.params.scenario_names[i],
            f"{info['budget'][i]:,.0f}",
            f"{info['spend_total'][i]:,.0f}",
            f"{info['gmv_total'][i]:,.0f}",
            f"{info['roi'][i]:.2f}",
            f"{info['target_roi'][i]:.2f}",
            f"{info['compensation'][i]:,.0f}",
            f"{info['new_customers_total'][i]:,.0f}",
        )
    console.print(table)
    return 0
