"""`nnunetv2_hlfd deployment`: the configurations a user deploys, compared on a held-out test set.

What nnU-Net users deploy is the teacher's fold ensemble with test-time mirroring; what distillation
offers instead is one student. On labelled test cases that none of the models trained on, declared
up front (`-i`, `-l`), this compares

1. the teacher's fold ensemble (`--teacher-folds`, default 0-4) with nnU-Net's default mirroring,
2. the student (`--student-fold`, default `all`: the deployment student distilled from the ensemble)
   with mirroring,
3. the same student without mirroring,

each through nnU-Net's own predictor (`timing.prediction.load_predictor`: nnUNetv2_predict's defaults, tile
step 0.5, Gaussian weighting). Per configuration: DSC per class by nnU-Net's own evaluation
(`compute_metrics_on_folder` on the written predictions against the test labels), the median
seconds per whole volume of `predict_single_npy_array` on the image as the plans' reader reads it
(preprocessing, sliding window, resampling back; reading and writing files untimed), torch's peak
memory per volume (`nnunetv2_hlfd.utilities.timing.peak_memory`), the network passes per window (members times the
mirrored passes) and the speed-up against the ensemble.

Every refusal is collected before anything runs and raised at once (`DeploymentError`): test cases
that are training cases, images without labels and labels without images, misnamed or missing test
files, missing model folders or checkpoints (with the `nnUNetv2_train` command that makes them), and
an output folder that is not to be replaced.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from nnunetv2_hlfd.evaluation.deployment.held_out import (
    DeploymentError,
    HeldOutSet,
    copied_training_cases,
    header_shape,
    held_out_problems,
    label_problems,
    read_held_out_set,
    training_cases,
    training_files,
)
from nnunetv2_hlfd.evaluation.deployment.memory import MEMORY_COUNTED, fresh_process_peak
from nnunetv2_hlfd.evaluation.deployment.volume_timing import Measured, measure_test_volumes
from nnunetv2_hlfd.evaluation.model_folders import (
    BenchmarkDataset,
    BenchmarkInputError,
    ModelFolder,
    check_model_folder,
    open_dataset,
    parse_model,
    trainer_class,
    training_command,
)
from nnunetv2_hlfd.evaluation.settings import DEFAULT_TEACHER, DeploymentSettings
from nnunetv2_hlfd.evaluation.timing.prediction import MEMORY_MEASURES, volume_summary
from nnunetv2_hlfd.evaluation.timing.verdict import speed_ratio, verdict_note
from nnunetv2_hlfd.utilities import output_folder
from nnunetv2_hlfd.utilities.markdown import markdown_table
from nnunetv2_hlfd.utilities.provenance import hardware_name, software_versions, source_commit
from nnunetv2_hlfd.utilities.timing import default_device

REPORT, RESULTS = "deployment.md", "deployment.json"
PREDICTIONS = "predictions"
TIMED = (
    "nnUNetPredictor.predict_single_npy_array per test case on the image as the plans' reader reads it: "
    "preprocessing, sliding window (tile step 0.5, Gaussian weighting, mirroring as configured) and "
    "resampling back to the image's grid; reading and writing files untimed. The first call of each "
    "configuration is an untimed warm-up; then each case is predicted once untimed for its peak memory "
    "and written, and timed --repetitions times, all configurations in interleaved rounds"
)


# --- the three configurations -------------------------------------------------------------


@dataclass(frozen=True)
class Configuration:
    """One way to deploy: a model folder, the folds it predicts with and whether it mirrors."""

    name: str
    folder: str  # its predictions' subfolder
    role: str
    model: ModelFolder
    folds: tuple[int | str, ...]
    mirroring: bool


def configurations(settings: DeploymentSettings, dataset: BenchmarkDataset) -> list[Configuration]:
    teacher = parse_model(settings.teacher, settings.plans, settings.configuration, dataset)
    student = parse_model(settings.student, settings.plans, settings.configuration, dataset)
    student_folds = (settings.student_fold,)
    return [
        Configuration("teacher ensemble", "teacher_ensemble", "teacher", teacher, settings.teacher_folds, True),
        Configuration("student, mirroring", "student_mirroring", "student", student, student_folds, True),
        Configuration("student, no mirroring", "student_no_mirroring", "student", student, student_folds, False),
    ]


def train_command(settings: DeploymentSettings, dataset: BenchmarkDataset, configuration: Configuration, fold) -> str:
    """The nnUNetv2_train command that makes this fold; a student of fold `all` is distilled from the
    teacher's folds (HLFD_TEACHER_FOLDS), from a teacher other than nnUNetTrainer by HLFD_TEACHER."""
    model = configuration.model
    resume = ("--c",) if (model.fold_folder(fold) / "checkpoint_latest.pth").is_file() else ()
    variables = []
    if configuration.role == "student":
        teacher = configurations(settings, dataset)[0].model
        if fold == "all":
            variables.append(f"HLFD_TEACHER_FOLDS={','.join(map(str, settings.teacher_folds))}")
        if teacher.trainer != DEFAULT_TEACHER:
            variables.append(f"HLFD_TEACHER={teacher.path}")
    return " ".join([*variables, training_command(dataset, model, fold, *resume)])


