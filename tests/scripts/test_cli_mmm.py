"""The ``mmm_static`` rule on the command line: ``mmm-fit`` and the curves ``evaluate`` shows."""

from __future__ import annotations

import json
from pathlib import Path

from budgetgym.agents.mmm import load_fits
from budgetgym.scripts.cli import main


def test_evaluate_shows_and_writes_the_fitted_curves(tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval"
    options = ["--episodes", "2", "--horizon-hours", "6", "--no-progress", "--out", str(out)]
    code = main(["evaluate", "--policy", "mmm_static", "--scenario", "low_ctr_creative", *options])
    printed = capsys.readouterr().out
    assert code == 0, printed
    curves = load_fits().scenarios["low_ctr_creative"]
    assert "mmm_static's fitted curves on low_ctr_creative" in printed
    for row in curves.rows():
        line = next(text for text in printed.splitlines() if f" {row['channel']} " in text)
        assert f"{row['beta']:.3f}" in line and f"{row['ec']:.3f}" in line
        assert f"{row['s']:.3f}" in line and f"{row['r2']:.3f}" in line
    written = json.loads((out / "mmm_curves.json").read_text())
    assert written["scenario"] == "low_ctr_creative" and written["curves"] == curves.rows()
    assert (out / "mmm_curves.png").stat().st_size > 0


def test_mmm_fit_writes_a_file_the_rule_loads(tmp_path: Path, capsys) -> None:
    path = tmp_path / "fits.json"
    code = main(["mmm-fit", "--scenarios", "hit_product", "--campaigns", "16", "--out", str(path)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    fits = load_fits(path)
    assert list(fits.scenarios) == ["hit_product"] and fits.campaigns == 16
    assert "search" in printed and str(path) in printed


def test_mmm_fit_refuses_seeds_outside_training(tmp_path: Path, capsys) -> None:
    path = tmp_path / "fits.json"
    code = main(["mmm-fit", "--scenarios", "hit_product", "--seed-start", "899990",
                 "--campaigns", "16", "--out", str(path)])  # fmt: skip
    assert code == 2
    assert "leaves the training seeds" in capsys.readouterr().out
    assert not path.exists()
