"""The search space of a sweep and its objective.

A search space is a YAML mapping from config fields, by the dotted paths ``--set`` uses, to one
distribution each::

    hyperparams.learning_rate: {loguniform: [1.0e-5, 1.0e-3]}   # low, high (> 0)
    hyperparams.clip_range: {uniform: [0.1, 0.3]}                # low, high
    hyperparams.n_epochs: {int: [5, 20]}                         # low, high, both included
    env.roi_penalty_coef: {choice: [1.0, 1.5, 2.0]}              # scalars (numbers, names, bools)

:func:`load_space` checks it against the config schema before anything starts: an unknown path
fails with its name and the closest valid key, and every bound and choice must give a valid
config on its own. ``total_timesteps`` and ``eval.*`` cannot be searched: they define the
validation that ranks the trials and ASHA's time axis.

The objective (:class:`Objective`) is the validation campaigns' total GMV as a percentage of
the information-fair planner's on the same campaigns (``gmv_ratio_to_planner_pct``), minus
``miss_penalty`` points per percentage point of ROI-miss rate above ``miss_limit_pct``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictStr

from budgetgym.agents.config import (
    Integer,
    TrainConfig,
    format_validation_error,
    read_yaml,
    set_dotted,
    validate_config,
)

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
#: Paths a space may not search: they define the validation that ranks trials and ASHA's clock.
FIXED_PATHS = ("total_timesteps", "eval")
Number = StrictFloat | Integer
Scalar = StrictBool | Integer | StrictFloat | StrictStr | None


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Dimension(_Strict):
    """One searched field: exactly one of the four distributions."""

    uniform: tuple[Number, Number] | None = None
    """Floats uniform in ``[low, high]``."""
    loguniform: tuple[Number, Number] | None = None
    """Floats log-uniform in ``[low, high]``, ``low > 0``."""
    int: tuple[Integer, Integer] | None = None
    """Integers uniform in ``[low, high]``, both included."""
    choice: Annotated[tuple[Scalar, ...], Field(min_length=1)] | None = None
    """One of these values (numbers, strings, booleans or null)."""

    @property
    def kind(self) -> str:
        return next(name for name in DISTRIBUTIONS if getattr(self, name) is not None)

    @property
    def corners(self) -> tuple[Any, ...]:
        """The values that must each give a valid config: both bounds, or every choice."""
        return tuple(getattr(self, self.kind))

    def check(self) -> None:
        """``ValueError`` unless exactly one distribution is given with ordered bounds."""
        given = [name for name in DISTRIBUTIONS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(DISTRIBUTIONS)}, got {given or 0}")
        if self.kind != "choice":
            low, high = self.corners
            if not low < high:
                raise ValueError(f"{self.kind} needs low < high, got [{low}, {high}]")
            if self.kind == "loguniform" and low <= 0:
                raise ValueError(f"loguniform needs low > 0, got {low}")

    def tune_domain(self) -> Any:
        """The Ray Tune sampler of this dimension."""
        from ray import tune

        values = self.corners
        if self.kind == "uniform":
            return tune.uniform(*values)
        if self.kind == "loguniform":
            return tune.loguniform(*values)
        if self.kind == "int":
            return tune.randint(values[0], values[1] + 1)  # Tune's upper bound is exclusive
        return tune.choice(list(values))

    def optuna_distribution(self) -> Any:
        """The same distribution in Optuna's terms (for its importance and plots)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        values = self.corners
        if self.kind == "uniform":
            return FloatDistribution(*values)
        if self.kind == "loguniform":
            return FloatDistribution(*values, log=True)
        if self.kind == "int":
            return IntDistribution(*values)
        return CategoricalDistribution(values)


@dataclass(frozen=True)
class SearchSpace:
    """Dotted config path -> :class:`Dimension`, in the file's order."""

    dimensions: dict[str, Dimension]

    @property
    def paths(self) -> list[str]:
        return list(self.dimensions)

    def tune_space(self) -> dict[str, Any]:
        """Ray Tune's ``param_space``: ``{dotted path: sampler}``."""
        return {path: dim.tune_domain() for path, dim in self.dimensions.items()}

    def to_yaml_data(self) -> dict[str, Any]:
        """The space as it is written in YAML."""
        return {path: {dim.kind: list(dim.corners)} for path, dim in self.dimensions.items()}


