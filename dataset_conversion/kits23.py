"""Convert KiTS23 into an nnU-Net raw dataset.

Input: the ``dataset/`` folder of https://github.com/neheller/kits23 after ``kits23_download_data``::

    case_XXXXX/imaging.nii.gz + segmentation.nii.gz   (0 background, 1 kidney, 2 tumour, 3 cyst)

Label layouts:

* ``--labels regions``: nnU-Net's own KiTS23 layout (nnunetv2/dataset_conversion/Dataset220_KiTS2023.py):
  the source labels are kept and trained as regions kidney (1,2,3), masses (2,3), tumor 2 with
  regions_class_order (1, 3, 2), so predictions come back as 1 kidney, 2 tumour, 3 cyst.
* ``--labels full --cysts keep|kidney|drop``: plain labels (cysts must be chosen explicitly).
* ``--labels tumour --cysts keep|kidney|drop``: tumour 1 against everything else; cysts label 2 with ``keep``,
  background otherwise (chosen explicitly too).

Unlike Dataset220_KiTS2023 we do not set ``overwrite_image_reader_writer``, so nnU-Net reads the files with
its default SimpleITK reader, the same reader this converter validates with.

Example::

    hlfd_convert_kits23 kits23/dataset --labels regions
"""

from __future__ import annotations

import sys
from functools import partial

from nnunetv2_hlfd.dataset_conversion.command_line import entry_points
from nnunetv2_hlfd.dataset_conversion.dataset_spec import DatasetSpec
from nnunetv2_hlfd.dataset_conversion.discovery import discover_case_folders

SPEC = DatasetSpec(
    name="KiTS2023",
    dataset_id=220,
    organ="kidney",
    has_cysts=True,
    discover=partial(discover_case_folders, label_stem="segmentation"),
    layout="case_XXXXX/imaging.nii.gz + segmentation.nii.gz folders",
    reference="https://kits-challenge.org/kits23/; https://github.com/neheller/kits23",
    licence="CC BY-NC-SA (data); https://github.com/neheller/kits23",
    label_layouts=("full", "tumour", "regions"),
)


# convert_kits23(input_folder, nnunet_raw, ...) -> the dataset folder (see conversion.convert): labels 'full',
#   'tumour' or 'regions'; cysts 'keep', 'kidney' or 'drop' (required with 'full' and 'tumour').
# main(argv=None) -> exit status: the console command hlfd_convert_kits23.
convert_kits23, main = entry_points(SPEC, prog="hlfd_convert_kits23", description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
