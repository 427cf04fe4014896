"""KiTS19's real kidney and tumour geometry as an nnU-Net raw dataset, with simulated CT.

The KiTS19 repository (https://github.com/neheller/kits19) keeps its manual segmentations in git; the CT images are
a separate 30 GB download. This converter needs only the segmentations: for every case it crops the label map around
both kidneys (with a margin), resamples it to a spacing a CPU study can afford and simulates a CT on it
(nnunetv2_hlfd.dataset_writers.simulated_ct). Real: the geometry (shapes, sizes and positions of kidneys and
tumours), the spacing (each axis coarsened only where it is finer than its floor, so thick-slice scans keep their
anisotropy), the orientation (each file's direction matrix is kept, as the KiTS19 converter keeps it; slices no
thinner than --slice-spacing, so the slice axis stays the coarsest and nnU-Net's 2d slices are axial), the class
balance and the tumour size distribution. Simulated: every intensity.

Input: a clone's ``data/`` folder (``case_XXXXX/segmentation.nii.gz``; image-only cases are skipped) or a
folder of ``case_XXXXX_segmentation.nii.gz`` files. Example::

    git clone https://github.com/neheller/kits19
    hlfd_convert_kits19_geometry kits19/data -d 64

Labels: 0 background, 1 kidney (cysts included, as in KiTS19), 2 tumour. Data licence of the labels:
CC BY-NC-SA 4.0 (Heller et al., arXiv:1904.00445); the converted dataset carries it.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json
from nnunetv2_hlfd.dataset_conversion.volumes import CaseProblem, read_volume

from nnunetv2_hlfd.dataset_writers.raw_dataset import write_raw_dataset
from nnunetv2_hlfd.dataset_writers.simulated_ct import SUPERSAMPLING, best_window_dice, simulated_ct
from nnunetv2_hlfd.dataset_writers.synthetic_anatomy import KIDNEY, LABELS, TUMOR
from nnunetv2_hlfd.utilities.interrupts import INTERRUPTED_STATUS, terminate_as_interrupt
from nnunetv2_hlfd.utilities.problems import ProblemListError

DEFAULT_ID, DEFAULT_NAME = 64, "KiTS19Geometry"
# in-plane 2.5 mm and slices of 3 mm (KiTS19's median slice spacing) or thicker: the slice axis stays the
# coarsest, so nnU-Net's 2d configuration slices axially as it does on KiTS19 itself
DEFAULT_SPACING_MM, DEFAULT_SLICE_SPACING_MM, DEFAULT_MARGIN_MM = 2.5, 3.0, 10.0
LICENCE = "CC BY-NC-SA 4.0 (labels: KiTS19, https://github.com/neheller/kits19); CT intensities simulated"
CASE_PATTERNS = ("case_*/segmentation.nii.gz", "case_*_segmentation.nii.gz")


class GeometryConversionError(ProblemListError):
    """The segmentations cannot be converted; each problem names the file and the fix."""


@dataclass(frozen=True)
class GeometrySettings:
    spacing_mm: float = DEFAULT_SPACING_MM
    slice_spacing_mm: float = DEFAULT_SLICE_SPACING_MM
    margin_mm: float = DEFAULT_MARGIN_MM
    seed: int = 0


def find_segmentations(folder: Path) -> dict[str, Path]:
    """KiTS19 case id -> its segmentation file, from a clone's data/ folder (or the clone itself) or a flat one."""
    folder = Path(folder)
    for root in (folder, folder / "data"):
        found = {}
        for pattern in CASE_PATTERNS:
            for path in root.glob(pattern):
                case = re.match(r"case_\d+", path.parent.name if path.name == "segmentation.nii.gz" else path.name)
                if case:
                    found[case.group(0)] = path
        if found:
            return dict(sorted(found.items()))
    raise GeometryConversionError(
        f"no KiTS19 segmentations in {folder}: expected case_XXXXX/segmentation.nii.gz (the data/ folder of a "
        "clone of https://github.com/neheller/kits19) or case_XXXXX_segmentation.nii.gz files"
    )


def kidney_region(label: sitk.Image, margin_mm: float) -> sitk.Image:
    """The label cropped to the bounding box of both kidneys (and tumours) plus ``margin_mm`` on every side."""
    array = sitk.GetArrayViewFromImage(label)
    present = np.argwhere(array > 0)
    if not len(present):
        raise CaseProblem("has no kidney or tumour voxel; a KiTS19 segmentation always has kidneys")
    margin = [math.ceil(margin_mm / s) for s in reversed(label.GetSpacing())]  # array (z, y, x) order
    low = np.maximum(present.min(0) - margin, 0)
    high = np.minimum(present.max(0) + 1 + margin, array.shape)
    # SimpleITK indexes (x, y, z): the array's axes reversed; slicing keeps origin and direction consistent
    return label[tuple(slice(int(lo), int(hi)) for lo, hi in zip(reversed(low), reversed(high)))]


