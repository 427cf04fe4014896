"""The compression report's measurements: what each trained model costs.

Always: parameters and multiply-adds per patch of the inference network (no deep
supervision), counted on the meta device by `nnunetv2_hlfd.cost`. Optionally, per device
(default: the CPU, and the GPU where torch sees one): latency and peak memory of one
network forward pass on one patch, and of nnU-Net's own prediction of whole preprocessed
validation cases (`nnUNetPredictor`, sliding window with nnUNetv2_predict's defaults: step
0.5, Gaussian weighting, mirroring; the logits path, without resampling or export): the
first `volume_cases` validation cases of the first benchmarked fold.

Each measured call runs once untimed, which warms up and measures peak memory, then
`repetitions` times timed; a case's latency is the median of its timings, the volume
latency the median over the cases, and the volume peak memory the largest of the cases.
Peak memory, on a GPU: torch.cuda.max_memory_allocated during the call (weights, input,
activations and output together). On the CPU: how far the process's peak resident set
size (VmHWM in /proc/self/status, reset through /proc/self/clear_refs; Linux) rose above
its resident size right before the call; NaN where it cannot be reset. tracemalloc is
not used: it does not see torch's allocations.

`compression_table` puts these beside each model's DSC and its DSC deltas to the teacher
and to the reference trainer (the student without distillation), all on common cases.
"""
from __future__ import annotations

import contextlib
import gc
import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from nnunetv2.configuration import default_num_processes
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_hlfd.cost import model_cost
from nnunetv2_hlfd.trainer_classes import environment, trainer_search_path
from nnunetv2_hlfd.evaluation import results
from nnunetv2_hlfd.evaluation.results import BenchmarkDataset, BenchmarkInputError, ModelFolder
from nnunetv2_hlfd.evaluation.statistics import common_case_means

MIB = 2 ** 20
MEMORY_MEASURES = {
    "cuda": "torch.cuda.max_memory_allocated during the call",
    "cpu": "rise of the peak RSS (VmHWM, reset via /proc/self/clear_refs) over the RSS before the call",
}


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
    cases = dataset.validation_cases(fold)[:settings.volume_cases]
    speed = [measure_speed(model, fold, cases, dataset, torch.device(device), settings.repetitions)
             for model in models for device in timing_devices(settings.devices)]
    return ModelCosts(cost, pd.DataFrame(speed))


def timing_devices(devices: Sequence[str] | None) -> tuple[str, ...]:
    """The devices asked for; by default the CPU and, where torch sees one, the GPU."""
    if devices:
        return tuple(devices)
    return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


# --- parameters and multiply-adds -----------------------------------------------------------

@dataclass(frozen=True)
class ModelPlans:
    """A model folder's own plans and labels: its network, patch and preprocessing."""

    plans_manager: PlansManager
    configuration_manager: object
    dataset_json: dict

    @classmethod
    def of(cls, model: ModelFolder) -> "ModelPlans":
        plans_manager = PlansManager(str(model.path / "plans.json"))
        return cls(plans_manager, plans_manager.get_configuration(model.configuration),
                   json.loads((model.path / "dataset.json").read_text()))

    @property
    def num_input_channels(self) -> int:
        from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

        return determine_num_input_channels(self.plans_manager, self.configuration_manager, self.dataset_json)

    @property
    def patch_size(self) -> tuple[int, ...]:
        return tuple(self.configuration_manager.patch_size)


def network_cost(model: ModelFolder) -> dict:
    plans = ModelPlans.of(model)
    trainer_class = results.trainer_class(model)
    heads = plans.plans_manager.get_label_manager(plans.dataset_json).num_segmentation_heads
    cost = model_cost(lambda: trainer_class.build_network_architecture(
        plans.plans_manager, plans.configuration_manager, plans.num_input_channels, heads,
        enable_deep_supervision=False), (1, plans.num_input_channels, *plans.patch_size))
    return {"trainer": model.label, "parameters": cost.parameters, "macs_per_patch": cost.macs_per_patch,
            "patch_size": "x".join(map(str, plans.patch_size))}


# --- latency and peak memory --------------------------------------------------------------

def measure_speed(model: ModelFolder, fold: int, cases: Sequence[str], dataset: BenchmarkDataset,
                  device: torch.device, repetitions: int) -> dict:
    print(f"Timing {model.label} on {device.type}: one patch and {len(cases)} validation case(s) "
          f"({', '.join(cases)}), {repetitions} repetition(s) each")
    predictor = load_predictor(model, fold, device)
    network = predictor.network.to(device).eval()
    network.load_state_dict(predictor.list_of_parameters[0])
    plans = ModelPlans.of(model)
    patch = torch.randn((1, plans.num_input_channels, *plans.patch_size), device=device)

    def forward_patch():
        with torch.inference_mode(), autocast_as_nnunet(device):
            network(patch)

    with nnunet_thread_count(device):
        threads = torch.get_num_threads()
        patch_memory, patch_seconds = measure_call(forward_patch, device, repetitions)
        volumes = {case: measure_volume(predictor, model, case, dataset, device, repetitions) for case in cases}
    return {"trainer": model.label, "device": device.type, "hardware": hardware_name(device),
            "threads": threads, "repetitions": repetitions,
            "patch_latency_ms": 1000 * statistics.median(patch_seconds),
            "patch_peak_memory_mib": patch_memory,
            "patch_latencies_ms": [round(1000 * s, 3) for s in patch_seconds],
            "memory_measure": MEMORY_MEASURES[device.type]} | volume_summary(volumes)


