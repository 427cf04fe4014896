"""Dataset kinds nnU-Net supports that KiTS/LiTS do not exercise, each end to end on tiny data:
region-based labels, an ignore label (sparse annotations), several input channels, and
3d_fullres with a non-isotropic first stride.

Each variant is derived from the session's synthetic dataset, planned and preprocessed by
nnU-Net, taught by a briefly trained nnU-Net teacher, distilled with HLFD and predicted.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from nnunet_runs import DATASET_ID, DATASET_NAME, plan_and_preprocess, train_in_process

pytestmark = pytest.mark.integration
IGNORE = 3
REGIONS_DATASET_ID = 992


def _second_channel(image: sitk.Image) -> sitk.Image:
    """A smoothed copy stands in for a second modality: same geometry, other intensities."""
    return sitk.Cast(sitk.SmoothingRecursiveGaussian(image, 2.0), sitk.sitkFloat32)


def _sparse_annotation(label: sitk.Image) -> sitk.Image:
    """Only every other axial slice annotated; the rest carries the ignore label."""
    array = sitk.GetArrayFromImage(label)
    array[1::2] = IGNORE
    sparse = sitk.GetImageFromArray(array.astype(np.uint8))
    sparse.CopyInformation(label)
    return sparse


def derive_dataset(
    raw_root: Path,
    dataset_id: int,
    name: str,
    dataset_json_changes: dict,
    two_channels: bool = False,
    sparse_labels: bool = False,
) -> int:
    source = raw_root / DATASET_NAME
    target = raw_root / f"Dataset{dataset_id}_{name}"
    (target / "imagesTr").mkdir(parents=True)
    (target / "labelsTr").mkdir()
    for image_file in sorted((source / "imagesTr").glob("*_0000.nii.gz")):
        shutil.copy(image_file, target / "imagesTr")
        if two_channels:
            second = target / "imagesTr" / image_file.name.replace("_0000", "_0001")
            sitk.WriteImage(_second_channel(sitk.ReadImage(str(image_file))), str(second))
    for label_file in sorted((source / "labelsTr").glob("*.nii.gz")):
        label = sitk.ReadImage(str(label_file))
        sitk.WriteImage(
            _sparse_annotation(label) if sparse_labels else label, str(target / "labelsTr" / label_file.name)
        )
    dataset_json = json.loads((source / "dataset.json").read_text())
    dataset_json.update(dataset_json_changes)
    (target / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    plan_and_preprocess(dataset_id, ("2d",))
    return dataset_id


def distil_and_predict(dataset_id: int, raw_root: Path, output: Path):
    """Teacher, HLFD student (a few iterations each), then nnU-Net's predictor on one training case."""
    train_in_process("nnUNetTrainer", "2d", dataset_id=dataset_id)
    student = train_in_process("nnUNetTrainerHLFD_tiny", "2d", dataset_id=dataset_id)
    return student, predict_one_validation_case(student, raw_root, output)