def model_problems(settings: DeploymentSettings, dataset: BenchmarkDataset) -> list[str]:
    """Each model folder exists, belongs to the dataset, has a trainer class that can be found and a
    final checkpoint of every fold used."""
    problems, seen = [], set()
    for configuration in configurations(settings, dataset):
        model = configuration.model
        if (model.path, configuration.folds) in seen:
            continue  # the student without mirroring: the same folder and fold as with it
        seen.add((model.path, configuration.folds))
        commands = "; ".join(f"`{train_command(settings, dataset, configuration, f)}`" for f in configuration.folds)
        if not model.path.is_dir():
            problems.append(
                f"the {configuration.role} {model.label} has no model folder: {model.path} does not exist; "
                f"train it ({commands}), or check --{configuration.role}, -p and -c"
            )
            continue
        try:
            check_model_folder(model, dataset)
            trainer_class(model)
        except BenchmarkInputError as error:
            problems += error.problems
            continue
        for fold in configuration.folds:
            if not model.checkpoint(fold).is_file():
                command = train_command(settings, dataset, configuration, fold)
                unfinished = "its training is unfinished, continue it" if command.endswith("--c") else "train it"
                problems.append(
                    f"the {configuration.role} {model.label} has no fold {fold}: {model.checkpoint(fold)} does "
                    f"not exist; {unfinished} with `{command}`"
                )
    return problems


def configuration_problems(settings: DeploymentSettings, dataset: BenchmarkDataset) -> list[str]:
    problems = []
    try:
        configuration = dataset.plans_manager.get_configuration(settings.configuration)
    except RuntimeError:  # nnU-Net: not in the plans
        known = ", ".join(dataset.plans_manager.available_configurations)
        return [
            f"the plans {settings.plans} of {dataset.name} have no configuration {settings.configuration!r}; "
            f"choose -c among {known}"
        ]
    if configuration.previous_stage_name is not None:
        problems.append(
            f"{settings.configuration} is a cascade stage: it needs the previous stage's predictions, which this "
            f"comparison does not make; compare {configuration.previous_stage_name} or 3d_fullres"
        )
    if settings.device == "cuda" and not torch.cuda.is_available():
        problems.append("--device cuda was asked for, but torch sees no CUDA device; use --device cpu")
    return problems


# --- scoring ------------------------------------------------------------------------------


def score(predictions: Path, held_out: HeldOutSet, dataset: BenchmarkDataset) -> dict[str, dict]:
    """{class name: {"mean", "n", "per_case": {case: DSC}}} by nnU-Net's own evaluation of the written
    predictions against the test labels, with the dataset's labels or regions and ignore label (its
    summary.json beside them): the mean is nnU-Net's over the cases, leaving out NaN (a class absent
    from both prediction and label); n counts the cases with a value."""
    from nnunetv2.configuration import default_num_processes
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder

    classes = dataset.classes()
    result = compute_metrics_on_folder(
        str(held_out.labels),
        str(predictions),
        str(predictions / "summary.json"),
        dataset.plans_manager.image_reader_writer_class(),
        held_out.file_ending,
        classes,
        dataset.label_manager.ignore_label,
        num_processes=max(1, min(default_num_processes, len(held_out.cases))),
        chill=False,
    )
    scores = {}
    for cls, name in dataset.class_names().items():
        per_case = {
            Path(row["prediction_file"]).name[: -len(held_out.file_ending)]: float(row["metrics"][cls]["Dice"])
            for row in result["metric_per_case"]
        }
        n = sum(not math.isnan(dsc) for dsc in per_case.values())
        scores[name] = {"mean": float(result["mean"][cls]["Dice"]), "n": n, "per_case": per_case}
    return scores


# --- what a deployment needs in memory -----------------------------------------------------


def largest_case(held_out: HeldOutSet) -> str:
    """The test case of the most voxels (from the headers), whose prediction needs the most memory."""
    return max(held_out.cases, key=lambda case: math.prod(header_shape(held_out.cases[case][0]) or (0,)))


