"""The compression report's measurements: what each trained model costs.

Always: parameters and multiply-adds per patch of the inference network (no deep
supervision), counted on the meta device by `nnunetv2_hlfd.cost`. Optionally, per device
(default: the CPU, and the GPU where torch sees one): latency and peak memory of one
network forward pass on one patch, and of nnU-Net's own prediction of whole preprocessed
validation cases (`nnUNetPredictor`, sliding window with nnUNetv2_predict's defaults: step
0.5, Gaussian weighting, mirroring; the logits path, without resampling or export): the
first `volume_cases` validation cases of the first benchmarked fold.

Each measured call runs once untimed, which warms up and measures peak memory; then
`repetitions` rounds run every call of every model once (interleaved, as the speed command
does), so all models see the same machine load. A case's latency is the median of its
rounds, the volume latency the median over the cases, the volume peak memory the largest of
the cases; the patch latency comes with its quartiles. Peak memory is torch's own allocations
during the call above those before it (`nnunetv2_hlfd.timing.peak_memory`): on a GPU from
torch.cuda.max_memory_allocated, on the CPU from the profiler's memory events (the process's
resident size, which the allocator keeps, would read 0 for a call that fits into memory the
process already holds). Speed ratios to the teacher are taken round by round; a ratio whose
range over the rounds includes 1 is reported as no difference, never as a speed-up.

`compression_table` puts these beside each model's DSC and its DSC deltas to the teacher
and to the reference trainer (the student without distillation), all on common cases.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from nnunetv2.configuration import default_num_processes

from nnunetv2_hlfd.cost import model_cost
from nnunetv2_hlfd.environment import temporary_environment
from nnunetv2_hlfd.evaluation import model_folders
from nnunetv2_hlfd.evaluation.held_out import HeldOutSet
from nnunetv2_hlfd.evaluation.model_folders import BenchmarkDataset, BenchmarkInputError, ModelFolder
from nnunetv2_hlfd.evaluation.provenance import hardware_name
from nnunetv2_hlfd.evaluation.speed_verdict import MIN_ROUNDS_FOR_A_VERDICT, false_verdict_rate
from nnunetv2_hlfd.evaluation.statistics import common_case_means
from nnunetv2_hlfd.model_plans import ModelPlans
from nnunetv2_hlfd.timing import default_device, peak_memory, time_side_by_side
from nnunetv2_hlfd.trainer_search import trainer_search_path

MIB = 2**20
MEMORY_MEASURES = {  # both by nnunetv2_hlfd.timing.peak_memory
    "cuda": "peak of torch.cuda.max_memory_allocated during the call above the memory allocated before it",
    "cpu": "peak of torch's CPU allocations during the call (profiler memory events) above those before it",
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
    cases = dataset.validation_cases(fold)[: settings.volume_cases]
    speed = [
        row
        for device in timing_devices(settings.devices)
        for row in measure_speed(models, fold, cases, dataset, torch.device(device), settings.repetitions)
    ]
    return ModelCosts(cost, pd.DataFrame(speed))


def timing_devices(devices: Sequence[str] | None) -> tuple[str, ...]:
    """The devices asked for; by default the CPU and, where torch sees one, the GPU."""
    if devices:
        return tuple(devices)
    return tuple(dict.fromkeys(("cpu", default_device())))


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


# --- latency and peak memory --------------------------------------------------------------


def measure_speed(
    models: Sequence[ModelFolder],
    fold: int,
    cases: Sequence[str],
    dataset: BenchmarkDataset,
    device: torch.device,
    repetitions: int,
) -> list[dict]:
    """Every model's patch forward pass and whole-volume predictions on one device: each call once
    untimed (warm-up and peak memory), then `repetitions` rounds that run every call of every
    model once, so that all models see the same machine load (`nnunetv2_hlfd.timing`)."""
    print(
        f"Timing {', '.join(model.label for model in models)} on {device.type}: one patch and {len(cases)} "
        f"validation case(s) ({', '.join(cases)}), {repetitions} interleaved round(s)"
    )
    volumes: dict[tuple[str, str], torch.Tensor] = {}  # models of the same plans share their inputs
    calls = {
        f"{model.label}|{name}": call
        for model in models
        for name, call in model_calls(model, fold, cases, dataset, device, volumes).items()
    }
    with nnunet_thread_count(device):
        threads = torch.get_num_threads()
        memory = {name: peak_memory(call, device) / MIB for name, call in calls.items()}  # also the warm-up
        times = {
            name: list(measurement.times)
            for name, measurement in time_side_by_side(calls, device, warmup=0, steps=repetitions).items()
        }
    return [
        speed_row(model.label, cases, times, memory)
        | {
            "device": device.type,
            "hardware": hardware_name(device),
            "threads": threads,
            "repetitions": repetitions,
            "memory_measure": MEMORY_MEASURES[device.type],
        }
        for model in models
    ]


def model_calls(
    model: ModelFolder, fold: int, cases: Sequence[str], dataset: BenchmarkDataset, device: torch.device, volumes: dict
) -> dict[str, Callable[[], object]]:
    """{"patch": one forward pass on a random patch, case: nnU-Net's prediction of that case}."""
    predictor = load_predictor(model, (fold,), device)
    network = predictor.network.to(device).eval()
    network.load_state_dict(predictor.list_of_parameters[0])
    plans = ModelPlans.of_folder(model.path, model.configuration)
    patch = torch.randn((1, plans.num_input_channels, *plans.patch_size), device=device)

    def forward_patch():
        with torch.inference_mode(), autocast_as_nnunet(device):
            network(patch)

    calls: dict[str, Callable[[], object]] = {"patch": forward_patch}
    for case in cases:
        key = (plans.configuration_manager.data_identifier, case)
        if key not in volumes:
            volumes[key] = load_preprocessed_case(model, case, dataset)
        calls[case] = functools.partial(predictor.predict_logits_from_preprocessed_data, volumes[key])
    return calls


def speed_row(label: str, cases: Sequence[str], times: dict[str, list[float]], memory: dict[str, float]) -> dict:
    """One model's row of speed.csv from the seconds of every round and the peak MiB of every call."""
    patch_ms = [1000 * s for s in times[f"{label}|patch"]]
    case_seconds = {case: times[f"{label}|{case}"] for case in cases}
    return {
        "trainer": label,
        "patch_latency_ms": statistics.median(patch_ms),
        "patch_latency_q25_ms": float(np.percentile(patch_ms, 25)),
        "patch_latency_q75_ms": float(np.percentile(patch_ms, 75)),
        "patch_peak_memory_mib": memory[f"{label}|patch"],
        "patch_latencies_ms": [round(ms, 3) for ms in patch_ms],
        # a round's volume time: all its cases, so rounds of two models compare the same work
        "volume_round_seconds": [round(sum(round_times), 4) for round_times in zip(*case_seconds.values())],
    } | volume_summary({case: (memory[f"{label}|{case}"], seconds) for case, seconds in case_seconds.items()})


def volume_summary(volumes: dict[str, tuple[float, list[float]]]) -> dict:
    """{case: (peak MiB, timed seconds)} to the volume measures: the median over the cases of
    each case's median latency, and the largest peak memory."""
    case_latencies = {case: statistics.median(seconds) for case, (_, seconds) in volumes.items()}
    # the spread over rounds: each round's median over the cases
    round_medians = [statistics.median(times) for times in zip(*(seconds for _, seconds in volumes.values()))]
    return {
        "cases": " ".join(volumes),
        "n_cases": len(volumes),
        "volume_latency_s": statistics.median(case_latencies.values()),
        "volume_latency_min_s": min(round_medians),
        "volume_latency_max_s": max(round_medians),
        "volume_peak_memory_mib": max(memory for memory, _ in volumes.values()),
        "volume_latency_s_per_case": json.dumps({case: round(s, 4) for case, s in case_latencies.items()}),
        "volume_latencies_s": json.dumps(
            {case: [round(s, 4) for s in seconds] for case, (_, seconds) in volumes.items()}
        ),
    }


def check_devices(devices: Sequence[str]) -> None:
    if "cuda" in devices and not torch.cuda.is_available():
        raise BenchmarkInputError(
            "--device cuda was asked for, but torch sees no CUDA device; time on --device cpu, or pass --no-speed"
        )


def load_predictor(model: ModelFolder, folds: Sequence[int | str], device: torch.device, mirroring: bool = True):
    """nnU-Net's predictor of these folds of a model folder (several: nnU-Net's fold ensemble, which
    averages the folds' logits), with nnUNetv2_predict's defaults: tile step 0.5, Gaussian weighting,
    test-time mirroring along the axes the checkpoint allows unless `mirroring` is off, everything on
    the device where it is a GPU."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    # nnU-Net 2.8 prints that perform_everything_on_device=True is cuda-only on every other device, even when
    # it is False, and narrates its trainer search: nothing a user can act on, once per model loaded
    with contextlib.redirect_stdout(io.StringIO()):
        predictor = nnUNetPredictor(
            tile_step_size=0.5,
            use_gaussian=True,
            use_mirroring=mirroring,
            perform_everything_on_device=device.type == "cuda",
            device=device,
            verbose=False,
            verbose_preprocessing=False,
            allow_tqdm=False,
        )
    # nnU-Net looks the trainer class up itself: where the benchmark found it (model_folders.trainer_class)
    with temporary_environment(nnUNet_extTrainer=trainer_search_path()), contextlib.redirect_stdout(io.StringIO()):
        predictor.initialize_from_trained_model_folder(
            str(model.path), use_folds=tuple(folds), checkpoint_name=model.checkpoint(folds[0]).name
        )
    return predictor


def load_preprocessed_case(model: ModelFolder, case: str, dataset: BenchmarkDataset) -> torch.Tensor:
    """One case as the model's own preprocessing left it, as nnU-Net's validation loads it."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    configuration = ModelPlans.of_folder(model.path, model.configuration).configuration_manager
    if configuration.previous_stage_name is not None:
        raise BenchmarkInputError(
            f"latency of cascade stages ({model.label} {model.configuration}) needs the "
            f"previous stage's predictions and is not measured; pass --no-speed"
        )
    folder = dataset.preprocessed / configuration.data_identifier
    if not folder.is_dir():
        raise BenchmarkInputError(
            f"{folder} does not exist: preprocess {model.configuration} with the plans of "
            f"{model.label} ({model.plans}), or pass --no-speed"
        )
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


# --- the deployment comparison: whole test volumes --------------------------------------


@dataclass(frozen=True)
class Measured:
    """One configuration's timings (seconds of each round, per case) and peak memory (MiB, per case)."""

    configuration: object  # a deployment.Configuration: name, folder, model, folds, mirroring
    mirror_axes: tuple[int, ...] | None
    seconds: dict[str, list[float]]
    memory_mib: dict[str, float]

    @property
    def mirrored_passes(self) -> int:
        """Network passes per window and member: nnU-Net's predictor runs the window and every
        combination of flips along its mirror axes (2d: 4, 3d: 8); 1 without mirroring."""
        axes = self.mirror_axes if self.configuration.mirroring else None
        return 2 ** len(axes) if axes else 1

    @property
    def passes_per_window(self) -> int:
        return len(self.configuration.folds) * self.mirrored_passes

    @property
    def round_seconds(self) -> list[float]:
        """Each round's seconds over all cases, so rounds of two configurations compare the same work."""
        return [sum(times) for times in zip(*self.seconds.values())]


def predict(predictor, image, properties: dict):
    """nnU-Net's prediction of one image: the segmentation on the image's grid. Its preprocessing writes
    into the properties it is given, so it gets a copy."""
    return predictor.predict_single_npy_array(image, copy.deepcopy(properties), None, None, False)


def measure_test_volumes(
    chosen: Sequence,
    test_set: HeldOutSet,
    dataset: BenchmarkDataset,
    device: torch.device,
    repetitions: int,
    predictions: Path,
) -> tuple[list[Measured], int]:
    """Every configuration on every test case, one case in memory at a time: (measurements, threads)."""
    reader = dataset.plans_manager.image_reader_writer_class()
    print(f"Loading {', '.join(c.name for c in chosen)} on {device.type}")
    predictors = {c.name: load_predictor(c.model, c.folds, device, c.mirroring) for c in chosen}
    seconds = {c.name: {} for c in chosen}
    memory = {c.name: {} for c in chosen}
    for c in chosen:
        (predictions / c.folder).mkdir(parents=True)
    with nnunet_thread_count(device):
        threads = torch.get_num_threads()
        for index, (case, files) in enumerate(test_set.cases.items()):
            print(f"Case {case} ({index + 1} of {len(test_set.cases)}): {repetitions} timed round(s)")
            image, properties = reader.read_images([str(f) for f in files])
            calls = {
                name: functools.partial(predict, predictor, image, properties) for name, predictor in predictors.items()
            }
            if index == 0:
                for call in calls.values():
                    call()  # warm-up, untimed
            for c in chosen:
                segmentation = {}
                memory[c.name][case] = peak_memory(store_result(calls[c.name], segmentation), device) / MIB
                reader.write_seg(
                    segmentation["result"], str(predictions / c.folder / f"{case}{test_set.file_ending}"), properties
                )
            for name, timing in time_side_by_side(calls, device, warmup=0, steps=repetitions).items():
                seconds[name][case] = list(timing.times)
    return [
        Measured(c, predictors[c.name].allowed_mirroring_axes, seconds[c.name], memory[c.name]) for c in chosen
    ], threads


def store_result(call: Callable[[], object], into: dict) -> Callable[[], None]:
    return lambda: into.__setitem__("result", call())


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


def speed_ratio(baseline_seconds: Sequence[float], seconds: Sequence[float]) -> str:
    """How many times faster than the baseline, from the rounds' ratios: "2.10x faster (1.95-2.30)", or
    no difference when their range includes 1, or not judged with fewer rounds than keep two identical
    models' false verdicts under 5% (`speed_verdict`)."""
    if len(seconds) < MIN_ROUNDS_FOR_A_VERDICT:
        return (
            f"not judged ({len(seconds)} round(s): identical models would get a verdict "
            f"{100 * false_verdict_rate(len(seconds)):.0f}% of the time; needs {MIN_ROUNDS_FOR_A_VERDICT})"
        )
    ratios = np.asarray(baseline_seconds, dtype=float) / np.asarray(seconds, dtype=float)
    low, median, high = ratios.min(), float(np.median(ratios)), ratios.max()
    if low <= 1 <= high:
        return f"no difference (ratio {low:.2f}-{high:.2f} over {len(ratios)} rounds)"
    if median > 1:
        return f"{median:.2f}x faster ({low:.2f}-{high:.2f})"
    return f"{1 / median:.2f}x slower ({1 / high:.2f}-{1 / low:.2f})"


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
