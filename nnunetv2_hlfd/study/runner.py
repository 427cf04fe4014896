"""`run_study`: plan if needed, train the grid in order, benchmark it, write study.md.

Every step is one of nnU-Net's or the project's commands in a subprocess (nnUNetv2_plan_and_preprocess,
nnUNetv2_train, nnunetv2_hlfd benchmark), so a study does exactly what a user would type, and a killed
study loses only the trainings it was running: nnU-Net's checkpoints let the rerun continue them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_hlfd.study.grid import (
    BLOCKED,
    DONE,
    FAILED,
    PLAIN_STUDENT,
    StudySettings,
    check_settings,
    default_output,
    fold_folder,
    is_finished,
    study_graph,
    teacher_environment,
    train_command,
)
from nnunetv2_hlfd.study.jobs import Slot, TrainingJob, log_tail, running_elsewhere, stop_running_trainings
from nnunetv2_hlfd.study.length import write_variants_module
from nnunetv2_hlfd.study.progress import StudyProgress
from nnunetv2_hlfd.study.report import write_study_md
from nnunetv2_hlfd.study.runs import PRIMARY_STUDENT, Roles
from nnunetv2_hlfd.study.scheduler import LocalBackend, SubmititBackend, run_graph
from nnunetv2_hlfd.utilities.cores import core_ids
from nnunetv2_hlfd.utilities.environment import temporary_environment
from nnunetv2_hlfd.utilities.interrupts import terminate_as_interrupt
from nnunetv2_hlfd.utilities.problems import UserFacingError

NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
# nnU-Net's planners of the plans a study may name; any other plans must exist already
PLANNERS = {
    "nnUNetPlans": "ExperimentPlanner",
    "nnUNetResEncUNetMPlans": "nnUNetPlannerResEncM",
    "nnUNetResEncUNetLPlans": "nnUNetPlannerResEncL",
    "nnUNetResEncUNetXLPlans": "nnUNetPlannerResEncXL",
}


class StudyIncomplete(UserFacingError):
    """Some trainings failed or could not run; the rerun of the same command retries exactly those."""


@dataclass(frozen=True)
class StudyRun:
    output: Path
    dataset: str
    benchmark: Path | None
    study_md: Path


def run_study(settings: StudySettings, show_progress: bool = True, command: str | None = None) -> StudyRun:
    """`command`: the command line that asked for the study, for study.md."""
    check_settings(settings)
    environment = nnunet_environment(settings)
    dataset = dataset_name(settings.dataset, environment)
    results = Path(environment["nnUNet_results"]) / dataset
    output = settings.output or default_output(results, settings)
    from nnunetv2_hlfd.utilities.output_folder import claim

    claim(output, "study", overwrite=False)  # refuses a folder of the user's; a rerun continues in its own
    for sub in ("logs", "locks"):
        (output / sub).mkdir(parents=True, exist_ok=True)
    variants = output / "trainers"
    environment["nnUNet_extTrainer"] = trainer_path(variants if settings.has_variants else None)
    ensure_preprocessed(settings, dataset, environment, output / "logs" / "plan_and_preprocess.log")
    check_tumour_class(dataset, environment)  # the endpoints are the tumour's: refused before hours of training
    if settings.has_variants:
        write_variants_module(variants, settings)
    check_trainers_found(settings, environment)

    started = time.time()
    classes = student_classes(settings)
    distilling = {student: distils(classes[student]) for student in settings.students}
    graph = study_graph(settings, distils=distilling.__getitem__)
    slots = worker_slots(settings)
    progress = StudyProgress(graph, output / "status.json", workers=len(slots), show=show_progress)
    jobs = {}
    for training in graph:
        folder = fold_folder(results, settings, training.trainer, training.fold, training.seed)
        if is_finished(folder, settings.needs_probabilities):
            progress.mark_done_before(training.key)
            continue
        if settings.report_only:
            continue
        name = training.key.replace("/", "__")
        lock = output / "locks" / f"{name}.json"
        if owner := running_elsewhere(lock):
            progress.block(
                training.key,
                f"still being trained by an earlier run of the study ({owner}); wait for it or stop it, then rerun",
            )
            continue
        students_env = teacher_environment(results, settings) if training.trainer != settings.teacher else {}
        jobs[training.key] = TrainingJob(
            training.key,
            tuple(train_command(settings, training, folder)),
            environment | students_env,
            output / "logs" / f"{name}.log",
            lock,
        )
    backend = make_backend(settings, slots, output)
    try:
        with terminate_as_interrupt():
            run_graph(graph, jobs, backend, progress)
    except KeyboardInterrupt:
        progress.note("interrupted: stopping the running trainings (rerun the same command to continue them)")
        stop_running_trainings()
        raise
    finally:
        backend.close()
        progress.close()
    unfinished = {k: r for k, r in progress.records.items() if r.state in (FAILED, BLOCKED)}
    runs_text = run_evidence(output, settings, results, dataset, environment, classes)
    benchmark = None
    study_md = output / "study.md"
    all_done = all(r.state == DONE for r in progress.records.values())
    if all_done and settings.benchmark:
        benchmark = output / "benchmark"
        try:
            run_benchmark(settings, dataset, environment, benchmark, output / "logs" / "benchmark.log")
        except RuntimeError:  # the trainings are done: study.md still records them
            write_study_md(
                study_md, settings, dataset, progress.records, None, time.time() - started, command, runs_text
            )
            raise
    write_study_md(study_md, settings, dataset, progress.records, benchmark, time.time() - started, command, runs_text)
    if unfinished:
        lines = [
            f"{key}: {record.state}"
            + (f" (log {record.log})" if record.log else "")
            + (f": {record.message.splitlines()[0]}" if record.state == BLOCKED else "")
            for key, record in unfinished.items()
        ]
        raise StudyIncomplete(
            f"{len(unfinished)} of {len(graph)} trainings did not finish:\n  - "
            + "\n  - ".join(lines)
            + "\nRerun the same command to retry them; the "
            f"{sum(r.state == DONE for r in progress.records.values())} finished ones are kept."
        )
    return StudyRun(output, dataset, benchmark, study_md)


def run_evidence(
    output: Path,
    settings: StudySettings,
    results: Path,
    dataset: str,
    environment: dict[str, str],
    classes: dict[str, type],
) -> str | None:
    """The teacher check, the runs' table, run-level statistics and learning curves (study/run_report.py), from
    what finished; the teacher check's warnings are printed too."""
    import json

    from nnunetv2_hlfd.study.run_report import write_run_evidence

    dataset_json = json.loads((Path(environment["nnUNet_preprocessed"]) / dataset / "dataset.json").read_text())
    text, warnings = write_run_evidence(output, settings, results, dataset_json, study_roles(settings, classes))
    for warning in warnings:
        print(f"warning: {warning}", flush=True)
    return text