def grid_like(region: sitk.Image, spacing: tuple[float, ...]) -> sitk.Image:
    """An empty image covering ``region``'s extent at ``spacing`` (SimpleITK order), same direction."""
    extent = np.asarray(region.GetSize()) * np.asarray(region.GetSpacing())
    size = [max(1, round(e / s)) for e, s in zip(extent, spacing)]
    # the first voxel centre half a new voxel in from the region's edge, in the region's continuous index
    first = [-0.5 + 0.5 * s / r for s, r in zip(spacing, region.GetSpacing())]
    grid = sitk.Image(size, sitk.sitkUInt8)
    grid.SetSpacing(spacing)
    grid.SetDirection(region.GetDirection())
    grid.SetOrigin(region.TransformContinuousIndexToPhysicalPoint(first))
    return grid


def slice_axis(image: sitk.Image) -> int:
    """The SimpleITK axis that runs head to foot: the one whose direction has the largest S (z) component."""
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    return int(np.argmax(np.abs(direction[2])))


def converted_spacing(region: sitk.Image, settings: GeometrySettings) -> tuple[float, ...]:
    """Each axis at its own spacing where coarser than the floor: --slice-spacing across slices, --spacing
    in-plane."""
    axial = slice_axis(region)
    floors = [settings.slice_spacing_mm if axis == axial else settings.spacing_mm for axis in range(3)]
    return tuple(max(s, floor) for s, floor in zip(region.GetSpacing(), floors))


def convert_case(path: Path, settings: GeometrySettings, case_number: int) -> tuple[sitk.Image, sitk.Image]:
    """(simulated CT, label) of one case on the converted grid."""
    label = read_volume(path, "segmentation")
    values = np.unique(sitk.GetArrayViewFromImage(label))
    if not set(values.tolist()) <= {0, KIDNEY, TUMOR}:
        raise CaseProblem(f"has label values {values.tolist()}; KiTS19 labels are 0 background, 1 kidney, 2 tumour")
    region = kidney_region(label, settings.margin_mm)
    spacing = converted_spacing(region, settings)
    target = grid_like(region, spacing)
    # the target grid again, SUPERSAMPLING times finer: fine voxels 2i, 2i+1 straddle target voxel i
    fine = grid_like(target, tuple(s / SUPERSAMPLING for s in spacing))
    nearest = sitk.sitkNearestNeighbor
    fine_label = sitk.GetArrayFromImage(sitk.Resample(region, fine, sitk.Transform(), nearest, 0))
    target_label = sitk.Resample(region, target, sitk.Transform(), nearest, 0)
    rng = np.random.default_rng([settings.seed, case_number])
    image = sitk.GetImageFromArray(simulated_ct(fine_label, tuple(reversed(fine.GetSpacing())), rng))
    image.CopyInformation(target)
    return image, sitk.Cast(target_label, sitk.sitkUInt8)


def _convert_one(job: tuple[str, Path, GeometrySettings, Path]) -> tuple[str, str | None, np.ndarray, np.ndarray]:
    case, path, settings, folder = job
    try:
        image, label = convert_case(path, settings, int(case.removeprefix("case_")))
    except CaseProblem as problem:
        return case, f"{case} ({path}): {problem}", np.zeros(0), np.zeros(0)
    sitk.WriteImage(image, str(folder / "imagesTr" / f"{case}_0000.nii.gz"), useCompression=True)
    sitk.WriteImage(label, str(folder / "labelsTr" / f"{case}.nii.gz"), useCompression=True)
    return case, None, sitk.GetArrayViewFromImage(image).copy(), sitk.GetArrayViewFromImage(label).copy()


