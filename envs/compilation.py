"""Compile the simulator's numba kernels ahead of the work that needs them.

Every kernel is compiled with ``cache=True``: the first use on a machine compiles it (about a
minute for the serial builds, about as long again for the parallel ones), later processes load
the machine code from ``__pycache__`` in a second or two. :func:`compile_kernels` runs a tiny
batch through every kernel a workload uses, so that a command can announce the cold compile
(the CLI draws a spinner) instead of sitting silent inside its first step.

A cold cache is detected by numba itself: its ``numba:compile`` event is broadcast only when a
function is really compiled, never when a build is loaded from the on-disk cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import numpy as np
from numba.core import event

from budgetgym.envs.campaigns import BatchedCampaigns
from budgetgym.envs.core import ACTION_DIM, PARALLEL_MIN_ENVS, hourly_markets
from budgetgym.envs.scenarios import EVAL_SEED_START


class _FirstCompile(event.Listener):
    """Calls ``callback`` when the first ``numba:compile`` event of its block starts."""

    def __init__(self, callback: Callable[[], None] | None) -> None:
        self.callback = callback
        self.compiled = False

    def on_start(self, ev: event.Event) -> None:
        if not self.compiled:
            self.compiled = True
            if self.callback is not None:
                self.callback()

    def on_end(self, ev: event.Event) -> None:
        pass


@contextmanager
def on_first_compile(callback: Callable[[], None] | None = None) -> Iterator[_FirstCompile]:
    """Within the block, call ``callback()`` once, as numba starts the first real compilation.

    Loading a build from numba's on-disk cache is not a compilation. The yielded listener's
    ``compiled`` attribute says afterwards whether anything was compiled.
    """
    listener = _FirstCompile(callback)
    with event.install_listener("numba:compile", listener):
        yield listener


def compile_kernels(
    batch_sizes: Iterable[int] = (1,), on_compile: Callable[[], None] | None = None
) -> bool:
    """Compile (or load from numba's cache) the kernels that batches of these sizes run.

    A batch of fewer than ``PARALLEL_MIN_ENVS`` campaigns runs the serial build of the step,
    observation and summary kernels, a larger one the parallel build; both action paths
    (policy actions and the oracle's spend requests) and the oracle's market kernel are
    compiled too.

    Args:
        batch_sizes: numbers of campaigns the coming work steps together (sizes < 1 ignored).
        on_compile: called once, just before the first real compilation (a cold cache).

    Returns:
        True when something was compiled, False when every build came from the cache (or was
        already loaded in this process).
    """
    sizes = sorted(
        {PARALLEL_MIN_ENVS if n >= PARALLEL_MIN_ENVS else 1 for n in batch_sizes if n > 0}
    )
    with on_first_compile(on_compile) as listener:
        for n in sizes:
            campaigns = BatchedCampaigns("mixed", horizon_hours=2)
            campaigns.reset(EVAL_SEED_START + np.arange(n))
            campaigns.step(np.zeros((n, ACTION_DIM)))
            campaigns.step_spend(np.zeros((n, ACTION_DIM - 1)))
            hourly_markets(campaigns.params)
    return listener.compiled
