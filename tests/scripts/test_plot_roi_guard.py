"""scripts/plot_roi_guard.py: the figure from bench_roi_guard.py's reports, and bad reports."""

from __future__ import annotations

import json
from pathlib import Path

from budgetgym.scripts import plot_roi_guard


def _report(path: Path, guards: list[str], scenarios=("hit_product", "mixed")) -> Path:
    def cell(gmv: float, miss: float) -> dict:
        return {"pct_of_planner_cc": gmv, "miss_pct": miss}

    rows = [
        {"scenario": s, "planner_cc_miss_pct": 6.0, "student": cell(97.0, 28.0),
         **{g: cell(95.0 - i, 12.0 - i) for i, g in enumerate(guards)}}
        for s in scenarios
    ]  # fmt: skip
    path.write_text(json.dumps({"student": "run", "guards": guards, "rows": rows}))
    return path


def test_draws_every_seeds_report(tmp_path: Path, capsys):
    guards = ["guard 0:3:0.75", "guard 0.05:8:0.75"]
    reports = [_report(tmp_path / f"s{s}.json", guards) for s in range(2)]
    out = tmp_path / "plots" / "guard.png"
    assert plot_roi_guard.main([*map(str, reports), "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    assert f"Wrote {out}" in capsys.readouterr().out


def test_reports_of_other_guards_or_not_reports_are_refused(tmp_path: Path, capsys):
    a = _report(tmp_path / "a.json", ["guard 0:3:0.75"])
    b = _report(tmp_path / "b.json", ["guard 0.1:3:0"])
    c = _report(tmp_path / "c.json", ["guard 0:3:0.75"], scenarios=("mixed",))
    out = tmp_path / "guard.png"
    for other in (b, c):
        assert plot_roi_guard.main([str(a), str(other), "--out", str(out)]) == 2
        assert "other scenarios or guards" in capsys.readouterr().err
    (tmp_path / "d.json").write_text("{}")
    assert plot_roi_guard.main([str(tmp_path / "d.json"), "--out", str(out)]) == 2
    assert "is not a bench_roi_guard.py report" in capsys.readouterr().err
    assert not out.exists()


def _planner_report(path: Path, reveal: list[str], scenarios=("hit_product",)) -> Path:
    ladder = {
        k: {
            knows: {"pct_of_planner_cc": 99.0 - i, "miss_pct": 20.0 - 5 * i}
            for knows in ("true", "population")
        }
        for i, k in enumerate(("0", "4"))
    }
    rows = [{"scenario": s, "kappas": ladder} for s in scenarios]
    path.write_text(json.dumps({"reveal": reveal, "rows": rows}))
    return path


def test_draws_the_planner_margins_of_the_scenarios_measured(tmp_path: Path):
    report = _report(tmp_path / "s0.json", ["guard 0:3:0.75"])
    planners = _planner_report(tmp_path / "planners.json", [])
    ladders = plot_roi_guard.read_planner_reports([planners])
    assert set(ladders) == {"hit_product"}  # mixed's panel draws the guards alone
    assert ladders["hit_product"]["true"] == [(20.0, 99.0), (15.0, 98.0)]
    out = tmp_path / "guard.png"
    assert plot_roi_guard.main([str(report), "--planners", str(planners), "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")


def test_a_planner_report_with_revealed_fields_or_not_one_is_refused(tmp_path: Path, capsys):
    report = _report(tmp_path / "s0.json", ["guard 0:3:0.75"])
    out = tmp_path / "guard.png"
    revealed = _planner_report(tmp_path / "revealed.json", ["cvr_new"])
    (tmp_path / "other.json").write_text(json.dumps({"reveal": [], "rows": [{"scenario": "x"}]}))
    for bad, message in ((revealed, "reveals cvr_new"), (tmp_path / "other.json", "is not a")):
        assert plot_roi_guard.main([str(report), "--planners", str(bad), "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert not out.exists()
