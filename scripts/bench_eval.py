"""Benchmark of the evaluation harness: the full ``compare``, the rules' target sweep included.

Prints the wall time and campaign-steps per second (one step = one campaign-hour), overall and
per policy, and optionally writes them as JSON::

    .venv/bin/python scripts/bench_eval.py --episodes 256 --json bench_eval.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=256, help="Campaigns per scenario.")
    parser.add_argument("--scenarios", default="all", help="'all' or comma-separated names.")
    parser.add_argument("--seed-start", type=int, default=1_000_000, help="First campaign seed.")
    parser.add_argument("--out", type=Path, default=None, help="Leaderboard directory (temp).")
    parser.add_argument("--json", type=Path, default=None, help="Write the timings here.")
    args = parser.parse_args(argv)

    from budgetgym.agents.evaluation import compare, parse_scenarios

    scenarios = parse_scenarios(args.scenarios)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        started = time.perf_counter()
        rows = compare([], scenarios, args.episodes, args.seed_start, out, progress=False)
        elapsed = time.perf_counter() - started
        timing = json.loads((out / "timing.json").read_text())
    horizon = rows[0]["horizon_hours"]
    steps = timing["campaign_steps"]  # the evaluations and the rules' target sweep
    per_policy: dict[str, dict[str, float]] = {}
    for row in rows:
        entry = per_policy.setdefault(row["policy"], {"elapsed_s": 0.0, "campaign_steps": 0})
        entry["elapsed_s"] += row["elapsed_s"]
        entry["campaign_steps"] += row["episodes"] * horizon
    for entry in per_policy.values():
        entry["campaign_steps_per_s"] = round(entry["campaign_steps"] / entry["elapsed_s"], 1)
        entry["elapsed_s"] = round(entry["elapsed_s"], 2)
    report = {
        "scenarios": scenarios,
        "episodes_per_scenario": args.episodes,
        "policies": len(per_policy),
        "elapsed_s": round(elapsed, 2),
        "pareto_s": timing["pareto_s"],
        "campaign_steps": steps,
        "campaign_steps_per_s": round(steps / elapsed, 1),
        "per_policy": per_policy,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(
        f"compare: {len(per_policy)} policies x {len(scenarios)} scenarios x {args.episodes} "
        f"episodes and the rules' target sweep ({timing['pareto_s']:.1f} s) = {steps:,} "
        f"campaign-steps in {elapsed:.1f} s ({steps / elapsed:,.0f} campaign-steps/s)"
    )
    for name, entry in per_policy.items():
        rate = entry["campaign_steps_per_s"]
        print(f"  {name:18s} {entry['elapsed_s']:8.1f} s  {rate:>12,.0f}/s")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
