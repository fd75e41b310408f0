"""Response curves of a marketing-mix model as a scenario: the fit and the simulated response."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import yaml

from budgetgym.envs import (
    CHANNEL_NAMES,
    EVAL_SEED_START,
    BatchedCampaigns,
    ResponseCurvesSpec,
    check_scenario,
    fit_curves,
    resolve_scenario,
)
from budgetgym.envs.response_curves import FIT_TOLERANCE, PLAIN_BASE
from budgetgym.envs.scenario_specs import ScenarioSpec, load_scenario_file

EXAMPLE = Path(str(resources.files("budgetgym.envs").joinpath("scenario_examples/mmm_weekly.yaml")))
#: The example's base: the plain market's hit_product (the curves are fitted without mechanisms).
PLAIN_HIT = load_scenario_file(PLAIN_BASE)


def _example() -> dict:
    """The example's data, its base made absolute so that a copy elsewhere finds it."""
    data = yaml.safe_load(EXAMPLE.read_text())
    return {**data, "base": str(EXAMPLE.parent / data["base"])}


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "curves.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_the_example_file_is_a_scenario_wherever_a_path_is_accepted():
    spec = resolve_scenario(EXAMPLE)
    assert isinstance(spec, ScenarioSpec) and spec.name == "mmm_weekly"
    assert tuple(c.name for c in spec.channels) == CHANNEL_NAMES
    base = PLAIN_HIT
    by_name = {c.name: c for c in spec.channels}
    assert by_name["affiliate"] == {c.name: c for c in base.channels}["affiliate"]
    for curve in ResponseCurvesSpec.model_validate(_example()).response_curves:
        channel = by_name[curve.channel]
        assert channel.cvr_new == channel.cvr_returning
        assert channel.price_sigma == {c.name: c for c in base.channels}[curve.channel].price_sigma
    assert check_scenario(str(EXAMPLE)) == str(EXAMPLE)
    # The printed scenario is a plain scenario file that loads back to the same spec.
    assert ScenarioSpec.model_validate(yaml.safe_load(spec.to_yaml())) == spec


def test_constant_spend_earns_the_curves_gmv(tmp_path):
    """Simulate a steady spend at half, once and twice the typical spend of every curve on
    held-out campaigns: each channel's attributed GMV over the week matches its curve at the
    spend actually made, within the fit's reported error plus three standard errors."""
    data = {**_example(), "budget_cny": [1e6, 1e6]}  # the budget never binds
    path = _write(tmp_path, data)
    spec = ResponseCurvesSpec.model_validate(data)
    _, fits = fit_curves(spec, PLAIN_HIT)
    error = {f.channel: f.max_rel_error for f in fits}
    assert max(error.values()) <= FIT_TOLERANCE
    curves = {c.channel: c for c in spec.response_curves}
    hourly = np.array(
        [curves[n].typical_spend_cny / 168 if n in curves else 0.0 for n in CHANNEL_NAMES]
    )
    seeds = EVAL_SEED_START + np.arange(96)
    for level in (0.5, 1.0, 2.0):
        campaigns = BatchedCampaigns(str(path), reward_mode="gmv")
        campaigns.reset(seeds)
        done = np.zeros(1, dtype=bool)
        while not done.all():
            _, _, done, info = campaigns.step_spend(np.tile(level * hourly, (seeds.size, 1)))
        for k, name in enumerate(CHANNEL_NAMES):
            if name not in curves:
                continue
            spend, gmv = info["spend_by_channel"][:, k], info["gmv_by_channel"][:, k]
            assert spend.mean() > 0.75 * level * curves[name].typical_spend_cny
            expected = curves[name].gmv(spend).mean()
            noise = gmv.std() / np.sqrt(seeds.size) / expected
            ratio = gmv.mean() / expected
            assert abs(ratio - 1.0) <= error[name] + 3 * noise, (level, name, ratio, noise)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"channel": "affiliate"}, "'affiliate' is paid per sale"),
        ({"channel": "radio"}, "Unknown channel 'radio'"),
        ({"slope": 4.0, "ec_cny": 30000.0}, "the simulator matches this curve only within"),
        ({"adstock_decay": 1.0}, "response_curves[0].adstock_decay: Input should be less than 1"),
        ({"gamma": 0.5}, "response_curves[0].gamma: unknown key"),
    ],
)
def test_curves_the_simulator_cannot_take_are_refused_by_name(tmp_path, edit, expected):
    data = _example()
    data["response_curves"][0] = {**data["response_curves"][0], **edit}
    with pytest.raises(ValueError) as err:
        check_scenario(_write(tmp_path, data))
    assert expected in str(err.value) and "curves.yaml" in str(err.value), str(err.value)


def test_a_base_with_mechanisms_is_refused_and_the_default_base_is_plain(tmp_path):
    """The fit models the plain market: a shipped (v1) scenario as base would miss its curves
    by the mechanisms' effect, so it is refused by name; without ``base`` the plain hit
    product is used."""
    with pytest.raises(ValueError) as err:
        check_scenario(_write(tmp_path, {**_example(), "base": "hit_product"}))
    message = str(err.value)
    assert "base: 'hit_product' switches on" in message and "creative fatigue" in message, message
    assert str(PLAIN_BASE) in message, message
    without_base = {key: value for key, value in _example().items() if key != "base"}
    assert resolve_scenario(_write(tmp_path, without_base)) == resolve_scenario(EXAMPLE)
