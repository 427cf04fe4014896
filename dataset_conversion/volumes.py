"""Reading and checking one case's volumes, and writing them: image bytes copied, label remapped to uint8."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunetv2_hlfd.dataset_writers.volume_files import failure_reason, read_to_the_end
from nnunetv2_hlfd.utilities.problems import first_and_more

IMAGE_SUFFIX = "_0000.nii.gz"  # one CT channel
FILE_ENDING = ".nii.gz"
GEOMETRY_TOLERANCE = 1e-4  # relative for spacing, absolute (mm, cosines) for origin and direction


class CaseProblem(Exception):
    """One case cannot be converted; the message says why and how to fix it (the caller adds the case id)."""


def read_volume(path: Path, role: str) -> sitk.Image:
    """The single 3-D volume in ``path``; a damaged, truncated or multi-component file raises CaseProblem."""
    try:
        image = sitk.ReadImage(str(path))
        read_to_the_end(path)  # SimpleITK zero-fills a truncated file without complaint
    except Exception as exc:  # the readers raise RuntimeError, OSError, EOFError, ValueError, ImageFileError...
        raise CaseProblem(
            f"cannot read {role} file {path} ({failure_reason(exc)}); the file is damaged or truncated, "
            f"download or extract it again"
        ) from exc
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise CaseProblem(
            f"{role} file {path} is not a single 3-D volume ({image.GetDimension()}-D, "
            f"{image.GetNumberOfComponentsPerPixel()} component(s)); use the original file"
        )
    return image


def geometry_problems(image: sitk.Image, label: sitk.Image) -> list[str]:
    fix = "the label does not belong to this image; download or extract the case again"
    if image.GetSize() != label.GetSize():
        return [f"image and label shapes differ (image {image.GetSize()}, label {label.GetSize()}); {fix}"]
    checks = {
        "spacing": (image.GetSpacing(), label.GetSpacing(), GEOMETRY_TOLERANCE, 0.0),
        "origin": (image.GetOrigin(), label.GetOrigin(), 0.0, GEOMETRY_TOLERANCE),
        "direction": (image.GetDirection(), label.GetDirection(), 0.0, GEOMETRY_TOLERANCE),
    }
    return [
        f"image and label {name} differ (image {tuple(a)}, label {tuple(b)}); {fix}"
        for name, (a, b, rtol, atol) in checks.items()
        if not np.allclose(b, a, rtol=rtol, atol=atol)
    ]


def value_problems(label: sitk.Image, path: Path, source_labels: Mapping[int, str]) -> list[str]:
    values = np.unique(sitk.GetArrayViewFromImage(label))
    unexpected = [format(v, "g") for v in values if v not in source_labels]  # 1.0 matches 1; 1.5 and NaN do not
    if not unexpected:
        return []
    documented = ", ".join(f"{k} {name}" for k, name in source_labels.items())
    return [
        f"label values {first_and_more(unexpected, 10)} in {path} are outside the documented set "
        f"({documented}); use this dataset's own label file, unmodified"
    ]


def remapped_label(label: sitk.Image, image: sitk.Image, mapping: Mapping[int, int]) -> sitk.Image:
    """``label`` with each source value replaced as ``mapping`` says, as uint8 on ``image``'s exact grid."""
    source = sitk.GetArrayViewFromImage(label)
    written = np.zeros(source.shape, dtype=np.uint8)
    for src, dst in mapping.items():
        if dst:
            written[source == src] = dst
    result = sitk.GetImageFromArray(written)
    # The grids agree within tolerance; take the image's exactly so nnU-Net's stricter checks agree too.
    result.CopyInformation(image)
    return result


def copy_as_nii_gz(src: Path, dst: Path) -> None:
    """Copy the image bytes unchanged (gzipped if needed): the header, hence the geometry, stays exact."""
    if src.name.endswith(".gz"):
        shutil.copyfile(src, dst)
        return
    with open(src, "rb") as fin, gzip.open(dst, "wb", compresslevel=6) as fout:
        shutil.copyfileobj(fin, fout, length=16 * 1024 * 1024)
