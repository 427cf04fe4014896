"""Whether a volume file can be read to its end: SimpleITK, and so nnU-Net's readers, zero-fill a
truncated file without complaint, so a short file reads as partly background.

A leaf module (nibabel only): the dataset conversion and the evaluation check files the same way.
"""

from __future__ import annotations

from pathlib import Path

import nibabel

__all__ = ["NIFTI_ENDINGS", "failure_reason", "read_to_the_end"]

NIFTI_ENDINGS = (".nii", ".nii.gz")


def read_to_the_end(path: Path | str) -> None:
    """Reads the last voxel of a NIfTI file through nibabel, which fails on a short file (for .nii.gz this
    streams the whole file once); the readers' exception propagates. Other formats are left to their reader."""
    if not str(path).endswith(NIFTI_ENDINGS):
        return
    proxy = nibabel.load(path).dataobj
    _ = proxy[tuple(-1 for _ in proxy.shape)]


def failure_reason(error: BaseException) -> str:
    """The readers' own words: the last non-empty line of the message, or the exception's type."""
    return next((line for line in reversed(str(error).splitlines()) if line.strip()), type(error).__name__).strip()
