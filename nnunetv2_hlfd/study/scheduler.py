"""Running the study's trainings in dependency order, on local workers or through submitit.

Local workers each own a slot (CPU cores or one GPU). With submitit, Slurm gets every training at
once, a student's job waiting for its teacher's (`afterok`); executors without dependencies
(submitit's local one) get a training when what it needs is done, as local workers do.
"""

from __future__ import annotations

import queue
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from nnunetv2_hlfd.study.grid import BLOCKED, DONE, FAILED, Training
from nnunetv2_hlfd.study.jobs import Outcome, Slot, TrainingJob, run_training
from nnunetv2_hlfd.study.progress import StudyProgress

POLL_S = 1.0


class LocalBackend:
    """One thread per slot, each waiting on its nnUNetv2_train subprocess."""

    supports_dependencies = False

    def __init__(self, slots: list[Slot]):
        self.free: queue.SimpleQueue[Slot] = queue.SimpleQueue()
        for slot in slots:
            self.free.put(slot)
        self.pool = ThreadPoolExecutor(max_workers=len(slots), thread_name_prefix="study-worker")

    def has_room(self) -> bool:
        return not self.free.empty()

    def submit(self, job: TrainingJob, after: list) -> Future:
        slot = self.free.get_nowait()

        def run() -> Outcome:
            try:
                return run_training(replace(job, slot=slot))
            finally:
                self.free.put(slot)

        return self.pool.submit(run)

    @staticmethod
    def is_queued(handle: Future) -> bool:
        return False

    @staticmethod
    def is_done(handle: Future) -> bool:
        return handle.done()

    @staticmethod
    def outcome(handle: Future, key: str) -> Outcome:
        return handle.result()

    @staticmethod
    def cancel(handle: Future) -> None:
        handle.cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class SubmititBackend:
    """Each training one submitit job; Slurm orders them by afterok dependencies."""

    def __init__(self, folder: Path, cluster: str, parallel: int, parameters: dict):
        import submitit

        self.executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        self.executor.update_parameters(**parameters)
        self.supports_dependencies = cluster == "slurm"
        self.parallel = parallel  # executors that run what they get at once (local) are held to the workers
        self.active = 0

    def has_room(self) -> bool:
        return self.supports_dependencies or self.active < self.parallel

    def submit(self, job: TrainingJob, after: list):
        if self.supports_dependencies:
            dependency = {"dependency": "afterok:" + ":".join(j.job_id for j in after)} if after else {}
            self.executor.update_parameters(slurm_additional_parameters=dependency, name=job.key)
        handle = self.executor.submit(run_training, job)
        self.active += 1
        return handle

    @staticmethod
    def is_queued(handle) -> bool:
        return handle.state.upper() in ("PENDING", "QUEUED", "CONFIGURING", "REQUEUED")

    def is_done(self, handle) -> bool:
        finished = handle.done()
        return finished

    def outcome(self, handle, key: str) -> Outcome:
        self.active -= 1
        from submitit.core.utils import FailedJobError, UncompletedJobError

        try:
            return handle.result()
        except (FailedJobError, UncompletedJobError) as error:  # the job itself died (node, time limit, cancel)
            return Outcome(key, 1, 0.0, f"the submitit job {handle.job_id} failed: {str(error)[-2000:]}")

    def cancel(self, handle) -> None:
        self.active -= 1
        handle.cancel(check=False)

    def close(self) -> None:
        pass


def run_graph(graph: list[Training], jobs: dict[str, TrainingJob], backend, progress: StudyProgress) -> None:
    """Submit each training once what it needs is done (or submitted, where the backend orders jobs itself)."""
    waiting = [t for t in graph if t.key in jobs]
    handles: dict[str, object] = {}
    running: dict[str, object] = {}
    state = {key: record.state for key, record in progress.records.items()}
    dependencies = {t.key: t.depends_on for t in graph}
    while waiting or running:
        for key, handle in list(running.items()):
            failed = [k for k in dependencies[key] if state[k] in (FAILED, BLOCKED)]
            if failed:  # submitted with afterok, it would wait for ever
                backend.cancel(handle)
                state[key] = BLOCKED
                progress.block(key, f"{', '.join(failed)} did not finish")
                del running[key]
            elif backend.is_done(handle):
                outcome = backend.outcome(handle, key)
                state[key] = DONE if outcome.ok else FAILED
                progress.finish(key, outcome.ok, outcome.wall_s, outcome.log_tail)
                del running[key]
            elif not backend.is_queued(handle):
                progress.running(key)
        for training in list(waiting):
            needed = [state[k] for k in training.depends_on]
            if any(s in (FAILED, BLOCKED) for s in needed):
                failed = [k for k in training.depends_on if state[k] in (FAILED, BLOCKED)]
                progress.block(training.key, f"{', '.join(failed)} did not finish")
                state[training.key] = BLOCKED
                waiting.remove(training)
                continue
            ready = all(s == DONE for s in needed) or (
                backend.supports_dependencies and all(k in handles or state[k] == DONE for k in training.depends_on)
            )
            if ready and backend.has_room():
                after = [handles[k] for k in training.depends_on if k in handles and state[k] != DONE]
                handle = backend.submit(jobs[training.key], after)
                handles[training.key] = running[training.key] = handle
                progress.start(training.key, jobs[training.key].log, queued_on_cluster=backend.is_queued(handle))
                waiting.remove(training)
        progress.refresh()
        if waiting or running:
            time.sleep(POLL_S)
