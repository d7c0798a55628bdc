"""Progress of the harness's own long stages (feature extraction, canary training).

Why one helper: the CLI wants a live bar with an ETA on the terminal, while programmatic callers
(``harness.testing.run_suite``) pass their own ``echo`` and want plain,
recordable lines. ``bar`` gives a tqdm bar (stderr) for the CLI's echo and falls back to one
line per update for any other echo, so both keep the same call sites.

Across Ray workers the driver shows one rate-limited line instead (``ProgressLine``). Samples found in the cache count as done but not towards the rate, so a resumed run's ETA is
not fooled by the instant cached part. Lines are rate-limited: a driver polling many workers
prints one line every few seconds, not one per batch.
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
    stderr when ``echo`` is the CLI's, else a line through ``echo`` every ``every`` updates.
    Nothing to do (``total`` 0, e.g. a fully cached split) shows nothing."""
    if echo is stderr_echo and total > 0:
        from tqdm import tqdm

        with tqdm(total=total, desc=label, unit=unit, file=sys.stderr, dynamic_ncols=True,
                  leave=True, mininterval=0.5) as t:
            yield t
        return
    yield _Lines(total, label, unit, echo, max(1, every))


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class ProgressLine:
    """Samples done / total, rate and ETA, echoed at most every ``every`` seconds."""

    def __init__(self, total: int, echo: Callable[[str], None], label: str = "extract",
                 every: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.echo = echo
        self.label = label
        self.every = every
        self.clock = clock
        self.start = clock()
        self.cached = 0
        self.computed = 0
        self._last_shown: float | None = None
        self._last_text = ""

    @property
    def done(self) -> int:
        return self.cached + self.computed

    def set(self, cached: int, computed: int) -> None:
        """Absolute counts (as a driver reads them from its workers)."""
        self.cached, self.computed = cached, computed

    def add(self, n: int, computed: bool) -> None:
        if computed:
            self.computed += n
        else:
            self.cached += n

    def eta(self) -> float | None:
        """Seconds left at the rate of the samples computed so far (None before the first)."""
        if self.computed == 0:
            return None
        rate = self.computed / max(self.clock() - self.start, 1e-9)
        return max(self.total - self.done, 0) / rate

    def text(self, extra: str = "") -> str:
        head = f"[{self.label}] {self.done}/{self.total} samples"
        if self.cached:
            head += f" ({self.cached} from cache)"
        parts = [head]
        elapsed = self.clock() - self.start
        if self.computed:
            parts.append(f"{self.computed / max(elapsed, 1e-9):.2f} samples/s")
        if self.done < self.total:
            eta = self.eta()
            parts.append(f"ETA {_duration(eta)}" if eta is not None else "ETA -")
        else:
            parts.append(f"done in {_duration(elapsed)}")
        if extra:
            parts.append(extra)
        return ", ".join(parts)

    def show(self, extra: str = "", force: bool = False) -> None:
        """Echo the line if ``every`` seconds passed since the last one (or ``force``) and it
        changed."""
        now = self.clock()
        if not force and self._last_shown is not None and now - self._last_shown < self.every:
            return
        line = self.text(extra)
        if line != self._last_text:
            self.echo(line)
            self._last_text = line
        self._last_shown = now
