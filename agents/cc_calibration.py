"""The calibration of ``planner_cc``: one margin ``kappa`` per scenario for a population miss rate.

``planner_cc`` plans every hour to a margin of ``kappa`` standard deviations of the GMV still to
be attributed (:class:`~budgetgym.agents.planner.PlannerPolicy`). Its risk level ``alpha`` is a
population constraint: at most a share ``alpha`` of the scenario's campaigns ends below its ROI
target. The share that misses falls as ``kappa`` rises; measured on training campaigns at a grid
of ``kappa`` values (:mod:`budgetgym.agents.cc_sweep`, ``budgetgym planner-cc-calibrate``), that
curve, made non-increasing by isotonic regression, is inverted for any ``alpha`` by linear
interpolation. The curves ship as ``agents/data/planner_cc_calibration.json``, with the seeds
they were measured on and each block's own curve: the campaigns are rolled out in blocks, and
the blocks' spread shows how much one sample's luck moves a margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import isotonic_regression

from budgetgym.agents.datafile import (
    json_number,
    json_object,
    read_json,
    shipped_data_path,
    training_file_header,
    write_json,
)

#: Version tag of the calibration file's layout.
CALIBRATION_FORMAT = "budgetgym-planner-cc-calibration/2"
#: The calibration shipped with the package (``budgetgym planner-cc-calibrate`` rewrites it).
SHIPPED_CALIBRATION = "planner_cc_calibration.json"
#: The command that measures the curves, named in the errors that need it.
CALIBRATE_COMMAND = "budgetgym planner-cc-calibrate"
#: Margins measured, in standard deviations of the GMV still to be attributed: dense where the
#: shipped scenarios' miss rates cross 2-10% (each margin costs a rollout of every campaign, so
#: campaigns, which set the curve's error, buy more than margins).
KAPPA_GRID = (0.0, 0.5, 0.75, 1.0, 1.5, 2.5)
#: Equal miss rates at this many smallest margins mark a curve as saturated (see
#: :attr:`MissRateCurve.saturated`).
SATURATION_POINTS = 3
#: Bounds a calibration file's margins must lie in.
KAPPA_BOUNDS = (-10.0, 10.0)


@dataclass(frozen=True)
class MissRateCurve:
    """A scenario's share of campaigns below target as a function of the margin.

    Attributes:
        kappa: ``(m,)`` margins, strictly increasing.
        miss_rate: ``(m,)`` the share of campaigns that ended below target, non-increasing
            (the isotonic fit of ``measured``).
        measured: ``(m,)`` the shares as measured, over all campaigns.
        blocks: ``(b, m)`` the shares as measured in each block of campaigns (one row when
            they were measured at once); ``measured`` is their mean weighted by block size.
    """

    kappa: np.ndarray
    miss_rate: np.ndarray
    measured: np.ndarray
    blocks: np.ndarray

    @classmethod
    def fit(
        cls, kappa: np.ndarray, blocks: np.ndarray, block_sizes: np.ndarray | None = None
    ) -> MissRateCurve:
        """The curve through the shares ``blocks`` ``(b, m)`` (or ``(m,)``, one block) measured
        at ``kappa`` ``(m,)`` on blocks of ``block_sizes`` ``(b,)`` campaigns (equal if None),
        pooled, then made non-increasing by isotonic regression (pool adjacent violators)."""
        blocks = np.atleast_2d(np.asarray(blocks, dtype=np.float64))
        sizes = np.ones(len(blocks)) if block_sizes is None else block_sizes
        measured = pooled_rates(blocks, sizes)
        fitted = isotonic_regression(measured, increasing=False).x
        return cls(np.asarray(kappa, dtype=np.float64), fitted, measured, blocks)

    @property
    def saturated(self) -> bool:
        """Whether the miss rate is flat over the ``SATURATION_POINTS`` smallest margins: no
        lower margin misses more (the campaigns that could are all limited by their budget or
        market instead of their target)."""
        return bool(self.miss_rate[0] == self.miss_rate[SATURATION_POINTS - 1])

    def kappa_for(self, alpha: float, where: str = "the curve") -> float:
        """The smallest margin whose miss rate is at most ``alpha``, linear between grid points.

        Above the largest miss rate of a :attr:`saturated` curve, the constraint is slack: the
        smallest margin of the grid.

        Raises:
            ValueError: ``alpha`` outside the measured range of miss rates.
        """
        rate, kappa = self.miss_rate, self.kappa
        if alpha > rate[0] and self.saturated:
            return float(kappa[0])
        if not rate[-1] <= alpha <= rate[0]:
            raise ValueError(
                f"alpha {alpha!r} lies outside the miss rates calibrated for {where} "
                f"({100 * rate[-1]:.1f}% at kappa {kappa[-1]:g} to {100 * rate[0]:.1f}% at "
                f"kappa {kappa[0]:g}); calibrate a wider grid with {CALIBRATE_COMMAND} --kappas."
            )
        i = int(np.argmax(rate <= alpha))
        if i == 0:
            return float(kappa[0])
        step = (rate[i - 1] - alpha) / (rate[i - 1] - rate[i])
        return float(kappa[i - 1] + step * (kappa[i] - kappa[i - 1]))

    def to_json(self) -> dict:
        return {
            "kappa": self.kappa.tolist(),
            "miss_rate": self.miss_rate.tolist(),
            "miss_rate_measured": self.measured.tolist(),
            "miss_rate_blocks": self.blocks.tolist(),
        }


@dataclass(frozen=True)
class CCCalibration:
    """Every calibrated scenario's curve and the campaigns it was measured on.

    Attributes:
        curves: scenario name -> its curve.
        seed_start, campaigns: the training campaigns of every curve (seeds
            ``seed_start .. seed_start + campaigns - 1``, the same for every margin).
        block_campaigns: campaigns per block of a curve's ``blocks`` (the last may hold fewer).
        horizon_hours: the campaigns' horizon.
        source: where the curves come from, for error messages.
    """

    curves: dict[str, MissRateCurve]
    seed_start: int
    campaigns: int
    block_campaigns: int
    horizon_hours: int
    source: str = "the calibration"

    def block_sizes(self) -> np.ndarray:
        """``(b,)`` campaigns per block, in seed order."""
        return block_sizes(self.campaigns, self.block_campaigns)

    def kappa(self, scenario: str, alpha: float) -> float:
        """``planner_cc``'s margin in ``scenario`` for the population miss rate ``alpha``.

        Raises:
            ValueError: no curve for ``scenario``, or ``alpha`` outside its range.
        """
        curve = self.curves.get(scenario)
        if curve is None:
            raise ValueError(
                f"{self.source} has no planner_cc calibration for scenario {scenario!r}; "
                f"measure it with: {CALIBRATE_COMMAND} --scenarios {scenario}."
            )
        return curve.kappa_for(alpha, f"scenario {scenario!r} in {self.source}")

    def to_json(self) -> dict:
        return {
            "format": CALIBRATION_FORMAT,
            "generated_by": CALIBRATE_COMMAND,
            "seed_start": self.seed_start,
            "campaigns": self.campaigns,
            "block_campaigns": self.block_campaigns,
            "horizon_hours": self.horizon_hours,
            "scenarios": {name: curve.to_json() for name, curve in self.curves.items()},
        }

    def save(self, path: Path) -> None:
        """Write the calibration as JSON to ``path`` (parent folders created)."""
        write_json(path, self.to_json())


def block_sizes(campaigns: int, block_campaigns: int) -> np.ndarray:
    """``(b,)`` the sizes of the blocks ``campaigns`` split into: ``block_campaigns`` each, the
    last the remainder."""
    sizes = np.full(-(-campaigns // block_campaigns), block_campaigns)
    sizes[-1] = campaigns - block_campaigns * (sizes.size - 1)
    return sizes


def pooled_rates(blocks: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``(m,)`` the shares of all campaigns: the blocks' shares ``(b, m)`` weighted by their
    campaigns ``(b,)``."""
    sizes = np.asarray(sizes, dtype=np.float64)
    return sizes @ blocks / sizes.sum()


