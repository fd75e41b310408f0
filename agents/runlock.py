"""One process at a time in a run directory: an OS lock held for the run's lifetime.

``train`` and ``resume`` (and ``train_seeds`` on its root) hold an exclusive ``flock`` on
``RUN/.lock`` from before they read or write the run until they return. A second process that
tries to train into the same directory fails at once with :class:`RunInUseError`, naming the
holder's PID and command, instead of interleaving ``checkpoints/``, ``best/``, ``final/`` and
``evaluations.jsonl``. The OS releases the lock when the holder exits, however it exits
(``kill -9`` and OOM included), so the lock file left behind never blocks a later run.

Holding the lock also makes it safe to clear what an interrupted checkpoint write left behind
(:func:`~budgetgym.agents.checkpoints.remove_partial_checkpoints`): no other process can be
writing into the run.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import inspect
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from budgetgym.agents.checkpoints import RunPaths, remove_partial_checkpoints, run_of_checkpoint

#: The lock file inside a run directory; it holds the holder's PID, command and start time.
LOCK_FILE = ".lock"

F = TypeVar("F", bound=Callable[..., Any])


class RunInUseError(OSError):
    """Another process holds the run directory's lock (the CLI prints it as one line)."""


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock of the existing directory ``run_dir`` inside the block.

    Yields the lock file's path. Raises :class:`RunInUseError` naming the holder when another
    process (or another ``run_lock`` in this one) holds it.
    """
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise OSError(
            f"Cannot lock run directory {run_dir} ({err.strerror}): training writes into it, "
            "so it must be writable."
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInUseError(_in_use_message(Path(run_dir), _holder(fd))) from None
        holder = {
            "pid": os.getpid(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> dict[str, Any]:
    """What the lock file says about its holder (empty while the holder is still writing it)."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _in_use_message(run_dir: Path, holder: dict[str, Any]) -> str:
    pid = holder.get("pid")
    if type(pid) is not int:
        return (
            f"Run directory {run_dir} is in use by another process; wait for it to finish or "
            "stop it before training here."
        )
    command = f" ({holder['command']}, since {holder.get('since')})" if "command" in holder else ""
    return (
        f"Run directory {run_dir} is in use by process {pid}{command}; wait for it to finish, "
        f"or stop it with `kill -INT {pid}` (it saves a checkpoint) before training here."
    )


def holds_run_lock(argument: str = "run_dir", create: bool = False) -> Callable[[F], F]:
    """Decorate a function that works in the run directory passed as ``argument`` (or in the
    run of the checkpoint folder passed): it runs holding :func:`run_lock`, after the leftovers
    of interrupted checkpoint writes are cleared.

    ``create``: make the directory first when it does not exist (a new run). A path that is not
    a directory is left to the function to report.
    """

    def decorate(func: F) -> F:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            run_dir = _run_root(Path(signature.bind(*args, **kwargs).arguments[argument]))
            if create and not run_dir.exists():
                run_dir.mkdir(parents=True)
            if not run_dir.is_dir():
                return func(*args, **kwargs)
            with run_lock(run_dir):
                remove_partial_checkpoints(run_dir)
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _run_root(path: Path) -> Path:
    """The run directory ``path`` names: itself, or the run of a checkpoint folder inside one
    (``train --resume RUN/checkpoints/step_*`` locks ``RUN``)."""
    run = None if RunPaths(path).config.is_file() else run_of_checkpoint(path)
    return run.root if run is not None and run.config.is_file() else path
