"""Run directories and checkpoints: model, optimizer and normalization saved and loaded together.

Run directory layout (created by ``budgetgym train``)::

    RUN/
      config.yaml          resolved config (defaults < YAML < command line)
      command.txt          the command lines that trained this run (one per start or resume)
      versions.json        python, torch, gymnasium, SB3, budgetgym, git commit, env signature
      tb/                  TensorBoard event files
      evaluations.jsonl    periodic validation metrics (one JSON object per evaluation)
      checkpoints/step_000500000/   periodic checkpoints (and one on Ctrl-C or SIGTERM)
      best/                best model on validation seeds
      final/               model at the end of training
      eval/                final comparison with the baselines and the oracle (leaderboard)
      report.md            summary of the final comparison

Every checkpoint directory holds ``model.zip`` (SB3: weights and optimizer state),
``vecnormalize.npz`` (observation and return statistics), ``meta.json`` (format, algorithm, step,
observation/action sizes and the environment signature), for the periodic checkpoints of an
algorithm with a replay buffer (SAC) ``replay_buffer.npz`` and, for a run with ``lagrangian``,
``lagrangian.json`` (the multiplier and its PID controller's state,
:mod:`budgetgym.agents.lagrangian`), written to a temporary directory and renamed into place,
so a checkpoint is either complete or absent. Loading validates them all and raises a
one-sentence ``ValueError`` for a corrupt, foreign or incompatible checkpoint.

Loading a run never executes code from it: the model is rebuilt from the run's recorded
``config.yaml`` (validated, read with YAML's safe loader) and receives only the tensors of
``model.zip`` (``torch.load(weights_only=True)``); the cloudpickled fields of SB3's ``data``
entry are never read. Statistics and replay buffers are plain ``.npz`` arrays read with
``allow_pickle=False``, metadata is JSON. Pickles of older runs (``vecnormalize.pkl``) are refused.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import budgetgym
from budgetgym.agents.algorithms import ALGORITHMS, algorithm_name, algorithm_spec
from budgetgym.agents.channel_set import DEFAULT_CHANNEL_SET, ChannelSet, channels_of
from budgetgym.agents.lagrangian import STATE_FILE as LAGRANGIAN_FILE
from budgetgym.agents.lagrangian import LagrangianState
from budgetgym.agents.privileged import (
    PrivilegedCriticPolicy,
    PrivilegedObservation,
    actor_input,
    is_privileged,
    model_env,
    privileged_dim,
)
from budgetgym.agents.residual import (
    ActionDecayPolicy,
    add_residual,
    check_residual_base,
    residual_base_of,
    venv_channels,
)
from budgetgym.agents.roi_guard import RoiGuard, apply_guard
from budgetgym.agents.wrappers import lagrangian_of, roi_guard_of
from budgetgym.envs import ENV_ID, RETIRED_ENV_IDS, retired_env_message

if TYPE_CHECKING:
    from budgetgym.agents.config import TrainConfig

CHECKPOINT_FORMAT = "budgetgym-checkpoint/1"
MODEL_FILE = "model.zip"
VECNORM_FILE = "vecnormalize.npz"
LEGACY_VECNORM_FILE = "vecnormalize.pkl"
META_FILE = "meta.json"
REPLAY_FILE = "replay_buffer.npz"


def env_signature(channels: ChannelSet = DEFAULT_CHANNEL_SET) -> str:
    """Short hash of the observation features, channels and action size of this simulator on
    ``channels`` (the reference six by default).

    Two simulator versions with the same signature accept each other's policies.
    """
    text = json.dumps([list(channels.layout.features), list(channels.names), channels.action_dim])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_env_id(meta: dict[str, Any], where: Path | str) -> None:
    """``ValueError`` unless a checkpoint's or an export's metadata records this simulator's env
    id; metadata without one was made on the retired v0 market."""
    recorded = meta.get("env_id", RETIRED_ENV_IDS[0])
    if recorded in RETIRED_ENV_IDS:
        raise ValueError(f"{where} was made on {recorded}. {retired_env_message(recorded)}")
    if recorded != ENV_ID:
        raise ValueError(
            f"{where} was made on the unknown environment {recorded!r}; this budgetgym "
            f"simulates {ENV_ID}."
        )


def recorded_channels(meta: dict[str, Any], where: Path | str) -> ChannelSet:
    """The channel list a checkpoint's or an export's metadata records (``channels``: names,
    billing, launch support); metadata without one was made on the reference six."""
    records = meta.get("channels")
    if records is None:
        return DEFAULT_CHANNEL_SET
    try:
        return ChannelSet.from_records(records)
    except (TypeError, KeyError):
        raise ValueError(f"Metadata of {where} is corrupt (channels {records!r}).") from None


@dataclass(frozen=True)
class RunPaths:
    """Paths inside a run directory."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def command(self) -> Path:
        return self.root / "command.txt"

    @property
    def versions(self) -> Path:
        return self.root / "versions.json"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tb"

    @property
    def evaluations(self) -> Path:
        return self.root / "evaluations.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        return self.root / "best"

    @property
    def final(self) -> Path:
        return self.root / "final"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    def checkpoint(self, step: int) -> Path:
        """Directory of the periodic checkpoint at ``step`` env steps."""
        return self.checkpoints / f"step_{step:09d}"

    def list_checkpoints(self) -> list[Path]:
        """Complete periodic checkpoints, oldest first by the step their metadata records.

        The folder names order them only below 1e9 steps (``step_1000000000`` sorts before
        ``step_999500000``). Raises ``ValueError`` for a checkpoint whose metadata is corrupt
        (:meth:`scan_checkpoints` skips it instead).
        """
        return sorted(self._periodic(), key=checkpoint_step)

    def _periodic(self) -> list[Path]:
        if not self.checkpoints.is_dir():
            return []
        return [p for p in self.checkpoints.glob("step_*") if (p / META_FILE).is_file()]

    def scan_checkpoints(self) -> tuple[list[Path], list[SkippedCheckpoint]]:
        """Periodic checkpoints whose metadata reads, oldest first by step, and those skipped
        because their metadata is corrupt (each with the reason)."""
        found, skipped = self._steps([*self._periodic()])
        return [path for _, path in sorted(found)], skipped

    def saved_states(self) -> tuple[list[Path], list[SkippedCheckpoint]]:
        """Every saved state of the run (``checkpoints/step_*``, ``best/``, ``final/``) whose
        metadata reads, newest first, and those skipped for corrupt metadata.

        Newest means the most env steps; at equal steps ``final/`` comes before a periodic
        checkpoint, which comes before ``best/`` (a periodic checkpoint also holds SAC's replay
        buffer). Whether the model and statistics load is checked by the caller.
        """
        rank = {self.final: 2, self.best: 0}
        states = [d for d in (self.final, self.best) if (d / META_FILE).is_file()]
        found, skipped = self._steps([*states, *self._periodic()])
        found.sort(key=lambda item: (item[0], rank.get(item[1], 1)), reverse=True)
        return [path for _, path in found], skipped

    @staticmethod
    def _steps(paths: list[Path]) -> tuple[list[tuple[int, Path]], list[SkippedCheckpoint]]:
        found: list[tuple[int, Path]] = []
        skipped: list[SkippedCheckpoint] = []
        for path in paths:
            try:
                found.append((checkpoint_step(path), path))
            except ValueError as err:
                skipped.append(SkippedCheckpoint(path, str(err)))
        return found, skipped