def study_roles(settings: StudySettings, classes: dict[str, type]) -> Roles:
    """Each distilled student against the plain student of its own network (family and size), and HLFD's
    method at each network as the primary comparison, from the trainer classes (`student_classes`)."""
    distilling = {name: distils(classes[name]) for name in settings.students}
    plain = [n for n in settings.students if not distilling[n]]
    if not plain:
        return Roles.by_name(settings)
    references = {}
    for name in (n for n in settings.students if n not in plain):
        same = [p for p in plain if student_network(classes[p]) == student_network(classes[name])]
        references[name] = same[0] if same else plain[0] if len(plain) == 1 else None
    references = {n: r for n, r in references.items() if r is not None}
    hlfd = classes[PRIMARY_STUDENT].distillation
    primary = tuple(n for n in references if getattr(classes[n], "distillation", None) == hlfd)
    return Roles(references, primary)


def student_network(trainer: type) -> tuple:
    """What decides a trainer's student network: its family and size."""
    return (getattr(trainer, "student_family", None), getattr(trainer, "student_size", None))


def nnunet_environment(settings: StudySettings) -> dict[str, str]:
    environment = {name: value for name in NNUNET_FOLDERS if (value := os.environ.get(name))}
    environment |= settings.extra_env
    missing = [name for name in NNUNET_FOLDERS if name not in environment]
    if missing:
        raise UserFacingError(
            f"{', '.join(missing)} not set; a study uses nnU-Net's folders: export "
            f"{'=... '.join(missing)}=... (see nnU-Net's setting_up_paths.md)"
        )
    return environment


