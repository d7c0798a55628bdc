"""One progress line for a run whose samples are extracted by several workers.

Samples found in the cache count as done but not towards the rate, so a resumed run's ETA is
not fooled by the instant cached part. Lines are rate-limited: a driver polling many workers
prints one line every few seconds, not one per batch.
"""

from __future__ import annotations

import time
from typing import Callable


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
