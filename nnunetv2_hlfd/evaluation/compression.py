"""The compression report's measurements: what each trained model costs, and the table beside its DSC.

Always: parameters and multiply-adds per patch of the inference network (no deep supervision), counted on the
meta device by `nnunetv2_hlfd.models.cost`. Optionally, per device (default: the CPU, and the GPU where torch sees
one): latency and peak memory of one patch and of whole validation volumes (`timing.model_speed`), on the first
`volume_cases` validation cases of the first benchmarked fold. Speed ratios to the teacher are taken round by
round; a ratio whose range over the rounds includes 1 is reported as no difference, never as a speed-up
(`timing.verdict.speed_ratio`).

`compression_table` puts these beside each model's DSC and its DSC deltas to the teacher
and to the reference trainer (the student without distillation), all on common cases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from nnunetv2_hlfd.evaluation import model_folders
from nnunetv2_hlfd.evaluation.model_folders import BenchmarkDataset, ModelFolder
from nnunetv2_hlfd.evaluation.statistics import common_case_means
from nnunetv2_hlfd.evaluation.timing.model_speed import measure_speed, timing_devices
from nnunetv2_hlfd.evaluation.timing.verdict import speed_ratio
from nnunetv2_hlfd.models.cost import model_cost
from nnunetv2_hlfd.models.model_plans import ModelPlans


@dataclass(frozen=True)
class ModelCosts:
    """`cost`: one row per model; `speed`: one row per model and device, None with --no-speed."""

    cost: pd.DataFrame
    speed: pd.DataFrame | None


def measure_models(models: Sequence[ModelFolder], dataset: BenchmarkDataset, settings) -> ModelCosts:
    cost = pd.DataFrame([network_cost(model) for model in models])
    if not settings.speed:
        return ModelCosts(cost, None)
    # the same cases for every model: the first validation cases of the first benchmarked fold
    fold = settings.folds[0]
    cases = dataset.validation_cases(fold)[: settings.volume_cases]
    speed = [
        row
        for device in timing_devices(settings.devices)
        for row in measure_speed(models, fold, cases, dataset, torch.device(device), settings.repetitions)
    ]
    return ModelCosts(cost, pd.DataFrame(speed))


# --- parameters and multiply-adds -----------------------------------------------------------


def network_cost(model: ModelFolder) -> dict:
    plans = ModelPlans.of_folder(model.path, model.configuration)
    trainer_class = model_folders.trainer_class(model)
    cost = model_cost(lambda: plans.build_network(trainer_class), (1, plans.num_input_channels, *plans.patch_size))
    return {
        "trainer": model.label,
        "parameters": cost.parameters,
        "macs_per_patch": cost.macs_per_patch,
        "patch_size": "x".join(map(str, plans.patch_size)),
    }


# --- the compression table ----------------------------------------------------------------


def compression_table(costs: ModelCosts, per_case: pd.DataFrame, teacher: str, reference: str) -> pd.DataFrame:
    """One row per model: cost (and its share of the teacher's), speed per device, DSC per
    class and the mean over classes, and every DSC's difference to the teacher and to the
    reference. DSC is averaged over the cases every model has a value for (paired as the tests
    pair them, `statistics.common_case_means`; n_cases_dsc_<class> of them), so each difference
    is the mean paired difference on the same cases. Shares and differences to a teacher not
    benchmarked are NaN."""
    table = costs.cost.set_index("trainer")
    for column in ("parameters", "macs_per_patch"):
        table[f"{column}_vs_teacher"] = table[column] / table[column].get(teacher, math.nan)
    table = table[["patch_size", "parameters", "parameters_vs_teacher", "macs_per_patch", "macs_per_patch_vs_teacher"]]
    if costs.speed is not None:
        table = table.join(speed_by_device(costs.speed)).join(speedups(costs.speed, teacher))
    dsc, n_cases = dsc_per_class(per_case)
    table = table.join(dsc)
    for baseline_name, baseline in (("teacher", teacher), ("reference", reference)):
        baseline_dsc = dsc.loc[baseline] if baseline in dsc.index else math.nan
        table = table.join((dsc - baseline_dsc).add_prefix("delta_").add_suffix(f"_vs_{baseline_name}"))
    return table.assign(**n_cases).reset_index()


SPEED_MEASURES = (
    "patch_latency_ms",
    "patch_peak_memory_mib",
    "volume_latency_s",
    "volume_latency_min_s",  # the range over rounds of each round's median over the cases
    "volume_latency_max_s",
    "volume_peak_memory_mib",
)


def speed_by_device(speed: pd.DataFrame) -> pd.DataFrame:
    """One row per model, one column per measure and device, e.g. volume_latency_s_cpu."""
    wide = speed.pivot(index="trainer", columns="device", values=[m for m in SPEED_MEASURES if m in speed.columns])
    wide.columns = [f"{measure}_{device}" for measure, device in wide.columns]
    return wide


def speedups(speed: pd.DataFrame, teacher: str) -> pd.DataFrame:
    """Per model and device: patch and volume speed against the teacher's, round by round."""
    rows = {}
    for device, timings in speed.groupby("device", sort=False):
        timings = timings.set_index("trainer")
        for trainer, row in timings.iterrows():
            for measure, column in (("patch", "patch_latencies_ms"), ("volume", "volume_round_seconds")):
                rows.setdefault(trainer, {})[f"{measure}_speed_vs_teacher_{device}"] = (
                    speed_ratio(timings.loc[teacher, column], row[column]) if teacher in timings.index else "n/a"
                )
    return pd.DataFrame.from_dict(rows, orient="index")


def dsc_per_class(per_case: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """(DSC per trainer and class on the cases common to all trainers, with their mean over
    classes; {n_cases_dsc_<class>: how many common cases})."""
    means = common_case_means(per_case, "dsc")
    dsc = means.pivot(index="trainer", columns="class", values="mean")
    dsc = dsc[list(dict.fromkeys(means["class"]))].add_prefix("dsc_")
    n_cases = {
        f"n_cases_dsc_{name}": int(n) for name, n in means.groupby("class", sort=False)["n_cases"].first().items()
    }
    return dsc.assign(dsc_mean=dsc.mean(axis=1)), n_cases