def dataset_name(dataset: str, environment: dict[str, str]) -> str:
    """The existing dataset `dataset` (name or id) names; nnU-Net itself takes any `Dataset...` name."""
    from nnunetv2_hlfd.study.dataset_check import resolve_dataset

    return resolve_dataset(dataset, environment)


def trainer_path(variants: Path | None) -> str:
    """The study's length variants first, then the user's nnUNet_extTrainer and the project's trainers."""
    from nnunetv2_hlfd.utilities.trainer_search import trainer_search_path

    return os.pathsep.join(([str(variants)] if variants else []) + [trainer_search_path()])


def ensure_preprocessed(settings: StudySettings, dataset: str, environment: dict[str, str], log: Path) -> None:
    """nnU-Net's own planning and preprocessing, for what is missing only (plans that exist are never redone)."""
    import json

    from nnunetv2_hlfd.study.dataset_check import check_plannable

    preprocessed = Path(environment["nnUNet_preprocessed"]) / dataset
    plans_file = preprocessed / f"{settings.plans}.json"
    dataset_id = dataset.removeprefix("Dataset").split("_")[0]
    processes = str(len(core_ids()))
    if not plans_file.is_file():
        if settings.plans not in PLANNERS:
            raise UserFacingError(
                f"{plans_file} does not exist and the study can plan only {', '.join(PLANNERS)}; "
                f"plan it first (nnUNetv2_plan_experiment -d {dataset_id} -pl YOUR_PLANNER)"
            )
        check_plannable(dataset, environment)  # nnU-Net plans by id: it must name this dataset alone
        run_logged(
            [
                "nnUNetv2_plan_and_preprocess",
                "-d",
                dataset_id,
                "-pl",
                PLANNERS[settings.plans],
                "-c",
                settings.configuration,
                "-np",
                processes,
            ],
            environment,
            log,
            # nnU-Net's planner sets torch's threads to nnUNet_n_proc_DA and fails on its 0 (augment in-process)
            drop=("nnUNet_n_proc_DA",) if os.environ.get("nnUNet_n_proc_DA") == "0" else (),
        )
        return
    configurations = json.loads(plans_file.read_text())["configurations"]
    if settings.configuration not in configurations:
        raise UserFacingError(
            f"{plans_file} has no configuration {settings.configuration!r} (it has {', '.join(configurations)})"
        )
    identifier = configurations[settings.configuration].get(
        "data_identifier", f"{settings.plans}_{settings.configuration}"
    )
    data = preprocessed / identifier
    if not data.is_dir() or not any(data.iterdir()):
        check_plannable(dataset, environment)
        run_logged(
            [
                "nnUNetv2_preprocess",
                "-d",
                dataset_id,
                "-plans_name",
                settings.plans,
                "-c",
                settings.configuration,
                "-np",
                processes,
            ],
            environment,
            log,
        )


