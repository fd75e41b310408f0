"""A sweep on Ray Tune: Optuna's TPE proposes configs, ASHA stops the weak ones early.

``run_sweep`` writes into the sweep directory::

    sweep.json  config.yaml  space.yaml   the settings, the base config, the search space
    trials/<trial id>/                    one normal budgetgym run directory per trial
    tune/                                 Ray Tune's experiment state (Tuner.restore reads it)
    results.md  results.csv  importance.png  parallel_coordinates.png  best_config.yaml

Each trial reserves ``cpus_per_trial`` CPUs and trains with as many torch threads (numba: one,
:func:`~budgetgym.agents.training.limit_threads`), so trials side by side never oversubscribe the
cores. A trial whose process dies is restarted from its last validation's checkpoint, at most
``max_failures`` times; ``resume_sweep`` continues a sweep whose driver died, keeping finished
trials.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import optuna
import yaml
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from budgetgym.agents.config import TrainConfig, validate_config
from budgetgym.agents.sweeps.cluster import connect
from budgetgym.agents.sweeps.results import SweepResults, collect, write_results
from budgetgym.agents.sweeps.space import Dimension, Objective, SearchSpace
from budgetgym.agents.sweeps.trial import TrialSetup, run_trial

SETTINGS_FILE = "sweep.json"
TUNE_DIR = "tune"


def run_sweep(
    config: TrainConfig,
    space: SearchSpace,
    root: str | Path,
    *,
    trials: int,
    cpus_per_trial: int = 1,
    objective: Objective | None = None,
    reduction_factor: int = 3,
    max_failures: int = 2,
    seed: int = 0,
    address: str | None = None,
    cpus: int | None = None,
    log: Callable[[str], None] = print,
) -> SweepResults:
    """Run ``trials`` trials of ``config`` with values from ``space`` into ``root``.

    Args:
        config: the base config (checked by :meth:`Objective.check`).
        space: from :func:`~budgetgym.agents.sweeps.space.load_space` on ``config``.
        root: the sweep directory; must not hold a sweep already.
        cpus_per_trial: CPUs each trial reserves (and its torch threads).
        reduction_factor: ASHA keeps the best 1 / ``reduction_factor`` at each rung; rungs at
            ``eval.eval_freq * reduction_factor**k`` env steps.
        max_failures: restarts of a trial whose process died, from its last checkpoint.
        seed: seeds Optuna's TPE sampler.
        address, cpus: see :func:`~budgetgym.agents.sweeps.cluster.connect`.
    """
    objective = objective or Objective()
    objective.check(config)
    root = Path(root).resolve()
    if (root / SETTINGS_FILE).exists():
        raise ValueError(
            f"{root} already holds a sweep; continue it with `budgetgym sweep --resume {root}` "
            "or choose another --run-dir."
        )
    root.mkdir(parents=True, exist_ok=True)
    settings = {
        "config": config.to_yaml(),
        "space": space.to_yaml_data(),
        "trials": trials,
        "cpus_per_trial": cpus_per_trial,
        "objective": asdict(objective),
        "reduction_factor": reduction_factor,
        "max_failures": max_failures,
        "seed": seed,
    }
    (root / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    (root / "config.yaml").write_text(config.to_yaml())
    (root / "space.yaml").write_text(yaml.safe_dump(settings["space"], sort_keys=False))
    return _fit(root, settings, address, cpus, log, restore=False)


def resume_sweep(
    root: str | Path,
    *,
    address: str | None = None,
    cpus: int | None = None,
    log: Callable[[str], None] = print,
) -> SweepResults:
    """Continue the sweep in ``root`` (Ray Tune's ``Tuner.restore``): finished trials stay
    finished, unfinished ones continue from their checkpoints, errored ones retry, and the
    sampler proposes the trials still missing."""
    root = Path(root).resolve()
    path = root / SETTINGS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{root} holds no sweep ({SETTINGS_FILE} is missing).")
    return _fit(root, json.loads(path.read_text()), address, cpus, log, restore=True)


def _fit(
    root: Path,
    settings: dict[str, Any],
    address: str | None,
    cpus: int | None,
    log: Callable[[str], None],
    restore: bool,
) -> SweepResults:
    config = validate_config(yaml.safe_load(settings["config"]), "the sweep's config")
    space = SearchSpace(
        {path: Dimension.model_validate(spec) for path, spec in settings["space"].items()}
    )
    objective = Objective(**settings["objective"])
    setup = TrialSetup(settings["config"], str(root), settings["cpus_per_trial"], objective)
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, setup=setup), {"cpu": settings["cpus_per_trial"]}
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the live table says what it did
    # Tune's own progress output off (its legacy reporter at verbose=0 prints nothing): the
    # live table is the one display.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    log(f"Sweep on {connect(address, cpus)}: {settings['trials']} trials into {root}")
    storage = str(root / TUNE_DIR)
    if restore:  # Tune keeps the run config, the live table included
        if not tune.Tuner.can_restore(storage):
            raise FileNotFoundError(f"{root} holds no Ray Tune state to resume ({storage}).")
        tuner = tune.Tuner.restore(storage, trainable, resume_errored=True)
    else:
        scheduler = ASHAScheduler(
            time_attr="num_timesteps",
            max_t=config.total_timesteps,
            grace_period=config.eval.eval_freq,
            reduction_factor=settings["reduction_factor"],
            stop_last_trials=False,  # a trial at max_t saves final/ and returns by itself
        )
        tuner = tune.Tuner(
            trainable,
            param_space=space.tune_space(),
            tune_config=tune.TuneConfig(
                metric=Objective.METRIC,
                mode="max",
                num_samples=settings["trials"],
                search_alg=OptunaSearch(seed=settings["seed"]),
                scheduler=scheduler,
                reuse_actors=True,  # the next trial trains in a finished one's process
            ),
            run_config=tune.RunConfig(
                name=TUNE_DIR,
                storage_path=str(root),
                verbose=0,
                callbacks=[SweepTable(config.total_timesteps, space.paths)],
                failure_config=tune.FailureConfig(max_failures=settings["max_failures"]),
            ),
        )
    grid = tuner.fit()
    results = collect(grid, setup, space, config.total_timesteps)
    write_results(root, results, space, config, log)
    return results


class SweepTable(tune.Callback):
    """Ray Tune callback drawing one live table: trials running, finished, pruned (stopped
    early by ASHA), failed and restarted, with each trial's values, steps and objective, and the
    best objective so far. A rich live display on a terminal; one line per ended trial
    otherwise."""

    def __init__(self, total_timesteps: int, paths: list[str]) -> None:
        self.total = total_timesteps
        self.paths = paths
        self.restarts: dict[str, int] = {}
        self._live: Any = None
        self._console: Any = None

    def __getstate__(self) -> dict[str, Any]:  # Tune saves its callbacks; the display stays
        return {**self.__dict__, "_live": None, "_console": None}

    def setup(self, **info: Any) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = Console(file=sys.stdout)
        if self._console.is_terminal:
            self._live = Live(console=self._console, refresh_per_second=2)
            self._live.start()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **_) -> None:
        self._draw(trials)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        self.restarts[trial.trial_id] = self.restarts.get(trial.trial_id, 0) + 1
        self._line(trial, "failed, restarts from its last checkpoint")
        self._draw(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        steps = (trial.last_result or {}).get("num_timesteps", 0)
        self._line(trial, "finished" if steps >= self.total else "pruned by ASHA")
        self._draw(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        self._line(trial, "failed")
        self._draw(trials)

    def on_experiment_end(self, trials: list, **_: Any) -> None:
        self._draw(trials)
        if self._live is not None:
            self._live.stop()
        else:
            self._console.print(self.render(trials))

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        self._draw(trials)

    # ------------------------------------------------------------------------------------------
    def state(self, trial: Any) -> str:
        """``running``, ``pending``, ``finished``, ``pruned`` or ``failed``."""
        if trial.status == "ERROR":
            return "failed"
        if trial.status == "TERMINATED":
            steps = (trial.last_result or {}).get("num_timesteps", 0)
            return "finished" if steps >= self.total else "pruned"
        return trial.status.lower()

    def render(self, trials: list) -> Any:
        from rich.table import Table

        states = [self.state(t) for t in trials]
        counts = {s: states.count(s) for s in ("running", "finished", "pruned", "failed")}
        values = [
            t.last_result["objective"] for t in trials if "objective" in (t.last_result or {})
        ]
        best = f"{max(values):.2f}" if values else "-"
        title = ", ".join(f"{n} {s}" for s, n in counts.items()) + f" | best objective {best}"
        table = Table(title=title, title_justify="left")
        names = [path.rsplit(".", 1)[-1] for path in self.paths]  # the full paths: results.md
        for column in ("trial", "state", *names, "steps", "objective", "ROI miss %"):
            table.add_column(column, justify="left" if column in ("trial", "state") else "right")
        for trial, state in zip(trials, states, strict=True):
            last = trial.last_result or {}
            restarts = self.restarts.get(trial.trial_id, 0)
            table.add_row(
                trial.trial_id,
                state + (f" (restarted {restarts}x)" if restarts else ""),
                *(_short(trial.config.get(path)) for path in self.paths),
                f"{last.get('num_timesteps', 0):,}",
                f"{last['objective']:.2f}" if "objective" in last else "-",
                f"{100 * last['roi_violation_rate']:.1f}" if "roi_violation_rate" in last else "-",
            )
        return table

    def _draw(self, trials: list) -> None:
        if self._live is not None:
            self._live.update(self.render(trials))

    def _line(self, trial: Any, what: str) -> None:
        if self._live is None and self._console is not None:
            last = trial.last_result or {}
            steps = last.get("num_timesteps", 0)
            value = f", objective {last['objective']:.2f}" if "objective" in last else ""
            self._console.print(f"trial {trial.trial_id}: {what} at step {steps:,}{value}")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
