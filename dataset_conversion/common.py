"""Shared machinery for converting CT datasets into nnU-Net v2 raw datasets.

A dataset module (kits19.py, kits21.py, kits23.py, lits.py) only declares a :class:`DatasetSpec`: where the
cases are, which label values the source files use, and the defaults. Everything else lives here:

* discovery results (:class:`Case`, :class:`Discovery`), with missing and duplicate files reported per case;
* validation of one case: readable and complete files, 3-D volumes, image and label on the same grid, label
  values within the documented set;
* the label layouts (``full``, ``tumour``, and nnU-Net's KiTS23 ``regions``) and the remapping to uint8;
* writing: everything goes into a hidden temporary folder next to the target, which is renamed into place only
  when every case succeeded, so a failed or interrupted run never leaves a partial dataset behind; what a killed
  run could not clean up itself (SIGKILL, power loss) the next run into the same target cleans up;
* the shared command-line options, and a progress bar (cases done, failures so far, ETA) while cases run.
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import logging
import multiprocessing
import os
import re
import secrets
import shutil
import socket
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import nibabel
import numpy as np
import SimpleITK as sitk
from nnunetv2.configuration import default_num_processes
from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json
from tqdm import tqdm

CYST_CHOICES = ("keep", "kidney", "drop")
IMAGE_SUFFIX = "_0000.nii.gz"  # one CT channel
FILE_ENDING = ".nii.gz"
GEOMETRY_TOLERANCE = 1e-4  # relative for spacing, absolute (mm, cosines) for origin and direction

_CASE_FOLDER = re.compile(r"case_(\d{5})")
_NIFTI = re.compile(r"(?P<stem>.+)\.nii(?:\.gz)?")

logger = logging.getLogger(__name__)


class ConversionError(Exception):
    """A conversion cannot go ahead. Each problem names the case (or folder) and says how to fix it."""

    def __init__(self, problems: str | Sequence[str], summary: str | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if summary is None and len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = "\n".join([summary or f"{len(self.problems)} problems:"] + [f"  - {p}" for p in self.problems])
        super().__init__(message)


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

    def add(self, case_id: str, images: Sequence[Path], labels: Sequence[Path] | None,
            expected_image: str, expected_label: str = "") -> None:
        """Record one case from the candidate files found for it; ``labels=None`` marks an image-only case."""
        image = self._single(case_id, "image", images, expected_image)
        label = None if labels is None else self._single(case_id, "label", labels, expected_label)
        if image is not None and (labels is None or label is not None):
            self.cases.append(Case(case_id, image, label))

    def _single(self, case_id: str, role: str, candidates: Sequence[Path], expected: str) -> Path | None:
        if not candidates:
            self.problems.append(f"{case_id}: {role} file missing (expected {expected}); "
                                 f"add it, or move the case out of the input folder")
            return None
        if len(candidates) > 1:
            found = ", ".join(str(p) for p in candidates)
            self.problems.append(f"{case_id}: duplicate case, its {role} was found {len(candidates)} times "
                                 f"({found}); keep exactly one copy")
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
        discovery.add(case_dir.name, files.get("imaging", []), None if image_only else files.get(label_stem, []),
                      expected_image=str(case_dir / "imaging.nii.gz"),
                      expected_label=str(case_dir / f"{label_stem}.nii.gz"))
    return discovery


@dataclass(frozen=True)
class DatasetSpec:
    """Declaration of one source dataset; the source label values are 0 background, 1 organ, 2 tumour, 3 cyst."""

    name: str  # default dataset name, as in DatasetXXX_<name>
    dataset_id: int  # default dataset id
    organ: str
    has_cysts: bool
    discover: Callable[[Path], Discovery]
    layout: str  # one line describing the expected input, for --help and the empty-folder error
    reference: str
    licence: str
    label_layouts: tuple[str, ...] = ("full", "tumour")

    @property
    def source_labels(self) -> dict[int, str]:
        labels = {0: "background", 1: self.organ, 2: "tumour"}
        return {**labels, 3: "cyst"} if self.has_cysts else labels


@dataclass(frozen=True)
class LabelLayout:
    labels: dict[str, int | tuple[int, ...]]  # dataset.json "labels"
    mapping: dict[int, int]  # source value -> written value
    regions_class_order: tuple[int, ...] | None = None


# nnU-Net's own KiTS23 regions (nnunetv2/dataset_conversion/Dataset220_KiTS2023.py): the source labels are kept
# and trained as nested regions; regions_class_order turns predicted regions back into 1 kidney, 2 tumour, 3 cyst.
KITS23_REGIONS = LabelLayout(labels={"background": 0, "kidney": (1, 2, 3), "masses": (2, 3), "tumor": 2},
                             mapping={0: 0, 1: 1, 2: 2, 3: 3}, regions_class_order=(1, 3, 2))


def label_layout(spec: DatasetSpec, labels: str, cysts: str | None) -> LabelLayout:
    """The labels written for ``--labels`` / ``--cysts``; refuses combinations that would be ambiguous.

    Where the dataset has cysts (KiTS21/23), ``full`` and ``tumour`` need an explicit ``cysts``: no silent default.

    full:    background 0, organ 1, tumour 2; cysts keep -> 3, kidney -> 1, drop -> 0.
    tumour:  the paper's protocol, tumour 1 against everything else; cysts keep -> 2, kidney or drop -> 0.
    regions: KiTS23 only, nnU-Net's region layout; it keeps the cysts, so only ``cysts`` None or 'keep'.
    """
    if labels not in spec.label_layouts:
        raise ConversionError(f"labels={labels!r} is not offered for {spec.name}; "
                              f"choose one of {', '.join(spec.label_layouts)}")
    if cysts is not None and cysts not in CYST_CHOICES:
        raise ConversionError(f"cysts={cysts!r} is not an option; choose one of {', '.join(CYST_CHOICES)}")
    if cysts is not None and not spec.has_cysts:
        raise ConversionError(f"{spec.name} has no cyst label; leave out --cysts")
    if labels == "regions":
        if cysts not in (None, "keep"):
            raise ConversionError("the region layout keeps cysts (masses = tumour + cyst); "
                                  "leave out --cysts or use --cysts keep, or use --labels full")
        return KITS23_REGIONS
    if spec.has_cysts and cysts is None:
        raise ConversionError(_missing_cyst_choice(spec, labels))
    if labels == "full":
        names = ["background", spec.organ, "tumour"]
        mapping = {0: 0, 1: 1, 2: 2}
        cyst_value = {"keep": 3, "kidney": 1, "drop": 0}
    else:
        names = ["background", "tumour"]
        mapping = {0: 0, 1: 0, 2: 1}
        cyst_value = {"keep": 2, "kidney": 0, "drop": 0}
    if spec.has_cysts:
        mapping[3] = cyst_value[cysts]
        if cysts == "keep":
            names.append("cyst")
    return LabelLayout({name: value for value, name in enumerate(names)}, mapping)


def _missing_cyst_choice(spec: DatasetSpec, labels: str) -> str:
    if labels == "full":
        choices = "keep (own label 3), kidney (merged into kidney 1) or drop (background 0)"
    else:
        choices = "keep (own label 2), kidney or drop (both background 0, as kidney is background here)"
    return (f"--labels {labels} on {spec.name} needs an explicit --cysts: {choices}; "
            f"add --cysts keep, --cysts kidney or --cysts drop (in Python: cysts='keep', 'kidney' or 'drop')")


def dataset_folder(nnunet_raw: str | os.PathLike | None, dataset_id: int, dataset_name: str) -> Path:
    """``<nnunet_raw>/DatasetXXX_Name``; nnunet_raw falls back to the nnUNet_raw environment variable."""
    raw = nnunet_raw if nnunet_raw is not None else os.environ.get("nnUNet_raw")
    if not raw:
        raise ConversionError("no nnU-Net raw folder: pass --nnunet-raw (nnunet_raw=...) "
                              "or set the nnUNet_raw environment variable")
    # nnU-Net reads the id back from the three digits after "Dataset"
    if not 1 <= dataset_id <= 999:
        raise ConversionError(f"dataset id {dataset_id} is out of range; nnU-Net ids are 1..999")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", dataset_name):
        raise ConversionError(f"dataset name {dataset_name!r} must be letters, digits, '_' or '-'")
    return Path(raw) / f"Dataset{dataset_id:03d}_{dataset_name}"


def _target_problems(target: Path, overwrite: bool) -> list[str]:
    problems = []
    if target.exists() and not overwrite:
        problems.append(f"{target}: the target dataset already exists; pass --overwrite to replace it, "
                        f"or choose another dataset id or name")
    prefix = target.name.split("_", 1)[0] + "_"
    if target.parent.is_dir():
        # nnU-Net refuses an id that maps to two dataset names
        for other in sorted(target.parent.glob(prefix + "*")):
            if other.name != target.name:
                problems.append(f"{other}: dataset id {prefix[7:10]} is already used by {other.name}; "
                                f"choose another dataset id")
    return problems


def convert(spec: DatasetSpec, input_folder: str | os.PathLike, nnunet_raw: str | os.PathLike | None = None,
            dataset_id: int | None = None, dataset_name: str | None = None, *, labels: str = "full",
            cysts: str | None = None, overwrite: bool = False, check: bool = False,
            num_processes: int = default_num_processes) -> Path | list[str]:
    """Convert ``input_folder`` into ``<nnunet_raw>/DatasetXXX_Name`` and return that path.

    With ``check=True`` nothing is written; the list of all problems is returned (empty when conversion would
    succeed). Otherwise any problem raises :class:`ConversionError` listing every problem found, and the target
    is left as it was. Invalid options (labels/cysts, id, name, no nnunet_raw) always raise.
    """
    layout = label_layout(spec, labels, cysts)
    target = dataset_folder(nnunet_raw, spec.dataset_id if dataset_id is None else dataset_id,
                            spec.name if dataset_name is None else dataset_name)
    if not check:  # --check writes nothing, so it leaves the leftovers too, and reports what recovery would restore
        recover_interrupted_runs(target)
    problems = _target_problems(target, overwrite) + (_pending_restore_problems(target, overwrite) if check else [])
    if problems and not check:
        raise ConversionError(problems, summary=f"refusing to write {target}:")
    discovery = _discover(spec, Path(input_folder))
    problems += discovery.problems
    if check or problems:
        # validate the complete cases as well, so that the report lists every problem, not just the first kind
        problems += _run_jobs(_jobs(spec, layout, discovery.cases, None), num_processes)
        if check:
            return problems
        raise ConversionError(problems, summary=f"{len(problems)} problem(s) in {input_folder}; nothing written:")
    return _write_dataset(spec, layout, discovery.cases, target, num_processes,
                          description=f"{spec.name}, labels={labels}, cysts={cysts}")


def _discover(spec: DatasetSpec, folder: Path) -> Discovery:
    if not folder.is_dir():
        return Discovery(problems=[f"{folder}: input folder does not exist; pass the extracted {spec.name} data"])
    discovery = spec.discover(folder)
    if not any(case.label is not None for case in discovery.cases) and not discovery.problems:
        discovery.problems.append(f"{folder}: no {spec.name} training cases found; expected {spec.layout}")
    return discovery


def _write_dataset(spec: DatasetSpec, layout: LabelLayout, cases: list[Case], target: Path, num_processes: int,
                   description: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_folder(target)
    tmp.mkdir()
    try:
        for sub in ("imagesTr", "labelsTr") + (("imagesTs",) if any(c.label is None for c in cases) else ()):
            (tmp / sub).mkdir()
        problems = _run_jobs(_jobs(spec, layout, cases, tmp), num_processes)
        if problems:
            raise ConversionError(problems, summary=f"{len(problems)} case(s) failed; nothing written to {target}:")
        training = sum(case.label is not None for case in cases)
        generate_dataset_json(
            str(tmp), {0: "CT"}, labels=dict(layout.labels), num_training_cases=training, file_ending=FILE_ENDING,
            regions_class_order=layout.regions_class_order, dataset_name=target.name.split("_", 1)[1],
            reference=spec.reference, license=spec.licence, description=description,
            converted_by="nnunetv2_hlfd.dataset_conversion",
            # provenance: which source label became which written value
            source_label_mapping={spec.source_labels[src]: dst for src, dst in layout.mapping.items()})
        _move_into_place(tmp, target)
    except BaseException:  # includes KeyboardInterrupt: an interrupted run leaves nothing behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:40] or "host"


def _temporary_folder(target: Path) -> Path:
    # Same parent as the target, so the final rename stays on one file system and is atomic. The leading dot
    # keeps nnU-Net's "DatasetXXX_*" lookups from ever seeing the unfinished folder. Host and pid in the name let
    # a later run tell a killed run's leftover from a live concurrent run's folder. (Not tempfile.mkdtemp: its
    # 0700 mode would end up on the dataset.)
    return target.with_name(f".{target.name}.partial-{_host()}-{os.getpid()}-{secrets.token_hex(4)}")


def _owner_is_gone(host: str, pid: int) -> bool:
    """Whether the run that made a temporary folder has ended. Errs towards 'still running': a folder of a run on
    another machine (shared file system) or of a reused pid is left alone, which costs disk space, not data."""
    if host != _host():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _interrupted_runs(target: Path) -> list[tuple[Path, str]]:
    """What killed runs into ``target`` left, each with what recovery does to it: "restore" (a dataset hidden
    as ``*-replaced`` by an --overwrite killed between its two renames, whose target is missing), "remove"
    (their temporary folders) or "leave" (the folder of a run that may still be going on)."""
    pattern = re.compile(re.escape(f".{target.name}.partial-")
                         + r"(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[0-9a-f]{8}(?P<replaced>-replaced)?")
    found = []
    for path in sorted(target.parent.glob(f".{target.name}.partial-*")) if target.parent.is_dir() else []:
        match = pattern.fullmatch(path.name)
        if match is None or not _owner_is_gone(match["host"], int(match["pid"])):
            found.append((path, "leave"))
        else:
            found.append((path, "restore" if match["replaced"] and not target.exists() else "remove"))
    return found


def recover_interrupted_runs(target: Path) -> list[str]:
    """Undo what killed runs into ``target`` left behind (see _interrupted_runs). Returns (and logs) one line
    per action; folders of runs that may still be going on are left alone, with a warning."""
    done = []
    for path, action in _interrupted_runs(target):
        if action == "leave":
            fix = (f"rename it to {target.name}" if path.name.endswith("-replaced") and not target.exists()
                   else "delete it")
            logger.warning("left %s alone: it may belong to a conversion that is still running; if none is, %s",
                           path, fix)
            continue
        if action == "restore":
            os.rename(path, target)
            done.append(f"restored {target} from {path.name}, hidden by an --overwrite run that was killed")
        else:
            _remove_leftover(path)
            done.append(f"removed {path}, left by an interrupted conversion")
        logger.warning(done[-1])
    return done


def _pending_restore_problems(target: Path, overwrite: bool) -> list[str]:
    """--check's view of recovery: a dataset that the real run would first restore into ``target``."""
    if overwrite:
        return []
    return [f"{target}: {path.name} holds the dataset an interrupted --overwrite run hid; the conversion will put "
            f"it back first and then refuse to replace it: pass --overwrite to replace it"
            for path, action in _interrupted_runs(target) if action == "restore"]


