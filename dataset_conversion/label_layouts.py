"""The label layouts a conversion can write (``full``, ``tumour``, nnU-Net's KiTS23 ``regions``) and the choice
of what happens to cysts."""

from __future__ import annotations

from dataclasses import dataclass

from nnunetv2_hlfd.dataset_conversion.conversion_error import ConversionError
from nnunetv2_hlfd.dataset_conversion.dataset_spec import DatasetSpec

CYST_CHOICES = ("keep", "kidney", "drop")


@dataclass(frozen=True)
class LabelLayout:
    labels: dict[str, int | tuple[int, ...]]  # dataset.json "labels"
    mapping: dict[int, int]  # source value -> written value
    regions_class_order: tuple[int, ...] | None = None


# nnU-Net's own KiTS23 regions (nnunetv2/dataset_conversion/Dataset220_KiTS2023.py): the source labels are kept
# and trained as nested regions; regions_class_order turns predicted regions back into 1 kidney, 2 tumour, 3 cyst.
KITS23_REGIONS = LabelLayout(
    labels={"background": 0, "kidney": (1, 2, 3), "masses": (2, 3), "tumor": 2},
    mapping={0: 0, 1: 1, 2: 2, 3: 3},
    regions_class_order=(1, 3, 2),
)


def label_layout(spec: DatasetSpec, labels: str, cysts: str | None) -> LabelLayout:
    """The labels written for ``--labels`` / ``--cysts``; refuses combinations that would be ambiguous.

    Where the dataset has cysts (KiTS21/23), ``full`` and ``tumour`` need an explicit ``cysts``: no silent default.

    full:    background 0, organ 1, tumour 2; cysts keep -> 3, kidney -> 1, drop -> 0.
    tumour:  the paper's protocol, tumour 1 against everything else; cysts keep -> 2, kidney or drop -> 0.
    regions: KiTS23 only, nnU-Net's region layout; it keeps the cysts, so only ``cysts`` None or 'keep'.
    """
    if labels not in spec.label_layouts:
        raise ConversionError(
            f"labels={labels!r} is not offered for {spec.name}; choose one of {', '.join(spec.label_layouts)}"
        )
    if cysts is not None and cysts not in CYST_CHOICES:
        raise ConversionError(f"cysts={cysts!r} is not an option; choose one of {', '.join(CYST_CHOICES)}")
    if cysts is not None and not spec.has_cysts:
        raise ConversionError(f"{spec.name} has no cyst label; leave out --cysts")
    if labels == "regions":
        if cysts not in (None, "keep"):
            raise ConversionError(
                "the region layout keeps cysts (masses = tumour + cyst); "
                "leave out --cysts or use --cysts keep, or use --labels full"
            )
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
    return (
        f"--labels {labels} on {spec.name} needs an explicit --cysts: {choices}; "
        f"add --cysts keep, --cysts kidney or --cysts drop (in Python: cysts='keep', 'kidney' or 'drop')"
    )
