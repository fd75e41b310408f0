"""Progress display for long work: a bar on a terminal, a few plain lines in a log.

A bar redraws itself with carriage returns, which a log file or a CI console keeps as one long
line or hundreds of lines. :func:`is_terminal` decides: on a terminal the callers draw a bar
(rich for training, tqdm for evaluation); elsewhere :class:`LineProgress` writes one plain line
each time another ``every_pct`` percent of the work is done, with the steps, the time elapsed
and the estimated time left.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

#: Percent of the work between two lines of :class:`LineProgress`.
LINE_EVERY_PCT = 10


class ProgressBar(Protocol):
    """What callers need of a bar: tqdm's and :class:`LineProgress`'s common interface."""

    def update(self, n: int = 1) -> None: ...

    def set_description(self, desc: str) -> None: ...

    def close(self) -> None: ...


def is_terminal(stream: TextIO) -> bool:
    """True when ``stream`` is an interactive terminal (where a bar can redraw itself)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def format_duration(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss`` (``?`` for an unknown or infinite duration)."""
    if not seconds >= 0 or seconds == float("inf"):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class LineProgress:
    """Progress as plain lines: one each time another ``every_pct`` percent of ``total`` is done.

    Takes the part of tqdm's interface the callers use (``update``, ``set_description``,
    ``set_postfix_str``, ``close``, ``n``, ``total``), so a caller holds either. A line reads
    ``train: 40% (320,000/800,000 steps), elapsed 1:02, eta 1:33 | <postfix>``.

    Args:
        desc: what progresses (the line's first word).
        total: units of work in all (> 0).
        stream: where the lines go (default: ``sys.stderr`` when the object is created).
        every_pct: percent of ``total`` between lines (one line per multiple reached).
        initial: units already done (a resumed run); the first line is the next multiple.
        unit: the units' name in the line.
    """

    def __init__(
        self,
        desc: str,
        total: int,
        stream: TextIO | None = None,
        every_pct: int = LINE_EVERY_PCT,
        initial: int = 0,
        unit: str = "steps",
    ) -> None:
        if total <= 0:
            raise ValueError(f"total must be > 0, got {total}.")
        if not 0 < every_pct <= 100:
            raise ValueError(f"every_pct must be in (0, 100], got {every_pct}.")
        self.desc = desc
        self.total = int(total)
        self.stream = sys.stderr if stream is None else stream
        self.every_pct = every_pct
        self.unit = unit
        self.n = int(initial)
        self.postfix = ""
        self._initial = self.n
        self._started = time.perf_counter()
        self._next_pct = self._pct() // every_pct * every_pct + every_pct

    def _pct(self) -> int:
        return min(100, int(100 * self.n // self.total))

    def set_description(self, desc: str) -> None:
        """Name the work of the next lines."""
        self.desc = desc

    def set_postfix_str(self, text: str) -> None:
        """Text appended to the next lines (e.g. the latest validation metrics)."""
        self.postfix = text

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done; write a line when a multiple of ``every_pct`` is reached
        (one line however many multiples this update crosses)."""
        self.n += int(n)
        if self._pct() >= self._next_pct:
            self._write()
            self._next_pct = self._pct() // self.every_pct * self.every_pct + self.every_pct

    def _write(self) -> None:
        elapsed = time.perf_counter() - self._started
        done = self.n - self._initial
        left = (self.total - self.n) * elapsed / done if done > 0 else float("inf")
        line = (
            f"{self.desc}: {self._pct()}% ({self.n:,}/{self.total:,} {self.unit}), "
            f"elapsed {format_duration(elapsed)}, eta {format_duration(left)}"
        )
        self.stream.write(line + (f" | {self.postfix}" if self.postfix else "") + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Nothing to clear: every line is final."""


def evaluation_progress(desc: str, total: int, stream: TextIO | None = None) -> ProgressBar:
    """A tqdm bar over ``total`` campaign-steps on a terminal, else a :class:`LineProgress`
    (both on ``stream``, default ``sys.stderr``); the caller calls ``update`` and ``close``."""
    stream = sys.stderr if stream is None else stream
    if not is_terminal(stream):
        return LineProgress(desc, total, stream, unit="campaign-steps")
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", unit_scale=True, leave=False, file=stream)
