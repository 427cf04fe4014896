"""`nnunetv2_hlfd benchmark` end to end on two briefly trained models, fold 0: every output
is written, and its numbers agree with nnU-Net's own per-case metrics and with the checkpoints.

The validation predictions are written in this process by nnU-Net's predictor and exporter:
nnU-Net's validation would spawn an export worker per model, each re-importing torch."""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from figure_checks import coloured_fraction, grid_cells, pixel_size, read_png
from nnunet_runs import DATASET_ID, DATASET_NAME, train_in_process

from nnunetv2_hlfd.evaluation import command
from nnunetv2_hlfd.evaluation.figures import COST_AXES, DPI
from nnunetv2_hlfd.utilities.provenance import cpu_model

pytestmark = pytest.mark.integration  # trains two models

TEACHER, STUDENT = "nnUNetTrainer", "nnUNetTrainerStudent_tiny"
VOLUME_CASES = 2
CLASSES = {"kidney": "1", "tumor": "2"}  # class name: its label, as nnunet_metrics keys it


def preprocessed_dataset() -> Path:
    from nnunetv2.paths import nnUNet_preprocessed

    return Path(nnUNet_preprocessed) / DATASET_NAME


def validation_cases(fold: int = 0) -> list[str]:
    return json.loads((preprocessed_dataset() / "splits_final.json").read_text())[fold]["val"]


def validate_in_process(model_fold: Path, fold: int = 0) -> None:
    """What nnU-Net's validation writes to fold_X/validation, predicted and exported in this process."""
    from nnunetv2.inference.export_prediction import export_prediction_from_logits
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    predictor = nnUNetPredictor(perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(
        str(model_fold.parent), use_folds=(fold,), checkpoint_name="checkpoint_final.pth"
    )
    folder = str(preprocessed_dataset() / predictor.configuration_manager.data_identifier)
    dataset = infer_dataset_class(folder)(folder, validation_cases(fold))
    (model_fold / "validation").mkdir(exist_ok=True)
    for case in validation_cases(fold):
        data, _, _, properties = dataset.load_case(case)
        logits = predictor.predict_logits_from_preprocessed_data(torch.from_numpy(np.ascontiguousarray(data[:])))
        export_prediction_from_logits(
            logits,
            properties,
            predictor.configuration_manager,
            predictor.plans_manager,
            predictor.dataset_json,
            str(model_fold / "validation" / case),
        )


@pytest.fixture(scope="module")
def student_2d(nnunet_dirs, teacher_2d) -> Path:
    start = time.perf_counter()
    folder = Path(train_in_process(STUDENT, "2d").output_folder)
    print(f"student training took {time.perf_counter() - start:.1f} s")
    return folder


@pytest.fixture(scope="module")
def benchmark_output(teacher_2d, student_2d, tmp_path_factory) -> Path:
    """The command as a user types it, after both models' validation."""
    start = time.perf_counter()
    for model_fold in (teacher_2d, student_2d):
        validate_in_process(model_fold)
    print(f"validation took {time.perf_counter() - start:.1f} s")
    output = tmp_path_factory.mktemp("benchmark") / "out"
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers())
    start = time.perf_counter()
    command.run(
        parser.parse_args(
            [
                "benchmark",
                "-d",
                str(DATASET_ID),
                "-c",
                "2d",
                "-tr",
                TEACHER,
                STUDENT,
                "--reference",
                STUDENT,
                "-f",
                "0",
                "--repetitions",
                "1",
                "--volume-cases",
                str(VOLUME_CASES),
                "-o",
                str(output),
            ]
        )
    )
    print(f"benchmark took {time.perf_counter() - start:.1f} s")
    return output


def nnunet_metrics(model_fold: Path, case: str) -> dict:
    """nnU-Net's own per-case metrics of one validation prediction: {label key: {Dice, IoU, n_pred, n_ref, ...}}."""
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    reference = preprocessed_dataset() / "gt_segmentations" / f"{case}.nii.gz"
    result = compute_metrics(str(reference), str(model_fold / "validation" / f"{case}.nii.gz"), SimpleITKIO(), [1, 2])
    return {str(label): values for label, values in result["metrics"].items()}


def per_case(output: Path) -> pd.DataFrame:
    return pd.read_csv(output / "per_case.csv")


