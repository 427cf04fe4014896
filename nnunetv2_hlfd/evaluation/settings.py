"""The settings of the benchmark and of the deployment comparison, and their defaults: stdlib only, so
every module of either (and the command line, whose `--help` must stay fast) can import them without
importing each other."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_hlfd.evaluation.timing.verdict import MIN_ROUNDS_FOR_A_VERDICT

DEFAULT_TRAINERS = ("nnUNetTrainer", "nnUNetTrainerStudent", "nnUNetTrainerHLFD")
DEFAULT_PLANS = "nnUNetPlans"
DEFAULT_REFERENCE = "nnUNetTrainerStudent"  # the student without distillation
DEFAULT_TEACHER = "nnUNetTrainer"
ALL_FOLDS = (0, 1, 2, 3, 4)
PAPER_MASKS = ("auto", "probability", "argmax")
EMPTY_CONVENTIONS = ("nnunet", "kits")  # metrics.EmptyConvention's values
DEFAULT_TOLERANCE_MM = 1.0
DEFAULT_REPETITIONS = MIN_ROUNDS_FOR_A_VERDICT  # the fewest rounds whose false speed verdicts stay under 5%
DEFAULT_VOLUME_CASES = 3
DEFAULT_STUDENT = "nnUNetTrainerHLFD"
DEFAULT_STUDENT_FOLD = "all"  # the deployment student: distilled from the fold ensemble on every training case
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class BenchmarkSettings:
    dataset: str
    configuration: str
    trainers: tuple[str, ...] = DEFAULT_TRAINERS
    plans: str = DEFAULT_PLANS
    folds: tuple[int, ...] = ALL_FOLDS
    reference: str = DEFAULT_REFERENCE
    teacher: str = DEFAULT_TEACHER
    protocol: str = "standard"
    tumour_label: str | None = None
    paper_masks: str = "auto"
    primary_endpoint: str | None = None  # CLASS:METRIC; None: the tumour's DSC, else the first class's
    tolerance_mm: float = DEFAULT_TOLERANCE_MM
    class_tolerances_mm: tuple[str, ...] = ()  # CLASS=MM: surface Dice tolerance of that class instead
    empty_convention: str = "nnunet"
    lesion_iou_threshold: float | None = None
    output: Path | None = None
    overwrite: bool = False
    run_missing_validation: bool = False
    speed: bool = True
    repetitions: int = DEFAULT_REPETITIONS
    volume_cases: int = DEFAULT_VOLUME_CASES
    devices: tuple[str, ...] | None = None  # None: the CPU, and the GPU where torch sees one
    num_processes: int | None = None  # None: nnU-Net's default process count, at most the CPUs


@dataclass(frozen=True)
class DeploymentSettings:
    dataset: str
    configuration: str
    test_images: Path
    test_labels: Path
    plans: str = DEFAULT_PLANS
    teacher: str = DEFAULT_TEACHER
    teacher_folds: tuple[int | str, ...] = ALL_FOLDS
    student: str = DEFAULT_STUDENT
    student_fold: int | str = DEFAULT_STUDENT_FOLD
    device: str | None = None  # None: cuda where torch sees a GPU, else cpu
    repetitions: int = DEFAULT_REPETITIONS
    output: Path | None = None
    overwrite: bool = False

    def command_line(self) -> str:
        """The command with every option spelled out, so a report says exactly what ran."""
        words = ["nnunetv2_hlfd", "deployment", "-d", self.dataset, "-c", self.configuration]
        words += ["-i", str(self.test_images), "-l", str(self.test_labels), "-p", self.plans]
        words += ["--teacher", self.teacher, "--teacher-folds", *map(str, self.teacher_folds)]
        words += ["--student", self.student, "--student-fold", str(self.student_fold)]
        words += [*(["--device", self.device] if self.device else []), "--repetitions", str(self.repetitions)]
        words += [*(["-o", str(self.output)] if self.output else []), *(["--overwrite"] if self.overwrite else [])]
        return shlex.join(words)
