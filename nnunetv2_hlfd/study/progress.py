"""What the study is doing: one record per training, shown as a progress bar and written as status.json."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from nnunetv2_hlfd.study.grid import BLOCKED, DONE, FAILED, QUEUED, RUNNING, Training
from nnunetv2_hlfd.utilities.progress_bar import is_terminal, progress_bar

STATUS_WRITE_EVERY_S = 5.0


@dataclass
class Record:
    trainer: str
    fold: int
    state: str = QUEUED
    started: float | None = None
    finished: float | None = None
    wall_s: float | None = None
    log: str | None = None
    message: str = ""
    done_before: bool = False  # finished by an earlier run of the study


class StudyProgress:
    def __init__(self, graph: list[Training], status_file: Path, workers: int, show: bool = True, stream=None):
        self.records = {t.key: Record(t.trainer, t.fold) for t in graph}
        self.status_file = status_file
        self.workers = max(workers, 1)
        self.started = time.time()
        self._written = 0.0
        self._earlier = _earlier_records(status_file)
        self.interrupted = False
        stream = stream or sys.stderr
        # Redirected into a file (nohup, Slurm), the bar is shown only when a training changes state, not every
        # second, and as plain lines (progress_bar): a study's log stays readable.
        self.live = is_terminal(stream)
        self.bar = progress_bar(
            total=len(graph), desc="study", unit="training", disable=not show, dynamic_ncols=True, file=stream
        )

    def mark_done_before(self, key: str) -> None:
        record = self.records[key]
        earlier = self._earlier.get(key, {})
        record.state, record.done_before, record.wall_s = DONE, True, earlier.get("wall_s")
        self.bar.update(1)

    def start(self, key: str, log: Path, queued_on_cluster: bool = False) -> None:
        record = self.records[key]
        record.state, record.log = (QUEUED if queued_on_cluster else RUNNING), str(log)
        if not queued_on_cluster:
            record.started = time.time()
        self.note(f"started {key}" if not queued_on_cluster else f"submitted {key}")

    def running(self, key: str) -> None:
        record = self.records[key]
        if record.state != RUNNING:
            record.state, record.started = RUNNING, time.time()

    def finish(self, key: str, ok: bool, wall_s: float, message: str = "") -> None:
        record = self.records[key]
        record.state, record.finished, record.wall_s, record.message = (
            (DONE if ok else FAILED),
            time.time(),
            wall_s,
            message,
        )
        self.bar.update(1)
        self.note(
            f"{'done' if ok else 'FAILED'} {key} in {_duration(wall_s)}"
            + (f"; log {record.log}, its end:\n{message}" if not ok else "")
        )

    def block(self, key: str, because: str) -> None:
        record = self.records[key]
        record.state, record.message = BLOCKED, because
        self.bar.update(1)
        self.note(f"not run {key}: {because}")

    def note(self, text: str) -> None:
        self.bar.write(text)
        self.refresh(force=True)

    def counts(self) -> dict[str, int]:
        states = [r.state for r in self.records.values()]
        return {state: states.count(state) for state in (DONE, RUNNING, QUEUED, FAILED, BLOCKED)}

    def eta_s(self) -> float | None:
        """Remaining work at the mean wall time of the trainings finished so far, spread over the workers."""
        measured = [r.wall_s for r in self.records.values() if r.state == DONE and r.wall_s and not r.done_before]
        if not measured:
            return None
        mean = sum(measured) / len(measured)
        now = time.time()
        remaining = sum(
            mean if r.state == QUEUED else max(mean - (now - (r.started or now)), 0.0)
            for r in self.records.values()
            if r.state in (QUEUED, RUNNING)
        )
        return remaining / self.workers

    def refresh(self, force: bool = False) -> None:
        counts = self.counts()
        eta = self.eta_s()
        self.bar.set_postfix_str(
            ", ".join(f"{n} {state}" for state, n in counts.items() if n)
            + f"; elapsed {_duration(time.time() - self.started)}"
            + (f", ETA {_duration(eta)}" if eta is not None else ""),
            refresh=self.live or force,
        )
        if force or time.time() - self._written >= STATUS_WRITE_EVERY_S:
            self.write_status(counts, eta)

    def write_status(self, counts=None, eta=None) -> None:
        status = {
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "elapsed_s": round(time.time() - self.started, 1),
            "eta_s": None if eta is None else round(eta, 1),
            "counts": counts or self.counts(),
            "interrupted": self.interrupted,
            "trainings": {key: asdict(record) for key, record in self.records.items()},
        }
        self.status_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.status_file.with_suffix(".partial")
        partial.write_text(json.dumps(status, indent=2))
        os.replace(partial, self.status_file)
        self._written = time.time()

    def mark_interrupted(self) -> None:
        """The study was stopped with its trainings: each one running is queued again, and says so."""
        self.interrupted = True
        now = time.time()
        for record in self.records.values():
            if record.state == RUNNING:
                record.state = QUEUED
                record.message = (
                    f"interrupted after {_duration(now - (record.started or now))}; "
                    f"rerun the same command to continue it from its checkpoint"
                )

    def close(self) -> None:
        # The runner closes in a `finally`: a KeyboardInterrupt on its way out (Ctrl-C, or SIGTERM made one)
        # means the running trainings were stopped, and status.json must not say "running".
        if isinstance(sys.exc_info()[1], KeyboardInterrupt):
            self.mark_interrupted()
        self.write_status()
        self.bar.close()


def _earlier_records(status_file: Path) -> dict:
    try:
        return json.loads(status_file.read_text())["trainings"]
    except (OSError, ValueError, KeyError):
        return {}


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