@dataclass(frozen=True)
class SkippedCheckpoint:
    """A saved state that cannot be used, and why (one sentence)."""

    directory: Path
    reason: str


def _run_dir_of(directory: Path) -> Path:
    """The run directory of a checkpoint directory; the directory itself outside a run."""
    run = run_of_checkpoint(directory)
    return directory if run is None else run.root


def run_of_checkpoint(directory: Path) -> RunPaths | None:
    """The run a checkpoint directory belongs to (``RUN/best``, ``RUN/final`` or
    ``RUN/checkpoints/step_*``), None for a directory that is not a checkpoint of a run."""
    directory = Path(directory)
    parent = directory.parent
    if parent.name == "checkpoints" and directory.name.startswith("step_"):
        return RunPaths(parent.parent)
    if directory.name in ("best", "final"):
        return RunPaths(parent)
    return None


def versions(channels: ChannelSet = DEFAULT_CHANNEL_SET) -> dict[str, Any]:
    """Versions of everything that shapes a run on ``channels``, plus the git commit when
    available."""
    import gymnasium
    import sb3_contrib
    import stable_baselines3
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "sb3_contrib": sb3_contrib.__version__,
        "budgetgym": budgetgym.__version__,
        "obs_dim": channels.obs_dim,
        "action_dim": channels.action_dim,
        "env_signature": env_signature(channels),
        "channels": channels.records(),
    }
    info.update(git_state())
    return info


def git_state() -> dict[str, Any]:
    """``git_commit`` and ``git_dirty`` of the budgetgym source tree, if it is a git checkout."""
    root = Path(budgetgym.__file__).parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {"git_commit": None}
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"git_commit": commit.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None}


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: into this process's temporary sibling (:func:`staging_path`),
    then renamed; a failed write (a full disk) removes the temporary file."""
    path = Path(path)
    tmp = staging_path(path, "tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def staging_path(path: Path, kind: str) -> Path:
    """``.NAME.tmp-PID`` (what this process is writing) or ``.NAME.old-PID`` (what it is
    replacing) beside ``path``: unique per process, and recognised by
    :func:`remove_partial_checkpoints` after a crash."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}")


_STAGING = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-\d+$")


def remove_partial_checkpoints(run_dir: Path) -> list[str]:
    """Clear what interrupted writes left in a run directory and its ``checkpoints/``; only
    safe while holding the run's lock (:mod:`budgetgym.agents.runlock`).

    A process killed inside :func:`save_checkpoint` or :func:`write_json` leaves temporary
    siblings (:func:`staging_path`). A checkpoint whose own folder is missing gets back its
    newest complete version: the temporary one when its ``meta.json`` (written last) is there,
    else the one it was replacing. Every other leftover is removed.

    Returns one line per action taken (``removed PATH``, ``restored PATH from NAME``).
    """
    run_dir = Path(run_dir)
    actions: list[str] = []
    folders = [run_dir, run_dir / "checkpoints"]
    leftovers = [p for f in folders if f.is_dir() for p in sorted(f.iterdir())]
    # Complete new versions first, then the versions they were replacing.
    for kind in ("tmp", "old"):
        for path in leftovers:
            match = _STAGING.match(path.name)
            if match is None or match["kind"] != kind or not path.exists():
                continue
            target = path.with_name(match["name"])
            complete = kind == "old" or (path / META_FILE).is_file()
            if path.is_dir() and complete and not target.exists():
                os.replace(path, target)
                actions.append(f"restored {target} from {path.name}")
            else:
                remove_path(path)
                actions.append(f"removed {path}")
    return actions


