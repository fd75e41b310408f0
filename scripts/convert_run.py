"""Convert a trusted run from an older budgetgym, whose statistics are pickles, to data files.

Older runs kept normalization statistics as ``vecnormalize.pkl`` and SAC's replay buffers as
``replay_buffer.pkl``. budgetgym no longer loads pickles from a run, since unpickling can
execute any code the file holds. For a run you made yourself, this script unpickles them once,
writes ``vecnormalize.npz`` and ``replay_buffer.npz`` beside them and removes the pickles::

    python -m budgetgym.scripts.convert_run runs/ppo_default/<run> --trust-pickles

``--trust-pickles`` is required: without it the script only lists what it would convert.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path

from budgetgym.agents.checkpoints import (
    LEGACY_VECNORM_FILE,
    META_FILE,
    REPLAY_FILE,
    VECNORM_FILE,
    NormalizationStats,
    read_meta,
    recorded_channels,
    save_replay_buffer,
)

LEGACY_REPLAY_FILE = "replay_buffer.pkl"


def pickled_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint directories of ``run_dir`` (or ``run_dir`` itself) holding pickled statistics."""
    directories = [run_dir, *(p.parent for p in run_dir.rglob(META_FILE))]
    return sorted({d for d in directories if (d / LEGACY_VECNORM_FILE).is_file()})


def convert_checkpoint(directory: Path) -> None:
    """Unpickle a checkpoint's statistics and replay buffer (trusted!), write them as ``.npz``
    and remove the pickles."""
    with open(directory / LEGACY_VECNORM_FILE, "rb") as handle:
        vecnorm = pickle.load(handle)  # noqa: S301 (the user vouched for this run)
    NormalizationStats.from_vecnormalize(vecnorm).save(directory / VECNORM_FILE)
    meta = read_meta(directory) if (directory / META_FILE).is_file() else {}
    obs_dim = recorded_channels(meta, directory).obs_dim
    NormalizationStats.load(directory / VECNORM_FILE, obs_dim)  # validate what was written
    replay = directory / LEGACY_REPLAY_FILE
    if replay.is_file():
        with open(replay, "rb") as handle:
            save_replay_buffer(pickle.load(handle), directory / REPLAY_FILE)  # noqa: S301
        replay.unlink()
    (directory / LEGACY_VECNORM_FILE).unlink()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for a bad path or without ``--trust-pickles``)."""
    parser = argparse.ArgumentParser(
        prog="python -m budgetgym.scripts.convert_run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("run_dir", type=Path, help="Run directory (or a checkpoint directory).")
    parser.add_argument(
        "--trust-pickles",
        action="store_true",
        help="Unpickle the run's statistics: only for a run you made yourself.",
    )
    args = parser.parse_args(argv)
    if not args.run_dir.is_dir():
        print(f"error: run directory {args.run_dir} does not exist.")
        return 2
    found = pickled_checkpoints(args.run_dir)
    if not found:
        print(f"Nothing to convert: no {LEGACY_VECNORM_FILE} in {args.run_dir}.")
        return 0
    if not args.trust_pickles:
        listed = ", ".join(str(d) for d in found)
        print(
            f"error: {listed} keep statistics as pickles, which can run code when loaded; "
            "pass --trust-pickles to convert them if you made this run yourself."
        )
        return 2
    for directory in found:
        try:
            convert_checkpoint(directory)
        except Exception as err:  # noqa: BLE001 (unpickling raises any kind)
            print(f"error: cannot convert {directory} ({' '.join(str(err).split())[:160]}).")
            return 2
        print(f"Converted {directory}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
