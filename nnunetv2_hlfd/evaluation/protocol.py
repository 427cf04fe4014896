"""The benchmark's two protocols, each one object: what it scores, compares and tests, and how it is named.

standard: every class, every metric nnU-Net users read. paper: the reference HLFD code's tumour DSC and
RVD on the tumour-bearing slices (metrics.paper_protocol_scores). Stdlib only, like settings.py.
"""

from __future__ import annotations

from dataclasses import dataclass

# Compared between trainers; volumes and lesion counts stay descriptive (CSV/JSON only).
STANDARD_METRICS = (
    "dsc",
    "rvd",
    "abs_rvd",
    "voe",
    "hd95",
    "surface_dice",
    "lesion_sensitivity",
    "lesion_precision",
    "lesion_f1",
)
# Tested against the reference: VOE follows DSC case by case, |RVD| is RVD's size, lesion
# sensitivity and precision make up F1; those stay descriptive, out of the Holm families.
STANDARD_TESTED_METRICS = ("dsc", "rvd", "hd95", "surface_dice", "lesion_f1")
PAPER_METRICS = ("dsc", "rvd")


@dataclass(frozen=True)
class Protocol:
    name: str
    compared_metrics: tuple[str, ...]
    tested_metrics: tuple[str, ...]
    tumour_only: bool  # scores the tumour class alone (and so needs one)
    output_suffix: str  # of the default output folder, hlfd_benchmark_<configuration><suffix>
    metric_labels: dict[str, str] | None = None  # the figures' axes where the metric's own name is not enough
    dsc_axis: str = "mean DSC over classes"  # accuracy-versus-cost figure

    def classes(self, class_names: dict, tumour) -> list[str]:
        """The class names whose comparisons this protocol tests."""
        return [class_names[tumour]] if self.tumour_only else list(class_names.values())


STANDARD = Protocol("standard", STANDARD_METRICS, STANDARD_TESTED_METRICS, tumour_only=False, output_suffix="")
PAPER = Protocol(
    "paper",
    PAPER_METRICS,
    PAPER_METRICS,
    tumour_only=True,
    output_suffix="_paper",
    metric_labels={"dsc": "tumour DSC (tumour slices)", "rvd": "tumour RVD (tumour slices)"},
    dsc_axis="tumour DSC (tumour slices)",
)
PROTOCOLS = {protocol.name: protocol for protocol in (STANDARD, PAPER)}
