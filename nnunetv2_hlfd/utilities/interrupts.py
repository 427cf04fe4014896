"""How a command ends when it is stopped: a kill (SIGTERM, a scheduler's time limit) unwinds like Ctrl-C, so
every `finally` and cleanup runs (the staged output folders are removed, running trainings stopped).

Leaf module (stdlib only).
"""

from __future__ import annotations

import signal
from contextlib import contextmanager

__all__ = ["INTERRUPTED_STATUS", "terminate_as_interrupt"]

INTERRUPTED_STATUS = 130  # the shell's status for a program ended by Ctrl-C (128 + SIGINT)


@contextmanager
def terminate_as_interrupt():
    """SIGTERM raises KeyboardInterrupt in the block, as Ctrl-C does; outside the main thread signals are left alone."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
