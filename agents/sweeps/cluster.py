"""Connecting to Ray, and several seeds of one config as Ray tasks.

With no address (or ``local``) Ray starts inside the command with the machine's CPUs or
``cpus``; ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT`` join a running cluster (``ray start
--head`` on one machine, ``ray start --address HOST:PORT`` on the others). Every machine needs
budgetgym installed, and the run directories must be on a folder they all see at the same path.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Sequence
from typing import Any

LOCAL = "local"


def connect(address: str | None, cpus: int | None = None) -> str:
    """Start or join Ray (once per process); returns what it connected to, in words.

    Raises:
        ValueError: ``cpus`` given with a cluster address (a cluster's CPUs are those its
            machines were started with), or ``cpus < 1``.
        ConnectionError: no cluster answers at ``address``.
    """
    import ray

    local = address in (None, LOCAL)
    if cpus is not None and not local:
        raise ValueError(
            f"--cpus sets the CPUs of the Ray started inside the command; the cluster at "
            f"{address} has the CPUs its machines were started with (ray start --num-cpus)."
        )
    if cpus is not None and cpus < 1:
        raise ValueError(f"--cpus must be >= 1, got {cpus}.")
    if not ray.is_initialized():
        options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        if local:
            # "local": a new Ray even where `ray start` left an address behind on this machine
            ray.init(address=LOCAL, num_cpus=cpus, include_dashboard=False, **options)
        else:
            ray.init(address=address, **options)
    total = int(ray.cluster_resources().get("CPU", 0))
    where = "a Ray started here" if local else f"the Ray cluster at {address}"
    return f"{where} ({total} CPUs)"


def run_seed_tasks(
    worker: Callable[..., tuple[int, str, bool, int]],
    jobs: Sequence[Any],
    address: str,
    cpus: int | None,
    torch_threads: int,
    bars: Any,
    log: Callable[[str], None],
) -> list[tuple[int, str, bool, int]]:
    """Run ``worker`` (:func:`~budgetgym.agents.training.seed_worker`) for each
    :class:`~budgetgym.agents.training.SeedJob` as a Ray task reserving ``torch_threads`` CPUs,
    feeding progress to ``bars`` (``_SeedBars``) through a Ray queue. Ctrl-C cancels the tasks
    gently: each seed saves a checkpoint and stops, as with local workers."""
    import ray
    from ray.util.queue import Queue

    log(f"Seeds run on {connect(address, cpus)}, {torch_threads} CPU(s) each.")
    queue = Queue()
    task = ray.remote(num_cpus=torch_threads, max_retries=0)(worker)
    refs = [
        task.remote(job.config_json, job.run_dir, queue, job.seed, torch_threads) for job in jobs
    ]

    def cancel(*_: Any) -> None:
        log("Ctrl-C: seeds save and stop...")
        for ref in refs:
            ray.cancel(ref)  # a SIGINT in the task: the run saves a checkpoint and returns

    previous = signal.signal(signal.SIGINT, cancel)
    try:
        pending = list(refs)
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
            bars.drain(queue)
        bars.drain(queue)
        return ray.get(refs)
    finally:
        signal.signal(signal.SIGINT, previous)
        queue.shutdown()
