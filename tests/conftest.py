"""Shared fixtures."""

from __future__ import annotations

import numpy as np
import pytest

import budgetgym  # noqa: F401  (registers the environment)
from budgetgym.envs import ACTION_DIM, BatchedCampaigns


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: a test of 20 s or more on two cores (its module runs first; -m 'not slow' "
        "leaves them out)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules holding a slow test first, each kept whole and in order: ``--dist loadscope``
    hands the workers whole modules in this order, and a long one handed out last would leave
    the other worker idle while it finishes."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


def rollout(campaigns: BatchedCampaigns, seeds, policy) -> list[tuple]:
    """Run one episode; ``policy(obs, hour) -> actions``. Returns [(obs, reward, done, info)]."""
    obs, info = campaigns.reset(seeds)
    steps = [(obs, None, None, info)]
    done = np.zeros(len(seeds), dtype=bool)
    hour = 0
    while not done.all():
        obs, reward, done, info = campaigns.step(policy(obs, hour))
        steps.append((obs, reward, done, info))
        hour += 1
    return steps


def constant_policy(pace: float = 0.0, logits=None):
    """Actions with a fixed pace and channel logits (uniform split by default)."""
    row = np.zeros(ACTION_DIM)
    row[0] = pace
    if logits is not None:
        row[1:] = logits
    return lambda obs, hour: np.tile(row, (obs.shape[0], 1))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
