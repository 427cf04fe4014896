"""Finding a dataset's cases on disk: each complete case, and a problem line for each incomplete or duplicate one."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

_CASE_FOLDER = re.compile(r"case_(\d{5})")
_NIFTI = re.compile(r"(?P<stem>.+)\.nii(?:\.gz)?")


@dataclass(frozen=True)
class Case:
    case_id: str
    image: Path
    label: Path | None  # None: an image-only (test) case, written to imagesTs


@dataclass
class Discovery:
    """What a dataset's discovery found: the complete cases, and a problem line for each incomplete one."""

    cases: list[Case] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(
        self,
        case_id: str,
        images: Sequence[Path],
        labels: Sequence[Path] | None,
        expected_image: str,
        expected_label: str = "",
    ) -> None:
        """Record one case from the candidate files found for it; ``labels=None`` marks an image-only case."""
        image = self._single(case_id, "image", images, expected_image)
        label = None if labels is None else self._single(case_id, "label", labels, expected_label)
        if image is not None and (labels is None or label is not None):
            self.cases.append(Case(case_id, image, label))

    def _single(self, case_id: str, role: str, candidates: Sequence[Path], expected: str) -> Path | None:
        if not candidates:
            self.problems.append(
                f"{case_id}: {role} file missing (expected {expected}); "
                f"add it, or move the case out of the input folder"
            )
            return None
        if len(candidates) > 1:
            found = ", ".join(str(p) for p in candidates)
            self.problems.append(
                f"{case_id}: duplicate case, its {role} was found {len(candidates)} times "
                f"({found}); keep exactly one copy"
            )
            return None
        return candidates[0]


def niftis_by_stem(folder: Path) -> dict[str, list[Path]]:
    """NIfTI files directly in ``folder``, grouped by name without .nii/.nii.gz (both may exist: a duplicate)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        match = _NIFTI.fullmatch(path.name)
        if match and path.is_file():
            found.setdefault(match["stem"], []).append(path)
    return found


def discover_case_folders(folder: Path, label_stem: str, first_image_only_case: int | None = None) -> Discovery:
    """The KiTS layout: ``case_XXXXX/imaging.nii.gz`` plus ``case_XXXXX/<label_stem>.nii.gz``.

    Cases numbered ``first_image_only_case`` and above have no label (KiTS19's test cases) and go to imagesTs.
    Subfolders of a case (KiTS21's ``segmentations/``, KiTS23's ``instances/``) are per-rater files we ignore.
    """
    discovery = Discovery()
    for case_dir in sorted(p for p in folder.iterdir() if p.is_dir() and _CASE_FOLDER.fullmatch(p.name)):
        files = niftis_by_stem(case_dir)
        image_only = first_image_only_case is not None and int(case_dir.name[5:]) >= first_image_only_case
        discovery.add(
            case_dir.name,
            files.get("imaging", []),
            None if image_only else files.get(label_stem, []),
            expected_image=str(case_dir / "imaging.nii.gz"),
            expected_label=str(case_dir / f"{label_stem}.nii.gz"),
        )
    return discovery
