"""Each way a teacher can be unfit is refused before training, with a message naming the fix."""

import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from nnunet_runs import DATASET_ID, DATASET_NAME, with_own_log

from nnunetv2_hlfd.training.safe_checkpoint import UntrustedCheckpointError, load_checkpoint_weights_only
from nnunetv2_hlfd.training.teacher import TeacherError, TeacherSource
from nnunetv2_hlfd.training.teacher_checks import _training_cases_or_reason, check_leak, label_problems
from nnunetv2_hlfd.utilities.environment import UserFacingError, env_flag

pytestmark = pytest.mark.integration


def hlfd_trainer():
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(str(DATASET_ID), "2d", 0, "nnUNetTrainerHLFD_tiny", device=torch.device("cpu"))
    return with_own_log(trainer)


@pytest.fixture
def teacher_copy(teacher_2d: Path, tmp_path: Path, monkeypatch) -> Path:
    """A copy of the trained teacher's model folder, used through HLFD_TEACHER."""
    copy = tmp_path / "nnUNetTrainer__nnUNetPlans__2d"
    (copy / "fold_0").mkdir(parents=True)
    for name in ("plans.json", "dataset.json"):
        shutil.copy(teacher_2d.parent / name, copy / name)
    shutil.copy(teacher_2d / "checkpoint_final.pth", copy / "fold_0" / "checkpoint_final.pth")
    monkeypatch.setenv("HLFD_TEACHER", str(copy))
    return copy


def edit_json(path: Path, edit) -> None:
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))


def refusal(match: str) -> str:
    with pytest.raises(TeacherError, match=match) as error:
        hlfd_trainer().initialize()
    return str(error.value)


def test_missing_default_teacher_is_refused_with_the_training_command(nnunet_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_results", str(tmp_path))  # no teacher trained there
    message = refusal("No teacher checkpoint")
    assert "nnUNetv2_train Dataset991_SyntheticKidney 2d 0" in message and "HLFD_TEACHER" in message


def test_teacher_folder_that_does_not_exist_is_named(nnunet_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("HLFD_TEACHER", str(tmp_path / "no_such_model"))
    message = refusal("does not exist")
    assert f"the folder {tmp_path / 'no_such_model'} does not exist" in message and "Train the teacher" not in message


def training_logs(fold_folder: Path) -> str:
    return "".join(p.read_text() for p in fold_folder.glob("training_log_*.txt"))


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"HLFD_TEACHER": "/no/such/teacher_model"}, "the folder /no/such/teacher_model does not exist"),
        ({"HLFD_ALLOW_TEACHER_LEAK": "maybe"}, "HLFD_ALLOW_TEACHER_LEAK='maybe' is not a yes/no value"),
    ],
    ids=["missing teacher folder", "bad boolean"],
)
def test_nnunetv2_train_prints_the_refusal_alone_and_logs_it(nnunet_dirs, env, expected):
    result = subprocess.run(
        ["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", "nnUNetTrainerHLFD_tiny", "-device", "cpu"],
        env={**os.environ, **env},
        capture_output=True,
        check=False,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0 and expected in result.stderr, output
    assert "Traceback" not in output and "ERROR: " in result.stderr
    fold_folder = nnunet_dirs["nnUNet_results"] / DATASET_NAME / "nnUNetTrainerHLFD_tiny__nnUNetPlans__2d" / "fold_0"
    assert expected in training_logs(fold_folder)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("1", True),
        ("on", True),
        ("True", True),
        ("YES", True),
        ("0", False),
        ("off", False),
        ("False", False),
        ("no", False),
        ("", False),
    ],
)
def test_boolean_settings_accept_the_usual_spellings(monkeypatch, value, expected):
    monkeypatch.setenv("HLFD_SOME_FLAG", value)
    assert env_flag("HLFD_SOME_FLAG") is expected


def test_boolean_setting_with_another_value_is_refused_naming_it(monkeypatch):
    monkeypatch.setenv("HLFD_TRUST_TEACHER_CHECKPOINT", "enabled")
    with pytest.raises(UserFacingError, match="HLFD_TRUST_TEACHER_CHECKPOINT='enabled' is not a yes/no value"):
        hlfd_trainer()