def remove_path(path: Path) -> None:
    """Delete a file or a whole folder."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def _removes_staging_on_failure(save: Any) -> Any:
    """Decorate :func:`save_checkpoint`: when writing fails, remove the temporary directory;
    a failed write (a full disk: ``OSError``, or torch's writer's ``RuntimeError``) becomes
    one ``OSError`` sentence naming the checkpoint."""

    @functools.wraps(save)
    def wrapper(model: Any, vecnormalize: Any, directory: Path, *args: Any, **kwargs: Any) -> Path:
        try:
            return save(model, vecnormalize, directory, *args, **kwargs)
        except BaseException as err:
            shutil.rmtree(staging_path(Path(directory), "tmp"), ignore_errors=True)
            if isinstance(err, OSError) or _is_torch_write_failure(err):
                raise OSError(
                    f"Could not write checkpoint {directory} ({_short(err)}); the previous "
                    "checkpoints are intact: free space or fix the folder, then resume the run."
                ) from err
            raise

    return wrapper


def _is_torch_write_failure(err: BaseException) -> bool:
    """torch's archive writer reports a failed write (a full disk) as a ``RuntimeError``."""
    return isinstance(err, RuntimeError) and "PytorchStreamWriter failed writing" in str(err)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Not JSON serializable: {type(value).__name__}")


# --------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------
@_removes_staging_on_failure
def save_checkpoint(
    model: Any,
    vecnormalize: Any,
    directory: Path,
    extra_meta: dict[str, Any] | None = None,
    replay_buffer: bool = False,
) -> Path:
    """Save model (with optimizer state), normalization statistics and metadata together.

    Args:
        model: the SB3 model (``model.zip``: weights and optimizer state).
        vecnormalize: the ``VecNormalize`` around the model's env (``vecnormalize.npz``); the
            residual base, the ROI guard and the channel list of its env stack are recorded in
            ``meta.json``.
        directory: the checkpoint directory, written into a temporary sibling directory then
            renamed, replacing ``directory``.
        extra_meta: more entries for ``meta.json``.
        replay_buffer: also save an off-policy model's replay buffer (``replay_buffer.npz``).
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_path(directory, "tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    model.save(tmp / MODEL_FILE)
    NormalizationStats.from_vecnormalize(vecnormalize).save(tmp / VECNORM_FILE)
    if replay_buffer and getattr(model, "replay_buffer", None) is not None:
        save_replay_buffer(model.replay_buffer, tmp / REPLAY_FILE)
    lagrangian = lagrangian_of(vecnormalize)
    if lagrangian is not None:
        lagrangian.state().save(tmp / LAGRANGIAN_FILE)
    channels = venv_channels(vecnormalize)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "algorithm": algorithm_name(model),
        "num_timesteps": int(model.num_timesteps),
        "n_updates": int(model._n_updates),
        "episode_num": int(model._episode_num),
        "obs_dim": int(vecnormalize.observation_space.shape[0]),  # the env's, not the critic's
        "action_dim": int(model.action_space.shape[0]),
        "env_id": ENV_ID,
        "env_signature": env_signature(channels),
        "channels": channels.records(),
        "residual_base": residual_base_of(vecnormalize),
        "roi_guard": guard_meta(roi_guard_of(vecnormalize)),
        "privileged_critic": is_privileged(model),
        "budgetgym": budgetgym.__version__,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra_meta or {}),
    }
    write_json(tmp / META_FILE, meta)
    if directory.exists():
        old = staging_path(directory, "old")
        os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, directory)
    return directory


def guard_meta(guard: RoiGuard | None) -> dict[str, Any] | None:
    """``meta.json``'s ``roi_guard`` entry (and the ONNX sidecar's): the settings, or None."""
    return None if guard is None else guard.model_dump()


def recorded_guard(meta: dict[str, Any], where: Path | str) -> RoiGuard | None:
    """The ROI guard ``meta`` records (None for none, or for metadata older than guards);
    ``ValueError`` naming ``where`` for an invalid entry."""
    data = meta.get("roi_guard")
    return None if data is None else RoiGuard.from_meta(data, f"{where}: roi_guard")


@contextlib.contextmanager
def quiet_render_mode_warning() -> Iterator[None]:
    """Silence SB3's "render_mode is not defined" warning (the simulator does not render)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*render_mode.*")
        yield


def new_model(config: TrainConfig, venv: Any = None) -> Any:
    """A freshly initialised SB3 model of ``config``'s algorithm and policy on ``venv``.

    Without ``venv`` the model gets an idle ``BudgetVecEnv`` of the config's ``n_envs`` on
    its first scenario (never reset or stepped) for its spaces and buffer sizes: a model to
    load weights into.
    """
    hp = config.hyperparams
    decay = hp.policy_kwargs.action_weight_decay > 0  # validated: the spec supports it
    spec = algorithm_spec(config.algorithm)
    policy = ActionDecayPolicy if decay else spec.policy
    if venv is None:
        with quiet_render_mode_warning():
            from budgetgym.envs import BudgetVecEnv

            venv = BudgetVecEnv(config.env.n_envs, scenario=config.env.scenarios[0])
    kwargs = config.sb3_kwargs()
    if hp.policy_kwargs.privileged_critic:  # validated: the spec supports it
        venv = PrivilegedObservation(venv)
        policy = PrivilegedCriticPolicy
        kwargs["policy_kwargs"]["privileged_dim"] = privileged_dim(venv_channels(venv).n_channels)
    extractor = kwargs["policy_kwargs"].get("features_extractor_kwargs")
    if extractor is not None:  # ObservationSubset places the features by the env's channels
        extractor["channel_names"] = venv_channels(venv).names
    model = spec.model_class()(policy, venv, verbose=0, **kwargs)
    logits_log_std = hp.policy_kwargs.log_std_init_logits  # validated: PPO without gSDE only
    if logits_log_std is not None:  # SB3 takes one initial log-sd for every action dimension
        model.policy.log_std.data[1:] = logits_log_std
    return model


