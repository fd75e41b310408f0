"""scripts/bench_imitation_gap.py: what each student reads, and the figures it writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from budgetgym.agents.config import load_config
from budgetgym.agents.privileged import privileged_dim, privileged_features
from budgetgym.envs.campaigns import BatchedCampaigns
from budgetgym.envs.scenarios import EVAL_SEED_START
from budgetgym.scripts import bench_imitation_gap

HOURS = 24
TINY = [
    "env.scenario=hit_product", "env.scenario_weights=null", f"env.horizon_hours={HOURS}",
    "imitation.bc_campaigns=16", "imitation.iterations=1", "imitation.campaigns_per_iteration=8",
    "imitation.epochs=3",
]  # fmt: skip


@pytest.mark.parametrize("privileged", [False, True])
def test_only_the_privileged_student_reads_the_true_parameters(privileged: bool):
    config = load_config("dagger", dotlist=TINY)
    student = bench_imitation_gap.train_student(config, privileged, log=lambda _: None)
    campaigns = BatchedCampaigns("hit_product", horizon_hours=HOURS)
    obs, _ = campaigns.reset(EVAL_SEED_START + np.arange(3))
    student.reset(campaigns)
    inputs = student.inputs(obs, student.true_parameters)
    extra = privileged_dim(len(campaigns.channels)) if privileged else 0
    assert inputs.shape == (3, obs.shape[1] + extra)
    np.testing.assert_array_equal(inputs[:, : obs.shape[1]], student.normalizer(obs))
    if privileged:
        np.testing.assert_array_equal(
            inputs[:, obs.shape[1] :], privileged_features(campaigns.params)
        )
    action, _ = student.predict(obs)
    assert action.shape == (3, len(campaigns.channels) + 1) and np.all(np.abs(action) <= 1)


def test_writes_the_teacher_and_the_student_beside_planner_cc(tmp_path: Path, capsys):
    out = tmp_path / "gap.json"
    argv = ["--inputs", "privileged", "--set", *TINY, "--scenarios", "hit_product"]
    assert bench_imitation_gap.main([*argv, "--episodes", "4", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert (report["inputs"], report["seed_start"], report["episodes"]) == (
        "privileged", EVAL_SEED_START, 4,
    )  # fmt: skip
    (row,) = report["rows"]
    assert row["scenario"] == "hit_product"
    # The teacher acting through the env's action is the teacher, up to the capped hours.
    assert row["teacher_through_actions"]["pct_of_planner_cc"] == pytest.approx(100, abs=2)
    for name in ("teacher_through_actions", "privileged_student"):
        assert 0 <= row[name]["miss_pct"] <= 100 and row[name]["pct_of_planner_cc"] > 0
    assert "hit_product: planner_cc misses" in capsys.readouterr().out


def test_a_config_without_imitation_fails_clearly(capsys):
    assert bench_imitation_gap.main(["--inputs", "observation", "--config", "ppo_quick"]) == 2
    assert "has no imitation section" in capsys.readouterr().err
