"""Sweeps on Ray Tune: the search space is checked before Ray starts, and a 4-trial sweep of a
tiny config on a local Ray with 2 CPUs writes its results, a best config that loads, and
stops weak trials early."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import yaml

from budgetgym.agents.config import EXPERIMENTS_DIR, load_config, validate_config
from budgetgym.agents.sweeps.space import Objective, apply_params, load_space
from budgetgym.scripts.cli import main
from tests.agents.tiny_runs import cli, tiny, write_config

#: 384 steps, a validation every 96 (with the references: the objective needs the planner).
SWEEP_CONFIG = tiny(
    total_timesteps=384,
    eval={"references": True},
    checkpoint={"save_freq": 0},
)
SPACE = {
    "hyperparams.learning_rate": {"loguniform": [1.0e-5, 3.0e-2]},
    "hyperparams.clip_range": {"uniform": [0.1, 0.3]},
}
#: The four-trial sweep also searches the residual's base rule. A policy from scratch
#: (``none``) is well below one on ``obs_price_aware`` after a few hundred steps, so a trial on
#: it that follows one on the rule is below the rung's median: at least one trial is pruned,
#: whatever the simulator's exact numbers.
PRUNING_SPACE = {**SPACE, "residual_base": {"choice": ["obs_price_aware", "none"]}}


def write_space(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def base():
    return validate_config(SWEEP_CONFIG)


def test_space_reads_every_distribution(tmp_path: Path, base) -> None:
    space = load_space(
        write_space(
            tmp_path,
            {
                **SPACE,
                "hyperparams.n_epochs": {"int": [1, 4]},
                "env.roi_penalty_coef": {"choice": [1.0, 1.5]},
            },
        ),
        base,
    )
    assert space.paths == [*SPACE, "hyperparams.n_epochs", "env.roi_penalty_coef"]
    assert {d.kind for d in space.dimensions.values()} == {"loguniform", "uniform", "int", "choice"}
    config = apply_params(base, {"hyperparams.n_epochs": 3, "env.roi_penalty_coef": 1.5}, "t")
    assert (config.hyperparams.n_epochs, config.env.roi_penalty_coef) == (3, 1.5)
    domain = space.tune_space()["hyperparams.n_epochs"]
    assert (domain.lower, domain.upper) == (1, 5)  # Tune's upper bound is exclusive


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"hyperparams.learnin_rate": {"uniform": [0.1, 0.2]}},
         "hyperparams.learnin_rate: unknown key (did you mean 'learning_rate'?)"),
        ({"hyperparams.gamma": {"uniform": [0.9, 1.5]}}, "hyperparams.gamma"),
        ({"hyperparams.gamma": {"uniform": [0.99, 0.9]}}, "uniform needs low < high"),
        ({"hyperparams.learning_rate": {"loguniform": [0.0, 0.1]}}, "loguniform needs low > 0"),
        ({"hyperparams.gamma": {"normal": [0.9, 0.1]}}, "normal: unknown key"),
        ({"hyperparams.gamma": {"uniform": [0.9, 0.99], "choice": [0.9]}}, "exactly one of"),
        ({"hyperparams.batch_size": {"choice": [48, 50]}}, "must be a factor of"),
        ({"total_timesteps": {"int": [96, 192]}}, "cannot be searched"),
        ({"eval.eval_freq": {"int": [96, 192]}}, "cannot be searched"),
        ({"hyperparams.gamma": 0.9}, "expected a mapping"),
    ],
)  # fmt: skip
def test_space_errors_name_the_path(tmp_path: Path, base, entry: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        load_space(write_space(tmp_path, entry), base)
    assert message in str(err.value)
    assert str(next(iter(entry))) in str(err.value)


@pytest.mark.parametrize("path", sorted((EXPERIMENTS_DIR / "sweeps").glob("*.yaml")), ids=str)
def test_bundled_spaces_fit_the_default_config(path: Path) -> None:
    space = load_space(path, load_config("ppo_default"))
    assert space.paths and all(p.startswith(("hyperparams.", "env.")) for p in space.paths)


def test_objective_penalizes_misses_above_the_limit(base) -> None:
    objective = Objective(miss_limit_pct=10.0, miss_penalty=2.0)
    assert objective({"gmv_ratio_to_planner_pct": 95.0, "roi_violation_rate": 0.08}) == 95.0
    assert objective({"gmv_ratio_to_planner_pct": 95.0, "roi_violation_rate": 0.15}) == 85.0
    objective.check(base)
    no_references = apply_params(base, {"eval.references": False}, "t")
    with pytest.raises(ValueError, match="eval.references true"):
        objective.check(no_references)


def test_sweep_without_the_extra_names_it(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if absent
    code = main(["sweep", "--config", "ppo_quick", "--space", str(tmp_path / "s.yaml")])
    assert code == 2
    assert 'pip install "budgetgym[sweep]"' in " ".join(capsys.readouterr().out.split())


@pytest.mark.slow
def test_four_trial_sweep_on_local_ray(tmp_path: Path) -> None:
    config = write_config(tmp_path, SWEEP_CONFIG)
    space = write_space(tmp_path, PRUNING_SPACE)
    # Two CPUs a trial on a Ray with two: one trial at a time, so ASHA meets the trials' results
    # in the same order on every run (the first four of a seeded TPE are random draws).
    proc = cli("sweep", "--config", str(config), "--space", str(space), "--trials", "4",
               "--cpus", "2", "--cpus-per-trial", "2", "--reduction-factor", "2",
               "--run-dir", "sweep", cwd=tmp_path, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = tmp_path / "sweep"
    with open(root / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    assert {r["state"] for r in rows} <= {"finished", "pruned"}
    total = SWEEP_CONFIG["total_timesteps"]
    for row in rows:
        run = root / "trials" / row["trial"]
        steps = [r["num_timesteps"] for r in map(json.loads, open(run / "evaluations.jsonl"))]
        assert int(row["steps"]) == steps[-1]
        assert (run / "config.yaml").is_file() and (run / "best").is_dir()
        if row["state"] == "finished":
            assert steps[-1] == total and (run / "final").is_dir()
        else:  # ASHA stopped it at a rung: it trained no further
            assert steps[-1] < total and not (run / "final").exists()
    # The first trial reaching a rung always continues; a later one below the median of the
    # results at the rung stops there.
    assert any(r["state"] == "pruned" for r in rows)
    best = max((r for r in rows if r["state"] == "finished"), key=lambda r: float(r["objective"]))
    loaded = load_config(root / "best_config.yaml")
    assert loaded.hyperparams.learning_rate == pytest.approx(
        float(best["hyperparams.learning_rate"]), rel=1e-3
    )
    assert loaded.total_timesteps == total
    table = (root / "results.md").read_text()
    assert f"budgetgym compare --scenarios all --policy {root.resolve()}/trials/" in table
    assert best["trial"] in table.split("## Best")[1]
    assert (root / "importance.png").stat().st_size > 0
    assert (root / "parallel_coordinates.png").stat().st_size > 0
    pruned = sum(r["state"] == "pruned" for r in rows)
    assert f"{4 - pruned} finished, {pruned} pruned, 0 failed" in proc.stdout  # the live table


def test_tune_checkpoint_points_at_the_run_and_falls_back_to_it(tmp_path: Path) -> None:
    from ray import tune

    from budgetgym.agents.sweeps.trial import POINTER_FILE, pointed_checkpoint

    run = tmp_path / "trials" / "abc"
    step = run / "checkpoints" / "step_000000192"
    step.mkdir(parents=True)
    pointer = tmp_path / "pointer"
    pointer.mkdir()
    (pointer / POINTER_FILE).write_text(
        json.dumps({"run_dir": str(run), "checkpoint": str(step), "step": 192})
    )
    checkpoint = tune.Checkpoint.from_directory(pointer)
    assert pointed_checkpoint(checkpoint) == step
    step.rmdir()  # pruned since: the run's newest intact state is resumed instead
    assert pointed_checkpoint(checkpoint) == run