def shipped_calibration_path() -> Path:
    """Path of the calibration file shipped with the package."""
    return shipped_data_path(SHIPPED_CALIBRATION)


def _array(value: object, where: str, low: float, high: float, size: int | None) -> np.ndarray:
    """``value`` as a ``(size,)`` array of numbers in ``[low, high]`` (any size >= 2 if None)."""
    if not isinstance(value, list) or len(value) < 2 or (size is not None and len(value) != size):
        wanted = "at least 2" if size is None else str(size)
        raise ValueError(f"{where} must be a list of {wanted} numbers, got {value!r}.")
    return np.array([json_number(v, f"{where}[{i}]", low, high) for i, v in enumerate(value)])


def parse_calibration(data: object, source: str = "calibration") -> CCCalibration:
    """Validate the decoded JSON of a calibration file (untrusted input).

    Raises:
        ValueError: one sentence naming the first bad key and its value.
    """
    data, seed_start, campaigns = training_file_header(
        data, source, CALIBRATION_FORMAT, "the curves"
    )
    horizon = json_number(data.get("horizon_hours"), f"{source}: horizon_hours", 1, 1e5, True)
    block = json_number(
        data.get("block_campaigns"), f"{source}: block_campaigns", 1, campaigns, True
    )
    sizes = block_sizes(int(campaigns), int(block))
    curves = {}
    for name, entry in json_object(data.get("scenarios"), f"{source}: scenarios").items():
        where = f"{source}: scenarios.{name}"
        entry = json_object(entry, where)
        kappa = _array(entry.get("kappa"), f"{where}.kappa", *KAPPA_BOUNDS, None)
        if kappa.size < SATURATION_POINTS:
            raise ValueError(
                f"{where}.kappa must hold at least {SATURATION_POINTS} margins, got {kappa.size}."
            )
        if np.any(np.diff(kappa) <= 0):
            raise ValueError(f"{where}.kappa must be strictly increasing, got {kappa.tolist()}.")
        rates = {
            key: _array(entry.get(key), f"{where}.{key}", 0.0, 1.0, kappa.size)
            for key in ("miss_rate", "miss_rate_measured")
        }
        if np.any(np.diff(rates["miss_rate"]) > 0):
            listed = rates["miss_rate"].tolist()
            raise ValueError(f"{where}.miss_rate must not increase with kappa, got {listed}.")
        blocks = entry.get("miss_rate_blocks")
        if not isinstance(blocks, list) or len(blocks) != sizes.size:
            raise ValueError(
                f"{where}.miss_rate_blocks must be a list of {sizes.size} lists (one per block "
                f"of {block:.0f} campaigns), got {blocks!r}."
            )
        blocks = np.array(
            [
                _array(row, f"{where}.miss_rate_blocks[{i}]", 0.0, 1.0, kappa.size)
                for i, row in enumerate(blocks)
            ]
        )
        pooled = pooled_rates(blocks, sizes)
        if not np.allclose(pooled, rates["miss_rate_measured"], rtol=0, atol=1e-9):
            raise ValueError(
                f"{where}.miss_rate_measured must be the blocks' mean weighted by their "
                f"campaigns ({pooled.tolist()}), got {rates['miss_rate_measured'].tolist()}."
            )
        curves[name] = MissRateCurve(kappa, rates["miss_rate"], rates["miss_rate_measured"], blocks)
    return CCCalibration(curves, int(seed_start), int(campaigns), int(block), int(horizon), source)


def load_calibration(path: Path | str | None = None) -> CCCalibration:
    """Read and validate a calibration file (default: the shipped one).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not JSON, or a key missing or out of range (the message names it).
    """
    path = shipped_calibration_path() if path is None else Path(path)
    what = "planner_cc calibration file"
    return parse_calibration(read_json(path, what), f"{what} {str(path)!r}")
