"""How far feedback on the observed ROI moves a student towards ``planner_cc``'s miss rate.

A student that reads the observation (``algorithm: dagger``) misses its ROI targets several
times as often as ``planner_cc``, which reads each campaign's true parameters. It can still see
how its campaign is going: ``log_matured_roi``, the delay-corrected ROI so far relative to the
target. This script puts a guard on the student's pace that acts on it, and measures each guard
beside the student and ``planner_cc`` on the same campaigns.

A guard ``TAU:GAIN:AFTER`` leaves the student alone before ``progress`` (hours done / horizon)
reaches ``AFTER``, then multiplies its pace by ``min(1, exp(GAIN (log_matured_roi - TAU)))``: a
campaign whose ROI so far lies below ``exp(TAU)`` times its target spends less, the more so the
further below; the channel split is the student's. Each figure is a share of ``planner_cc``'s
GMV and a miss rate::

    # choose guards on validation campaigns, then measure them held out
    .venv/bin/python scripts/bench_roi_guard.py runs/dagger_s0 --scenarios mixed --seed-start 900000
    .venv/bin/python scripts/bench_roi_guard.py runs/dagger_s0 --guards 0:3:0.75,0.05:8:0.75 \\
        --json runs/roi_guard.json

``STUDENT`` is anything ``budgetgym evaluate`` takes: a run directory, an ``.onnx`` file or a
rule's name. A run whose config has a ``roi_guard`` (``experiments/dagger.yaml``) plays as its
student without it, and its own guard joins the measured ones; an ``.onnx`` file with a guard in
its graph is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from budgetgym.agents.evaluation import parse_scenarios
from budgetgym.agents.policy import PLANNER_CC, load_policy
from budgetgym.agents.roi_guard import GuardedPolicy, RoiGuard, replace_guard
from budgetgym.scripts.bench_common import add_campaign_arguments, gmv_and_miss

#: The guards measured by default: ``(tau, gain, after)``, from the student's end-of-week
#: correction to a guard over the whole week.
DEFAULT_GUARDS = ((0.0, 3.0, 0.75), (0.05, 8.0, 0.75), (0.1, 8.0, 0.75), (0.1, 3.0, 0.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("student", help="A run directory, an .onnx file or a rule's name.")
    parser.add_argument(
        "--guards", default=",".join(f"{t:g}:{g:g}:{a:g}" for t, g, a in DEFAULT_GUARDS),
        help="Comma-separated TAU:GAIN:AFTER (default: %(default)s).",
    )  # fmt: skip
    add_campaign_arguments(parser)
    args = parser.parse_args(argv)
    try:
        guards = [RoiGuard.parse(text) for text in args.guards.split(",") if text.strip()]
        scenarios = parse_scenarios(args.scenarios)
        student, own_guard = replace_guard(load_policy(args.student), None)
        if own_guard is not None and own_guard.spec not in {g.spec for g in guards}:
            guards.append(own_guard)
        guarded = [(guard.name, GuardedPolicy(student, guard)) for guard in guards]
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = []
    for scenario in scenarios:
        reference, reference_miss = gmv_and_miss(
            load_policy(PLANNER_CC), scenario, args.episodes, args.seed_start
        )
        row: dict[str, Any] = {"scenario": scenario, "planner_cc_miss_pct": 100 * reference_miss}
        print(f"{scenario}: planner_cc misses {100 * reference_miss:.1f}%", flush=True)
        for label, policy in [("student", student), *guarded]:
            gmv, miss = gmv_and_miss(policy, scenario, args.episodes, args.seed_start)
            row[label] = {"pct_of_planner_cc": 100 * gmv / reference, "miss_pct": 100 * miss}
            print(f"  {label}: {100 * gmv / reference:.1f}% of planner_cc's GMV, "
                  f"{100 * miss:.1f}% misses", flush=True)  # fmt: skip
        rows.append(row)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"student": args.student, "guards": [g.name for g in guards], "rows": rows}
        report.update(episodes=args.episodes, seed_start=args.seed_start)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
