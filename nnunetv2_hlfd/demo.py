"""The embedded default: a one-fold study on a generated dataset, with no downloads.

Generate a synthetic kidney-and-tumour CT dataset in the demo's own nnU-Net folders, then run
`nnunetv2_hlfd study` on fold 0 with a short training length: nnU-Net plans and preprocesses it, trains
the teacher (nnUNetTrainer), the student without distillation (nnUNetTrainerStudent) and the HLFD
student (nnUNetTrainerHLFD), and `nnunetv2_hlfd benchmark` scores them. The demo prints, per model,
validation Dice per class beside its parameters and its measured inference time per case.

The demo folder carries the marker of `nnunetv2_hlfd.utilities.output_folder`, written before anything else:
`--overwrite` removes only a marked folder, and a rerun of the same demo in its marked folder continues
where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from nnunetv2_hlfd.evaluation.settings import DEFAULT_TEACHER
from nnunetv2_hlfd.utilities.output_folder import OutputFolderError, claim, read_marker

TEACHER = DEFAULT_TEACHER
STUDENTS = ("nnUNetTrainerStudent", "nnUNetTrainerHLFD")
NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
# the students' and the teacher's training lengths and the cases whose prediction is timed: the demo fits in 10
# minutes on two CPU cores (README: its measured time and Dice); the teacher trains longer, on its own schedule,
# so that it knows the tumours it is to teach
DEMO_EPOCHS, DEMO_ITERATIONS = 11, 20
DEMO_TEACHER_EPOCHS = 30
DEMO_TIMED_CASES = 1


@dataclass(frozen=True)
class DemoSettings:
    workdir: Path
    dataset_id: int = 990
    num_cases: int = 16
    shape: tuple[int, int, int] = (16, 64, 64)
    configuration: str = "2d"
    epochs: int = DEMO_EPOCHS
    iterations_per_epoch: int = DEMO_ITERATIONS
    teacher_epochs: int = DEMO_TEACHER_EPOCHS
    device: str = "cpu"
    preset: str = "default"
    overwrite: bool = False
    seed: int = 0

    def recorded(self) -> dict:
        """What makes two demo runs the same demo (and a rerun a continuation)."""
        settings = asdict(self)
        for not_the_demo in ("workdir", "overwrite", "device"):
            settings.pop(not_the_demo)
        return settings | {"shape": list(self.shape)}


def prepare_workdir(settings: DemoSettings) -> dict[str, Path]:
    """The demo's own nnU-Net folders in a marked folder (`output_folder.claim`); nothing unmarked is
    ever removed."""
    recorded = read_marker(settings.workdir, "demo")
    if recorded is not None and not settings.overwrite and recorded != settings.recorded():
        raise OutputFolderError(
            f"{settings.workdir} holds a demo with other settings ({recorded}); "
            f"pass --overwrite to replace it, or choose another --workdir"
        )
    workdir = claim(settings.workdir, "demo", settings.overwrite, settings.recorded(), option="--workdir")
    folders = {name: workdir / name for name in NNUNET_FOLDERS}
    for folder in folders.values():
        folder.mkdir(exist_ok=True)
    return folders


def study_settings(settings: DemoSettings, folders: dict[str, Path]):
    from nnunetv2_hlfd.study.grid import StudySettings
    from nnunetv2_hlfd.utilities.cores import cores_available

    # two trainings at once, one core each: the plain student beside the teacher, then HLFD
    workers = min(len(STUDENTS), cores_available()) if settings.device == "cpu" else 1
    return StudySettings(
        dataset=str(settings.dataset_id),
        configuration=settings.configuration,
        teacher=TEACHER,
        students=STUDENTS,
        folds=(0,),
        device=settings.device,
        workers=workers,
        threads=1 if settings.device == "cpu" else None,
        epochs=settings.epochs,
        iterations=settings.iterations_per_epoch,
        teacher_epochs=settings.teacher_epochs,
        teacher_iterations=settings.iterations_per_epoch,
        # seeded trainings: the same command gives the same table on the same machine
        seeds=(settings.seed,),
        output=settings.workdir / "study",
        extra_env={name: str(path) for name, path in folders.items()},
        benchmark_args=("--device", settings.device, "--volume-cases", str(DEMO_TIMED_CASES)),
    )


def run_demo(settings: DemoSettings, command: str | None = None):
    """Run the demo; returns its results table (one row per model). `command`: the command line, for study.md."""
    from nnunetv2_hlfd.dataset_writers.synthetic import generate_synthetic_kidney_dataset
    from nnunetv2_hlfd.study.report import dsc_convention, format_table, results_table
    from nnunetv2_hlfd.study.runner import run_study

    folders = prepare_workdir(settings)
    dataset = folders["nnUNet_raw"] / f"Dataset{settings.dataset_id:03d}_SyntheticKidney"
    if not dataset.is_dir():  # a rerun of the same demo keeps the dataset it made (written atomically)
        generate_synthetic_kidney_dataset(
            folders["nnUNet_raw"],
            dataset_id=settings.dataset_id,
            num_training_cases=settings.num_cases,
            shape=settings.shape,
            seed=settings.seed,
            preset=settings.preset,
        )
    study_plan = study_settings(settings, folders)
    study = run_study(study_plan, command=command)
    table = results_table(study.benchmark)
    print(
        f"\nValidation Dice per class (fold 0; {dsc_convention(study.benchmark)}), parameters and inference "
        f"time per case ({settings.device}); study: {study.study_md}\n"
    )
    print(format_table(table))
    comparison = comparison_figure(study_plan, folders, dataset, study.output)
    print(f"\nA validation slice, ground truth beside each model's prediction: {comparison}")
    if (study.output / "learning_curves.png").is_file():
        print(f"Learning curves (pseudo-Dice per epoch, per model): {study.output / 'learning_curves.png'}")
    return table


def comparison_figure(study_plan, folders: dict[str, Path], dataset: Path, output: Path) -> Path:
    """The validation slice of fold 0 with the most tumour: ground truth, teacher, plain and HLFD student."""
    from nnunetv2_hlfd.dataset_writers.synthetic_anatomy import TUMOR
    from nnunetv2_hlfd.study.grid import fold_folder
    from nnunetv2_hlfd.study.slice_figure import validation_slice_figure

    results = folders["nnUNet_results"] / dataset.name
    plans = json.loads((folders["nnUNet_preprocessed"] / dataset.name / f"{study_plan.plans}.json").read_text())
    seeds = (study_plan.teacher_seed, *[study_plan.student_seeds[0]] * len(STUDENTS))
    models = {
        name: fold_folder(results, study_plan, trainer, 0, seed)
        for name, trainer, seed in zip(("teacher", "plain student", "HLFD student"), (TEACHER, *STUDENTS), seeds)
    }
    path, _ = validation_slice_figure(
        output / "validation_slice.png", dataset, models, plans["transpose_forward"][0], TUMOR
    )
    return path
