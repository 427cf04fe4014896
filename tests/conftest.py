"""Shared fixtures: one tiny generated dataset, planned and preprocessed once per session,
and one briefly trained teacher per configuration."""

import os
import sys
from pathlib import Path

import pytest
from nnunet_runs import DATASET_ID, DATASET_NAME, REPO, plan_and_preprocess, train_in_process

# the fixtures raw and kits19 of tests/dataset_conversion (found through pytest's pythonpath setting)
pytest_plugins = ["conversion_cases"]

EXT_TRAINERS = os.pathsep.join([str(REPO / "tests" / "ext_trainers"), str(REPO / "trainers")])

# Before nnU-Net is imported: one export worker (each spawned worker re-imports torch,
# which costs far more than tiny cases) and no compile.
os.environ.setdefault("nnUNet_def_n_proc", "1")
os.environ["nnUNet_compile"] = "0"
os.environ["nnUNet_extTrainer"] = EXT_TRAINERS


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests (pytestmark = pytest.mark.usefixtures("one_thread")): timed
    tests and parallel test runs do not fight over the cores."""
    from nnunetv2_hlfd.speed.step_time import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def nnunet_dirs(tmp_path_factory) -> dict[str, Path]:
    """nnU-Net's three folders for this session, with the tiny dataset planned for 2d and 3d_fullres."""
    from nnunetv2_hlfd.dataset_writers.synthetic import generate_synthetic_kidney_dataset

    root = tmp_path_factory.mktemp("nnunet")
    dirs = {name: root / name for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for name, path in dirs.items():
        path.mkdir()
        os.environ[name] = str(path)
    generate_synthetic_kidney_dataset(
        dirs["nnUNet_raw"], dataset_id=DATASET_ID, num_training_cases=10, shape=(16, 48, 48), seed=0
    )
    plan_and_preprocess(DATASET_ID, ("2d", "3d_fullres"))
    return dirs


@pytest.fixture(scope="session")
def teacher_2d(nnunet_dirs) -> Path:
    trainer = train_in_process("nnUNetTrainer", "2d")
    return Path(trainer.output_folder)


@pytest.fixture(scope="session")
def teacher_3d(nnunet_dirs) -> Path:
    trainer = train_in_process("nnUNetTrainer", "3d_fullres")
    return Path(trainer.output_folder)


@pytest.fixture
def python_executable() -> str:
    return sys.executable


@pytest.fixture
def rewritable_splits(nnunet_dirs):
    """splits_final.json of the session's dataset, restored after the test."""
    path = nnunet_dirs["nnUNet_preprocessed"] / DATASET_NAME / "splits_final.json"
    original = path.read_text()
    yield path
    path.write_text(original)
