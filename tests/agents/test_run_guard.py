"""Run guards (issue 23, items 3 and 5): one process per run directory, clean errors for sizes,
devices and unwritable or full disks, leftovers of interrupted checkpoint writes removed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from budgetgym.agents.checkpoints import (
    RunPaths,
    read_meta,
    remove_partial_checkpoints,
    save_checkpoint,
    write_json,
)
from budgetgym.agents.config import validate_config
from budgetgym.agents.limits import MAX_CAMPAIGNS, MAX_EPISODES, MAX_HORIZON_HOURS
from budgetgym.agents.runlock import LOCK_FILE, RunInUseError, run_lock
from tests.agents.tiny_runs import cli, tiny, write_config


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The CLI's error: exit code 2, no traceback, one ``error:`` line."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stdout + result.stderr
    return lines[0]


# --------------------------------------------------------------------------------------------
# Sizes and devices are checked when the config is read
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("section", "key", "value", "fragments"),
    [
        ("env", "n_envs", 10**9, ["env.n_envs: must be at most 65,536", "308 GB"]),
        ("env", "horizon_hours", 10**9, ["env.horizon_hours: must be at most 8,760", "144 GB"]),
        ("eval", "n_eval_episodes", 10**9, ["eval.n_eval_episodes must be at most", "TB"]),
        ("eval", "final_episodes", 10**9, ["eval.final_episodes: must be at most 10,000,000"]),
    ],
)
def test_sizes_past_their_bound_name_the_memory_they_would_need(
    section: str, key: str, value: int, fragments: list[str]
) -> None:
    data = tiny(**{section: {key: value}})
    if key == "n_envs":  # keep the rollout a multiple of the batch: only the bound fails
        data["hyperparams"]["batch_size"] = 24
    with pytest.raises(ValueError) as err:
        validate_config(data)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message
    assert ".." not in message


def test_sizes_at_their_bound_are_accepted() -> None:
    data = tiny(env={"horizon_hours": MAX_HORIZON_HOURS}, eval={"final_episodes": MAX_EPISODES})
    data["env"]["n_envs"] = MAX_CAMPAIGNS
    data["hyperparams"]["batch_size"] = 24
    config = validate_config(data)
    assert config.env.n_envs == MAX_CAMPAIGNS
    assert config.env.horizon_hours == MAX_HORIZON_HOURS


@pytest.mark.parametrize("device", ["banana", "meta", "cuda:x", ""])
def test_a_device_torch_cannot_train_on_is_refused_by_name(device: str) -> None:
    with pytest.raises(ValueError, match=rf"device: '{device}' is not a training device"):
        validate_config(tiny(device=device))


@pytest.mark.parametrize("device", ["cpu", "auto", "cuda", "cuda:1", "mps"])
def test_training_device_names_pass_the_schema(device: str) -> None:
    assert validate_config(tiny(device=device)).device == device


def test_train_refuses_a_device_this_machine_lacks_before_any_work(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    config = write_config(tmp_path, tiny(device="cuda"))
    result = cli("train", "--config", str(config), "--run-dir", "run", cwd=tmp_path)
    assert "device 'cuda' is not available" in one_line_error(result)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        (["--episodes", "1000000000"], "--episodes must be at most 10,000,000"),
        (["--batch-size", "1000000000"], "--batch-size must be at most 65,536"),
        (["--horizon-hours", "1000000000"], "--horizon-hours must be at most 8,760"),
    ],
)
def test_evaluate_bounds_its_sizes_before_any_work(
    tmp_path: Path, option: list[str], fragment: str
) -> None:
    result = cli("evaluate", "--policy", "uniform", "--out", "ev", *option, cwd=tmp_path)
    line = one_line_error(result)
    assert fragment in line and "would need" in line
    assert not (tmp_path / "ev").exists()


# --------------------------------------------------------------------------------------------
# One process per run directory
# --------------------------------------------------------------------------------------------
def start_training(tmp_path: Path, run: str = "run") -> subprocess.Popen:
    """A long training run in a subprocess, under way once its first validation is written."""
    config = write_config(tmp_path, tiny(total_timesteps=10_000_000))
    proc = subprocess.Popen(
        [sys.executable, "-m", "budgetgym.scripts.cli", "train", "--config", str(config),
         "--run-dir", run, "--no-progress"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "400"},
    )  # fmt: skip
    evaluations = RunPaths(tmp_path / run).evaluations
    deadline = time.monotonic() + 300
    while not evaluations.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"training never validated (exit code {proc.returncode}):\n{out}{err}")
        time.sleep(0.2)
    return proc


@pytest.mark.slow
def test_a_run_in_use_refuses_a_second_process_and_names_the_holder(tmp_path: Path) -> None:
    holder = start_training(tmp_path)
    holder.send_signal(signal.SIGSTOP)  # it keeps its lock, and leaves the cores to the others

    def listing() -> list[str]:
        # A holder stopped mid-save leaves its own staging files (.NAME.tmp-PID) behind.
        own = (f".tmp-{holder.pid}", f".old-{holder.pid}")
        return sorted(p.name for p in (tmp_path / "run").iterdir() if not p.name.endswith(own))

    try:
        before = listing()
        recorded = {n: (tmp_path / "run" / n).read_bytes() for n in ("config.yaml", "command.txt")}
        resumed = cli("train", "--resume", "run", "--total-timesteps", "20000000", cwd=tmp_path)
        line = one_line_error(resumed)
        assert f"Run directory run is in use by process {holder.pid}" in line
        assert "--run-dir run" in line  # the holder's command
        config = tmp_path / "tiny.yaml"
        fresh = cli("train", "--config", str(config), "--run-dir", "run", cwd=tmp_path)
        assert f"in use by process {holder.pid}" in one_line_error(fresh)
        assert listing() == before
        assert {n: (tmp_path / "run" / n).read_bytes() for n in recorded} == recorded
    finally:
        holder.send_signal(signal.SIGINT)
        holder.send_signal(signal.SIGCONT)
        holder.communicate(timeout=120)
    assert holder.returncode == 130
    # The holder is gone: its lock went with it, and the run can be resumed.
    step = max(read_meta(p)["num_timesteps"] for p in RunPaths(tmp_path / "run").list_checkpoints())
    resumed = cli("train", "--resume", "run", "--total-timesteps", str(step + 96),
                  "--no-progress", cwd=tmp_path)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr


def test_kill_9_releases_the_lock(tmp_path: Path) -> None:
    holder = start_training(tmp_path)
    holder.kill()
    holder.communicate(timeout=60)
    with run_lock(tmp_path / "run"):
        pass


def test_the_lock_excludes_a_second_holder_in_the_same_process(tmp_path: Path) -> None:
    with run_lock(tmp_path) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
        with pytest.raises(RunInUseError, match=rf"in use by process {os.getpid()} "):
            with run_lock(tmp_path):
                pass
    with run_lock(tmp_path):  # released on exit
        pass


def test_the_lock_names_no_pid_while_the_holder_has_not_written_it(tmp_path: Path) -> None:
    import fcntl

    with open(tmp_path / LOCK_FILE, "w") as handle:  # a holder that has not written yet
        fcntl.flock(handle, fcntl.LOCK_EX)
        with pytest.raises(RunInUseError, match="in use by another process"):
            with run_lock(tmp_path):
                pass


def test_resuming_a_checkpoint_folder_takes_its_runs_lock(tmp_path: Path) -> None:
    from budgetgym.agents.training import resume

    run = trained_run(tmp_path)
    with run_lock(run.root):
        with pytest.raises(RunInUseError, match=f"Run directory {run.root} is in use"):
            resume(run.list_checkpoints()[-1], total_timesteps=288, progress=False)
    assert not (run.checkpoints / run.list_checkpoints()[-1].name / LOCK_FILE).exists()


# --------------------------------------------------------------------------------------------
# Leftovers of interrupted writes, failed writes, unwritable folders
# --------------------------------------------------------------------------------------------
def trained_run(tmp_path: Path) -> RunPaths:
    from budgetgym.agents.training import train

    train(validate_config(tiny()), tmp_path / "run", progress=False, log=lambda _: None)
    return RunPaths(tmp_path / "run")


def test_leftovers_of_interrupted_writes_are_cleared_when_a_run_starts(tmp_path: Path) -> None:
    from budgetgym.agents.training import resume

    run = trained_run(tmp_path)
    newest = run.list_checkpoints()[-1]
    partial = newest.with_name(f".step_000000288.tmp-{4242}")  # killed while writing model.zip
    partial.mkdir()
    (partial / "model.zip").write_bytes(b"PK")
    stray_json = run.root / ".versions.json.tmp-4242"
    stray_json.write_text("{")
    # Killed between moving best/ aside and moving the new one in: best/ is missing.
    best_step = read_meta(run.best)["num_timesteps"]
    run.best.rename(run.root / ".best.old-4242")

    resume(run.root, total_timesteps=288, progress=False, log=lambda _: None)

    assert not partial.exists() and not stray_json.exists()
    assert not (run.root / ".best.old-4242").exists()
    assert read_meta(run.best)["num_timesteps"] >= best_step  # restored, then kept up to date
    hidden = [p.name for d in (run.root, run.checkpoints) for p in d.glob(".*")]
    assert hidden == [LOCK_FILE]


def test_remove_partial_checkpoints_keeps_the_newest_complete_version(tmp_path: Path) -> None:
    run = trained_run(tmp_path)
    final_step = read_meta(run.final)["num_timesteps"]
    complete = run.root / ".final.tmp-77"  # written in full, not yet renamed into place
    run.final.rename(complete)
    old = run.root / ".final.old-77"
    old.mkdir()

    actions = remove_partial_checkpoints(run.root)

    assert read_meta(run.final)["num_timesteps"] == final_step
    assert not complete.exists() and not old.exists()
    assert actions == [f"restored {run.final} from .final.tmp-77", f"removed {old}"]


@pytest.mark.parametrize(
    "failure",
    [
        OSError(28, "No space left on device"),
        RuntimeError(
            "[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0: "
            "PytorchStreamWriter failed writing file data/0: file write failed"
        ),
    ],
)
def test_a_failed_checkpoint_write_is_one_oserror_and_leaves_no_temporary_folder(
    tmp_path: Path, failure: BaseException
) -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    from budgetgym.envs import BudgetVecEnv

    venv = VecNormalize(BudgetVecEnv(2, horizon_hours=4))
    model = PPO("MlpPolicy", venv, n_steps=4, batch_size=8, device="cpu", seed=0)
    target = tmp_path / "run" / "best"
    save_checkpoint(model, venv, target)

    def full_disk(path: object, *args: object, **kwargs: object) -> None:
        Path(str(path)).write_bytes(b"partial")
        raise failure

    model.save = full_disk  # type: ignore[method-assign]
    model.num_timesteps = 96
    with pytest.raises(OSError, match=r"Could not write checkpoint .*best \(.*\); the previous"):
        save_checkpoint(model, venv, target)
    assert [p.name for p in target.parent.iterdir()] == ["best"]
    assert read_meta(target)["num_timesteps"] == 0  # the previous checkpoint is intact


def test_json_writes_use_a_temporary_file_of_their_own(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "versions.json"
    other = tmp_path / "versions.json.tmp"  # another writer's temporary file, mid-write
    other.write_text("another process")
    write_json(target, {"ok": 1})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert other.read_text() == "another process"

    def full_disk(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_json(target, {"ok": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["versions.json", "versions.json.tmp"]


@contextlib.contextmanager
def mounted_tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs at ``path`` (root only; the test is skipped elsewhere)."""
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)])
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_stops_training_with_one_line_and_no_leftovers(tmp_path: Path) -> None:
    config = write_config(tmp_path, tiny())
    with mounted_tmpfs(tmp_path / "disk", "size=200k") as disk:
        result = cli("train", "--config", str(config), "--run-dir", str(disk / "run"),
                     "--no-progress", cwd=tmp_path)  # fmt: skip
        line = one_line_error(result)
        assert "Could not write checkpoint" in line and "No space left on device" in line
        leftovers = [p.name for p in disk.rglob(".*") if p.name != LOCK_FILE]
        assert leftovers == []


def test_training_into_a_read_only_folder_fails_before_any_work(tmp_path: Path) -> None:
    config = write_config(tmp_path, tiny())
    with mounted_tmpfs(tmp_path / "disk", "size=64m") as disk:
        trained = cli("train", "--config", str(config), "--run-dir", str(disk / "run"),
                      "--no-progress", cwd=tmp_path)  # fmt: skip
        assert trained.returncode == 0, trained.stdout + trained.stderr
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        for args in (["--resume", str(disk / "run"), "--total-timesteps", "384"],
                     ["--config", str(config), "--run-dir", str(disk / "new")]):  # fmt: skip
            result = cli("train", *args, cwd=tmp_path)
            assert "is not writable" in one_line_error(result)
            assert "Compiling" not in result.stdout
        assert read_meta(RunPaths(disk / "run").final)["num_timesteps"] == 192
