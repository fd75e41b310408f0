"""Benchmark of the references: seconds per batch of campaigns for ``oracle``, ``planner`` and
``planner_cc`` side by side, with a rule (``uniform``) for the cost of the simulation alone.

Each cell is one ``evaluate`` of ``--episodes`` campaigns (one batch of 256 by default) over the
full horizon; the planning cost of a reference is its time minus the rule's::

    .venv/bin/python scripts/bench_planner.py --episodes 256 --scenarios all
"""

from __future__ import annotations

import argparse
import time

POLICIES = ("uniform", "oracle", "planner", "planner_cc")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=256, help="Campaigns per scenario.")
    parser.add_argument("--scenarios", default="all", help="'all' or comma-separated names.")
    parser.add_argument("--seed-start", type=int, default=1_000_000, help="First campaign seed.")
    args = parser.parse_args(argv)

    from budgetgym.agents.evaluation import evaluate, parse_scenarios
    from budgetgym.agents.policy import load_policy

    scenarios = parse_scenarios(args.scenarios)
    evaluate(load_policy("planner"), scenarios[0], 1, args.seed_start, progress=False)  # compile
    totals = dict.fromkeys(POLICIES, 0.0)
    print(f"seconds per {args.episodes}-campaign evaluation (one week)")
    print(f"{'scenario':26s}" + "".join(f"{name:>12s}" for name in POLICIES))
    for scenario in scenarios:
        seconds = {}
        for name in ("oracle", *[p for p in POLICIES if p != "oracle"]):  # oracle first: cached
            started = time.perf_counter()
            evaluate(load_policy(name), scenario, args.episodes, args.seed_start, progress=False)
            seconds[name] = time.perf_counter() - started
            totals[name] += seconds[name]
        print(f"{scenario:26s}" + "".join(f"{seconds[name]:12.2f}" for name in POLICIES))
    print(f"{'total':26s}" + "".join(f"{totals[name]:12.2f}" for name in POLICIES))
    for name in POLICIES[1:]:
        print(f"{name} adds {totals[name] - totals['uniform']:.1f} s to the rule's simulation")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