def predict_one_validation_case(student, raw_root: Path, output: Path) -> np.ndarray:
    """nnU-Net's own predictor, from the student's results folder alone (no teacher)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(Path(student.output_folder).parent), (0,))
    case = student.do_split()[1][0]
    images = sorted(str(p) for p in (raw_root / student.plans_manager.dataset_name).glob(f"imagesTr/{case}_*"))
    predictor.predict_from_files(
        [images],
        str(output),
        save_probabilities=False,
        overwrite=True,
        num_processes_preprocessing=1,
        num_processes_segmentation_export=1,
    )
    return sitk.GetArrayFromImage(sitk.ReadImage(str(output / f"{case}.nii.gz")))


def assert_terms_finite(trainer, terms=("UFD", "IFD", "UPD", "IPD")) -> None:
    assert trainer.distiller.term_names == list(terms)
    for term in trainer.distiller.term_names:
        assert np.isfinite(trainer.logger.get_value(f"distill_{term}", step=-1)), term


@pytest.fixture(scope="module")
def regions_two_channels(nnunet_dirs, tmp_path_factory):
    raw = nnunet_dirs["nnUNet_raw"]
    dataset_id = derive_dataset(
        raw,
        REGIONS_DATASET_ID,
        "RegionsTwoChannels",
        {
            "channel_names": {"0": "CT", "1": "smoothedCT"},
            "labels": {"background": 0, "kidney_and_tumor": [1, 2], "tumor": [2]},
            "regions_class_order": [1, 2],
        },
        two_channels=True,
    )
    return distil_and_predict(dataset_id, raw, tmp_path_factory.mktemp("predicted_regions"))


@pytest.fixture(scope="module")
def sparse_labels(nnunet_dirs, tmp_path_factory):
    raw = nnunet_dirs["nnUNet_raw"]
    dataset_id = derive_dataset(
        raw,
        993,
        "SparseLabels",
        {"labels": {"background": 0, "kidney": 1, "tumor": 2, "ignore": IGNORE}},
        sparse_labels=True,
    )
    return distil_and_predict(dataset_id, raw, tmp_path_factory.mktemp("predicted_sparse"))


def test_region_dataset_distils_with_sigmoid_heads_and_predicts_labels(regions_two_channels):
    student, prediction = regions_two_channels
    geometry = student.distiller.geometry
    assert geometry.regions and geometry.num_classes == 2
    assert student.teacher.network.decoder.seg_layers[0].out_channels == 2
    assert_terms_finite(student)
    assert set(np.unique(prediction)) <= {0, 1, 2}


def test_two_input_channels_reach_teacher_and_student(regions_two_channels):
    student, prediction = regions_two_channels
    assert student.num_input_channels == 2
    first_conv = next(m for m in student.network.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == 2
    teacher_first_conv = next(m for m in student.teacher.network.modules() if isinstance(m, torch.nn.Conv2d))
    assert teacher_first_conv.in_channels == 2
    assert prediction.ndim == 3


@pytest.mark.parametrize(
    "method, terms",
    [
        ("nnUNetTrainerIFVD", ["IFVD", "IFVD_pixel", "IFVD_holistic"]),
        ("nnUNetTrainerEMKD", ["EMKD_PMD", "EMKD_IMD", "EMKD_RAD"]),
    ],
)
def test_peer_methods_that_read_the_labels_distil_a_region_dataset(
    regions_two_channels, nnunet_dirs, tmp_path, method, terms
):
    """Class prototypes (IFVD) and tumour regions (EMKD) from region masks, sigmoid heads throughout."""
    student = train_in_process(f"{method}_tiny", "2d", dataset_id=REGIONS_DATASET_ID)
    assert student.distiller.geometry.regions
    assert_terms_finite(student, terms)
    prediction = predict_one_validation_case(student, nnunet_dirs["nnUNet_raw"], tmp_path)
    assert set(np.unique(prediction)) <= {0, 1, 2}


def test_ignore_label_dataset_distils_and_never_predicts_the_ignore_label(sparse_labels):
    student, prediction = sparse_labels
    assert student.label_manager.ignore_label == IGNORE
    assert student.distiller.geometry.ignore_label == IGNORE
    checkpoint = torch.load(Path(student.output_folder) / "checkpoint_final.pth", weights_only=False)
    assert checkpoint["distillation"]["geometry"]["ignore_label"] == IGNORE
    assert_terms_finite(student)
    assert IGNORE not in np.unique(prediction)


def test_anisotropic_3d_fullres_with_a_non_isotropic_first_stride(nnunet_dirs, teacher_3d, tmp_path):
    student = train_in_process("nnUNetTrainerHLFD_tiny", "3d_fullres")
    strides = [tuple(s) for s in student.configuration_manager.pool_op_kernel_sizes]
    assert len(set(strides[1])) > 1, f"the plans' first downsampling {strides[1]} is isotropic"
    assert student.distiller.geometry.student.spatial_dims == 3
    assert_terms_finite(student)
    prediction = predict_one_validation_case(student, nnunet_dirs["nnUNet_raw"], tmp_path)
    assert prediction.ndim == 3 and set(np.unique(prediction)) <= {0, 1, 2}


def test_a_residual_encoder_teacher_teaches_a_student_trained_with_its_plans(nnunet_dirs, tmp_path):
    """A ResEnc teacher (nnU-Net's ResEnc-M planner): the student trains with `-p` of the teacher's plans."""
    plans = "nnUNetResEncUNetMPlans"
    plan_and_preprocess(DATASET_ID, ("2d",), planner="nnUNetPlannerResEncM", plans=plans, fingerprint=False)
    teacher = train_in_process("nnUNetTrainer", "2d", plans=plans)
    student = train_in_process("nnUNetTrainerHLFD_tiny", "2d", plans=plans)
    assert type(teacher.network).__name__ == "ResidualEncoderUNet"
    assert student.teacher.source.fold_folder == Path(teacher.output_folder)
    assert_terms_finite(student)
    prediction = predict_one_validation_case(student, nnunet_dirs["nnUNet_raw"], tmp_path)
    assert set(np.unique(prediction)) <= {0, 1, 2}
