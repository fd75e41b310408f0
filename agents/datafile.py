"""The package's data files (``agents/data/``): where they are, and how their JSON is read and
validated as untrusted input, one sentence naming the first bad key."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from budgetgym.envs.scenarios import TRAIN_SEED_LIMIT


def shipped_data_path(name: str) -> Path:
    """Path of the data file ``name`` shipped in ``budgetgym.agents.data``."""
    return Path(str(resources.files("budgetgym.agents.data").joinpath(name)))


def read_json(path: Path, what: str) -> object:
    """The decoded JSON of the file at ``path`` (``what`` names it in errors).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not valid JSON.
    """
    text = Path(path).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} {str(path)!r} is not valid JSON: {err}.") from err


def json_number(value: object, where: str, low: float, high: float, integer: bool = False) -> float:
    """``value`` as a float in ``[low, high]``; a one-sentence ``ValueError`` naming ``where``."""
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        what = "an integer" if integer else "a number"
        raise ValueError(f"{where} must be {what} in [{low:g}, {high:g}], got {value!r}.")
    return float(value)


def json_object(value: object, where: str) -> dict:
    """``value`` if it is a JSON object, else a ``ValueError`` naming ``where``."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a JSON object, got {type(value).__name__}.")
    return value


def training_file_header(
    data: object, source: str, file_format: str, what: str
) -> tuple[dict, float, float]:
    """Check the header every file fitted on training campaigns shares: a JSON object with
    ``format`` equal to ``file_format`` and ``seed_start`` / ``campaigns`` inside the training
    seeds (``what`` names the measured data in the error). Returns the object, ``seed_start``
    and ``campaigns``; a one-sentence ``ValueError`` naming ``source`` otherwise."""
    data = json_object(data, source)
    if data.get("format") != file_format:
        raise ValueError(f"{source}: format must be {file_format!r}, got {data.get('format')!r}.")
    seed_start = json_number(data.get("seed_start"), f"{source}: seed_start", 0, 1e12, True)
    campaigns = json_number(data.get("campaigns"), f"{source}: campaigns", 1, 1e6, True)
    if seed_start + campaigns > TRAIN_SEED_LIMIT:
        raise ValueError(
            f"{source}: {what} must use training seeds (below {TRAIN_SEED_LIMIT:,}), got "
            f"seeds {seed_start:.0f} to {seed_start + campaigns - 1:.0f}."
        )
    return data, seed_start, campaigns


def write_json(path: Path, data: object) -> None:
    """Write ``data`` as indented JSON to ``path`` (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
