"""Training with Stable-Baselines3 on the batched simulator: start, resume, several seeds.

``train(config, run_dir)`` builds ``VecNormalize(VecMonitor(BudgetVecEnv))``, the algorithm from
the config (``ALGO(policy, env, **config.sb3_kwargs())``), the callbacks (validation with
domain metrics, checkpoints, progress, hparams, Ctrl-C) and runs ``learn``. At the end it saves
``final/`` and compares the trained policy with every baseline and the oracle on held-out
campaigns (:func:`~budgetgym.agents.report.compare_run`), writing ``eval/`` and ``report.md``.

``resume(run_dir)`` continues from the newest intact saved state (``checkpoints/``, ``best/`` or
``final/``) with the same step counter, optimizer state and normalization statistics, or
completes a missing final comparison. ``train_seeds`` trains several seeds in parallel processes
and aggregates them (mean ± 95% CI, learning curves).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

from budgetgym.agents.algorithms import algorithm_spec
from budgetgym.agents.callbacks import (
    HParamsCallback,
    ProgressCallback,
    RunCheckpointCallback,
    ScenarioAdvantageNorm,
    StopOnRequestCallback,
    ValidationCallback,
    compute_references,
    format_metrics,
    training_progress,
)
from budgetgym.agents.channel_set import channels_of
from budgetgym.agents.checkpoints import (
    LoadedCheckpoint,
    RunPaths,
    SkippedCheckpoint,
    checkpoint_step,
    load_checkpoint,
    new_model,
    python_command,
    quiet_render_mode_warning,
    read_versions,
    remove_path,
    run_of_checkpoint,
    save_checkpoint,
    staging_path,
    versions,
    write_json,
)
from budgetgym.agents.config import TrainConfig, load_config
from budgetgym.agents.imitation import attach_imitation
from budgetgym.agents.lagrangian import LagrangianUpdate, PIDLagrangian
from budgetgym.agents.progress import LineProgress, is_terminal
from budgetgym.agents.random_search import attach_search
from budgetgym.agents.report import compare_run
from budgetgym.agents.residual import ResidualAction, venv_channels
from budgetgym.agents.runlock import holds_run_lock
from budgetgym.agents.verdict import versus_best_rule
from budgetgym.agents.wrappers import (
    DenseRoiPenalty,
    LagrangianReward,
    PairedBaseline,
    RoiGuardAction,
    RoiMissPenalty,
    lagrangian_of,
)
from budgetgym.envs import TRAIN_SEED_LIMIT, BudgetVecEnv


# --------------------------------------------------------------------------------------------
# Environments
# --------------------------------------------------------------------------------------------
class MultiScenarioVecEnv(VecEnv):
    """Several ``BudgetVecEnv`` (one per scenario) concatenated into one ``VecEnv``.

    All share the horizon, so every campaign ends and resets in the same step, and the channel
    list, so they share the observation and action spaces (``ValueError`` otherwise).
    """

    def __init__(self, envs: Sequence[BudgetVecEnv]) -> None:
        self.envs = list(envs)
        first_channels = channels_of(self.envs[0].campaigns)
        for env in self.envs[1:]:
            if channels_of(env.campaigns) != first_channels:
                raise ValueError(
                    f"Scenarios {self.envs[0].campaigns.scenario!r} and "
                    f"{env.campaigns.scenario!r} have different channel lists "
                    f"({first_channels.describe()}; {channels_of(env.campaigns).describe()}): "
                    "one policy trains on one list."
                )
        self.sizes = [e.num_envs for e in self.envs]
        first = self.envs[0]
        super().__init__(sum(self.sizes), first.observation_space, first.action_space)
        self._bounds = np.cumsum([0, *self.sizes])
        self._actions: np.ndarray | None = None

    def _slices(self) -> list[slice]:
        return [slice(a, b) for a, b in zip(self._bounds[:-1], self._bounds[1:], strict=True)]

    def reset(self) -> np.ndarray:
        seed = self._seeds[0]
        for i, env in enumerate(self.envs):
            env.seed(None if seed is None else (seed + i * 100_003) % TRAIN_SEED_LIMIT)
        self._reset_seeds()
        return np.concatenate([env.reset() for env in self.envs])

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        obs, rewards, dones, infos = [], [], [], []
        for env, part in zip(self.envs, self._slices(), strict=True):
            o, r, d, i = env.step(self._actions[part])
            obs.append(o)
            rewards.append(r)
            dones.append(d)
            infos.extend(i)
        return np.concatenate(obs), np.concatenate(rewards), np.concatenate(dones), infos

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        envs = [self.envs[self._env_of(i)] for i in self._idx(indices)]
        return [getattr(env.campaigns, attr_name) for env in envs]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        for env in self.envs:
            env.set_attr(attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list:
        return [
            getattr(self.envs[self._env_of(i)].campaigns, method_name)(*args, **kwargs)
            for i in self._idx(indices)
        ]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._idx(indices))

    def _idx(self, indices: Any) -> list[int]:
        return list(self._get_indices(indices))

    def _env_of(self, index: int) -> int:
        return int(np.searchsorted(self._bounds, index, side="right") - 1)


def default_torch_threads(workers: int = 1) -> int:
    """Torch threads per training process: the machine's cores shared among ``workers``."""
    return max(1, (os.cpu_count() or 1) // workers)


def limit_threads(torch_threads: int = 1) -> None:
    """Set torch's threads and one numba thread. Training steps small batches (the serial
    simulator kernel), so numba threads only contend (its parallel kernels slow ~20x under load);
    torch's threads speed up the gradient updates, about half of a run, when cores are free."""
    import torch

    torch.set_num_threads(torch_threads)
    try:
        import numba

        numba.set_num_threads(1)
    except (ImportError, ValueError):
        pass


def env_kwargs(config: TrainConfig) -> dict[str, Any]:
    """Task arguments shared by training and evaluation environments."""
    env = config.env
    return {
        "reward_mode": env.reward_mode,
        "roi_penalty_coef": env.roi_penalty_coef,
        "horizon_hours": env.horizon_hours,
    }


def make_train_env(config: TrainConfig, seed: int) -> VecEnv:
    """``VecMonitor(BudgetVecEnv)`` (or several concatenated, or with ``DenseRoiPenalty``
    for ``reward_shaping: dense_roi_penalty``, ``RoiMissPenalty`` for ``roi_miss_penalty`` and
    ``LagrangianReward`` for ``lagrangian``; :mod:`budgetgym.agents.wrappers`),
    then ``PairedBaseline`` for ``paired_baseline``, under ``ResidualAction`` for a residual
    policy, seeded with ``seed``."""
    scenarios = config.env.scenarios
    kwargs = env_kwargs(config)
    dense = config.env.reward_shaping == "dense_roi_penalty"
    lagrangian = config.lagrangian
    kwargs["reward_mode"] = config.training_reward_mode  # GMV where a wrapper prices the ROI
    with quiet_render_mode_warning():
        sizes = config.env.campaigns_per_scenario
        envs = [
            BudgetVecEnv(n, scenario=s, **kwargs) for s, n in zip(scenarios, sizes, strict=True)
        ]
        venv: VecEnv = envs[0] if len(envs) == 1 else MultiScenarioVecEnv(envs)
        venv.seed(seed)
        if dense:
            venv = DenseRoiPenalty(venv, config.env.roi_penalty_coef)
        if config.env.roi_miss_penalty > 0:
            venv = RoiMissPenalty(venv, config.env.roi_miss_penalty)
        if lagrangian is not None:
            gains = lagrangian.model_dump(exclude={"constraint"})
            venv = LagrangianReward(venv, lagrangian.constraint, PIDLagrangian.start(**gains))
        venv = VecMonitor(venv)
        paired = None
        if config.env.paired_baseline != "none":
            charge = config.env.roi_penalty_coef if config.env.twin_pays_roi_charge else None
            venv = paired = PairedBaseline(venv, envs, config.env.paired_baseline, charge)
        if config.roi_guard is not None:  # below the residual: it guards the final action
            venv = RoiGuardAction(venv, config.roi_guard, venv_channels(venv))
        if config.residual_base != "none":
            same_rule = paired is not None and paired.rule == config.residual_base
            venv = ResidualAction(venv, config.residual_base, paired if same_rule else None)
        return venv


def normalize_train_env(config: TrainConfig, venv: VecEnv) -> VecNormalize:
    """``VecNormalize`` over the training env (:func:`make_train_env`) as a new run builds it:
    the ``normalize`` section's settings, the algorithm's discount."""
    with quiet_render_mode_warning():
        return VecNormalize(venv, gamma=config.hyperparams.gamma, **config.normalize.model_dump())


class _FrozenMeanStd(RunningMeanStd):
    """Running statistics that no longer update (``VecNormalize`` calls ``update`` each step)."""

    def update(self, arr: np.ndarray) -> None:
        pass


def keep_imitation_statistics(config: TrainConfig, vecnorm: VecNormalize) -> None:
    """After an imitation warm start, hold ``vecnorm``'s observation statistics where imitation
    set them; its return statistics keep updating.

    The actor was fitted on observations normalized by the imitation dataset's statistics, and
    the learner's own states move them: ``dagger``'s student misses 20% of 128 validation
    targets with its own statistics and 31% with them merged with 250k of its training states,
    before any gradient step. PPO would start from a policy it never fitted.
    """
    if config.imitation is not None:
        stats, frozen = vecnorm.obs_rms, _FrozenMeanStd(shape=vecnorm.obs_rms.mean.shape)
        frozen.mean, frozen.var, frozen.count = stats.mean, stats.var, stats.count
        vecnorm.obs_rms = frozen


def campaign_seed(config: TrainConfig, num_timesteps: int) -> int:
    """First training campaign seed: the config seed, shifted on resume so as not to repeat."""
    offset = (num_timesteps // max(config.env.horizon_hours, 1)) * 7919
    return int((config.seed + offset) % (TRAIN_SEED_LIMIT - config.env.n_envs))


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
#: Called after each validation with the step, the validation metrics and the checkpoint saved
#: at that step (``budgetgym sweep`` reports them to Ray Tune).
ValidationHook = Callable[[int, dict[str, float], Path], None]


@dataclass
class TrainResult:
    """What a training run produced."""

    run_dir: Path
    num_timesteps: int
    interrupted: bool
    elapsed_s: float
    checkpoint: Path
    validation: dict[str, float] = field(default_factory=dict)
    comparison: list[dict[str, Any]] | None = None
    stop_signal: int = signal.SIGINT  # what interrupted it (exit code 128 + this)


def default_run_dir(config_path: str | Path, seed: int, root: Path = Path("runs")) -> Path:
    """``runs/<config name>/<date-time>-seed<seed>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return root / Path(config_path).stem / f"{stamp}-seed{seed}"


# What a run writes into its directory (``--overwrite`` removes these and nothing else).
RUN_ENTRIES = (
    "config.yaml", "command.txt", "versions.json", "tb", "evaluations.jsonl", "checkpoints",
    "best", "final", "eval", "report.md", "validation_references.json",
)  # fmt: skip


def _check_new_run_dir(path: Path, overwrite: bool = False) -> None:
    """Refuse a directory that already holds a run, or clear the run from it (``overwrite``:
    the entries of :data:`RUN_ENTRIES`, other files stay)."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"Run directory {path} exists and is not a directory.")
    used = [path / name for name in RUN_ENTRIES if (path / name).exists()]
    if not used:
        return
    if not overwrite:
        raise ValueError(
            f"Run directory {path} already holds a run; resume it with `budgetgym train "
            f"--resume {path}`, start it afresh with --overwrite, or choose another --run-dir."
        )
    for entry in used:
        remove_path(entry)


# --------------------------------------------------------------------------------------------
# Train / resume
# --------------------------------------------------------------------------------------------
@holds_run_lock("run_dir", create=True)
def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    progress: bool = True,
    report: Callable[[int, dict[str, float]], None] | None = None,
    final_comparison: bool = True,
    log: Callable[[str], None] = print,
    torch_threads: int | None = None,
    overwrite: bool = False,
    on_validation: ValidationHook | None = None,
) -> TrainResult:
    """Train a new run into ``run_dir`` (which must not already hold one, unless
    ``overwrite``: then the old run's files are removed first).

    ``torch_threads`` defaults to every core (:func:`default_torch_threads`); it is recorded in
    ``versions.json``, since the float sums of the gradient updates depend on it.
    ``on_validation``: see :data:`ValidationHook` (a checkpoint is saved at every validation).
    """
    torch_threads = torch_threads or default_torch_threads()
    limit_threads(torch_threads)
    run_dir = Path(run_dir)
    _check_new_run_dir(run_dir, overwrite)
    paths = RunPaths(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(config.to_yaml())
    write_json(paths.versions, {**versions(), "torch_threads": torch_threads})
    _append_command(paths)

    vecnorm = normalize_train_env(config, make_train_env(config, campaign_seed(config, 0)))
    model = new_model(config, vecnorm)
    if config.imitation is not None:  # dagger's settings, or PPO's warm start (fitted here)
        attach_imitation(model, config, log, progress, paths.tensorboard / "imitation")
        keep_imitation_statistics(config, vecnorm)
    if config.ars is not None:
        attach_search(model, config)
    return _learn(
        model, config, paths, progress, report, final_comparison, log, None, on_validation
    )


@holds_run_lock("run_dir")
def resume(
    run_dir: str | Path,
    total_timesteps: int | None = None,
    *,
    progress: bool = True,
    report: Callable[[int, dict[str, float]], None] | None = None,
    final_comparison: bool = True,
    log: Callable[[str], None] = print,
    torch_threads: int | None = None,
    on_validation: ValidationHook | None = None,
) -> TrainResult:
    """Continue a run from a saved state (step counter, optimizer and normalization).

    From a run directory: the newest state among ``checkpoints/``, ``best/`` and ``final/``
    whose metadata, model and statistics load; the ones skipped are reported to ``log`` with
    the reason. From one of its checkpoint directories: that state, and the run's states saved
    after it are removed. Validation records and TensorBoard events logged after the state's
    step are dropped, so the run's records never go back in steps. A run already at its target
    whose final comparison is missing (interrupted) completes the comparison.

    Args:
        run_dir: the run directory, or one of its checkpoint directories.
        total_timesteps: the new overall target (default: the config's ``total_timesteps``).
        torch_threads: default: the count the run recorded (``versions.json``), else every core.
        on_validation: see :data:`ValidationHook`.

    Raises:
        FileNotFoundError: no such run, or nothing saved in it.
        ValueError: no intact state (each one's reason named), invalid config, or target
            already reached with the comparison done.
    """
    paths, chosen = _resume_target(Path(run_dir))
    torch_threads = torch_threads or _recorded_torch_threads(paths) or default_torch_threads()
    limit_threads(torch_threads)
    overrides = {"total_timesteps": total_timesteps} if total_timesteps is not None else None
    config = load_config(paths.config, overrides)
    if chosen is None:
        loaded = _newest_intact_state(paths, config, log)
    else:
        loaded = _load_state(chosen, config)
        _discard_states_after(paths, checkpoint_step(chosen), log)
    done = checkpoint_step(loaded.directory)
    where = _folder(paths, loaded.directory)
    if done >= config.total_timesteps and loaded.directory == paths.final:
        if not (final_comparison and config.eval.final_episodes > 0) or paths.report.is_file():
            raise ValueError(
                f"Run {paths.root} is already at step {done:,} (target "
                f"{config.total_timesteps:,}); pass a larger --total-timesteps to continue it."
            )
        log(f"Run {paths.root} is at step {done:,} ({where}); completing its final comparison.")
        rows = compare_run(paths, config, [str(paths.root)], progress)
        metrics = loaded.meta.get("eval_metrics") or {}
        return TrainResult(paths.root, done, False, 0.0, paths.final, metrics, rows)
    _drop_records_after(paths, done, log)
    _wait_past_event_files(paths)
    keep_imitation_statistics(
        config, loaded.train_on(make_train_env(config, campaign_seed(config, done)))
    )
    model = loaded.model
    if config.total_timesteps != _config_target(paths):
        paths.config.write_text(config.to_yaml())
    _append_command(paths)
    log(
        f"Resuming {paths.root} from {where} at step {model.num_timesteps:,}; "
        f"torch threads: {torch_threads}."
    )
    return _learn(
        model, config, paths, progress, report, final_comparison, log, loaded.meta, on_validation
    )


def _resume_target(path: Path) -> tuple[RunPaths, Path | None]:
    """The run to resume and the checkpoint directory named (None for a run directory)."""
    if not path.is_dir():
        raise FileNotFoundError(f"Run directory {path} does not exist.")
    run = None if (path / "config.yaml").is_file() else run_of_checkpoint(path)
    if run is not None and run.config.is_file():
        return run, path
    paths = RunPaths(path)
    if not paths.config.is_file():
        raise ValueError(
            f"{path} is not a budgetgym run directory (no config.yaml) nor one of its "
            "checkpoints/step_*, best/ or final/ directories."
        )
    return paths, None


def _folder(paths: RunPaths, directory: Path) -> str:
    """A state's folder as the run names it: ``checkpoints/step_000000096/``, ``best/``."""
    try:
        return f"{directory.relative_to(paths.root)}/"
    except ValueError:
        return str(directory)


def _load_state(directory: Path, config: TrainConfig) -> LoadedCheckpoint:
    """Load a saved state of the run, its model built from ``config``; ``ValueError`` if it is
    corrupt or not the config's algorithm."""
    return load_checkpoint(directory, config=config, replay_buffer=True)


def _newest_intact_state(
    paths: RunPaths, config: TrainConfig, log: Callable[[str], None]
) -> LoadedCheckpoint:
    """The newest saved state that loads; each newer or unreadable one is reported to ``log``."""
    states, skipped = paths.saved_states()
    loaded = None
    for directory in states:
        try:
            loaded = _load_state(directory, config)
            break
        except ValueError as err:
            skipped.append(SkippedCheckpoint(directory, str(err)))
    reasons = [f"{_folder(paths, bad.directory)} ({bad.reason.rstrip('.')})" for bad in skipped]
    if loaded is None:
        fresh = (
            f"start it afresh with `budgetgym train --config {paths.config} --run-dir "
            f"{paths.root} --overwrite`"
        )
        if not skipped:
            raise FileNotFoundError(
                f"No checkpoint in run directory {paths.root} to resume from (checkpoints/, "
                f"best/ and final/ are empty): {fresh}."
            )
        raise ValueError(
            f"No intact checkpoint in run directory {paths.root} to resume from; skipped "
            f"{'; '.join(reasons)}: {fresh}."
        )
    for bad in skipped:
        log(f"Skipped {_folder(paths, bad.directory)}: {bad.reason}")
    return loaded


def _discard_states_after(paths: RunPaths, step: int, log: Callable[[str], None]) -> None:
    """Remove the run's states saved after ``step`` (and the final comparison with ``final/``),
    so that a later resume and the pruning do not mix them with the continued run's."""
    states, _ = paths.saved_states()
    later = [d for d in states if checkpoint_step(d) > step]
    if paths.final in later:
        later += [p for p in (paths.eval, paths.report) if p.exists()]
    for path in later:
        remove_path(path)
    if later:
        names = ", ".join(_folder(paths, p).rstrip("/") for p in later)
        log(f"Removed what the run saved after step {step:,}: {names}.")


def _drop_records_after(paths: RunPaths, step: int, log: Callable[[str], None]) -> None:
    """Drop the validation records (``evaluations.jsonl``, and any line a crash cut short) and
    the TensorBoard events logged after ``step``: the continued run logs those steps anew."""
    records = 0
    if paths.evaluations.is_file():
        lines = paths.evaluations.read_text().splitlines()
        kept = [line for line in lines if _record_step(line) <= step]
        records = len(lines) - len(kept)
        if records:
            tmp = staging_path(paths.evaluations, "tmp")
            tmp.write_text("".join(f"{line}\n" for line in kept))
            os.replace(tmp, paths.evaluations)
    events = sum(_truncate_event_file(p, step) for p in _event_files(paths))
    if records or events:
        log(
            f"Dropped {records} validation record(s) and {events} TensorBoard event(s) logged "
            f"after step {step:,}, the step resumed from."
        )


def _record_step(line: str) -> float:
    """``num_timesteps`` of an ``evaluations.jsonl`` line; infinity for a cut or foreign line
    (dropped with the records after the step resumed from)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return math.inf
    step = record.get("num_timesteps") if isinstance(record, dict) else None
    return step if type(step) is int else math.inf


def _event_files(paths: RunPaths) -> list[Path]:
    if not paths.tensorboard.is_dir():
        return []
    return sorted(paths.tensorboard.rglob("events.out.tfevents.*"))


def _wait_past_event_files(paths: RunPaths) -> None:
    """Wait (a second at most) until the clock is past the second the newest event file was
    created in. TensorBoard reads a folder's event files in name order, and a name starts with
    that second (``events.out.tfevents.<unix s>.<host>.<pid>.<n>``): a resumed run's file made
    in the same second as the previous one's would sort by PID, maybe before it, and its steps
    would read as going back."""
    seconds = [int(p.name.split(".")[3]) for p in _event_files(paths)
               if p.name.split(".")[3].isdigit()]  # fmt: skip
    if seconds:
        time.sleep(max(0.0, max(seconds) + 1 - time.time()))


def _truncate_event_file(path: Path, step: int) -> int:
    """Rewrite a TensorBoard event file without the events after ``step`` (and without a record
    a crash cut short); returns how many events it dropped."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    records = list(RawEventFileLoader(str(path)).Load())
    kept = [r for r in records if Event.FromString(r).step <= step]
    framing = 16  # length (8 bytes) and two CRCs (4 bytes each) around every record
    if len(kept) == len(records) and path.stat().st_size == sum(len(r) + framing for r in records):
        return 0
    tmp = staging_path(path, "tmp")
    with open(tmp, "wb") as handle:
        writer = RecordWriter(handle)
        for record in kept:
            writer.write(record)
    os.replace(tmp, path)
    return len(records) - len(kept)


def _recorded_torch_threads(paths: RunPaths) -> int | None:
    """The run's torch thread count from ``versions.json``; None if absent (older runs) or not
    a count (the file is untrusted)."""
    info = read_versions(paths.root)
    threads = info.get("torch_threads") if isinstance(info, dict) else None
    return threads if type(threads) is int and threads >= 1 else None


def _config_target(paths: RunPaths) -> int | None:
    try:
        return load_config(paths.config).total_timesteps
    except (ValueError, FileNotFoundError):
        return None


def _append_command(paths: RunPaths) -> None:
    with open(paths.command, "a") as handle:
        handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {python_command()}\n")


def _hparams(config: TrainConfig) -> dict[str, Any]:
    flat: dict[str, Any] = {"algorithm": config.algorithm, "seed": config.seed}
    flat["scenario"] = ",".join(config.env.scenarios)
    flat["campaigns_per_scenario"] = ",".join(map(str, config.env.campaigns_per_scenario))
    flat["n_envs"] = config.env.n_envs
    flat["reward_mode"] = config.env.reward_mode
    flat["roi_penalty_coef"] = config.env.roi_penalty_coef
    flat["roi_miss_penalty"] = config.env.roi_miss_penalty
    flat["paired_baseline"] = config.env.paired_baseline
    flat["twin_pays_roi_charge"] = config.env.twin_pays_roi_charge
    flat["residual_base"] = config.residual_base
    flat["total_timesteps"] = config.total_timesteps
    for key, value in config.hyperparams.model_dump(exclude={"policy_kwargs"}).items():
        flat[key] = value if isinstance(value, (int, float, str, bool)) else str(value)
    kwargs = config.hyperparams.policy_kwargs
    flat["net_arch"] = str(kwargs.net_arch)
    flat["activation_fn"] = kwargs.activation_fn
    flat["log_std_init"] = kwargs.log_std_init
    flat["action_weight_decay"] = kwargs.action_weight_decay
    flat["exclude_features"] = ",".join(kwargs.exclude_features) or "none"
    return flat


def _learn(
    model: Any,
    config: TrainConfig,
    paths: RunPaths,
    progress: bool,
    report: Callable[[int, dict[str, float]], None] | None,
    final_comparison: bool,
    log: Callable[[str], None],
    resumed_meta: dict[str, Any] | None,
    on_validation: ValidationHook | None = None,
) -> TrainResult:
    """Train ``model`` up to the config's target, save ``final/`` and compare it (unless a
    signal stopped it: then save a checkpoint). ``resumed_meta``: metadata of the state a
    resumed run continues from (None for a new run)."""
    stop = StopOnRequestCallback()
    with _StopOnSignals(stop, log) as signals:
        result = _learn_and_save(
            model, config, paths, progress, report, log, resumed_meta, stop, signals,
            on_validation,
        )  # fmt: skip
    if not final_comparison or config.eval.final_episodes <= 0:
        return result
    if result.interrupted:
        if result.checkpoint == paths.final:  # a signal while final/ was saved
            log(f"The final comparison runs with `budgetgym train --resume {paths.root}`.")
        return result
    result.comparison = compare_run(paths, config, [str(paths.root)], progress)
    return result


def _learn_and_save(
    model: Any,
    config: TrainConfig,
    paths: RunPaths,
    progress: bool,
    report: Callable[[int, dict[str, float]], None] | None,
    log: Callable[[str], None],
    resumed_meta: dict[str, Any] | None,
    stop: StopOnRequestCallback,
    signals: _StopOnSignals,
    on_validation: ValidationHook | None,
) -> TrainResult:
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(str(paths.tensorboard), ["tensorboard"]))
    scenarios = config.env.scenarios
    references = None
    if config.eval.references:
        references = compute_references(
            scenarios,
            config.eval.n_eval_episodes,
            env_kwargs(config),
            cache=paths.root / "validation_references.json",
        )
    validation = ValidationCallback(
        paths, scenarios, config.eval.n_eval_episodes, config.eval.eval_freq,
        env_kwargs(config), references,
    )  # fmt: skip
    if resumed_meta is not None:
        best = resumed_meta.get("best_mean_reward")
        best = best if isinstance(best, (int, float)) else -math.inf
        validation.restore(best, model.num_timesteps)
    checkpoints = RunCheckpointCallback(
        paths,
        config.checkpoint.save_freq,
        config.checkpoint.keep_last,
        save_replay_buffer=algorithm_spec(config.algorithm).replay_buffer,
        extra_meta=lambda: {"best_mean_reward": validation.best_mean_reward},
        log=log,
    )
    if on_validation is not None:

        def checkpoint_and_report(metrics: dict[str, float]) -> None:
            step = model.num_timesteps
            on_validation(step, metrics, checkpoints.save_now(paths.checkpoint(step)))

        validation.on_evaluate = checkpoint_and_report
    callbacks = [validation, checkpoints, stop, HParamsCallback(_hparams(config))]
    lagrangian = lagrangian_of(model.get_env())
    if lagrangian is not None:
        callbacks.append(LagrangianUpdate(lagrangian))
    if getattr(config.hyperparams, "scenario_advantage_norm", False):  # PPO only
        callbacks.append(ScenarioAdvantageNorm())
    if progress or report is not None:
        callbacks.append(ProgressCallback(config.total_timesteps, validation, report))

    remaining = max(config.total_timesteps - model.num_timesteps, 0)
    start = time.time()
    model.learn(
        remaining,
        callback=CallbackList(callbacks),
        reset_num_timesteps=resumed_meta is None,
        progress_bar=False,
    )
    elapsed = time.time() - start

    if stop.stop.is_set() and model.num_timesteps < config.total_timesteps:
        checkpoint = checkpoints.save_now(paths.checkpoint(model.num_timesteps))
        if algorithm_spec(config.algorithm).resumes:
            then = f"continue with `budgetgym train --resume {paths.root}`"
        else:
            then = f"{config.algorithm} does not resume: train it anew with --overwrite"
        log(f"Interrupted at step {model.num_timesteps:,}: saved {checkpoint}; {then}.")
        return TrainResult(
            paths.root, model.num_timesteps, True, elapsed, checkpoint, stop_signal=signals.received
        )

    if validation.last_eval_step != model.num_timesteps:
        validation.evaluate()
    extra = {
        "best_mean_reward": validation.best_mean_reward,
        "eval_metrics": validation.last_metrics,
    }
    checkpoint = save_checkpoint(model, model.get_vec_normalize_env(), paths.final, extra)
    model.get_env().close()
    log(f"Trained {model.num_timesteps:,} steps in {elapsed / 60:.1f} min; saved {checkpoint}.")
    log(f"Validation: {format_metrics(validation.last_metrics)}")
    return TrainResult(
        paths.root, model.num_timesteps, stop.stop.is_set(), elapsed, checkpoint,
        validation.last_metrics, stop_signal=signals.received,
    )  # fmt: skip


class _StopOnSignals:
    """Ctrl-C (SIGINT) and SIGTERM (what ``timeout``, Docker and Slurm send) while a run trains
    and saves: the first stops training after the current step, which saves a checkpoint; the
    second says the save is under way; the third aborts (``KeyboardInterrupt``), saving nothing.
    Outside the main thread, where handlers cannot be set, it does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, stop: StopOnRequestCallback, log: Callable[[str], None]) -> None:
        self.stop = stop
        self.log = log
        self.received = signal.SIGINT  # the first signal received
        self._count = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopOnSignals:
        try:
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        except ValueError:  # not the main thread
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    def _handle(self, signum: int, frame: Any) -> None:
        self._count += 1
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        if self._count == 1:
            self.received = signal.Signals(signum)
            self.log(
                f"{name}: stopping after this step and saving a checkpoint (a third Ctrl-C "
                "aborts without saving)."
            )
            self.stop.request_stop()
        elif self._count == 2:
            self.log(f"{name}: the checkpoint is being saved; once more aborts without saving.")
        else:
            raise KeyboardInterrupt


# --------------------------------------------------------------------------------------------
# Several seeds in parallel
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeedJob:
    """One seed's run of :func:`train_seeds`: its config (JSON), run directory and seed."""

    config_json: str
    run_dir: str
    seed: int


def seed_worker(
    config_json: str, run_dir: str, queue: Any, seed: int, torch_threads: int
) -> tuple[int, str, bool, int]:
    """Train one seed in a worker process (or Ray task), reporting progress to ``queue``;
    returns the seed, its run directory, whether it was interrupted and its steps."""
    config = TrainConfig.model_validate_json(config_json)

    def report(step: int, metrics: dict[str, float]) -> None:
        queue.put((seed, step, metrics))

    result = train(
        config,
        run_dir,
        progress=False,
        report=report,
        final_comparison=False,
        log=lambda _: None,
        torch_threads=torch_threads,
    )
    return seed, run_dir, result.interrupted, result.num_timesteps


def _run_seed_processes(
    jobs: Sequence[SeedJob],
    workers: int,
    torch_threads: int,
    bars: _SeedBars,
    log: Callable[[str], None],
) -> list[tuple[int, str, bool, int]]:
    """Run :func:`seed_worker` for each job in ``workers`` local processes (Ctrl-C reaches them:
    each saves a checkpoint and stops)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    queue = manager.Queue()
    previous = signal.signal(signal.SIGINT, lambda *_: log("Ctrl-C: seeds save and stop..."))
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [
                pool.submit(
                    seed_worker, job.config_json, job.run_dir, queue, job.seed, torch_threads
                )
                for job in jobs
            ]
            while not all(f.done() for f in futures):
                bars.drain(queue)
                time.sleep(0.5)
            bars.drain(queue)
            return [f.result() for f in futures]
    finally:
        signal.signal(signal.SIGINT, previous)
        manager.shutdown()


@holds_run_lock("root", create=True)
def train_seeds(
    config: TrainConfig,
    seeds: Sequence[int],
    workers: int,
    root: str | Path,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
    torch_threads: int | None = None,
    overwrite: bool = False,
    address: str | None = None,
    cpus: int | None = None,
) -> dict[str, Any]:
    """Train ``config`` once per seed in ``workers`` processes into ``root/seed_<s>``, each with
    ``torch_threads`` (default: the cores shared among the workers, at least one).
    ``overwrite`` removes the runs already in those folders first.

    With ``address`` the seeds run as Ray tasks instead (``budgetgym[sweep]``), each reserving
    ``torch_threads`` CPUs (default 1), on the cluster at ``address`` (``auto``, ``HOST:PORT``,
    ``ray://HOST:PORT``) or, for ``local``, on a Ray started in this process with ``cpus`` CPUs
    (default: all); see :func:`budgetgym.agents.sweeps.cluster.run_seed_tasks`. ``root`` must
    then be a folder every machine of the cluster sees at the same path.

    Then compares all seeds with the baselines and the oracle on held-out campaigns (one
    leaderboard in ``root/eval``), and writes ``root/aggregate.json``/``.md`` (mean ± 95% CI
    over seeds per metric) and ``root/learning_curves.png``.
    """
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError("--seeds needs one or more distinct seeds.")
    if workers < 1:
        raise ValueError("--workers must be >= 1.")
    root = Path(root)
    for seed in seeds:
        _check_new_run_dir(root / f"seed_{seed}", overwrite)
    root.mkdir(parents=True, exist_ok=True)
    paths = RunPaths(root)
    paths.config.write_text(config.to_yaml())
    write_json(paths.versions, versions())
    _append_command(paths)

    # Ray's workers do not start in this directory: they get absolute paths.
    where = root if address is None else root.resolve()
    jobs = [
        SeedJob(
            config.model_copy(update={"seed": s}).model_dump_json(), str(where / f"seed_{s}"), s
        )
        for s in seeds
    ]
    bars = _SeedBars(seeds, config.total_timesteps, enabled=progress)
    try:
        if address is None:
            threads = torch_threads or default_torch_threads(workers)
            results = _run_seed_processes(jobs, workers, threads, bars, log)
        else:
            # Ray is the optional `sweep` extra: imported only when a cluster is asked for.
            from budgetgym.agents.sweeps.cluster import run_seed_tasks

            results = run_seed_tasks(
                seed_worker, jobs, address, cpus, torch_threads or 1, bars, log
            )
    finally:
        bars.stop()
    if any(interrupted for _, _, interrupted, _ in results):
        log(f"Interrupted: resume each seed with `budgetgym train --resume {root}/seed_<s>`.")
        return {"interrupted": True}
    run_dirs = [Path(run_dir) for _, run_dir, _, _ in results]
    rows = None
    if config.eval.final_episodes > 0:
        rows = compare_run(paths, config, [str(d) for d in run_dirs], progress)
        log(f"Held-out comparison: {paths.eval / 'leaderboard.md'}; summary in {paths.report}.")
    summary = aggregate_seeds(root, run_dirs, rows)
    log(f"Aggregate over seeds {list(seeds)}: {root / 'aggregate.md'}")
    return summary


class _SeedBars:
    """One rich progress row per seed on a terminal, else one :class:`LineProgress` per seed
    (plain lines, no carriage returns); fed by worker reports."""

    def __init__(
        self, seeds: Sequence[int], total: int, enabled: bool, stream: TextIO | None = None
    ) -> None:
        self.enabled = enabled
        self.tasks: dict[int, Any] = {}
        self.lines: dict[int, LineProgress] = {}
        self.progress: Any = None
        if not enabled:
            return
        stream = sys.stdout if stream is None else stream
        if not is_terminal(stream):
            self.lines = {seed: LineProgress(f"seed {seed}", total, stream) for seed in seeds}
            return
        self.progress = training_progress("seed {task.fields[seed]}", stream=stream)
        self.progress.start()
        for seed in seeds:
            self.tasks[seed] = self.progress.add_task("", total=total, seed=seed, metrics="")

    def drain(self, queue: Any) -> None:
        while not queue.empty():
            seed, step, metrics = queue.get()
            if seed in self.lines:
                self.lines[seed].set_postfix_str(format_metrics(metrics))
                self.lines[seed].update(step - self.lines[seed].n)
            elif self.progress is not None:
                self.progress.update(
                    self.tasks[seed], completed=step, metrics=format_metrics(metrics)
                )

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval (0 for a single value)."""
    from scipy import stats

    arr = np.asarray(values, dtype=np.float64)
    if len(arr) < 2:
        return float(arr.mean()), 0.0
    half = stats.t.ppf(0.5 + level / 2, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr))
    return float(arr.mean()), float(half)


def read_evaluations(run_dir: Path) -> list[dict[str, Any]]:
    """The validation records of a run (``evaluations.jsonl``)."""
    path = RunPaths(run_dir).evaluations
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def aggregate_seeds(
    root: Path, run_dirs: Sequence[Path], rows: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """Mean ± 95% CI over seeds of the final validation metrics and, when available, of the
    held-out leaderboard metrics (with the paired differences from the best rule as
    ``paired_*``) and each seed's verdict against the best rule; plus one learning-curve plot."""
    finals = [read_evaluations(d)[-1] for d in run_dirs if read_evaluations(d)]
    keys = [k for k in (finals[0] if finals else {}) if k not in ("time", "new_best")]
    validation = {k: mean_ci([f[k] for f in finals]) for k in keys if k != "num_timesteps"}
    held_out: dict[str, dict[str, tuple[float, float]]] = {}
    names = {d.name for d in run_dirs}

    def is_seed_run(policy: object) -> bool:
        return str(policy).split("/")[-1] in names

    for row in (r for r in rows or [] if is_seed_run(r.get("policy", ""))):
        scenario = str(row.get("scenario", "all"))
        held_out.setdefault(scenario, {})
        paired = {f"paired_{k}": v for k, v in row.get("paired", {}).items()}
        for key, value in {**row, **paired}.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                held_out[scenario].setdefault(key, []).append(float(value))  # type: ignore[arg-type]
    verdicts: dict[str, list[dict[str, Any]]] = {}
    for verdict in filter(lambda v: is_seed_run(v["policy"]), versus_best_rule(rows or [])):
        verdicts.setdefault(verdict["scenario"], []).append(verdict)
    held_out_ci = {
        s: {k: mean_ci(v) for k, v in metrics.items()}  # type: ignore[arg-type]
        for s, metrics in held_out.items()
    }
    summary = {
        "runs": [str(d) for d in run_dirs],
        "validation": validation,
        "held_out": held_out_ci,
        "beats_best_rule": {
            scenario: [v["beats_rule"] for v in group] for scenario, group in verdicts.items()
        },
    }
    write_json(root / "aggregate.json", summary)
    lines = [f"# Aggregate over {len(run_dirs)} seeds (mean ± 95% CI)", "", "## Validation", ""]
    lines += ["| metric | mean ± CI |", "|---|---|"]
    lines += [f"| {k} | {m:,.4g} ± {h:,.3g} |" for k, (m, h) in validation.items()]
    for scenario, metrics in held_out_ci.items():
        lines += ["", f"## Held-out: {scenario}", "", "| metric | mean ± CI |", "|---|---|"]
        lines += [f"| {k} | {m:,.4g} ± {h:,.3g} |" for k, (m, h) in metrics.items()]
    if verdicts:
        lines += ["", "## Against the best rule (held out)", ""]
        lines += [
            "| scenario | seeds that beat it | GMV / rule's GMV per seed | ROI miss per seed |"
        ]
        lines += ["|---|---|---|---|"]
        for scenario, group in verdicts.items():
            met = sum(v["beats_rule"] for v in group)
            ratios = " / ".join(f"{v['gmv_ratio']:.3f}" for v in group)
            misses = (
                " / ".join(f"{100 * v['roi_violation_rate']:.1f}" for v in group)
                + f" vs {100 * group[0]['rule_roi_violation_rate']:.1f}%"
            )
            lines.append(f"| {scenario} | {met} of {len(group)} | {ratios} | {misses} |")
    (root / "aggregate.md").write_text("\n".join(lines) + "\n")
    plot_learning_curves(run_dirs, root / "learning_curves.png")
    return summary


def plot_learning_curves(run_dirs: Sequence[Path], out: Path) -> Path:
    """Validation GMV (as % of the planner's total when recorded) and ROI violation rate against
    env steps: one thin line per seed, their mean in bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("gmv", "validation GMV (CNY)"), ("roi_violation_rate", "ROI violation rate")]
    if any("gmv_ratio_to_planner_pct" in r for d in run_dirs for r in read_evaluations(d)):
        metrics[0] = ("gmv_ratio_to_planner_pct", "validation total GMV, % of the planner's")
    fig, axes = plt.subplots(1, len(metrics), figsize=(11, 4))
    for ax, (key, label) in zip(axes, metrics, strict=True):
        curves = []
        for run_dir in run_dirs:
            records = [r for r in read_evaluations(run_dir) if key in r]
            if not records:
                continue
            steps = [r["num_timesteps"] for r in records]
            values = [r[key] for r in records]
            ax.plot(steps, values, alpha=0.4, lw=1, label=run_dir.name)
            curves.append((steps, values))
        if curves:
            length = min(len(c[0]) for c in curves)
            mean = np.mean([c[1][:length] for c in curves], axis=0)
            ax.plot(curves[0][0][:length], mean, color="black", lw=2, label="mean")
        ax.set_xlabel("env steps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The resolved config of a run directory."""
    return load_config(RunPaths(Path(run_dir)).config)