def test_teacher_with_another_label_set_is_refused(teacher_copy):
    edit_json(teacher_copy / "dataset.json", lambda d: d["labels"].update({"cyst": 3}))
    assert "retrain it on this dataset" in refusal("label set differs")


def to_kidney_and_tumour_regions(dataset: dict) -> None:
    dataset["labels"] = {"background": 0, "kidney": [1, 2], "tumor": 2}
    dataset["regions_class_order"] = [1, 2]


def test_teacher_trained_on_regions_is_refused_for_a_label_student(teacher_copy):
    edit_json(teacher_copy / "dataset.json", to_kidney_and_tumour_regions)
    message = refusal("label set differs")
    assert "the teacher predicts regions (sigmoid heads), the student labels (softmax)" in message
    assert "regions_class_order" in message and "retrain it on this dataset" in message


def test_teacher_with_other_regions_is_refused():
    ours = {"labels": {"background": 0, "kidney": [1, 2], "tumor": 2}, "regions_class_order": [1, 2]}
    theirs = {"labels": {"background": 0, "kidney": [1, 2, 3], "tumor": [2, 3]}, "regions_class_order": [1, 2]}
    problems = label_problems(SimpleNamespace(dataset_json=theirs), ours)
    assert len(problems) == 1 and "the teacher's regions (sigmoid heads) are not the student's" in problems[0]
    assert "retrain it on this dataset" in problems[0]
    assert label_problems(SimpleNamespace(dataset_json=ours), dict(ours)) == []


def test_teacher_with_other_input_channels_is_refused(teacher_copy):
    edit_json(teacher_copy / "dataset.json", lambda d: d["channel_names"].update({"1": "PET"}))
    refusal("takes 2 input channel\\(s\\), the student's dataset has 1")


def test_teacher_with_other_preprocessing_is_refused_naming_the_field(teacher_copy):
    def other_spacing(plans):
        plans["configurations"]["2d"]["spacing"] = [1.5, 1.5]

    edit_json(teacher_copy / "plans.json", other_spacing)
    assert "spacing (teacher [1.5, 1.5]" in refusal("preprocessing differs")


def _z_score(plans):
    plans["configurations"]["2d"]["normalization_schemes"] = ["ZScoreNormalization"]


def _brighter(plans):
    plans["foreground_intensity_properties_per_channel"]["0"]["mean"] += 100.0


@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            _z_score,
            [
                "normalization_schemes (teacher ['ZScoreNormalization'], student ['CTNormalization'])",
                "Train the student with the teacher's plans (-p nnUNetPlans)",
            ],
        ),
        (
            _brighter,
            ["foreground_intensity_properties_per_channel (teacher", "a teacher preprocessed like the student"],
        ),
    ],
    ids=["normalisation scheme", "intensity statistics"],
)
def test_teacher_with_other_intensity_normalisation_is_refused_naming_it(teacher_copy, edit, expected):
    edit_json(teacher_copy / "plans.json", edit)
    message = refusal("preprocessing differs")
    assert all(fragment in message for fragment in expected), message


def test_patch_the_teacher_strides_cannot_divide_is_refused(teacher_copy):
    def coarser_strides(plans):
        plans["configurations"]["2d"]["architecture"]["arch_kwargs"]["strides"][-1] = [5, 5]

    edit_json(teacher_copy / "plans.json", coarser_strides)
    refusal("not divisible by the teacher's total stride \\[20, 20\\]")


def write_validation_outputs(fold_folder: Path, cases) -> None:
    """What nnU-Net's perform_actual_validation leaves in the fold folder: one prediction per case."""
    (fold_folder / "validation").mkdir(parents=True, exist_ok=True)
    for case in cases:
        (fold_folder / "validation" / f"{case}.nii.gz").touch()


def splits(nnunet_dirs) -> list[dict]:
    return json.loads((nnunet_dirs["nnUNet_preprocessed"] / DATASET_NAME / "splits_final.json").read_text())