def _remove_leftover(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except OSError as exc:
        raise ConversionError(f"{path}: cannot remove this leftover of an interrupted conversion ({exc}); "
                              f"delete it by hand") from exc


def _move_into_place(tmp: Path, target: Path) -> None:
    """Renames only, which are atomic on one file system; an existing target (--overwrite) is swapped out."""
    if not target.exists():
        os.rename(tmp, target)
        return
    old = tmp.with_name(tmp.name + "-replaced")
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class _Job:
    case: Case
    source_labels: Mapping[int, str]
    mapping: Mapping[int, int]
    out_dir: Path | None  # None: validate only (--check)


def _jobs(spec: DatasetSpec, layout: LabelLayout, cases: Iterable[Case], out_dir: Path | None) -> list[_Job]:
    return [_Job(case, spec.source_labels, layout.mapping, out_dir) for case in cases]


def _run_jobs(jobs: list[_Job], num_processes: int) -> list[str]:
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
        progress = stack.enter_context(tqdm(finished, total=len(jobs), unit="case", postfix={"failed": 0},
                                            desc="checking cases" if checking else "converting cases"))
        failed = 0
        for index, case_problems in progress:
            results[index] = case_problems
            if case_problems:
                failed += 1
                progress.set_postfix(failed=failed)
    return [problem for case_problems in results for problem in case_problems]


def _convert_indexed_case(indexed_job: tuple[int, _Job]) -> tuple[int, list[str]]:
    """_convert_case with the job's position, so results finishing out of order keep the case order."""
    index, job = indexed_job
    return index, _convert_case(job)


class _CaseProblem(Exception):
    pass


def _convert_case(job: _Job) -> list[str]:
    """Validate one case and, unless checking only, write it. Returns its problems instead of raising, so a
    worker process reports every case rather than the first exception."""
    case = job.case
    try:
        image = _read(case.image, "image")
        label = None if case.label is None else _read(case.label, "label")
        problems = [] if label is None else (_geometry_problems(image, label)
                                             + _value_problems(label, case.label, job.source_labels))
        if problems or job.out_dir is None:
            return [f"{case.case_id}: {p}" for p in problems]
        images = job.out_dir / ("imagesTs" if label is None else "imagesTr")
        _copy_as_nii_gz(case.image, images / f"{case.case_id}{IMAGE_SUFFIX}")
        if label is not None:
            written = _remap(label, image, job.mapping)
            sitk.WriteImage(written, str(job.out_dir / "labelsTr" / f"{case.case_id}{FILE_ENDING}"))
        return []
    except _CaseProblem as exc:
        return [f"{case.case_id}: {exc}"]
    except Exception as exc:  # e.g. a full disk: still report it against the case
        return [f"{case.case_id}: unexpected {type(exc).__name__}: {exc}"]


def _read(path: Path, role: str) -> sitk.Image:
    try:
        image = sitk.ReadImage(str(path))
        # SimpleITK zero-fills a truncated file without complaint; reading the last voxel through nibabel does
        # fail on a short file (for .nii.gz this streams the whole file once more).
        proxy = nibabel.load(path).dataobj
        _ = proxy[tuple(-1 for _ in proxy.shape)]
    except Exception as exc:  # the readers raise RuntimeError, OSError, EOFError, ValueError, ImageFileError...
        reason = next((line for line in reversed(str(exc).splitlines()) if line.strip()), type(exc).__name__)
        raise _CaseProblem(f"cannot read {role} file {path} ({reason.strip()}); the file is damaged or truncated, "
                           f"download or extract it again") from exc
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise _CaseProblem(f"{role} file {path} is not a single 3-D volume ({image.GetDimension()}-D, "
                           f"{image.GetNumberOfComponentsPerPixel()} component(s)); use the original file")
    return image


def _geometry_problems(image: sitk.Image, label: sitk.Image) -> list[str]:
    fix = "the label does not belong to this image; download or extract the case again"
    if image.GetSize() != label.GetSize():
        return [f"image and label shapes differ (image {image.GetSize()}, label {label.GetSize()}); {fix}"]
    checks = {"spacing": (image.GetSpacing(), label.GetSpacing(), GEOMETRY_TOLERANCE, 0.0),
              "origin": (image.GetOrigin(), label.GetOrigin(), 0.0, GEOMETRY_TOLERANCE),
              "direction": (image.GetDirection(), label.GetDirection(), 0.0, GEOMETRY_TOLERANCE)}
    return [f"image and label {name} differ (image {tuple(a)}, label {tuple(b)}); {fix}"
            for name, (a, b, rtol, atol) in checks.items() if not np.allclose(b, a, rtol=rtol, atol=atol)]


def _value_problems(label: sitk.Image, path: Path, source_labels: Mapping[int, str]) -> list[str]:
    values = np.unique(sitk.GetArrayViewFromImage(label))
    unexpected = [format(v, "g") for v in values if v not in source_labels]  # 1.0 matches 1; 1.5 and NaN do not
    if not unexpected:
        return []
    documented = ", ".join(f"{k} {name}" for k, name in source_labels.items())
    return [f"label values {', '.join(unexpected[:10])} in {path} are outside the documented set ({documented}); "
            f"use this dataset's own label file, unmodified"]


def _remap(label: sitk.Image, image: sitk.Image, mapping: Mapping[int, int]) -> sitk.Image:
    source = sitk.GetArrayViewFromImage(label)
    written = np.zeros(source.shape, dtype=np.uint8)
    for src, dst in mapping.items():
        if dst:
            written[source == src] = dst
    result = sitk.GetImageFromArray(written)
    # The grids agree within tolerance; take the image's exactly so nnU-Net's stricter checks agree too.
    result.CopyInformation(image)
    return result


def _copy_as_nii_gz(src: Path, dst: Path) -> None:
    """Copy the image bytes unchanged (gzipped if needed): the header, hence the geometry, stays exact."""
    if src.name.endswith(".gz"):
        shutil.copyfile(src, dst)
        return
    with open(src, "rb") as fin, gzip.open(dst, "wb", compresslevel=6) as fout:
        shutil.copyfileobj(fin, fout, length=16 * 1024 * 1024)


def build_parser(spec: DatasetSpec, prog: str | None = None, description: str | None = None
                 ) -> argparse.ArgumentParser:
    """The options every converter shares; --cysts only where the dataset has cysts."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input_folder", type=Path, help=f"the extracted {spec.name} data: {spec.layout}")
    parser.add_argument("--nnunet-raw", type=Path, default=None,
                        help="nnU-Net raw data folder (default: the nnUNet_raw environment variable)")
    parser.add_argument("-d", "--dataset-id", type=int, default=spec.dataset_id,
                        help=f"nnU-Net dataset id (default: {spec.dataset_id})")
    parser.add_argument("-n", "--name", default=spec.name, help=f"dataset name (default: {spec.name})")
    parser.add_argument("--labels", choices=spec.label_layouts, default="full",
                        help="full: organ + tumour [+ cyst]; tumour: tumour against everything else"
                             + ("; regions: nnU-Net's KiTS23 regions (kidney, masses, tumor)"
                                if "regions" in spec.label_layouts else "") + " (default: full)")
    if spec.has_cysts:
        parser.add_argument("--cysts", choices=CYST_CHOICES, default=None,
                            help="keep cysts as their own label, merge them into kidney, or drop them to "
                                 "background; required with --labels full and --labels tumour (there 'keep' "
                                 "writes them as label 2, 'kidney' and 'drop' as background)"
                                 + ("; optional with --labels regions, which keeps them"
                                    if "regions" in spec.label_layouts else ""))
    parser.add_argument("-np", "--num-processes", type=int, default=default_num_processes,
                        help=f"worker processes (default: {default_num_processes})")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing target dataset")
    parser.add_argument("--check", action="store_true", help="report every problem and write nothing")
    return parser


def cli_main(spec: DatasetSpec, argv: Sequence[str] | None = None, prog: str | None = None,
             description: str | None = None) -> int:
    """Parse, convert, report. Returns the exit status: 0 done (or --check clean), 1 on problems."""
    args = build_parser(spec, prog, description).parse_args(argv)
    try:
        result = convert(spec, args.input_folder, args.nnunet_raw, args.dataset_id, args.name, labels=args.labels,
                         cysts=getattr(args, "cysts", None), overwrite=args.overwrite, check=args.check,
                         num_processes=args.num_processes)
    except ConversionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.check:
        print(f"wrote {result}")
        return 0
    for problem in result:
        print(problem)
    print(f"{len(result)} problem(s) found" if result else f"{args.input_folder}: no problems found")
    return 1 if result else 0


def entry_points(spec: DatasetSpec, prog: str, description: str | None) -> tuple[Callable, Callable[..., int]]:
    """A dataset script's converter, `convert` bound to its spec, and its console command `prog`."""
    return partial(convert, spec), partial(cli_main, spec, prog=prog, description=description)
