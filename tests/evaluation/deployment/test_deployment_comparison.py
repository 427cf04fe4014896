"""`nnunetv2_hlfd deployment` end to end on a held-out set of three generated cases: the teacher's
fold 0 stands in for the fold ensemble (a one-member ensemble), a briefly trained tiny student for
the deployment student; and every refusal, with the problems listed at once."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from nnunet_runs import DATASET_ID, DATASET_NAME, train_in_process

from nnunetv2_hlfd import cli
from nnunetv2_hlfd.dataset_writers.synthetic import generate_synthetic_kidney_dataset
from nnunetv2_hlfd.evaluation.deployment.comparison import DeploymentError, results_table, run_deployment
from nnunetv2_hlfd.evaluation.settings import DeploymentSettings
from nnunetv2_hlfd.evaluation.timing.verdict import speed_ratio
from nnunetv2_hlfd.utilities.output_folder import staged
from nnunetv2_hlfd.utilities.provenance import cpu_model

pytestmark = pytest.mark.integration  # trains a student and predicts with nnU-Net

STUDENT = "nnUNetTrainerStudent_tiny"
CASES = ("heldout_000", "heldout_001", "heldout_002")
CLASSES = {"kidney": 1, "tumor": 2}
NAMES = ("teacher ensemble", "student, mirroring", "student, no mirroring")
FOLDERS = ("teacher_ensemble", "student_mirroring", "student_no_mirroring")
REPETITIONS = 2


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """Three cases of another seed, in a raw dataset of their own (named kidney_000 ... as the training cases)."""
    return generate_synthetic_kidney_dataset(
        tmp_path_factory.mktemp("generated"), dataset_id=992, num_training_cases=3, shape=(16, 48, 48), seed=7
    )


def copy_renamed(generated: Path, target: Path, cases=CASES) -> tuple[Path, Path]:
    """The generated cases as a held-out set: kidney_000 ... renamed heldout_000 ..., images and labels."""
    images, labels = target / "images", target / "labels"
    for source, folder in ((generated / "imagesTr", images), (generated / "labelsTr", labels)):
        folder.mkdir(parents=True)
        for file in sorted(source.iterdir()):
            name = file.name.replace("kidney_", "heldout_")
            if name.split(".")[0].removesuffix("_0000") in cases:
                shutil.copy(file, folder / name)
    return images, labels


@pytest.fixture(scope="module")
def held_out(generated, tmp_path_factory) -> tuple[Path, Path]:
    return copy_renamed(generated, tmp_path_factory.mktemp("held_out"))


@pytest.fixture(scope="module")
def student_2d(nnunet_dirs, teacher_2d) -> Path:
    return Path(train_in_process(STUDENT, "2d").output_folder)


def settings(images: Path, labels: Path, output: Path, **changes) -> DeploymentSettings:
    chosen = dict(teacher_folds=(0,), student=STUDENT, student_fold=0, device="cpu", repetitions=REPETITIONS)
    return DeploymentSettings(str(DATASET_ID), "2d", images, labels, output=output, **chosen | changes)


def refusal(*args, **changes) -> DeploymentError:
    with pytest.raises(DeploymentError) as error:
        run_deployment(settings(*args, **changes))
    return error.value


def default_output() -> Path:
    from nnunetv2.paths import nnUNet_results

    return Path(nnUNet_results) / DATASET_NAME / "hlfd_deployment_2d"


@pytest.fixture(scope="module")
def deployment_output(teacher_2d, student_2d, held_out) -> Path:
    """The command as a user types it, without -o and with --overwrite: the default output folder holds
    what an earlier run left (its deployment.json, a prediction of another case)."""
    images, labels = held_out
    output = default_output()
    with staged(output, "deployment") as earlier:
        (earlier / "predictions" / FOLDERS[0]).mkdir(parents=True)
        (earlier / "predictions" / FOLDERS[0] / "earlier_case.nii.gz").write_bytes(b"an earlier run's prediction")
        (earlier / "deployment.json").write_text(json.dumps({"configurations": []}))
    cli.main(
        ["deployment", "-d", str(DATASET_ID), "-c", "2d", "-i", str(images), "-l", str(labels)]
        + ["--teacher-folds", "0", "--student", STUDENT, "--student-fold", "0", "--device", "cpu"]
        + ["--repetitions", str(REPETITIONS), "--overwrite"]
    )
    return output


def read_label(path: Path) -> np.ndarray:
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    return SimpleITKIO().read_seg(str(path))[0][0]


def nnunet_dice(reference: Path, prediction: Path) -> dict[str, float]:
    """nnU-Net's own Dice of one prediction, per class."""
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    metrics = compute_metrics(str(reference), str(prediction), SimpleITKIO(), list(CLASSES.values()))["metrics"]
    return {name: metrics[value]["Dice"] for name, value in CLASSES.items()}


