"""What the ``budgetgym`` verbs share: the user-facing error, the help format, the compile
announcement and the default output locations."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from rich.console import Console

from budgetgym.envs.compilation import compile_kernels
from budgetgym.envs.scenario_specs import is_scenario_path

#: Where evaluations and comparisons go by default (git-ignored, beside the training runs).
EVAL_ROOT = Path("runs") / "eval"
COMPILING_MESSAGE = "Compiling the simulator's kernels (first run only, about a minute)…"


class CLIError(Exception):
    """A user-facing error: printed as one sentence, exit code 2, no traceback."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's ``(default: ...)`` suffix, left off where there is nothing to show: a
    ``None`` default (the help says what happens then), an off flag, an empty list."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


def add_verb(
    subparsers: argparse._SubParsersAction, name: str, help: str, description: str
) -> argparse.ArgumentParser:
    """A sub-command with its one-line ``help`` (in ``budgetgym --help``), the ``description``
    of its own ``--help``, and its options' defaults shown."""
    return subparsers.add_parser(
        name, help=help, description=description, formatter_class=HelpFormatter
    )


def scenario_argument(value: str | None) -> str | None:
    """A ``--scenario`` value to record: a name as given, a scenario file's path made absolute
    (so that a run resumed from another directory finds it)."""
    if value is None or not is_scenario_path(value):
        return value
    return str(Path(value).expanduser().resolve())


def check_positive(name: str, value: int | None) -> None:
    """Raise :class:`CLIError` when an optional count is given and below 1."""
    if value is not None and value < 1:
        raise CLIError(f"{name} must be >= 1, got {value}.")


def check_training_seeds(seed_start: int, campaigns: int) -> None:
    """Raise ``CLIError`` unless ``--campaigns`` (>= 1) campaigns from ``--seed-start`` all lie
    in the training seeds (work fitted or calibrated on them never sees a validation or
    held-out campaign)."""
    from budgetgym.envs.scenarios import TRAIN_SEED_LIMIT

    check_positive("--campaigns", campaigns)
    if seed_start < 0 or seed_start + campaigns > TRAIN_SEED_LIMIT:
        raise CLIError(
            f"--seed-start {seed_start} with --campaigns {campaigns} leaves the "
            f"training seeds (0 to {TRAIN_SEED_LIMIT - 1:,})."
        )


def held_out_seed_start(seed_start: int | None) -> int:
    """``--seed-start`` of a held-out measurement: the first held-out seed when not given;
    ``CLIError`` below it (a benchmark never reports on training or validation campaigns)."""
    from budgetgym.envs.scenarios import EVAL_SEED_START

    if seed_start is None:
        return EVAL_SEED_START
    if seed_start < EVAL_SEED_START:
        raise CLIError(
            f"--seed-start must be >= {EVAL_SEED_START:,} (the held-out range), got {seed_start:,}."
        )
    return seed_start


def scenario_selection(values: Iterable[str]) -> list[str]:
    """``--scenarios`` values (each as :func:`~budgetgym.agents.evaluation.parse_scenarios`
    reads it: ``all``, or checked names and scenario files) as one list without repeats
    (``ValueError`` naming a bad one)."""
    from budgetgym.agents.evaluation import parse_scenarios

    return list(dict.fromkeys(name for value in values for name in parse_scenarios(value)))


def compile_simulator(console: Console, batch_sizes: Iterable[int]) -> None:
    """Load the simulator's compiled kernels for batches of these sizes. On a cold cache numba
    compiles them first (about a minute): say so, with a spinner on a terminal. A warm cache
    prints nothing."""
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:

        def announce() -> None:
            if console.is_terminal:
                stack.enter_context(console.status(COMPILING_MESSAGE))
            else:
                console.print(COMPILING_MESSAGE)

        compiled = compile_kernels(batch_sizes, on_compile=announce)
    if compiled:
        elapsed = time.perf_counter() - start
        console.print(f"Compiled the simulator's kernels in {elapsed:.0f} s (cached from now on).")


def default_eval_dir(label: str) -> Path:
    """``runs/eval/<label>-<YYYYmmdd-HHMMSS>`` (characters unsafe in a file name replaced)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._") or "policy"
    return EVAL_ROOT / f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_writable(path: Path, directory: bool = True) -> None:
    """Raise :class:`CLIError` when ``path`` (a directory to create or fill, or a file to write
    when ``directory`` is False) cannot be written, before any long work starts."""
    if path.exists():
        if path.is_dir() != directory:
            raise CLIError(
                f"Cannot write to {path}: it is {'a file' if directory else 'a directory'}."
            )
        target = path
    else:
        target = path.parent
        while not target.exists():
            target = target.parent
        if not target.is_dir():
            raise CLIError(f"Cannot write to {path}: {target} is a file.")
    if not os.access(target, os.W_OK):
        raise CLIError(f"Cannot write to {path}: {target} is not writable.")
