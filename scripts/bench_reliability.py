"""Adversarial action streams against the simulator: does the money add up?

    python scripts/bench_reliability.py [--campaigns N] [--json FILE]
    python scripts/bench_reliability.py --bad-inputs [--json FILE]

The first form drives ``BatchedCampaigns`` with valid but hostile action streams (uniform
noise, every entry at ±1, all of the budget into one channel, spending everything then nothing
hour after hour, values one float step inside ±1) over ``--campaigns`` campaigns of every
shipped scenario and of ``deep_market`` (the example with every market mechanism on), and
counts, over every campaign-step:

- budget overruns: campaigns whose cumulative spend exceeds the budget (by any amount);
- non-finite values in the observations, rewards and every info array;
- the reconciliation error, the largest relative gap of the identities the books must satisfy:
  hourly spend summed over hours and over channels = ``spend_total`` = ``budget -
  budget_left``; hourly attributed GMV and conversions summed = ``gmv_total`` and
  ``conversions_total`` (channel totals agree too); new + returning customers =
  ``conversions_total``; ``compensation = max(0, spend - GMV / R)``.

The second form runs the ``budgetgym`` command on bad inputs (actions, configs, checkpoints)
in a temporary folder and prints each input with the first line of its message and its exit
code: the bad-input matrix of ``benchmarks/reliability.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from budgetgym.envs import ACTION_DIM, SCENARIO_NAMES, BatchedCampaigns
from budgetgym.envs.scenarios import DEEP_MARKET

#: ``stream(rng, n, hour) -> actions (n, ACTION_DIM)``: valid (finite, within [-1, 1]) actions.
Stream = Callable[[np.random.Generator, int, int], np.ndarray]
JUST_INSIDE = np.nextafter(1.0, 0.0)


def _one_channel(rng: np.random.Generator, n: int, hour: int) -> np.ndarray:
    """Full pace, every logit at -1 but one at +1 (a random channel per campaign)."""
    actions = -np.ones((n, ACTION_DIM))
    actions[:, 0] = 1.0
    actions[np.arange(n), 1 + rng.integers(0, ACTION_DIM - 1, n)] = 1.0
    return actions


STREAMS: dict[str, Stream] = {
    "uniform": lambda rng, n, hour: rng.uniform(-1.0, 1.0, (n, ACTION_DIM)),
    "corners": lambda rng, n, hour: rng.choice([-1.0, 1.0], (n, ACTION_DIM)),
    "one_channel_full_pace": _one_channel,
    "all_then_nothing": lambda rng, n, hour: np.tile(
        [1.0 if hour % 2 == 0 else -1.0] + [0.0] * (ACTION_DIM - 1), (n, 1)
    ),
    "just_inside_bounds": lambda rng, n, hour: rng.choice(
        [-JUST_INSIDE, JUST_INSIDE, -1.0, 1.0, 0.0], (n, ACTION_DIM)
    ),
}


def _relative_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Largest ``|a - b| / max(|b|, 1)`` (money in CNY: an absolute gap below 1 CNY is relative
    to 1 CNY)."""
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0), initial=0.0))


def run_stream(scenario: str, stream: Stream, campaigns: int, seed: int) -> dict[str, float]:
    """One episode of ``campaigns`` campaigns under ``stream``; the counts and the largest gaps."""
    rng = np.random.default_rng(seed)
    env = BatchedCampaigns(scenario)
    obs, info = env.reset(np.arange(campaigns) + seed)
    spend = np.zeros(campaigns)
    gmv = np.zeros(campaigns)
    conversions = np.zeros(campaigns)
    non_finite = int(np.count_nonzero(~np.isfinite(obs)))
    overrun_steps, max_overrun = 0, 0.0
    done = np.zeros(campaigns, dtype=bool)
    hour = 0
    while not done.all():
        obs, reward, done, info = env.step(stream(rng, campaigns, hour))
        hour += 1
        arrays = [obs, reward, *(np.asarray(v, dtype=np.float64) for v in info.values())]
        non_finite += sum(int(np.count_nonzero(~np.isfinite(a))) for a in arrays)
        over = info["spend_total"] - info["budget"]
        overrun_steps += int(np.count_nonzero(over > 0))
        max_overrun = max(max_overrun, float(np.max(over / info["budget"])))
        spend += info["spend_cny"].sum(axis=1)
        gmv += info["gmv_cny"].sum(axis=1)
        conversions += info["conversions"].sum(axis=1)
    total = info["spend_total"]
    gaps = {
        "spend_hourly": _relative_gap(spend, total),
        "spend_by_channel": _relative_gap(info["spend_by_channel"].sum(axis=1), total),
        "budget_left": _relative_gap(info["budget"] - info["budget_left"], total),
        "gmv_hourly": _relative_gap(gmv, info["gmv_total"]),
        "gmv_by_channel": _relative_gap(info["gmv_by_channel"].sum(axis=1), info["gmv_total"]),
        "conversions_hourly": _relative_gap(conversions, info["conversions_total"]),
        "customers": _relative_gap(
            info["new_customers_total"] + info["returning_customers_total"],
            info["conversions_total"],
        ),
        "compensation": _relative_gap(
            info["compensation"],
            np.maximum(0.0, total - info["gmv_total"] / info["target_roi"]),
        ),
    }
    return {
        "campaign_steps": campaigns * hour,
        "overrun_steps": overrun_steps,
        "overrun_campaigns": int(np.count_nonzero(total > info["budget"])),
        "max_overrun_frac": max_overrun,
        "non_finite": non_finite,
        "spent_frac": float(np.mean(total / info["budget"])),
        **{f"gap_{k}": v for k, v in gaps.items()},
    }


