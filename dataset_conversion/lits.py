"""Convert LiTS (Liver Tumor Segmentation Challenge) into an nnU-Net raw dataset.

Input: the training data as distributed, either in one folder or still split into the two batches; test
volumes may sit anywhere below the input folder too::

    Training Batch 1/volume-0.nii .. volume-27.nii + segmentation-0.nii .. segmentation-27.nii
    Training Batch 2/volume-28.nii .. volume-130.nii + segmentation-28.nii .. segmentation-130.nii
    test-volume-0.nii .. test-volume-69.nii                         (no labels -> imagesTs)

Labels: 0 background, 1 liver, 2 tumour. Files may be ``.nii`` or ``.nii.gz``; the same N found twice (in both
batches, or as .nii and .nii.gz) is an error. Case ids are ``liver_N`` for volume-N (the names MSD Task03_Liver
uses for the same scans) and ``liver_test_N`` for test-volume-N.

MSD Task03_Liver
----------------
The Medical Segmentation Decathlon's Task03_Liver is LiTS's 131 training scans in MSD format (liver_N is
volume-N; labels 0 background, 1 liver, 2 cancer). nnU-Net converts it itself::

    nnUNetv2_convert_MSD_dataset -i /path/to/Task03_Liver

That gives the same integer labels as ``--labels full`` here (cancer == tumour == 2), which
tests/dataset_conversion/test_dataset_conversion_lits.py checks. For the tumour-only protocol, convert LiTS with
``--labels tumour``.

Example::

    hlfd_convert_lits /data/LiTS --labels tumour -d 30 -n LiTSTumour
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

from nnunetv2_hlfd.dataset_conversion.command_line import entry_points
from nnunetv2_hlfd.dataset_conversion.dataset_spec import DatasetSpec
from nnunetv2_hlfd.dataset_conversion.discovery import Discovery

_LITS_FILE = re.compile(r"(?P<kind>test-volume|volume|segmentation)-(?P<n>\d+)\.nii(?:\.gz)?")


def discover_lits(folder: Path) -> Discovery:
    """Pair volume-N with segmentation-N anywhere below ``folder``; test-volume-N are image-only cases."""
    found: dict[tuple[str, int], list[Path]] = defaultdict(list)
    for path in sorted(folder.rglob("*.nii*")):
        match = _LITS_FILE.fullmatch(path.name)
        if match and path.is_file():
            found[match["kind"], int(match["n"])].append(path)
    discovery = Discovery()
    where = f"in {folder} or a subfolder"
    for n in sorted({n for kind, n in found if kind != "test-volume"}):
        discovery.add(
            f"liver_{n}",
            found[("volume", n)],
            found[("segmentation", n)],
            expected_image=f"volume-{n}.nii {where}",
            expected_label=f"segmentation-{n}.nii {where}",
        )
    for n in sorted(n for kind, n in list(found) if kind == "test-volume"):
        discovery.add(f"liver_test_{n}", found[("test-volume", n)], None, expected_image="")
    return discovery


SPEC = DatasetSpec(
    name="LiTS",
    dataset_id=29,
    organ="liver",
    has_cysts=False,
    discover=discover_lits,
    layout="volume-N.nii + segmentation-N.nii (in one folder or in the 'Training Batch 1/2' subfolders)",
    reference="https://competitions.codalab.org/competitions/17094; Bilic et al., Medical Image Analysis 84 "
    "(2023) 102680, arXiv:1901.04056",
    licence="see the LiTS challenge terms of use (MSD Task03_Liver redistributes these scans under CC BY-SA 4.0)",
)


# convert_lits(input_folder, nnunet_raw, ...) -> the dataset folder (see conversion.convert): labels 'full' (liver
#   1, tumour 2) or 'tumour' (tumour 1).
# main(argv=None) -> exit status: the console command hlfd_convert_lits.
convert_lits, main = entry_points(SPEC, prog="hlfd_convert_lits", description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