# --------------------------------------------------------------------------------------------
# Normalization statistics and replay buffers as plain arrays
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NormalizationStats:
    """``VecNormalize``'s running statistics and settings as plain arrays (``vecnormalize.npz``).

    Attributes:
        obs_mean, obs_var: running mean and variance of each observation feature ``(obs_dim,)``.
        obs_count: observations the statistics have seen.
        ret_mean, ret_var, ret_count: the same for the discounted return (scalars).
        clip_obs, clip_reward: clipping of normalized observations and rewards.
        gamma: discount of the return whose variance scales the rewards.
        epsilon: added to the variances before the square root.
        norm_obs, norm_reward: whether observations and rewards are normalized.
    """

    obs_mean: np.ndarray
    obs_var: np.ndarray
    obs_count: float
    ret_mean: float
    ret_var: float
    ret_count: float
    clip_obs: float
    clip_reward: float
    gamma: float
    epsilon: float
    norm_obs: bool
    norm_reward: bool

    @classmethod
    def from_vecnormalize(cls, vecnorm: Any) -> NormalizationStats:
        """Copy the statistics and settings of a ``VecNormalize``."""
        return cls(
            obs_mean=np.array(vecnorm.obs_rms.mean, dtype=np.float64),
            obs_var=np.array(vecnorm.obs_rms.var, dtype=np.float64),
            obs_count=float(vecnorm.obs_rms.count),
            ret_mean=float(vecnorm.ret_rms.mean),
            ret_var=float(vecnorm.ret_rms.var),
            ret_count=float(vecnorm.ret_rms.count),
            clip_obs=float(vecnorm.clip_obs),
            clip_reward=float(vecnorm.clip_reward),
            gamma=float(vecnorm.gamma),
            epsilon=float(vecnorm.epsilon),
            norm_obs=bool(vecnorm.norm_obs),
            norm_reward=bool(vecnorm.norm_reward),
        )

    def save(self, path: Path) -> None:
        """Write the statistics to ``path`` (``.npz``, one array per field)."""
        arrays = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: Path, obs_dim: int) -> NormalizationStats:
        """Read and validate statistics written by :meth:`save` (no pickles are read) for
        observations of ``obs_dim`` features.

        Raises:
            ValueError: the file is missing, corrupt, or made for another observation size.
        """
        path = Path(path)
        if not path.is_file():
            legacy = path.with_name(LEGACY_VECNORM_FILE)
            if legacy.is_file():
                raise ValueError(
                    f"Checkpoint {path.parent} keeps its normalization statistics as a pickle "
                    f"({LEGACY_VECNORM_FILE}, written by an older budgetgym), which budgetgym "
                    "does not load because unpickling can run code: retrain the run, or if you "
                    "made it yourself, convert it with `python -m budgetgym.scripts.convert_run "
                    f"{_run_dir_of(path.parent)} --trust-pickles`."
                )
            raise ValueError(
                f"Checkpoint {path.parent} has no {VECNORM_FILE}; the model cannot be used "
                "without its observation-normalization statistics."
            )
        arrays = read_arrays(path, [f.name for f in fields(cls)], "Normalization statistics")
        shape = arrays["obs_mean"].shape
        if shape != (obs_dim,) or arrays["obs_var"].shape != (obs_dim,):
            raise ValueError(
                f"Normalization statistics {path} are for observations of shape {shape}, but "
                f"the checkpoint's channels have ({obs_dim},): incompatible environment version."
            )
        for name, value in arrays.items():
            kind = "b" if name.startswith("norm_") else "f"
            if value.dtype.kind != kind or (kind == "f" and not np.isfinite(value).all()):
                raise ValueError(
                    f"Normalization statistics {path} are corrupt ({name} is {value.dtype} "
                    f"{value.tolist() if value.ndim == 0 else 'array'})."
                )
        if (arrays["obs_var"] < 0).any() or arrays["ret_var"] < 0:
            raise ValueError(f"Normalization statistics {path} are corrupt (negative variance).")
        return cls(
            **{n: v if v.ndim else v.item() for n, v in arrays.items()}  # type: ignore[arg-type]
        )

    def wrap(self, venv: Any, training: bool = True) -> Any:
        """``VecNormalize`` around ``venv`` holding these statistics and settings."""
        from stable_baselines3.common.vec_env import VecNormalize

        with quiet_render_mode_warning():
            vecnorm = VecNormalize(
                venv,
                training=training,
                norm_obs=self.norm_obs,
                norm_reward=self.norm_reward,
                clip_obs=self.clip_obs,
                clip_reward=self.clip_reward,
                gamma=self.gamma,
                epsilon=self.epsilon,
            )
        vecnorm.obs_rms.mean = self.obs_mean.copy()
        vecnorm.obs_rms.var = self.obs_var.copy()
        vecnorm.obs_rms.count = self.obs_count
        vecnorm.ret_rms.mean = np.float64(self.ret_mean)
        vecnorm.ret_rms.var = np.float64(self.ret_var)
        vecnorm.ret_rms.count = self.ret_count
        return vecnorm

    def obs_normalizer(self) -> ObsNormalizer:
        """The frozen observation transform of these statistics."""
        return ObsNormalizer(
            self.obs_mean.copy(), self.obs_var.copy(), self.epsilon, self.clip_obs, self.norm_obs
        )


