"""Simulator verbs: ``list-scenarios`` and ``simulate``."""

from __future__ import annotations

import argparse

import numpy as np


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "list-scenarios", help="Print each scenario with a one-line description."
    )
    p.set_defaults(handler=list_scenarios)

    p = subparsers.add_parser(
        "simulate",
        help="Simulate a few campaigns with even pacing and a uniform split; print their metrics.",
    )
    p.add_argument("--scenario", default="mixed", help="Scenario name (see list-scenarios).")
    p.add_argument("--campaigns", type=int, default=8, help="Number of campaigns.")
    p.add_argument(
        "--seed-start", type=int, default=1_000_000, help="First campaign seed (held-out range)."
    )
    p.set_defaults(handler=simulate)


def list_scenarios(args: argparse.Namespace) -> int:
    from budgetgym.envs import SCENARIO_NAMES, scenario_description

    for name in SCENARIO_NAMES:
        print(f"{name}  {scenario_description(name)}")
    return 0


def simulate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from budgetgym.envs import ACTION_DIM, BatchedCampaigns

    if args.campaigns < 1:
        raise ValueError("--campaigns must be >= 1.")
    campaigns = BatchedCampaigns(args.scenario)
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
    Console().print(table)
    return 0