def test_every_output_file_is_written(benchmark_output):
    for name in (
        "per_case.csv",
        "per_case.json",
        "per_fold_summary.csv",
        "summary.csv",
        "comparisons.csv",
        "compression.csv",
        "speed.csv",
        "settings.json",
        "report.md",
    ):
        assert (benchmark_output / name).stat().st_size > 0, name
    cases = per_case(benchmark_output)
    trainers, classes = cases["trainer"].nunique(), list(dict.fromkeys(cases["class"]))
    for metric in ("dsc", "hd95", "surface_dice", "lesion_f1"):
        png = read_png(benchmark_output / "figures" / f"box_{metric}.png")
        # one panel per class, 1.3 inches per trainer box (figures.box_plot)
        assert png.shape[:2] == pixel_size((1.6 + 1.3 * trainers * len(classes), 4.4), DPI), metric
        panels = grid_cells(png[: png.shape[0] * 85 // 100], len(classes))  # the legend below them left out
        for class_name, panel in zip(classes, panels):
            if cases.loc[cases["class"] == class_name, metric].notna().any():  # a class with values shows them
                # coloured medians, means and cases: about 0.0015 for one case a trainer, 0 for an empty panel
                assert coloured_fraction(panel) > 0.0005, (metric, class_name)
    costs = [column for column, _ in COST_AXES if column in pd.read_csv(benchmark_output / "compression.csv")]
    png = read_png(benchmark_output / "figures" / "accuracy_vs_cost.png")
    assert png.shape[:2] == pixel_size((4.8 * len(costs), 4.2), DPI)  # one panel per cost measured
    assert all(coloured_fraction(panel) > 0.0005 for panel in grid_cells(png, len(costs)))  # each model's point


@pytest.mark.parametrize("trainer_fixture", ["teacher_2d", "student_2d"])
def test_dice_agrees_with_nnunets_own_metrics(benchmark_output, trainer_fixture, request):
    model_fold = request.getfixturevalue(trainer_fixture)
    trainer = model_fold.parent.name.split("__")[0]
    ours = per_case(benchmark_output).set_index(["trainer", "case", "class"])["dsc"]
    for case in validation_cases():
        theirs = nnunet_metrics(model_fold, case)
        for class_name, key in CLASSES.items():
            assert ours[(trainer, case, class_name)] == pytest.approx(theirs[key]["Dice"], nan_ok=True)


def test_volume_and_overlap_errors_agree_with_nnunets_voxel_counts(benchmark_output, student_2d):
    ours = per_case(benchmark_output).set_index(["trainer", "case", "class"])
    for case in validation_cases():
        counts = nnunet_metrics(student_2d, case)[CLASSES["kidney"]]
        row = ours.loc[(STUDENT, case, "kidney")]
        assert row["rvd"] == pytest.approx(counts["n_pred"] / counts["n_ref"] - 1)
        assert row["voe"] == pytest.approx(1 - counts["IoU"], nan_ok=True)


def test_json_holds_the_same_per_case_values_as_the_csv(benchmark_output):
    from_json = pd.DataFrame(json.loads((benchmark_output / "per_case.json").read_text()))
    pd.testing.assert_frame_equal(from_json, per_case(benchmark_output), check_dtype=False)


def test_markdown_report_has_one_row_per_trainer_in_each_table(benchmark_output):
    report = (benchmark_output / "report.md").read_text()
    results_section, compression_section = report.split("## ")[1], report.split("## Compression")[1].split("## ")[0]
    for section in (results_section, compression_section):
        assert [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| nnUNet")] == [
            TEACHER,
            STUDENT,
        ]


def test_parameters_are_those_of_the_checkpoints(benchmark_output, teacher_2d, student_2d):
    compression = pd.read_csv(benchmark_output / "compression.csv").set_index("trainer")
    for trainer, folder in ((TEACHER, teacher_2d), (STUDENT, student_2d)):
        weights = torch.load(folder / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]
        # The decoder holds the encoder, so the state dict names the encoder's tensors twice: count storages.
        storages = {w.untyped_storage().data_ptr(): w.numel() for w in weights.values()}
        assert compression.loc[trainer, "parameters"] == sum(storages.values())
    assert compression.loc[STUDENT, "macs_per_patch"] < compression.loc[TEACHER, "macs_per_patch"]


def test_latency_and_memory_are_measured_per_patch_and_volume_on_every_device(benchmark_output):
    speed = pd.read_csv(benchmark_output / "speed.csv")
    devices = {"cpu", "cuda"} if torch.cuda.is_available() else {"cpu"}  # the default devices
    assert sorted(speed["trainer"]) == sorted([TEACHER, STUDENT] * len(devices)) and set(speed["device"]) == devices
    assert (
        (speed[["patch_latency_ms", "volume_latency_s", "patch_peak_memory_mib", "volume_peak_memory_mib"]] > 0)
        .all()
        .all()
    )
    assert (speed.loc[speed["device"] == "cpu", "hardware"] == cpu_model()).all()
    # the first validation cases, the same for every model; the volume latency is their median
    first_cases = sorted(validation_cases())[:VOLUME_CASES]
    assert (speed["cases"] == " ".join(first_cases)).all() and (speed["n_cases"] == VOLUME_CASES).all()
    for _, row in speed.iterrows():
        per_case = json.loads(row["volume_latency_s_per_case"])
        assert list(per_case) == first_cases
        assert row["volume_latency_s"] == pytest.approx(float(np.median(list(per_case.values()))), abs=1e-4)
    assert (speed["volume_latency_s"] * 1000 > speed["patch_latency_ms"]).all()  # a volume is many patches
    compression = pd.read_csv(benchmark_output / "compression.csv")
    assert {"volume_latency_s_cpu", "patch_peak_memory_mib_cpu"} <= set(compression.columns)


def test_paired_tests_compare_the_teacher_with_the_reference_on_every_case(benchmark_output):
    comparisons = pd.read_csv(benchmark_output / "comparisons.csv")
    kidney_dsc = comparisons[(comparisons["class"] == "kidney") & (comparisons["metric"] == "dsc")]
    assert kidney_dsc[["trainer", "reference"]].values.tolist() == [[TEACHER, STUDENT]]
    n_cases = per_case(benchmark_output)["case"].nunique()
    assert kidney_dsc["n_pairs"].item() == n_cases and not math.isnan(kidney_dsc["p_holm"].item())
