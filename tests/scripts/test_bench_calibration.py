"""scripts/bench_calibration.py: what it measures and the table it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from budgetgym.scripts import bench_calibration


def test_writes_the_figures_and_an_honest_table(tmp_path: Path) -> None:
    out = tmp_path / "calibration.json"
    argv = ["--episodes", "2", "--scenarios", "hit_product", "--json", str(out)]
    assert bench_calibration.main(argv) == 0
    report = json.loads(out.read_text())
    figures = report["scenarios"]["hit_product"]
    assert 0.0 < figures["delay_within_1h"] < figures["delay_within_24h"] <= 1.0
    assert 0.0 < figures["public_live_share"] < 1.0
    assert 0.0 <= figures["repeat_buyer_share"] < 1.0
    assert figures["planner_roi"] > 0.0
    gain = figures["planner_gmv"] / figures["uniform_gmv"] - 1.0
    assert figures["gain_over_manual"] == pytest.approx(gain)
    table = out.with_suffix(".md").read_text()
    assert "matches?" in table and "Chapelle" in table
    assert "product acceleration" in table  # hit_product is its scenario
    assert "new-customer acquisition" not in table  # its scenario was not measured


def test_pulse_spends_only_in_the_first_hour() -> None:
    from budgetgym.agents.evaluation import rollout
    from budgetgym.envs.campaigns import BatchedCampaigns

    _, trace = rollout(
        bench_calibration.SpendPulse(), BatchedCampaigns("hit_product", horizon_hours=6), [1, 2]
    )
    assert (trace["spend_cny"][:, 0].sum(axis=1) > 0).all()
    assert (trace["spend_cny"][:, 1:] == 0).all()
