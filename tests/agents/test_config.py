"""Experiment configs: bundled files validate, bad keys and types fail with the key's name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from budgetgym.agents.algorithms import ALGORITHMS
from budgetgym.agents.config import (
    EXPERIMENTS_DIR,
    TrainConfig,
    load_config,
    parse_dotlist,
    validate_config,
)
from budgetgym.agents.hyperparams import OWN_FIELDS, SACParams
from budgetgym.envs import resolve_scenario


def write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("path", sorted(EXPERIMENTS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_bundled_configs_validate(path: Path) -> None:
    config = load_config(path)
    assert config.total_timesteps > 0
    # The resolved YAML loads back to the same config.
    assert TrainConfig.model_validate(yaml.safe_load(config.to_yaml())) == config


def test_default_config_trains_ppo_on_mixed_and_more_cold_starts() -> None:
    config = load_config("ppo_default")
    assert config.algorithm == "ppo"
    assert config.env.scenarios == ("mixed", "new_product_cold_start")
    assert config.env.campaigns_per_scenario == (48, 16)


def test_scientific_notation_is_a_number(tmp_path: Path) -> None:
    path = write(tmp_path, "total_timesteps: 1e6\nhyperparams:\n  learning_rate: 3e-4\n")
    config = load_config(path)
    assert config.total_timesteps == 1_000_000
    assert config.hyperparams.learning_rate == pytest.approx(3e-4)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_hyperparams_are_the_model_class_argument_names(name: str) -> None:
    import inspect

    spec = ALGORITHMS[name]
    sb3_args = set(inspect.signature(spec.model_class().__init__).parameters)
    ours = set(spec.hyperparams.model_fields) - OWN_FIELDS
    assert ours <= sb3_args, ours - sb3_args


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        ({"env": {"scenaro": "mixed"}}, ["env.scenaro", "unknown key", "'scenario'"]),
        ({"hyperparams": {"n_stepz": 8}}, ["hyperparams.n_stepz", "'n_steps'"]),
        ({"hyperparams": {"n_steps": "many"}}, ["hyperparams.n_steps", "integer", "'many'"]),
        ({"env": {"scenario": "mixd"}}, ["env.scenario", "'mixd'", "did you mean 'mixed'"]),
        ({"env": {"reward_mode": "revenue"}}, ["env.reward_mode", "'revenue'"]),
        ({"algorithm": "dqn"}, ["algorithm", "valid: ppo, sac, recurrent_ppo, dagger, ars"]),
        ({"total_timesteps": 2.5}, ["total_timesteps", "integer"]),
        ({"total_timesteps": -5}, ["total_timesteps", "greater than 0"]),
        ({"algorithm": "sac", "hyperparams": {"n_epochs": 3}}, ["hyperparams.n_epochs"]),
        (
            {"hyperparams": {"policy_kwargs": {"activaton_fn": "relu"}}},
            ["hyperparams.policy_kwargs.activaton_fn", "'activation_fn'"],
        ),
        ({"hyperparams": {"batch_size": 1000}}, ["batch_size (1000)", "factor of"]),
        ({"env": {"scenario": ["hit_product", "mixed"], "n_envs": 5}}, ["whole numbers"]),
        (
            {"env": {"scenario": ["hit_product", "mixed"], "scenario_weights": [3, 1, 1]}},
            ["3 weights for 2 scenarios"],
        ),
        (
            {"env": {"scenario": ["hit_product", "mixed"], "scenario_weights": [2, 1]}},
            ["n_envs (64)", "proportions [2, 1]"],
        ),
        ({"env": {"scenario_weights": [0]}}, ["env.scenario_weights.0", "greater than 0"]),
        ({"env": {"reward_shaping": "dense"}}, ["env.reward_shaping", "'dense_roi_penalty'"]),
        (
            {"env": {"reward_shaping": "dense_roi_penalty", "reward_mode": "gmv"}},
            ["dense_roi_penalty", "'gmv'"],
        ),
        (
            {"hyperparams": {"use_sde": True, "policy_kwargs": {"log_std_init_logits": -2}}},
            ["log_std_init_logits", "use_sde"],
        ),
        (
            {"algorithm": "sac", "hyperparams": {"policy_kwargs": {"log_std_init_logits": -2}}},
            ["log_std_init_logits", "PPO only"],
        ),
        ({"residual_base": "pid"}, ["residual_base", "'obs_pacing'"]),
        ({"env": {"roi_miss_penalty": float("inf")}}, ["env.roi_miss_penalty", "finite"]),
        ({"hyperparams": {"learning_rate": float("nan")}}, ["hyperparams.learning_rate", "finite"]),
        ({"env": {"roi_miss_penalty": -0.1}}, ["env.roi_miss_penalty", "greater than or equal"]),
        ({"env": {"paired_baseline": "pid_pacing"}}, ["env.paired_baseline", "'obs_pacing'"]),
        (
            {"hyperparams": {"policy_kwargs": {"exclude_features": ["log_cmp"]}}},
            ["hyperparams.policy_kwargs.exclude_features", "'log_cmp'", "'log_cpm'"],
        ),
        (
            {"env": {"paired_baseline": "obs_pacing", "twin_pays_roi_charge": True}},
            ["twin_pays_roi_charge", "dense_roi_penalty"],
        ),
    ],
)
def test_invalid_configs_name_the_key(data: dict, fragments: list[str]) -> None:
    with pytest.raises(ValueError) as err:
        validate_config(data)
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_yaml_errors_are_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(write(tmp_path, "env: [unclosed\n"))
    with pytest.raises(ValueError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(FileNotFoundError, match="bundled configs"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_take_precedence(tmp_path: Path) -> None:
    path = write(tmp_path, {"seed": 3, "total_timesteps": 1000})
    config = load_config(path, {"seed": 7, "total_timesteps": None})
    assert (config.seed, config.total_timesteps) == (7, 1000)


def test_set_overrides_nested_keys_lists_numbers_and_nulls(tmp_path: Path) -> None:
    path = write(tmp_path, {"env": {"scenario": "mixed"}, "hyperparams": {"target_kl": 0.02}})
    config = load_config(
        path,
        dotlist=[
            "env.scenario=[mixed, hit_product]",
            "hyperparams.learning_rate=1e-4",
            "hyperparams.policy_kwargs.net_arch={pi: [32], vf: [64, 64]}",
            "hyperparams.target_kl=null",
            "total_timesteps=2e6",
            "eval.references=false",
        ],
    )
    assert config.env.scenario == ("mixed", "hit_product")
    assert config.hyperparams.learning_rate == 1e-4
    assert config.hyperparams.policy_kwargs.net_arch == {"pi": (32,), "vf": (64, 64)}
    assert config.hyperparams.target_kl is None
    assert config.total_timesteps == 2_000_000 and isinstance(config.total_timesteps, int)
    assert config.eval.references is False
    assert config.env.n_envs == 64  # untouched keys keep the YAML's (here the default) value


def test_set_sits_between_the_yaml_and_the_dedicated_flags(tmp_path: Path) -> None:
    path = write(tmp_path, {"seed": 1, "total_timesteps": 1000})
    config = load_config(path, {"seed": 7}, dotlist=["seed=5", "total_timesteps=3000"])
    assert (config.seed, config.total_timesteps) == (7, 3000)
    assert parse_dotlist(["seed=1", "seed=2"]) == {"seed": 2}  # the last one wins


@pytest.mark.parametrize(
    ("item", "fragments"),
    [
        ("hyperparams.learnng_rate=1e-4", ["hyperparams.learnng_rate", "'learning_rate'"]),
        ("hyperparam.learning_rate=1e-4", ["hyperparam: unknown key", "'hyperparams'"]),
        ("env.scenario=[mixed, hit_prodcut]", ["env.scenario", "'hit_product'"]),
        ("env.n_envs.x=3", ["env.n_envs.x", "env.n_envs is 64, not a mapping"]),
        ("total_timesteps=2.5e6.1", ["total_timesteps", "'2.5e6.1'"]),
        ("learning_rate", ["'learning_rate' is not KEY=VALUE"]),
        ("env..scenario=mixed", ["'env..scenario=mixed' is not KEY=VALUE"]),
        ("env.scenario=[mixed", ["'env.scenario=[mixed'", "not YAML"]),
    ],
)
def test_a_bad_override_names_its_key(tmp_path: Path, item: str, fragments: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        load_config(write(tmp_path, {"env": {"n_envs": 64}}), dotlist=[item])
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_scenario_list_and_algorithms() -> None:
    config = validate_config(
        {
            "env": {"scenario": ["hit_product", "double11_promotion"], "n_envs": 4},
            "hyperparams": {"n_steps": 8, "batch_size": 16},
        }
    )
    assert config.env.scenarios == ("hit_product", "double11_promotion")
    assert config.env.campaigns_per_scenario == (2, 2)
    weighted = validate_config(
        {"env": {"scenario": ["mixed", "hit_product"], "scenario_weights": [3, 1]}}
    )
    assert weighted.env.campaigns_per_scenario == (48, 16)
    sac = validate_config({"algorithm": "sac"})
    assert isinstance(sac.hyperparams, SACParams)
    assert "buffer_size" in sac.sb3_kwargs()
    recurrent = validate_config({"algorithm": "recurrent_ppo"})
    assert "lstm_hidden_size" in recurrent.sb3_kwargs()["policy_kwargs"]


def test_configs_are_frozen() -> None:
    config = validate_config({})
    with pytest.raises(Exception):  # noqa: B017 (pydantic's ValidationError)
        config.seed = 3  # type: ignore[misc]


def test_a_scenario_file_is_accepted_where_a_name_is(tmp_path: Path) -> None:
    scenario = tmp_path / "my_scenario.yaml"
    scenario.write_text(resolve_scenario("hit_product").to_yaml().replace("hit_product", "mine"))
    config = validate_config(
        {
            "env": {"scenario": [str(scenario), "mixed"]},
            "eval": {"final_scenarios": [str(scenario)]},
        }
    )
    assert config.env.scenarios == (str(scenario), "mixed")
    scenario.write_text(scenario.read_text().replace("gross_margin_frac: 0.45", "gross_margin: 1"))
    with pytest.raises(ValueError) as err:
        validate_config({"env": {"scenario": str(scenario)}})
    for fragment in ("env.scenario", str(scenario), "gross_margin: unknown key"):
        assert fragment in str(err.value), str(err.value)
    with pytest.raises(ValueError, match="does not exist"):
        validate_config({"eval": {"final_scenarios": [str(tmp_path / "absent.yaml")]}})
