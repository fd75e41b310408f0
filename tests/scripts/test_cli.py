"""The ``budgetgym`` command line: version, help, default output locations, compile notice."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

import budgetgym
from budgetgym.scripts import cli_common
from budgetgym.scripts.cli import build_parser
from budgetgym.scripts.cli_common import COMPILING_MESSAGE, CLIError, check_writable


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "budgetgym.scripts.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


def verbs() -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_version_needs_no_command() -> None:
    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"budgetgym {budgetgym.__version__}"


@pytest.mark.parametrize("name", sorted(verbs()))
def test_every_verb_describes_itself_and_shows_its_defaults(name: str) -> None:
    parser = verbs()[name]
    text = " ".join(parser.format_help().split())
    assert parser.description and " ".join(parser.description.split()) in text
    shown = [
        a
        for a in parser._actions
        if a.default not in (None, False, [], argparse.SUPPRESS) and a.help
    ]
    for action in shown:
        assert f"(default: {action.default})" in text, (name, action.dest)
    assert "(default: None)" not in text and "(default: False)" not in text


def test_evaluate_and_compare_write_under_runs_eval_by_default(tmp_path: Path) -> None:
    common = ("--episodes", "2", "--horizon-hours", "6", "--no-progress")
    done = run_cli("evaluate", "--policy", "uniform", "--scenario", "hit_product", *common,
                   cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (out,) = (tmp_path / "runs" / "eval").glob("uniform-*")
    assert json.loads((out / "summary.json").read_text())["episodes"] == 2
    assert str(out.relative_to(tmp_path)) in done.stdout
    done = run_cli("compare", "--scenarios", "hit_product", *common, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    (board,) = (tmp_path / "runs" / "eval").glob("compare-*")
    assert f"--out {board.relative_to(tmp_path)}" in (board / "leaderboard.md").read_text()
    assert str(board.relative_to(tmp_path)) in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_an_unwritable_output_fails_before_the_work(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CLIError, match="is a file"):
        check_writable(blocker / "eval")
    with pytest.raises(CLIError, match="it is a file"):
        check_writable(blocker)
    with pytest.raises(CLIError, match="it is a directory"):
        check_writable(tmp_path, directory=False)
    check_writable(tmp_path / "new" / "deeper")
    done = run_cli("evaluate", "--policy", "uniform", "--out", str(blocker), cwd=tmp_path)
    assert done.returncode == 2 and "is a file" in done.stdout and "Traceback" not in done.stderr


def test_set_is_refused_with_resume(tmp_path: Path) -> None:
    done = run_cli("train", "--resume", str(tmp_path), "--set", "seed=3", cwd=tmp_path)
    assert done.returncode == 2 and "--resume takes only --total-timesteps" in done.stdout


@pytest.mark.parametrize("cold", [True, False])
def test_compile_notice_only_on_a_cold_cache(cold: bool, monkeypatch) -> None:
    def fake_compile_kernels(batch_sizes, on_compile):  # noqa: ANN001, ANN202
        if cold:
            on_compile()
        return cold

    monkeypatch.setattr(cli_common, "compile_kernels", fake_compile_kernels)
    out = io.StringIO()
    cli_common.compile_simulator(Console(file=out, width=200), [8])
    printed = out.getvalue()
    assert printed.count(COMPILING_MESSAGE) == int(cold)
    assert ("Compiled the simulator's kernels in" in printed) == cold


def test_simulate_is_silent_about_compiling_on_a_warm_cache() -> None:
    from budgetgym.envs.compilation import compile_kernels

    compile_kernels((2,))  # fills numba's cache if this is the first use on the machine
    done = run_cli("simulate", "--campaigns", "2", "--scenario", "hit_product")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hit_product" in done.stdout and "Compiling" not in done.stdout
