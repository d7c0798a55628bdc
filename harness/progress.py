"""Progress of the harness's own long stages (feature extraction, canary training).

Why one helper: the CLI wants a live bar with an ETA on the terminal, while programmatic callers
(``harness.testing.run_suite``, a future Ray executor) pass their own ``echo`` and want plain,
recordable lines. ``bar`` gives a tqdm bar (stderr) for the CLI's echo and falls back to one
line per update for any other echo, so both keep the same call sites.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

Echo = Callable[[str], None]


def stderr_echo(msg: str) -> None:
    """The CLI's echo: one line on stderr, flushed (progress must show while a stage runs)."""
    print(msg, file=sys.stderr, flush=True)


class _Lines:
    """Progress as plain lines through ``echo``: ``label: unit i/n (elapsed s, ETA s)``, one
    every ``every`` updates and one at the end."""

    def __init__(self, total: int, label: str, unit: str, echo: Echo, every: int):
        self.total, self.label, self.unit, self.echo, self.every = total, label, unit, echo, every
        self.n, self.t0, self.postfix = 0, time.perf_counter(), ""

    def update(self, k: int = 1) -> None:
        before, self.n = self.n, self.n + k
        if self.n // self.every == before // self.every and self.n < self.total:
            return
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.n * max(0, self.total - self.n) if self.n else 0.0
        self.echo(f"{self.label}: {self.unit} {self.n}/{self.total} ({elapsed:.1f} s, "
                  f"ETA {eta:.0f} s){self.postfix}")

    def set_postfix_str(self, s: str) -> None:
        self.postfix = f", {s}"


@contextmanager
def bar(total: int, label: str, echo: Echo, unit: str = "batch", every: int = 1) -> Iterator:
    """A progress object with ``update(k)`` and ``set_postfix_str(s)``: a tqdm bar with ETA on
    stderr when ``echo`` is the CLI's, else a line through ``echo`` every ``every`` updates."""
    if echo is stderr_echo:
        from tqdm import tqdm

        with tqdm(total=total, desc=label, unit=unit, file=sys.stderr, dynamic_ncols=True,
                  leave=True, mininterval=0.5) as t:
            yield t
        return
    yield _Lines(total, label, unit, echo, max(1, every))