def read_arrays(path: Path, names: list[str], label: str) -> dict[str, np.ndarray]:
    """The arrays ``names`` of the ``.npz`` file ``path``, read without unpickling anything.

    Raises:
        ValueError: ``"{label} {path} is corrupt (...)"``: not an ``.npz`` archive, a missing
            array, or an array of Python objects (pickles are refused).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: np.asarray(data[name]) for name in names}
    except Exception as err:  # noqa: BLE001 (numpy and zipfile raise many kinds)
        text = str(err)
        reason = "it holds pickled objects, which are not loaded" if "pickle" in text else text
        raise ValueError(f"{label} {path} is corrupt ({_short(reason)}).") from None


#: The arrays of an SB3 ``ReplayBuffer``, each ``(buffer_size, n_envs, ...)``.
REPLAY_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def save_replay_buffer(buffer: Any, path: Path) -> None:
    """Write the filled rows of an SB3 ``ReplayBuffer`` and its position to ``path`` (``.npz``)."""
    size = buffer.buffer_size if buffer.full else buffer.pos
    arrays = {
        name: getattr(buffer, name)[:size]
        for name in REPLAY_ARRAYS
        if getattr(buffer, name, None) is not None
    }
    with open(path, "wb") as handle:
        np.savez(handle, pos=np.int64(buffer.pos), full=np.bool_(buffer.full), **arrays)


def load_replay_buffer(buffer: Any, path: Path) -> None:
    """Fill ``buffer`` (the replay buffer of a model built from the run's config) from ``path``.

    Raises:
        ValueError: the file is corrupt or holds arrays of another buffer size or layout.
    """
    names = [name for name in REPLAY_ARRAYS if getattr(buffer, name, None) is not None]
    arrays = read_arrays(path, ["pos", "full", *names], "Replay buffer")
    pos, full = arrays.pop("pos"), arrays.pop("full")
    if pos.shape or pos.dtype.kind not in "iu" or full.shape or full.dtype.kind != "b":
        raise ValueError(f"Replay buffer {path} is corrupt (position {pos} or full flag {full}).")
    pos, full = int(pos), bool(full)
    if not 0 <= pos < buffer.buffer_size:
        raise ValueError(
            f"Replay buffer {path} is corrupt (position {pos} outside its "
            f"{buffer.buffer_size} rows)."
        )
    size = buffer.buffer_size if full else pos
    for name, array in arrays.items():
        expected = (size, *getattr(buffer, name).shape[1:])
        if array.shape != expected:
            raise ValueError(
                f"Replay buffer {path} does not fit the run's buffer ({name} has shape "
                f"{array.shape}, expected {expected})."
            )
    for name, array in arrays.items():
        getattr(buffer, name)[:size] = array
    buffer.pos, buffer.full = pos, full


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------
def read_meta(directory: Path) -> dict[str, Any]:
    """``meta.json`` of a checkpoint; ``ValueError`` if missing, malformed or foreign."""
    directory = Path(directory)
    if not directory.exists():
        raise FileNotFoundError(f"Checkpoint directory {directory} does not exist.")
    path = directory / META_FILE
    if not path.is_file():
        raise ValueError(
            f"{directory} is not a budgetgym checkpoint (no {META_FILE}); pass a run directory "
            "or one of its checkpoints/, best/ or final/ directories."
        )
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"Checkpoint metadata {path} is corrupt (not valid JSON).") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} is not budgetgym checkpoint metadata (expected format {CHECKPOINT_FORMAT})."
        )
    return meta


def checkpoint_step(directory: Path) -> int:
    """Env steps a checkpoint was saved at (``num_timesteps`` in its metadata).

    Raises:
        ValueError: the metadata is missing, corrupt, foreign or has no step count.
    """
    step = read_meta(directory).get("num_timesteps")
    if type(step) is not int or step < 0:
        raise ValueError(
            f"Checkpoint metadata {Path(directory) / META_FILE} is corrupt (num_timesteps "
            f"{step!r} is not a step count)."
        )
    return step


def check_compatible(
    meta: dict[str, Any], where: Path, channels: ChannelSet | None = None
) -> ChannelSet:
    """The channel list a checkpoint was made for; ``ValueError`` if this simulator lays out
    that list's observations and actions differently, or if it is not ``channels`` (the
    environment's, when given); a checkpoint of a retired market is refused naming v1."""
    check_env_id(meta, f"Checkpoint {where}")
    recorded = recorded_channels(meta, where)
    obs_dim, action_dim = recorded.obs_dim, recorded.action_dim
    if meta.get("obs_dim") != obs_dim or meta.get("action_dim") != action_dim:
        raise ValueError(
            f"Checkpoint {where} expects observations of size {meta.get('obs_dim')} and actions "
            f"of size {meta.get('action_dim')}, but this simulator has {obs_dim} and "
            f"{action_dim} on its channels (budgetgym {budgetgym.__version__}); it comes from "
            f"an incompatible environment version (budgetgym {meta.get('budgetgym')}): "
            "retrain, or use that version."
        )
    if meta.get("env_signature") != env_signature(recorded):
        raise ValueError(
            f"Checkpoint {where} was trained on a different observation layout (environment "
            f"signature {meta.get('env_signature')}, this simulator has "
            f"{env_signature(recorded)}); retrain, or use the budgetgym version recorded in "
            "its versions.json."
        )
    if channels is not None:
        channels.require_same(recorded, f"Checkpoint {where}")
    return recorded


@dataclass
class LoadedCheckpoint:
    """A validated checkpoint: SB3 model, normalization statistics and metadata.

    ``vecnormalize`` is the model's ``VecNormalize`` once :meth:`train_on` gave it an env
    (None before); ``lagrangian`` is the multiplier's saved state of a Lagrangian run.
    """

    directory: Path
    meta: dict[str, Any]
    model: Any
    normalization: NormalizationStats
    vecnormalize: Any = None
    lagrangian: LagrangianState | None = None

    def train_on(self, venv: Any) -> Any:
        """Make ``venv`` (the training env, without normalization), wrapped in ``VecNormalize``
        with the checkpoint's statistics (and its ``LagrangianReward`` continuing from the saved
        multiplier), the model's env; returns the ``VecNormalize``."""
        layer = lagrangian_of(venv)
        if layer is not None and self.lagrangian is not None:
            layer.restore(self.lagrangian)
        self.vecnormalize = self.normalization.wrap(venv, training=True)
        self.model.set_env(model_env(self.model, self.vecnormalize))
        return self.vecnormalize


def load_normalization(directory: Path, obs_dim: int) -> NormalizationStats:
    """The validated normalization statistics of a checkpoint directory (``vecnormalize.npz``)
    for observations of ``obs_dim`` features."""
    return NormalizationStats.load(Path(directory) / VECNORM_FILE, obs_dim)


def checkpoint_config(directory: Path) -> Any:
    """The validated ``TrainConfig`` recorded by the run a checkpoint directory belongs to.

    Raises:
        ValueError: the checkpoint is not inside a run directory, or the config is invalid.
    """
    from budgetgym.agents.config import load_config

    run = run_of_checkpoint(directory)
    if run is None or not run.config.is_file():
        raise ValueError(
            f"Checkpoint {directory} is not inside a run directory (no config.yaml beside its "
            "folder); its model is rebuilt from the config its run recorded."
        )
    return load_config(run.config)


def load_checkpoint(
    directory: Path,
    env: Any = None,
    device: str = "cpu",
    config: Any = None,
    replay_buffer: bool | None = None,
) -> LoadedCheckpoint:
    """Load and validate a checkpoint directory without running code from it.

    The model is built anew from the run's config and the simulator's spaces, then receives
    the tensors of ``model.zip`` (weights, optimizer states, SAC's entropy coefficient), each
    read with ``torch.load(weights_only=True)``; SB3's pickled ``data`` entry is not read.
    Step and update counters come from ``meta.json``, statistics from ``vecnormalize.npz``.

    Args:
        directory: a checkpoint directory (``checkpoints/step_*``, ``best/`` or ``final/``).
        env: optional VecEnv to continue training on (the training env, without
            normalization), given to :meth:`LoadedCheckpoint.train_on`.
        device: torch device.
        config: the run's ``TrainConfig`` (default: the run's ``config.yaml``).
        replay_buffer: restore the replay buffer of an off-policy checkpoint that saved one,
            to continue training (default: when ``env`` is given).

    Raises:
        FileNotFoundError: the directory does not exist.
        ValueError: missing, corrupt, foreign or incompatible files.
    """
    directory = Path(directory)
    meta = read_meta(directory)
    channels = check_compatible(meta, directory, None if env is None else venv_channels(env))
    step = checkpoint_step(directory)
    counters = {key: meta.get(key, 0) for key in ("n_updates", "episode_num")}
    if any(type(value) is not int or value < 0 for value in counters.values()):
        raise ValueError(f"Checkpoint metadata {directory / META_FILE} is corrupt ({counters}).")
    config = checkpoint_config(directory) if config is None else config
    if meta.get("algorithm") != config.algorithm:
        raise ValueError(
            f"Checkpoint {directory} holds a {meta.get('algorithm')} model but the run's config "
            f"says {config.algorithm}."
        )
    normalization = load_normalization(directory, channels.obs_dim)
    lagrangian = None
    if config.lagrangian is not None:
        path = directory / LAGRANGIAN_FILE
        lagrangian = LagrangianState.load(path, config.lagrangian.constraint)
    model = _load_model(directory / MODEL_FILE, config, device)
    model.num_timesteps = step
    model._n_updates, model._episode_num = counters["n_updates"], counters["episode_num"]
    replay = directory / REPLAY_FILE
    restore = env is not None if replay_buffer is None else replay_buffer
    if restore and replay.is_file() and getattr(model, "replay_buffer", None) is not None:
        load_replay_buffer(model.replay_buffer, replay)
    loaded = LoadedCheckpoint(directory, meta, model, normalization, lagrangian=lagrangian)
    if env is not None:
        loaded.train_on(env)
    return loaded


def read_model_tensors(path: Path, device: str = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """The state dicts (``policy``, ``policy.optimizer``, ...) and torch variables (SAC's
    ``log_ent_coef``) of an SB3 ``model.zip``: each ``.pth`` entry is read with
    ``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers;
    the pickled ``data`` entry is not read.

    Raises:
        ValueError: no such file, not a zip archive, or an entry that is not plain tensors.
    """
    import torch

    if not path.is_file():
        raise ValueError(f"Checkpoint {path.parent} has no {MODEL_FILE}.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"Checkpoint model {path} is corrupt (not a zip archive).")
    params: dict[str, Any] = {}
    variables: dict[str, Any] = {}
    with zipfile.ZipFile(path) as archive:
        for name in (n for n in archive.namelist() if n.endswith(".pth")):
            try:
                with warnings.catch_warnings():  # torch warns about the pickle protocol first
                    warnings.simplefilter("ignore")
                    value = torch.load(
                        io.BytesIO(archive.read(name)), map_location=device, weights_only=True
                    )
            except Exception:  # noqa: BLE001 (zipfile and torch raise many kinds)
                raise ValueError(
                    f"Checkpoint model {path} is corrupt ({name} is not plain tensors, the only "
                    "content budgetgym loads from a run)."
                ) from None
            if name == "pytorch_variables.pth":
                variables = value
            else:
                params[name.removesuffix(".pth")] = value
    return params, variables


def _load_model(path: Path, config: Any, device: str) -> Any:
    """A model of ``config`` (on an idle env, see ``new_model``) holding the tensors of
    ``path``."""
    from stable_baselines3.common.save_util import recursive_getattr, recursive_setattr

    params, variables = read_model_tensors(path, device)
    model = new_model(config.model_copy(update={"device": device}))
    state_dicts, torch_variables = model._get_torch_save_params()
    try:
        if not isinstance(variables, dict):
            raise TypeError("pytorch_variables.pth is not a dict")
        unknown = (set(params) - set(state_dicts)) | (set(variables) - set(torch_variables))
        if unknown:  # only attributes the model saves are looked up and set
            raise ValueError(f"unexpected entries {sorted(map(str, unknown))}")
        model.set_parameters(params, exact_match=True, device=device)
        for name, value in variables.items():
            shape = recursive_getattr(model, name).shape
            if getattr(value, "shape", None) != shape:
                raise ValueError(f"{name} is not a tensor of shape {tuple(shape)}")
            recursive_setattr(model, f"{name}.data", value.data)
    except (ValueError, RuntimeError, KeyError, AttributeError, TypeError) as err:
        raise ValueError(
            f"Checkpoint model {path} does not fit the {config.algorithm} model its run's "
            f"config describes ({_short(err)})."
        ) from None
    if model.use_sde:
        model.policy.reset_noise()
    return model


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def resolve_checkpoint(path: Path | str) -> Path:
    """The checkpoint to use for a run directory or checkpoint path.

    A checkpoint directory is returned as is; a run directory gives ``best/``, else ``final/``,
    else its latest periodic checkpoint whose metadata reads.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Run or checkpoint directory {path} does not exist.")
    if path.is_file():
        if path.name == MODEL_FILE:
            return path.parent
        raise ValueError(f"{path} is a file; pass a run directory or a checkpoint directory.")
    if (path / META_FILE).exists():
        return path
    paths = RunPaths(path)
    for candidate in (paths.best, paths.final):
        if (candidate / META_FILE).is_file():
            return candidate
    periodic, _ = paths.scan_checkpoints()
    if periodic:
        return periodic[-1]
    raise ValueError(
        f"{path} is not a budgetgym run directory (no best/, final/ or checkpoints/ inside)."
    )


@dataclass(frozen=True)
class CheckpointInfo:
    """Which checkpoint of a run a policy comes from.

    Attributes:
        directory: the checkpoint directory.
        folder: its name as a reader of the run finds it: ``best/``, ``final/`` or
            ``checkpoints/step_000400000/`` (the path when it is not inside a run).
        step: env steps the model had trained when saved (``meta.json``).
        run_steps: env steps of the run's most recent checkpoint (None outside a run).
    """

    directory: Path
    folder: str
    step: int
    run_steps: int | None

    def __str__(self) -> str:
        """``best/ at step 400,000 of the run's 800,000`` (``final/ at step 800,000, the run's
        last`` when it is the most recent)."""
        text = f"{self.folder} at step {self.step:,}"
        if self.run_steps is None:
            return text
        if self.run_steps == self.step:
            return f"{text}, the run's last"
        return f"{text} of the run's {self.run_steps:,}"


def describe_checkpoint(path: Path | str) -> CheckpointInfo:
    """The checkpoint a run directory or checkpoint path stands for (:func:`resolve_checkpoint`)
    with its step and the run's; ``str()`` of the result names both for messages and reports.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: neither a run nor a checkpoint directory.
    """
    directory = resolve_checkpoint(path)
    step = int(read_meta(directory).get("num_timesteps", 0))
    if directory.parent.name == RunPaths(directory.parent.parent).checkpoints.name:
        root, folder = directory.parent.parent, f"checkpoints/{directory.name}/"
    else:
        root, folder = directory.parent, f"{directory.name}/"
    run = RunPaths(root)
    saved, _ = run.saved_states()  # those whose metadata reads
    if directory not in saved:
        return CheckpointInfo(directory, str(directory), step, None)
    run_steps = max(int(read_meta(d).get("num_timesteps", 0)) for d in saved)
    return CheckpointInfo(directory, folder, step, run_steps)


# --------------------------------------------------------------------------------------------
# Trained policies behind the shared Policy interface
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObsNormalizer:
    """Frozen ``VecNormalize`` observation transform: ``clip((obs - mean) / sqrt(var + eps))``."""

    mean: np.ndarray
    var: np.ndarray
    epsilon: float
    clip_obs: float
    enabled: bool = True

    @classmethod
    def from_vecnormalize(cls, vecnorm: Any) -> ObsNormalizer:
        """Copy the statistics of a ``VecNormalize`` (later updates do not leak in)."""
        return cls(
            mean=np.array(vecnorm.obs_rms.mean, dtype=np.float64),
            var=np.array(vecnorm.obs_rms.var, dtype=np.float64),
            epsilon=float(vecnorm.epsilon),
            clip_obs=float(vecnorm.clip_obs),
            enabled=bool(vecnorm.norm_obs),
        )

    @classmethod
    def identity(cls, obs_dim: int = DEFAULT_CHANNEL_SET.obs_dim) -> ObsNormalizer:
        """No normalization: observations of ``obs_dim`` features pass through (as float32)."""
        return cls(np.zeros(obs_dim), np.ones(obs_dim), 0.0, np.inf, enabled=False)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return np.asarray(obs, dtype=np.float32)
        out = (obs - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(out, -self.clip_obs, self.clip_obs).astype(np.float32)


def check_obs(obs: Any, channels: ChannelSet = DEFAULT_CHANNEL_SET) -> np.ndarray:
    """A batch of observations on ``channels`` as float32 ``(n, obs_dim)``; ``ValueError``
    otherwise."""
    arr = np.asarray(obs, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != channels.obs_dim:
        raise ValueError(
            f"Observations must have shape (n, {channels.obs_dim}) for the policy's channels "
            f"{list(channels.names)}, got {np.shape(obs)}."
        )
    return arr


def episode_starts(state: Any, n: int, episode_start: Any = None) -> np.ndarray:
    """Episode-start flags ``(n,)`` bool for a recurrent policy's next step: ``episode_start``
    when given; else all True when ``state`` (``(hidden, cell)``, each ``(n_layers, batch,
    size)``, or None) holds no state of ``n`` campaigns (the first call, after ``reset``, or
    another batch size), all False otherwise."""
    if episode_start is not None:
        return np.asarray(episode_start, dtype=bool)
    return np.full(n, state is None or state[0].shape[1] != n)


class SB3Policy:
    """A trained SB3 model with its frozen observation normalization, as a ``Policy``.

    ``predict`` takes raw observations ``(n, obs_dim)`` and returns actions ``(n, k + 1)`` in
    ``[-1, 1]`` (SB3 clips Gaussian actions to the action space). Recurrent models keep their
    LSTM state between calls; ``reset`` starts new campaigns and refuses campaigns on another
    channel list than ``channels`` (the one the model was trained on). ``checkpoint`` names
    the checkpoint the model comes from (None for a model in memory). ``roi_guard`` acts on
    the final action's pace (:mod:`budgetgym.agents.roi_guard`).
    """

    def __init__(
        self,
        model: Any,
        normalizer: ObsNormalizer,
        name: str,
        residual_base: str = "none",
        checkpoint: CheckpointInfo | None = None,
        channels: ChannelSet = DEFAULT_CHANNEL_SET,
        roi_guard: RoiGuard | None = None,
    ) -> None:
        self.model = model
        self.roi_guard = roi_guard
        self.channels = channels
        self.checkpoint = checkpoint
        self.normalizer = normalizer
        self.name = name
        self.residual_base = check_residual_base(residual_base)
        spec = ALGORITHMS.get(algorithm_name(model))  # None: an SB3 model of no registered one
        self.recurrent = spec is not None and spec.recurrent
        self._state: Any = None

    def reset(self, campaigns: Any = None) -> None:
        """Forget the recurrent state: the next ``predict`` starts new episodes (of
        ``campaigns``, whose channel list must be the policy's)."""
        if campaigns is not None:
            channels_of(campaigns).require_same(self.channels, f"Policy {self.name!r}")
        self._state = None

    def predict(
        self,
        obs: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """Actions for raw observations ``(n, obs_dim)``."""
        arr = check_obs(obs, self.channels)
        norm = self.normalizer(arr)
        if not self.recurrent:
            norm = actor_input(self.model, norm)  # a privileged critic's actor reads obs only
            actions, _ = self.model.predict(norm, deterministic=deterministic)
            return self._final(arr, actions), None
        starts = episode_starts(self._state, len(arr), episode_start)
        if self._state is not None and self._state[0].shape[1] != len(arr):
            self._state = None  # another batch: the model starts from zero states
        actions, self._state = self.model.predict(
            norm, state=self._state, episode_start=starts, deterministic=deterministic
        )
        return self._final(arr, actions), None

    def _final(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The network's ``actions`` plus the residual base's, under the guard."""
        actions = add_residual(self.residual_base, obs, actions, self.channels)
        return apply_guard(self.roi_guard, obs, actions, self.channels)


def run_policy_name(run_dir: str | Path) -> str:
    """The name a trained policy goes by (``compare``'s label): its run directory's name, or
    ``RUN/CHECKPOINT`` for a checkpoint directory (``runs/a/final``: ``a/final``)."""
    root = Path(run_dir).resolve()
    return f"{root.parent.name}/{root.name}" if (root / META_FILE).exists() else root.name


def load_run_policy(run_dir: str | Path, name: str | None = None) -> SB3Policy:
    """A trained policy from a run directory (``best/``, else ``final/``, else the latest
    checkpoint) or from a checkpoint directory, validated against this simulator.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: not a run, or a corrupt/foreign/incompatible checkpoint.
    """
    import torch

    torch.set_num_threads(1)  # inference on small batches: more threads only contend
    directory = resolve_checkpoint(run_dir)
    loaded = load_checkpoint(directory)
    name = run_policy_name(run_dir) if name is None else name
    normalizer = loaded.normalization.obs_normalizer()
    try:
        residual_base = check_residual_base(str(loaded.meta.get("residual_base", "none")))
    except ValueError as err:
        raise ValueError(f"Checkpoint {directory}: {err}") from None
    channels = recorded_channels(loaded.meta, directory)
    guard = recorded_guard(loaded.meta, f"Checkpoint {directory}")
    info = describe_checkpoint(directory)
    return SB3Policy(loaded.model, normalizer, name, residual_base, info, channels, guard)


def read_versions(run_dir: Path) -> dict[str, Any]:
    """``versions.json`` of a run (empty dict when absent)."""
    path = RunPaths(Path(run_dir)).versions
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}


def python_command() -> str:
    """The current command line, for ``command.txt`` (``budgetgym ...`` for the CLI), quoted
    for a POSIX shell so that it can be pasted back (``--set 'net_arch=[32, 32]'``)."""
    program = Path(sys.argv[0]).name
    if program in ("budgetgym", "cli.py", "__main__.py"):
        program = "budgetgym"
    return shlex.join([program, *sys.argv[1:]])
