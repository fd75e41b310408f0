"""``budgetgym scenario list|show`` and scenario files on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from budgetgym.envs import SCENARIO_NAMES, resolve_scenario, scenario_description
from budgetgym.envs.scenario_specs import load_scenario_file
from budgetgym.scripts.cli import main


@pytest.mark.parametrize("verb", [["scenario", "list"], ["list-scenarios"]])
def test_list_names_every_scenario_with_its_description(verb, capsys) -> None:
    assert main(verb) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(SCENARIO_NAMES)
    assert lines[-1] == f"mixed  {scenario_description('mixed')}"


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_show_prints_a_file_that_loads_back_to_the_scenario(name, tmp_path, capsys) -> None:
    assert main(["scenario", "show", name]) == 0
    path = tmp_path / "shown.yaml"
    path.write_text(capsys.readouterr().out)
    spec = resolve_scenario(name)
    assert load_scenario_file(path) == getattr(spec, "spec", spec)


def test_show_takes_a_path_and_fills_in_defaults(tmp_path, capsys) -> None:
    channel = resolve_scenario("hit_product").channels[0].model_dump()
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"name": "mine", "description": "d", "channels": [channel]}))
    assert main(["scenario", "show", str(path)]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["name"] == "mine" and shown["target_roi"] == [2.0, 3.0]
    assert shown["model"]["volume_budget_exponent"] == 0.9 and shown["events"] == []


def test_show_refuses_a_bad_file_or_name_in_one_message(tmp_path, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ndescription: d\nchannels: []\nhorizon: 24\n")
    assert main(["scenario", "show", str(path)]) == 2
    # Without whitespace: the console wraps a long path anywhere, even inside its name.
    out = "".join(capsys.readouterr().out.split())
    assert f"{path}:horizon:unknownkey" in out and f"{path}:channels:" in out
    assert main(["scenario", "show", "mixd"]) == 2
    assert "Did you mean 'mixed'?" in " ".join(capsys.readouterr().out.split())


def test_train_records_a_scenario_path_as_absolute(tmp_path, monkeypatch) -> None:
    from budgetgym.scripts.cli_common import scenario_argument

    monkeypatch.chdir(tmp_path)
    assert scenario_argument("mixed") == "mixed"
    assert scenario_argument(None) is None
    assert scenario_argument("files/mine.yaml") == str(tmp_path / "files" / "mine.yaml")
    assert Path(scenario_argument("mine.yml")).is_absolute()


def test_evaluate_takes_a_scenario_file(tmp_path) -> None:
    path = tmp_path / "my_promo.yaml"
    path.write_text(
        resolve_scenario("double11_promotion").to_yaml().replace("double11_promotion", "my_promo")
    )
    common = ["--episodes", "2", "--horizon-hours", "6", "--no-progress"]
    out = tmp_path / "eval"
    assert (
        main(
            ["evaluate", "--policy", "uniform", "--scenario", str(path), "--out", str(out), *common]
        )
        == 0
    )
    assert json.loads((out / "summary.json").read_text())["episodes"] == 2
