"""Counter-based random draws."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from budgetgym.envs import random as crn
from budgetgym.envs.core import _binomial, _ndtri


def test_uniforms_open_interval_and_batch_independent():
    keys = crn.campaign_keys(np.arange(1000), domain=2)
    table = crn.counters(5, 3, 6)
    u = crn.uniforms(keys, table)
    assert u.shape == (1000, 3, 6) and (u > 0).all() and (u < 1).all()
    np.testing.assert_array_equal(crn.uniforms(keys[[17]], table)[0], u[17])
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-3


@pytest.mark.parametrize("n,p", [(5, 0.3), (40, 0.05), (2000, 0.02), (3, 0.9)])
def test_binomial_inversion_matches_distribution(n, p):
    u = (np.arange(20_000) + 0.5) / 20_000  # stratified uniforms: exact quantiles
    draws = np.array([_binomial(float(n), p, x) for x in u])
    assert draws.min() >= 0 and draws.max() <= n
    assert abs(draws.mean() - n * p) < 0.02 * n * p + 0.02
    assert abs(draws.var() - n * p * (1 - p)) < 0.06 * n * p * (1 - p) + 0.02


def test_ndtri_accuracy():
    p = np.concatenate([np.logspace(-12, -1, 50), np.linspace(0.01, 0.99, 99)])
    ours = np.array([_ndtri(x) for x in p])
    np.testing.assert_allclose(ours, stats.norm.ppf(p), rtol=2e-8, atol=1e-8)