def run_logged(command: list[str], environment: dict[str, str], log: Path, drop: tuple[str, ...] = ()) -> None:
    """Run `command` with `environment` over this process's (less the variables in `drop`), output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"running {' '.join(command)} (log {log})", flush=True)
    full_environment = {k: v for k, v in {**os.environ, **environment}.items() if k not in drop}
    with open(log, "a") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=full_environment, check=False)
    if result.returncode:
        raise UserFacingError(
            f"{' '.join(command)} failed (exit status {result.returncode}); the end of {log}:\n{log_tail(log)}"
        )


def check_tumour_class(dataset: str, environment: dict[str, str]) -> None:
    import json

    from nnunetv2_hlfd.study.runs import foreground_classes, tumour_class

    dataset_json = json.loads((Path(environment["nnUNet_preprocessed"]) / dataset / "dataset.json").read_text())
    tumour_class(foreground_classes(dataset_json))


def check_trainers_found(settings: StudySettings, environment: dict[str, str]) -> None:
    from nnunetv2_hlfd.utilities.trainer_search import find_trainer_class

    missing = []
    with temporary_environment(nnUNet_extTrainer=environment["nnUNet_extTrainer"]):
        for trainer in settings.trainers:
            try:
                seed = settings.teacher_seed if trainer == settings.teacher else settings.student_seeds[0]
                find_trainer_class(settings.run_name(trainer, seed))
            except RuntimeError:
                missing.append(trainer)
    if missing:
        raise UserFacingError(
            f"trainer(s) not found: {', '.join(missing)}; nnU-Net searched nnunetv2 and "
            f"nnUNet_extTrainer={environment['nnUNet_extTrainer']}. Check the names."
        )


def student_classes(settings: StudySettings) -> dict[str, type]:
    """Each student's trainer class, and HLFD's (the primary method), searched once: nnU-Net's class search takes
    seconds a name. Searched without the study's own variants (their module searches for its bases in turn)."""
    from nnunetv2_hlfd.utilities.trainer_search import find_trainer_class

    with temporary_environment(nnUNet_extTrainer=trainer_path(None)):
        return {name: find_trainer_class(name) for name in dict.fromkeys((*settings.students, PRIMARY_STUDENT))}


def distils(trainer: type) -> bool:
    """Whether the trainer learns from a teacher, so must wait for the teacher's training."""
    from nnunetv2_hlfd.training.distillation_trainer import nnUNetTrainerDistillation

    return issubclass(trainer, nnUNetTrainerDistillation)


def worker_slots(settings: StudySettings) -> list[Slot]:
    """One slot per worker: on the CPU its own cores (workers x threads within this process's cores),
    on CUDA one GPU each."""
    if settings.device == "cuda":
        gpus = settings.gpus
        if gpus is None:
            import torch

            gpus = tuple(range(torch.cuda.device_count()))
        if not gpus:
            raise UserFacingError("--device cuda but torch sees no GPU; use --device cpu or name GPUs with --gpus")
        return [Slot(gpu=gpu) for gpu in gpus]
    cores = core_ids()
    threads = settings.threads or max(1, len(cores) // settings.workers)
    if settings.workers * threads > len(cores):
        raise UserFacingError(
            f"--workers {settings.workers} x --threads {threads} = {settings.workers * threads} "
            f"threads, more than the {len(cores)} cores this process may use; lower one of them"
        )
    return [Slot(cores=tuple(cores[w * threads : (w + 1) * threads])) for w in range(settings.workers)]


def make_backend(settings: StudySettings, slots: list[Slot], output: Path):
    if settings.cluster is None:
        return LocalBackend(slots)
    threads = settings.threads or 1
    parameters = {
        "timeout_min": settings.slurm_time_min,
        "cpus_per_task": threads,
        "gpus_per_node": 1 if settings.device == "cuda" else 0,
    }
    if settings.cluster == "slurm" and settings.slurm_partition:
        parameters["slurm_partition"] = settings.slurm_partition
    return SubmititBackend(output / "submitit", settings.cluster, parallel=settings.workers, parameters=parameters)


def run_benchmark(settings: StudySettings, dataset: str, environment: dict[str, str], output: Path, log: Path) -> None:
    """`nnunetv2_hlfd benchmark` over the grid (its first repeat: the run-level analysis covers every repeat),
    the plain student as the reference where it is in the grid."""
    reference = PLAIN_STUDENT if PLAIN_STUDENT in settings.students else settings.students[0]
    seed = settings.student_seeds[0]
    command = [
        sys.executable,
        "-m",
        "nnunetv2_hlfd.cli",
        "benchmark",
        "-d",
        dataset,
        "-c",
        settings.configuration,
        "-p",
        settings.plans,
        "-tr",
        settings.teacher_run_name(),
        *[settings.run_name(t, seed) for t in settings.students],
        "-f",
        *map(str, settings.folds),
        "--reference",
        settings.run_name(reference, seed),
        "--teacher",
        settings.teacher_run_name(),
        "--protocol",
        settings.protocol,
        "-o",
        str(output),
        "--overwrite",
        *settings.benchmark_args,
    ]
    run_logged(command, environment, log)
