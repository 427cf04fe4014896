"""Which dataset a study means, checked before anything runs.

nnU-Net takes any name starting with `Dataset` as given, and its planning commands take the id alone, so a
mistyped `Dataset991_Typo` would re-plan (and overwrite the plans of) the real Dataset991_... . A study
therefore names only a dataset that exists, and plans only a dataset that its id names unambiguously.
"""

from __future__ import annotations

from pathlib import Path

from nnunetv2_hlfd.utilities.environment import temporary_environment
from nnunetv2_hlfd.utilities.problems import UserFacingError

__all__ = ["check_plannable", "existing_datasets", "resolve_dataset"]

# where a study's dataset may be: raw (to plan it) or preprocessed (planned already)
DATASET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed")


def existing_datasets(environment: dict[str, str], folders: tuple[str, ...] = DATASET_FOLDERS) -> list[str]:
    """The `Dataset...` folders in nnU-Net's raw and preprocessed folders, sorted."""
    names = set()
    for variable in folders:
        root = Path(environment[variable])
        if root.is_dir():
            names |= {p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("Dataset")}
    return sorted(names)


def _id_of(name_or_id: str) -> int | None:
    digits = name_or_id.removeprefix("Dataset")[:3] if name_or_id.startswith("Dataset") else name_or_id
    return int(digits) if digits.isdigit() else None


def _where(environment: dict[str, str]) -> str:
    return " or ".join(f"{v} ({environment[v]})" for v in DATASET_FOLDERS)


def resolve_dataset(dataset: str, environment: dict[str, str]) -> str:
    """The dataset folder name `dataset` (a name or an id) stands for; refused, naming what exists,
    when no such dataset is in nnUNet_raw or nnUNet_preprocessed, or when its id names several."""
    existing = existing_datasets(environment)
    if dataset in existing:
        return dataset
    dataset_id = _id_of(dataset.strip())
    same_id = [n for n in existing if dataset_id is not None and _id_of(n) == dataset_id]
    if not dataset.startswith("Dataset") and len(same_id) == 1:
        return same_id[0]
    if len(same_id) > 1 and not dataset.startswith("Dataset"):
        raise UserFacingError(
            f"dataset id {dataset} names {len(same_id)} datasets ({', '.join(same_id)}) in {_where(environment)}; "
            f"give the full name with -d, or rename one of them (nnU-Net needs ids to be unique)"
        )
    if same_id:
        hint = f"with id {dataset_id:03d} there is {', '.join(same_id)}: did you mean -d {same_id[0]}?"
    elif existing:
        hint = f"the datasets there are {', '.join(existing)}"
    else:
        hint = "there are no datasets there; convert or copy yours there first (see the README)"
    raise UserFacingError(f"dataset {dataset!r} is not in {_where(environment)}; {hint}")


def check_plannable(dataset: str, environment: dict[str, str]) -> None:
    """Refuse to run nnU-Net's planning or preprocessing (which take the id only) unless the id of
    `dataset` names it alone, and planning can read its raw data."""
    from nnunetv2.utilities.dataset_name_id_conversion import find_candidate_datasets

    dataset_id = _id_of(dataset)
    if dataset_id is None:
        raise UserFacingError(
            f"dataset {dataset!r} has no id (nnU-Net names datasets DatasetXXX_Name, XXX three digits); "
            f"rename it so nnU-Net can plan it"
        )
    with temporary_environment(**{v: environment[v] for v in (*DATASET_FOLDERS, "nnUNet_results")}):
        candidates = [str(c) for c in find_candidate_datasets(dataset_id)]
    others = [c for c in candidates if c != dataset]
    if others:
        raise UserFacingError(
            f"{dataset} would be planned by its id {dataset_id:03d}, which also names {', '.join(others)} "
            f"in nnUNet_raw, nnUNet_preprocessed or nnUNet_results; nnU-Net cannot tell them apart. Give each "
            f"dataset its own id, then rerun"
        )
    raw = Path(environment["nnUNet_raw"]) / dataset
    if not (raw / "dataset.json").is_file():
        raise UserFacingError(
            f"{dataset} has no plans for this study and cannot be planned: {raw / 'dataset.json'} does not exist. "
            f"Put its raw data in nnUNet_raw, or plan it yourself (nnUNetv2_plan_and_preprocess -d {dataset_id})"
        )