#: The shipped scenarios and the example that switches every market mechanism on.
SCENARIOS = (*SCENARIO_NAMES, str(DEEP_MARKET))


def env_figures(campaigns: int) -> dict:
    """:func:`run_stream` for every stream and scenario; totals per stream."""
    rows = {}
    for s, (name, stream) in enumerate(STREAMS.items()):
        parts = [
            run_stream(scenario, stream, campaigns, seed=1_000_000 + 10_000 * (s * 10 + k))
            for k, scenario in enumerate(SCENARIOS)
        ]
        row = {key: sum(p[key] for p in parts) for key in parts[0] if not key.startswith("gap")}
        row["spent_frac"] = float(np.mean([p["spent_frac"] for p in parts]))
        row["max_overrun_frac"] = max(p["max_overrun_frac"] for p in parts)
        gap_keys = [key for key in parts[0] if key.startswith("gap_")]
        row["gaps"] = {key[4:]: max(p[key] for p in parts) for key in gap_keys}
        row["reconciliation_error"] = max(row["gaps"].values())
        rows[name] = row
    return rows


def print_env_table(rows: dict, console: Console) -> None:
    table = Table(title="Adversarial action streams (every scenario)")
    for column in (
        "stream", "campaign-steps", "steps over budget", "largest overrun / budget",
        "non-finite values", "reconciliation error", "mean spend / budget",
    ):  # fmt: skip
        table.add_column(column, justify="right" if column != "stream" else "left")
    for name, row in rows.items():
        table.add_row(
            name,
            f"{row['campaign_steps']:,}",
            f"{row['overrun_steps']:,}",
            f"{row['max_overrun_frac']:.1e}",
            f"{row['non_finite']:,}",
            f"{row['reconciliation_error']:.1e}",
            f"{row['spent_frac']:.3f}",
        )
    console.print(table)


# --------------------------------------------------------------------------------------------
# The bad-input matrix: the CLI run on bad actions, configs and checkpoints
# --------------------------------------------------------------------------------------------
TINY_CONFIG = """\
seed: 0
total_timesteps: 192
env: {scenario: hit_product, n_envs: 4, horizon_hours: 24}
hyperparams: {n_steps: 24, batch_size: 48, n_epochs: 1}
eval: {eval_freq: 96, n_eval_episodes: 4, references: false, final_episodes: 0}
checkpoint: {save_freq: 96, keep_last: 2}
"""

ACTION_SNIPPET = """\
import numpy as np, gymnasium as gym, budgetgym
env = gym.make("budgetgym/MultiChannelBudget-v1")
env.reset(seed=1_000_000)
env.step({action})
print("accepted")
"""

ACTIONS = {
    "NaN pace": "np.array([np.nan, 0, 0, 0, 0, 0, 0])",
    "inf logit": "np.array([0, np.inf, 0, 0, 0, 0, 0])",
    "1.00001": "np.array([1.00001, 0, 0, 0, 0, 0, 0])",
    "1 + 1e-9": "np.array([0, 0, 0, 1 + 1e-9, 0, 0, 0])",
    "shape (6,)": "np.zeros(6)",
    "strings": "np.array(['a'] * 7)",
    "float32 1.0 (clipped)": "np.ones(7, dtype=np.float32)",
}


def _configs(folder: Path) -> list[tuple[str, list[str]]]:
    """(label, budgetgym arguments) for config files and overrides."""
    files = {
        "duplicate key": TINY_CONFIG + "seed: 3\n",
        "n_envs: true": TINY_CONFIG.replace("n_envs: 4", "n_envs: true"),
        "empty file": "# nothing\n",
        "unknown key": TINY_CONFIG + "totl_timesteps: 5\n",
    }
    cases = []
    for label, text in files.items():
        path = folder / f"{label.replace(' ', '_').replace(':', '')}.yaml"
        path.write_text(text)
        cases.append((label, ["train", "--config", str(path), "--run-dir", "r"]))
    tiny = folder / "tiny.yaml"
    tiny.write_text(TINY_CONFIG)
    for override in (
        "device=banana", "device=cuda", "env.n_envs=1000000000",
        "env.horizon_hours=1000000000", "eval.n_eval_episodes=100000",
        "hyperparams.learning_rate=-1",
    ):  # fmt: skip
        cases.append(
            (override, ["train", "--config", str(tiny), "--run-dir", "r", "--set", override])
        )
    return cases


