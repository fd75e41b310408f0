"""One sweep trial: a normal budgetgym run that reports every validation to Ray Tune.

The trial trains into ``<sweep>/trials/<trial id>/`` (config.yaml, TensorBoard, checkpoints,
``best/``, ``final/``) with :func:`budgetgym.agents.training.train`. At each validation the run
saves a checkpoint and :class:`TuneReporter` reports the metrics and the objective with a Tune
checkpoint that points at it (``budgetgym_checkpoint.json``: no weights are copied). When Ray
restarts a failed trial (``FailureConfig(max_failures)``), the trial continues from the pointed
checkpoint with :func:`~budgetgym.agents.training.resume`: same step counter, optimizer and
normalization statistics.

Ray Tune saves its experiment state every few seconds, so a sweep whose command died may come
back (``--resume``) with a trial that Tune does not know as finished or checkpointed. The run
directory decides then: a run already at its target (``final/``) reports its last validation
and is not trained again; a run with a saved state continues from the newest one.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from budgetgym.agents import training
from budgetgym.agents.checkpoints import RunPaths, checkpoint_step, read_meta
from budgetgym.agents.config import TrainConfig, validate_config
from budgetgym.agents.sweeps.space import Objective, apply_params

POINTER_FILE = "budgetgym_checkpoint.json"
#: Validation metrics reported to Tune besides the objective (and ``num_timesteps``).
REPORTED = ("gmv_ratio_to_planner_pct", "roi_violation_rate", "gmv", "auctionnet_score")


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a sweep shares (sent to the Ray workers)."""

    base_yaml: str  # the resolved config the space's values are set on
    root: str  # the sweep directory (absolute; seen by every machine at the same path)
    torch_threads: int  # the CPUs each trial reserves
    objective: Objective

    def run_dir(self, trial_id: str) -> Path:
        return Path(self.root) / "trials" / trial_id

    def config(self, params: dict[str, Any]) -> TrainConfig:
        """The trial's config: the base with the sampled ``{dotted path: value}`` set."""
        base = validate_config(yaml.safe_load(self.base_yaml), "the sweep's config")
        return apply_params(base, params, source=f"trial config {params}")


class TuneReporter:
    """A :data:`~budgetgym.agents.training.ValidationHook` that reports to Ray Tune."""

    def __init__(self, objective: Objective, run_dir: Path) -> None:
        self.objective = objective
        self.run_dir = run_dir

    def __call__(self, step: int, metrics: dict[str, float], checkpoint: Path) -> None:
        from ray import tune

        result = {key: float(metrics[key]) for key in REPORTED if key in metrics}
        result.update(num_timesteps=int(step), objective=self.objective(metrics))
        with tempfile.TemporaryDirectory() as pointer:
            pointed = {"run_dir": str(self.run_dir), "checkpoint": str(checkpoint), "step": step}
            (Path(pointer) / POINTER_FILE).write_text(json.dumps(pointed))
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(pointer))


def pointed_checkpoint(checkpoint: Any) -> Path:
    """The budgetgym checkpoint a Tune checkpoint points at; the run directory itself when
    that checkpoint was pruned since (resume then takes its newest intact state)."""
    with checkpoint.as_directory() as directory:
        pointed = json.loads((Path(directory) / POINTER_FILE).read_text())
    target = Path(pointed["checkpoint"])
    return target if target.is_dir() else Path(pointed["run_dir"])


def run_trial(params: dict[str, Any], setup: TrialSetup) -> None:
    """Ray Tune's function trainable: train (or, after a failure, resume) this trial's run."""
    from ray import tune

    run_dir = setup.run_dir(tune.get_context().get_trial_id())
    reporter = TuneReporter(setup.objective, run_dir)
    common = {
        "progress": False,
        "final_comparison": False,  # held-out campaigns are for the chosen config only
        "torch_threads": setup.torch_threads,
        "on_validation": reporter,
    }
    checkpoint = tune.get_checkpoint()
    paths = RunPaths(run_dir)
    config = setup.config(params)
    if _finished(paths, config.total_timesteps):
        print(f"Trial {run_dir} is already at its target: reporting its last validation")
        meta = read_meta(paths.final)
        reporter(checkpoint_step(paths.final), meta["eval_metrics"], paths.final)
        return
    if checkpoint is not None:
        target = pointed_checkpoint(checkpoint)
    elif paths.saved_states()[0]:
        target = run_dir
    else:  # a first start, or a restart before the first checkpoint: start afresh
        training.train(config, run_dir, overwrite=True, **common)
        return
    print(f"Trial resumes from {target}")
    training.resume(target, **common)


def _finished(paths: RunPaths, total_timesteps: int) -> bool:
    """Whether the run saved ``final/`` at its target (with the validation metrics)."""
    try:
        meta = read_meta(paths.final)
    except (FileNotFoundError, ValueError):
        return False
    return meta.get("num_timesteps", 0) >= total_timesteps and "eval_metrics" in meta
