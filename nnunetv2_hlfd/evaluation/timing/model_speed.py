"""The benchmark's speed of every model, per device: latency and peak memory of one network forward pass on
one patch, and of nnU-Net's own prediction of whole preprocessed validation cases (`prediction.load_predictor`,
the logits path, without resampling or export).

Each measured call runs once untimed, which warms up and measures peak memory; then `repetitions` rounds run
every call of every model once (interleaved, as the speed command does), so all models see the same machine
load. A case's latency is the median of its rounds, the volume latency the median over the cases, the volume
peak memory the largest of the cases; the patch latency comes with its quartiles.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
from collections.abc import Callable, Sequence

import numpy as np
import torch

from nnunetv2_hlfd.evaluation.model_folders import BenchmarkDataset, BenchmarkInputError, ModelFolder
from nnunetv2_hlfd.evaluation.timing.prediction import (
    MEMORY_MEASURES,
    MIB,
    load_predictor,
    nnunet_thread_count,
    volume_summary,
)
from nnunetv2_hlfd.models.model_plans import ModelPlans
from nnunetv2_hlfd.utilities.provenance import hardware_name
from nnunetv2_hlfd.utilities.timing import default_device, peak_memory, time_side_by_side


def timing_devices(devices: Sequence[str] | None) -> tuple[str, ...]:
    """The devices asked for; by default the CPU and, where torch sees one, the GPU."""
    if devices:
        return tuple(devices)
    return tuple(dict.fromkeys(("cpu", default_device())))


def check_devices(devices: Sequence[str]) -> None:
    if "cuda" in devices and not torch.cuda.is_available():
        raise BenchmarkInputError(
            "--device cuda was asked for, but torch sees no CUDA device; time on --device cpu, or pass --no-speed"
        )


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
    model once, so that all models see the same machine load (`nnunetv2_hlfd.utilities.timing`)."""
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
