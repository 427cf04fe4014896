"""The deployment comparison's held-out test set: its files read as nnU-Net names them, and every
problem with them (misnamed or missing files, images without labels and labels without images, test
cases that are training cases by name or by content, labels that are unreadable, hold values outside
dataset.json or lie on another grid than their image) as `DeploymentError`'s problem list."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunetv2_hlfd.dataset_writers.volume_files import failure_reason, read_to_the_end
from nnunetv2_hlfd.evaluation.label_maps import (
    Segmentation,
    grid_problems,
    image_geometry,
    read_segmentation,
    reference_values,
    value_problems,
)
from nnunetv2_hlfd.evaluation.model_folders import BenchmarkDataset, BenchmarkInputError, read_json
from nnunetv2_hlfd.utilities.problems import ProblemListError, first_and_more

_MAX_NAMED = 10
_CHANNEL_FILE = re.compile(r"(?P<case>.+)_(?P<channel>\d{4})")


class DeploymentError(ProblemListError):
    """The deployment comparison cannot run on these inputs; each problem names what is wrong and the fix."""


def _name_some(names) -> str:
    return first_and_more(sorted(map(str, names)), _MAX_NAMED)


@dataclass(frozen=True)
class HeldOutSet:
    """The test cases: each case's channel files (in channel order) and its label."""

    images: Path
    labels: Path
    file_ending: str
    cases: dict[str, tuple[Path, ...]]

    def label_file(self, case: str) -> Path:
        return self.labels / f"{case}{self.file_ending}"


def _visible_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def read_held_out_set(images: Path, labels: Path, dataset: BenchmarkDataset) -> tuple[HeldOutSet, list[str]]:
    """The test set as nnU-Net names files (`<case>_0000<file_ending>` ..., `<case><file_ending>`), and
    every problem with it: misnamed files, missing channels, images without labels, labels without
    images, no images at all."""
    ending = dataset.file_ending
    channels = len(dataset.dataset_json.get("channel_names", dataset.dataset_json.get("modality", {"0": ""})))
    image_names = f"<case>_0000{ending}" + (f" ... <case>_{channels - 1:04d}{ending}" if channels > 1 else "")
    problems = [
        f"{option} {folder} is not a folder; point {option} at the {what}"
        for option, folder, what in (("-i", images, "test images"), ("-l", labels, "test labels"))
        if not folder.is_dir()
    ]
    if problems:
        return HeldOutSet(images, labels, ending, {}), problems
    by_case: dict[str, dict[int, Path]] = {}
    misnamed = []
    for path in _visible_files(images):
        match = _CHANNEL_FILE.fullmatch(path.name[: -len(ending)]) if path.name.endswith(ending) else None
        if match is None or int(match["channel"]) >= channels:
            misnamed.append(path.name)
        else:
            by_case.setdefault(match["case"], {})[int(match["channel"])] = path
    if misnamed:
        problems.append(
            f"{images} holds files that are not test images of {dataset.name} as nnU-Net names them "
            f"({image_names}, {channels} channel(s) as its dataset.json has): {_name_some(misnamed)}; "
            f"rename them or move them out"
        )
    for case, files in sorted(by_case.items()):
        missing = [f"{case}_{channel:04d}{ending}" for channel in range(channels) if channel not in files]
        if missing:
            problems.append(f"test case {case} lacks the image file(s) {', '.join(missing)} in {images}")
    if not by_case and not misnamed:
        problems.append(f"{images} holds no test images ({image_names}); point -i at the held-out test images")
    label_cases, misnamed_labels = set(), []
    for path in _visible_files(labels):
        if path.name.endswith(ending):
            label_cases.add(path.name[: -len(ending)])
        else:
            misnamed_labels.append(path.name)
    if misnamed_labels:
        problems.append(
            f"{labels} holds files that are not labels of {dataset.name} (<case>{ending}): "
            f"{_name_some(misnamed_labels)}; rename them or move them out"
        )
    if unlabelled := set(by_case) - label_cases:
        problems.append(
            f"the test images of {_name_some(unlabelled)} have no label in {labels} (<case>{ending}): every "
            f"test case is scored; add their labels, or move the images out of {images}"
        )
    if without_image := label_cases - set(by_case):
        problems.append(
            f"the labels {_name_some(without_image)} in {labels} have no image in {images} "
            f"(<case>_0000{ending}); add the images, or move the labels out"
        )
    cases = {case: tuple(files[c] for c in sorted(files)) for case, files in sorted(by_case.items())}
    return HeldOutSet(images, labels, ending, cases), problems


def training_cases(dataset: BenchmarkDataset, raw_root: Path | None) -> dict[str, set[str]]:
    """{where it was read: the case identifiers} of every case the dataset trains on: the train and
    val lists of every fold in splits_final.json, the raw dataset's imagesTr, and the ground truth
    nnU-Net's preprocessing kept (whichever exist)."""
    from nnunetv2.utilities.utils import get_identifiers_from_splitted_dataset_folder

    ending = dataset.file_ending
    sources = {}
    splits = dataset.preprocessed / "splits_final.json"
    if splits.is_file():
        folds = read_json(splits)
        sources[str(splits)] = {case for split in folds for key in ("train", "val") for case in split[key]}
    images_tr = Path(raw_root) / dataset.name / "imagesTr" if raw_root else None
    if images_tr is not None and images_tr.is_dir():
        sources[str(images_tr)] = set(get_identifiers_from_splitted_dataset_folder(str(images_tr), ending))
    if dataset.ground_truth.is_dir():
        sources[str(dataset.ground_truth)] = {
            p.name[: -len(ending)] for p in dataset.ground_truth.iterdir() if p.name.endswith(ending)
        }
    return sources


