"""Every label layout each converter offers: the labels written, and nnU-Net's own integrity check on the result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conversion_cases import (
    array,
    ct_array,
    label_array,
    make_kits_case,
    make_lits_case,
    verify_integrity_in_process,
    write_volume,
)
from nnunetv2_hlfd.dataset_conversion import kits19, kits21, kits23, lits
from nnunetv2_hlfd.dataset_conversion.label_layouts import CYST_CHOICES

FULL_KIDNEY = {"background": 0, "kidney": 1, "tumour": 2}
TUMOUR = {"background": 0, "tumour": 1}
REGIONS = {"background": 0, "kidney": [1, 2, 3], "masses": [2, 3], "tumor": 2}
# labels=full / tumour: what the cyst (source 3) becomes, and the labels dataset.json then declares
FULL_CYSTS = {"keep": (3, {**FULL_KIDNEY, "cyst": 3}), "kidney": (1, FULL_KIDNEY), "drop": (0, FULL_KIDNEY)}
TUMOUR_CYSTS = {"keep": (2, {**TUMOUR, "cyst": 2}), "kidney": (0, TUMOUR), "drop": (0, TUMOUR)}


def kits_input(label_name: str, values: tuple[int, ...], image_only: bool = False):
    def make(root: Path) -> list[str]:
        for case in (0, 1):
            make_kits_case(root, case, label_name=label_name, label_values=values)
        if image_only:
            make_kits_case(root, 210, label_name=None)
        return ["case_00000", "case_00001"]

    return make


def lits_input(root: Path) -> list[str]:
    make_lits_case(root, 0)
    make_lits_case(root, 1, ext=".nii.gz")
    write_volume(root / "test-volume-0.nii", ct_array(100))
    return ["liver_0", "liver_1"]


KITS19 = kits_input("segmentation.nii.gz", (0, 1, 2), image_only=True)
KITS21 = kits_input("aggregated_MAJ_seg.nii.gz", (0, 1, 2, 3))
KITS23 = kits_input("segmentation.nii.gz", (0, 1, 2, 3))

# (converter module, input maker, labels, cysts, source value -> written value, dataset.json labels)
LAYOUTS = [
    (kits19, KITS19, "full", None, {0: 0, 1: 1, 2: 2}, FULL_KIDNEY),
    (kits19, KITS19, "tumour", None, {0: 0, 1: 0, 2: 1}, TUMOUR),
    *[
        (module, make, "full", cysts, {0: 0, 1: 1, 2: 2, 3: FULL_CYSTS[cysts][0]}, FULL_CYSTS[cysts][1])
        for module, make in ((kits21, KITS21), (kits23, KITS23))
        for cysts in CYST_CHOICES
    ],
    *[
        (module, make, "tumour", cysts, {0: 0, 1: 0, 2: 1, 3: TUMOUR_CYSTS[cysts][0]}, TUMOUR_CYSTS[cysts][1])
        for module, make in ((kits21, KITS21), (kits23, KITS23))
        for cysts in CYST_CHOICES
    ],
    (kits23, KITS23, "regions", None, {0: 0, 1: 1, 2: 2, 3: 3}, REGIONS),
    (kits23, KITS23, "regions", "keep", {0: 0, 1: 1, 2: 2, 3: 3}, REGIONS),
    (lits, lits_input, "full", None, {0: 0, 1: 1, 2: 2}, {"background": 0, "liver": 1, "tumour": 2}),
    (lits, lits_input, "tumour", None, {0: 0, 1: 0, 2: 1}, TUMOUR),
]


def layout_id(layout) -> str:
    module, _, labels, cysts = layout[:4]
    return f"{module.__name__.rsplit('.', 1)[1]}-{labels}" + (f"-cysts_{cysts}" if cysts else "")


def test_every_offered_layout_is_covered():
    offered = {
        (m.SPEC.name, labels, cysts)
        for m in (kits19, kits21, kits23, lits)
        for labels in m.SPEC.label_layouts
        for cysts in (CYST_CHOICES if m.SPEC.has_cysts and labels != "regions" else (None,))
    }
    assert offered <= {(m.SPEC.name, labels, cysts) for m, _, labels, cysts, *_ in LAYOUTS}


@pytest.mark.parametrize("layout", LAYOUTS, ids=layout_id)
def test_layout_writes_its_labels_and_passes_nnunet_integrity_check(layout, tmp_path, monkeypatch):
    module, make_input, labels, cysts, mapping, declared = layout
    cases = make_input(tmp_path / "input")
    kwargs = {"cysts": cysts} if cysts else {}
    convert = getattr(module, f"convert_{module.__name__.rsplit('.', 1)[1]}")  # the public convert_kits19 etc.
    out = convert(tmp_path / "input", tmp_path / "raw", labels=labels, num_processes=1, **kwargs)
    dataset_json = json.loads((out / "dataset.json").read_text())
    assert dataset_json["labels"] == declared
    lookup = np.zeros(4, dtype=np.uint8)
    lookup[list(mapping)] = list(mapping.values())
    source = label_array(tuple(mapping))
    written = [array(out / "labelsTr" / f"{case}.nii.gz") for case in cases]
    for labels_written in written:
        np.testing.assert_array_equal(labels_written, lookup[source])
    # the input exercises every written value, so a wrong declaration cannot pass unseen
    assert set(np.unique(written)) == set(mapping.values())
    verify_integrity_in_process(out, monkeypatch)  # raises on any problem
