"""The ``budgetgym`` command line: a thin layer that parses arguments and calls the library.

Each group of verbs lives in its own module with a ``register(subparsers)`` function, so the
parser stays cheap to build (heavy imports such as torch happen inside the handlers).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console

import budgetgym
from budgetgym.scripts import cli_env, cli_eval, cli_mmm, cli_planner, cli_train
from budgetgym.scripts.cli_common import CLIError

# Modules that add verbs; each defines register(subparsers) and sets ``handler`` defaults.
COMMAND_MODULES = [cli_env, cli_train, cli_eval, cli_mmm, cli_planner]

console = Console()

# Top-level modules of the `train` extra: a verb that needs one on an env-only install says so.
TRAIN_EXTRA_MODULES = frozenset(
    {
        "torch",
        "stable_baselines3",
        "sb3_contrib",
        "tensorboard",
        "onnx",
        "onnxscript",
        "onnxruntime",
        "matplotlib",
        "tqdm",
    }
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="budgetgym",
        description="Reinforcement learning for multi-channel advertising budget allocation.",
        epilog="Run 'budgetgym COMMAND --help' for a command's options and their defaults.",
    )
    parser.add_argument("--version", action="version", version=f"budgetgym {budgetgym.__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``budgetgym`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (CLIError, ValueError, OSError) as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False)
        return 2
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in TRAIN_EXTRA_MODULES:
            raise
        console.print(
            f"[bold red]error:[/] 'budgetgym {args.command}' needs {err.name}, part of the train "
            'extra: pip install "budgetgym\\[train]"',
            highlight=False,
        )
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
