"""Helpers shared by the tests that train tiny runs: a config of a few hundred steps, the CLI
in a subprocess, and waiting on a file a run writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

#: A run of 192 steps: 4 campaigns of 24 hours, validation and a checkpoint every 96 steps.
TINY = {
    "seed": 0,
    "total_timesteps": 192,
    "env": {"scenario": "hit_product", "n_envs": 4, "horizon_hours": 24},
    "hyperparams": {"n_steps": 24, "batch_size": 48, "n_epochs": 1},
    "eval": {"eval_freq": 96, "n_eval_episodes": 4, "references": False, "final_episodes": 0},
    "checkpoint": {"save_freq": 96, "keep_last": 2},
}


def tiny(**changes: dict) -> dict:
    """:data:`TINY` with sections updated (a dict value) or replaced (any other value)."""
    data = json.loads(json.dumps(TINY))
    for section, values in changes.items():
        if isinstance(values, dict):
            data[section] = {**data.get(section, {}), **values}
        else:
            data[section] = values
    return data


def write_config(tmp_path: Path, data: dict, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def cli(*args: str, cwd: Path, timeout: float = 180, **kwargs) -> subprocess.CompletedProcess:
    """``budgetgym ARGS`` in a subprocess, on a console wide enough for one-line messages."""
    env = {**os.environ, "COLUMNS": "400"}
    return subprocess.run(
        [sys.executable, "-m", "budgetgym.scripts.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, **kwargs,
    )  # fmt: skip


def quiet(_: str) -> None:
    pass


def wait_for_file(path: Path, proc: subprocess.Popen, safety_net_s: float = 900.0) -> None:
    """Wait until the process writes ``path``; fail with its output if it ends first. The
    timeout only guards against a hung run (a cold compile on a busy machine is far shorter)."""
    deadline = time.monotonic() + safety_net_s
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"{path.name} never appeared (exit code {proc.returncode}):\n{out}{err}")
        time.sleep(0.2)
