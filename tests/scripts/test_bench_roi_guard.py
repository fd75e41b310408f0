"""scripts/bench_roi_guard.py: the guard's action, its settings, and the figures it writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from budgetgym.agents.channel_set import DEFAULT_CHANNEL_SET
from budgetgym.envs.scenarios import EVAL_SEED_START
from budgetgym.scripts import bench_roi_guard
from budgetgym.scripts.bench_roi_guard import Guard, GuardedPolicy

LAYOUT = DEFAULT_CHANNEL_SET.layout


class FixedAction:
    """A policy that always returns ``action``."""

    name = "fixed"

    def __init__(self, action: np.ndarray) -> None:
        self.action = action

    def reset(self, campaigns) -> None:
        pass

    def predict(self, obs, *args, **kwargs):
        return np.tile(self.action, (len(obs), 1)), None


def _obs(progress: float, log_matured_roi: float) -> np.ndarray:
    obs = np.zeros((1, DEFAULT_CHANNEL_SET.obs_dim), dtype=np.float32)
    obs[0, LAYOUT.index("progress")] = progress
    obs[0, LAYOUT.index("log_matured_roi")] = log_matured_roi
    return obs


def _guarded(guard: Guard, action: np.ndarray) -> GuardedPolicy:
    policy = GuardedPolicy(FixedAction(action), guard)
    policy._channels = DEFAULT_CHANNEL_SET  # as reset(campaigns) sets it
    return policy


def test_the_guard_cuts_the_pace_only_late_and_below_its_threshold():
    action = np.array([0.0, 0.3, -0.2, 0.1, 0.0, -1.0, 1.0])  # even pacing
    policy = _guarded(Guard(tau=0.1, gain=2.0, after=0.5), action)
    for progress, matured in ((0.4, -1.0), (0.6, 0.1), (0.6, 0.5)):
        out, _ = policy.predict(_obs(progress, matured))
        np.testing.assert_allclose(out[0], action, atol=1e-12)  # early, or at/above tau
    out, _ = policy.predict(_obs(0.6, -0.4))
    pace = (4.0 ** out[0, 0] - 0.25) / 0.75
    assert pace == pytest.approx(np.exp(2.0 * (-0.4 - 0.1)))  # even pacing times the factor
    np.testing.assert_array_equal(out[0, 1:], action[1:])  # the split is the student's


def test_a_guard_is_three_numbers_in_range():
    assert Guard.parse("0.05:8:0.75") == Guard(0.05, 8.0, 0.75)
    for bad in ("0.1:8", "a:1:0", "0:-1:0.5", "0:1:1.5", "nan:1:0"):
        with pytest.raises(ValueError, match="TAU"):
            Guard.parse(bad)


def test_writes_the_student_and_each_guard_beside_planner_cc(tmp_path: Path, capsys):
    out = tmp_path / "guard.json"
    argv = ["obs_pacing", "--guards", "0:3:0.5", "--scenarios", "hit_product", "--episodes", "4"]
    assert bench_roi_guard.main([*argv, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert (report["seed_start"], report["episodes"]) == (EVAL_SEED_START, 4)
    (row,) = report["rows"]
    assert set(row) == {"scenario", "planner_cc_miss_pct", "student", "guard 0:3:0.5"}
    for name in ("student", "guard 0:3:0.5"):
        assert 0 <= row[name]["miss_pct"] <= 100 and row[name]["pct_of_planner_cc"] > 0
    assert "hit_product: planner_cc misses" in capsys.readouterr().out


def test_bad_input_is_refused_before_any_rollout(capsys):
    assert bench_roi_guard.main(["obs_pacing", "--guards", "0:3"]) == 2
    assert bench_roi_guard.main(["planner", "--scenarios", "hit_product"]) == 2
    assert "plans spend" in capsys.readouterr().err
