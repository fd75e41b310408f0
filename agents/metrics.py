"""Metrics of a constrained campaign (GMV under a budget and a target ROI) and their intervals.

One definition of each, on arrays with one entry per campaign, shared by the evaluation
harness (:mod:`budgetgym.agents.evaluation`) and the validation callback
(:mod:`budgetgym.agents.callbacks`).
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP_RESAMPLES = 2000


def auctionnet_score(
    gmv_cny: np.ndarray, spend_cny: np.ndarray, target_roi: np.ndarray
) -> np.ndarray:
    """AuctionNet's score per campaign ``(n,)`` CNY: ``GMV x min(1, (ROI / target)^2)``, a
    soft penalty for a missed target (the GMV itself where nothing was spent)."""
    gmv_cny, spend_cny = np.asarray(gmv_cny, np.float64), np.asarray(spend_cny, np.float64)
    roi = np.divide(gmv_cny, spend_cny, out=np.zeros_like(gmv_cny), where=spend_cny > 0)
    score = gmv_cny * np.minimum(1.0, (roi / np.asarray(target_roi)) ** 2)
    return np.where(spend_cny > 0, score, gmv_cny)


def ratio_of_totals_pct(gmv_cny: np.ndarray, reference_gmv_cny: np.ndarray) -> float:
    """``100 * sum(GMV) / sum(reference GMV)`` over the same campaigns ``(n,)``: robust to
    campaigns where the reference earns little (NaN when it earns nothing)."""
    reference = float(np.sum(reference_gmv_cny))
    return 100.0 * float(np.sum(gmv_cny)) / reference if reference > 0 else float("nan")


def compensation_pct_of_spend(compensation_cny: np.ndarray, spend_cny: np.ndarray) -> float:
    """Compensation the platform pays for missed targets, in % of spend:
    ``100 * sum(compensation) / sum(spend)`` over the campaigns ``(n,)`` (0 without spend)."""
    spend = float(np.sum(spend_cny))
    return 100.0 * float(np.sum(compensation_cny)) / spend if spend > 0 else 0.0


def gmv_of_met_campaigns(gmv_cny: np.ndarray, missed: np.ndarray) -> float:
    """Mean GMV (CNY) of the campaigns ``(n,)`` that met their ROI target (``missed`` False):
    what a policy earns where it keeps its promise (NaN when no campaign met it)."""
    met = ~np.asarray(missed, dtype=bool)
    return float(np.mean(np.asarray(gmv_cny)[met])) if met.any() else float("nan")


def _resampled_means(values: np.ndarray, resamples: int) -> np.ndarray:
    """Column means of ``resamples`` bootstrap resamples of the rows of ``values`` ``(n, ...)``
    -> ``(resamples, ...)`` (fixed generator seed)."""
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(values), size=(resamples, len(values)))
    return values[idx].mean(axis=1)


def bootstrap_ci(values: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES) -> list[float]:
    """95% percentile-bootstrap interval of the mean of ``values`` (fixed generator seed)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return [float("nan"), float("nan")]
    means = _resampled_means(values, resamples)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def bootstrap_ratio_ci(
    numerator: np.ndarray, denominator: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES
) -> list[float]:
    """95% percentile-bootstrap interval of ``sum(numerator) / sum(denominator)``, resampling
    the pairs ``(n,)`` together (fixed generator seed)."""
    pairs = np.stack([numerator, denominator], axis=1).astype(np.float64)
    if len(pairs) == 0 or pairs[:, 1].sum() <= 0:
        return [float("nan"), float("nan")]
    means = _resampled_means(pairs, resamples)
    ratios = means[:, 0] / means[:, 1]
    return [float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))]