def held_out_problems(held_out: HeldOutSet, training: dict[str, set[str]], dataset: BenchmarkDataset) -> list[str]:
    trained_on = set(held_out.cases) & set().union(*training.values())
    if not trained_on:
        return []
    where = ", ".join(source for source, cases in training.items() if cases & trained_on)
    return [
        f"the test cases {_name_some(trained_on)} are training cases of {dataset.name} (by their names, in "
        f"{where}): they are not held out, since the dataset's models train on its training cases. Test on cases "
        f"none of the models trained on; if these are other cases that only share a training case's name, rename "
        f"their images and labels"
    ]


# --- content: a training case under another name ----------------------------------------


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def array_digest(array: np.ndarray) -> str:
    """The voxels, whatever file they were saved in: dtype, shape and bytes."""
    array = np.ascontiguousarray(array)
    return hashlib.sha256(f"{array.dtype.str}{array.shape}".encode() + array.tobytes()).hexdigest()


def header_shape(path: Path) -> tuple[int, ...] | None:
    """The voxel grid's size from the header alone (SimpleITK), None where it cannot be read so."""
    import SimpleITK as sitk

    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        return tuple(reader.GetSize())
    except RuntimeError:
        return None


def content_matches(test_files: Iterable[Path], training_files: Iterable[Path], read_array) -> list[tuple[Path, Path]]:
    """(test file, training file) pairs with the same bytes or the same voxels. Only training files of a
    test file's size are hashed, and only those of a test file's grid are read (`read_array`)."""
    test_files, training_files = list(test_files), list(training_files)
    by_size = {path.stat().st_size for path in test_files}
    file_hashes = {file_digest(path): path for path in test_files}
    matches = {}
    for training in training_files:
        if training.stat().st_size in by_size and (test := file_hashes.get(file_digest(training))):
            matches[training] = test
    shapes = {header_shape(path) for path in test_files}
    array_hashes = {array_digest(read_array(path)): path for path in test_files}
    for training in training_files:
        if training not in matches and (None in shapes or header_shape(training) in shapes):
            if test := array_hashes.get(array_digest(read_array(training))):
                matches[training] = test
    return sorted((test, training) for training, test in matches.items())


def training_files(dataset: BenchmarkDataset, raw_root: Path | None) -> dict[str, list[Path]]:
    """{"images": the raw dataset's imagesTr files, "labels": its labelsTr files and the ground truth
    nnU-Net's preprocessing kept}: what a test file must not be a copy of."""
    ending = dataset.file_ending
    folders = {"images": [], "labels": [dataset.ground_truth]}
    if raw_root is not None:
        folders["images"].append(Path(raw_root) / dataset.name / "imagesTr")
        folders["labels"].append(Path(raw_root) / dataset.name / "labelsTr")
    return {
        kind: [p for folder in paths if folder.is_dir() for p in _visible_files(folder) if p.name.endswith(ending)]
        for kind, paths in folders.items()
    }


def copied_training_cases(
    held_out: HeldOutSet, training: dict[str, list[Path]], dataset: BenchmarkDataset
) -> list[str]:
    """A test image or label with the bytes or voxels of a training file: a training case under a new name."""
    reader = dataset.plans_manager.image_reader_writer_class()
    readers = {
        "images": lambda path: reader.read_images([str(path)])[0],
        "labels": lambda path: reader.read_seg(str(path))[0],
    }
    tests = {
        "images": [f for files in held_out.cases.values() for f in files],
        "labels": [held_out.label_file(case) for case in held_out.cases if held_out.label_file(case).is_file()],
    }
    problems = []
    for kind in ("images", "labels"):
        try:
            matches = content_matches(tests[kind], training[kind], readers[kind])
        except Exception:  # an unreadable file is named by the label and image checks
            continue
        problems += [
            f"the test file {test} has the same content (file bytes or voxels) as the training file {copy} of "
            f"{dataset.name}: it is a training case under another name, not held out; test on cases none of "
            f"the models trained on"
            for test, copy in matches
        ]
    return problems


# --- the labels, checked before anything is predicted -------------------------------------


def label_problems(held_out: HeldOutSet, dataset: BenchmarkDataset) -> list[str]:
    """Every label is readable to its end, holds only labels of dataset.json (or its ignore label) and lies on
    its image's grid (shape, spacing, origin, direction or affine)."""
    reader = dataset.plans_manager.image_reader_writer_class()
    allowed = reference_values(dataset.label_manager.all_labels, dataset.label_manager.ignore_label)
    problems = []
    for case, files in held_out.cases.items():
        path = held_out.label_file(case)
        if not path.is_file():
            continue  # named among the unpaired files
        try:
            label = read_segmentation(path, reader, "copy or export the label again")
        except BenchmarkInputError as error:
            problems += error.problems
            continue
        try:
            read_to_the_end(files[0])
            image, properties = reader.read_images([str(files[0])])
        except Exception as error:
            problems.append(
                f"cannot read {files[0]} ({failure_reason(error)}): the file is damaged or truncated; copy it again"
            )
            continue
        problems += value_problems(
            label.array, allowed, path, "the label", dataset.name, f"fix it or remove test case {case}"
        )
        problems += grid_problems(
            label,
            Segmentation(image[0], image_geometry(properties)),
            path,
            "the label",
            f"its image {files[0]}",
            f"resample or export it on the image's grid, or remove test case {case}",
        )
    return problems
