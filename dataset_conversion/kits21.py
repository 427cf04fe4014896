"""Convert KiTS21 into an nnU-Net raw dataset.

Input: the ``data/`` folder of https://github.com/neheller/kits21 (imaging fetched by its get_imaging script)::

    case_00000 .. case_00299/imaging.nii.gz + aggregated_MAJ_seg.nii.gz
        (majority vote of the raters: 0 background, 1 kidney, 2 tumour, 3 cyst)

The per-rater files in ``segmentations/`` and the OR/AND aggregates are not used. The cysts must always be
chosen explicitly (``--cysts keep|kidney|drop``): with ``--labels full`` they become label 3, kidney or
background; with ``--labels tumour`` label 2 (keep) or background (kidney, drop).

Example::

    hlfd_convert_kits21 kits21/kits21/data --labels tumour --cysts drop -d 136 -n KiTS2021Tumour
"""

from __future__ import annotations

import sys
from functools import partial

from nnunetv2_hlfd.dataset_conversion.command_line import entry_points
from nnunetv2_hlfd.dataset_conversion.dataset_spec import DatasetSpec
from nnunetv2_hlfd.dataset_conversion.discovery import discover_case_folders

SPEC = DatasetSpec(
    name="KiTS2021",
    dataset_id=135,
    organ="kidney",
    has_cysts=True,
    discover=partial(discover_case_folders, label_stem="aggregated_MAJ_seg"),
    layout="case_XXXXX/imaging.nii.gz + aggregated_MAJ_seg.nii.gz folders",
    reference="https://kits-challenge.org/kits21/; Heller et al., arXiv:2307.01984",
    licence="CC BY-NC-SA (data); https://github.com/neheller/kits21",
)


# convert_kits21(input_folder, nnunet_raw, ...) -> the dataset folder (see conversion.convert): labels 'full' or
#   'tumour'; cysts 'keep', 'kidney' or 'drop' (required, see label_layouts.label_layout).
# main(argv=None) -> exit status: the console command hlfd_convert_kits21.
convert_kits21, main = entry_points(SPEC, prog="hlfd_convert_kits21", description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
