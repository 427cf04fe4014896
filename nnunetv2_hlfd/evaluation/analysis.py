"""The benchmark's analysis of its per-case table, which `report` renders: aggregates per fold and over all
cases, paired tests against the reference trainer, DSC by tumour size, the values lost to NaN and the lesions
pooled over cases."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nnunetv2_hlfd.evaluation.protocol import PROTOCOLS
from nnunetv2_hlfd.evaluation.settings import BenchmarkSettings
from nnunetv2_hlfd.evaluation.statistics import across_fold_summary, compare_to_reference, per_fold_summary

TERCILE_NAMES = ("small", "medium", "large")


@dataclass(frozen=True)
class BenchmarkResults:
    settings: BenchmarkSettings
    metrics: tuple[str, ...]
    per_case: pd.DataFrame
    per_fold: pd.DataFrame
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    tumour_sizes: pd.DataFrame | None  # None: no tumour class, paper protocol, or under three tumour cases
    protocol_notes: tuple[str, ...] = ()  # how the protocol was applied to this dataset, e.g. the slice axis
    provenance: dict = field(default_factory=dict)  # machine, software, split (`provenance.provenance`)
    undefined: pd.DataFrame | None = None  # `undefined_values`
    lesion_detection: pd.DataFrame | None = None  # `lesion_counts`; None without lesion counts

    @property
    def trainers(self) -> list[str]:
        return list(dict.fromkeys(self.per_case["trainer"]))

    @property
    def class_names(self) -> list[str]:
        return list(dict.fromkeys(self.per_case["class"]))


def analyse(
    table: pd.DataFrame,
    settings: BenchmarkSettings,
    metrics: Sequence[str],
    tumour_name: str | None,
    protocol_notes: Sequence[str] = (),
    provenance: dict | None = None,
    tested_metrics: Sequence[str] | None = None,
    primary_endpoint: tuple[str, str] | None = None,
) -> BenchmarkResults:
    """`metrics` are summarised; `tested_metrics` (default: all of them) tested against the reference,
    Holm-corrected within the families `primary_endpoint` declares (`statistics.holm_family`)."""
    metrics = tuple(metrics)
    comparisons = compare_to_reference(
        table, settings.reference, tested_metrics or metrics, primary_endpoint=primary_endpoint
    )
    tumour_sizes = None
    if not PROTOCOLS[settings.protocol].tumour_only and tumour_name is not None:
        tumour_sizes = dsc_by_tumour_size(table, tumour_name)
    return BenchmarkResults(
        settings,
        metrics,
        table,
        per_fold_summary(table, metrics),
        across_fold_summary(table, metrics),
        comparisons,
        tumour_sizes,
        tuple(protocol_notes),
        provenance or {},
        undefined=undefined_values(table, metrics),
        lesion_detection=lesion_counts(table),
    )


def dsc_by_tumour_size(table: pd.DataFrame, tumour_name: str) -> pd.DataFrame | None:
    """Each trainer's mean tumour DSC in the small, medium and large thirds of the cases (all
    folds together) by reference tumour volume; None with fewer than three tumour cases.
    The thirds are the same cases for every trainer: all are scored on the same cases."""
    tumour = table[table["class"] == tumour_name]
    frames = []
    for trainer, rows in tumour.groupby("trainer", sort=False):
        if (rows["reference_volume_ml"] > 0).sum() < len(TERCILE_NAMES):
            return None
        frames.append(dsc_by_volume_tercile(rows["reference_volume_ml"], rows["dsc"]).assign(trainer=trainer))
    return pd.concat(frames, ignore_index=True)[["trainer", *frames[0].columns[:-1]]] if frames else None


def undefined_values(per_case: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Per trainer, class and metric: how many cases have no value (NaN) and which."""
    rows = []
    for (trainer, class_name), cases in per_case.groupby(["trainer", "class"], sort=False):
        for metric in metrics:
            lost = cases[cases[metric].isna()]
            if len(lost):
                rows.append(
                    {
                        "trainer": trainer,
                        "class": class_name,
                        "metric": metric,
                        "n_undefined": len(lost),
                        "n_cases": len(cases),
                        "cases": ", ".join(f"fold {f} {c}" for f, c in zip(lost["fold"], lost["case"])),
                    }
                )
    return pd.DataFrame(rows, columns=["trainer", "class", "metric", "n_undefined", "n_cases", "cases"])


def lesion_counts(per_case: pd.DataFrame) -> pd.DataFrame | None:
    """Lesion detection pooled over all cases per trainer and class: detected reference lesions (TP),
    missed ones (FN), unmatched predicted lesions (FP), FP per case, and the pooled sensitivity and
    precision; None without lesion counts (paper protocol)."""
    columns = ["lesion_n_reference", "lesion_n_reference_detected", "lesion_n_predicted", "lesion_n_predicted_matched"]
    if not set(columns) <= set(per_case.columns):
        return None
    pooled = (
        per_case.groupby(["trainer", "class"], sort=False)
        .agg(n_cases=("case", "size"), **{column: (column, "sum") for column in columns})
        .reset_index()
    )
    tp, fp = pooled["lesion_n_reference_detected"], pooled["lesion_n_predicted"] - pooled["lesion_n_predicted_matched"]
    return pd.DataFrame(
        {
            "trainer": pooled["trainer"],
            "class": pooled["class"],
            "n_cases": pooled["n_cases"],
            "tp": tp,
            "fn": pooled["lesion_n_reference"] - tp,
            "fp": fp,
            "fp_per_case": fp / pooled["n_cases"],
            "sensitivity": tp / pooled["lesion_n_reference"].where(pooled["lesion_n_reference"] > 0),
            "precision": pooled["lesion_n_predicted_matched"]
            / pooled["lesion_n_predicted"].where(pooled["lesion_n_predicted"] > 0),
        }
    )


def dsc_by_volume_tercile(reference_volumes_ml: Sequence[float], dsc_values: Sequence[float]) -> pd.DataFrame:
    """Mean DSC of the small, medium and large thirds of the cases by reference volume.

    Cases without reference volume (0 mL: no tumour) are left out. The rest are sorted
    by volume (stably, so ties keep their input order) and cut into three groups whose
    sizes differ by at most one, the larger groups first. DSC is averaged NaN-aware.
    Columns: tercile, n_cases, n_valid, volume_min_ml, volume_max_ml, mean_dsc.
    """
    volumes = np.asarray(reference_volumes_ml, dtype=float)
    dsc_array = np.asarray(dsc_values, dtype=float)
    if volumes.shape != dsc_array.shape:
        raise ValueError(f"{volumes.size} volumes but {dsc_array.size} DSC values")
    with_tumour = volumes > 0
    volumes, dsc_array = volumes[with_tumour], dsc_array[with_tumour]
    if volumes.size < len(TERCILE_NAMES):
        raise ValueError(f"need at least 3 cases with reference volume, got {volumes.size}")
    groups = np.array_split(np.argsort(volumes, kind="stable"), len(TERCILE_NAMES))
    rows = [
        {
            "tercile": name,
            "n_cases": len(group),
            "n_valid": int(np.isfinite(dsc_array[group]).sum()),
            "volume_min_ml": float(volumes[group].min()),
            "volume_max_ml": float(volumes[group].max()),
            "mean_dsc": _nanmean(dsc_array[group]),
        }
        for name, group in zip(TERCILE_NAMES, groups)
    ]
    return pd.DataFrame(rows)


def _nanmean(values: np.ndarray) -> float:
    """Mean of the finite values; NaN (without a warning) when there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan
