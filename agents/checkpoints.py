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

Every checkpoint directory holds ``model.zip`` (SB3: weights, optimizer state, step counter),
``vecnormalize.pkl`` (observation statistics) and ``meta.json`` (format, algorithm, step,
observation/action sizes and the environment signature), written to a temporary directory and
renamed into place, so a checkpoint is either complete or absent. Loading validates all three
and raises a one-sentence ``ValueError`` for a corrupt, foreign or incompatible checkpoint.

Checkpoint files are pickles/zip archives executed on load: only load runs you trust.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import budgetgym
from budgetgym.agents.residual import add_residual, check_residual_base, residual_base_of
from budgetgym.envs import ACTION_DIM, CHANNEL_NAMES, OBS_DIM, OBS_FEATURES

CHECKPOINT_FORMAT = "budgetgym-checkpoint/1"
MODEL_FILE = "model.zip"
VECNORM_FILE = "vecnormalize.pkl"
META_FILE = "meta.json"
REPLAY_FILE = "replay_buffer.pkl"


def env_signature() -> str:
    """Short hash of the observation features, channels and action size of this simulator.

    Two simulator versions with the same signature accept each other's policies.
    """
    text = json.dumps([list(OBS_FEATURES), list(CHANNEL_NAMES), ACTION_DIM])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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

    def latest_checkpoint(self) -> Path:
        """The most recent checkpoint (periodic or final); ``FileNotFoundError`` if none."""
        candidates = self.list_checkpoints()
        if (self.final / META_FILE).is_file():
            candidates.append(self.final)
        if not candidates:
            raise FileNotFoundError(f"No checkpoint in run directory {self.root} to resume from.")
        return max(candidates, key=lambda p: (checkpoint_step(p), p.name))


@dataclass(frozen=True)
class SkippedCheckpoint:
    """A saved state that cannot be used, and why (one sentence)."""

    directory: Path
    reason: str


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


def versions() -> dict[str, Any]:
    """Versions of everything that shapes a run, plus the git commit when available."""
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
        "obs_dim": OBS_DIM,
        "action_dim": ACTION_DIM,
        "env_signature": env_signature(),
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
            elif path.is_dir():
                shutil.rmtree(path)
                actions.append(f"removed {path}")
            else:
                path.unlink()
                actions.append(f"removed {path}")
    return actions


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

    Written into a temporary sibling directory then renamed, replacing ``directory``.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_path(directory, "tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    model.save(tmp / MODEL_FILE)
    vecnormalize.save(str(tmp / VECNORM_FILE))
    if replay_buffer and hasattr(model, "save_replay_buffer"):
        model.save_replay_buffer(tmp / REPLAY_FILE)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "algorithm": algorithm_name(model),
        "num_timesteps": int(model.num_timesteps),
        "obs_dim": int(model.observation_space.shape[0]),
        "action_dim": int(model.action_space.shape[0]),
        "env_signature": env_signature(),
        "residual_base": residual_base_of(vecnormalize),
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


def algorithm_name(model: Any) -> str:
    """Config name of an SB3 model's algorithm (``ppo``, ``sac``, ``recurrent_ppo``)."""
    names = {"PPO": "ppo", "SAC": "sac", "RecurrentPPO": "recurrent_ppo"}
    return names.get(type(model).__name__, type(model).__name__.lower())


def algorithm_class(name: str) -> type:
    """SB3 class of a config algorithm name."""
    if name == "ppo":
        from stable_baselines3 import PPO

        return PPO
    if name == "sac":
        from stable_baselines3 import SAC

        return SAC
    if name == "recurrent_ppo":
        from sb3_contrib import RecurrentPPO

        return RecurrentPPO
    raise ValueError(f"Unknown algorithm {name!r}; valid: ppo, sac, recurrent_ppo.")


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


def check_compatible(meta: dict[str, Any], where: Path) -> None:
    """Raise ``ValueError`` if a checkpoint was made for another observation/action layout."""
    if meta.get("obs_dim") != OBS_DIM or meta.get("action_dim") != ACTION_DIM:
        raise ValueError(
            f"Checkpoint {where} expects observations of size {meta.get('obs_dim')} and actions "
            f"of size {meta.get('action_dim')}, but this simulator has {OBS_DIM} and {ACTION_DIM} "
            f"(budgetgym {budgetgym.__version__}); it comes from an incompatible environment "
            f"version (budgetgym {meta.get('budgetgym')}): retrain, or use that version."
        )
    if meta.get("env_signature") != env_signature():
        raise ValueError(
            f"Checkpoint {where} was trained on a different observation layout (environment "
            f"signature {meta.get('env_signature')}, this simulator has {env_signature()}); "
            "retrain, or use the budgetgym version recorded in its versions.json."
        )


@dataclass
class LoadedCheckpoint:
    """A validated checkpoint: SB3 model, normalization statistics and metadata."""

    directory: Path
    meta: dict[str, Any]
    model: Any
    vecnormalize: Any  # VecNormalize without a venv until set_venv is called


def load_vecnormalize(path: Path) -> Any:
    """Unpickle ``VecNormalize`` statistics and check their observation size."""
    from stable_baselines3.common.vec_env import VecNormalize

    try:
        with open(path, "rb") as handle:
            vecnorm = pickle.load(handle)  # noqa: S301 (trusted run directories only)
    except FileNotFoundError:
        raise ValueError(
            f"Checkpoint {path.parent} has no {VECNORM_FILE}; the model cannot be used without "
            "its observation-normalization statistics."
        ) from None
    except Exception as err:  # noqa: BLE001 (any unpickling failure means a corrupt file)
        raise ValueError(f"Normalization statistics {path} are corrupt ({_short(err)}).") from None
    if not isinstance(vecnorm, VecNormalize):
        raise ValueError(f"{path} does not hold VecNormalize statistics.")
    shape = getattr(getattr(vecnorm, "obs_rms", None), "mean", np.zeros(0)).shape
    if vecnorm.norm_obs and shape != (OBS_DIM,):
        raise ValueError(
            f"Normalization statistics {path} are for observations of shape {shape}, but this "
            f"simulator has ({OBS_DIM},): incompatible environment version."
        )
    return vecnorm


def load_checkpoint(
    directory: Path, env: Any = None, device: str = "cpu", custom_objects: dict | None = None
) -> LoadedCheckpoint:
    """Load and validate a checkpoint directory (``model.zip`` + ``vecnormalize.pkl`` + meta).

    Args:
        directory: a checkpoint directory (``checkpoints/step_*``, ``best/`` or ``final/``).
        env: optional VecEnv to attach to the model (needed to continue training).
        device: torch device.
        custom_objects: forwarded to SB3's ``load`` (e.g. to replace a schedule).

    Raises:
        FileNotFoundError: the directory does not exist.
        ValueError: missing, corrupt, foreign or incompatible files.
    """
    directory = Path(directory)
    meta = read_meta(directory)
    check_compatible(meta, directory)
    algo = algorithm_class(str(meta.get("algorithm")))
    model_path = directory / MODEL_FILE
    if not model_path.is_file():
        raise ValueError(f"Checkpoint {directory} has no {MODEL_FILE}.")
    if not zipfile.is_zipfile(model_path):
        raise ValueError(f"Checkpoint model {model_path} is corrupt (not a zip archive).")
    try:
        model = algo.load(model_path, env=env, device=device, custom_objects=custom_objects)
    except Exception as err:  # noqa: BLE001 (SB3 raises many kinds for a bad archive)
        raise ValueError(
            f"Checkpoint model {model_path} is corrupt or not a {meta['algorithm']} model "
            f"({_short(err)})."
        ) from None
    if model.observation_space.shape != (OBS_DIM,) or model.action_space.shape != (ACTION_DIM,):
        raise ValueError(
            f"Checkpoint model {model_path} has observation shape {model.observation_space.shape} "
            f"and action shape {model.action_space.shape}, expected ({OBS_DIM},) and "
            f"({ACTION_DIM},): it is a foreign model or from an incompatible environment version."
        )
    vecnorm = load_vecnormalize(directory / VECNORM_FILE)
    return LoadedCheckpoint(directory, meta, model, vecnorm)


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
    def identity(cls) -> ObsNormalizer:
        """No normalization: observations pass through (as float32)."""
        return cls(np.zeros(OBS_DIM), np.ones(OBS_DIM), 0.0, np.inf, enabled=False)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return np.asarray(obs, dtype=np.float32)
        out = (obs - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(out, -self.clip_obs, self.clip_obs).astype(np.float32)


def check_obs(obs: Any) -> np.ndarray:
    """A batch of observations as float32 ``(n, OBS_DIM)``; ``ValueError`` otherwise."""
    arr = np.asarray(obs, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != OBS_DIM:
        raise ValueError(
            f"Observations must have shape (n, {OBS_DIM}), got {np.shape(obs)}: the policy "
            "and the simulator come from incompatible environment versions."
        )
    return arr


class SB3Policy:
    """A trained SB3 model with its frozen observation normalization, as a ``Policy``.

    ``predict`` takes raw observations ``(n, OBS_DIM)`` and returns actions ``(n, ACTION_DIM)``
    in ``[-1, 1]`` (SB3 clips Gaussian actions to the action space). Recurrent models keep their
    LSTM state between calls; ``reset`` starts new campaigns. ``checkpoint`` names the
    checkpoint the model comes from (None for a model in memory).
    """

    def __init__(
        self,
        model: Any,
        normalizer: ObsNormalizer,
        name: str,
        residual_base: str = "none",
        checkpoint: CheckpointInfo | None = None,
    ) -> None:
        self.model = model
        self.checkpoint = checkpoint
        self.normalizer = normalizer
        self.name = name
        self.residual_base = check_residual_base(residual_base)
        self.recurrent = algorithm_name(model) == "recurrent_ppo"
        self._state: Any = None
        self._episode_start: np.ndarray | None = None

    def reset(self, campaigns: Any = None) -> None:
        """Forget the recurrent state: the next ``predict`` starts new episodes."""
        self._state = None
        self._episode_start = None

    def predict(
        self,
        obs: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """Actions for raw observations ``(n, OBS_DIM)``."""
        arr = check_obs(obs)
        norm = self.normalizer(arr)
        if not self.recurrent:
            actions, _ = self.model.predict(norm, deterministic=deterministic)
            return add_residual(self.residual_base, arr, actions), None
        if episode_start is None:
            if self._state is None or self._state[0][0].shape[1] != len(arr):
                starts = np.ones(len(arr), dtype=bool)
                self._state = None
            else:
                starts = np.zeros(len(arr), dtype=bool)
        else:
            starts = np.asarray(episode_start, dtype=bool)
        actions, self._state = self.model.predict(
            norm, state=self._state, episode_start=starts, deterministic=deterministic
        )
        return add_residual(self.residual_base, arr, actions), None


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
    if name is None:
        root = Path(run_dir).resolve()
        name = root.name if root != directory.resolve() else f"{root.parent.name}/{root.name}"
    normalizer = ObsNormalizer.from_vecnormalize(loaded.vecnormalize)
    try:
        residual_base = check_residual_base(str(loaded.meta.get("residual_base", "none")))
    except ValueError as err:
        raise ValueError(f"Checkpoint {directory}: {err}") from None
    return SB3Policy(loaded.model, normalizer, name, residual_base, describe_checkpoint(directory))


def read_versions(run_dir: Path) -> dict[str, Any]:
    """``versions.json`` of a run (empty dict when absent)."""
    path = RunPaths(Path(run_dir)).versions
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}


def python_command() -> str:
    """The current command line, for ``command.txt`` (``budgetgym ...`` for the CLI), quoted
    for a POSIX shell so that it can be pasted back (``--set 'net_arch=[32, 32]'``)."""
    program = Path(sys.argv[0]).name
    if program in ("budgetgym", "cli.py", "__main__.py"):
        program = "budgetgym"
    return shlex.join([program, *sys.argv[1:]])
