"""One training as a job: `nnUNetv2_train` in a subprocess, its log, its outcome.

The same function runs a training on a local worker and inside a submitit job (Slurm or
submitit's local executor), so every backend trains the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

LOG_TAIL_LINES = 25
STOP_GRACE_S = 30  # for nnU-Net to stop its augmentation workers after Ctrl-C (SIGINT), then SIGTERM

_running: set[subprocess.Popen] = set()
_running_lock = threading.Lock()


@dataclass(frozen=True)
class Slot:
    """Where a local worker runs its trainings: its CPU cores, or its GPU."""

    cores: tuple[int, ...] = ()  # empty: wherever the scheduler (Slurm) put the job
    gpu: int | None = None

    def environment(self) -> dict[str, str]:
        if self.gpu is not None:
            return {"CUDA_VISIBLE_DEVICES": str(self.gpu)}
        if not self.cores:
            return {}
        threads = str(len(self.cores))
        # nnU-Net augments in nnUNet_n_proc_DA processes besides the training one; inside the worker's cores
        return {
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "nnUNet_n_proc_DA": os.environ.get("nnUNet_n_proc_DA", str(len(self.cores) - 1)),
            "nnUNet_def_n_proc": os.environ.get("nnUNet_def_n_proc", threads),
        }


@dataclass(frozen=True)
class TrainingJob:
    """Everything a job needs, picklable for submitit."""

    key: str
    command: tuple[str, ...]
    environment: dict[str, str]
    log: Path
    lock: Path
    slot: Slot = field(default_factory=Slot)


@dataclass(frozen=True)
class Outcome:
    key: str
    returncode: int
    wall_s: float
    log_tail: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_training(job: TrainingJob) -> Outcome:
    """Run the job's nnUNetv2_train to its end; the log keeps everything it printed."""
    executable = shutil.which(job.command[0], path=job.environment.get("PATH", os.environ.get("PATH")))
    if executable is None:
        return Outcome(job.key, 127, 0.0, f"{job.command[0]} is not on PATH; install nnunetv2 (pip install nnunetv2)")
    job.log.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with open(job.log, "a") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(job.command)}\n")
        log.flush()
        # its own process group, so stopping it reaches nnU-Net's augmentation workers too
        process = subprocess.Popen(
            [executable, *job.command[1:]],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **job.environment, **job.slot.environment()},
            start_new_session=True,
        )
        if job.slot.cores and hasattr(os, "sched_setaffinity"):
            # set before the child starts its threads and augmentation workers, which inherit it
            os.sched_setaffinity(process.pid, job.slot.cores)
        write_lock(job.lock, process.pid)
        with _running_lock:
            _running.add(process)
        try:
            returncode = process.wait()
        except BaseException:
            stop(process)
            raise
        finally:
            with _running_lock:
                _running.discard(process)
            job.lock.unlink(missing_ok=True)
    return Outcome(job.key, returncode, time.time() - started, log_tail(job.log) if returncode else "")


def signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def stop(process: subprocess.Popen) -> None:
    """Ctrl-C to the training's process group first, SIGTERM if it does not end (SIGINT is ignored under nohup)."""
    signal_group(process, signal.SIGINT)
    try:
        process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    signal_group(process, signal.SIGTERM)  # also what is left of its augmentation workers
    process.wait()


def stop_running_trainings() -> None:
    """Stop every training this process started; their checkpoints stay, so a rerun continues them."""
    with _running_lock:
        processes = list(_running)
    for process in processes:
        signal_group(process, signal.SIGINT)
    for process in processes:
        stop(process)


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def write_lock(lock: Path, pid: int) -> None:
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "started": time.time()}))


def running_elsewhere(lock: Path) -> str | None:
    """The process of an earlier study run still training this (the study was killed, its training was not)."""
    if not lock.is_file():
        return None
    try:
        owner = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None
    if owner.get("host") != socket.gethostname():
        return None  # a cluster node's: its scheduler ended the job or it is still queued there, not checkable here
    try:
        os.kill(int(owner["pid"]), 0)
    except (ProcessLookupError, KeyError, ValueError):
        return None
    except PermissionError:
        pass
    return f"pid {owner['pid']}"
