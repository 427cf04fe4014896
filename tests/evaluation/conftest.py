"""Fixtures of the benchmark tests: Dataset991's preprocessed ground truth with its own split, and model folders
made from it (benchmark_inputs.py)."""

import json
import shutil
from pathlib import Path

import pytest
from benchmark_inputs import ENDING, benchmark, teacher_and_student
from nnunet_runs import DATASET_NAME


@pytest.fixture(scope="module")
def preprocessed_root(nnunet_dirs, tmp_path_factory) -> Path:
    """Dataset991's preprocessed metadata and ground truth, with its own five-fold split."""
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    source = nnunet_dirs["nnUNet_preprocessed"] / DATASET_NAME
    root = tmp_path_factory.mktemp("benchmark_preprocessed")
    target = root / DATASET_NAME
    target.mkdir()
    for name in ("dataset.json", "nnUNetPlans.json"):
        shutil.copy(source / name, target / name)
    shutil.copytree(source / "gt_segmentations", target / "gt_segmentations")
    cases = sorted(p.name[: -len(ENDING)] for p in (target / "gt_segmentations").glob(f"*{ENDING}"))
    (target / "splits_final.json").write_text(json.dumps(generate_crossval_split(cases, seed=12345, n_splits=5)))
    return root


@pytest.fixture
def results_root(tmp_path, preprocessed_root) -> Path:
    """`teacher_and_student` for a test to alter."""
    return teacher_and_student(tmp_path / "results", preprocessed_root)


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory, preprocessed_root) -> tuple[Path, Path]:
    """(results root, output folder) of one standard benchmark of `teacher_and_student`, for tests that only read."""
    folder = tmp_path_factory.mktemp("benchmark_shared")
    results = teacher_and_student(folder / "results", preprocessed_root)
    return results, benchmark(preprocessed_root, results, folder)


@pytest.fixture
def plans_slicing_axis_1(preprocessed_root, tmp_path) -> Path:
    """The preprocessed dataset with plans whose 2d configuration slices array axis 1."""
    root = tmp_path / "preprocessed"
    shutil.copytree(preprocessed_root, root)
    plans_file = root / DATASET_NAME / "nnUNetPlans.json"
    plans = json.loads(plans_file.read_text())
    plans["transpose_forward"] = plans["transpose_backward"] = [1, 0, 2]
    plans_file.write_text(json.dumps(plans))
    return root
