"""scripts/bench_roi_guard.py: the figures it writes, and the input it refuses."""

from __future__ import annotations

import json
from pathlib import Path

from budgetgym.envs.scenarios import EVAL_SEED_START
from budgetgym.scripts import bench_roi_guard


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
    assert "TAU:GAIN:AFTER" in capsys.readouterr().err
    assert bench_roi_guard.main(["planner", "--scenarios", "hit_product"]) == 2
    assert "plans spend" in capsys.readouterr().err
