"""The CPU cores this process may run on, counted one way for every user: the benchmark's provenance and case
workers, the demo's students side by side, the study's pinned workers and timing, the offline planner's threads.

Leaf module (stdlib only), so the study's option modules can use it without importing torch.
"""

from __future__ import annotations

import os

__all__ = ["core_ids", "cores_available"]


def core_ids() -> list[int]:
    """The ids of the cores this process may run on: its affinity where the system has one (a Slurm job's or
    taskset's share of the machine), else every core."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def cores_available() -> int:
    return len(core_ids())
