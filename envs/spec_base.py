"""The base of every scenario-file schema: frozen pydantic models that refuse unknown keys, and
the reading of one YAML file with errors that name the file and the key path.

Shared by ``channels.py`` (the channel table), ``scenarios.py`` (scenario and mixture files) and
``response_curves.py`` (marketing-mix response curves).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

Model = TypeVar("Model", bound=BaseModel)


class Spec(BaseModel):
    """A frozen, typed part of a scenario file: unknown keys and wrong types fail validation."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


def _ordered(value: tuple[float, float]) -> tuple[float, float]:
    if value[0] > value[1]:
        raise ValueError(f"needs low <= high, got [{value[0]}, {value[1]}]")
    return value


PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
#: ``[low, high]`` of a prior (uniform or log-uniform as the field says), positive.
PositiveRange = Annotated[tuple[PositiveFloat, PositiveFloat], AfterValidator(_ordered)]
#: ``[low, high]``, non-negative.
NonNegRange = Annotated[tuple[NonNegFloat, NonNegFloat], AfterValidator(_ordered)]
#: ``[low, high]`` of whole hours, non-negative.
HourRange = Annotated[
    tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]], AfterValidator(_ordered)
]
#: A name used in observations, file names and reports: lower case, digits and underscores.
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line per problem: ``source: key.path: message`` (list positions as ``[i]``)."""
    lines = []
    for problem in err.errors():
        path = ""
        for part in problem["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key"
        elif not isinstance(problem.get("input"), (dict, list, tuple)):
            message += f", got {problem.get('input')!r}"
        lines.append(f"{source}: {path or '(top level)'}: {message}")
    return "\n".join(lines)


def validate_mapping(model: type[Model], data: Any, source: str) -> Model:
    """``model`` validated from a parsed YAML document; raise ``ValueError`` naming ``source``
    and the key path of each problem."""
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ValueError(f"{source}: a scenario file must be a mapping of keys, got {kind}.")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ValueError(format_validation_error(err, source)) from None


def read_yaml(path: Path) -> Any:
    """The document of one YAML file (``yaml.safe_load``); a syntax error names the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"Scenario file {str(path)!r} does not exist.") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None


class _Dumper(yaml.SafeDumper):
    """Block style, except a list of plain values on one line (``[low, high]``)."""


def _represent_list(dumper: yaml.SafeDumper, value: list | tuple) -> yaml.Node:
    flow = all(not isinstance(v, (dict, list, tuple)) for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(tuple, _represent_list)


def to_yaml(data: dict[str, Any]) -> str:
    """``data`` as YAML in the key order given: mappings in block style, ``[low, high]`` lists
    on one line."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
