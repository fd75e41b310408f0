"""Run guards (issue 23, items 3 and 5): one process per run directory, clean errors for sizes,
devices and unwritable or full disks, leftovers of interrupted checkpoint writes removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from budgetgym.agents.config import validate_config
from budgetgym.agents.limits import MAX_CAMPAIGNS, MAX_EPISODES, MAX_HORIZON_HOURS

TINY = {
    "seed": 0,
    "total_timesteps": 192,
    "env": {"scenario": "hit_product", "n_envs": 4, "horizon_hours": 24},
    "hyperparams": {"n_steps": 24, "batch_size": 48, "n_epochs": 1},
    "eval": {"eval_freq": 96, "n_eval_episodes": 4, "references": False, "final_episodes": 0},
    "checkpoint": {"save_freq": 96, "keep_last": 2},
}


def tiny(**changes: dict) -> dict:
    data = json.loads(json.dumps(TINY))
    for section, values in changes.items():
        if isinstance(values, dict):
            data[section] = {**data.get(section, {}), **values}
        else:
            data[section] = values
    return data


def write_config(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def cli(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "400"}
    return subprocess.run(
        [sys.executable, "-m", "budgetgym.scripts.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


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
