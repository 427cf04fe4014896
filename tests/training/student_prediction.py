"""nnUNetv2_predict of a trained student with its teacher's folder out of reach, so a prediction that still
needs the teacher fails (a helper module for the training tests)."""

import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from nnunet_runs import nnunet_predict


def assert_predicts_without_the_teacher(images: Path, teacher_fold: Path, work: Path, trainer: str, *options) -> None:
    """Predicts two of `images` with `trainer` while the teacher's model folder is renamed, then checks each
    prediction has its image's size and only labels 0, 1, 2."""
    inputs = work / "in"
    inputs.mkdir()
    for image in sorted(images.glob("*.nii.gz"))[:2]:
        shutil.copy(image, inputs)
    hidden_teacher = teacher_fold.parent.with_name("hidden_teacher")
    teacher_fold.parent.rename(hidden_teacher)
    try:
        nnunet_predict(inputs, work / "out", trainer, *options)
    finally:
        hidden_teacher.rename(teacher_fold.parent)
    for image in inputs.glob("*.nii.gz"):
        prediction = sitk.ReadImage(str(work / "out" / image.name.replace("_0000", "")))
        assert prediction.GetSize() == sitk.ReadImage(str(image)).GetSize()
        assert set(np.unique(sitk.GetArrayFromImage(prediction))) <= {0, 1, 2}