def apply_params(base: TrainConfig, params: dict[str, Any], source: str) -> TrainConfig:
    """``base`` with each ``{dotted path: value}`` of ``params`` set, validated (``ValueError``
    naming the key, from ``source``, when the result is not a valid config)."""
    data = base.model_dump(mode="json")
    for path, value in params.items():
        data = set_dotted(data, path, value)
    return validate_config(data, source=source)


def load_space(path: str | Path, base: TrainConfig) -> SearchSpace:
    """Read and check a search-space YAML against ``base`` (the config the sweep starts from).

    Raises:
        FileNotFoundError: no such file.
        ValueError: malformed YAML, an entry that is not one distribution with ordered bounds,
            a fixed path (``total_timesteps``, ``eval.*``), an unknown config path, or a bound
            or choice that does not give a valid config; the message names the path.
    """
    from pydantic import ValidationError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Search space {path} not found.")
    data = read_yaml(path)
    dimensions: dict[str, Dimension] = {}
    for key, spec in data.items():
        where = f"Search space {path}, {key}"
        if not isinstance(key, str) or not all(key.split(".")):
            raise ValueError(f"{where}: keys are dotted config paths such as hyperparams.gamma.")
        if key.split(".")[0] in FIXED_PATHS:
            raise ValueError(
                f"{where}: total_timesteps and eval.* cannot be searched (they define the "
                "validation that ranks the trials and ASHA's time axis); set them with --set."
            )
        if not isinstance(spec, dict):
            raise ValueError(
                f"{where}: expected a mapping such as {{loguniform: [1.0e-5, 1.0e-3]}}, "
                f"got {spec!r}."
            )
        try:
            dim = Dimension.model_validate(spec)
            dim.check()
        except ValidationError as err:
            raise ValueError(f"{where}: {format_validation_error(err)}") from None
        except ValueError as err:
            raise ValueError(f"{where}: {err}.") from None
        for value in dim.corners:
            apply_params(base, {key: value}, source=f"{where}={value!r}")
        dimensions[key] = dim
    if not dimensions:
        raise ValueError(f"Search space {path} names no config field to search.")
    return SearchSpace(dimensions)


@dataclass(frozen=True)
class Objective:
    """What a sweep maximizes, from one validation's metrics (validation campaigns only).

    ``gmv_ratio_to_planner_pct - miss_penalty * max(0, 100 * roi_violation_rate -
    miss_limit_pct)``: the total GMV of the validation campaigns as % of the planner's on the
    same campaigns, less ``miss_penalty`` points per point of ROI-miss rate above the limit.
    """

    miss_limit_pct: float = 10.0
    miss_penalty: float = 2.0

    METRIC = "objective"

    def __call__(self, metrics: dict[str, float]) -> float:
        if "gmv_ratio_to_planner_pct" not in metrics:
            raise ValueError(
                "the sweep objective needs the planner's GMV on the validation campaigns: set "
                "eval.references true"
            )
        excess = max(0.0, 100.0 * metrics["roi_violation_rate"] - self.miss_limit_pct)
        return float(metrics["gmv_ratio_to_planner_pct"] - self.miss_penalty * excess)

    def check(self, config: TrainConfig) -> None:
        """``ValueError`` unless ``config`` validates periodically with the references."""
        if not config.eval.references:
            raise ValueError(
                "budgetgym sweep ranks trials by validation GMV as % of the planner's: set "
                "eval.references true (--set eval.references=true)."
            )
        if config.eval.eval_freq <= 0 or config.eval.eval_freq > config.total_timesteps:
            raise ValueError(
                f"budgetgym sweep needs validations during training for ASHA: eval.eval_freq "
                f"({config.eval.eval_freq:,}) must be between 1 and total_timesteps "
                f"({config.total_timesteps:,})."
            )
