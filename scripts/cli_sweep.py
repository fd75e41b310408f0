"""The ``sweep`` verb: a hyperparameter search on Ray Tune with Optuna's TPE and ASHA."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console

from budgetgym.scripts.cli_common import (
    CLIError,
    add_verb,
    check_positive,
    check_writable,
    compile_simulator,
)

#: Where sweeps go by default (git-ignored, beside the training runs).
SWEEP_ROOT = Path("runs") / "sweeps"
EXTRA_HINT = 'pip install "budgetgym[sweep]"'


def add_cluster_options(p: argparse.ArgumentParser, what: str, default: str) -> None:
    """``--address`` and ``--cpus``, shared by ``sweep`` and ``train --seeds``; ``default``
    says what happens without ``--address``."""
    p.add_argument(
        "--address",
        metavar="ADDR",
        help=f"Run {what} on Ray: 'auto' or HOST:PORT joins the cluster started with "
        "'ray start --head' (ray://HOST:PORT through Ray Client), 'local' starts Ray inside "
        f"this command (without --address: {default}). The run directory must be on a folder "
        "every machine sees.",
    )
    p.add_argument(
        "--cpus",
        type=int,
        help="CPUs of the Ray started inside this command (default: all of this machine's).",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` verb."""
    p = add_verb(
        subparsers,
        "sweep",
        help="Search hyperparameters with Ray Tune (Optuna TPE, ASHA early stopping).",
        description=(
            "Train --trials runs of --config with values drawn from --space (a YAML mapping of "
            "dotted config paths to uniform, loguniform, int or choice) by Optuna's TPE, stop "
            "weak trials early with ASHA on the validation objective (total GMV as % of the "
            "planner's on validation campaigns, less --miss-penalty points per point of "
            "ROI-miss rate above --miss-limit), and write the results table, the importance "
            "and parallel-coordinate plots and the best config. Each trial is a run directory "
            "under DIR/trials/. Needs the sweep extra: " + EXTRA_HINT + "."
        ),
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="Base config (file path or bundled name).")
    source.add_argument(
        "--resume",
        metavar="DIR",
        help="Continue the sweep in DIR: finished trials are kept, the others continue. Loads "
        "Ray Tune's pickled state from DIR/tune: resume only sweeps you ran.",
    )
    p.add_argument("--space", type=Path, help="Search-space YAML (experiments/sweeps/*.yaml).")
    p.add_argument("--trials", type=int, default=16, help="Trials to run.")
    p.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="Override base config fields by dotted path, as train --set does.",
    )
    p.add_argument(
        "--run-dir", help=f"Sweep directory (default: {SWEEP_ROOT}/<config>-<date-time>)."
    )
    p.add_argument(
        "--cpus-per-trial",
        type=int,
        default=1,
        help="CPUs each trial reserves, and its torch threads (numba uses one).",
    )
    p.add_argument("--miss-limit", type=float, default=10.0, help="ROI-miss rate (%%) allowed.")
    p.add_argument(
        "--miss-penalty",
        type=float,
        default=2.0,
        help="Objective points lost per point of ROI-miss rate above --miss-limit.",
    )
    p.add_argument(
        "--reduction-factor",
        type=int,
        default=3,
        help="ASHA keeps the best 1/N of the trials at each rung (eval_freq * N^k steps).",
    )
    p.add_argument(
        "--max-failures", type=int, default=2, help="Restarts of a trial whose process dies."
    )
    p.add_argument("--seed", type=int, default=0, help="Seed of Optuna's TPE sampler.")
    add_cluster_options(p, "the trials", "local")
    p.set_defaults(handler=sweep_command)


def sweep_command(args: argparse.Namespace) -> int:
    """Handler of ``budgetgym sweep``."""
    # Without the sweep extra this raises ModuleNotFoundError, which `budgetgym` turns into one
    # line naming the extra to install, before any work.
    import optuna  # noqa: F401
    import ray  # noqa: F401

    from budgetgym.agents.config import check_device_available, load_config
    from budgetgym.agents.sweeps.space import Objective, load_space
    from budgetgym.agents.sweeps.tuner import resume_sweep, run_sweep

    console = Console(soft_wrap=True)
    check_positive("--cpus", args.cpus)
    if args.resume:
        if args.config or args.space or args.set or args.run_dir:
            raise CLIError("--resume takes only --address and --cpus: the rest is the sweep's.")
        results = resume_sweep(args.resume, address=args.address, cpus=args.cpus,
                               log=console.print)  # fmt: skip
        return 0 if results.best is not None else 1
    if args.space is None:
        raise CLIError("--config needs --space FILE, the search space.")
    for name in ("--trials", "--cpus-per-trial", "--reduction-factor"):
        check_positive(name, getattr(args, name[2:].replace("-", "_")))
    if args.reduction_factor < 2:
        raise CLIError(f"--reduction-factor must be >= 2, got {args.reduction_factor}.")
    if args.max_failures < 0:
        raise CLIError(f"--max-failures must be >= 0, got {args.max_failures}.")
    config = load_config(args.config, dotlist=args.set)
    check_device_available(config.device)
    space = load_space(args.space, config)
    objective = Objective(args.miss_limit, args.miss_penalty)
    objective.check(config)
    stem = Path(args.config).stem
    root = Path(args.run_dir or SWEEP_ROOT / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    check_writable(root)
    batch = (*config.env.campaigns_per_scenario, config.eval.n_eval_episodes)
    compile_simulator(console, batch)
    results = run_sweep(
        config,
        space,
        root,
        trials=args.trials,
        cpus_per_trial=args.cpus_per_trial,
        objective=objective,
        reduction_factor=args.reduction_factor,
        max_failures=args.max_failures,
        seed=args.seed,
        address=args.address,
        cpus=args.cpus,
        log=console.print,
    )
    return 0 if results.best is not None else 1
