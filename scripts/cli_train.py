"""Training verbs: ``train`` (new run, resume, several seeds) and ``export`` (ONNX)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from budgetgym.scripts.cli_common import (
    CLIError,
    add_verb,
    check_positive,
    check_writable,
    compile_simulator,
    scenario_argument,
)
from budgetgym.scripts.cli_sweep import add_cluster_options

if TYPE_CHECKING:  # the config schema imports pydantic: loaded by the handlers only
    from budgetgym.agents.config import TrainConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``export`` verbs."""
    p = add_verb(
        subparsers,
        "train",
        help="Train a policy from a YAML config, resume a run, or train several seeds.",
        description=(
            "Train from --config (a file, or the name of a bundled config such as ppo_default), "
            "or continue a run with --resume DIR. Precedence: the config schema's defaults < the "
            "YAML < --set KEY=VALUE < the dedicated flags (--scenario, --seed, --total-timesteps). "
            "The run "
            "directory records the resolved config (config.yaml) and the command (command.txt)."
        ),
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="YAML experiment config (file path or bundled name).")
    source.add_argument(
        "--resume",
        metavar="DIR",
        help="Continue this run from its newest intact checkpoint among checkpoints/, best/ and "
        "final/ (or complete its final comparison); DIR may also be one of its checkpoint "
        "directories, to continue from that one (what the run saved after it is removed).",
    )
    p.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="Override config fields by dotted path, values read as YAML (quote lists for the "
        "shell): --set 'env.scenario=[mixed, hit_product]' hyperparams.learning_rate=1e-4 "
        "total_timesteps=2e6.",
    )
    p.add_argument(
        "--run-dir", help="Where to write the run (default: runs/<config>/<date-time>-seed<S>)."
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="Start afresh in a --run-dir that already holds a run, removing that run's files.",
    )
    p.add_argument(
        "--scenario",
        help="Override the config's env.scenario: a scenario name (see 'budgetgym scenario list') "
        "or the path of a scenario file (recorded as an absolute path).",
    )
    p.add_argument("--seed", type=int, help="Override the config's seed.")
    p.add_argument(
        "--total-timesteps",
        type=int,
        help="Override total env steps (with --resume: the new overall target).",
    )
    p.add_argument(
        "--seeds", type=int, nargs="+", metavar="S", help="Train one run per seed and aggregate."
    )
    p.add_argument("--workers", type=int, help="Parallel local processes for --seeds (default: 1).")
    p.add_argument(
        "--torch-threads",
        type=int,
        help="Torch threads per training process (default: CPU cores / --workers; with "
        "--address: 1, and each seed reserves that many of Ray's CPUs).",
    )
    add_cluster_options(p, "the --seeds as tasks (budgetgym[sweep])", "local processes, --workers")
    p.add_argument(
        "--no-compare",
        action="store_true",
        help="Skip the final held-out comparison with the baselines and the oracle.",
    )
    p.add_argument("--no-progress", action="store_true", help="Do not draw progress bars.")
    p.set_defaults(handler=train_command)

    p = add_verb(
        subparsers,
        "export",
        help="Export a trained run to ONNX (normalization and action clipping included).",
        description=(
            "Export the policy of a training run (its best/ checkpoint, else final/, else the "
            "latest periodic one) as an ONNX graph that maps the raw observation to the "
            "deterministic action, observation normalization, residual base rule, ROI guard "
            "and action clipping included, with a .json sidecar. 'budgetgym evaluate --policy "
            "FILE' runs it."
        ),
    )
    p.add_argument("run_dir", metavar="DIR", help="Run directory (or a checkpoint directory).")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="Export format.")
    p.add_argument("--out", type=Path, help="Output file (default: DIR/export/policy.onnx).")
    p.set_defaults(handler=export_command)


def _training_batch_sizes(config: TrainConfig) -> tuple[int, ...]:
    """Campaigns stepped together in training (per scenario) and in its validation."""
    return (*config.env.campaigns_per_scenario, config.eval.n_eval_episodes)