def _checkpoints(folder: Path, run: Path) -> list[tuple[str, list[str]]]:
    """(label, budgetgym arguments) for copies of a trained run with a damaged ``final/``."""
    import shutil

    cases = []
    damages: dict[str, Callable[[Path], None]] = {
        "meta.json not JSON": lambda d: (d / "meta.json").write_text("{"),
        "foreign meta.json": lambda d: (d / "meta.json").write_text('{"format": "x"}'),
        "model.zip truncated": lambda d: (d / "model.zip").write_bytes(
            (d / "model.zip").read_bytes()[:100]
        ),
        "model.zip missing": lambda d: (d / "model.zip").unlink(),
    }
    for label, damage in damages.items():
        copy = folder / f"run_{len(cases)}"  # the whole run: a model is rebuilt from its config
        shutil.copytree(run, copy)
        damage(copy / "final")
        args = ["evaluate", "--policy", str(copy / "final"), "--episodes", "4"]
        cases.append((f"{label} (evaluate)", args))
    cases += [
        ("not a run (evaluate)", ["evaluate", "--policy", "empty_dir", "--episodes", "4"]),
        ("missing path (export)", ["export", "nope"]),
        ("resume a finished run", ["train", "--resume", str(run)]),
    ]
    (folder / "empty_dir").mkdir()
    return cases


OPTIONS: list[tuple[str, list[str]]] = [
    ("evaluate --out FILE", ["evaluate", "--policy", "uniform", "--out", "tiny.yaml"]),
    ("evaluate --episodes 1e9", ["evaluate", "--policy", "uniform", "--episodes", "1000000000"]),
    (
        "evaluate --batch-size 1e9",
        ["evaluate", "--policy", "uniform", "--batch-size", "1000000000"],
    ),
    ("evaluate --horizon-hours 0", ["evaluate", "--policy", "uniform", "--horizon-hours", "0"]),
    ("evaluate --policy typo", ["evaluate", "--policy", "unifrom"]),
    ("evaluate --scenario typo", ["evaluate", "--policy", "uniform", "--scenario", "hit"]),
    ("train --resume missing", ["train", "--resume", "nope"]),
]


def _first_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    if errors:  # rich wraps long lines: join the error's continuation lines
        start = lines.index(errors[0])
        return " ".join(lines[start:])
    return lines[-1] if lines else ""


def bad_input_matrix() -> list[dict]:
    """Run every bad input; one row (kind, input, message, exit code) each."""
    rows = []
    env = {**os.environ, "COLUMNS": "1000"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for label, action in ACTIONS.items():
            code = ACTION_SNIPPET.format(action=action)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            message = _first_line(done.stdout + done.stderr)  # the exception's last line
            rows.append(
                {"kind": "action (env.step)", "input": label, "message": message,
                 "exit_code": done.returncode}
            )  # fmt: skip
        (folder / "tiny.yaml").write_text(TINY_CONFIG)
        trained = subprocess.run(
            [sys.executable, "-m", "budgetgym.scripts.cli", "train", "--config", "tiny.yaml",
             "--run-dir", "run", "--no-progress"],
            cwd=folder, capture_output=True, text=True, env=env,
        )  # fmt: skip
        if trained.returncode != 0:
            raise RuntimeError(f"training the reference run failed:\n{trained.stderr}")
        cases = [("config", c) for c in _configs(folder)]
        cases += [("checkpoint", c) for c in _checkpoints(folder, folder / "run")]
        cases += [("option", c) for c in OPTIONS]
        for kind, (label, args) in cases:
            done = subprocess.run(
                [sys.executable, "-m", "budgetgym.scripts.cli", *args, "--no-progress"]
                if args[0] in ("train", "evaluate") else
                [sys.executable, "-m", "budgetgym.scripts.cli", *args],
                cwd=folder, capture_output=True, text=True, env=env, timeout=600,
            )  # fmt: skip
            message = _first_line(done.stdout + done.stderr).replace(str(folder) + "/", "")
            rows.append(
                {"kind": kind, "input": label, "message": message, "exit_code": done.returncode}
            )
    return rows


def print_matrix(rows: list[dict]) -> None:
    """The matrix as a Markdown table (pasted into benchmarks/reliability.md)."""
    print("| kind | input | message | exit code |")
    print("|---|---|---|---|")
    for row in rows:
        message = row["message"].replace("|", "\\|")
        print(f"| {row['kind']} | {row['input']} | {message} | {row['exit_code']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--campaigns", type=int, default=1024, help="Campaigns per scenario.")
    parser.add_argument(
        "--bad-inputs", action="store_true", help="Run the bad-input matrix instead."
    )
    parser.add_argument("--json", type=Path, help="Also write the results as JSON.")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.bad_inputs:
        result: object = bad_input_matrix()
        print_matrix(result)  # type: ignore[arg-type]
    else:
        result = env_figures(args.campaigns)
        print_env_table(result, Console())  # type: ignore[arg-type]
    print(f"({time.perf_counter() - start:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
