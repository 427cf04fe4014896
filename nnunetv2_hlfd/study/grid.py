"""What a study trains: its settings, the trainings of its grid, their order and their state on disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nnunetv2_hlfd.evaluation.settings import DEFAULT_TEACHER
from nnunetv2_hlfd.utilities.problems import UserFacingError

DEFAULT_STUDENTS = ("nnUNetTrainerStudent", "nnUNetTrainerHLFD", "nnUNetTrainerKD")
PLAIN_STUDENT = "nnUNetTrainerStudent"  # the student without distillation, the benchmark's reference
ALL_FOLDS = (0, 1, 2, 3, 4)

# What a training is, as the study sees it on disk and in its own records.
QUEUED, RUNNING, DONE, FAILED, BLOCKED = "queued", "running", "done", "failed", "blocked"


def variant_name(trainer: str, epochs: int | None, iterations: int | None, seed: int | None = None) -> str:
    """The name of a trainer's study variant (study/length.py) in nnU-Net's style (nnUNetTrainer_5epochs):
    its length where shortened, its seed where seeded."""
    name = trainer if epochs is None else f"{trainer}_{epochs}epochs_{iterations}iterations"
    return name if seed is None else f"{name}_seed{seed}"


@dataclass(frozen=True)
class StudySettings:
    dataset: str
    configuration: str
    plans: str = "nnUNetPlans"
    teacher: str = DEFAULT_TEACHER
    students: tuple[str, ...] = DEFAULT_STUDENTS
    folds: tuple[int, ...] = ALL_FOLDS
    device: str = "cpu"
    workers: int = 1
    threads: int | None = None  # per CPU worker; None: the cores divided among the workers
    gpus: tuple[int, ...] | None = None  # None: every GPU torch sees, one worker each
    epochs: int | None = None  # None (with iterations): the trainers' own length
    iterations: int | None = None
    # the teacher's own length, apart from the students' (None: the teacher trainer's own, nnU-Net's schedule);
    # nnU-Net's polynomial learning rate falls to zero over whichever length a training has
    teacher_epochs: int | None = None
    teacher_iterations: int | None = None
    # None: one unseeded training per student and fold; else each student once per seed (the repeats) and the
    # teacher once, with the first seed
    seeds: tuple[int, ...] | None = None
    protocol: str = "standard"  # the benchmark's; "paper" needs the validation probabilities (--npz)
    output: Path | None = None  # None: nnUNet_results/<dataset>/hlfd_study_<configuration>
    cluster: str | None = None  # None: this machine's workers; "slurm" or "local": submitit's executors
    slurm_partition: str | None = None
    slurm_time_min: int = 24 * 60
    benchmark: bool = True
    report_only: bool = False  # write the record of the runs that finished, train nothing
    benchmark_args: tuple[str, ...] = ()  # passed on to `nnunetv2_hlfd benchmark`
    extra_env: dict[str, str] = field(default_factory=dict)  # for every training (the demo's folders)

    @property
    def shortened(self) -> bool:
        return self.epochs is not None

    @property
    def teacher_length(self) -> tuple[int | None, int | None]:
        """(epochs, iterations per epoch) of the teacher; (None, None): its trainer's own length."""
        return self.teacher_epochs, self.teacher_iterations

    @property
    def has_variants(self) -> bool:
        """The study trains variants it declares itself (shortened or seeded trainers)."""
        return self.shortened or self.teacher_epochs is not None or self.seeds is not None

    @property
    def teacher_seed(self) -> int | None:
        """The first seed for a teacher the study shortens; a teacher at its own length is nnU-Net's own,
        unseeded training, so a model the user trained already is used as it is."""
        return self.seeds[0] if self.seeds and self.teacher_epochs is not None else None

    @property
    def student_seeds(self) -> tuple[int | None, ...]:
        return self.seeds if self.seeds else (None,)

    def run_name(self, trainer: str, seed: int | None = None) -> str:
        """The trainer nnU-Net trains: the trainer itself, or its variant (length, seed); the teacher at its
        own length."""
        epochs, iterations = self.teacher_length if trainer == self.teacher else (self.epochs, self.iterations)
        return variant_name(trainer, epochs, iterations, seed)

    def teacher_run_name(self) -> str:
        return self.run_name(self.teacher, self.teacher_seed)

    @property
    def trainers(self) -> tuple[str, ...]:
        return (self.teacher, *self.students)

    @property
    def needs_probabilities(self) -> bool:
        return self.protocol == "paper"