def train_command(args: argparse.Namespace) -> int:
    """Handler of ``budgetgym train``."""
    from budgetgym.agents import training
    from budgetgym.agents.checkpoints import RunPaths, run_of_checkpoint
    from budgetgym.agents.config import (
        check_device_available,
        load_config,
        resolve_config_path,
    )

    console = Console(soft_wrap=True)  # no line breaks inside paths
    check_positive("--total-timesteps", args.total_timesteps)
    check_positive("--workers", args.workers)
    check_positive("--cpus", args.cpus)
    check_positive("--torch-threads", args.torch_threads)
    progress = not args.no_progress
    if args.resume:
        if (
            args.seed is not None
            or args.seeds
            or args.run_dir
            or args.set
            or args.overwrite
            or args.scenario
            or args.address
            or args.cpus
        ):
            raise CLIError(
                "--resume takes only --total-timesteps: the seed, scenario, run dir and config "
                "are the run's own."
            )
        run = run_of_checkpoint(Path(args.resume))
        recorded = RunPaths(Path(args.resume)).config
        if not recorded.is_file() and run is not None:
            recorded = run.config
        if recorded.is_file():
            check_writable(recorded.parent)
            config = load_config(recorded)
            check_device_available(config.device, f"device of {recorded}")
            compile_simulator(console, _training_batch_sizes(config))
        result = training.resume(
            args.resume,
            args.total_timesteps,
            progress=progress,
            final_comparison=not args.no_compare,
            log=console.print,
            torch_threads=args.torch_threads,
        )
        return _finish(console, result)

    if args.seeds and args.seed is not None:
        raise CLIError("Use either --seed or --seeds, not both.")
    if (args.address or args.cpus) and not args.seeds:
        raise CLIError("--address and --cpus run --seeds on Ray; give --seeds.")
    if args.cpus and args.address is None:
        raise CLIError("--cpus sizes the Ray started inside the command: add --address local.")
    if args.address and args.workers:
        raise CLIError(
            "--workers sets local processes; with --address Ray places the seeds on its CPUs "
            "(--torch-threads each)."
        )
    if args.address:  # without the sweep extra: one line naming it, before any work
        import ray  # noqa: F401
    flags = {
        "env.scenario": scenario_argument(args.scenario),
        "seed": args.seed,
        "total_timesteps": args.total_timesteps,
    }
    config = load_config(args.config, flags, dotlist=args.set)
    check_device_available(config.device)
    config_path = resolve_config_path(args.config)
    if args.seeds:
        root = Path(args.run_dir) if args.run_dir else training.default_run_dir(config_path, 0)
        if not args.run_dir:
            root = root.with_name(root.name.replace("-seed0", "-seeds"))
        if args.no_compare:
            config = config.model_copy(
                update={"eval": config.eval.model_copy(update={"final_episodes": 0})}
            )
        check_writable(root)
        workers = args.workers or 1
        where = f"on Ray ({args.address})" if args.address else f"with {workers} workers"
        console.print(f"Training seeds {args.seeds} {where} into {root}")
        compile_simulator(console, _training_batch_sizes(config))
        summary = training.train_seeds(
            config,
            args.seeds,
            workers,
            root,
            progress=progress,
            log=console.print,
            torch_threads=args.torch_threads,
            overwrite=args.overwrite,
            address=args.address,
            cpus=args.cpus,
        )
        if summary.get("interrupted"):
            return 130
        console.print(f"Run directory: {root}")
        console.print(f"TensorBoard: tensorboard --logdir {root}")
        return 0

    run_dir = (
        Path(args.run_dir) if args.run_dir else training.default_run_dir(config_path, config.seed)
    )
    check_writable(run_dir)
    console.print(f"Training {config.algorithm} on {', '.join(config.env.scenarios)} "
                  f"for {config.total_timesteps:,} steps into {run_dir}")  # fmt: skip
    compile_simulator(console, _training_batch_sizes(config))
    result = training.train(
        config,
        run_dir,
        progress=progress,
        final_comparison=not args.no_compare,
        log=console.print,
        torch_threads=args.torch_threads,
        overwrite=args.overwrite,
    )
    return _finish(console, result)


def _finish(console, result) -> int:  # noqa: ANN001
    from budgetgym.agents.report import closing_lines, verdict_lines

    compared = result.comparison is not None
    for line in [*verdict_lines(result.comparison or []), *closing_lines(result.run_dir, compared)]:
        console.print(line, highlight=False, markup=False)
    return 128 + result.stop_signal if result.interrupted else 0  # 130 Ctrl-C, 143 SIGTERM


def export_command(args: argparse.Namespace) -> int:
    """Handler of ``budgetgym export``."""
    from budgetgym.agents.checkpoints import describe_checkpoint
    from budgetgym.agents.export import default_export_path, export_onnx

    out = args.out if args.out is not None else default_export_path(args.run_dir)
    if Path(args.run_dir).exists():
        check_writable(out, directory=False)
    out = export_onnx(args.run_dir, out)
    print(f"Exported {describe_checkpoint(args.run_dir)} of {args.run_dir}")
    print(f"Wrote {out} and {out.with_suffix('.json')}")
    return 0