def test_three_configurations_are_scored_timed_and_written(deployment_output, held_out):
    images, labels = held_out
    report = json.loads((deployment_output / "deployment.json").read_text())
    rows = report["configurations"]
    assert [row["name"] for row in rows] == list(NAMES)
    assert [row["trainer"] for row in rows] == ["nnUNetTrainer", STUDENT, STUDENT]
    assert [row["mirroring"] for row in rows] == [True, True, False]
    assert [row["passes_per_window"] for row in rows] == [4, 4, 1]  # 2d: the window and 3 flips, per member
    assert report["n_cases"] == 3 and report["cases"] == list(CASES)
    for label in labels.iterdir():  # every label has both classes, so every case has a DSC of each
        assert set(np.unique(read_label(label))) == {0, 1, 2}
    for row, folder in zip(rows, FOLDERS, strict=True):
        predictions = deployment_output / "predictions" / folder
        assert row["predictions"] == f"predictions/{folder}"
        assert sorted(p.name for p in predictions.glob("*.nii.gz")) == [f"{case}.nii.gz" for case in CASES]
        assert (predictions / "summary.json").is_file()  # nnU-Net's evaluation wrote it
        for case in CASES:
            prediction = predictions / f"{case}.nii.gz"
            assert read_label(prediction).shape == read_label(labels / f"{case}.nii.gz").shape
            assert row["dsc_per_case"][case] == pytest.approx(nnunet_dice(labels / f"{case}.nii.gz", prediction))
        for name in CLASSES:
            per_case = [row["dsc_per_case"][case][name] for case in CASES]
            assert row["dsc"][name]["n"] == 3
            assert 0 <= row["dsc"][name]["mean"] <= 1
            assert row["dsc"][name]["mean"] == pytest.approx(np.mean(per_case))
        assert set(row["latencies_s_per_case"]) == set(CASES)
        for case in CASES:
            assert len(row["latencies_s_per_case"][case]) == REPETITIONS
            assert all(s > 0 for s in row["latencies_s_per_case"][case])
            assert row["peak_memory_mib_per_case"][case] > 0
        assert row["volume_latency_s"] == pytest.approx(np.median(list(row["latency_s_per_case"].values())))
        assert row["volume_peak_memory_mib"] == max(row["peak_memory_mib_per_case"].values())
        assert row["speedup_vs_ensemble"] == pytest.approx(rows[0]["volume_latency_s"] / row["volume_latency_s"])
    assert rows[0]["speedup_vs_ensemble"] == 1 and rows[0]["speed_vs_ensemble"] == "reference"
    assert report["device"] == "cpu" and report["hardware"] == cpu_model()
    assert report["dataset"] == DATASET_NAME and report["test_images"] == str(images)

    markdown = (deployment_output / "deployment.md").read_text()
    assert "| configuration | trainer | folds | mirroring | passes per window | DSC kidney | DSC tumor |" in markdown
    for row in rows:
        line = next(line for line in markdown.splitlines() if line.startswith(f"| {row['name']} |"))
        assert f"| {row['passes_per_window']} |" in line and line.count("(n=3)") == 2
        assert f"| {row['volume_latency_s']:.3f} |" in line and f"| {row['speed_vs_ensemble']} |" in line
    assert f"{images} (3 cases" in markdown and cpu_model() in markdown
    assert f"`{report['command']}`" in markdown and "--teacher-folds 0 --student " + STUDENT in report["command"]
    leftovers = [p.name for p in deployment_output.parent.iterdir() if p.name.startswith(".hlfd_deployment")]
    assert leftovers == []  # neither the staging folder nor the replaced one


