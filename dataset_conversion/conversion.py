"""One conversion: check the options and the target, find the cases, check every case, and write the dataset
atomically (see nnunetv2_hlfd.dataset_writers.raw_dataset) only when every case succeeds."""

from __future__ import annotations

import os
from pathlib import Path

from nnunetv2.configuration import default_num_processes
from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json
from nnunetv2_hlfd.dataset_conversion.case_jobs import case_jobs, run_case_jobs
from nnunetv2_hlfd.dataset_conversion.conversion_error import ConversionError
from nnunetv2_hlfd.dataset_conversion.dataset_spec import DatasetSpec
from nnunetv2_hlfd.dataset_conversion.discovery import Case, Discovery
from nnunetv2_hlfd.dataset_conversion.label_layouts import LabelLayout, label_layout
from nnunetv2_hlfd.dataset_conversion.volumes import FILE_ENDING

from nnunetv2_hlfd.dataset_writers.raw_dataset import (
    atomically_written,
    dataset_folder,
    dataset_folder_problems,
    pending_restore_problems,
    recover_interrupted_runs,
    target_problems,
)


def convert(
    spec: DatasetSpec,
    input_folder: str | os.PathLike,
    nnunet_raw: str | os.PathLike | None = None,
    dataset_id: int | None = None,
    dataset_name: str | None = None,
    *,
    labels: str = "full",
    cysts: str | None = None,
    overwrite: bool = False,
    check: bool = False,
    num_processes: int = default_num_processes,
) -> Path | list[str]:
    """Convert ``input_folder`` into ``<nnunet_raw>/DatasetXXX_Name`` and return that path.

    With ``check=True`` nothing is written; the list of all problems is returned (empty when conversion would
    succeed). Otherwise any problem raises :class:`ConversionError` listing every problem found, and the target
    is left as it was. Invalid options (labels/cysts, id, name, no nnunet_raw) always raise.
    """
    layout = label_layout(spec, labels, cysts)
    naming = (
        nnunet_raw,
        spec.dataset_id if dataset_id is None else dataset_id,
        spec.name if dataset_name is None else dataset_name,
    )
    if problems := dataset_folder_problems(*naming):
        raise ConversionError(problems)
    target = dataset_folder(*naming)
    if not check:  # --check writes nothing, so it leaves the leftovers too, and reports what recovery would restore
        recover_interrupted_runs(target)
    problems = target_problems(target, overwrite) + (pending_restore_problems(target, overwrite) if check else [])
    if problems and not check:
        raise ConversionError(problems, headline=f"refusing to write {target}:")
    discovery = _discover(spec, Path(input_folder))
    problems += discovery.problems
    if check or problems:
        # validate the complete cases as well, so that the report lists every problem, not just the first kind
        problems += run_case_jobs(case_jobs(spec, layout, discovery.cases, None), num_processes)
        if check:
            return problems
        raise ConversionError(problems, headline=f"{len(problems)} problem(s) in {input_folder}; nothing written:")
    with atomically_written(target, overwrite) as folder:
        _write_dataset(
            spec,
            layout,
            discovery.cases,
            folder,
            target,
            num_processes,
            description=f"{spec.name}, labels={labels}, cysts={cysts}",
        )
    return target


def _discover(spec: DatasetSpec, folder: Path) -> Discovery:
    if not folder.is_dir():
        return Discovery(problems=[f"{folder}: input folder does not exist; pass the extracted {spec.name} data"])
    discovery = spec.discover(folder)
    if not any(case.label is not None for case in discovery.cases) and not discovery.problems:
        discovery.problems.append(f"{folder}: no {spec.name} training cases found; expected {spec.layout}")
    return discovery


def _write_dataset(
    spec: DatasetSpec,
    layout: LabelLayout,
    cases: list[Case],
    folder: Path,
    target: Path,
    num_processes: int,
    description: str,
) -> None:
    """Every case and dataset.json into ``folder``, the temporary folder that becomes ``target``."""
    for sub in ("imagesTr", "labelsTr") + (("imagesTs",) if any(c.label is None for c in cases) else ()):
        (folder / sub).mkdir()
    problems = run_case_jobs(case_jobs(spec, layout, cases, folder), num_processes)
    if problems:
        raise ConversionError(problems, headline=f"{len(problems)} case(s) failed; nothing written to {target}:")
    training = sum(case.label is not None for case in cases)
    generate_dataset_json(
        str(folder),
        {0: "CT"},
        labels=dict(layout.labels),
        num_training_cases=training,
        file_ending=FILE_ENDING,
        regions_class_order=layout.regions_class_order,
        dataset_name=target.name.split("_", 1)[1],
        reference=spec.reference,
        license=spec.licence,
        description=description,
        converted_by="nnunetv2_hlfd.dataset_conversion",
        # provenance: which source label became which written value
        source_label_mapping={spec.source_labels[src]: dst for src, dst in layout.mapping.items()},
    )
