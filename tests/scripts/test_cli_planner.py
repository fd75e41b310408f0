"""``budgetgym planner-cc-calibrate``: the file it writes, what it keeps, what it refuses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from budgetgym.agents.cc_calibration import load_calibration
from budgetgym.scripts.cli import main

SMALL = ["--campaigns", "4", "--kappas=-1,0,2"]


def test_calibrate_writes_a_file_planner_cc_loads_and_keeps_other_scenarios(
    tmp_path: Path, capsys
) -> None:
    path = tmp_path / "calibration.json"
    for scenario in ("hit_product", "low_ctr_creative"):
        code = main(["planner-cc-calibrate", "--scenarios", scenario, *SMALL, "--out", str(path)])
        printed = capsys.readouterr().out
        assert code == 0, printed
        assert scenario in printed and str(path) in printed
    calibration = load_calibration(path)
    assert set(calibration.curves) == {"hit_product", "low_ctr_creative"}
    assert calibration.campaigns == 4
    assert calibration.curves["hit_product"].kappa.tolist() == [-1.0, 0.0, 2.0]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--seed-start", "899999"], "leaves the training seeds"),
        (["--kappas", "0,1"], "at least 3 increasing numbers"),
        (["--kappas", "0,2,1"], "at least 3 increasing numbers"),
        (["--kappas", "0,a,1"], "comma-separated numbers"),
        (["--kappas=-20,0,1"], r"must lie in \[-10, 10\]"),
    ],
)
def test_calibrate_refuses_bad_options(tmp_path: Path, capsys, options, message) -> None:
    path = tmp_path / "calibration.json"
    args = ["planner-cc-calibrate", "--scenarios", "hit_product", *options, "--out", str(path)]
    code = main(args)
    assert code == 2
    assert re.search(message, capsys.readouterr().out)
    assert not path.exists()


def test_calibrate_refuses_an_output_it_could_not_keep_before_measuring(tmp_path: Path, capsys):
    """A file at --out that is not a calibration fails at once, not after hours of rollouts."""
    path = tmp_path / "calibration.json"
    path.write_text('{"format": "budgetgym-planner-cc-calibration/1"}')
    code = main(["planner-cc-calibrate", "--scenarios", "hit_product", *SMALL, "--out", str(path)])
    printed = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert code == 2
    assert "format must be 'budgetgym-planner-cc-calibration/2'" in printed
    assert "Move it away or write elsewhere with --out" in printed
    assert "hit_product seeds" not in printed  # nothing was measured
