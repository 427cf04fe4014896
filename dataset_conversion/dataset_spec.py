"""The declaration of one source dataset, all a dataset module (kits19.py, ..., lits.py) has to write."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_hlfd.dataset_conversion.discovery import Discovery


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
