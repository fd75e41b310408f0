"""The marketing-mix model of the ``mmm_static`` rule: curves, their fit, the fits file, the split.

A marketing-mix model (Meta Robyn, Google Meridian, PyMC-Marketing) describes each channel's
response to spend with a saturating Hill curve applied to adstocked spend,

    G_k(x) = beta_k * A^s_k / (A^s_k + ec_k^s_k),   A_t = (1 - decay_k) * sum_j decay_k^j x_{t-j},

where ``ec`` is the half-saturation point, ``s`` the shape (``s <= 1`` concave, ``s > 1``
S-shaped) and ``decay`` the geometric carry-over from one day to the next. The adstock is
normalized (its weights sum to 1), so under constant spend ``A = x`` and ``G_k(x)`` is the
steady-state response: what the static budget split needs.

Units: money is in ``B / H`` (one hour of even pacing of the campaign's budget), so curves fitted
on campaigns of every size transfer to any budget; ``x`` is a channel's mean hourly spend over a
day, ``G`` its mean hourly attributed GMV.

This module is policy-free (numpy and scipy only): :mod:`budgetgym.agents.mmm_history` collects
the exploratory history and writes the fits file, the ``mmm_static`` rule
(:mod:`budgetgym.agents.baselines`) reads it and solves the split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares, minimize
from scipy.special import expit

from budgetgym.agents.datafile import (
    json_number,
    json_object,
    read_json,
    shipped_data_path,
    training_file_header,
    write_json,
)
from budgetgym.envs.scenarios import SCENARIO_NAMES

#: Version tag of the fits file's layout.
FITS_FORMAT = "budgetgym-mmm-fits/1"
#: The fits shipped with the package (``budgetgym mmm-fit`` rewrites it).
SHIPPED_FITS = "mmm_fits.json"
#: Candidate day-to-day carry-over of the adstock; each channel keeps the best-fitting one.
DECAY_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Bounds of the Hill shape ``s`` and of the scale ``beta`` (B/H units).
SHAPE_BOUNDS = (0.3, 3.0)
BETA_BOUNDS = (1e-6, 1e4)
#: The half-saturation point ``ec`` lies between this quantile of a channel's positive adstocked
#: spend and its maximum (Robyn's "gamma" range): a point the data can locate.
EC_LOW_QUANTILE = 0.1
#: Targets on which the split is solved (then interpolated); outside it, the nearest end's split.
ROI_GRID = np.round(np.arange(1.0, 4.0 + 1e-9, 0.1), 2)
_CURVE_KEYS = ("beta", "ec", "s", "decay", "r2")
#: :func:`split_table`'s solved tables, by the curves' response constants and the targets.
_SPLIT_TABLES: dict[tuple, np.ndarray] = {}


# -- curves ---------------------------------------------------------------------------------
def geometric_adstock(spend: np.ndarray, decay: float | np.ndarray) -> np.ndarray:
    """Normalized geometric adstock over axis 1 (days): ``A_t = (1 - d) sum_j d^j x_{t-j}``.

    Args:
        spend: ``(n, days, k)`` mean hourly spend per day, B/H units.
        decay: scalar or ``(k,)`` carry-over in ``[0, 1)``.

    Returns:
        ``(n, days, k)`` adstocked spend (equal to ``spend`` under constant spend, in the limit).
    """
    decay = np.broadcast_to(np.asarray(decay, dtype=np.float64), spend.shape[2:])
    out = np.empty_like(spend, dtype=np.float64)
    carried = np.zeros((spend.shape[0], *spend.shape[2:]))
    for day in range(spend.shape[1]):
        carried = spend[:, day] + decay * carried
        out[:, day] = carried
    return (1.0 - decay) * out


def hill(x: np.ndarray, beta: np.ndarray, ec: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``beta * x^s / (x^s + ec^s)`` elementwise (broadcasting; ``x >= 0``)."""
    log_ratio = np.log(np.maximum(ec, 1e-300)) - np.log(np.maximum(x, 1e-300))
    return beta * expit(-s * log_ratio)


