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
        (["--workers", "0"], "--workers must be >= 1"),
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


def test_calibrate_keeps_curves_written_while_it_measured(tmp_path: Path, capsys, monkeypatch):
    """Two commands measuring different scenarios side by side into one file: the one that
    finishes last keeps the curves the other wrote meanwhile."""
    from budgetgym.agents import cc_sweep

    path = tmp_path / "calibration.json"
    measure = cc_sweep.calibrate

    def beside(scenarios, *args, **kwargs):
        monkeypatch.setattr(cc_sweep, "calibrate", measure)  # the other command measures once
        main(
            ["planner-cc-calibrate", "--scenarios", "low_ctr_creative", *SMALL, "--out", str(path)]
        )
        return measure(scenarios, *args, **kwargs)

    monkeypatch.setattr(cc_sweep, "calibrate", beside)
    code = main(["planner-cc-calibrate", "--scenarios", "hit_product", *SMALL, "--out", str(path)])
    assert code == 0, capsys.readouterr().out
    assert set(load_calibration(path).curves) == {"hit_product", "low_ctr_creative"}
