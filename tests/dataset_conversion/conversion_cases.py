"""Tiny synthetic CT cases in the public KiTS and LiTS layouts, for the dataset-conversion tests.

Plain helpers, imported by name (``from conversion_cases import make_kits_case``), and the fixtures ``raw`` and
``kits19``, which tests/conftest.py registers as a plugin (``pytest_plugins``), so test modules only name them as
arguments. (Not a tests/dataset_conversion/conftest.py: a second module named ``conftest`` would shadow the
one that the other test modules import names from.)"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

SHAPE = (8, 32, 32)  # z, y, x
# A non-trivial grid (anisotropic, shifted, axes permuted and flipped like KiTS19's) so that geometry that is
# not copied exactly shows up.
GEOMETRY = {
    "spacing": (0.8, 0.7, 2.5),
    "origin": (-120.5, 33.25, 10.0),
    "direction": (0.0, 0.0, -1.0, 0.0, -1.0, 0.0, -1.0, 0.0, 0.0),
}


def write_volume(
    path: Path,
    array: np.ndarray,
    spacing=GEOMETRY["spacing"],
    origin=GEOMETRY["origin"],
    direction=GEOMETRY["direction"],
) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def ct_array(seed: int = 0, shape=SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 1500, size=shape, dtype=np.int16)


def label_array(values=(0, 1, 2), shape=SHAPE) -> np.ndarray:
    """Organ block with a tumour inside it and, if 3 is among ``values``, a cyst; other values get a voxel each."""
    label = np.zeros(shape, dtype=np.uint8)
    label[1:7, 4:28, 4:28] = 1 if 1 in values else 0
    label[2:5, 8:14, 8:14] = 2 if 2 in values else 0
    if 3 in values:
        label[2:5, 18:24, 18:24] = 3
    for i, extra in enumerate(v for v in values if v not in (0, 1, 2, 3)):
        label[0, 0, i] = extra
    return label


def make_kits_case(
    root: Path,
    case: int,
    label_name: str | None = "segmentation.nii.gz",
    label_values=(0, 1, 2),
    image_ext: str = ".nii.gz",
    label=None,
    **geometry,
) -> Path:
    """case_XXXXX/imaging<ext> (+ label_name unless None); returns the case folder."""
    folder = root / f"case_{case:05d}"
    write_volume(folder / f"imaging{image_ext}", ct_array(case), **geometry)
    if label_name is not None:
        write_volume(folder / label_name, label_array(label_values) if label is None else label, **geometry)
    return folder


def make_lits_case(folder: Path, n: int, ext: str = ".nii", label_values=(0, 1, 2)) -> None:
    write_volume(folder / f"volume-{n}{ext}", ct_array(n))
    write_volume(folder / f"segmentation-{n}{ext}", label_array(label_values))


def read(path: Path) -> sitk.Image:
    return sitk.ReadImage(str(path))


def array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(read(path))


def geometry(image: sitk.Image) -> tuple:
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def leftovers(raw: Path) -> list[str]:
    """Everything in the nnU-Net raw folder: after a refused or failed run this must be empty."""
    return sorted(p.name for p in raw.iterdir()) if raw.exists() else []


class _SerialPool:
    """Stands in for multiprocessing's Pool so nnU-Net's integrity check runs in this process: the same checks,
    without a spawned interpreter that imports torch (about 7 s per call)."""

    def __init__(self, processes=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def starmap(self, func, iterable):
        return list(itertools.starmap(func, iterable))


def verify_integrity_in_process(folder: Path, monkeypatch) -> None:
    """nnunetv2's verify_dataset_integrity(folder), run serially in this process; raises on any problem."""
    from nnunetv2.experiment_planning import verify_dataset_integrity as module

    monkeypatch.setattr(module.multiprocessing, "get_context", lambda method=None: SimpleNamespace(Pool=_SerialPool))
    module.verify_dataset_integrity(str(folder), num_processes=1)


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    """An empty nnUNet_raw folder."""
    folder = tmp_path / "nnUNet_raw"
    folder.mkdir()
    return folder


@pytest.fixture
def kits19(tmp_path: Path) -> Path:
    """Three KiTS19 case folders, each with image and label."""
    root = tmp_path / "kits19"
    for case in range(3):
        make_kits_case(root, case)
    return root


def pause_after_a_case(marker: Path) -> str:
    """Source for a conversion subprocess: case_jobs._convert_case touches ``marker`` after a case, then waits,
    so the test can interrupt or kill the run with a case written."""
    return textwrap.dedent(f"""
        convert_case = case_jobs._convert_case
        def convert_then_wait(job):
            problems = convert_case(job)
            Path({str(marker)!r}).touch()
            time.sleep(120)
            return problems
        case_jobs._convert_case = convert_then_wait
    """)