def hill_slope(x: np.ndarray, beta: np.ndarray, ec: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Derivative of :func:`hill` in ``x`` (marginal ROI), elementwise, for ``x > 0``."""
    h = expit(-s * (np.log(ec) - np.log(np.maximum(x, 1e-300))))
    return beta * s * h * (1.0 - h) / np.maximum(x, 1e-300)


# -- the fit --------------------------------------------------------------------------------
def _fit_block(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares Hill curve through ``(x, y)`` ``(m,)`` points: ``(log beta, log ec, log s)``
    and the sum of squared residuals (bounded ``trf`` with the analytic Jacobian)."""
    log_x = np.log(np.maximum(x, 1e-300))
    positive = x[x > 0]
    ec_low = float(np.quantile(positive, EC_LOW_QUANTILE)) if positive.size else 1e-6
    ec_high = max(float(x.max()), 1.01 * ec_low)
    lower = np.log([BETA_BOUNDS[0], ec_low, SHAPE_BOUNDS[0]])
    upper = np.log([BETA_BOUNDS[1], ec_high, SHAPE_BOUNDS[1]])
    beta0 = np.clip(2.0 * y.mean(), 10 * BETA_BOUNDS[0], BETA_BOUNDS[1] / 10)
    start = np.clip([np.log(beta0), 0.5 * (lower[1] + upper[1]), 0.0], lower, upper)

    def parts(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = np.exp(theta[2]) * (theta[1] - log_x)  # x^s / (x^s + ec^s) = expit(-u)
        h = expit(-u)
        return np.exp(theta[0]) * h, h, u

    def residuals(theta: np.ndarray) -> np.ndarray:
        return parts(theta)[0] - y

    def jacobian(theta: np.ndarray) -> np.ndarray:
        f, h, u = parts(theta)
        slope = -f * (1.0 - h)  # d f / d u
        return np.stack([f, slope * np.exp(theta[2]), slope * u], axis=1)

    result = least_squares(residuals, start, jac=jacobian, bounds=(lower, upper))
    return result.x, float((result.fun**2).sum())


def fit_hill(
    spend: np.ndarray, gmv: np.ndarray, decays: tuple[float, ...] = DECAY_GRID
) -> dict[str, np.ndarray]:
    """Least-squares fit of one adstocked Hill curve per channel, the decay chosen by fit quality.

    For each candidate decay and channel, ``(log beta, log ec, log s)`` are fitted on every
    campaign-day (``ec`` bounded by ``EC_LOW_QUANTILE`` of the positive adstocked spend and its
    maximum, ``s`` by ``SHAPE_BOUNDS``); each channel keeps the decay of highest R^2 (decay 0:
    no carry-over).

    Args:
        spend: ``(n, days, k)`` mean hourly spend per day and channel, B/H units (``n``
            campaigns, the same days for every campaign).
        gmv: ``(n, days, k)`` mean hourly attributed GMV, B/H units.
        decays: candidate carry-overs in ``[0, 1)``.

    Returns:
        ``beta, ec, s, decay, r2``: ``(k,)`` arrays.
    """
    spend, gmv = np.asarray(spend, np.float64), np.asarray(gmv, np.float64)
    if spend.shape != gmv.shape or spend.ndim != 3:
        raise ValueError(
            f"spend and gmv must share a shape (n, days, k), got {spend.shape} and {gmv.shape}."
        )
    k = spend.shape[2]
    y = gmv.reshape(-1, k)
    sst = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    theta = np.empty((len(decays), k, 3))
    r2 = np.empty((len(decays), k))
    for i, decay in enumerate(decays):
        x = geometric_adstock(spend, decay).reshape(-1, k)
        for channel in range(k):
            theta[i, channel], sse = _fit_block(x[:, channel], y[:, channel])
            r2[i, channel] = 1.0 - sse / max(sst[channel], 1e-300)
    best = r2.argmax(axis=0)
    chosen = np.exp(theta[best, np.arange(k)])
    return {
        "beta": chosen[:, 0],
        "ec": chosen[:, 1],
        "s": chosen[:, 2],
        "decay": np.asarray(decays, dtype=np.float64)[best],
        "r2": r2[best, np.arange(k)],
    }


# -- fitted curves and their file ------------------------------------------------------------
@dataclass(frozen=True)
class ResponseCurves:
    """The fitted curves of one scenario, over its paid channels (arrays ``(k,)``).

    Attributes:
        channels: the paid channel names, in the order of the scenario's channel list.
        beta, ec, s, decay, r2: Hill scale (B/H units), half-saturation point (B/H units),
            shape, day-to-day carry-over, and the fit's R^2 on daily data.
        per_sale_spend: mean hourly spend of the pay-per-sale channels at their standing
            allocation (B/H units): not a decision, a constant of the budget and ROI constraints.
        per_sale_gmv: their mean hourly attributed GMV (B/H units).
    """

    channels: tuple[str, ...]
    beta: np.ndarray
    ec: np.ndarray
    s: np.ndarray
    decay: np.ndarray
    r2: np.ndarray
    per_sale_spend: float
    per_sale_gmv: float

    def response(self, x: np.ndarray) -> np.ndarray:
        """Steady-state hourly GMV ``(..., k)`` for hourly spend ``x`` ``(..., k)``, B/H units."""
        return hill(x, self.beta, self.ec, self.s)

    def rows(self) -> list[dict]:
        """One dict per channel: ``channel, beta, ec, s, decay, r2`` (Python floats)."""
        return [
            {"channel": name, **{key: float(getattr(self, key)[i]) for key in _CURVE_KEYS}}
            for i, name in enumerate(self.channels)
        ]

    def to_json(self) -> dict:
        """The curves as the fits file stores them."""
        return {
            "channels": {row.pop("channel"): row for row in self.rows()},
            "per_sale": {"spend": self.per_sale_spend, "gmv": self.per_sale_gmv},
        }


@dataclass(frozen=True)
class MMMFits:
    """Every scenario's curves and how they were obtained (the content of the fits file).

    Attributes:
        scenarios: scenario name -> its curves.
        seed_start, campaigns: the training campaigns of the exploratory history (per scenario).
        days_fitted: the days of each episode in the fit.
    """

    scenarios: dict[str, ResponseCurves]
    seed_start: int
    campaigns: int
    days_fitted: int

    def to_json(self) -> dict:
        return {
            "format": FITS_FORMAT,
            "generated_by": "budgetgym mmm-fit",
            "units": "money in B/H (budget / horizon hours); x and GMV are hourly means per day",
            "seed_start": self.seed_start,
            "campaigns": self.campaigns,
            "days_fitted": self.days_fitted,
            "decay_grid": list(DECAY_GRID),
            "scenarios": {name: c.to_json() for name, c in self.scenarios.items()},
        }

    def save(self, path: Path) -> None:
        """Write the fits as JSON to ``path`` (parent folders created)."""
        write_json(path, self.to_json())


def shipped_fits_path() -> Path:
    """Path of the fits file shipped with the package."""
    return shipped_data_path(SHIPPED_FITS)


def parse_fits(data: object, source: str = "fits") -> MMMFits:
    """Validate the decoded JSON of a fits file (untrusted input) and build :class:`MMMFits`.

    Raises:
        ValueError: one sentence naming the first bad key and its value.
    """
    data, seed_start, campaigns = training_file_header(data, source, FITS_FORMAT, "the history")
    days = json_number(data.get("days_fitted"), f"{source}: days_fitted", 1, 1e3, True)
    scenarios = {}
    for name, entry in json_object(data.get("scenarios"), f"{source}: scenarios").items():
        where = f"{source}: scenarios.{name}"
        if name not in SCENARIO_NAMES:
            raise ValueError(f"{where}: unknown scenario {name!r}.")
        entry = json_object(entry, where)
        channels = json_object(entry.get("channels"), f"{where}.channels")
        if not channels:
            raise ValueError(f"{where}.channels must name at least one channel.")
        bounds = {"beta": BETA_BOUNDS, "ec": (1e-9, 1e6), "s": SHAPE_BOUNDS, "decay": (0, 0.99)}
        bounds["r2"] = (-1e6, 1.0)
        values = {key: [] for key in _CURVE_KEYS}
        for channel, curve in channels.items():
            curve = json_object(curve, f"{where}.channels.{channel}")
            for key in _CURVE_KEYS:
                where_key = f"{where}.channels.{channel}.{key}"
                values[key].append(json_number(curve.get(key), where_key, *bounds[key]))
        per_sale = json_object(entry.get("per_sale"), f"{where}.per_sale")
        scenarios[name] = ResponseCurves(
            channels=tuple(channels),
            **{key: np.array(values[key]) for key in _CURVE_KEYS},
            per_sale_spend=json_number(per_sale.get("spend"), f"{where}.per_sale.spend", 0, 1e3),
            per_sale_gmv=json_number(per_sale.get("gmv"), f"{where}.per_sale.gmv", 0, 1e4),
        )
    return MMMFits(scenarios, int(seed_start), int(campaigns), int(days))


def load_fits(path: Path | str | None = None) -> MMMFits:
    """Read and validate a fits file (default: the shipped one).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not JSON, or a key missing or out of range (the message names it).
    """
    path = shipped_fits_path() if path is None else Path(path)
    return parse_fits(read_json(path, "MMM fits file"), f"MMM fits file {str(path)!r}")


# -- the static split -----------------------------------------------------------------------
def solve_split(
    curves: ResponseCurves, target_roi: float, starts: list[np.ndarray] | None = None
) -> np.ndarray:
    """The static hourly split ``x`` ``(k,)`` (B/H units) that maximizes ``sum_k G_k(x_k)``
    subject to the budget ``sum x + a <= 1`` (even pacing) and the target
    ``sum G(x) + g >= R (sum x + a)``, with ``a, g`` the pay-per-sale channels' spend and GMV
    (SLSQP from a few starts, the best feasible point kept). Where no split meets the target,
    ``x = 0``: the paid channels stay off.

    Args:
        curves: the scenario's fitted curves.
        target_roi: the campaign's target ROI ``R``.
        starts: extra starting points ``(k,)`` (e.g. the solution at a nearby target).
    """
    k = len(curves.channels)
    room = max(1.0 - curves.per_sale_spend, 0.0)
    if room <= 0.0:
        return np.zeros(k)
    a, g = curves.per_sale_spend, curves.per_sale_gmv
    params = (curves.beta, curves.ec, curves.s)
    floor = 1e-9 * room

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        return -float(hill(x, *params).sum()), -hill_slope(x, *params)

    def target_gap(x: np.ndarray) -> float:
        return float(hill(x, *params).sum() + g - target_roi * (x.sum() + a))

    constraints = [
        {"type": "ineq", "fun": lambda x: room - x.sum(), "jac": lambda x: -np.ones(k)},
        {"type": "ineq", "fun": target_gap, "jac": lambda x: hill_slope(x, *params) - target_roi},
    ]
    candidates = [np.full(k, room / k), np.full(k, 0.05 * room / k), *(starts or [])]
    best, best_value = np.zeros(k), 0.0  # spend nothing on paid channels: GMV 0
    for start in candidates:
        result = minimize(
            objective,
            np.clip(start, floor, room),
            jac=True,
            method="SLSQP",
            bounds=[(floor, room)] * k,
            constraints=constraints,
            options={"maxiter": 200, "ftol": 1e-10},
        )
        x = np.clip(result.x, 0.0, room)
        feasible = x.sum() <= room * (1 + 1e-6) and target_gap(x) >= -1e-6 * max(a + x.sum(), 1)
        value = -float(hill(x, *params).sum())
        if feasible and value < best_value:
            best, best_value = x, value
    return best


def split_table(curves: ResponseCurves, targets: np.ndarray = ROI_GRID) -> np.ndarray:
    """:func:`solve_split` on each of ``targets`` ``(m,)`` (ascending), each warm-started from
    the previous solution: ``(m, k)`` hourly spend, B/H units, read-only.

    Solved once per process for the same curves and targets: the table is a few seconds of
    SLSQP, and every ``mmm_static`` rule built on a scenario's curves asks for it again.
    """
    constants = (curves.beta, curves.ec, curves.s, curves.per_sale_spend, curves.per_sale_gmv)
    key = tuple(tuple(np.ravel(v).astype(np.float64).tolist()) for v in (*constants, targets))
    table = _SPLIT_TABLES.get(key)
    if table is None:
        table = np.empty((len(targets), len(curves.channels)))
        previous: list[np.ndarray] = []
        for i, target in enumerate(targets):
            table[i] = solve_split(curves, float(target), previous)
            previous = [table[i]] if table[i].sum() > 0 else []
        table.flags.writeable = False
        _SPLIT_TABLES[key] = table
    return table


def interpolate_split(table: np.ndarray, target_roi: np.ndarray, targets: np.ndarray = ROI_GRID):
    """The split ``(n, k)`` for each campaign's target ``(n,)``, linear in the target between the
    rows of ``table`` ``(m, k)`` solved on ``targets`` ``(m,)`` (the nearest row outside)."""
    return np.stack([np.interp(target_roi, targets, column) for column in table.T], axis=1)


def plot_curves(curves: ResponseCurves, path: Path, title: str = "") -> None:
    """Write a PNG of each paid channel's steady-state response ``G_k(x)`` (B/H units) over
    ``0..2`` hours of even pacing, with the break-even lines ``G = R x`` of ROI 2 and 3."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.linspace(0.0, 2.0, 201)
    gmv = curves.response(x[:, None])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (name, r2) in enumerate(zip(curves.channels, curves.r2, strict=True)):
        ax.plot(x, gmv[:, i], label=f"{name} (decay {curves.decay[i]:.1f}, R² {r2:.2f})")
    for roi in (2.0, 3.0):
        ax.plot(x, roi * x, color="0.6", linewidth=0.8, linestyle=":")
        ax.annotate(f"ROI {roi:g}", (x[-1] / roi * 0.9, 0.9 * x[-1]), color="0.4", fontsize=8)
    ax.set_xlabel("hourly spend on the channel (B/H: hours of even pacing)")
    ax.set_ylabel("hourly attributed GMV (B/H)")
    ax.set_ylim(0.0, max(1.2 * float(gmv.max()), 1e-3))
    ax.set_title(title or "Fitted response curves (steady state)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