def test_cases_named_as_training_cases_are_refused(student_2d, generated, tmp_path):
    # the generator names cases kidney_000 ..., as the dataset's own training cases are named
    error = refusal(generated / "imagesTr", generated / "labelsTr", tmp_path / "out")
    [problem] = error.problems
    assert f"the test cases kidney_000, kidney_001, kidney_002 are training cases of {DATASET_NAME}" in problem
    assert "splits_final.json" in problem and "not held out" in problem
    assert not (tmp_path / "out").exists()


def test_unpaired_and_misnamed_test_files_are_refused_at_once(student_2d, generated, tmp_path):
    images, labels = copy_renamed(generated, tmp_path)
    (labels / "heldout_001.nii.gz").unlink()  # an image without its label
    shutil.copy(labels / "heldout_000.nii.gz", labels / "heldout_007.nii.gz")  # a label without its image
    shutil.copy(images / "heldout_000_0000.nii.gz", images / "heldout_005.nii.gz")  # no channel suffix
    shutil.copy(images / "heldout_000_0000.nii.gz", images / "heldout_006_0000.nrrd")  # not the file ending
    error = refusal(images, labels, tmp_path / "out")
    assert len(error.problems) == 3, error
    misnamed, unlabelled, without_image = error.problems
    assert "heldout_005.nii.gz, heldout_006_0000.nrrd" in misnamed and "<case>_0000.nii.gz" in misnamed
    assert "the test images of heldout_001 have no label" in unlabelled
    assert "the labels heldout_007 in" in without_image and "have no image" in without_image
    assert not (tmp_path / "out").exists()


def test_an_empty_test_folder_is_refused_with_exit_status_2(teacher_2d, tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    with pytest.raises(SystemExit) as exit_status:
        cli.main(
            ["deployment", "-d", str(DATASET_ID), "-c", "2d", "-i", str(tmp_path / "images")]
            + ["-l", str(tmp_path / "labels"), "--teacher-folds", "0", "--student", "nnUNetTrainer"]
            + ["--student-fold", "0", "-o", str(tmp_path / "out")]
        )
    assert exit_status.value.code == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'images'} holds no test images (<case>_0000.nii.gz)" in error
    assert "Traceback" not in error and error.count("nnunetv2_hlfd deployment") == 1


def test_missing_folds_name_the_commands_that_train_them(student_2d, held_out, tmp_path):
    error = refusal(*held_out, tmp_path / "out", teacher_folds=(0, 1), student_fold="all")
    assert len(error.problems) == 2, error
    teacher, student = error.problems
    assert "the teacher nnUNetTrainer has no fold 1" in teacher and "fold_1/checkpoint_final.pth" in teacher
    assert f"`nnUNetv2_train {DATASET_NAME} 2d 1 -tr nnUNetTrainer`" in teacher
    assert f"the student {STUDENT} has no fold all" in student
    assert f"`HLFD_TEACHER_FOLDS=0,1 nnUNetv2_train {DATASET_NAME} 2d all -tr {STUDENT}`" in student