def check_settings(settings: StudySettings) -> None:
    problems = []
    for prefix, epochs, iterations in (
        ("--", settings.epochs, settings.iterations),
        ("--teacher-", settings.teacher_epochs, settings.teacher_iterations),
    ):
        if (epochs is None) != (iterations is None):
            problems.append(
                f"{prefix}epochs and {prefix}iterations go together (a shortened training sets both), got "
                f"{prefix}epochs {epochs} {prefix}iterations {iterations}"
            )
    for option, value in (
        ("--epochs", settings.epochs),
        ("--iterations", settings.iterations),
        ("--teacher-epochs", settings.teacher_epochs),
        ("--teacher-iterations", settings.teacher_iterations),
        ("--workers", settings.workers),
        ("--threads", settings.threads),
    ):
        if value is not None and value < 1:
            problems.append(f"{option} must be at least 1, got {value}")
    if not settings.students:
        problems.append("--students names no trainer")
    for option, values in (("--folds", settings.folds), ("trainers (--teacher and --students)", settings.trainers)):
        if len(set(values)) != len(values):
            problems.append(f"{option} names an entry twice: {' '.join(map(str, values))}")
    if any(f < 0 for f in settings.folds):
        problems.append(f"--folds must be fold numbers (0 and up), got {' '.join(map(str, settings.folds))}")
    if settings.device not in ("cpu", "cuda"):
        problems.append(f"--device must be cpu or cuda, got {settings.device}")
    if settings.cluster not in (None, "slurm", "local"):
        problems.append(f"--cluster must be slurm or local (or none: this machine's workers), got {settings.cluster}")
    if settings.seeds is not None:
        if not settings.seeds:
            problems.append("--seeds names no seed")
        if any(seed < 0 for seed in settings.seeds):
            problems.append(f"seeds must be 0 or more, got {' '.join(map(str, settings.seeds))}")
        if len(set(settings.seeds)) != len(settings.seeds):
            problems.append(f"--seeds names a seed twice: {' '.join(map(str, settings.seeds))}")
    if settings.protocol not in ("standard", "paper"):
        problems.append(f"--protocol must be standard or paper, got {settings.protocol}")
    if problems:
        raise UserFacingError("the study's settings are not valid:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class Training:
    """One `nnUNetv2_train` of the grid: a trainer (as the study names it) on one fold, with its seed if seeded."""

    trainer: str
    fold: int
    depends_on: tuple[str, ...] = ()  # keys of the trainings that must be done first
    seed: int | None = None

    @property
    def key(self) -> str:
        return f"{self.trainer}/fold_{self.fold}" + ("" if self.seed is None else f"/seed_{self.seed}")


def study_graph(settings: StudySettings, distils=lambda trainer: True) -> list[Training]:
    """The teachers first, then the students repeat by repeat and, within a repeat, student by student over
    the folds: in order, so each training follows what it needs, and a study stopped early has whole repeats of
    its first students (the comparison it was run for) rather than a part of every one. `distils(trainer)`
    says whether a student needs the teacher: one that does not (the plain student) trains while it does."""
    teachers = {fold: Training(settings.teacher, fold, seed=settings.teacher_seed) for fold in settings.folds}
    graph = list(teachers.values())
    for seed in settings.student_seeds:
        for student in settings.students:
            graph += [
                Training(student, fold, (teachers[fold].key,) if distils(student) else (), seed)
                for fold in settings.folds
            ]
    return graph


def study_runs(settings: StudySettings) -> list[tuple[str, int | None]]:
    """Each (trainer, seed) the study trains, in the graph's order: one results folder per pair and fold."""
    return list(dict.fromkeys((training.trainer, training.seed) for training in study_graph(settings)))


def fold_folder(results: Path, settings: StudySettings, trainer: str, fold: int, seed: int | None = None) -> Path:
    # nnU-Net's own name for the folder, imported here: the study's option modules import this one and stay light
    from nnunetv2.utilities.file_path_utilities import convert_trainer_plans_config_to_identifier

    name = settings.run_name(trainer, seed)
    return (
        results
        / convert_trainer_plans_config_to_identifier(name, settings.plans, settings.configuration)
        / f"fold_{fold}"
    )


def is_finished(folder: Path, needs_probabilities: bool) -> bool:
    """nnU-Net wrote the final checkpoint and the validation (with the probabilities, where needed)."""
    if not ((folder / "checkpoint_final.pth").is_file() and (folder / "validation" / "summary.json").is_file()):
        return False
    return not needs_probabilities or any((folder / "validation").glob("*.npz"))


def was_started(folder: Path) -> bool:
    """A checkpoint to continue from (`--c` then resumes training, or reruns an aborted validation)."""
    return any(
        (folder / name).is_file() for name in ("checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth")
    )


def train_command(settings: StudySettings, training: Training, folder: Path) -> list[str]:
    """nnU-Net's own command; a finished training whose validation lacks probabilities only revalidates."""
    command = [
        "nnUNetv2_train",
        settings.dataset,
        settings.configuration,
        str(training.fold),
        "-tr",
        settings.run_name(training.trainer, training.seed),
        "-p",
        settings.plans,
        "-device",
        settings.device,
    ]
    if settings.needs_probabilities:
        command.append("--npz")
    if (folder / "checkpoint_final.pth").is_file() and (folder / "validation" / "summary.json").is_file():
        command.append("--val")
    elif was_started(folder):
        command.append("--c")
    return command


def teacher_environment(results: Path, settings: StudySettings) -> dict[str, str]:
    """HLFD_TEACHER names the study's teacher, so the distillation students never guess it."""
    teacher_folder = fold_folder(results, settings, settings.teacher, 0, settings.teacher_seed).parent
    return {"HLFD_TEACHER": str(teacher_folder)}


def default_output(results: Path, settings: StudySettings) -> Path:
    return results / f"hlfd_study_{settings.configuration}"
