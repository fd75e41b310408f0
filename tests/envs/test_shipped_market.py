"""The shipped scenarios (envs/scenario_files) switch the market's mechanisms on: the market's
best policy is sequential, not a fixed split."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

from budgetgym.agents.evaluation import rollout
from budgetgym.agents.policy import load_policy
from budgetgym.envs import BatchedCampaigns, MultiChannelBudgetEnv, sample_campaigns
from budgetgym.envs.mechanisms import MECHANISM_NAMES, switched_on
from budgetgym.envs.scenarios import EVAL_SEED_START, LIBRARY, SCENARIO_NAMES, resolve_scenario

FILES = {name: LIBRARY.folder / f"{name}.yaml" for name in SCENARIO_NAMES}
SEEDS = np.arange(EVAL_SEED_START, EVAL_SEED_START + 16)


def test_every_mechanism_is_on_in_the_shipped_scenarios():
    on = {name: switched_on(path) for name, path in FILES.items()}
    assert set().union(*on.values()) == set(MECHANISM_NAMES)
    assert all(len(names) >= 10 for names in on.values()), on
    for name, path in FILES.items():
        assert resolve_scenario(path).name == name
    # Every campaign of the mixture plays one of the six scenarios.
    members = sample_campaigns(FILES["mixed"], SEEDS)
    assert set(members.scenario_names) <= set(SCENARIO_NAMES) - {"mixed"}


@pytest.mark.parametrize("name", ["mixed", "double11_promotion"])
def test_gymnasium_checker(name):
    gym_check_env(MultiChannelBudgetEnv(scenario=str(FILES[name])), skip_render_check=True)


def test_the_planner_beats_uniform_within_the_budget():
    """Held-out campaigns of ``mixed``: the information-fair planner earns more than
    even pacing on a uniform split, and neither spends beyond its budget."""
    results = {
        name: rollout(load_policy(name), BatchedCampaigns(FILES["mixed"]), SEEDS)[0]
        for name in ("planner", "uniform")
    }
    gmv = {name: info["gmv_total"].sum() for name, info in results.items()}
    assert gmv["planner"] > 1.1 * gmv["uniform"], gmv
    for info in results.values():
        assert (info["spend_total"] <= info["budget"] * (1 + 1e-12)).all()