def test_a_missing_model_folder_names_the_command_that_trains_it(student_2d, held_out, tmp_path):
    untrained = "nnUNetTrainer_5epochs"
    error = refusal(*held_out, tmp_path / "out", teacher=untrained, teacher_folds=(0, 1), student_fold="all")
    assert len(error.problems) == 2, error
    teacher, student = error.problems
    assert f"the teacher {untrained} has no model folder" in teacher
    assert f"`nnUNetv2_train {DATASET_NAME} 2d 0 -tr {untrained}`; `nnUNetv2_train {DATASET_NAME} 2d 1" in teacher
    teacher_folder = Path(student_2d).parents[1] / f"{untrained}__nnUNetPlans__2d"
    assert f"`HLFD_TEACHER_FOLDS=0,1 HLFD_TEACHER={teacher_folder} nnUNetv2_train {DATASET_NAME} 2d all" in student


def test_overwrite_replaced_the_earlier_output_and_without_it_the_output_is_kept(deployment_output, held_out):
    # the earlier run's files are gone (the fixture ran with --overwrite over them)
    assert not (deployment_output / "predictions" / FOLDERS[0] / "earlier_case.nii.gz").exists()
    assert json.loads((deployment_output / "deployment.json").read_text())["cases"] == list(CASES)
    files = {p: p.read_bytes() for p in deployment_output.rglob("*") if p.is_file()}
    error = refusal(*held_out, deployment_output)
    assert f"the output folder {deployment_output} exists and is not empty; pass --overwrite" in str(error)
    assert {p: p.read_bytes() for p in deployment_output.rglob("*") if p.is_file()} == files


def test_overwrite_never_replaces_a_folder_this_command_did_not_write(student_2d, held_out, tmp_path):
    output = tmp_path / "thesis"
    output.mkdir()
    (output / "thesis.tex").write_text(r"\documentclass{book}")
    error = refusal(*held_out, output, overwrite=True)
    assert "was not written by nnunetv2_hlfd deployment" in str(error) and "not even with --overwrite" in str(error)
    assert (output / "thesis.tex").read_text() == r"\documentclass{book}"


def test_loading_a_model_prints_nothing_of_nnunets_own(teacher_2d, capsys):
    # nnU-Net 2.8 prints "perform_everything_on_device=True is only supported for cuda devices!" on a CPU, even
    # when asked for False, and narrates its trainer search, for every model loaded
    from nnunetv2_hlfd.evaluation.model_folders import ModelFolder
    from nnunetv2_hlfd.evaluation.timing.prediction import load_predictor

    model = ModelFolder("nnUNetTrainer", "nnUNetTrainer", "nnUNetPlans", "2d", Path(teacher_2d).parent)
    predictor = load_predictor(model, (0,), torch.device("cpu"))
    assert predictor.network is not None and capsys.readouterr().out == ""


def one_round_report() -> dict:
    """A deployment report of one timed round: the student 17.5 times as fast as the ensemble in it."""
    record = {
        "trainer": "nnUNetTrainer",
        "folds": [0],
        "mirroring": False,
        "mirror_axes": None,
        "passes_per_window": 1,
        "dsc": {"kidney": {"mean": 0.9, "n": 3}},
        "volume_latency_s": 0.5,
        "volume_peak_memory_mib": 100.0,
        "process_peak_memory_mib": 900.0,
        "weights_mib": 10.0,
    }
    ensemble = record | {"name": "teacher ensemble", "speedup_vs_ensemble": 1.0, "speed_vs_ensemble": "reference"}
    student = record | {
        "name": "student, no mirroring",
        "volume_latency_s": 0.5 / 17.52,
        "speedup_vs_ensemble": 17.52,
        "speed_vs_ensemble": speed_ratio([0.5], [0.5 / 17.52]),
    }
    return {"classes": {"kidney": "1"}, "configurations": [ensemble, student]}


def test_a_speed_ratio_the_rounds_do_not_judge_is_not_printed():
    table = results_table(one_round_report())
    student = next(line for line in table.splitlines() if line.startswith("| student, no mirroring |"))
    assert "not judged (1 round(s)" in student and "17.52" not in student
