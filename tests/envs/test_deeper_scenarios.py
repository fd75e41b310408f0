"""The deeper market's scenario set (envs/scenario_examples/deeper): the shipped scenarios with
every mechanism switched on."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

from budgetgym.agents.evaluation import rollout
from budgetgym.agents.policy import load_policy
from budgetgym.envs import BatchedCampaigns, MultiChannelBudgetEnv, sample_campaigns
from budgetgym.envs.mechanisms import MECHANISM_NAMES, switched_on
from budgetgym.envs.scenarios import DEEPER, EVAL_SEED_START, SCENARIO_NAMES, resolve_scenario

FILES = {name: DEEPER / f"{name}.yaml" for name in SCENARIO_NAMES}
SEEDS = np.arange(EVAL_SEED_START, EVAL_SEED_START + 16)


def test_the_set_is_the_shipped_scenarios_with_every_mechanism_on():
    assert sorted(p.name for p in DEEPER.glob("*.yaml")) == sorted(f"{n}.yaml" for n in FILES)
    on = {name: switched_on(path) for name, path in FILES.items()}
    assert set().union(*on.values()) == set(MECHANISM_NAMES)
    assert all(len(names) >= 10 for names in on.values()), on
    for name, path in FILES.items():
        assert resolve_scenario(path).name == name
    # Every campaign of the mixture plays one of the folder's six scenarios, on their channels.
    members = sample_campaigns(FILES["mixed"], SEEDS)
    assert set(members.scenario_names) <= set(SCENARIO_NAMES) - {"mixed"}


@pytest.mark.parametrize("name", ["mixed", "double11_promotion"])
def test_gymnasium_checker(name):
    gym_check_env(MultiChannelBudgetEnv(scenario=str(FILES[name])), skip_render_check=True)


def test_the_planner_beats_uniform_within_the_budget():
    """Held-out campaigns of the deeper ``mixed``: the information-fair planner earns more than
    even pacing on a uniform split, and neither spends beyond its budget."""
    results = {
        name: rollout(load_policy(name), BatchedCampaigns(FILES["mixed"]), SEEDS)[0]
        for name in ("planner", "uniform")
    }
    gmv = {name: info["gmv_total"].sum() for name, info in results.items()}
    assert gmv["planner"] > 1.1 * gmv["uniform"], gmv
    for info in results.values():
        assert (info["spend_total"] <= info["budget"] * (1 + 1e-12)).all()