def process_memory(configuration: Configuration, held_out: HeldOutSet, case: str, device: torch.device) -> dict:
    """The peak resident memory of a fresh process that loads this configuration and predicts `case`:
    weights plus working memory (`memory`)."""
    print(f"Measuring {configuration.name}'s memory in a fresh process on {case}")
    model = configuration.model
    arguments = {
        "model": {f: str(getattr(model, f)) for f in ("label", "trainer", "plans", "configuration", "path")},
        "folds": list(configuration.folds),
        "mirroring": configuration.mirroring,
        "device": device.type,
        "images": [str(f) for f in held_out.cases[case]],
    }
    measured = fresh_process_peak("nnunetv2_hlfd.evaluation.deployment.memory:load_and_predict", arguments)
    return {
        "process_peak_memory_mib": measured["process_peak_mib"],
        "process_imports_mib": measured["imports_mib"],
        "weights_mib": measured["weights_mib"],
        "process_cuda_peak_mib": measured["cuda_peak_mib"],
        "process_memory_case": case,
    }


# --- the report ---------------------------------------------------------------------------


def configuration_record(measured: Measured, dsc: dict[str, dict], ensemble: Measured) -> dict:
    """One configuration's numbers, its speed against the ensemble's (`ensemble`, the first measured)."""
    c = measured.configuration
    volume, ensemble_volume = (
        volume_summary({case: (m.memory_mib[case], seconds) for case, seconds in m.seconds.items()})
        for m in (measured, ensemble)
    )
    return {
        "name": c.name,
        "trainer": c.model.trainer,
        "plans": c.model.plans,
        "model_folder": str(c.model.path),
        "folds": list(c.folds),
        "mirroring": c.mirroring,
        "mirror_axes": list(measured.mirror_axes) if measured.mirror_axes is not None else None,
        "passes_per_window": measured.passes_per_window,
        "dsc": {name: {"mean": d["mean"], "n": d["n"]} for name, d in dsc.items()},
        "dsc_per_case": {case: {name: d["per_case"][case] for name, d in dsc.items()} for case in measured.seconds},
        "volume_latency_s": volume["volume_latency_s"],
        "volume_peak_memory_mib": volume["volume_peak_memory_mib"],
        "latency_s_per_case": {case: statistics.median(s) for case, s in measured.seconds.items()},
        "latencies_s_per_case": measured.seconds,
        "peak_memory_mib_per_case": measured.memory_mib,
        "round_seconds": measured.round_seconds,
        "speedup_vs_ensemble": ensemble_volume["volume_latency_s"] / volume["volume_latency_s"],
        "speed_vs_ensemble": "reference"
        if measured is ensemble
        else speed_ratio(ensemble.round_seconds, measured.round_seconds),
        "predictions": f"{PREDICTIONS}/{c.folder}",
    }


def _number(value: float, digits: int) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _mirroring(record: dict) -> str:
    if not record["mirroring"]:
        return "no"
    axes = record["mirror_axes"]
    return f"yes (axes {', '.join(map(str, axes))})" if axes else "on, but its checkpoint allows no axis"


def results_table(report: dict) -> str:
    classes = list(report["classes"])
    header = ["configuration", "trainer", "folds", "mirroring", "passes per window"]
    header += [f"DSC {name}" for name in classes]
    header += ["s per volume (median)", "process peak MiB (weights + working memory)", "weights MiB"]
    header += ["torch peak MiB during the call", "speed vs ensemble (round by round)"]
    rows = []
    for record in report["configurations"]:
        cells = [
            record["name"],
            record["trainer"],
            " ".join(map(str, record["folds"])),
            _mirroring(record),
            str(record["passes_per_window"]),
            *(f"{_number(record['dsc'][n]['mean'], 3)} (n={record['dsc'][n]['n']})" for n in classes),
            _number(record["volume_latency_s"], 3),
            _number(record.get("process_peak_memory_mib"), 0)
            + (f" (GPU {record['process_cuda_peak_mib']:.0f})" if record.get("process_cuda_peak_mib") else ""),
            _number(record.get("weights_mib"), 1),
            _number(record["volume_peak_memory_mib"], 1),
            record["speed_vs_ensemble"],  # a ratio only where the rule judged one (timing.verdict.speed_ratio)
        ]
        rows.append(cells)
    return markdown_table(header, rows)