def volume_summary(volumes: dict[str, tuple[float, list[float]]]) -> dict:
    """{case: (peak MiB, timed seconds)} to the volume measures: the median over the cases of
    each case's median latency, and the largest peak memory."""
    case_latencies = {case: statistics.median(seconds) for case, (_, seconds) in volumes.items()}
    return {"cases": " ".join(volumes), "n_cases": len(volumes),
            "volume_latency_s": statistics.median(case_latencies.values()),
            "volume_peak_memory_mib": max(memory for memory, _ in volumes.values()),
            "volume_latency_s_per_case": json.dumps({case: round(s, 4) for case, s in case_latencies.items()}),
            "volume_latencies_s": json.dumps({case: [round(s, 4) for s in seconds]
                                              for case, (_, seconds) in volumes.items()})}


def measure_volume(predictor, model: ModelFolder, case: str, dataset: BenchmarkDataset, device: torch.device,
                   repetitions: int) -> tuple[float, list[float]]:
    """nnU-Net's sliding-window prediction of one whole preprocessed case: (peak MiB, seconds)."""
    volume = load_preprocessed_case(model, case, dataset)
    return measure_call(lambda: predictor.predict_logits_from_preprocessed_data(volume), device, repetitions)


def check_devices(devices: Sequence[str]) -> None:
    if "cuda" in devices and not torch.cuda.is_available():
        raise BenchmarkInputError("--device cuda was asked for, but torch sees no CUDA device; "
                                  "time on --device cpu, or pass --no-speed")


def hardware_name(device: torch.device) -> str:
    import platform

    return torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())


def load_predictor(model: ModelFolder, fold: int, device: torch.device):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                perform_everything_on_device=device.type == "cuda", device=device,
                                verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    # nnU-Net looks the trainer class up itself: where the benchmark found it (results.trainer_class)
    with environment(nnUNet_extTrainer=trainer_search_path()):
        predictor.initialize_from_trained_model_folder(str(model.path), use_folds=(fold,),
                                                       checkpoint_name=model.checkpoint(fold).name)
    return predictor


def load_preprocessed_case(model: ModelFolder, case: str, dataset: BenchmarkDataset) -> torch.Tensor:
    """One case as the model's own preprocessing left it, as nnU-Net's validation loads it."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    configuration = ModelPlans.of(model).configuration_manager
    if configuration.previous_stage_name is not None:
        raise BenchmarkInputError(f"latency of cascade stages ({model.label} {model.configuration}) needs the "
                                  f"previous stage's predictions and is not measured; pass --no-speed")
    folder = dataset.preprocessed / configuration.data_identifier
    if not folder.is_dir():
        raise BenchmarkInputError(f"{folder} does not exist: preprocess {model.configuration} with the plans of "
                                  f"{model.label} ({model.plans}), or pass --no-speed")
    data, _, _, _ = infer_dataset_class(str(folder))(str(folder), [case]).load_case(case)
    return torch.from_numpy(np.ascontiguousarray(data[:]))  # [:] reads a blosc2 array into memory


def autocast_as_nnunet(device: torch.device):
    """nnU-Net's predictor runs CUDA under autocast and the CPU in float32."""
    return torch.autocast("cuda", enabled=True) if device.type == "cuda" else contextlib.nullcontext()


@contextlib.contextmanager
def nnunet_thread_count(device: torch.device):
    """The CPU thread count nnU-Net's predictor sets for itself, for the patch too, so both
    measurements use the same threads."""
    previous = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(min(default_num_processes, previous))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def measure_call(call: Callable[[], None], device: torch.device, repetitions: int) -> tuple[float, list[float]]:
    """(peak memory of the first, untimed call in MiB, the next `repetitions` calls' seconds)."""
    memory = peak_memory_mib(call, device)
    seconds = []
    for _ in range(repetitions):
        synchronize(device)
        start = time.perf_counter()
        call()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return memory, seconds


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mib(call: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        call()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) / MIB
    gc.collect()
    if not reset_peak_rss():
        call()
        return math.nan
    before = process_memory_kib("VmRSS")
    call()
    return (process_memory_kib("VmHWM") - before) / 1024


def reset_peak_rss() -> bool:
    """Set the process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def process_memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])  # "VmHWM:   123456 kB"
    raise OSError(f"/proc/self/status has no {field}")


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
        table = table.join(speed_by_device(costs.speed))
    dsc, n_cases = dsc_per_class(per_case)
    table = table.join(dsc)
    for baseline_name, baseline in (("teacher", teacher), ("reference", reference)):
        baseline_dsc = dsc.loc[baseline] if baseline in dsc.index else math.nan
        table = table.join((dsc - baseline_dsc).add_prefix("delta_").add_suffix(f"_vs_{baseline_name}"))
    return table.assign(**n_cases).reset_index()


SPEED_MEASURES = ("patch_latency_ms", "patch_peak_memory_mib", "volume_latency_s", "volume_peak_memory_mib")


def speed_by_device(speed: pd.DataFrame) -> pd.DataFrame:
    """One row per model, one column per measure and device, e.g. volume_latency_s_cpu."""
    wide = speed.pivot(index="trainer", columns="device", values=list(SPEED_MEASURES))
    wide.columns = [f"{measure}_{device}" for measure, device in wide.columns]
    return wide


def dsc_per_class(per_case: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """(DSC per trainer and class on the cases common to all trainers, with their mean over
    classes; {n_cases_dsc_<class>: how many common cases})."""
    means = common_case_means(per_case, "dsc")
    dsc = means.pivot(index="trainer", columns="class", values="mean")
    dsc = dsc[list(dict.fromkeys(means["class"]))].add_prefix("dsc_")
    n_cases = {f"n_cases_dsc_{name}": int(n) for name, n in means.groupby("class", sort=False)["n_cases"].first().items()}
    return dsc.assign(dsc_mean=dsc.mean(axis=1)), n_cases
