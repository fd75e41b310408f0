"""Fault tolerance and CPU sharing of ``budgetgym sweep``, measured (prints what happened).

    python scripts/bench_sweep.py                      # all three checks, into runs/bench_sweep/
    python scripts/bench_sweep.py --check kill-trial   # or kill-driver, oversubscription

* ``kill-trial``: a 2-trial sweep; once a trial has validated 3 times, its process is killed
  (SIGKILL, the PID from its run's ``.lock``). Ray Tune restarts it from its last checkpoint:
  the run's validation records must go on from the step it reached, never from 0.
* ``kill-driver``: a 4-trial sweep whose command (with the Ray it started) is killed once a trial
  has finished; ``budgetgym sweep --resume DIR`` must complete the sweep without training the
  finished trials again (their ``command.txt`` keeps one line, their records are unchanged).
* ``oversubscription``: a sweep of two identical trials on a Ray with 2 CPUs, one CPU (torch
  thread) a trial, so they run side by side, against the same sweep with two CPUs a trial, so
  Ray runs them one after the other; prints the ratio of the wall times (at most 1.2 means the
  trials side by side do not oversubscribe the cores).
  Pin the process to two cores on a bigger machine: ``taskset -c 0,1 python ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

FAST = {  # trials of a few seconds: 96 steps a rollout, a validation every rollout
    "seed": 0,
    "total_timesteps": 1920,
    "env": {"scenario": "hit_product", "n_envs": 4, "horizon_hours": 24},
    "hyperparams": {"n_steps": 24, "batch_size": 48, "n_epochs": 4},
    "eval": {"eval_freq": 96, "n_eval_episodes": 4, "references": True, "final_episodes": 0},
    "checkpoint": {"save_freq": 0, "keep_last": 2},
}
HEAVY = {  # ppo_default's network and batch on one scenario: three rollouts of 10,752 steps
    "seed": 0,
    "total_timesteps": 32256,
    "env": {"scenario": "hit_product", "n_envs": 64},
    "hyperparams": {"n_steps": 168, "batch_size": 2688, "n_epochs": 10},
    "eval": {"eval_freq": 10752, "n_eval_episodes": 16, "references": True, "final_episodes": 0},
    "checkpoint": {"save_freq": 0},
}
# Identical trials: they tie at ASHA's one rung (the first validation; --reduction-factor 100
# puts the next one past total_timesteps), so no trial is stopped early in these checks.
SPACE = {"hyperparams.clip_range": {"choice": [0.2]}}


def sweep_command(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "budgetgym.scripts.cli", "sweep", *args, "--cpus", "2"]


def start_sweep(root: Path, trials: int) -> tuple[subprocess.Popen, Path]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "base.yaml").write_text(yaml.safe_dump(FAST))
    (root / "space.yaml").write_text(yaml.safe_dump(SPACE))
    sweep = root / "sweep"
    command = sweep_command(root, "--config", str(root / "base.yaml"), "--space",
                            str(root / "space.yaml"), "--trials", str(trials),
                            "--reduction-factor", "100", "--run-dir", str(sweep))  # fmt: skip
    log = open(root / "sweep.log", "w")  # noqa: SIM115 (the child writes it)
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, sweep


def records(run: Path) -> list[dict]:
    path = run / "evaluations.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_until(condition, proc: subprocess.Popen, what: str, limit_s: float = 900) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"FAILED: the sweep ended (or hung) before {what}.")
        time.sleep(0.1)


def trial_dirs(sweep: Path) -> list[Path]:
    return sorted((sweep / "trials").glob("*")) if (sweep / "trials").is_dir() else []


def kill_trial(root: Path) -> bool:
    proc, sweep = start_sweep(root / "kill_trial", trials=2)
    wait_until(lambda: any(len(records(t)) >= 3 for t in trial_dirs(sweep)), proc, "3 validations")
    run = next(t for t in trial_dirs(sweep) if len(records(t)) >= 3)
    pid = json.loads((run / ".lock").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    before = [r["num_timesteps"] for r in records(run)]
    print(f"kill-trial: killed trial {run.name} (pid {pid}) after validating at steps {before}")
    code = proc.wait()
    after = [r for r in records(run) if r["time"] > killed_at]
    steps = [r["num_timesteps"] for r in records(run)]
    first_after = after[0]["num_timesteps"] if after else None
    print(f"kill-trial: the sweep exited with {code}; trial {run.name} validated again from "
          f"step {first_after} on; its steps: {steps}")  # fmt: skip
    ok = (
        code == 0
        and first_after is not None
        and first_after > before[-1] - FAST["eval"]["eval_freq"]  # resumed: not from step 0
        and steps == sorted(set(steps))
        and steps[-1] == FAST["total_timesteps"]
        and (run / "final").is_dir()
    )
    print(f"kill-trial: {'OK' if ok else 'FAILED'} (sweep log: {root / 'kill_trial/sweep.log'})")
    return ok


def kill_driver(root: Path) -> bool:
    proc, sweep = start_sweep(root / "kill_driver", trials=4)
    wait_until(lambda: any((t / "final").is_dir() for t in trial_dirs(sweep)), proc, "a trial")
    time.sleep(3)  # Tune records the finished trial in its experiment state
    os.killpg(proc.pid, signal.SIGKILL)  # the command and the Ray it started
    proc.wait()
    finished = {t.name: (t / "evaluations.jsonl").read_text() for t in trial_dirs(sweep)
                if (t / "final").is_dir()}  # fmt: skip
    print(f"kill-driver: killed the sweep with trials {sorted(finished)} finished")
    resume = subprocess.run(sweep_command(root, "--resume", str(sweep)), capture_output=True,
                            text=True)  # fmt: skip
    (root / "kill_driver" / "resume.log").write_text(resume.stdout + resume.stderr)
    rows = (sweep / "results.csv").read_text().splitlines()[1:] if resume.returncode == 0 else []
    unchanged = all(
        (sweep / "trials" / name / "evaluations.jsonl").read_text() == text
        and len((sweep / "trials" / name / "command.txt").read_text().splitlines()) == 1
        for name, text in finished.items()
    )
    states = [row.split(",")[1] for row in rows]
    print(f"kill-driver: --resume exited with {resume.returncode}; {len(rows)} trials in "
          f"results.csv ({', '.join(states)}); finished trials untouched: {unchanged}")  # fmt: skip
    ok = resume.returncode == 0 and len(rows) == 4 and unchanged
    print(f"kill-driver: {'OK' if ok else 'FAILED'} (logs in {root / 'kill_driver'})")
    return ok


def oversubscription(root: Path) -> bool:
    from budgetgym.agents.config import validate_config
    from budgetgym.agents.sweeps.cluster import connect
    from budgetgym.agents.sweeps.space import Dimension, SearchSpace
    from budgetgym.agents.sweeps.tuner import run_sweep
    from budgetgym.envs.compilation import compile_kernels

    config = validate_config(HEAVY)
    compile_kernels((config.env.n_envs, config.eval.n_eval_episodes))
    space = SearchSpace({path: Dimension(**spec) for path, spec in SPACE.items()})
    print(f"oversubscription: {connect('local', 2)}, {os.cpu_count()} cores visible, "
          f"{len(os.sched_getaffinity(0))} usable")  # fmt: skip
    base = root / "oversubscription"

    def timed(name: str, trials: int, cpus_per_trial: int) -> float:
        start = time.perf_counter()
        run_sweep(config, space, base / name, trials=trials, cpus_per_trial=cpus_per_trial,
                  log=lambda _: None)  # fmt: skip
        return time.perf_counter() - start

    timed("warmup", 1, 2)  # Ray's workers and the kernels' caches, outside the measurement
    side_by_side = timed("side_by_side", 2, 1)
    one_after_other = timed("one_after_other", 2, 2)  # two CPUs a trial: Ray runs one at a time
    ratio = side_by_side / one_after_other
    print(f"oversubscription: two trials side by side, one CPU each: {side_by_side:.1f} s; one "
          f"after the other, two CPUs each: {one_after_other:.1f} s; ratio {ratio:.2f} "
          f"({'OK' if ratio <= 1.2 else 'FAILED'}: at most 1.2)")  # fmt: skip
    return ratio <= 1.2


CHECKS = {
    "kill-trial": kill_trial,
    "kill-driver": kill_driver,
    "oversubscription": oversubscription,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", choices=[*CHECKS, "all"], default="all")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_sweep"))
    args = parser.parse_args()
    out = args.out / time.strftime("%Y%m%d-%H%M%S")
    names = list(CHECKS) if args.check == "all" else [args.check]
    results = {name: CHECKS[name](out) for name in names}
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
