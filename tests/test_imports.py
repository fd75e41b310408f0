"""The package's import structure: no import cycles (not even through imports inside
functions), and the environment, rules and oracle import without torch or Stable-Baselines3."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import budgetgym
from budgetgym.scripts.cli import TRAIN_EXTRA_MODULES

ROOT = Path(budgetgym.__file__).parent


def module_name(path: Path) -> str:
    parts = ("budgetgym", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    module_name(path): path
    for package in ("envs", "agents", "scripts")
    for path in sorted((ROOT / package).rglob("*.py"))  # subpackages (agents/sweeps) too
} | {"budgetgym": ROOT / "__init__.py"}


def imported_modules(name: str) -> set[str]:
    """The budgetgym modules that module ``name`` imports anywhere in its code (at the top or
    inside functions); ``from package import submodule`` counts as the submodule."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in MODULES
                else node.module
                for alias in node.names
            )
    return found & MODULES.keys()


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (``[a, b, ..., a]``), or ``None`` if it is acyclic."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for successor in sorted(graph[node]):
            cycle = visit(successor)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles() -> None:
    graph = {name: (imported_modules(name) & set(MODULES)) - {name} for name in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


#: Top-level modules of the ``train`` extra: absent from an environment-only install.
TRAIN_EXTRA = tuple(sorted(TRAIN_EXTRA_MODULES))

ENV_ONLY = f"""
import importlib.abc, sys

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {TRAIN_EXTRA!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, NotInstalled())

import gymnasium as gym
import numpy as np

import budgetgym
import budgetgym.envs
from budgetgym.agents.baselines import make_baseline
from budgetgym.agents.evaluation import rollout
from budgetgym.agents.oracle import OraclePolicy
from budgetgym.agents.intertemporal import models_state
from budgetgym.envs import BatchedCampaigns
from budgetgym.envs.scenarios import DEEP_MARKET

env = gym.make("budgetgym/MultiChannelBudget-v1", scenario="double11_promotion")
obs, info = env.reset(seed=1_000_000)
env.step(env.action_space.sample())
campaigns = BatchedCampaigns("mixed", horizon_hours=24)
seeds = 1_000_000 + np.arange(4)
gmv = {{}}
for policy in (make_baseline("uniform"), make_baseline("obs_price_aware"),
               make_baseline("bandit"), OraclePolicy()):
    gmv[policy.name] = rollout(policy, campaigns, seeds)[0]["gmv_total"]
deep = BatchedCampaigns(str(DEEP_MARKET), horizon_hours=48)  # the oracle plans on its twin
deep.reset(seeds)
assert models_state(deep.params)
gmv["oracle on deep_market"] = rollout(OraclePolicy(), deep, seeds)[0]["gmv_total"]
assert all(np.isfinite(v).all() and (v > 0).any() for v in gmv.values()), gmv
try:
    budgetgym.envs.BudgetVecEnv
except ImportError as error:
    assert "budgetgym[train]" in str(error), error
else:
    raise AssertionError("BudgetVecEnv imported without Stable-Baselines3")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {TRAIN_EXTRA!r})
assert not loaded, loaded

import tempfile
from budgetgym.scripts.cli import main
assert main(["list-scenarios"]) == 0
with tempfile.TemporaryDirectory() as out:
    assert main(["evaluate", "--policy", "uniform", "--episodes", "2", "--out", out]) == 0
    guarded = ["evaluate", "--policy", "obs_pacing", "--roi-guard", "0.05:8:0.75"]
    assert main([*guarded, "--episodes", "2", "--out", out + "/guarded"]) == 0
    assert main(["train", "--config", "ppo_quick", "--run-dir", out + "/run"]) == 2
print("ok", sorted(gmv))
"""


def test_environment_rules_and_oracle_need_no_training_dependencies() -> None:
    """What ``pip install budgetgym`` (no extras) gives: with the ``train`` extra's modules made
    unimportable, the environment, a rule of each kind and the oracle run (the oracle also on
    deep_market, a market with states that it plans on with its expected twin), and none of
    those modules is loaded."""
    proc = subprocess.run(
        [sys.executable, "-c", ENV_ONLY], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok" in proc.stdout
    # The CLI's env verbs and a rule's evaluation work; a verb that needs the train extra names
    # it.
    assert "double11_promotion" in proc.stdout
    assert 'pip install "budgetgym[train]"' in " ".join(proc.stdout.split())


def test_the_sb3_view_loads_on_first_access() -> None:
    code = (
        "import sys, budgetgym.envs; assert 'stable_baselines3' not in sys.modules; "
        "from budgetgym.envs import BudgetVecEnv; "
        "from stable_baselines3.common.vec_env import VecEnv; "
        "assert issubclass(BudgetVecEnv, VecEnv)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