def test_teacher_trained_on_student_validation_cases_is_refused(teacher_copy, monkeypatch):
    # fold 1's training cases include fold 0's validation cases (from today's splits: no validation outputs)
    (teacher_copy / "fold_0").rename(teacher_copy / "fold_1")
    monkeypatch.setenv("HLFD_TEACHER", str(teacher_copy / "fold_1"))
    assert "HLFD_ALLOW_TEACHER_LEAK=1" in refusal("trained on 2 of the student's validation cases")


def test_leak_is_found_from_the_teacher_validation_outputs_whatever_the_splits_say_today(
    teacher_copy, nnunet_dirs, rewritable_splits
):
    folds = splits(nnunet_dirs)
    write_validation_outputs(teacher_copy / "fold_0", folds[0]["val"])
    trained_on = folds[0]["train"][:2]
    # As a user might: the splits rewritten after the teacher trained, fold 0 now validating on its training cases
    folds[0] = {"train": [c for c in folds[0]["train"] + folds[0]["val"] if c not in trained_on], "val": trained_on}
    rewritable_splits.write_text(json.dumps(folds))
    message = refusal("trained on 2 of the student's validation cases")
    assert all(case in message for case in trained_on) and "was validated on other cases" in message


def test_teacher_validated_on_the_student_validation_cases_trains_without_a_leak_warning(teacher_copy, nnunet_dirs):
    write_validation_outputs(teacher_copy / "fold_0", splits(nnunet_dirs)[0]["val"])
    trainer = hlfd_trainer()
    trainer.initialize()
    assert "leak check" not in Path(trainer.log_file).read_text()


def test_leak_check_from_today_splits_says_it_may_be_wrong(teacher_copy):
    trainer = hlfd_trainer()
    trainer.initialize()  # the same fold: no leak in today's splits, but no validation outputs to confirm it
    log = Path(trainer.log_file).read_text()
    assert "WARNING: The teacher leak check may be wrong" in log and "today's splits_final.json was used" in log
    assert "fold_0/validation holds no validation outputs" in log


def test_leak_override_trains_with_a_logged_warning(teacher_copy, monkeypatch):
    (teacher_copy / "fold_0").rename(teacher_copy / "fold_1")
    monkeypatch.setenv("HLFD_TEACHER", str(teacher_copy / "fold_1"))
    monkeypatch.setenv("HLFD_ALLOW_TEACHER_LEAK", "on")
    trainer = hlfd_trainer()
    trainer.initialize()
    assert trainer.teacher is not None
    log = Path(trainer.log_file).read_text()
    assert "WARNING: the teacher" in log and "was trained on 2 of the student's validation cases" in log


def test_leak_check_that_cannot_be_done_is_logged_with_the_reason(teacher_copy):
    # The teacher's plans name a dataset that is not preprocessed here, and it has no validation outputs.
    edit_json(teacher_copy / "plans.json", lambda plans: plans.update(dataset_name="Dataset992_Elsewhere"))
    trainer = hlfd_trainer()
    trainer.initialize()
    assert trainer.teacher is not None  # trains, but not silently: the training log says why
    message = Path(trainer.log_file).read_text()
    assert "WARNING: " in message and "leak check was not done" in message
    assert "Dataset992_Elsewhere/splits_final.json does not exist" in message
    assert "keep the teacher's fold_X/validation folder" in message


def test_refusal_is_written_into_the_training_log(teacher_copy):
    edit_json(teacher_copy / "dataset.json", lambda d: d["labels"].update({"cyst": 3}))
    trainer = hlfd_trainer()
    with pytest.raises(TeacherError):
        trainer.initialize()
    assert "ERROR: The teacher" in Path(trainer.log_file).read_text()


def fake_teacher(fold_folder: Path, dataset_name: str = "Dataset991_SyntheticKidney"):
    return SimpleNamespace(
        source=TeacherSource(fold_folder, fold_folder / "checkpoint_final.pth"),
        plans_manager=SimpleNamespace(dataset_name=dataset_name),
        configuration_manager=SimpleNamespace(data_identifier="nnUNetPlans_2d"),
        dataset_json={"file_ending": ".nii.gz"},
    )


