"""Convert KiTS19 into an nnU-Net raw dataset.

Input: the ``data/`` folder of https://github.com/neheller/kits19 after ``starter_code/get_imaging.py``::

    case_00000 .. case_00209/imaging.nii.gz + segmentation.nii.gz   (0 background, 1 kidney, 2 tumour)
    case_00210 .. case_00299/imaging.nii.gz                          (test cases without labels -> imagesTs)

Example::

    hlfd_convert_kits19 kits19/data --labels tumour -d 41 -n KiTS2019Tumour
"""

from __future__ import annotations

import sys
from functools import partial

from nnunetv2_hlfd.dataset_conversion.command_line import entry_points
from nnunetv2_hlfd.dataset_conversion.dataset_spec import DatasetSpec
from nnunetv2_hlfd.dataset_conversion.discovery import discover_case_folders

SPEC = DatasetSpec(
    name="KiTS2019",
    dataset_id=40,
    organ="kidney",
    has_cysts=False,
    discover=partial(discover_case_folders, label_stem="segmentation", first_image_only_case=210),
    layout="case_XXXXX/imaging.nii.gz + segmentation.nii.gz folders (cases 210-299 image only)",
    reference="https://kits19.grand-challenge.org; Heller et al., arXiv:1904.00445",
    licence="CC BY-NC-SA 4.0 (data); https://github.com/neheller/kits19",
)


# convert_kits19(input_folder, nnunet_raw, ...) -> the dataset folder (see conversion.convert): labels 'full'
#   (kidney 1, tumour 2) or 'tumour' (tumour 1).
# main(argv=None) -> exit status: the console command hlfd_convert_kits19.
convert_kits19, main = entry_points(SPEC, prog="hlfd_convert_kits19", description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
