"""What the first observation reveals: nothing of a campaign's hidden parameters beyond what the
merchant knows (budget, target ROI, price, goal) and the scenario it picked (issue 26: the
scenario stays observable, the campaign's parameters must not be recoverable at hour 0).

A ridge regression from hour-0 observations of ``mixed`` campaigns (training seeds) to each
hidden parameter must not predict it, on other training seeds, better than a ridge regression
on the merchant's own fields and the scenario's id."""

from __future__ import annotations

import numpy as np
import pytest

from budgetgym.envs import BatchedCampaigns
from budgetgym.envs.channels import channel_array

N_FIT, N_TEST = 3000, 1500
RIDGE = 1e-3  # penalty per standardized feature and campaign
R2_TOLERANCE = 0.02


def ridge_r2(x_fit, y_fit, x_test, y_test) -> float:
    """Held-out R² of a ridge regression (features standardized on the fit set, intercept free)."""
    mean, sd = x_fit.mean(axis=0), x_fit.std(axis=0)
    keep = sd > 1e-12
    z_fit = (x_fit[:, keep] - mean[keep]) / sd[keep]
    z_test = (x_test[:, keep] - mean[keep]) / sd[keep]
    gram = z_fit.T @ z_fit + RIDGE * len(z_fit) * np.eye(z_fit.shape[1])
    coef = np.linalg.solve(gram, z_fit.T @ (y_fit - y_fit.mean()))
    residual = y_test - (y_fit.mean() + z_test @ coef)
    return 1.0 - (residual**2).mean() / y_test.var()


@pytest.fixture(scope="module")
def first_observations():
    campaigns = BatchedCampaigns("mixed", horizon_hours=168)
    obs, _ = campaigns.reset(np.arange(N_FIT + N_TEST))
    p = campaigns.params
    goal = p.new_customer_value_cny / p.price_cny
    scenario = np.eye(len(p.members))[p.scenario_index]
    log_budget, log_price = np.log(p.budget_cny), np.log(p.price_cny)
    known = np.column_stack([log_budget, p.target_roi, log_price, goal, scenario])
    hidden = {
        "pool": np.log1p(p.returning_pool_init),
        "immediate_frac": p.immediate_frac,
        "mean_delay": np.log(1.0 / p.delay_hazard_per_hour),
        "launch_boost": p.coldstart_boost,
    }
    cvr_table, ctr_table = channel_array("cvr_new", p.channels), channel_array("ctr", p.channels)
    for k, name in enumerate(p.channel_names):
        hidden[f"cvr_mult_{name}"] = np.log(p.cvr_new[:, k] / cvr_table[k])
        hidden[f"ctr_{name}"] = np.log(p.ctr[:, k] / ctr_table[k])
        hidden[f"volume_{name}"] = np.log(p.volume_per_hour[:, k])
    return obs.astype(np.float64), known, hidden, log_price


def test_the_first_observation_reveals_no_more_than_the_merchant_knows(first_observations):
    obs, known, hidden, log_price = first_observations
    fit, test = slice(0, N_FIT), slice(N_FIT, None)
    # The regression finds what the observation does show (the price, a merchant's field).
    assert ridge_r2(obs[fit], log_price[fit], obs[test], log_price[test]) > 0.99
    leaks = {}
    for name, y in hidden.items():
        from_obs = ridge_r2(obs[fit], y[fit], obs[test], y[test])
        from_known = ridge_r2(known[fit], y[fit], known[test], y[test])
        if from_obs > from_known + R2_TOLERANCE:
            leaks[name] = (round(from_obs, 3), round(from_known, 3))
    assert not leaks, f"hour-0 observation predicts better than the merchant's fields: {leaks}"
