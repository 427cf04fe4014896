"""The deployment comparison's held-out test set: its files read as nnU-Net names them, and every
problem with them (misnamed or missing files, images without labels and labels without images, test
cases that are training cases, a label that is not its image's) as `DeploymentError`'s problem list."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_hlfd.environment import UserFacingError
from nnunetv2_hlfd.evaluation.model_folders import BenchmarkDataset
from nnunetv2_hlfd.problems import ProblemListError, first_and_more

_MAX_NAMED = 10
_CHANNEL_FILE = re.compile(r"(?P<case>.+)_(?P<channel>\d{4})")


class DeploymentError(ProblemListError, UserFacingError):
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
        folds = json.loads(splits.read_text())
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


def check_label_grid(reader, held_out: HeldOutSet, case: str, shape: tuple[int, ...]) -> None:
    label, _ = reader.read_seg(str(held_out.label_file(case)))
    if tuple(label.shape[1:]) != tuple(shape):
        raise DeploymentError(
            f"the label {held_out.label_file(case)} has shape {tuple(label.shape[1:])} but its image has "
            f"{tuple(shape)}: it is not this image's label; fix or remove test case {case}"
        )
