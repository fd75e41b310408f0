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


def check_policy_runs_anywhere(run_dir: Path, model_class: str, horizon_hours: int) -> None:
    """A trained run of a PPO-format algorithm that does not resume (dagger, ars): its policy
    loads as ``model_class``, evaluates, exports to ONNX with parity to ``predict`` (1e-5), and
    its model refuses to continue."""
    import numpy as np

    from budgetgym.agents.evaluation import evaluate
    from budgetgym.agents.export import OnnxPolicy, export_onnx
    from budgetgym.agents.policy import load_policy
    from budgetgym.envs import BatchedCampaigns

    policy = load_policy(str(run_dir))
    assert type(policy.model).__name__ == model_class
    summary = evaluate(policy, "hit_product", 8, progress=False, horizon_hours=horizon_hours)
    assert summary.summary["episodes"] == 8 and summary.summary["gmv_mean"] > 0
    onnx_path = export_onnx(run_dir)
    campaigns = BatchedCampaigns("hit_product", horizon_hours=horizon_hours)
    obs, _ = campaigns.reset(np.arange(1_000_000, 1_000_064))
    expected, _ = policy.predict(obs)
    actual, _ = OnnxPolicy(onnx_path).predict(obs)
    assert np.abs(actual - expected).max() <= 1e-5
    with pytest.raises(ValueError, match="does not resume"):
        policy.model.learn(96, reset_num_timesteps=False)
