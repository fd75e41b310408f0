"""Run safety (issue 23): resume from the newest intact state, signals, records that never go
back in steps, a fresh start in a used folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from budgetgym.agents import training
from budgetgym.agents.callbacks import RunCheckpointCallback
from budgetgym.agents.checkpoints import (
    RunPaths,
    describe_checkpoint,
    read_meta,
    save_checkpoint,
)
from budgetgym.agents.config import validate_config
from budgetgym.agents.runlock import LOCK_FILE
from budgetgym.agents.training import read_evaluations, resume, train
from budgetgym.envs import BudgetVecEnv
from tests.agents.tiny_runs import cli, quiet, tiny, wait_for_file, write_config


def steps_of(run: RunPaths) -> list[int]:
    return [record["num_timesteps"] for record in read_evaluations(run.root)]


def assert_steps_only_advance(run: RunPaths) -> None:
    """Validation records and every TensorBoard scalar strictly increase in steps, read as
    TensorBoard reads the files (in order), with its purging of orphaned steps off."""
    steps = steps_of(run)
    assert steps == sorted(set(steps)), steps
    events = EventAccumulator(str(run.tensorboard), purge_orphaned_data=False).Reload()
    for tag in events.Tags()["scalars"]:
        tag_steps = [event.step for event in events.Scalars(tag)]
        assert tag_steps == sorted(set(tag_steps)), (tag, tag_steps)


def popen_train(tmp_path: Path, config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "budgetgym.scripts.cli", "train", "--config", str(config),
         "--run-dir", "run", "--no-progress"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Item 1: resume from the newest intact state; a checkpoint folder as target; --overwrite
# --------------------------------------------------------------------------------------------
def test_kill_9_before_the_first_checkpoint_resumes_from_best(tmp_path: Path) -> None:
    data = tiny(total_timesteps=200_000, eval={"eval_freq": 48}, checkpoint={"save_freq": 0})
    proc = popen_train(tmp_path, write_config(tmp_path, data))
    run = RunPaths(tmp_path / "run")
    wait_for_file(run.best / "meta.json", proc)  # best/ is renamed into place whole
    proc.kill()
    proc.communicate(timeout=60)
    assert not run.list_checkpoints() and not run.final.exists()
    best = read_meta(run.best)["num_timesteps"]

    messages: list[str] = []
    result = resume(run.root, total_timesteps=best + 96, progress=False, log=messages.append)
    assert f"from best/ at step {best:,}" in "\n".join(messages)
    assert not result.interrupted and result.num_timesteps >= best + 96
    assert read_meta(run.final)["num_timesteps"] == result.num_timesteps
    assert_steps_only_advance(run)


def test_a_run_that_saved_nothing_says_how_to_start_afresh(tmp_path: Path) -> None:
    config = validate_config(tiny())
    run = RunPaths(tmp_path / "run")
    run.root.mkdir()
    run.config.write_text(config.to_yaml())  # killed during start-up
    (run.root / "notes.txt").write_text("mine")
    with pytest.raises(FileNotFoundError, match="--overwrite"):
        resume(run.root, progress=False, log=quiet)
    with pytest.raises(ValueError, match="already holds a run.*--overwrite"):
        train(config, run.root, progress=False, log=quiet)

    result = train(config, run.root, progress=False, log=quiet, overwrite=True)
    assert result.num_timesteps >= 192 and read_meta(run.final)["num_timesteps"] >= 192
    assert (run.root / "notes.txt").read_text() == "mine"  # only the run's own files go


def test_overwrite_on_the_command_line_starts_afresh(tmp_path: Path) -> None:
    config = write_config(tmp_path, tiny(total_timesteps=96))
    assert cli("train", "--config", str(config), "--run-dir", "run", cwd=tmp_path).returncode == 0
    run = RunPaths(tmp_path / "run")
    (run.checkpoints / "step_000999999").mkdir()  # a stray folder of the old run
    proc = cli("train", "--config", str(config), "--run-dir", "run", cwd=tmp_path)
    assert proc.returncode == 2 and "--overwrite" in proc.stdout
    proc = cli("train", "--config", str(config), "--run-dir", "run", "--overwrite", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (run.checkpoints / "step_000999999").exists()
    assert steps_of(run) == [96]


def test_a_checkpoint_folder_is_a_resume_target_and_later_states_go(tmp_path: Path) -> None:
    data = tiny(total_timesteps=288, eval={"eval_freq": 48}, checkpoint={"keep_last": 3})
    train(validate_config(data), tmp_path / "run", progress=False, log=quiet)
    run = RunPaths(tmp_path / "run")
    assert max(steps_of(run)) == 288
    with open(run.evaluations, "a") as handle:
        handle.write('{"num_timesteps": 3')  # a line kill -9 cut short

    messages: list[str] = []
    target = run.checkpoint(192)
    result = resume(target, total_timesteps=384, progress=False, log=messages.append)
    text = "\n".join(messages)
    assert "from checkpoints/step_000000192/ at step 192" in text
    assert "checkpoints/step_000000288" in text and "final" in text  # removed, and said so
    assert "Dropped 3 validation record(s)" in text  # those at 240 and 288, the cut line
    assert result.num_timesteps >= 384
    assert [read_meta(p)["num_timesteps"] for p in run.list_checkpoints()] == [192, 288, 384]
    assert_steps_only_advance(run)
    assert steps_of(run) == list(range(48, 385, 48))


# --------------------------------------------------------------------------------------------
# Item 6: corrupt checkpoints are skipped, reported, and do not stop pruning
# --------------------------------------------------------------------------------------------
def test_resume_falls_back_past_corrupt_states_and_names_them(tmp_path: Path) -> None:
    data = tiny(total_timesteps=288, checkpoint={"keep_last": 3})
    train(validate_config(data), tmp_path / "run", progress=False, log=quiet)
    run = RunPaths(tmp_path / "run")
    (run.checkpoint(96) / "meta.json").write_text("{not json")
    for state in (run.checkpoint(288), run.final):
        (state / "model.zip").write_bytes(b"cut short")
    if read_meta(run.best)["num_timesteps"] > 192:
        (run.best / "model.zip").write_bytes(b"cut short")
    assert describe_checkpoint(run.checkpoint(192)).run_steps == 288  # evaluation reads on

    messages: list[str] = []
    result = resume(run.root, total_timesteps=480, progress=False, log=messages.append)
    text = "\n".join(messages)
    assert "from checkpoints/step_000000192/ at step 192" in text
    for skipped in ("final/", "checkpoints/step_000000288/", "checkpoints/step_000000096/"):
        assert f"Skipped {skipped}: " in text, text
    assert "not valid JSON" in text and "corrupt" in text
    # Pruning went on around the corrupt checkpoint, left in place, and reported it.
    assert any(m.startswith("Pruning skips") and "step_000000096" in m for m in messages)
    assert (run.checkpoint(96) / "meta.json").read_text() == "{not json"
    assert result.num_timesteps >= 480
    assert [read_meta(p)["num_timesteps"] for p in run.scan_checkpoints()[0]] == [288, 384, 480]


def run_files(root: Path) -> dict[Path, bytes]:
    """Every file of a run but the lock file, which records its latest holder."""
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != LOCK_FILE}


def test_resume_with_every_state_corrupt_names_each_and_changes_nothing(tmp_path: Path) -> None:
    train(validate_config(tiny()), tmp_path / "run", progress=False, log=quiet)
    run = RunPaths(tmp_path / "run")
    for state in (*run.list_checkpoints(), run.best, run.final):
        (state / "meta.json").write_text("[]")
    before = run_files(run.root)
    proc = cli("train", "--resume", str(run.root), "--total-timesteps", "400", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    text = " ".join(proc.stdout.split())
    assert "No intact checkpoint" in text and "best/ (" in text and "final/ (" in text
    assert run_files(run.root) == before


def test_pruning_skips_a_checkpoint_with_corrupt_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    venv = VecNormalize(BudgetVecEnv(2, horizon_hours=4))
    model = PPO("MlpPolicy", venv, n_steps=4, batch_size=8, device="cpu", seed=0)
    run = RunPaths(tmp_path / "run")
    for step in (100, 200):
        model.num_timesteps = step
        save_checkpoint(model, venv, run.checkpoint(step))
    (run.checkpoint(100) / "meta.json").write_text("{")
    callback = RunCheckpointCallback(run, save_freq=100, keep_last=1)  # reports with print
    callback.init_callback(model)
    for step in (300, 400):
        model.num_timesteps = step
        callback.save_now(run.checkpoint(step))
    intact, skipped = run.scan_checkpoints()
    assert [read_meta(p)["num_timesteps"] for p in intact] == [400]
    assert [s.directory for s in skipped] == [run.checkpoint(100)]
    messages = capsys.readouterr().out.splitlines()
    assert len(messages) == 1 and "not valid JSON" in messages[0]  # reported once


# --------------------------------------------------------------------------------------------
# Item 7: signals, the missing final comparison
# --------------------------------------------------------------------------------------------
def test_sigterm_saves_a_checkpoint_like_ctrl_c(tmp_path: Path) -> None:
    data = tiny(total_timesteps=200_000, checkpoint={"save_freq": 0})
    proc = popen_train(tmp_path, write_config(tmp_path, data))
    run = RunPaths(tmp_path / "run")
    wait_for_file(run.evaluations, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out + err
    assert "SIGTERM: stopping after this step" in out and "Traceback" not in err
    (saved,) = run.list_checkpoints()
    step = read_meta(saved)["num_timesteps"]
    assert resume(run.root, step + 96, progress=False, log=quiet).num_timesteps >= step + 96


def interrupting(times: int) -> object:
    """A progress report that sends Ctrl-C ``times`` times to this process when training
    starts (each handled before the next is sent)."""

    def report(step: int, metrics: dict) -> None:
        if step == 0 and not metrics:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)

    return report


def test_a_second_ctrl_c_says_the_save_is_under_way_and_a_third_aborts(tmp_path: Path) -> None:
    config = validate_config(tiny())
    handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    messages: list[str] = []
    try:
        result = train(config, tmp_path / "a", progress=False, log=messages.append,
                       report=interrupting(2))  # fmt: skip
    except KeyboardInterrupt:
        pytest.fail("the second Ctrl-C aborted without saving")
    assert result.interrupted and result.stop_signal == signal.SIGINT
    assert any("being saved" in m for m in messages), messages
    (saved,) = RunPaths(tmp_path / "a").list_checkpoints()
    assert read_meta(saved)["num_timesteps"] == result.num_timesteps > 0
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == handlers  # restored

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "b", progress=False, log=quiet, report=interrupting(3))
    assert not RunPaths(tmp_path / "b").list_checkpoints()
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == handlers


def test_resume_completes_a_final_comparison_cut_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tiny(eval={"final_episodes": 2, "final_scenarios": ["hit_product"]})
    run = RunPaths(tmp_path / "run")

    def ctrl_c_midway(paths: RunPaths, *args: object) -> None:
        paths.eval.mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "compare_run", ctrl_c_midway)
    with pytest.raises(KeyboardInterrupt):
        train(validate_config(data), run.root, progress=False, log=quiet)
    monkeypatch.undo()
    assert run.final.is_dir() and not run.report.exists()

    messages: list[str] = []
    result = resume(run.root, progress=False, log=messages.append)
    assert "completing its final comparison" in messages[0]
    assert result.comparison and not result.interrupted
    assert "run" in {
        row["policy"] for row in json.loads((run.eval / "leaderboard.json").read_text())
    }
    assert run.report.is_file()
    with pytest.raises(ValueError, match="already at step"):
        resume(run.root, progress=False, log=quiet)


def test_ctrl_c_as_training_ends_keeps_final_and_leaves_the_comparison_to_resume(
    tmp_path: Path,
) -> None:
    data = tiny(eval={"final_episodes": 2, "final_scenarios": ["hit_product"]})
    run = RunPaths(tmp_path / "run")

    def ctrl_c_at_the_end(step: int, metrics: dict) -> None:
        if step >= 192:  # the report of training's end, before final/ is saved
            os.kill(os.getpid(), signal.SIGINT)

    messages: list[str] = []
    result = train(validate_config(data), run.root, progress=False, log=messages.append,
                   report=ctrl_c_at_the_end)  # fmt: skip
    assert result.interrupted and result.checkpoint == run.final and result.comparison is None
    assert any("final comparison runs with" in m for m in messages), messages
    assert read_meta(run.final)["num_timesteps"] == 192 and not run.report.exists()

    result = resume(run.root, progress=False, log=quiet)
    assert result.comparison and run.report.is_file()


def test_a_resumed_runs_event_file_sorts_after_the_previous_ones(tmp_path: Path) -> None:
    """TensorBoard reads event files in name order, which starts with the creation second: the
    resumed run's writer starts only once the clock is past the newest file's second."""
    import time

    run = RunPaths(tmp_path / "run")
    run.tensorboard.mkdir(parents=True)
    now = int(time.time())
    (run.tensorboard / f"events.out.tfevents.{now}.host.99999.0").touch()
    training._wait_past_event_files(run)
    assert int(time.time()) > now
    assert (
        f"events.out.tfevents.{int(time.time())}.host.1.0"
        > f"events.out.tfevents.{now}.host.99999.0"
    )
