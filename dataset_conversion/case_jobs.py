"""Running the cases of a conversion, in worker processes, with a progress bar: each case is checked and, unless
only checking, written; every case runs, and each returns its problems instead of raising."""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk
from nnunetv2_hlfd.dataset_conversion.dataset_spec import DatasetSpec
from nnunetv2_hlfd.dataset_conversion.discovery import Case
from nnunetv2_hlfd.dataset_conversion.label_layouts import LabelLayout
from nnunetv2_hlfd.dataset_conversion.volumes import (
    FILE_ENDING,
    IMAGE_SUFFIX,
    CaseProblem,
    copy_as_nii_gz,
    geometry_problems,
    read_volume,
    remapped_label,
    value_problems,
)

from nnunetv2_hlfd.utilities.progress_bar import progress_bar


@dataclass(frozen=True)
class CaseJob:
    case: Case
    source_labels: Mapping[int, str]
    mapping: Mapping[int, int]
    out_dir: Path | None  # None: validate only (--check)


def case_jobs(spec: DatasetSpec, layout: LabelLayout, cases: Iterable[Case], out_dir: Path | None) -> list[CaseJob]:
    return [CaseJob(case, spec.source_labels, layout.mapping, out_dir) for case in cases]


def run_case_jobs(jobs: list[CaseJob], num_processes: int) -> list[str]:
    """Run every case (none stops the others) and return all problems, each naming its case, in case order.
    A progress bar on stderr counts the cases done and failed so far, with an ETA."""
    results: list[list[str]] = [[] for _ in jobs]
    with contextlib.ExitStack() as stack:
        if num_processes <= 1 or len(jobs) <= 1:
            finished = map(_convert_indexed_case, enumerate(jobs))
        else:
            # spawn, as nnU-Net does: forking a parent that may hold torch or threads is unsafe
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(min(num_processes, len(jobs))))
            finished = pool.imap_unordered(_convert_indexed_case, enumerate(jobs), chunksize=1)
        checking = bool(jobs) and jobs[0].out_dir is None
        progress = stack.enter_context(
            progress_bar(
                finished,
                total=len(jobs),
                unit="case",
                postfix={"failed": 0},
                desc="checking cases" if checking else "converting cases",
            )
        )
        failed = 0
        for index, case_problems in progress:
            results[index] = case_problems
            if case_problems:
                failed += 1
                progress.set_postfix(failed=failed)
    return [problem for case_problems in results for problem in case_problems]


def _convert_indexed_case(indexed_job: tuple[int, CaseJob]) -> tuple[int, list[str]]:
    """_convert_case with the job's position, so results finishing out of order keep the case order."""
    index, job = indexed_job
    return index, _convert_case(job)


def _convert_case(job: CaseJob) -> list[str]:
    """Validate one case and, unless checking only, write it. Returns its problems instead of raising, so a
    worker process reports every case rather than the first exception."""
    case = job.case
    try:
        image = read_volume(case.image, "image")
        label = None if case.label is None else read_volume(case.label, "label")
        problems = (
            []
            if label is None
            else (geometry_problems(image, label) + value_problems(label, case.label, job.source_labels))
        )
        if problems or job.out_dir is None:
            return [f"{case.case_id}: {p}" for p in problems]
        images = job.out_dir / ("imagesTs" if label is None else "imagesTr")
        copy_as_nii_gz(case.image, images / f"{case.case_id}{IMAGE_SUFFIX}")
        if label is not None:
            written = remapped_label(label, image, job.mapping)
            sitk.WriteImage(written, str(job.out_dir / "labelsTr" / f"{case.case_id}{FILE_ENDING}"))
        return []
    except CaseProblem as exc:
        return [f"{case.case_id}: {exc}"]
    except Exception as exc:  # e.g. a full disk: still report it against the case
        return [f"{case.case_id}: unexpected {type(exc).__name__}: {exc}"]