def render_report(report: dict) -> str:
    cases = f"{report['n_cases']} case" + ("s" if report["n_cases"] != 1 else "")
    return "\n".join(
        [
            f"# Deployment comparison: {report['dataset']} {report['configuration']}",
            "",
            f"Held-out test set: {report['test_images']} ({cases}; labels {report['test_labels']}), "
            f"none of them a training case by name ({', '.join(report['training_case_sources'])}) or by content "
            "(file bytes or voxels of imagesTr, labelsTr and gt_segmentations).",
            "",
            results_table(report),
            "",
            "DSC: nnU-Net's evaluation (compute_metrics_on_folder) of each configuration's predictions, the mean "
            "over the test cases with a value. DSC convention: nnU-Net's, a class absent from both prediction and "
            "label has no value and drops out, so n (in each cell) can differ between configurations. "
            "Passes per window: ensemble members times the mirrored passes. s per volume: the median over the "
            "cases of each case's median over the rounds; peak MiB per volume: the largest case's. Speed vs "
            "ensemble: the ensemble's seconds over the configuration's, round by round; a ratio (the median, in "
            "brackets the range) is printed only where every round's ratio lies on one side of 1, with enough "
            "rounds for a verdict (below); a range that includes 1 reads no difference, and with too few rounds "
            "no ratio is given (deployment.json keeps the ratio of the medians, speedup_vs_ensemble).",
            "",
            f"Timed: {report['timed']}.",
            "",
            f"Device: {report['device']} ({report['hardware']}), {report['threads']} torch thread(s), "
            f"{report['repetitions']} timed round(s). Process peak MiB: {MEMORY_COUNTED}; on a GPU also "
            "torch.cuda.max_memory_allocated of that process (GPU), weights included. Torch peak MiB during "
            f"the call: {report['memory_measure']}, the largest case's; it leaves out the weights.",
            "",
            f"{verdict_note(report['repetitions'])}.",
            "",
            f"Command: `{report['command']}`",
            "",
            f"Software: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}; "
            f"nnunetv2_hlfd {report['nnunetv2_hlfd_commit']}.",
            "",
        ]
    )


def _json_ready(value):
    """NaN as null, so deployment.json is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _json_ready(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


# --- the command --------------------------------------------------------------------------


def open_deployment_dataset(settings: DeploymentSettings, preprocessed_root, results_root):
    try:
        return open_dataset(settings.dataset, settings.plans, preprocessed_root, results_root)
    except BenchmarkInputError as error:
        raise DeploymentError(error.problems, error.headline) from None


def run_deployment(
    settings: DeploymentSettings,
    preprocessed_root: Path | None = None,
    results_root: Path | None = None,
    raw_root: Path | None = None,
) -> Path:
    """Check everything, predict, time and score every configuration, write the report; returns the output."""
    from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw, nnUNet_results

    dataset = open_deployment_dataset(
        settings, preprocessed_root or nnUNet_preprocessed, results_root or nnUNet_results
    )
    settings = replace(settings, dataset=dataset.name, device=settings.device or default_device())
    output = Path(settings.output or dataset.results / f"hlfd_deployment_{settings.configuration}")
    held_out, problems = read_held_out_set(Path(settings.test_images), Path(settings.test_labels), dataset)
    training = training_cases(dataset, raw_root or nnUNet_raw)
    problems += held_out_problems(held_out, training, dataset)
    problems += label_problems(held_out, dataset)
    problems += copied_training_cases(held_out, training_files(dataset, raw_root or nnUNet_raw), dataset)
    problems += configuration_problems(settings, dataset)
    problems += model_problems(settings, dataset)
    problems += output_folder.output_problems(output, "deployment", settings.overwrite)
    if problems:
        raise DeploymentError(problems, headline="the deployment comparison cannot run; nothing was written:")

    device = torch.device(settings.device)
    chosen = configurations(settings, dataset)
    with output_folder.staged(output, "deployment") as staging:
        measured, threads = measure_test_volumes(
            chosen, held_out, dataset, device, settings.repetitions, staging / PREDICTIONS
        )
        memory_case = largest_case(held_out)
        records = [
            configuration_record(
                m, score(staging / PREDICTIONS / m.configuration.folder, held_out, dataset), measured[0]
            )
            | process_memory(m.configuration, held_out, memory_case, device)
            for m in measured
        ]
        report = {
            "dataset": dataset.name,
            "configuration": settings.configuration,
            "plans": settings.plans,
            "command": settings.command_line(),
            "test_images": str(held_out.images),
            "test_labels": str(held_out.labels),
            "n_cases": len(held_out.cases),
            "cases": list(held_out.cases),
            "training_case_sources": list(training),
            "classes": {name: str(value) for value, name in dataset.class_names().items()},
            "device": device.type,
            "hardware": hardware_name(device),
            "threads": threads,
            "repetitions": settings.repetitions,
            "timed": TIMED,
            "memory_measure": MEMORY_MEASURES[device.type],
            "versions": software_versions(),
            "nnunetv2_hlfd_commit": source_commit(),
            "configurations": records,
        }
        (staging / RESULTS).write_text(json.dumps(_json_ready(report), indent=2, allow_nan=False))
        (staging / REPORT).write_text(render_report(report))
    print(results_table(report))
    print(f"Everything is in {output}")
    return output
