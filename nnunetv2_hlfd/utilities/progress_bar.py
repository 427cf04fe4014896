"""The one progress bar of the package (conversions, benchmark scoring, export, the study).

On a terminal it is tqdm's bar, redrawn in place. Written into a file or a pipe (`> log 2>&1`, nohup, Slurm) a
redrawn bar is a run of carriage-return frames that reads as one long line; there the bar prints plain lines
instead: one when it starts, at most one every `line_every_s` seconds while it moves, and its last state when it
closes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable

from tqdm import tqdm

LINE_EVERY_S = 30.0
# No bar of blocks in a log: a line says how far (count and percentage), how long, what is left and the postfix.
LINE_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


def is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a stream without isatty, or a closed one
        return False


def progress_bar(iterable: Iterable | None = None, *, file=None, line_every_s: float = LINE_EVERY_S, **options) -> tqdm:
    """tqdm(iterable, file=file, **options) on a terminal; elsewhere the same bar printed as lines (LineProgress).
    `file` defaults to sys.stderr, as tqdm's."""
    stream = sys.stderr if file is None else file
    if is_terminal(stream):
        return tqdm(iterable, file=stream, **options)
    return LineProgress(iterable, file=stream, line_every_s=line_every_s, **options)


class LineProgress(tqdm):
    """A tqdm bar that never redraws: each display that shows a new count or postfix is a line of its own, at most
    one per `line_every_s` seconds, and the state the bar closes in is always shown."""

    def __init__(self, iterable: Iterable | None = None, *, line_every_s: float = LINE_EVERY_S, **options):
        self._line_every_s = line_every_s
        self._last_line_at: float | None = None
        self._last_line_state: tuple | None = None
        self._closing = False
        total = options.get("total")
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        if options.get("bar_format") is None and total is not None:
            options["bar_format"] = LINE_FORMAT  # tqdm's own line (no bar of blocks) serves an unknown total
        options.pop("dynamic_ncols", None)  # a file has no width to follow
        super().__init__(iterable, **options)

    def display(self, msg=None, pos=None):
        if msg == "":  # tqdm clearing its bar before a write or at close: in a log every line stays
            return False
        now = time.monotonic()
        state = (self.n, self.postfix)
        if msg is None:
            if state == self._last_line_state:
                return True  # the last line already says it (a refresh after tqdm.write, or the close)
            recent = self._last_line_at is not None and now - self._last_line_at < self._line_every_s
            if recent and not self._closing:
                return True
        self._last_line_at, self._last_line_state = now, state
        self.fp.write(f"{self if msg is None else msg}\n")
        self.fp.flush()
        return True

    def clear(self, nolock=False):
        pass  # nothing was drawn over: tqdm.write's text simply follows the last line

    def close(self):
        if self.disable:
            return
        self._closing = True
        if getattr(self, "last_print_t", -1.0) >= self.start_t + self.delay:  # shown at all (tqdm's delay)
            self._ema_dt = lambda: None  # the final line's rate is the overall one, as tqdm's own final frame
            self.display()
        self.leave = False  # tqdm's close then only clears (a no-op here) instead of redrawing the bar
        super().close()