def convert_kits19_geometry(
    input_folder: Path,
    nnunet_raw: Path | None = None,
    dataset_id: int = DEFAULT_ID,
    name: str = DEFAULT_NAME,
    settings: GeometrySettings = GeometrySettings(),  # noqa: B008 (frozen)
    num_cases: int | None = None,
    num_processes: int = 2,
    overwrite: bool = False,
) -> tuple[Path, dict]:
    """Write the dataset atomically; returns its folder and the plain-threshold check (best window Dice)."""
    if min(settings.spacing_mm, settings.slice_spacing_mm) <= 0 or settings.margin_mm < 0:
        raise GeometryConversionError(
            f"--spacing and --slice-spacing must be above 0 and --margin at least 0 (mm), got "
            f"{settings.spacing_mm}, {settings.slice_spacing_mm} and {settings.margin_mm}"
        )
    cases = find_segmentations(input_folder)
    if num_cases is not None:
        if num_cases < 1:
            raise GeometryConversionError(f"--cases must be at least 1, got {num_cases}")
        cases = dict(list(cases.items())[:num_cases])
    check = {}

    def fill(folder: Path, target: Path) -> None:
        for sub in ("imagesTr", "labelsTr"):
            (folder / sub).mkdir()
        jobs = [(case, path, settings, folder) for case, path in cases.items()]
        with get_context("spawn").Pool(max(1, num_processes)) as pool:
            results = pool.map(_convert_one, jobs, chunksize=1)
        problems = [problem for _, problem, _, _ in results if problem]
        if problems:
            raise GeometryConversionError(problems, headline=f"{len(problems)} case(s) cannot be converted:")
        images, labels = [r[2] for r in results], [r[3] for r in results]
        for class_name, value in (("kidney", KIDNEY), ("tumor", TUMOR)):
            dice, window = best_window_dice(images, labels, value)
            check[class_name] = {"best_window_dice": round(dice, 4), "window_hu": list(window)}
        generate_dataset_json(
            str(folder),
            channel_names={0: "CT"},
            labels=dict(LABELS),
            num_training_cases=len(cases),
            file_ending=".nii.gz",
            dataset_name=target.name,
            description=(
                "Real KiTS19 kidney and tumour segmentations (geometry, spacing, orientation, class balance) "
                "with simulated CT intensities, cropped around the kidneys; not the KiTS19 images."
            ),
            reference="Heller et al., The KiTS19 Challenge Data, arXiv:1904.00445",
            license=LICENCE,
            converted_by="nnunetv2_hlfd.dataset_conversion.kits19_geometry",
            kits19_geometry={
                "in_plane_spacing_mm_at_least": settings.spacing_mm,
                "slice_spacing_mm_at_least": settings.slice_spacing_mm,
                "margin_mm": settings.margin_mm,
                "seed": settings.seed,
                "cases": list(cases),
                "plain_threshold_check": check,
            },
        )

    target = write_raw_dataset(nnunet_raw, dataset_id, name, fill, overwrite=overwrite)
    return target, check


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hlfd_convert_kits19_geometry",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input_folder", type=Path, help="a kits19 clone's data/ folder, or a folder of segmentations")
    parser.add_argument("--nnunet-raw", type=Path, help="nnU-Net raw folder (default: $nnUNet_raw)")
    parser.add_argument("-d", "--dataset-id", type=int, default=DEFAULT_ID, help="default: %(default)s")
    parser.add_argument("-n", "--name", default=DEFAULT_NAME, help="default: %(default)s")
    parser.add_argument(
        "--spacing",
        type=float,
        default=DEFAULT_SPACING_MM,
        help="no in-plane axis finer than this (mm); coarser ones keep their own spacing (default: %(default)s)",
    )
    parser.add_argument(
        "--slice-spacing",
        type=float,
        default=DEFAULT_SLICE_SPACING_MM,
        help="slices no thinner than this (mm); thicker ones keep their own (default: %(default)s)",
    )
    parser.add_argument(
        "--margin", type=float, default=DEFAULT_MARGIN_MM, help="mm around the kidneys (default: %(default)s)"
    )
    parser.add_argument("--cases", type=int, help="convert only the first N cases in case order (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated intensities (default: 0)")
    parser.add_argument("-np", "--num-processes", type=int, default=2, help="default: %(default)s")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing target dataset")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    settings = GeometrySettings(args.spacing, args.slice_spacing, args.margin, args.seed)
    try:
        with terminate_as_interrupt():
            target, check = convert_kits19_geometry(
                args.input_folder,
                args.nnunet_raw,
                args.dataset_id,
                args.name,
                settings,
                args.cases,
                args.num_processes,
                args.overwrite,
            )
    except ProblemListError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; nothing was written (rerun the same command)", file=sys.stderr)
        return INTERRUPTED_STATUS
    print(f"wrote {target}")
    for class_name, result in check.items():
        print(
            f"plain threshold check, {class_name}: the best intensity window {result['window_hu']} HU reaches "
            f"Dice {result['best_window_dice']:.3f} over all cases"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
