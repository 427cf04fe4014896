"""A method whose `distillation` declaration cannot run (a misspelt term option, a schedule or average setting
out of range) stops nnUNetv2_train before anything runs, as a teacher refusal does: its sentence alone on
stderr, a non-zero exit, and the same sentence in nnU-Net's training log."""

import os
import subprocess

import pytest
from nnunet_runs import DATASET_ID, DATASET_NAME

pytestmark = pytest.mark.integration

DECLARATIONS = {
    "nnUNetTrainerHLFD_MisspeltOption": (
        'hlfd_config(options={"IFD": {"student_shrinks": "area"}})',
        "IFD has no option 'student_shrinks'; IFD's options are ['student_shrink']",
    ),
    "nnUNetTrainerHLFD_DecayOutOfRange": (
        "hlfd_config(student_ema_decay=1.5)",
        "student_ema_decay=1.5 is not a number strictly between 0 and 1",
    ),
}


@pytest.fixture
def declared_trainers(tmp_path) -> str:
    """A trainers folder declaring each method of DECLARATIONS, as a user's own trainers module would."""
    module = [
        "from nnunetv2_hlfd.distillation.config import hlfd_config",
        "from nnunetv2_hlfd.training.distillation_trainer import nnUNetTrainerDistillation",
    ]
    for name, (declaration, _) in DECLARATIONS.items():
        module += ["", "", f"class {name}(nnUNetTrainerDistillation):", f"    distillation = {declaration}"]
    folder = tmp_path / "user_trainers"
    folder.mkdir()
    (folder / "nnUNetTrainerUserMethods.py").write_text("\n".join(module) + "\n")
    return os.pathsep.join([str(folder), os.environ["nnUNet_extTrainer"]])


@pytest.mark.parametrize("trainer", list(DECLARATIONS), ids=["misspelt term option", "average decay out of range"])
def test_nnunetv2_train_prints_the_refusal_alone_and_logs_it(nnunet_dirs, declared_trainers, trainer):
    result = subprocess.run(
        ["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", trainer, "-device", "cpu"],
        env={**os.environ, "nnUNet_extTrainer": declared_trainers},
        capture_output=True,
        check=False,
        text=True,
        timeout=600,
    )
    expected = DECLARATIONS[trainer][1]
    output = result.stdout + result.stderr
    assert result.returncode != 0 and expected in result.stderr, output
    assert "Traceback" not in output and "ERROR: " in result.stderr
    fold_folder = nnunet_dirs["nnUNet_results"] / DATASET_NAME / f"{trainer}__nnUNetPlans__2d" / "fold_0"
    assert expected in "".join(p.read_text() for p in fold_folder.glob("training_log_*.txt"))
