"""The end of a sweep: the results table, Optuna's importance and parallel-coordinate plots,
the best config as a ready-to-use YAML, and the commands that evaluate and retrain it."""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from budgetgym.agents.config import TrainConfig
from budgetgym.agents.sweeps.space import SearchSpace, apply_params
from budgetgym.agents.sweeps.trial import TrialSetup


@dataclass(frozen=True)
class TrialRow:
    """One trial's outcome (its last validation; a pruned trial's at the step it stopped)."""

    trial_id: str
    state: str  # finished | pruned | failed
    params: dict[str, Any]
    steps: int
    time_s: float
    run_dir: Path
    objective: float | None = None
    gmv_ratio_to_planner_pct: float | None = None
    roi_violation_rate: float | None = None
    error: str | None = None


@dataclass
class SweepResults:
    """Every trial, and the best finished one (None when no trial finished)."""

    rows: list[TrialRow]
    best: TrialRow | None = None
    files: dict[str, Path] = field(default_factory=dict)


def collect(grid: Any, setup: TrialSetup, space: SearchSpace, total: int) -> SweepResults:
    """Rows of a Ray Tune ``ResultGrid``; ``total`` is the config's ``total_timesteps``."""
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id") or Path(result.path).name
        steps = int(metrics.get("num_timesteps", 0))
        if result.error is not None:
            state = "failed"
        else:
            state = "finished" if steps >= total else "pruned"
        rows.append(
            TrialRow(
                trial_id=trial_id,
                state=state,
                params={path: result.config.get(path) for path in space.paths},
                steps=steps,
                time_s=float(metrics.get("time_total_s", 0.0)),
                run_dir=setup.run_dir(trial_id),
                objective=metrics.get("objective"),
                gmv_ratio_to_planner_pct=metrics.get("gmv_ratio_to_planner_pct"),
                roi_violation_rate=metrics.get("roi_violation_rate"),
                error=None if result.error is None else _one_line(str(result.error)),
            )
        )
    rows.sort(key=lambda r: r.trial_id)
    finished = [r for r in rows if r.state == "finished" and r.objective is not None]
    best = max(finished, key=lambda r: r.objective) if finished else None
    return SweepResults(rows, best)


def write_results(
    root: Path,
    results: SweepResults,
    space: SearchSpace,
    config: TrainConfig,
    log: Callable[[str], None] = print,
) -> None:
    """Write ``results.md``/``.csv``, the plots and ``best_config.yaml`` into ``root`` and log
    where they are with the commands for the best config."""
    header = ["trial", "state", *space.paths, "objective", "GMV % of planner", "ROI miss %",
              "steps", "time s"]  # fmt: skip
    table = [_cells(row, space.paths) for row in results.rows]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([header, *table])
    results.files["csv"] = root / "results.csv"
    results.files["csv"].write_text(buffer.getvalue())
    lines = ["# Sweep results", "", _objective_line(root), ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table]
    failed = [row for row in results.rows if row.error]
    lines += ["", *(f"- trial {row.trial_id} failed: {row.error}" for row in failed)]
    results.files["table"] = root / "results.md"
    log(f"Results: {results.files['table']} and {results.files['csv']}")
    results.files.update(plot_trials(results.rows, space, root, log))
    if results.best is None:
        results.files["table"].write_text("\n".join(lines) + "\n")
        log("No trial finished: no best config.")
        return
    best = results.best
    best_config = apply_params(config, best.params, source=f"trial {best.trial_id}")
    results.files["best_config"] = root / "best_config.yaml"
    note = (
        f"# Best of the sweep in {root}: trial {best.trial_id}, objective {best.objective:.2f} "
        f"on validation campaigns.\n"
    )
    results.files["best_config"].write_text(note + best_config.to_yaml())
    commands = [
        f"budgetgym compare --scenarios all --policy {best.run_dir}",
        f"budgetgym train --config {results.files['best_config']} --seeds 0 1 2",
    ]
    lines += [
        "## Best",
        "",
        f"Trial {best.trial_id} ({best.run_dir}), objective {best.objective:.2f}: "
        f"{', '.join(f'{k}={_format(v)}' for k, v in best.params.items())}.",
        "",
        "Evaluate it on held-out campaigns, and retrain its config over seeds:",
        "",
        "```bash",
        *commands,
        "```",
    ]
    results.files["table"].write_text("\n".join(lines) + "\n")
    log(f"Best: trial {best.trial_id}, objective {best.objective:.2f}")
    log(f"Best config: {results.files['best_config']}")
    log(f"Evaluate it on held-out campaigns: {commands[0]}")


def plot_trials(
    rows: list[TrialRow], space: SearchSpace, root: Path, log: Callable[[str], None]
) -> dict[str, Path]:
    """Optuna's parameter importance (fANOVA) and parallel-coordinate plots of the trials'
    objectives (each trial's last validation), as ``importance.png`` and
    ``parallel_coordinates.png``; none with fewer than two trials with an objective."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    scored = [row for row in rows if row.objective is not None]
    if len(scored) < 2:
        log("Plots need two trials with an objective: none drawn.")
        return {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {p: dim.optuna_distribution() for p, dim in space.dimensions.items()}
    study = optuna.create_study(direction="maximize")
    for row in scored:
        study.add_trial(
            optuna.trial.create_trial(
                params=row.params, distributions=distributions, value=row.objective
            )
        )
    files = {}
    with warnings.catch_warnings():  # Optuna marks its matplotlib backend experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name, plot in (
            ("importance", optuna_plots.plot_param_importances),
            ("parallel_coordinates", optuna_plots.plot_parallel_coordinate),
        ):
            axes = plot(study)
            figure = axes.figure
            figure.set_size_inches(9, 4.5)
            figure.tight_layout()
            files[name] = root / f"{name}.png"
            figure.savefig(files[name], dpi=110)
            matplotlib.pyplot.close(figure)
    log(f"Plots: {files['importance']}, {files['parallel_coordinates']}")
    return files


def _cells(row: TrialRow, paths: list[str]) -> list[str]:
    miss = None if row.roi_violation_rate is None else 100 * row.roi_violation_rate
    return [
        row.trial_id,
        row.state,
        *(_format(row.params[p]) for p in paths),
        _format(row.objective, ".2f"),
        _format(row.gmv_ratio_to_planner_pct, ".2f"),
        _format(miss, ".1f"),
        str(row.steps),
        f"{row.time_s:.0f}",
    ]


def _format(value: Any, spec: str = ".4g") -> str:
    if value is None:
        return "-"
    return format(value, spec) if isinstance(value, float) else str(value)


def _objective_line(root: Path) -> str:
    objective = json.loads((root / "sweep.json").read_text())["objective"]
    return (
        "Objective (validation campaigns, at each trial's last validation; a pruned trial's at "
        "the step ASHA stopped it): total GMV as % of the planner's, less "
        f"{objective['miss_penalty']:g} points per point of ROI-miss rate above "
        f"{objective['miss_limit_pct']:g}%."
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