@pytest.mark.parametrize(
    "fold,preprocessed,reason",
    [
        ("fold_0", None, "nnUNet_preprocessed is not set"),
        ("fold_x", "root", "is neither fold_<number> nor fold_all"),
        ("fold_0", "root", "splits_final.json does not exist"),
        ("fold_7", "root", "has 1 folds, none for fold 7"),
        ("fold_all", "root", "holds no preprocessed cases"),
    ],
)
def test_unknown_teacher_training_cases_say_why(tmp_path, fold, preprocessed, reason):
    dataset = tmp_path / "Dataset991_SyntheticKidney"
    dataset.mkdir()
    if fold == "fold_7":
        (dataset / "splits_final.json").write_text(json.dumps([{"train": ["a"], "val": ["b"]}]))
    check = check_leak(fake_teacher(tmp_path / fold), {"b"}, preprocessed and str(tmp_path))
    assert not check.leaked and not check.evidence
    assert reason in check.caveat and "holds no validation outputs" in check.caveat


def test_teacher_training_cases_from_today_splits(tmp_path):
    dataset = tmp_path / "Dataset991_SyntheticKidney"
    (dataset / "nnUNetPlans_2d").mkdir(parents=True)
    (dataset / "splits_final.json").write_text(json.dumps([{"train": ["a", "c"], "val": ["b"]}]))
    for name in ("a.b2nd", "a.pkl", "b.b2nd"):
        (dataset / "nnUNetPlans_2d" / name).touch()
    assert _training_cases_or_reason(fake_teacher(tmp_path / "fold_0"), str(tmp_path)) == ({"a", "c"}, "")
    assert _training_cases_or_reason(fake_teacher(tmp_path / "fold_all"), str(tmp_path)) == ({"a", "b"}, "")


@pytest.mark.parametrize(
    "fold, validated, student_validation, leaked",
    [
        ("fold_0", ["b"], {"b"}, set()),
        ("fold_0", ["b"], {"a", "b"}, {"a"}),
        ("fold_all", ["a", "b"], {"b", "z"}, {"b"}),  # fold all validates on, and so trained on, these cases
    ],
)
def test_teacher_validation_outputs_decide_the_leak(tmp_path, fold, validated, student_validation, leaked):
    write_validation_outputs(tmp_path / fold, validated)
    check = check_leak(fake_teacher(tmp_path / fold), student_validation, None)
    assert check.leaked == leaked and not check.caveat and str(tmp_path / fold / "validation") in check.evidence


class _RunsCodeWhenUnpickled:
    marker: Path = Path()

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoint_whose_unpickling_runs_code_is_refused_and_the_code_does_not_run(tmp_path):
    marker = tmp_path / "code_ran"
    payload = _RunsCodeWhenUnpickled()
    payload.marker = marker
    crafted = tmp_path / "checkpoint_final.pth"
    torch.save(
        {"network_weights": {}, "trainer_name": "nnUNetTrainer", "payload": payload},
        crafted,
        pickle_protocol=pickle.HIGHEST_PROTOCOL,
    )
    with pytest.raises(UntrustedCheckpointError, match="HLFD_TRUST_TEACHER_CHECKPOINT=1"):
        load_checkpoint_weights_only(crafted)
    assert not marker.exists()


def test_untrusted_teacher_checkpoint_is_refused_by_the_trainer_and_logged(teacher_copy):
    checkpoint = torch.load(teacher_copy / "fold_0" / "checkpoint_final.pth", weights_only=False)
    checkpoint["payload"] = _RunsCodeWhenUnpickled()
    checkpoint["payload"].marker = teacher_copy / "code_ran"
    torch.save(checkpoint, teacher_copy / "fold_0" / "checkpoint_final.pth")
    trainer = hlfd_trainer()
    with pytest.raises(UntrustedCheckpointError):
        trainer.initialize()
    assert "ERROR: Refused to load" in Path(trainer.log_file).read_text()
    assert not (teacher_copy / "code_ran").exists()


def test_real_nnunet_checkpoint_loads_weights_only(teacher_2d):
    checkpoint = load_checkpoint_weights_only(teacher_2d / "checkpoint_final.pth")
    assert checkpoint["trainer_name"] == "nnUNetTrainer" and checkpoint["network_weights"]
